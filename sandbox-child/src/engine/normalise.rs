//! Turning a handler's return value into the contract §6 result object.
//!
//! Done in Rust on the live JavaScript value, not on `JSON.stringify(result)`, so that a bad
//! shape is reported precisely (`statusCode must be an integer in 100..599, got "200"`) and so
//! that a body that is not a string is serialised exactly once. Reading the properties may run
//! guest getters; that happens while the activation's deadline is still armed.

use super::strings::{lossy, CoercedLossy, Lossy};
use rquickjs::{Ctx, Object, Value};
use sandbox_proto::messages::HttpResult;
use std::collections::BTreeMap;

/// Why a return value could not be normalised.
#[derive(Debug)]
pub enum NormaliseError {
    /// The value has the wrong shape: a `ValidationError`.
    Invalid(String),
    /// JavaScript threw while it was read (a getter, `toJSON`): handled as the handler's
    /// exception, still pending on the context.
    Js(rquickjs::Error),
}

impl From<rquickjs::Error> for NormaliseError {
    fn from(e: rquickjs::Error) -> Self {
        NormaliseError::Js(e)
    }
}

type R<T> = Result<T, NormaliseError>;

/// Normalises `v`:
/// - `undefined` / `null` → `{statusCode: 200}`;
/// - a plain object (not an array, not a function) → its `statusCode` (default 200, an
///   integer in 100..=599), `headers` (object of strings), `body` (a string as is, anything
///   else `JSON.stringify`'d) and `isBase64Encoded` (boolean, default false); other keys are
///   ignored;
/// - any other value → `{statusCode: 200, body: JSON.stringify(value)}`.
pub fn normalise<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> R<HttpResult> {
    let mut out = HttpResult {
        status_code: 200,
        headers: BTreeMap::new(),
        body: String::new(),
        is_base64_encoded: false,
    };
    if v.is_undefined() || v.is_null() {
        return Ok(out);
    }
    let obj = match v.as_object() {
        Some(o) if !v.is_array() && !v.is_function() => o.clone(),
        _ => {
            out.body = json_of(ctx, v, "the return value")?;
            return Ok(out);
        }
    };

    let sc: Value = obj.get("statusCode")?;
    if !sc.is_undefined() {
        out.status_code = match sc.as_number() {
            Some(n) if n.fract() == 0.0 && (100.0..=599.0).contains(&n) => n as u16,
            _ => {
                return Err(NormaliseError::Invalid(format!(
                    "statusCode must be an integer in 100..599, got {}",
                    describe(ctx, sc)
                )))
            }
        };
    }

    let h: Value = obj.get("headers")?;
    if !h.is_undefined() && !h.is_null() {
        out.headers = headers(ctx, h)?;
    }

    let b: Value = obj.get("body")?;
    if !b.is_undefined() && !b.is_null() {
        out.body = match b.as_string() {
            Some(s) => lossy(s)?,
            None => json_of(ctx, b, "body")?,
        };
    }

    let e: Value = obj.get("isBase64Encoded")?;
    if !e.is_undefined() {
        out.is_base64_encoded = match e.as_bool() {
            Some(x) => x,
            None => {
                return Err(NormaliseError::Invalid(format!(
                    "isBase64Encoded must be a boolean, got {}",
                    describe(ctx, e)
                )))
            }
        };
    }
    Ok(out)
}

fn headers<'js>(ctx: &Ctx<'js>, h: Value<'js>) -> R<BTreeMap<String, String>> {
    let obj: Object = match h.as_object() {
        Some(o) if !h.is_array() && !h.is_function() => o.clone(),
        _ => {
            return Err(NormaliseError::Invalid(format!(
                "headers must be an object of strings, got {}",
                describe(ctx, h)
            )))
        }
    };
    let mut out = BTreeMap::new();
    for prop in obj.props::<Lossy, Value>() {
        let (Lossy(k), v) = prop?;
        match v.as_string() {
            Some(s) => {
                out.insert(k, lossy(s)?);
            }
            None => {
                return Err(NormaliseError::Invalid(format!(
                    "header \"{k}\" must be a string, got {}",
                    describe(ctx, v)
                )))
            }
        }
    }
    Ok(out)
}

/// `JSON.stringify(v)`; a value JSON cannot represent (a function, a symbol) is invalid, and
/// a throw (BigInt, a cycle, a throwing `toJSON`) is the guest's exception.
fn json_of<'js>(ctx: &Ctx<'js>, v: Value<'js>, what: &str) -> R<String> {
    match ctx.json_stringify(v.clone())? {
        Some(s) => Ok(lossy(&s)?),
        None => Err(NormaliseError::Invalid(format!(
            "{what} cannot be serialised as JSON (got {})",
            describe(ctx, v)
        ))),
    }
}

/// A short description of a value for error messages: strings quoted, numbers as JavaScript
/// prints them, objects as (at most 100 bytes of) JSON, otherwise the type.
pub fn describe<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> String {
    if let Some(s) = v.as_string() {
        let s = lossy(s).unwrap_or_default();
        return serde_json::to_string(&s).unwrap_or(s);
    }
    if v.is_undefined() {
        return "undefined".into();
    }
    if v.is_null() {
        return "null".into();
    }
    if v.is_function() {
        return "a function".into();
    }
    if v.is_symbol() {
        return "a symbol".into();
    }
    if v.is_object() {
        let mut text = match ctx.json_stringify(v.clone()) {
            Ok(Some(s)) => lossy(&s).unwrap_or_default(),
            Ok(None) => String::new(),
            Err(_) => {
                // Only a description is wanted: drop whatever was thrown (an interrupt is
                // not lost, the engine reads the deadline and memory flags, not exceptions).
                ctx.catch();
                String::new()
            }
        };
        if text.is_empty() {
            return "an object".into();
        }
        if sandbox_proto::messages::truncate_utf8(&mut text, 100) {
            text.push('…');
        }
        return text;
    }
    match v.get::<CoercedLossy>() {
        Ok(CoercedLossy(s)) => s,
        Err(_) => {
            ctx.catch();
            v.type_name().to_string()
        }
    }
}
