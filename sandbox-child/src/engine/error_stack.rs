//! `err.stack` as V8 writes it: `Name: message` and then the frames.
//!
//! QuickJS-NG stores only the frames (`    at f (file:line:col)` lines) when an error is built;
//! code written for Node prints or parses `err.stack` expecting its first line to be
//! `TypeError: x` (loggers, `stack.split('\n')[0]`, test matchers). V8 formats the stack lazily,
//! on first read, from the error's *current* `name` and `message` — so
//! `class MyError extends Error { constructor(m) { super(m); this.name = 'MyError' } }` reads
//! `MyError: …` — and then keeps that string as an own data property. We do the same:
//! `Error.prototype.stack`'s getter is wrapped to prefix the header on first read and store the
//! result on the error; `Error.captureStackTrace(target)` (used by many custom error classes)
//! installs the same lazy header on `target`. A guest's own `Error.prepareStackTrace` builds
//! the whole string itself, as in V8, so its result is left alone.

use super::ffi;
use rquickjs::function::{Opt, This};
use rquickjs::object::{Accessor, Property};
use rquickjs::{Ctx, Function, JsLifetime, Object, Persistent, Result, Value};

/// The engine's own `stack` accessor and `captureStackTrace`, which ours call.
///
/// Kept as runtime userdata rather than captured by the Rust closures: a closure's captures
/// are invisible to QuickJS's cycle collector, and every function holds its realm, so a
/// captured function reachable from the global object would be a cycle the collector can never
/// free (QuickJS then aborts in `JS_FreeRuntime`). Userdata is dropped before the runtime is
/// freed, which breaks the cycle.
struct Originals {
    get: Persistent<Function<'static>>,
    set: Persistent<Function<'static>>,
    capture: Persistent<Function<'static>>,
}

// SAFETY: `Originals` holds only `Persistent` values, which carry no `'js` lifetime and are
// restored into the caller's context on use.
unsafe impl<'js> JsLifetime<'js> for Originals {
    type Changed<'to> = Originals;
}

fn original<'js>(
    ctx: &Ctx<'js>,
    which: fn(&Originals) -> &Persistent<Function<'static>>,
) -> Result<Function<'js>> {
    match ctx.userdata::<Originals>() {
        Some(o) => which(&o).clone().restore(ctx),
        None => Err(rquickjs::Exception::throw_internal(
            ctx,
            "the Error originals are missing",
        )),
    }
}

/// Wraps `Error.prototype.stack` and `Error.captureStackTrace`.
pub fn install<'js>(ctx: &Ctx<'js>) -> Result<()> {
    let error: Object = ctx.globals().get("Error")?;
    let proto: Object = error.get("prototype")?;
    let Some(desc) = ffi::own_property_str(ctx, &proto, "stack")? else {
        return Ok(());
    };
    let (Some(get), Some(set)) = (desc.getter, desc.setter) else {
        return Ok(());
    };
    let (Some(get), Some(set)) = (get.into_function(), set.into_function()) else {
        return Ok(());
    };
    let capture: Function = error.get("captureStackTrace")?;
    let _ = ctx.store_userdata(Originals {
        get: Persistent::save(ctx, get),
        set: Persistent::save(ctx, set),
        capture: Persistent::save(ctx, capture),
    });
    let getter = |ctx: Ctx<'js>, this: This<Value<'js>>| -> Result<Value<'js>> {
        let get = original(&ctx, |o| &o.get)?;
        let frames: Value = get.call((This(this.0.clone()),))?;
        let Some(obj) = this.0.as_object() else {
            return Ok(frames);
        };
        if frames.as_string().is_none() || user_prepares_stack(&ctx)? {
            return Ok(frames);
        }
        let frames = super::web::utf8(&ctx, &frames)?;
        materialise(&ctx, obj, &frames)
    };
    let setter = |ctx: Ctx<'js>, this: This<Value<'js>>, v: Value<'js>| -> Result<()> {
        let set = original(&ctx, |o| &o.set)?;
        set.call::<_, Value>((This(this.0), v))?;
        Ok(())
    };
    proto.prop("stack", Accessor::new(getter, setter).configurable())?;

    let wrapped = Function::new(
        ctx.clone(),
        |ctx: Ctx<'js>, target: Value<'js>, filter: Opt<Value<'js>>| -> Result<()> {
            let capture = original(&ctx, |o| &o.capture)?;
            let filter = filter
                .0
                .unwrap_or_else(|| Value::new_undefined(ctx.clone()));
            capture.call::<_, Value>((target.clone(), filter))?;
            let Some(obj) = target.as_object() else {
                return Ok(());
            };
            let frames = match ffi::own_property_str(&ctx, obj, "stack")?.and_then(|d| d.value) {
                Some(v) if v.is_string() => super::web::utf8(&ctx, &v)?,
                _ => return Ok(()),
            };
            if user_prepares_stack(&ctx)? {
                return Ok(());
            }
            lazy_header(obj, frames)
        },
    )?
    .with_name("captureStackTrace")?
    .with_length(2)?;
    error.prop(
        "captureStackTrace",
        Property::from(wrapped).writable().configurable(),
    )
}

/// Whether the guest installed its own `Error.prepareStackTrace` (which then writes the whole
/// stack, header included, as in V8).
fn user_prepares_stack(ctx: &Ctx<'_>) -> Result<bool> {
    let error: Value = ctx.globals().get("Error")?;
    match error.as_object() {
        Some(e) => Ok(e.get::<_, Value>("prepareStackTrace")?.is_function()),
        None => Ok(false),
    }
}

/// `Name: message` as `Error.prototype.toString` computes it (V8 uses the same rule).
fn header(obj: &Object<'_>) -> Result<String> {
    let ctx = obj.ctx();
    let name: Value = obj.get("name")?;
    let name = if name.is_undefined() {
        "Error".to_string()
    } else {
        super::web::utf8(ctx, &name)?
    };
    let message: Value = obj.get("message")?;
    let message = if message.is_undefined() {
        String::new()
    } else {
        super::web::utf8(ctx, &message)?
    };
    Ok(match (name.is_empty(), message.is_empty()) {
        (true, _) => message,
        (false, true) => name,
        (false, false) => format!("{name}: {message}"),
    })
}

/// The full stack of `obj` (header, then the frames without QuickJS's trailing newline), kept
/// as an own data property so later reads (and later `name` changes) see the same string.
fn materialise<'js>(ctx: &Ctx<'js>, obj: &Object<'js>, frames: &str) -> Result<Value<'js>> {
    let head = header(obj)?;
    let frames = frames.trim_end_matches('\n');
    let full = if frames.is_empty() {
        head
    } else {
        format!("{head}\n{frames}")
    };
    let value = rquickjs::String::from_str(ctx.clone(), &full)?.into_value();
    // A frozen or non-extensible error cannot keep it; it is then formatted on each read.
    if obj
        .prop(
            "stack",
            Property::from(value.clone()).writable().configurable(),
        )
        .is_err()
    {
        let e = ctx.catch();
        if e.is_uncatchable_error() {
            return Err(ctx.throw(e));
        }
    }
    Ok(value)
}

/// After `Error.captureStackTrace(obj)`: `obj.stack` becomes an accessor that adds the header
/// on first read (after the constructor has set `name` and `message`) and then keeps the
/// result, as V8 does.
fn lazy_header<'js>(obj: &Object<'js>, frames: String) -> Result<()> {
    let get = move |ctx: Ctx<'js>, this: This<Value<'js>>| -> Result<Value<'js>> {
        match this.0.as_object() {
            Some(o) => materialise(&ctx, o, &frames),
            None => Ok(Value::new_undefined(ctx)),
        }
    };
    let set = |this: This<Value<'js>>, v: Value<'js>| -> Result<()> {
        if let Some(o) = this.0.as_object() {
            o.prop("stack", Property::from(v).writable().configurable())?;
        }
        Ok(())
    };
    obj.prop("stack", Accessor::new(get, set).configurable())
}
