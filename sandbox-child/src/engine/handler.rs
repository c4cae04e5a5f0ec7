//! Which function of a loaded module is the handler: the shapes that functions written for
//! Sous, Node, AWS Lambda and Cloudflare Workers take, in this order —
//!
//! 1. `export default function (event, ctx)` (Sous);
//! 2. `export const handler = async (event, context) => …` (Lambda);
//! 3. `export default { fetch(request, env, ctx) }` (Workers): wrapped by the `fetch` group's
//!    adapter, which turns an `http` trigger's event into a `Request` and the `Response` into the
//!    result object;
//! 4. CommonJS, which the Go reference accepts: `exports.default = fn`, `module.exports = fn`,
//!    `module.exports = { handler }`, `exports.handler = fn`, and the Workers object under
//!    `module.exports`/`exports.default`. For this, `module` and `exports` exist as globals while
//!    the module's top-level code runs (a CommonJS file is plain script code that assigns them;
//!    evaluated as a module it sees them as globals). They stay only when the module turned out
//!    to be CommonJS, since its functions may read `exports.x` later (TypeScript's output does).
//!
//! A module with none of these shapes is refused with a message that names the exports it has
//! (an `Exception`, not a `ValidationError`, which is for bad return values).

use super::web;
use rquickjs::{Ctx, Function, Object, Persistent, Result, Value};

/// The CommonJS globals set up before the module runs.
pub struct CommonJs<'js> {
    module: Object<'js>,
}

/// Defines `module` (with `exports`) and `exports` on the global object.
pub fn prepare<'js>(ctx: &Ctx<'js>) -> Result<CommonJs<'js>> {
    let module = Object::new(ctx.clone())?;
    let exports = Object::new(ctx.clone())?;
    module.set("exports", exports.clone())?;
    let g = ctx.globals();
    g.set("module", module.clone())?;
    g.set("exports", exports)?;
    Ok(CommonJs { module })
}

/// What the module is, once evaluated.
pub enum Found<'js> {
    Handler(Function<'js>),
    /// None of the shapes; the text names what the module exports.
    Nothing(String),
}

/// Finds the handler among the ES exports (`ns`, the module namespace) and, failing that, the
/// CommonJS ones. `env` is `process.env`, handed to a Workers `fetch` as its `env`.
pub fn find<'js>(
    ctx: &Ctx<'js>,
    ns: &Object<'js>,
    cjs: CommonJs<'js>,
    env: &Object<'js>,
) -> Result<Found<'js>> {
    let g = ctx.globals();
    let default: Value = ns.get("default")?;
    let named: Value = ns.get("handler")?;
    let esm = if let Some(f) = default.as_function() {
        Some(f.clone())
    } else if let Some(f) = named.as_function() {
        Some(f.clone())
    } else if has_fetch(&default)? {
        Some(workers(ctx, &default, env)?)
    } else {
        None
    };
    if let Some(f) = esm {
        // An ES module: the CommonJS globals go, unless the module replaced them itself.
        for name in ["module", "exports"] {
            let v: Value = g.get(name)?;
            let ours = match name {
                "module" => v.as_object() == Some(&cjs.module),
                _ => {
                    let e: Value = cjs.module.get("exports")?;
                    v == e
                }
            };
            if ours {
                g.remove(name)?;
            }
        }
        return Ok(Found::Handler(f));
    }

    let exported: Value = cjs.module.get("exports")?;
    let candidates: [Value; 3] = [
        exported.clone(),
        member(&exported, "default")?,
        member(&exported, "handler")?,
    ];
    for c in &candidates {
        if let Some(f) = c.as_function() {
            return Ok(Found::Handler(f.clone()));
        }
    }
    for c in [&candidates[1], &candidates[0]] {
        if has_fetch(c)? {
            return Ok(Found::Handler(workers(ctx, c, env)?));
        }
    }

    // Nothing: say what there is.
    let mut names = Vec::new();
    for k in ns.keys::<String>() {
        let k = k?;
        let v: Value = ns.get(k.as_str())?;
        names.push(format!("{k} ({})", kind(&v)));
    }
    if let Some(o) = exported.as_object() {
        for k in o.keys::<String>() {
            let k = k?;
            let v: Value = o.get(k.as_str())?;
            names.push(format!("exports.{k} ({})", kind(&v)));
        }
    }
    let found = if names.is_empty() {
        "it exports nothing".to_string()
    } else {
        format!("it exports: {}", names.join(", "))
    };
    Ok(Found::Nothing(found))
}

fn member<'js>(v: &Value<'js>, key: &str) -> Result<Value<'js>> {
    match v.as_object() {
        Some(o) => o.get(key),
        None => Ok(Value::new_undefined(v.ctx().clone())),
    }
}

fn has_fetch(v: &Value<'_>) -> Result<bool> {
    match v.as_object() {
        Some(o) if !v.is_function() => Ok(o.get::<_, Value>("fetch")?.is_function()),
        _ => Ok(false),
    }
}

fn workers<'js>(ctx: &Ctx<'js>, worker: &Value<'js>, env: &Object<'js>) -> Result<Function<'js>> {
    let fetch = web::exports(ctx, "fetch")?;
    let adapt: Function = fetch.get("workersHandler")?;
    adapt.call((worker.clone(), env.clone()))
}

fn kind(v: &Value<'_>) -> &'static str {
    if v.is_function() {
        "a function"
    } else if v.is_array() {
        "an array"
    } else if v.is_object() {
        "an object"
    } else if v.is_string() {
        "a string"
    } else if v.is_number() {
        "a number"
    } else if v.is_bool() {
        "a boolean"
    } else if v.is_null() {
        "null"
    } else if v.is_undefined() {
        "undefined"
    } else {
        "a value"
    }
}

/// The message for a module without a handler.
pub fn missing(entry: &str, found: &str) -> String {
    format!(
        "TypeError: '{entry}' has no handler: export one of `export default async function \
         (event, ctx)`, `export const handler = async (event, context) => …` (Lambda), \
         `export default {{ async fetch(request, env, ctx) }}` (Workers), or CommonJS \
         `module.exports = fn` / `exports.handler = fn`; {found}"
    )
}

/// Keeps the handler across invocations.
pub fn save<'js>(ctx: &Ctx<'js>, f: Function<'js>) -> Persistent<Function<'static>> {
    Persistent::save(ctx, f)
}
