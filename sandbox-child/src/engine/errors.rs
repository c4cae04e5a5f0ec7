//! Turning what JavaScript threw into a [`GuestError`] of kind `Exception`.
//!
//! contract §6 wants `message = "Name: message"` and a stack of at most 8 KiB. Error objects give
//! their `name`, `message` and `stack`; anything else that was thrown (a string, a number, a
//! plain object) is reported as `Error: <text>` with the value as text (strings as they are,
//! other values as JSON where possible), and no stack.

use super::strings::{lossy, CoercedLossy};
use rquickjs::{Ctx, Value};
use sandbox_proto::messages::truncate_utf8;
use sandbox_proto::protocol::{ErrorKind, GuestError, OutputLimits};

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
            let mut stack = prop_string(ctx, obj, "stack").filter(|s| !s.is_empty());
            let msg = match (name.as_str(), msg.as_str(), &mut stack) {
                ("TypeError", "not a function", Some(stack)) => match callee_message(ctx, stack) {
                    Some(better) => {
                        // The stack's `Name: message` header says the same.
                        if let Some(rest) = stack.strip_prefix("TypeError: not a function\n") {
                            *stack = format!("TypeError: {better}\n{rest}");
                        }
                        better
                    }
                    None => msg,
                },
                _ => msg,
            };
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

/// QuickJS-NG (as rquickjs 0.14 bundles it) says only `not a function`, without the callee V8
/// names (`obj.a.missing is not a function`). Its stack's first frame points at the callee's
/// last name in the bundle's source, so the message is rebuilt from there: the member chain
/// ending at that column (`obj.a.missing`, `this.m`, `o?.f`; at most four names), `is not a
/// function`, or `is not a constructor` after `new`. Only when that frame is in a bundle file
/// and the source there reads as a call; otherwise the message stays as QuickJS made it.
fn callee_message(ctx: &Ctx<'_>, stack: &str) -> Option<String> {
    // The first frame (the stack may start with its `Name: message` header, as V8's does).
    let frame = stack
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("at "))?;
    let loc = frame.strip_suffix(')')?.rsplit_once('(')?.1;
    let mut parts = loc.rsplitn(3, ':');
    let col: usize = parts.next()?.parse().ok()?;
    let line: usize = parts.next()?.parse().ok()?;
    let file = parts.next()?;
    let shared = super::shared_of(ctx).ok()?;
    let files = shared.files.borrow();
    let source = std::str::from_utf8(files.get(file)?).ok()?;
    let text = source.lines().nth(line.checked_sub(1)?)?;
    callee_at(text, col)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// The message for a failed call whose callee's last name starts at `col` (1-based, in
/// characters) of `line`; see [`callee_message`].
pub fn callee_at(line: &str, col: usize) -> Option<String> {
    let chars: Vec<char> = line.chars().collect();
    let start = col.checked_sub(1)?;
    let mut end = start;
    while end < chars.len() && is_ident(chars[end]) {
        end += 1;
    }
    if end == start || chars[start].is_ascii_digit() {
        return None;
    }
    // A call (or a tagged template, or `new X;`) must follow the name.
    let after = chars[end..].iter().find(|c| !c.is_whitespace()).copied();
    let mut names = vec![chars[start..end].iter().collect::<String>()];
    let mut seps = Vec::new();
    let mut i = start;
    while names.len() < 4 {
        let sep = if i >= 2 && chars[i - 2] == '?' && chars[i - 1] == '.' {
            "?."
        } else if i >= 1 && chars[i - 1] == '.' {
            "."
        } else {
            break;
        };
        let mut j = i - sep.len();
        let name_end = j;
        while j > 0 && is_ident(chars[j - 1]) {
            j -= 1;
        }
        if j == name_end || chars[j].is_ascii_digit() {
            return None; // `f().x()`, `a[0].x()`: not a plain chain
        }
        names.insert(0, chars[j..name_end].iter().collect());
        seps.insert(0, sep);
        i = j;
    }
    if i >= 1 && (chars[i - 1] == '.' || chars[i - 1] == ']' || chars[i - 1] == ')') {
        return None; // a longer or computed chain: do not guess
    }
    let before: String = chars[..i].iter().collect();
    let constructor = before.trim_end().ends_with("new")
        && !before
            .trim_end()
            .strip_suffix("new")
            .is_some_and(|b| b.chars().last().is_some_and(is_ident));
    match after {
        Some('(') | Some('`') => {}
        Some(';') | Some(')') | Some(',') | None if constructor => {}
        _ => return None,
    }
    let mut chain = names[0].clone();
    for (sep, name) in seps.iter().zip(&names[1..]) {
        chain.push_str(sep);
        chain.push_str(name);
    }
    Some(if constructor {
        format!("{chain} is not a constructor")
    } else {
        format!("{chain} is not a function")
    })
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

#[cfg(test)]
mod tests {
    use super::callee_at;

    #[test]
    fn the_callee_is_read_back_from_the_source() {
        let cases = [
            (
                "  try { obj.a.missing(1, 2); }",
                15,
                Some("obj.a.missing is not a function"),
            ),
            ("  x();", 3, Some("x is not a function")),
            (
                "  console.lag(\"hi\");",
                11,
                Some("console.lag is not a function"),
            ),
            ("  new X();", 7, Some("X is not a constructor")),
            ("  o?.f();", 6, Some("o?.f is not a function")),
            ("  this.m();", 8, Some("this.m is not a function")),
            ("  a.b.c.d();", 9, Some("a.b.c.d is not a function")),
            ("  tag`x`;", 3, Some("tag is not a function")),
            // Not something to guess about: computed members, calls on call results, a column
            // that is not on a name followed by a call.
            ("  o[\"k\"]();", 3, None),
            ("  f().g();", 7, None),
            ("  a[0].g();", 8, None),
            ("  [1].map(o.nope);", 11, None),
            ("  x();", 40, None),
            // More than four names: rather the bare message than a cut chain.
            ("  a.b.c.d.e();", 11, None),
        ];
        for (line, col, want) in cases {
            assert_eq!(callee_at(line, col).as_deref(), want, "{line:?} at {col}");
        }
    }
}
