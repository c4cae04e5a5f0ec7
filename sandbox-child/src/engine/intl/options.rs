//! Reading an Intl options bag the way ECMA-402's `GetOption` does: each property read once, in
//! the order the constructor's algorithm reads it (getters run in that order), coerced, and
//! checked against its allowed values with V8's error messages.

use rquickjs::convert::Coerced;
use rquickjs::{Ctx, Exception, Object, Result, Value};

/// An options argument after `CoerceOptionsToObject` / `GetOptionsObject`.
pub struct Options<'js> {
    ctx: Ctx<'js>,
    obj: Option<Object<'js>>,
    /// The name used in range errors: "Intl.NumberFormat", "String.prototype.localeCompare".
    pub owner: &'static str,
}

impl<'js> Options<'js> {
    /// `undefined` → no options; an object → it; `null` → TypeError (as V8: ToObject(null));
    /// any other primitive → its wrapper, which has none of the options (so: none).
    pub fn coerce(ctx: &Ctx<'js>, v: Option<Value<'js>>, owner: &'static str) -> Result<Self> {
        let obj = match v {
            None => None,
            Some(v) if v.is_undefined() => None,
            Some(v) if v.is_null() => {
                return Err(Exception::throw_type(
                    ctx,
                    &format!("{owner} called on null or undefined"),
                ))
            }
            Some(v) => v.into_object(),
        };
        Ok(Options {
            ctx: ctx.clone(),
            obj,
            owner,
        })
    }

    pub fn raw(&self, key: &str) -> Result<Value<'js>> {
        match &self.obj {
            Some(o) => o.get(key),
            None => Ok(Value::new_undefined(self.ctx.clone())),
        }
    }

    /// A string option, `None` when absent; a RangeError when not one of `allowed` (unless
    /// `allowed` is empty).
    pub fn string(&self, key: &str, allowed: &[&str]) -> Result<Option<String>> {
        let v = self.raw(key)?;
        if v.is_undefined() {
            return Ok(None);
        }
        let Coerced(s) = v.get::<Coerced<String>>()?;
        if !allowed.is_empty() && !allowed.contains(&s.as_str()) {
            return Err(self.out_of_range(key, &s));
        }
        Ok(Some(s))
    }

    /// A string option with a default.
    pub fn string_or(&self, key: &str, allowed: &[&str], default: &str) -> Result<String> {
        Ok(self
            .string(key, allowed)?
            .unwrap_or_else(|| default.to_string()))
    }

    /// A boolean option (ToBoolean), `None` when absent.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        let v = self.raw(key)?;
        if v.is_undefined() {
            return Ok(None);
        }
        Ok(Some(truthy(&v)))
    }

    /// `DefaultNumberOption`: absent → `None`; else ToNumber, a RangeError outside
    /// `min..=max` (or NaN), floored.
    pub fn number(&self, key: &str, min: f64, max: f64) -> Result<Option<f64>> {
        let v = self.raw(key)?;
        number_in_range(&self.ctx, v, key, min, max)
    }

    pub fn out_of_range(&self, key: &str, value: &str) -> rquickjs::Error {
        Exception::throw_range(
            &self.ctx,
            &format!(
                "Value {value} out of range for {} options property {key}",
                self.owner
            ),
        )
    }
}

/// `DefaultNumberOption` on a value already read.
pub fn number_in_range<'js>(
    ctx: &Ctx<'js>,
    v: Value<'js>,
    key: &str,
    min: f64,
    max: f64,
) -> Result<Option<f64>> {
    if v.is_undefined() {
        return Ok(None);
    }
    let Coerced(n) = v.get::<Coerced<f64>>()?;
    if n.is_nan() || n < min || n > max {
        return Err(Exception::throw_range(
            ctx,
            &format!("{key} value is out of range."),
        ));
    }
    Ok(Some(n.floor()))
}

/// ECMAScript ToBoolean.
pub fn truthy(v: &Value<'_>) -> bool {
    if let Some(b) = v.as_bool() {
        return b;
    }
    if v.is_undefined() || v.is_null() {
        return false;
    }
    if let Some(n) = v.as_number() {
        return n != 0.0 && !n.is_nan();
    }
    if let Some(s) = v.as_string() {
        return s.to_string().map(|s| !s.is_empty()).unwrap_or(true);
    }
    if v.is_big_int() {
        return v
            .as_big_int()
            .and_then(|b| b.clone().to_i64().ok())
            .map(|i| i != 0)
            .unwrap_or(true);
    }
    true
}
