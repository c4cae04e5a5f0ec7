//! Turning what JavaScript threw into a [`GuestError`] of kind `Exception`.
//!
//! SPEC §6 wants `message = "Name: message"` and a stack of at most 8 KiB. Error objects give
//! their `name`, `message` and `stack`; anything else that was thrown (a string, a number, a
//! plain object) is reported as `Error: <text>` with the value as text (strings as they are,
//! other values as JSON where possible), and no stack.

use crate::messages::truncate_utf8;
use crate::protocol::{ErrorKind, GuestError, OutputLimits};
use rquickjs::convert::Coerced;
use rquickjs::{Ctx, Value};

/// Appended to `ReferenceError: require is not defined`: `require` stays absent (code that
/// tests `typeof require` must keep taking its non-Node path), but the author is told what to
/// do instead.
pub const REQUIRE_HINT: &str = "cs-js runs ES modules and has no require(): bundle the \
    function with its npm dependencies into one ES module, e.g. `esbuild function.js --bundle \
    --format=esm --platform=browser --outfile=dist/function.js`";

/// Converts the thrown `value` (from `ctx.catch()`).
pub fn from_thrown<'js>(ctx: &Ctx<'js>, value: Value<'js>, limits: &OutputLimits) -> GuestError {
    let (message, stack) = match value.as_object() {
        Some(obj) if obj.is_error() => {
            let name = prop_string(ctx, obj, "name").unwrap_or_else(|| "Error".into());
            let msg = prop_string(ctx, obj, "message").unwrap_or_default();
            let stack = prop_string(ctx, obj, "stack").filter(|s| !s.is_empty());
            let message = if msg.is_empty() {
                name
            } else if name == "ReferenceError" && msg == "require is not defined" {
                format!("{name}: {msg}. {REQUIRE_HINT}")
            } else {
                format!("{name}: {msg}")
            };
            (message, stack)
        }
        _ => (format!("Error: {}", value_text(ctx, value)), None),
    };
    exception(message, stack, limits)
}

/// An `Exception` with the message and stack cut to the limits.
pub fn exception(mut message: String, stack: Option<String>, limits: &OutputLimits) -> GuestError {
    truncate_utf8(&mut message, limits.max_error_bytes as usize);
    let stack = stack.map(|mut s| {
        truncate_utf8(&mut s, limits.max_stack_bytes as usize);
        s
    });
    GuestError {
        kind: ErrorKind::Exception,
        message,
        stack,
    }
}

/// `obj[key]` as a string, or `None` if absent or if reading it threw (a hostile getter must
/// not turn an exception report into a different failure).
fn prop_string<'js>(ctx: &Ctx<'js>, obj: &rquickjs::Object<'js>, key: &str) -> Option<String> {
    match obj.get::<_, Option<Coerced<String>>>(key) {
        Ok(v) => v.map(|c| c.0),
        Err(_) => {
            ctx.catch();
            None
        }
    }
}

fn value_text<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> String {
    if let Some(s) = v.as_string() {
        return s.to_string().unwrap_or_default();
    }
    if v.is_undefined() {
        return "undefined".into();
    }
    if let Ok(Some(s)) = ctx.json_stringify(v.clone()) {
        if let Ok(s) = s.to_string() {
            return s;
        }
    }
    ctx.catch();
    match v.get::<Coerced<String>>() {
        Ok(c) => c.0,
        Err(_) => {
            ctx.catch();
            v.type_name().to_string()
        }
    }
}
