//! The Web platform globals of `cs-js` (issue 11, WinterTC Minimum Common API) that need the
//! event loop: timers, `Event`/`EventTarget`, `AbortController`/`AbortSignal`, `fetch` with
//! `Headers`/`Request`/`Response`, and the Node habit `process.env`.
//!
//! **Lazy groups.** A stem child builds its globals before it knows its bundle, and every stem
//! child pays for them in time to `Ready` and in idle memory. So the class-shaped groups are
//! not built at start-up: [`install`] defines one accessor per global name, and the first read
//! of any name of a group (`typeof fetch` included) compiles the group's JavaScript glue, then
//! replaces the accessors of the whole group by plain data properties (writable, configurable,
//! non-enumerable, as Web IDL defines interface objects). Assigning a global first (a polyfill:
//! `globalThis.fetch = myFetch`) simply replaces the accessor. The timers and `process` are a
//! handful of native functions and are installed at once.
//!
//! **Why JavaScript glue.** The mechanics are Rust (the event loop, host calls, UTF-8); the
//! classes (constructors, getters, iterators, promises, spec-shaped errors) are short
//! JavaScript beside each module, which gives Node-shaped prototypes without hand-written class
//! machinery. Glue runs in the guest's realm: a guest that patches `Array.prototype` first only
//! harms itself.

pub mod events;
pub mod fetch;
pub mod process;
pub mod timers;

use super::{shared_of, Shared};
use rquickjs::object::{Accessor, Property};
use rquickjs::{qjs, Ctx, Exception, Function, Object, Persistent, Result, Value};
use std::rc::Rc;

/// Builds one group's exports: an object holding (at least) the group's global names.
type Builder = for<'js> fn(&Ctx<'js>, &Rc<Shared>) -> Result<Object<'js>>;

/// The lazy groups and the globals each defines. Reading any name builds the whole group.
const GROUPS: &[(&str, &[&str], Builder)] = &[
    (
        "events",
        &[
            "Event",
            "CustomEvent",
            "EventTarget",
            "AbortController",
            "AbortSignal",
        ],
        events::build,
    ),
    (
        "fetch",
        &["fetch", "Headers", "Request", "Response"],
        fetch::build,
    ),
];

/// Installs the timers and `process` now, and one lazy accessor per name of [`GROUPS`].
pub fn install<'js>(ctx: &Ctx<'js>, shared: &Rc<Shared>) -> Result<()> {
    timers::install(ctx, shared)?;
    process::install(ctx)?;
    let globals = ctx.globals();
    for (group, names, _) in GROUPS {
        for name in *names {
            let (group, name): (&'static str, &'static str) = (group, name);
            let get =
                move |ctx: Ctx<'js>| -> Result<Value<'js>> { exports(&ctx, group)?.get(name) };
            let set =
                move |ctx: Ctx<'js>, v: Value<'js>| -> Result<()> { define_global(&ctx, name, v) };
            globals.prop(name, Accessor::new(get, set).configurable())?;
        }
    }
    Ok(())
}

/// The exports of `group`, built on first use; the group's globals still holding their lazy
/// accessor become data properties. Other groups and the engine reach a group through here,
/// never through globals the guest may have replaced.
pub fn exports<'js>(ctx: &Ctx<'js>, group: &'static str) -> Result<Object<'js>> {
    let shared = shared_of(ctx)?;
    let saved = shared.groups.borrow().get(group).cloned();
    if let Some(p) = saved {
        return p.restore(ctx);
    }
    let Some((_, names, build)) = GROUPS.iter().find(|(g, _, _)| *g == group) else {
        return Err(Exception::throw_internal(
            ctx,
            &format!("unknown runtime group {group}"),
        ));
    };
    let obj = build(ctx, &shared)?;
    shared
        .groups
        .borrow_mut()
        .insert(group, Persistent::save(ctx, obj.clone()));
    let globals = ctx.globals();
    for name in *names {
        if still_lazy(&globals, name)? {
            define_global(ctx, name, obj.get(*name)?)?;
        }
    }
    Ok(obj)
}

/// Whether `globalThis[name]` still is an accessor (ours: a guest that defines its own in its
/// place keeps it).
fn still_lazy(globals: &Object<'_>, name: &str) -> Result<bool> {
    let ctx = globals.ctx();
    let object: Object = ctx.globals().get("Object")?;
    let describe: Function = object.get("getOwnPropertyDescriptor")?;
    let d: Value = describe.call((globals.clone(), name))?;
    match d.as_object() {
        Some(d) => Ok(d.contains_key("get")?),
        None => Ok(false),
    }
}

fn define_global<'js>(ctx: &Ctx<'js>, name: &str, v: Value<'js>) -> Result<()> {
    ctx.globals()
        .prop(name, Property::from(v).writable().configurable())
}

/// Compiles a glue file: `source` is a script whose completion value is a function; it is
/// called with `natives` (an object of Rust functions) and its return value (the group's
/// exports) is returned. `file` names it in stack traces (`cs:fetch.js`).
pub fn glue<'js>(
    ctx: &Ctx<'js>,
    file: &str,
    source: &str,
    natives: Object<'js>,
) -> Result<Object<'js>> {
    let src = std::ffi::CString::new(source)
        .map_err(|_| Exception::throw_internal(ctx, "glue source holds a NUL byte"))?;
    let name = std::ffi::CString::new(format!("cs:{file}"))
        .map_err(|_| Exception::throw_internal(ctx, "glue name holds a NUL byte"))?;
    // SAFETY: both strings are NUL-terminated and outlive the call, as JS_Eval requires;
    // `source.len()` is the length of `src` without its NUL. The returned value is a new
    // reference, whose ownership `Value::from_raw` takes; on an exception it stays pending in
    // the context for the caller (`Error::Exception`).
    let f = unsafe {
        let v = qjs::JS_Eval(
            ctx.as_raw().as_ptr(),
            src.as_ptr(),
            source.len() as _,
            name.as_ptr(),
            (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_STRICT) as i32,
        );
        if qjs::JS_IsException(v) {
            return Err(rquickjs::Error::Exception);
        }
        Value::from_raw(ctx.clone(), v)
    };
    let f = f
        .into_function()
        .ok_or_else(|| Exception::throw_internal(ctx, "glue did not evaluate to a function"))?;
    f.call((natives,))
}

/// UTF-8 bytes of a JavaScript string the glue made well-formed (`toWellFormed()`), as a new
/// `Uint8Array`.
pub fn utf8_encode<'js>(ctx: &Ctx<'js>, s: rquickjs::String<'js>) -> Result<Value<'js>> {
    let s = s.to_string()?;
    Ok(rquickjs::TypedArray::<u8>::new(ctx.clone(), s.into_bytes())?.into_value())
}

/// The bytes of a `Uint8Array` (any subclass) or an `ArrayBuffer`, copied; `None` for
/// anything else.
pub fn bytes_of(v: &Value<'_>) -> Option<Vec<u8>> {
    if let Ok(a) = rquickjs::TypedArray::<u8>::from_value(v.clone()) {
        // SAFETY: copied at once; no JavaScript runs meanwhile, so the buffer cannot be
        // detached or resized under the slice.
        return Some(unsafe { a.as_bytes() }.unwrap_or(&[]).to_vec());
    }
    if let Some(b) = rquickjs::ArrayBuffer::from_value(v.clone()) {
        // SAFETY: as above.
        return Some(unsafe { b.as_bytes() }.unwrap_or(&[]).to_vec());
    }
    None
}

/// UTF-8 decoding as the Fetch standard's `text()` does it: a leading BOM dropped, invalid
/// sequences replaced by U+FFFD (maximal subparts, as `String::from_utf8_lossy` does).
pub fn utf8_decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::utf8_decode;

    #[test]
    fn decoding_drops_a_bom_and_replaces_invalid_bytes() {
        assert_eq!(utf8_decode(b"\xEF\xBB\xBFhi"), "hi");
        assert_eq!(utf8_decode(b"a\xFFb"), "a\u{FFFD}b");
        assert_eq!(utf8_decode("é✓".as_bytes()), "é✓");
    }
}
