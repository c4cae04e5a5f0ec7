//! `fetch`, `Headers`, `Request`, `Response`: JavaScript glue (`fetch.js`) over the existing
//! `cs.http.fetch` host call, made asynchronous. `fetch()` starts the call on the event loop
//! and returns at once; the supervisor checks the manifest's `allowHosts` and every resolved
//! address and redirect hop exactly as for `cs.http.fetch` (a denial rejects with the
//! `CS_RUNTIME_CAPABILITY_DENIED:` error), performs the request while the child keeps running,
//! and an `AbortSignal` cancels it (the supervisor drops the connection). The glue also holds the
//! adapter for Workers-style modules (`export default { fetch }`).

use crate::engine::{shared_of, Shared};
use rquickjs::{Array, Ctx, Exception, Function, Object, Result, Value};
use sandbox_proto::protocol::HostOp;
use std::rc::Rc;

const GLUE: &str = include_str!("fetch.js");

pub fn build<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let shared: Rc<Shared> = shared_of(ctx)?;
    let n = Object::new(ctx.clone())?;
    let sh = shared.clone();
    n.set(
        "start",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  url: String,
                  method: String,
                  headers: Array<'js>,
                  body: Value<'js>,
                  callback: Function<'js>|
                  -> Result<f64> {
                let mut list = Vec::new();
                for pair in headers.iter::<Array>() {
                    let pair = pair?;
                    list.push((pair.get::<String>(0)?, pair.get::<String>(1)?));
                }
                let body = if body.is_undefined() || body.is_null() {
                    None
                } else {
                    Some(super::bytes_of(&body).ok_or_else(|| {
                        Exception::throw_type(&ctx, "fetch: the body must be bytes")
                    })?)
                };
                let op = HostOp::HttpFetch {
                    url,
                    method,
                    headers: list,
                    body,
                    timeout_ms: None,
                };
                let ticket = sh.event_loop.start_call(&ctx, &sh.host, op, callback);
                Ok(ticket as f64)
            },
        )?,
    )?;
    let sh = shared.clone();
    n.set(
        "cancel",
        Function::new(ctx.clone(), move |ticket: f64| {
            if ticket >= 1.0 {
                sh.event_loop.cancel(&sh.host, ticket as u64);
            }
        })?,
    )?;
    n.set(
        "encode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, s: rquickjs::String<'js>| -> Result<Value<'js>> {
                super::utf8_encode(&ctx, s)
            },
        )?,
    )?;
    n.set(
        "decode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, b: Value<'js>| -> Result<rquickjs::String<'js>> {
                let bytes = super::bytes_of(&b)
                    .ok_or_else(|| Exception::throw_type(&ctx, "decode: expected bytes"))?;
                rquickjs::String::from_str(ctx.clone(), &super::utf8_decode(&bytes))
            },
        )?,
    )?;
    n.set(
        "events",
        Function::new(ctx.clone(), |ctx: Ctx<'js>| -> Result<Object<'js>> {
            super::exports(&ctx, "events")
        })?,
    )?;
    super::glue(ctx, "fetch.js", GLUE, n)
}
