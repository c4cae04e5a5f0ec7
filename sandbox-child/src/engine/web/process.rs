//! `process`, the Node habit: `process.env` is the version's `config.env` (Sous
//! `VersionConfig.env`, `{}` when the version has none; `cs-invoker-pool run --env K=V` for a
//! local run), set before the module's top-level code runs; `process.nextTick(fn, ...args)` is a
//! microtask. Nothing else of Node's `process` is there — notably no `process.versions.node`,
//! which libraries read to decide they run on Node and may `require('fs')`.

use rquickjs::function::Rest;
use rquickjs::{Ctx, Function, Object, Result, Value};

pub fn install<'js>(ctx: &Ctx<'js>) -> Result<()> {
    let process = Object::new(ctx.clone())?;
    process.set("env", Object::new(ctx.clone())?)?;
    let next_tick = Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>, f: Function<'js>, args: Rest<Value<'js>>| -> Result<()> {
            let queue: Function = ctx.globals().get("queueMicrotask")?;
            let bind: Function = f.get("bind")?;
            let mut all = vec![Value::new_undefined(ctx.clone())];
            all.extend(args.0);
            let job: Value = bind.call((rquickjs::function::This(f), Rest(all)))?;
            queue.call::<_, ()>((job,))
        },
    )?
    .with_name("nextTick")?;
    process.set("nextTick", next_tick)?;
    process.set("argv", rquickjs::Array::new(ctx.clone())?)?;
    ctx.globals().set("process", process)
}

/// Sets `process.env` to a fresh object holding `env` (string values, in the given order).
pub fn set_env<'js>(ctx: &Ctx<'js>, env: &[(String, String)]) -> Result<Object<'js>> {
    let obj = Object::new(ctx.clone())?;
    for (k, v) in env {
        obj.set(k.as_str(), v.as_str())?;
    }
    if let Ok(process) = ctx.globals().get::<_, Object>("process") {
        process.set("env", obj.clone())?;
    }
    Ok(obj)
}
