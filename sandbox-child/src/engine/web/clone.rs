//! `structuredClone` (`clone.js`): the HTML structured clone of what a function can hold —
//! primitives, plain objects and arrays (cycles and shared references kept), `Date`, `RegExp`,
//! `Map`, `Set`, `ArrayBuffer` (with `transfer`), typed arrays, `DataView`, errors, boxed
//! primitives — and `DataCloneError` for functions, symbols, promises, weak collections and
//! proxies.

use rquickjs::{Ctx, Object, Result, Value};

const GLUE: &str = include_str!("clone.js");

pub fn build<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let n = super::common_natives(ctx)?;
    let dom = super::exports(ctx, "dom_exception")?;
    n.set("DOMException", dom.get::<_, Value>("DOMException")?)?;
    let enc = super::exports(ctx, "encoding")?;
    n.set("nodeError", enc.get::<_, Value>("nodeError")?)?;
    super::glue(ctx, "clone.js", GLUE, n)
}
