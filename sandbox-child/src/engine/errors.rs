//! Turning what JavaScript threw into a [`GuestError`] of kind `Exception`.
//!
//! SPEC §6 wants `message = "Name: message"` and a stack of at most 8 KiB. Error objects give
//! their `name`, `message` and `stack`; anything else that was thrown (a string, a number, a
//! plain object) is reported as `Error: <text>` with the value as text (strings as they are,
//! other values as JSON where possible), and no stack.

use super::strings::{lossy, CoercedLossy};
use crate::messages::truncate_utf8;
use crate::protocol::{ErrorKind, GuestError, OutputLimits};
use rquickjs::{Ctx, Value};

/// Converts the thrown `value` (from `ctx.catch()`).
pub fn from_thrown<'js>(ctx: &Ctx<'js>, value: Value<'js>, limits: &OutputLimits) -> GuestError {
    let (message, stack) = match value.as_object() {
        Some(obj) if obj.is_error() => {
            let name = prop_string(ctx, obj, "name").unwrap_or_else(|| "Error".into());
            let msg = prop_string(ctx, obj, "message").unwrap_or_default();
            let stack = prop_string(ctx, obj, "stack").filter(|s| !s.is_empty());
            let message = if msg.is_empty() {
                name
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
    match obj.get::<_, Option<CoercedLossy>>(key) {
        Ok(v) => v.map(|c| c.0),
        Err(_) => {
            ctx.catch();
            None
        }
    }
}

fn value_text<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> String {
    if let Some(s) = v.as_string() {
        return lossy(s).unwrap_or_default();
    }
    if v.is_undefined() {
        return "undefined".into();
    }
    if let Ok(Some(s)) = ctx.json_stringify(v.clone()) {
        if let Ok(s) = lossy(&s) {
            return s;
        }
    }
    ctx.catch();
    match v.get::<CoercedLossy>() {
        Ok(c) => c.0,
        Err(_) => {
            ctx.catch();
            v.type_name().to_string()
        }
    }
}
