//! `TextEncoder`, `TextDecoder`, `atob`, `btoa`, and the byte codecs `Buffer` shares (base64,
//! base64url, hex, latin1, UTF-16LE).
//!
//! Hand-written rather than `encoding_rs`/`base64`: the decoders a function needs are UTF-8
//! (std's lossy decoding already substitutes maximal subparts exactly as the WHATWG decoder
//! does), UTF-16LE/BE and latin1 — a few lines each — while `encoding_rs` links every legacy
//! CJK table into the child. Node's base64 decoding is also deliberately lenient (it skips
//! characters outside the alphabet and accepts both alphabets), which the `base64` crate's
//! strict engines do not do. The WHATWG "forgiving-base64" of `atob` is a mode of the same
//! decoder.
//!
//! Latin1: Node 20 decodes the `latin1`/`windows-1252` labels as ISO-8859-1 (each byte is the
//! code point of the same value, including 0x80–0x9F), and so do we; the Encoding Standard maps
//! 0x80–0x9F to windows-1252 punctuation instead.

use super::{bytes_arg, new_u8, utf8, with_bytes, write_into};
use rquickjs::convert::List;
use rquickjs::{Ctx, Exception, Function, Object, Result, Value};

const GLUE: &str = include_str!("encoding.js");

pub fn build<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let n = natives(ctx)?;
    let dom = super::exports(ctx, "dom_exception")?;
    n.set("DOMException", dom.get::<_, Value>("DOMException")?)?;
    super::glue(ctx, "encoding.js", GLUE, n)
}

/// The natives of `encoding.js`; `buffer.js` uses the same set.
pub fn natives<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let n = super::common_natives(ctx)?;
    n.set(
        "utf8Encode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, s: Value<'js>| {
            let s = utf8(&ctx, &s)?;
            new_u8(&ctx, s.as_bytes())
        })?,
    )?;
    n.set(
        "utf8EncodeInto",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, s: Value<'js>, dest: Value<'js>| -> Result<Vec<usize>> {
                let s = utf8(&ctx, &s)?;
                let room = rquickjs::TypedArray::<u8>::from_value(dest.clone())
                    .map(|a| a.len())
                    .map_err(|_| {
                        Exception::throw_type(
                            &ctx,
                            "The \"dest\" argument must be an instance of Uint8Array.",
                        )
                    })?;
                let (mut read, mut end) = (0usize, 0usize);
                for c in s.chars() {
                    if end + c.len_utf8() > room {
                        break;
                    }
                    end += c.len_utf8();
                    read += c.len_utf16();
                }
                let written = write_into(&dest, 0, &s.as_bytes()[..end]).unwrap_or(0);
                Ok(vec![read, written])
            },
        )?,
    )?;
    // decode(bytes, encoding, fatal, stream) → [text, bytesConsumed] or null when `fatal` and
    // the input is malformed. With `stream`, an incomplete sequence at the end is not consumed.
    n.set(
        "decode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             b: Value<'js>,
             enc: String,
             fatal: bool,
             stream: bool|
             -> Result<Option<List<(String, usize)>>> {
                let r = with_bytes(&b, |bytes| decode(bytes, &enc, fatal, stream));
                r.map(|r| r.map(List))
                    .ok_or_else(|| Exception::throw_type(&ctx, "decode: not a byte array"))
            },
        )?,
    )?;
    // encode(string, encoding) → Uint8Array, for Buffer (Node's encoding names).
    n.set(
        "encode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, s: Value<'js>, enc: String| -> Result<Value<'js>> {
                let s = utf8(&ctx, &s)?;
                let bytes = match enc.as_str() {
                    "utf8" => return new_u8(&ctx, s.as_bytes()),
                    "hex" => hex_decode(&s),
                    "base64" | "base64url" => base64_decode_lenient(&s),
                    "latin1" | "ascii" => latin1_encode(&s),
                    "utf16le" => utf16le_encode(&s),
                    other => {
                        return Err(Exception::throw_type(
                            &ctx,
                            &format!("Unknown encoding: {other}"),
                        ))
                    }
                };
                new_u8(&ctx, &bytes)
            },
        )?,
    )?;
    // bytesToString(bytes, encoding), for Buffer#toString.
    n.set(
        "bytesToString",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, b: Value<'js>, enc: String| -> Result<String> {
                let bytes = bytes_arg(&ctx, &b, "bytes")?;
                Ok(match enc.as_str() {
                    "utf8" => String::from_utf8_lossy(&bytes).into_owned(),
                    "hex" => hex_encode(&bytes),
                    "base64" => base64_encode(&bytes, STD, true),
                    "base64url" => base64_encode(&bytes, URL, false),
                    "latin1" => bytes.iter().map(|&b| b as char).collect(),
                    "ascii" => bytes.iter().map(|&b| (b & 0x7f) as char).collect(),
                    // Node drops an odd final byte rather than decoding it as U+FFFD.
                    "utf16le" => utf16_decode(&bytes[..bytes.len() & !1], false, false, false)
                        .map(|(s, _)| s)
                        .unwrap_or_default(),
                    other => {
                        return Err(Exception::throw_type(
                            &ctx,
                            &format!("Unknown encoding: {other}"),
                        ))
                    }
                })
            },
        )?,
    )?;
    // atob core: [true, latin1 text] or [false, Node's message] (the glue throws the
    // DOMException).
    n.set(
        "atob",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, s: Value<'js>| -> Result<List<(bool, String)>> {
                let s = utf8(&ctx, &s)?;
                Ok(List(match forgiving_base64(&s) {
                    Ok(bytes) => (true, bytes.iter().map(|&b| b as char).collect()),
                    Err(why) => (false, why.to_string()),
                }))
            },
        )?,
    )?;
    // btoa core: the base64 of a string's code units when all are <= 0xFF, else null.
    n.set(
        "btoa",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, s: Value<'js>| -> Result<Option<String>> {
                let s = utf8(&ctx, &s)?;
                let mut bytes = Vec::with_capacity(s.len());
                for c in s.chars() {
                    if c as u32 > 0xFF {
                        return Ok(None);
                    }
                    bytes.push(c as u8);
                }
                Ok(Some(base64_encode(&bytes, STD, true)))
            },
        )?,
    )?;
    n.set(
        "byteLengthUtf8",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, s: Value<'js>| -> Result<usize> { Ok(utf8(&ctx, &s)?.len()) },
        )?,
    )?;
    Ok(n)
}

/// The WHATWG decoders we support, by canonical name.
pub fn decode(bytes: &[u8], enc: &str, fatal: bool, stream: bool) -> Option<(String, usize)> {
    match enc {
        "utf-8" => utf8_decode(bytes, fatal, stream),
        "utf-16le" => utf16_decode(bytes, false, fatal, stream),
        "utf-16be" => utf16_decode(bytes, true, fatal, stream),
        // windows-1252 as Node 20 decodes it (see the module docs).
        _ => Some((bytes.iter().map(|&b| b as char).collect(), bytes.len())),
    }
}

/// UTF-8 with U+FFFD substitution (or `None` when `fatal`); with `stream`, a trailing incomplete
/// but so far valid sequence is left unconsumed.
fn utf8_decode(bytes: &[u8], fatal: bool, stream: bool) -> Option<(String, usize)> {
    let end = if stream {
        bytes.len() - incomplete_tail(bytes)
    } else {
        bytes.len()
    };
    let part = &bytes[..end];
    match std::str::from_utf8(part) {
        Ok(s) => Some((s.to_string(), end)),
        Err(_) if fatal => None,
        Err(_) => Some((String::from_utf8_lossy(part).into_owned(), end)),
    }
}

/// Length of a trailing prefix of a multi-byte UTF-8 sequence that more bytes could complete.
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let lead = b[b.len() - back];
        if lead & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let need = match lead {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0,
        };
        if need <= back {
            return 0;
        }
        // The bytes after the lead must be valid continuations so far (the second byte's
        // range depends on the lead).
        let tail = &b[b.len() - back..];
        if tail.len() >= 2 {
            let ok = match lead {
                0xE0 => (0xA0..=0xBF).contains(&tail[1]),
                0xED => (0x80..=0x9F).contains(&tail[1]),
                0xF0 => (0x90..=0xBF).contains(&tail[1]),
                0xF4 => (0x80..=0x8F).contains(&tail[1]),
                _ => true,
            };
            if !ok {
                return 0;
            }
        }
        return back;
    }
    0
}

/// UTF-16 (little- or big-endian) with U+FFFD for unpaired surrogates and an odd final byte.
fn utf16_decode(bytes: &[u8], be: bool, fatal: bool, stream: bool) -> Option<(String, usize)> {
    let mut units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|p| {
            if be {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                u16::from_le_bytes([p[0], p[1]])
            }
        })
        .collect();
    let mut consumed = units.len() * 2;
    let odd = bytes.len() % 2 == 1;
    if stream {
        // Keep an odd byte and a trailing high surrogate for the next chunk.
        if units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
            units.pop();
            consumed -= 2;
        }
    }
    let mut out = String::with_capacity(units.len());
    for r in char::decode_utf16(units.iter().copied()) {
        match r {
            Ok(c) => out.push(c),
            Err(_) if fatal => return None,
            Err(_) => out.push('\u{FFFD}'),
        }
    }
    if odd && !stream {
        if fatal {
            return None;
        }
        out.push('\u{FFFD}');
        consumed += 1;
    }
    Some((out, consumed))
}

fn latin1_encode(s: &str) -> Vec<u8> {
    // Node keeps the low byte of each UTF-16 code unit.
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        let mut buf = [0u16; 2];
        for u in c.encode_utf16(&mut buf) {
            out.push(*u as u8);
        }
    }
    out
}

fn utf16le_encode(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

pub fn hex_encode(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// Node's hex decoding: pairs of hex digits until the first pair that is not one.
fn hex_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 2);
    for pair in b.chunks_exact(2) {
        match (hex_val(pair[0]), hex_val(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => break,
        }
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

pub const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn base64_encode(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// The value of a base64 digit of either alphabet.
fn b64_val(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// Node's `Buffer.from(s, 'base64' | 'base64url')`: digits of both alphabets, everything else
/// skipped, decoding stops at the first `=`; a final lone digit is dropped.
pub fn base64_decode_lenient(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut n) = (0u32, 0u32);
    for &c in s.as_bytes() {
        if c == b'=' {
            break;
        }
        let Some(v) = b64_val(c) else { continue };
        acc = acc << 6 | v;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    out
}

/// The WHATWG forgiving-base64 decode (`atob`); the error is Node's message.
fn forgiving_base64(s: &str) -> std::result::Result<Vec<u8>, &'static str> {
    let mut data: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' | '\n' | '\x0C' | '\r' | ' ' => {}
            c if c.is_ascii() => data.push(c as u8),
            _ => return Err("Invalid character"),
        }
    }
    if data.len().is_multiple_of(4) {
        for _ in 0..2 {
            if data.last() == Some(&b'=') {
                data.pop();
            }
        }
    }
    if data
        .iter()
        .any(|&c| !(c.is_ascii_alphanumeric() || c == b'+' || c == b'/'))
    {
        return Err("Invalid character");
    }
    if data.len() % 4 == 1 {
        return Err("The string to be decoded is not correctly encoded.");
    }
    Ok(base64_decode_lenient(
        std::str::from_utf8(&data).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_both_ways() {
        for (raw, std_, url) in [
            ("", "", ""),
            ("f", "Zg==", "Zg"),
            ("fo", "Zm8=", "Zm8"),
            ("foo", "Zm9v", "Zm9v"),
            ("foob", "Zm9vYg==", "Zm9vYg"),
            ("\u{fb}\u{ff}", "w7vDvw==", "w7vDvw"),
        ] {
            assert_eq!(base64_encode(raw.as_bytes(), STD, true), std_);
            assert_eq!(base64_encode(raw.as_bytes(), URL, false), url);
            assert_eq!(base64_decode_lenient(std_), raw.as_bytes());
            assert_eq!(base64_decode_lenient(url), raw.as_bytes());
        }
        assert_eq!(base64_encode(&[0xfb, 0xff], STD, true), "+/8=");
        assert_eq!(base64_encode(&[0xfb, 0xff], URL, false), "-_8");
        assert_eq!(forgiving_base64(" YW Jj\nZA== ").unwrap(), b"abcd");
        assert_eq!(forgiving_base64("YQ=").unwrap_err(), "Invalid character");
        assert!(forgiving_base64("Y").unwrap_err().contains("not correctly"));
    }

    #[test]
    fn utf8_streaming_keeps_an_incomplete_tail() {
        assert_eq!(incomplete_tail(&[0x61, 0xE2, 0x9C]), 2);
        assert_eq!(incomplete_tail(&[0x61, 0xE2, 0x9C, 0x93]), 0);
        assert_eq!(incomplete_tail(&[0xF0, 0x9F, 0x98]), 3);
        assert_eq!(incomplete_tail(&[0xE0, 0x80]), 0); // can never become valid
        assert_eq!(
            utf8_decode(&[0x61, 0xE2, 0x9C], false, true).unwrap(),
            ("a".into(), 1)
        );
        assert_eq!(utf8_decode(&[0xFF], true, false), None);
    }

    #[test]
    fn hex_stops_at_the_first_bad_pair() {
        assert_eq!(hex_decode("00ff7Gaa"), vec![0, 255]);
        assert_eq!(hex_encode(&[0, 255, 16]), "00ff10");
    }
}
