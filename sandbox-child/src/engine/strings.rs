//! JavaScript strings into Rust strings at the engine's boundary, without losing a message.
//!
//! A JavaScript string is UTF-16 and may hold lone surrogates (`"\uD800"`); a Rust string is
//! UTF-8 and cannot. QuickJS hands such a string out as WTF-8 (the surrogate encoded as if it
//! were a code point), which `rquickjs::String::to_string` refuses — so a result body, a
//! header, a log line or an error message holding one used to turn into a conversion error
//! (or a `SandboxError`). Everything the guest gives the engine goes through [`lossy`] instead:
//! each lone surrogate becomes one U+FFFD, exactly what `String.prototype.toWellFormed` gives.

use rquickjs::convert::Coerced;
use rquickjs::{Ctx, FromAtom, FromJs, Result, Value};

/// The string's text, each lone surrogate replaced by U+FFFD.
pub fn lossy(s: &rquickjs::String<'_>) -> Result<String> {
    let c = rquickjs::CString::from_string(s.clone())?;
    // SAFETY: `CString::from_string` made QuickJS allocate `c.len()` bytes at `c.as_ptr()`
    // (JS_ToCStringLen); they stay valid and unchanged until `c` is dropped at the end of this
    // function, after the slice's last use. We only read them as bytes (not as `str`, which
    // rquickjs's own `as_str` does and which would be wrong for a lone surrogate).
    let bytes = unsafe { std::slice::from_raw_parts(c.as_ptr().cast::<u8>(), c.len()) };
    Ok(wtf8_to_string(bytes))
}

/// Decodes QuickJS's WTF-8: valid UTF-8 as it is; a three-byte surrogate sequence
/// (`ED A0..BF 80..BF`) or any other invalid sequence as one U+FFFD each. Linear: every
/// `from_utf8` call stops at the first invalid byte, which is then skipped.
pub fn wtf8_to_string(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                // `valid` is valid UTF-8 by the definition of `valid_up_to`.
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push('\u{FFFD}');
                let skip = match bad {
                    [0xED, 0xA0..=0xBF, 0x80..=0xBF, ..] => 3,
                    _ => e.error_len().unwrap_or(bad.len()),
                };
                rest = &bad[skip.min(bad.len())..];
            }
        }
    }
    out
}

/// A string argument or property, converted with [`lossy`]. Like `String` in rquickjs'
/// conversions, it accepts only strings.
pub struct Lossy(pub String);

impl<'js> FromJs<'js> for Lossy {
    fn from_js(ctx: &Ctx<'js>, v: Value<'js>) -> Result<Self> {
        let s = rquickjs::String::from_js(ctx, v)?;
        lossy(&s).map(Lossy)
    }
}

impl<'js> FromAtom<'js> for Lossy {
    fn from_atom(atom: rquickjs::Atom<'js>) -> Result<Self> {
        lossy(&atom.to_js_string()?).map(Lossy)
    }
}

/// Any value converted with JavaScript's `String(v)` (which may run guest code), then
/// [`lossy`].
pub struct CoercedLossy(pub String);

impl<'js> FromJs<'js> for CoercedLossy {
    fn from_js(ctx: &Ctx<'js>, v: Value<'js>) -> Result<Self> {
        let Coerced(s) = Coerced::<rquickjs::String<'js>>::from_js(ctx, v)?;
        lossy(&s).map(CoercedLossy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_become_one_replacement_character_each() {
        // "a" U+D800 "b" U+DC00 "c", as QuickJS encodes it.
        let wtf8 = b"a\xED\xA0\x80b\xED\xB0\x80c";
        assert_eq!(wtf8_to_string(wtf8), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(wtf8_to_string("plain é 😀".as_bytes()), "plain é 😀");
        assert_eq!(wtf8_to_string(b"\xED\xA0"), "\u{FFFD}\u{FFFD}");
        assert_eq!(wtf8_to_string(b"x\xFFy"), "x\u{FFFD}y");
    }

    #[test]
    fn strings_from_the_engine_keep_their_text() {
        let rt = rquickjs::Runtime::new().unwrap();
        let ctx = rquickjs::Context::full(&rt).unwrap();
        ctx.with(|ctx| {
            let s: rquickjs::String = ctx.eval(r#""x\uD800y" + "\uDBFF\uDFFF""#).unwrap();
            assert_eq!(lossy(&s).unwrap(), "x\u{FFFD}y\u{10FFFF}");
            let v: Value = ctx
                .eval("({toString() { return 'lone \\uDC00' }})")
                .unwrap();
            let CoercedLossy(t) = CoercedLossy::from_js(&ctx, v).unwrap();
            assert_eq!(t, "lone \u{FFFD}");
        });
    }
}
