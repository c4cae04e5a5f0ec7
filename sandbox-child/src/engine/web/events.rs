//! `Event`, `CustomEvent`, `EventTarget`, `AbortController` and `AbortSignal` (with
//! `AbortSignal.timeout` and `AbortSignal.any`): JavaScript glue (`events.js`) over three
//! natives — the runtime's own timers for `AbortSignal.timeout` (unref'd: like Node's, they
//! keep nothing alive and are not reported as left pending), a monotonic clock for
//! `Event.timeStamp`, and `uncaught(err)` for a listener that throws (which in Node ends the
//! process; here it fails the activation with that exception).

use crate::engine::event_loop::delay_of;
use crate::engine::{shared_of, Shared};
use rquickjs::convert::Coerced;
use rquickjs::{Ctx, Function, Object, Result, Value};
use std::rc::Rc;
use std::time::Instant;

const GLUE: &str = include_str!("events.js");

pub fn build<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let shared: Rc<Shared> = shared_of(ctx)?;
    let n = Object::new(ctx.clone())?;
    let sh = shared.clone();
    n.set(
        "setTimer",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, cb: Function<'js>, ms: Coerced<f64>| -> u32 {
                sh.event_loop
                    .add_timer(&ctx, cb, Vec::new(), delay_of(ms.0.max(1.0)), false, true)
            },
        )?,
    )?;
    let sh = shared.clone();
    n.set(
        "clearTimer",
        Function::new(ctx.clone(), move |id: u32| sh.event_loop.clear_timer(id))?,
    )?;
    let sh = shared.clone();
    n.set(
        "uncaught",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, err: Value<'js>| {
            sh.event_loop.report_uncaught(&ctx, err)
        })?,
    )?;
    let origin = shared.started;
    n.set(
        "now",
        Function::new(ctx.clone(), move || -> f64 {
            Instant::now().duration_since(origin).as_secs_f64() * 1e3
        })?,
    )?;
    // The runtime's own DOMException, not whatever `globalThis.DOMException` is by now.
    let dom = super::exports(ctx, "dom_exception")?;
    n.set("DOMException", dom.get::<_, Value>("DOMException")?)?;
    super::glue(ctx, "events.js", GLUE, n)
}
