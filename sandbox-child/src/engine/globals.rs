//! The host global of `cs-js` (contract §6): `cs`, and the log plumbing `console` shares
//! (`console` itself, with Node's formatting, is `engine/console.rs`).
//!
//! The context is built without QuickJS's libc helpers (no `std`/`os`, `print`, timers) and
//! without the non-ECMAScript intrinsics (see `engine::new_context`); this file adds `cs` (the
//! Web platform globals are `engine/web/`, pure computation). Every side effect leaves through
//! [`Host`]: logs
//! as [`LogLine`]s, and `cs.kv` / `cs.codeq` / `cs.http` as [`HostOp`]s that the supervisor
//! checks against the manifest's capabilities and performs. The calls are synchronous — the
//! guest gets a value back, not a promise — because the child blocks on the pipe anyway, and a
//! synchronous API leaves nothing pending when the handler returns.
//!
//! Errors are thrown into JavaScript so the guest can catch them: a failed host call is an
//! `Error` whose message is exactly the host's message (capability denials keep their
//! `CS_RUNTIME_CAPABILITY_DENIED:` prefix), a bad argument is a `TypeError` naming the function.

use super::strings::{lossy, CoercedLossy, Lossy};
use super::Host;
use rquickjs::function::Rest;
use rquickjs::{ArrayBuffer, Ctx, Exception, Function, Object, Result, TypedArray, Value};
use sandbox_proto::protocol::{HostError, HostOp, HostValue, LogLevel, LogLine};
use std::cell::RefCell;
use std::rc::Rc;

/// Log accounting for one activation.
#[derive(Debug, Default)]
pub struct LogBudget {
    /// Bytes allowed (`max_log_bytes`).
    pub max: usize,
    /// Bytes used so far, each line counted with its newline.
    pub used: usize,
    /// A line was dropped because the budget was spent; every later line is dropped too.
    pub truncated: bool,
    /// While a module is being loaded there is no activation to log to: lines are kept here
    /// and handed to the first activation (the one that paid for the cold start).
    pub buffer: Option<Vec<LogLine>>,
}

impl LogBudget {
    /// Charges `line` against the budget. Returns whether it may be emitted.
    pub fn admit(&mut self, line: &LogLine) -> bool {
        if self.truncated {
            return false;
        }
        let cost = line.line.len() + 1;
        if self.used + cost > self.max {
            self.truncated = true;
            return false;
        }
        self.used += cost;
        true
    }
}

/// State the JavaScript-facing functions share with the engine.
pub struct Shared {
    pub host: RefCell<Box<dyn Host>>,
    pub logs: RefCell<LogBudget>,
    /// Timers and asynchronous host calls.
    pub event_loop: super::event_loop::EventLoop,
    /// When the engine was created: the origin of `Event.timeStamp`.
    pub started: std::time::Instant,
    /// The bundle's files (for error messages that quote the source).
    pub files: super::loader::Files,
}

impl Shared {
    /// Emits one line now (or buffers it while loading), within the budget.
    pub fn log(&self, level: LogLevel, text: &str) {
        let line = LogLine {
            level,
            line: format!(
                "[{}] {}",
                level.as_str(),
                sandbox_proto::messages::one_line(text)
            ),
        };
        let mut logs = self.logs.borrow_mut();
        if !logs.admit(&line) {
            return;
        }
        if let Some(buf) = logs.buffer.as_mut() {
            buf.push(line);
            return;
        }
        drop(logs);
        if let Ok(mut host) = self.host.try_borrow_mut() {
            host.log(line);
        }
    }

    fn call(&self, op: HostOp) -> std::result::Result<HostValue, HostError> {
        match self.host.try_borrow_mut() {
            Ok(mut host) => host.call(op),
            Err(_) => Err(HostError::failed(
                "host call made while another host call is in progress",
            )),
        }
    }
}

/// Defines `cs` on the global object.
pub fn install<'js>(ctx: &Ctx<'js>, shared: &Rc<Shared>) -> Result<()> {
    let globals = ctx.globals();

    let cs = Object::new(ctx.clone())?;

    let log = Object::new(ctx.clone())?;
    for (name, level) in [
        ("info", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        let sh = shared.clone();
        let f = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            let v = first(&ctx, args);
            let text = log_text(&ctx, v)?;
            sh.log(level, &text);
            Ok::<_, rquickjs::Error>(())
        })?
        .with_name(name)?;
        log.set(name, f)?;
    }
    cs.set("log", log)?;

    let kv = Object::new(ctx.clone())?;
    let sh = shared.clone();
    kv.set(
        "get",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            let mut a = args.0.into_iter();
            let key = string_arg(&ctx, a.next(), "cs.kv.get", "key")?;
            match sh.call(HostOp::KvGet { key }) {
                Ok(HostValue::Kv(Some(json))) => parse_stored(&ctx, json),
                Ok(HostValue::Kv(None)) => Ok(Value::new_null(ctx.clone())),
                Ok(other) => Err(unexpected(&ctx, "cs.kv.get", &other)),
                Err(e) => Err(host_error(&ctx, e)),
            }
        })?
        .with_name("get")?,
    )?;
    let sh = shared.clone();
    kv.set(
        "set",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            let mut a = args.0.into_iter();
            let key = string_arg(&ctx, a.next(), "cs.kv.set", "key")?;
            let value = a
                .next()
                .unwrap_or_else(|| Value::new_undefined(ctx.clone()));
            if value.is_undefined() {
                return Err(Exception::throw_type(
                    &ctx,
                    "cs.kv.set: value must not be undefined (use cs.kv.del to remove a key)",
                ));
            }
            let value_json = json_arg(&ctx, value, "cs.kv.set", "value")?;
            let opts = options(&ctx, a.next(), "cs.kv.set")?;
            let ttl_seconds = match &opts {
                Some(o) => opt_u64(&ctx, o, "ttlSeconds", "cs.kv.set")?,
                None => None,
            };
            done(
                &ctx,
                "cs.kv.set",
                sh.call(HostOp::KvSet {
                    key,
                    value_json,
                    ttl_seconds,
                }),
            )
        })?
        .with_name("set")?,
    )?;
    let sh = shared.clone();
    kv.set(
        "del",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            let key = string_arg(&ctx, args.0.into_iter().next(), "cs.kv.del", "key")?;
            done(&ctx, "cs.kv.del", sh.call(HostOp::KvDel { key }))
        })?
        .with_name("del")?,
    )?;
    cs.set("kv", kv)?;

    let codeq = Object::new(ctx.clone())?;
    let sh = shared.clone();
    codeq.set(
        "publish",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            let mut a = args.0.into_iter();
            let topic = string_arg(&ctx, a.next(), "cs.codeq.publish", "topic")?;
            // A missing payload is published as `null` rather than refused: a bare
            // notification ("something happened") is a legitimate message.
            let payload = a.next().unwrap_or_else(|| Value::new_null(ctx.clone()));
            let payload_json = if payload.is_undefined() {
                "null".to_string()
            } else {
                json_arg(&ctx, payload, "cs.codeq.publish", "payload")?
            };
            done(
                &ctx,
                "cs.codeq.publish",
                sh.call(HostOp::CodeqPublish {
                    topic,
                    payload_json,
                }),
            )
        })?
        .with_name("publish")?,
    )?;
    cs.set("codeq", codeq)?;

    let http = Object::new(ctx.clone())?;
    let sh = shared.clone();
    http.set(
        "fetch",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            let mut a = args.0.into_iter();
            let url = string_arg(&ctx, a.next(), "cs.http.fetch", "url")?;
            let op = fetch_op(&ctx, url, a.next())?;
            match sh.call(op) {
                Ok(HostValue::Http {
                    status,
                    headers,
                    body,
                }) => {
                    let res = Object::new(ctx.clone())?;
                    res.set("status", status)?;
                    let h = Object::new(ctx.clone())?;
                    for (k, v) in headers {
                        let k = k.to_ascii_lowercase();
                        // Repeated headers are joined as HTTP allows for list-valued fields.
                        let joined = match h.get::<_, Option<String>>(k.as_str())? {
                            Some(prev) => format!("{prev}, {v}"),
                            None => v,
                        };
                        h.set(k, joined)?;
                    }
                    res.set("headers", h)?;
                    res.set("body", base64(&body))?;
                    res.set("isBase64Encoded", true)?;
                    Ok(res.into_value())
                }
                Ok(other) => Err(unexpected(&ctx, "cs.http.fetch", &other)),
                Err(e) => Err(host_error(&ctx, e)),
            }
        })?
        .with_name("fetch")?,
    )?;
    cs.set("http", http)?;

    let cadence = Object::new(ctx.clone())?;
    let sh = shared.clone();
    cadence.set(
        "heartbeat",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>| {
            done(
                &ctx,
                "cs.cadence.heartbeat",
                sh.call(HostOp::CadenceHeartbeat),
            )
        })?
        .with_name("heartbeat")?,
    )?;
    cs.set("cadence", cadence)?;

    let secrets = Object::new(ctx.clone())?;
    let sh = shared.clone();
    secrets.set(
        "get",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            let name = string_arg(&ctx, args.0.into_iter().next(), "cs.secrets.get", "name")?;
            match sh.call(HostOp::SecretGet { name }) {
                Ok(HostValue::Text(v)) => {
                    rquickjs::String::from_str(ctx.clone(), &v).map(|s| s.into_value())
                }
                Ok(other) => Err(unexpected(&ctx, "cs.secrets.get", &other)),
                Err(e) => Err(host_error(&ctx, e)),
            }
        })?
        .with_name("get")?,
    )?;
    cs.set("secrets", secrets)?;

    globals.set("cs", cs)?;
    #[cfg(feature = "escape-tests")]
    install_escape(ctx)?;
    Ok(())
}

/// Test build only (`--features escape-tests`, never in release artefacts): `__csEscape(op)`
/// runs [`crate::confine::escape::try_forbidden`] natively in the child and returns its
/// one-line report, so a function running in a real, confined pool child can attempt the
/// forbidden operations of [`crate::confine::escape::ESCAPE_OPS`] (and `alloc:<MiB>`,
/// `kill:<pid>`). Under seccomp a forbidden op does not return: the child dies in its SIGSYS
/// reporter.
///
/// `__csEscape.ops` lists [`crate::confine::escape::ESCAPE_OPS`] as `{op, syscall}` objects,
/// so a test outside this crate (which is built without the feature) takes the list from the
/// very binary it tests.
#[cfg(feature = "escape-tests")]
fn install_escape<'js>(ctx: &Ctx<'js>) -> Result<()> {
    use crate::confine::escape::{try_forbidden, ESCAPE_OPS};
    let f = Function::new(ctx.clone(), |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
        let op = string_arg(&ctx, args.0.into_iter().next(), "__csEscape", "op")?;
        Ok::<_, rquickjs::Error>(try_forbidden(&op))
    })?
    .with_name("__csEscape")?;
    let ops = rquickjs::Array::new(ctx.clone())?;
    for (i, e) in ESCAPE_OPS.iter().enumerate() {
        let o = Object::new(ctx.clone())?;
        o.set("op", e.op)?;
        o.set("syscall", e.syscall)?;
        ops.set(i, o)?;
    }
    f.set("ops", ops)?;
    ctx.globals().set("__csEscape", f)
}

fn first<'js>(ctx: &Ctx<'js>, args: Rest<Value<'js>>) -> Value<'js> {
    args.0
        .into_iter()
        .next()
        .unwrap_or_else(|| Value::new_undefined(ctx.clone()))
}

/// The text of one `cs.log.*` value: strings as they are, everything else as JSON, falling back
/// to `String(v)` for what JSON cannot express (`undefined`, functions, BigInt, cycles).
pub fn log_text<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> Result<String> {
    if let Some(s) = v.as_string() {
        return lossy(s);
    }
    if v.is_undefined() {
        return Ok("undefined".into());
    }
    match ctx.json_stringify(v.clone()) {
        Ok(Some(s)) => return lossy(&s),
        Ok(None) => {}
        Err(rquickjs::Error::Exception) => {
            let e = ctx.catch();
            // The interrupt (deadline / memory limit) must keep unwinding, not turn into a
            // fallback text.
            if e.is_uncatchable_error() {
                return Err(ctx.throw(e));
            }
        }
        Err(e) => return Err(e),
    }
    match v.get::<CoercedLossy>() {
        Ok(CoercedLossy(s)) => Ok(s),
        Err(rquickjs::Error::Exception) => {
            let e = ctx.catch();
            if e.is_uncatchable_error() {
                return Err(ctx.throw(e));
            }
            Ok("[unprintable value]".into())
        }
        Err(e) => Err(e),
    }
}

fn string_arg<'js>(
    ctx: &Ctx<'js>,
    v: Option<Value<'js>>,
    func: &str,
    what: &str,
) -> Result<String> {
    match v.as_ref().and_then(|v| v.as_string()) {
        Some(s) => lossy(s),
        None => Err(Exception::throw_type(
            ctx,
            &format!("{func}: {what} must be a string"),
        )),
    }
}

/// JSON text of `v`, or a TypeError naming the function when it has none.
fn json_arg<'js>(ctx: &Ctx<'js>, v: Value<'js>, func: &str, what: &str) -> Result<String> {
    match ctx.json_stringify(v) {
        Ok(Some(s)) => lossy(&s),
        Ok(None) => Err(Exception::throw_type(
            ctx,
            &format!("{func}: {what} is not JSON-serialisable"),
        )),
        Err(e) => Err(e),
    }
}

/// An optional options object: `undefined`/`null` → none, an object → it, else a TypeError.
fn options<'js>(ctx: &Ctx<'js>, v: Option<Value<'js>>, func: &str) -> Result<Option<Object<'js>>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_undefined() || v.is_null() => Ok(None),
        Some(v) => match v.into_object() {
            Some(o) => Ok(Some(o)),
            None => Err(Exception::throw_type(
                ctx,
                &format!("{func}: options must be an object"),
            )),
        },
    }
}

/// An optional non-negative integer option.
fn opt_u64<'js>(ctx: &Ctx<'js>, o: &Object<'js>, key: &str, func: &str) -> Result<Option<u64>> {
    let v: Value = o.get(key)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_number() {
        Some(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= 9.0e15 => {
            Ok(Some(n as u64))
        }
        _ => Err(Exception::throw_type(
            ctx,
            &format!("{func}: {key} must be a non-negative integer"),
        )),
    }
}

fn fetch_op<'js>(ctx: &Ctx<'js>, url: String, opts: Option<Value<'js>>) -> Result<HostOp> {
    const F: &str = "cs.http.fetch";
    let mut op_method = "GET".to_string();
    let mut op_headers = Vec::new();
    let mut op_body = None;
    let mut op_timeout = None;
    if let Some(o) = options(ctx, opts, F)? {
        let m: Value = o.get("method")?;
        if !m.is_undefined() && !m.is_null() {
            op_method = string_arg(ctx, Some(m), F, "method")?;
        }
        let h: Value = o.get("headers")?;
        if !h.is_undefined() && !h.is_null() {
            let Some(h) = h.into_object().filter(|h| !h.is_array()) else {
                return Err(Exception::throw_type(
                    ctx,
                    &format!("{F}: headers must be an object of strings"),
                ));
            };
            for prop in h.props::<Lossy, Value>() {
                let (Lossy(k), v) = prop?;
                let v = string_arg(ctx, Some(v), F, &format!("header '{k}'"))?;
                op_headers.push((k, v));
            }
        }
        let b: Value = o.get("body")?;
        op_body = body_bytes(ctx, b)?;
        op_timeout = opt_u64(ctx, &o, "timeoutMs", F)?;
    }
    Ok(HostOp::HttpFetch {
        url,
        method: op_method,
        headers: op_headers,
        body: op_body,
        timeout_ms: op_timeout,
    })
}

/// A request body: a string (sent as UTF-8), an `ArrayBuffer` or a `Uint8Array`.
fn body_bytes<'js>(ctx: &Ctx<'js>, b: Value<'js>) -> Result<Option<Vec<u8>>> {
    if b.is_undefined() || b.is_null() {
        return Ok(None);
    }
    if let Some(s) = b.as_string() {
        return Ok(Some(lossy(s)?.into_bytes()));
    }
    if let Some(buf) = ArrayBuffer::from_value(b.clone()) {
        // SAFETY: the bytes are copied out at once, before any JavaScript can run and
        // detach or resize the buffer.
        if let Some(bytes) = unsafe { buf.as_bytes() } {
            return Ok(Some(bytes.to_vec()));
        }
    }
    if let Ok(arr) = TypedArray::<u8>::from_value(b) {
        // SAFETY: as above, copied before any JavaScript runs.
        if let Some(bytes) = unsafe { arr.as_bytes() } {
            return Ok(Some(bytes.to_vec()));
        }
    }
    Err(Exception::throw_type(
        ctx,
        "cs.http.fetch: body must be a string, an ArrayBuffer or a Uint8Array",
    ))
}

/// Stored values are JSON; one that is not (written by something else) comes back as text.
fn parse_stored<'js>(ctx: &Ctx<'js>, json: String) -> Result<Value<'js>> {
    match ctx.json_parse(json.clone()) {
        Ok(v) => Ok(v),
        Err(rquickjs::Error::Exception) => {
            let e = ctx.catch();
            if e.is_uncatchable_error() {
                return Err(ctx.throw(e));
            }
            rquickjs::String::from_str(ctx.clone(), &json).map(|s| s.into_value())
        }
        Err(_) => rquickjs::String::from_str(ctx.clone(), &json).map(|s| s.into_value()),
    }
}

fn done<'js>(
    ctx: &Ctx<'js>,
    func: &str,
    r: std::result::Result<HostValue, HostError>,
) -> Result<Value<'js>> {
    match r {
        Ok(HostValue::Done) => Ok(Value::new_undefined(ctx.clone())),
        Ok(other) => Err(unexpected(ctx, func, &other)),
        Err(e) => Err(host_error(ctx, e)),
    }
}

fn host_error(ctx: &Ctx<'_>, e: HostError) -> rquickjs::Error {
    Exception::throw_message(ctx, &e.message)
}

fn unexpected(ctx: &Ctx<'_>, func: &str, v: &HostValue) -> rquickjs::Error {
    let kind = match v {
        HostValue::Kv(_) => "kv",
        HostValue::Done => "done",
        HostValue::Http { .. } => "http",
        HostValue::Text(_) => "text",
    };
    Exception::throw_message(
        ctx,
        &format!("{func}: unexpected '{kind}' reply from the host"),
    )
}

/// Standard base64 with padding (RFC 4648 §4), for `cs.http.fetch` response bodies.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    /// A host for engine tests that never expect a host call.
    struct NoHost;

    impl Host for NoHost {
        fn call(&mut self, _op: HostOp) -> std::result::Result<HostValue, HostError> {
            Err(HostError::failed("no host in this test"))
        }
        fn log(&mut self, _line: LogLine) {}
    }

    /// Evaluates `src` as a script in a fresh engine's context.
    fn eval(src: &str) -> String {
        let engine = super::super::Engine::new(Box::new(NoHost)).unwrap();
        engine
            .context
            .with(|ctx| ctx.eval::<String, _>(src))
            .unwrap()
    }

    #[cfg(feature = "escape-tests")]
    #[test]
    fn the_escape_build_has_cs_escape() {
        assert_eq!(eval("typeof __csEscape"), "function");
        assert_eq!(
            eval("JSON.stringify(__csEscape.ops[0])"),
            format!(
                r#"{{"op":"{}","syscall":"{}"}}"#,
                crate::confine::escape::ESCAPE_OPS[0].op,
                crate::confine::escape::ESCAPE_OPS[0].syscall
            )
        );
        assert_eq!(
            eval("String(__csEscape.ops.length)"),
            crate::confine::escape::ESCAPE_OPS.len().to_string()
        );
        // Only an unknown op is tried here: the real ones belong in a confined child.
        assert_eq!(
            eval("__csEscape('no-such-op')"),
            "no-such-op: error: unknown op \"no-such-op\""
        );
        assert_eq!(
            eval("try { __csEscape(1); 'no error' } catch (e) { e.name + ': ' + e.message }"),
            "TypeError: __csEscape: op must be a string"
        );
    }

    #[cfg(not(feature = "escape-tests"))]
    #[test]
    fn a_normal_build_has_no_cs_escape() {
        assert_eq!(eval("typeof __csEscape"), "undefined");
    }
}
