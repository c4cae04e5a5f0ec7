//! Node's `Buffer` (`buffer.js`), on the codecs of [`super::encoding`] plus byte comparison and
//! search.

use rquickjs::{Ctx, Exception, Function, Object, Result, Value};

const GLUE: &str = include_str!("buffer.js");

pub fn build<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let n = super::encoding::natives(ctx)?;
    let enc = super::exports(ctx, "encoding")?;
    n.set("nodeError", enc.get::<_, Value>("nodeError")?)?;
    n.set("view", enc.get::<_, Value>("view")?)?;
    n.set("received", enc.get::<_, Value>("received")?)?;
    // compare(a, b) → -1, 0 or 1, bytewise.
    n.set(
        "compare",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, a: Value<'js>, b: Value<'js>| -> Result<i32> {
                let a = super::bytes_arg(&ctx, &a, "buf1")?;
                let r = super::with_bytes(&b, |b| a.as_slice().cmp(b))
                    .ok_or_else(|| Exception::throw_type(&ctx, "compare: not a byte array"))?;
                Ok(r as i32)
            },
        )?,
    )?;
    // indexOf(haystack, needle, from, last) → the byte index of the first (or, with `last`,
    // the last one starting at or before `from`) occurrence, or -1.
    n.set(
        "indexOf",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             hay: Value<'js>,
             needle: Value<'js>,
             from: usize,
             last: bool|
             -> Result<i64> {
                let needle = super::bytes_arg(&ctx, &needle, "value")?;
                let r = super::with_bytes(&hay, |h| find(h, &needle, from, last))
                    .ok_or_else(|| Exception::throw_type(&ctx, "indexOf: not a byte array"))?;
                Ok(r.map_or(-1, |i| i as i64))
            },
        )?,
    )?;
    super::glue(ctx, "buffer.js", GLUE, n)
}

fn find(hay: &[u8], needle: &[u8], from: usize, last: bool) -> Option<usize> {
    if last {
        let start_max = from.min(hay.len().checked_sub(needle.len())?);
        (0..=start_max)
            .rev()
            .find(|&i| &hay[i..i + needle.len()] == needle)
    } else {
        if needle.is_empty() {
            return Some(from.min(hay.len()));
        }
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn find_first_and_last() {
        assert_eq!(super::find(b"hello world", b"o", 0, false), Some(4));
        assert_eq!(super::find(b"hello world", b"o", 5, false), Some(7));
        assert_eq!(super::find(b"hello world", b"o", 11, true), Some(7));
        assert_eq!(super::find(b"hello world", b"o", 6, true), Some(4));
        assert_eq!(super::find(b"abc", b"abcd", 0, false), None);
        assert_eq!(super::find(b"abc", b"", 1, false), Some(1));
    }
}
