//! The few QuickJS operations rquickjs 0.14 does not wrap and that `console` formatting and the
//! Web globals need: an object's own keys with their enumerability, and an own property's
//! descriptor read *without* calling its getter (Node's `console.log` prints `[Getter]` and
//! never runs it). Each wrapper owns what QuickJS returns and frees it before returning.

use rquickjs::{qjs, Ctx, Object, Result, Value};

/// Which own keys [`own_keys`] lists.
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    pub strings: bool,
    pub symbols: bool,
    /// Only enumerable properties.
    pub enumerable_only: bool,
}

/// An own property's descriptor. Accessor functions are kept so a caller can call a getter
/// deliberately; `value` is `None` for accessors.
pub struct Descriptor<'js> {
    pub value: Option<Value<'js>>,
    pub getter: Option<Value<'js>>,
    pub setter: Option<Value<'js>>,
    pub enumerable: bool,
}

/// The own property keys of `obj` in property order (integer keys ascending, then strings in
/// creation order, then symbols), each with whether it is enumerable. On a Proxy this runs its
/// `ownKeys` trap (guest code, inside the activation's deadline).
pub fn own_keys<'js>(
    ctx: &Ctx<'js>,
    obj: &Object<'js>,
    which: Keys,
) -> Result<Vec<(Value<'js>, bool)>> {
    let mut flags = 0;
    if which.strings {
        flags |= qjs::JS_GPN_STRING_MASK;
    }
    if which.symbols {
        flags |= qjs::JS_GPN_SYMBOL_MASK;
    }
    if which.enumerable_only {
        flags |= qjs::JS_GPN_ENUM_ONLY;
    }
    let mut tab: *mut qjs::JSPropertyEnum = std::ptr::null_mut();
    let mut len: u32 = 0;
    // SAFETY: on success QuickJS hands us `len` entries at `tab`, each holding an atom we
    // convert to a new value (an owned reference) before freeing the whole table with
    // `JS_FreePropertyEnum`, which also frees the atoms. On failure nothing is allocated.
    unsafe {
        let r = qjs::JS_GetOwnPropertyNames(
            ctx.as_raw().as_ptr(),
            &mut tab,
            &mut len,
            obj.as_raw(),
            flags as i32,
        );
        if r < 0 {
            return Err(rquickjs::Error::Exception);
        }
        let entries = std::slice::from_raw_parts(tab, len as usize);
        let mut out = Vec::with_capacity(entries.len());
        let mut failed = false;
        for e in entries {
            let v = qjs::JS_AtomToValue(ctx.as_raw().as_ptr(), e.atom);
            if qjs::JS_IsException(v) {
                failed = true;
                break;
            }
            out.push((Value::from_raw(ctx.clone(), v), e.is_enumerable));
        }
        qjs::JS_FreePropertyEnum(ctx.as_raw().as_ptr(), tab, len);
        if failed {
            return Err(rquickjs::Error::Exception);
        }
        Ok(out)
    }
}

/// The own property `key` (a string, number or symbol value) of `obj`, or `None` when absent.
pub fn own_property<'js>(
    ctx: &Ctx<'js>,
    obj: &Object<'js>,
    key: &Value<'js>,
) -> Result<Option<Descriptor<'js>>> {
    // SAFETY: the atom made from `key` is freed on every path; `JS_GetOwnProperty` fills `desc`
    // with owned references only when it returns 1, and each is handed to `Value::from_raw`
    // (which takes ownership) exactly once.
    unsafe {
        let atom = qjs::JS_ValueToAtom(ctx.as_raw().as_ptr(), key.as_raw());
        if atom == qjs::JS_ATOM_NULL {
            return Err(rquickjs::Error::Exception);
        }
        let mut desc = std::mem::MaybeUninit::<qjs::JSPropertyDescriptor>::uninit();
        let r =
            qjs::JS_GetOwnProperty(ctx.as_raw().as_ptr(), desc.as_mut_ptr(), obj.as_raw(), atom);
        qjs::JS_FreeAtom(ctx.as_raw().as_ptr(), atom);
        if r < 0 {
            return Err(rquickjs::Error::Exception);
        }
        if r == 0 {
            return Ok(None);
        }
        let desc = desc.assume_init();
        let value = Value::from_raw(ctx.clone(), desc.value);
        let getter = Value::from_raw(ctx.clone(), desc.getter);
        let setter = Value::from_raw(ctx.clone(), desc.setter);
        let accessor = desc.flags as u32 & qjs::JS_PROP_GETSET != 0;
        Ok(Some(Descriptor {
            value: (!accessor).then_some(value),
            getter: (accessor && !getter.is_undefined()).then_some(getter),
            setter: (accessor && !setter.is_undefined()).then_some(setter),
            enumerable: desc.flags as u32 & qjs::JS_PROP_ENUMERABLE != 0,
        }))
    }
}

/// [`own_property`] for a string key.
pub fn own_property_str<'js>(
    ctx: &Ctx<'js>,
    obj: &Object<'js>,
    key: &str,
) -> Result<Option<Descriptor<'js>>> {
    let k = rquickjs::String::from_str(ctx.clone(), key)?.into_value();
    own_property(ctx, obj, &k)
}

/// The value of a predefined atom: for `Symbol.toStringTag` and the like, the symbol itself
/// (rquickjs' `Atom::to_value` gives its name as a string).
pub fn atom_value<'js>(ctx: &Ctx<'js>, atom: rquickjs::atom::PredefinedAtom) -> Result<Value<'js>> {
    // SAFETY: predefined atoms are static in the runtime; `JS_AtomToValue` returns a new
    // reference that `Value::from_raw` owns.
    unsafe {
        let v = qjs::JS_AtomToValue(ctx.as_raw().as_ptr(), atom as qjs::JSAtom);
        if qjs::JS_IsException(v) {
            return Err(rquickjs::Error::Exception);
        }
        Ok(Value::from_raw(ctx.clone(), v))
    }
}
