//! `setTimeout`, `setInterval`, `clearTimeout`, `clearInterval` on the child's
//! [`EventLoop`](crate::engine::event_loop::EventLoop), with Node's argument rules: the callback
//! must be a function (a string is not evaluated), the delay is coerced to a number and any
//! value outside 1..=2³¹−1 (or NaN) becomes 1 ms, extra arguments are passed to the callback.
//! The returned id is a number (as in browsers, Deno and Workers; Node returns a `Timeout`
//! object). `queueMicrotask` is QuickJS's own.

use crate::engine::event_loop::delay_of;
use crate::engine::{shared_of, Shared};
use rquickjs::convert::Coerced;
use rquickjs::function::Rest;
use rquickjs::{Ctx, Exception, Function, Result, Value};
use std::rc::Rc;

pub fn install<'js>(ctx: &Ctx<'js>) -> Result<()> {
    let shared: Rc<Shared> = shared_of(ctx)?;
    let globals = ctx.globals();
    for (name, repeat) in [("setTimeout", false), ("setInterval", true)] {
        let sh = shared.clone();
        let f = Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, args: Rest<Value<'js>>| -> Result<u32> {
                let mut args = args.0.into_iter();
                let cb = args.next().and_then(|v| v.into_function()).ok_or_else(|| {
                    Exception::throw_type(
                        &ctx,
                        &format!("{name}: the \"callback\" argument must be of type function"),
                    )
                })?;
                let delay = match args.next() {
                    Some(v) if !v.is_undefined() => v.get::<Coerced<f64>>()?.0,
                    _ => 0.0,
                };
                let rest: Vec<Value> = args.collect();
                Ok(sh
                    .event_loop
                    .add_timer(&ctx, cb, rest, delay_of(delay), repeat, false))
            },
        )?
        .with_name(name)?;
        globals.set(name, f)?;
    }
    for name in ["clearTimeout", "clearInterval"] {
        let sh = shared.clone();
        let f = Function::new(ctx.clone(), move |id: Value<'js>| {
            if let Some(id) = timer_id(&id) {
                sh.event_loop.clear_timer(id);
            }
        })?
        .with_name(name)?;
        globals.set(name, f)?;
    }
    Ok(())
}

/// The id a clear function was given: a number (or a numeric string, as browsers accept),
/// anything else is ignored like Node ignores it.
fn timer_id(v: &Value<'_>) -> Option<u32> {
    let n = if let Some(n) = v.as_number() {
        n
    } else if let Some(s) = v.as_string() {
        s.to_string().ok()?.trim().parse::<f64>().ok()?
    } else {
        return None;
    };
    (n.fract() == 0.0 && n >= 1.0 && n <= f64::from(u32::MAX)).then_some(n as u32)
}
