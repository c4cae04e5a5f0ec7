//! The Web platform globals of `cs-js` (issue 11; WinterTC Minimum Common API): encoding, URL,
//! crypto, `Buffer`, `structuredClone`, `performance`, `DOMException`.
//!
//! **Why lazy.** A pre-forked child builds its globals before it knows its bundle, and the time
//! to `Ready` and the idle memory of every stem child are what the pool pays for them. So
//! [`install`] only defines, on the global object, one accessor per name; the first read of
//! `URL` (or `typeof URL`) builds its group — the Rust natives and, for the classes, a small
//! JavaScript glue file compiled then — and replaces the accessors of the whole group by plain
//! data properties (writable, configurable, non-enumerable, as Web IDL defines interface
//! objects). A function that never touches `Buffer` never pays for it. Assigning a global
//! (`globalThis.URL = MyURL`, what polyfills do) simply replaces the accessor.
//!
//! **Why JavaScript glue.** Algorithms are Rust (the `url` crate's WHATWG parser, RustCrypto,
//! our base64/hex/UTF-8 code in [`encoding`]); the classes around them (constructors, getters,
//! iterators, promises) are short JavaScript in `*.js` beside each module, which gives
//! spec-shaped prototypes without hand-written class machinery. Glue runs in the guest's own
//! realm: a guest that patches `Array.prototype` before first touch only harms itself.
//!
//! Everything here is pure computation inside the confined child: no I/O, no new syscall
//! (randomness uses `getrandom`, which the seccomp policy already allowed; see [`crypto`]) —
//! except what needs the event loop ([`crate::engine::event_loop`]): [`timers`], [`events`]
//! (`AbortSignal.timeout`) and [`fetch`], whose I/O is the supervisor's `cs.http.fetch` host
//! call. The timers and [`process`] (`process.env`, `nextTick`) are a handful of natives and
//! are installed at once; `Event`/`EventTarget`/`AbortController`/`AbortSignal` and
//! `fetch`/`Headers`/`Request`/`Response` are lazy groups like the others.

pub mod buffer;
pub mod clone;
pub mod crypto;
pub mod dom_exception;
pub mod encoding;
pub mod events;
pub mod fetch;
pub mod performance;
pub mod process;
pub mod timers;
pub mod url;

use rquickjs::convert::Coerced;
use rquickjs::object::{Accessor, Property};
use rquickjs::{qjs, Ctx, Exception, Function, JsLifetime, Object, Persistent, Result, Value};
use std::cell::RefCell;
use std::collections::HashMap;

/// Builds one group's exports: an object whose properties are the group's global names.
type Builder = for<'js> fn(&Ctx<'js>) -> Result<Object<'js>>;

/// The groups and the globals each one defines. Reading any name builds its whole group.
const GROUPS: &[(&str, &[&str], Builder)] = &[
    (
        "encoding",
        &["TextEncoder", "TextDecoder", "atob", "btoa"],
        encoding::build,
    ),
    ("url", &["URL", "URLSearchParams"], url::build),
    (
        "crypto",
        &["crypto", "Crypto", "CryptoKey", "SubtleCrypto"],
        crypto::build,
    ),
    ("buffer", &["Buffer"], buffer::build),
    ("clone", &["structuredClone"], clone::build),
    ("performance", &["performance"], performance::build),
    ("dom_exception", &["DOMException"], dom_exception::build),
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

/// Installs the Web globals: the eager part (a per-child seeded `Math.random`, the timers,
/// `process`) and one lazy accessor per global name.
pub fn install<'js>(ctx: &Ctx<'js>) -> Result<()> {
    performance::init();
    crypto::install_math_random(ctx)?;
    timers::install(ctx)?;
    process::install(ctx)?;
    let globals = ctx.globals();
    for (group, names, _) in GROUPS {
        for name in *names {
            let (group, name): (&'static str, &'static str) = (group, name);
            let get = move |ctx: Ctx<'js>| -> Result<Value<'js>> {
                let exports = exports(&ctx, group)?;
                exports.get(name)
            };
            let set =
                move |ctx: Ctx<'js>, v: Value<'js>| -> Result<()> { define_global(&ctx, name, v) };
            globals.prop(name, Accessor::new(get, set).configurable())?;
        }
    }
    Ok(())
}

/// Built groups, kept for the engine's lifetime: a group is built once, and other groups
/// reach its exports (e.g. crypto's `DOMException`) without going through globals the guest
/// may have replaced.
#[derive(Default)]
struct Built(RefCell<HashMap<&'static str, Persistent<Object<'static>>>>);

// SAFETY: `Built` holds no `'js` lifetime: its values are `Persistent`, which are restored
// into the calling context's lifetime on use.
unsafe impl<'js> JsLifetime<'js> for Built {
    type Changed<'to> = Built;
}

/// The exports of `group`, built on first use. The group's globals that still hold their
/// lazy accessor become data properties.
pub fn exports<'js>(ctx: &Ctx<'js>, group: &'static str) -> Result<Object<'js>> {
    if ctx.userdata::<Built>().is_none() {
        let _ = ctx.store_userdata(Built::default());
    }
    if let Some(built) = ctx.userdata::<Built>() {
        let saved = built.0.borrow().get(group).cloned();
        if let Some(p) = saved {
            return p.restore(ctx);
        }
    }
    let Some((_, names, build)) = GROUPS.iter().find(|(g, _, _)| *g == group) else {
        return Err(Exception::throw_internal(
            ctx,
            &format!("unknown runtime group {group}"),
        ));
    };
    let obj = build(ctx)?;
    if let Some(built) = ctx.userdata::<Built>() {
        built
            .0
            .borrow_mut()
            .insert(group, Persistent::save(ctx, obj.clone()));
    }
    let globals = ctx.globals();
    for name in *names {
        if still_lazy(ctx, &globals, name)? && define_global(ctx, name, obj.get(*name)?).is_err() {
            // A frozen global object keeps its accessors, which keep answering from the
            // built group.
            let e = ctx.catch();
            if e.is_uncatchable_error() {
                return Err(ctx.throw(e));
            }
        }
    }
    Ok(obj)
}

/// Whether `globalThis[name]` is still an accessor (ours: the guest cannot define one without
/// replacing ours, and if it did, it keeps its own).
fn still_lazy<'js>(ctx: &Ctx<'js>, globals: &Object<'js>, name: &str) -> Result<bool> {
    Ok(super::ffi::own_property_str(ctx, globals, name)?.is_some_and(|d| d.getter.is_some()))
}

fn define_global<'js>(ctx: &Ctx<'js>, name: &str, v: Value<'js>) -> Result<()> {
    ctx.globals()
        .prop(name, Property::from(v).writable().configurable())
}

/// Compiles a glue file: `source` is a script whose completion value is a function, called
/// with `natives` (an object of Rust functions); returns what that function returns.
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
    // SAFETY: `src` is NUL-terminated and outlives the call, as QuickJS requires; the
    // returned value is owned (a new reference) and handed to `Value::from_raw`, which takes
    // that ownership. An exception is left pending in the context, which
    // `ctx.catch`/`Error::Exception` handling reads.
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

/// A JavaScript value as text (`String(v)` for a non-string), lone surrogates replaced by
/// U+FFFD (as `TextEncoder`, `Buffer` and the URL parser do) — [`super::strings::lossy`].
pub fn utf8(_ctx: &Ctx<'_>, v: &Value<'_>) -> Result<String> {
    match v.as_string() {
        Some(s) => super::strings::lossy(s),
        None => super::strings::lossy(&v.get::<Coerced<rquickjs::String>>()?.0),
    }
}

/// A new `Uint8Array` holding a copy of `bytes`, allocated by QuickJS (so it counts against the
/// function's memory limit).
pub fn new_u8<'js>(ctx: &Ctx<'js>, bytes: &[u8]) -> Result<Value<'js>> {
    // SAFETY: QuickJS copies `bytes` (valid for `len` bytes) into a new buffer; the returned
    // value is a new reference owned by `Value::from_raw`.
    unsafe {
        let v = qjs::JS_NewUint8ArrayCopy(ctx.as_raw().as_ptr(), bytes.as_ptr(), bytes.len() as _);
        if qjs::JS_IsException(v) {
            return Err(rquickjs::Error::Exception);
        }
        Ok(Value::from_raw(ctx.clone(), v))
    }
}

/// A new `ArrayBuffer` holding a copy of `bytes` (QuickJS-allocated).
pub fn new_array_buffer<'js>(ctx: &Ctx<'js>, bytes: &[u8]) -> Result<Value<'js>> {
    Ok(rquickjs::ArrayBuffer::new_copy(ctx.clone(), bytes)?.into_value())
}

/// Runs `f` on the bytes of a `Uint8Array` (any subclass, e.g. `Buffer`) or an `ArrayBuffer`.
/// `None` for anything else; the glue turns other views into `Uint8Array`s first. A detached
/// buffer reads as empty.
pub fn with_bytes<'js, R>(v: &Value<'js>, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    if let Ok(a) = rquickjs::TypedArray::<u8>::from_value(v.clone()) {
        // SAFETY: the slice is used by `f` only, which runs no JavaScript (it is plain Rust
        // computation over the bytes), so the buffer cannot be detached or resized meanwhile.
        let bytes = unsafe { a.as_bytes() }.unwrap_or(&[]);
        return Some(f(bytes));
    }
    if let Some(b) = rquickjs::ArrayBuffer::from_value(v.clone()) {
        // SAFETY: as above.
        let bytes = unsafe { b.as_bytes() }.unwrap_or(&[]);
        return Some(f(bytes));
    }
    None
}

/// The bytes of a `Uint8Array` or `ArrayBuffer`, copied; a `TypeError` naming `what` else.
pub fn bytes_arg(ctx: &Ctx<'_>, v: &Value<'_>, what: &str) -> Result<Vec<u8>> {
    with_bytes(v, <[u8]>::to_vec).ok_or_else(|| {
        Exception::throw_type(
            ctx,
            &format!("{what} must be an ArrayBuffer or an ArrayBufferView"),
        )
    })
}

/// Writes `src` into the `Uint8Array` `dest` at `offset` (clamped to its length); returns the
/// number of bytes written.
pub fn write_into(dest: &Value<'_>, offset: usize, src: &[u8]) -> Option<usize> {
    let a = rquickjs::TypedArray::<u8>::from_value(dest.clone()).ok()?;
    let raw = a.as_raw()?;
    let len = raw.len();
    if offset >= len {
        return Some(0);
    }
    let n = src.len().min(len - offset);
    // SAFETY: `raw` points at `len` live bytes of the array's buffer; we write `n <= len -
    // offset` bytes from `offset`, and no JavaScript runs between obtaining the pointer and the
    // copy (so the buffer cannot be detached or resized). `src` is Rust memory distinct from
    // the JS buffer unless the caller passed a copy, so the regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), (raw.as_ptr() as *mut u8).add(offset), n);
    }
    Some(n)
}

/// The brand of a value, checked on the engine's internal class (not `Symbol.toStringTag` or
/// the prototype, which a guest can fake): what `structuredClone`, `Buffer` and the glue use
/// to tell buffers, views, maps and dates apart.
pub fn brand(v: &Value<'_>) -> &'static str {
    let raw = v.as_raw();
    if !v.is_object() {
        return "";
    }
    // SAFETY: the predicates read the class id of a live object value and never run
    // JavaScript or take ownership.
    unsafe {
        if qjs::JS_IsArrayBuffer(raw) {
            return "ArrayBuffer";
        }
        if qjs::JS_IsDataView(raw) {
            return "DataView";
        }
        if let Some(name) = typed_array_name(qjs::JS_GetTypedArrayType(raw)) {
            return name;
        }
        if qjs::JS_IsMap(raw) {
            return "Map";
        }
        if qjs::JS_IsSet(raw) {
            return "Set";
        }
        if qjs::JS_IsDate(raw) {
            return "Date";
        }
        if qjs::JS_IsRegExp(raw) {
            return "RegExp";
        }
        if qjs::JS_IsWeakMap(raw) {
            return "WeakMap";
        }
        if qjs::JS_IsWeakSet(raw) {
            return "WeakSet";
        }
        if qjs::JS_IsWeakRef(raw) {
            return "WeakRef";
        }
        if qjs::JS_IsPromise(raw) {
            return "Promise";
        }
        if qjs::JS_IsProxy(raw) {
            return "Proxy";
        }
    }
    if v.is_error() {
        return "Error";
    }
    if v.is_array() {
        return "Array";
    }
    if v.is_function() {
        return "Function";
    }
    "Object"
}

/// The constructor name of a `JSTypedArrayEnum` value.
pub fn typed_array_name(t: i32) -> Option<&'static str> {
    Some(match t as u32 {
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_UINT8C => "Uint8ClampedArray",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_INT8 => "Int8Array",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_UINT8 => "Uint8Array",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_INT16 => "Int16Array",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_UINT16 => "Uint16Array",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_INT32 => "Int32Array",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_UINT32 => "Uint32Array",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_BIG_INT64 => "BigInt64Array",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_BIG_UINT64 => "BigUint64Array",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_FLOAT16 => "Float16Array",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_FLOAT32 => "Float32Array",
        qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_FLOAT64 => "Float64Array",
        _ => return None,
    })
}

/// Adds the natives every glue file may use: `brand(v)`.
pub fn common_natives<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let n = Object::new(ctx.clone())?;
    n.set(
        "brand",
        Function::new(ctx.clone(), |v: Value<'js>| brand(&v))?,
    )?;
    Ok(n)
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
