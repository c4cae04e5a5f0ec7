//! `crypto.getRandomValues`, `crypto.randomUUID`, `crypto.subtle` (digest SHA-1/256/384/512;
//! HMAC import/export/generate/sign/verify; AES-GCM import/export/generate/encrypt/decrypt)
//! and a per-child `Math.random`.
//!
//! **Randomness.** Every byte comes from the kernel's CSPRNG through the `getrandom` syscall,
//! which the seccomp policy already allowed (it seeds std's `HashMap`s); no file is opened
//! (`/dev/urandom` could not be: the child has no filesystem and may open nothing). Each call
//! of `getRandomValues`/`randomUUID` asks the kernel, so two children never share a stream,
//! whenever they were started.
//!
//! **`Math.random`.** QuickJS-NG seeds its generator from the time of day in microseconds
//! (`JS_NewContext`: `random_state = js__gettimeofday_us()`), so two children started in the
//! same microsecond — which a pool refilling several stem children does — would produce the
//! same sequence, and a guest could predict it from the clock. We replace `Math.random` with
//! xoshiro256++ seeded with 32 bytes from `getrandom` when the engine is created: not a
//! cryptographic generator (neither is V8's), but unpredictable and independent per child.
//!
//! **Algorithms** are RustCrypto's (`sha1`, `sha2`, `hmac`, `aes-gcm`); key handling, usages and
//! promises are `crypto.js`.

use super::{bytes_arg, new_array_buffer, with_bytes, write_into};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::AesGcm;
use hmac::{Hmac, Mac};
use rquickjs::object::Property;
use rquickjs::{qjs, Ctx, Exception, Function, Object, Result, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::cell::Cell;

const GLUE: &str = include_str!("crypto.js");

/// Most bytes one `getRandomValues` call may fill (Web Crypto's limit).
const MAX_RANDOM_BYTES: usize = 65536;

pub fn build<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let n = super::common_natives(ctx)?;
    let dom = super::exports(ctx, "dom_exception")?;
    n.set("DOMException", dom.get::<_, Value>("DOMException")?)?;
    let enc = super::exports(ctx, "encoding")?;
    n.set("nodeError", enc.get::<_, Value>("nodeError")?)?;
    n.set("view", enc.get::<_, Value>("view")?)?;

    // fill(u8): fills a Uint8Array view with random bytes; false when over the limit.
    n.set(
        "fill",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, v: Value<'js>| -> Result<bool> {
                let len = rquickjs::TypedArray::<u8>::from_value(v.clone())
                    .map(|a| a.len())
                    .map_err(|_| Exception::throw_type(&ctx, "fill: not a Uint8Array"))?;
                if len > MAX_RANDOM_BYTES {
                    return Ok(false);
                }
                let mut buf = vec![0u8; len];
                random(&ctx, &mut buf)?;
                write_into(&v, 0, &buf);
                Ok(true)
            },
        )?,
    )?;
    n.set(
        "randomUUID",
        Function::new(ctx.clone(), |ctx: Ctx<'js>| -> Result<String> {
            let mut b = [0u8; 16];
            random(&ctx, &mut b)?;
            Ok(uuid::Builder::from_random_bytes(b)
                .into_uuid()
                .hyphenated()
                .to_string())
        })?,
    )?;
    n.set(
        "randomBytes",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, len: usize| -> Result<Value<'js>> {
                let mut b = vec![0u8; len.min(MAX_RANDOM_BYTES)];
                random(&ctx, &mut b)?;
                super::new_u8(&ctx, &b)
            },
        )?,
    )?;
    n.set(
        "base64url",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, b: Value<'js>| -> Result<String> {
                let b = bytes_arg(&ctx, &b, "bytes")?;
                Ok(super::encoding::base64_encode(
                    &b,
                    super::encoding::URL,
                    false,
                ))
            },
        )?,
    )?;
    n.set(
        "unbase64url",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, s: Value<'js>| -> Result<Value<'js>> {
                let s = super::utf8(&ctx, &s)?;
                super::new_u8(&ctx, &super::encoding::base64_decode_lenient(&s))
            },
        )?,
    )?;
    // digest(hash, bytes) → ArrayBuffer; the hash name is already normalised by the glue.
    n.set(
        "digest",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, hash: String, data: Value<'js>| -> Result<Value<'js>> {
                let out = with_bytes(&data, |d| digest(&hash, d))
                    .flatten()
                    .ok_or_else(|| Exception::throw_type(&ctx, "digest: bad arguments"))?;
                new_array_buffer(&ctx, &out)
            },
        )?,
    )?;
    // hmac(hash, key, data) → ArrayBuffer.
    n.set(
        "hmac",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             hash: String,
             key: Value<'js>,
             data: Value<'js>|
             -> Result<Value<'js>> {
                let key = bytes_arg(&ctx, &key, "key")?;
                let out = with_bytes(&data, |d| hmac(&hash, &key, d))
                    .flatten()
                    .ok_or_else(|| Exception::throw_type(&ctx, "hmac: bad arguments"))?;
                new_array_buffer(&ctx, &out)
            },
        )?,
    )?;
    // hmacVerify(hash, key, signature, data) → bool, compared in constant time.
    n.set(
        "hmacVerify",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             hash: String,
             key: Value<'js>,
             sig: Value<'js>,
             data: Value<'js>|
             -> Result<bool> {
                let key = bytes_arg(&ctx, &key, "key")?;
                let sig = bytes_arg(&ctx, &sig, "signature")?;
                let ok = with_bytes(&data, |d| hmac_verify(&hash, &key, &sig, d))
                    .ok_or_else(|| Exception::throw_type(&ctx, "hmac: bad arguments"))?;
                Ok(ok)
            },
        )?,
    )?;
    // aesGcm(encrypt, key, iv, aad, data, tagBytes) → ArrayBuffer, or undefined when the
    // operation fails (a bad tag on decryption, an unsupported key or IV length).
    n.set(
        "aesGcm",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             encrypt: bool,
             key: Value<'js>,
             iv: Value<'js>,
             aad: Value<'js>,
             data: Value<'js>,
             tag: usize|
             -> Result<Option<Value<'js>>> {
                let key = bytes_arg(&ctx, &key, "key")?;
                let iv = bytes_arg(&ctx, &iv, "iv")?;
                let aad = bytes_arg(&ctx, &aad, "additionalData")?;
                let data = bytes_arg(&ctx, &data, "data")?;
                let out = if encrypt {
                    aes_gcm_encrypt(&key, &iv, &aad, &data, tag)
                } else {
                    aes_gcm_decrypt(&key, &iv, &aad, &data, tag)
                };
                match out {
                    Some(out) => Ok(Some(new_array_buffer(&ctx, &out)?)),
                    None => Ok(None),
                }
            },
        )?,
    )?;
    super::glue(ctx, "crypto.js", GLUE, n)
}

fn random(ctx: &Ctx<'_>, buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf)
        .map_err(|e| Exception::throw_internal(ctx, &format!("the OS random source failed: {e}")))
}

fn digest(hash: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match hash {
        "SHA-1" => Sha1::digest(data).to_vec(),
        "SHA-256" => Sha256::digest(data).to_vec(),
        "SHA-384" => Sha384::digest(data).to_vec(),
        "SHA-512" => Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

fn hmac(hash: &str, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let mut m = <M as KeyInit>::new_from_slice(key).ok()?;
        m.update(data);
        Some(m.finalize().into_bytes().to_vec())
    }
    match hash {
        "SHA-1" => run::<Hmac<Sha1>>(key, data),
        "SHA-256" => run::<Hmac<Sha256>>(key, data),
        "SHA-384" => run::<Hmac<Sha384>>(key, data),
        "SHA-512" => run::<Hmac<Sha512>>(key, data),
        _ => None,
    }
}

fn hmac_verify(hash: &str, key: &[u8], sig: &[u8], data: &[u8]) -> bool {
    fn run<M: Mac + KeyInit>(key: &[u8], sig: &[u8], data: &[u8]) -> bool {
        let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else {
            return false;
        };
        m.update(data);
        m.verify_slice(sig).is_ok()
    }
    match hash {
        "SHA-1" => run::<Hmac<Sha1>>(key, sig, data),
        "SHA-256" => run::<Hmac<Sha256>>(key, sig, data),
        "SHA-384" => run::<Hmac<Sha384>>(key, sig, data),
        "SHA-512" => run::<Hmac<Sha512>>(key, sig, data),
        _ => false,
    }
}

/// AES-GCM encryption (AES-128/192/256, a 12- or 16-byte IV) with the full 128-bit tag; `None`
/// for other sizes.
fn aes_gcm(key: &[u8], iv: &[u8], aad: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    use aes_gcm::aead::consts::{U12, U16};
    fn run<C: KeyInit + Aead>(key: &[u8], iv: &[u8], aad: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let cipher = C::new_from_slice(key).ok()?;
        let nonce = aes_gcm::aead::Nonce::<C>::try_from(iv).ok()?;
        cipher.encrypt(&nonce, Payload { msg: data, aad }).ok()
    }
    match (key.len(), iv.len()) {
        (16, 12) => run::<AesGcm<Aes128, U12>>(key, iv, aad, data),
        (24, 12) => run::<AesGcm<Aes192, U12>>(key, iv, aad, data),
        (32, 12) => run::<AesGcm<Aes256, U12>>(key, iv, aad, data),
        (16, 16) => run::<AesGcm<Aes128, U16>>(key, iv, aad, data),
        (24, 16) => run::<AesGcm<Aes192, U16>>(key, iv, aad, data),
        (32, 16) => run::<AesGcm<Aes256, U16>>(key, iv, aad, data),
        _ => None,
    }
}

/// Web Crypto's AES-GCM encrypt: the ciphertext followed by the first `tag` bytes of the tag
/// (a shorter GCM tag is the truncation of the full one, and the ciphertext does not depend
/// on the tag length).
fn aes_gcm_encrypt(key: &[u8], iv: &[u8], aad: &[u8], data: &[u8], tag: usize) -> Option<Vec<u8>> {
    let mut out = aes_gcm(key, iv, aad, data)?;
    out.truncate(data.len() + tag.min(16));
    Some(out)
}

/// Web Crypto's AES-GCM decrypt for any tag length: GCM's keystream is independent of the
/// data, so encrypting the ciphertext yields the plaintext, and encrypting that plaintext yields
/// the ciphertext again with its full tag, whose first `tag` bytes must equal the received tag
/// (compared in constant time). The plaintext is returned only after that check.
fn aes_gcm_decrypt(key: &[u8], iv: &[u8], aad: &[u8], data: &[u8], tag: usize) -> Option<Vec<u8>> {
    let tag = tag.min(16);
    let body = data.len().checked_sub(tag)?;
    let (ct, received) = data.split_at(body);
    let mut plain = aes_gcm(key, iv, &[], ct)?;
    plain.truncate(body);
    let again = aes_gcm(key, iv, aad, &plain)?;
    let expected = &again[body..body + tag];
    let diff = expected
        .iter()
        .zip(received)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (diff == 0).then_some(plain)
}

/// xoshiro256++ (Blackman & Vigna), the generator behind [`install_math_random`].
struct Xoshiro([u64; 4]);

impl Xoshiro {
    fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }
}

thread_local! {
    /// The `Math.random` state of this thread's engines (a child runs one engine on one
    /// thread), seeded by [`install_math_random`].
    static MATH_RANDOM: Cell<[u64; 4]> = const { Cell::new([1, 0, 0, 0]) };
}

/// `Math.random` as a plain C function: no closure, no argument conversion, so a call costs
/// about what QuickJS's own costs (an rquickjs closure doubled it).
unsafe extern "C" fn math_random(
    _ctx: *mut qjs::JSContext,
    _this: qjs::JSValue,
    _argc: std::ffi::c_int,
    _argv: *mut qjs::JSValue,
) -> qjs::JSValue {
    let v = MATH_RANDOM.with(|s| {
        let mut x = Xoshiro(s.get());
        let v = x.next();
        s.set(x.0);
        v
    });
    // The top 53 bits as a float in [0, 1).
    qjs::JS_NewFloat64((v >> 11) as f64 * (1.0 / (1u64 << 53) as f64))
}

/// Replaces `Math.random` by a generator seeded from the OS for this engine (see the module
/// docs for why QuickJS-NG's own seeding is not enough).
pub fn install_math_random(ctx: &Ctx<'_>) -> Result<()> {
    let mut seed = [0u8; 32];
    random(ctx, &mut seed)?;
    let mut state = [0u64; 4];
    for (i, w) in state.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&seed[i * 8..i * 8 + 8]);
        *w = u64::from_le_bytes(b);
    }
    if state == [0; 4] {
        state[0] = 1; // the one state xoshiro must not start from
    }
    MATH_RANDOM.with(|s| s.set(state));
    // SAFETY: `math_random` has the JSCFunction signature and touches no JS value; the name is
    // a NUL-terminated static; the returned value is a new reference owned by `Value::from_raw`.
    let f = unsafe {
        let v = qjs::JS_NewCFunction2(
            ctx.as_raw().as_ptr(),
            Some(math_random),
            c"random".as_ptr(),
            0,
            qjs::JSCFunctionEnum_JS_CFUNC_generic,
            0,
        );
        if qjs::JS_IsException(v) {
            return Err(rquickjs::Error::Exception);
        }
        Value::from_raw(ctx.clone(), v)
    };
    let math: Object = ctx.globals().get("Math")?;
    math.prop("random", Property::from(f).writable().configurable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_hmac_match_known_vectors() {
        // FIPS 180 "abc" and RFC 4231 test case 2.
        assert_eq!(
            super::super::encoding::hex_encode(&digest("SHA-256", b"abc").unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            super::super::encoding::hex_encode(
                &hmac("SHA-256", b"Jefe", b"what do ya want for nothing?").unwrap()
            ),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let tag = hmac("SHA-1", b"k", b"d").unwrap();
        assert!(hmac_verify("SHA-1", b"k", &tag, b"d"));
        assert!(!hmac_verify("SHA-1", b"k", &tag[..19], b"d"));
        assert!(digest("MD5", b"").is_none());
    }

    #[test]
    fn aes_gcm_round_trips_and_rejects_tampering() {
        let (key, iv) = ([7u8; 32], [1u8; 12]);
        let ct = aes_gcm_encrypt(&key, &iv, &[9], b"hello", 16).unwrap();
        // The value Node 20 computes for the same key, IV, data and additional data.
        assert_eq!(
            super::super::encoding::hex_encode(&ct),
            "1e84e5dbffe7d23e12d987a7cf01ae4ae568914779"
        );
        assert_eq!(aes_gcm_decrypt(&key, &iv, &[9], &ct, 16).unwrap(), b"hello");
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(aes_gcm_decrypt(&key, &iv, &[9], &bad, 16).is_none());
        assert!(aes_gcm_decrypt(&key, &iv, &[8], &ct, 16).is_none());
        // A 96-bit tag is the full tag cut short (Node 20: 76e189b5b2b7c71e78801475ac7500).
        let short = aes_gcm_encrypt(&key, &iv, &[], &[0, 0, 0], 12).unwrap();
        assert_eq!(
            super::super::encoding::hex_encode(&short),
            "76e189b5b2b7c71e78801475ac7500"
        );
        assert_eq!(
            aes_gcm_decrypt(&key, &iv, &[], &short, 12).unwrap(),
            [0, 0, 0]
        );
        assert!(aes_gcm_encrypt(&key, &[0u8; 8], &[], b"x", 16).is_none());
        assert!(aes_gcm_decrypt(&key, &iv, &[], &[1, 2], 16).is_none());
    }
}
