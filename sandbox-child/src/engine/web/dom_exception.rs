//! `DOMException`, which the Web APIs throw (`atob`'s `InvalidCharacterError`,
//! `structuredClone`'s `DataCloneError`, Web Crypto's `NotSupportedError`/`OperationError`) and
//! function code tests for (`e.name === 'AbortError'`). Pure JavaScript (`dom_exception.js`).

use rquickjs::{Ctx, Object, Result};

const GLUE: &str = include_str!("dom_exception.js");

pub fn build<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    super::glue(ctx, "dom_exception.js", GLUE, Object::new(ctx.clone())?)
}
