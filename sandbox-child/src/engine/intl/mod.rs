//! `Intl` for cs-js (ECMA-402), on ICU4X 2.4 and CLDR data compiled into the binary.
//!
//! QuickJS-NG has no `Intl`. This module provides `Intl.NumberFormat`, `DateTimeFormat`,
//! `PluralRules`, `RelativeTimeFormat`, `Collator`, `ListFormat`, `getCanonicalLocales` and
//! `supportedLocalesOf`, and makes `Number`/`BigInt`/`Date`/`Array.prototype.toLocaleString`,
//! `toLocaleDateString`, `toLocaleTimeString` and `String.prototype.localeCompare` honour their
//! locales and options, as V8 does (`docs/functions.md` lists what differs).
//!
//! **Nothing is paid by a function that does not use it.** At start-up [`install`] only defines
//! an accessor `globalThis.Intl` and replaces the six prototype methods with native functions;
//! the `Intl` object and its constructors are built the first time `Intl` is read (the accessor
//! then turns into the plain data property every engine has), and the locale data of a
//! formatter is looked up when that formatter is built (an ICU4X blob read in place; the few
//! CLDR JSON tables are parsed per locale on first use). Idle children therefore carry no Intl
//! state; the data sits in the binary's read-only pages until touched.
//!
//! Everything runs inside the confined child: no files (data and the IANA time zone database
//! are compiled in), no new system calls.
//!
//! One file per constructor; [`data`] holds the locale data, [`locale`] the negotiation,
//! [`options`] the option reading shared by all.

mod collator;
pub mod data;
mod datetime;
mod list;
mod locale;
mod number;
mod options;
mod plural;
mod relative;
mod units;

#[cfg(test)]
mod tests;

use rquickjs::class::{JsClass, Readable, Trace, Tracer};
use rquickjs::function::{IntoJsFunc, ParamRequirement, Params};
use rquickjs::object::{Accessor, Property};
use rquickjs::{Ctx, Exception, Function, JsLifetime, Object, Result, Symbol, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::rc::Rc;

/// Defines the lazy `Intl` global and the locale-sensitive prototype methods.
pub fn install(ctx: &Ctx<'_>) -> Result<()> {
    let globals = ctx.globals();
    let get = native(|p: &Params<'_, '_>| {
        let ctx = p.ctx().clone();
        let intl = build_intl(&ctx)?;
        ctx.globals().prop(
            "Intl",
            Property::from(intl.clone()).writable().configurable(),
        )?;
        Ok(intl.into_value())
    });
    let set = native(|p: &Params<'_, '_>| {
        let ctx = p.ctx().clone();
        let v = p
            .arg(0)
            .unwrap_or_else(|| Value::new_undefined(ctx.clone()));
        ctx.globals()
            .prop("Intl", Property::from(v).writable().configurable())?;
        Ok(Value::new_undefined(ctx))
    });
    globals.prop("Intl", Accessor::new(get, set).configurable())?;
    install_prototype_methods(ctx)
}

/// A native function that sees its whole call (`this`, `new.target`, the callee).
struct Native<F>(F);

impl<'js, F> IntoJsFunc<'js, ()> for Native<F>
where
    F: Fn(&Params<'_, 'js>) -> Result<Value<'js>> + 'js,
{
    fn param_requirements() -> ParamRequirement {
        ParamRequirement::any()
    }
    fn call<'a>(&self, params: Params<'a, 'js>) -> Result<Value<'js>> {
        (self.0)(&params)
    }
}

fn native<'js, F>(f: F) -> Native<F>
where
    F: Fn(&Params<'_, 'js>) -> Result<Value<'js>> + 'js,
{
    Native(f)
}

fn arg<'js>(p: &Params<'_, 'js>, i: usize) -> Option<Value<'js>> {
    p.arg(i)
}

fn arg_or_undefined<'js>(p: &Params<'_, 'js>, i: usize) -> Value<'js> {
    p.arg(i)
        .unwrap_or_else(|| Value::new_undefined(p.ctx().clone()))
}

/// What an Intl object wraps.
#[derive(Clone)]
enum Kind {
    Number(Rc<number::NumberFormat>),
    DateTime(Rc<datetime::DateTimeFormat>),
    Plural(Rc<plural::PluralRules>),
    Relative(Rc<relative::RelativeTimeFormat>),
    Collator(Rc<collator::Collator>),
    List(Rc<list::ListFormat>),
}

/// The native state of every Intl object (`[[InitializedNumberFormat]]` and friends).
struct IntlObject<'js> {
    kind: Kind,
    /// `format` / `compare` bound to this object, created on first read (ECMA-402 keeps one).
    bound: RefCell<Option<Function<'js>>>,
}

impl<'js> Trace<'js> for IntlObject<'js> {
    fn trace<'a>(&self, tracer: Tracer<'a, 'js>) {
        if let Some(f) = self.bound.borrow().as_ref() {
            f.trace(tracer);
        }
    }
}

// SAFETY: `IntlObject` holds JavaScript values only in `bound`, whose lifetime parameter is the
// one being changed; everything else is `'static` Rust data.
unsafe impl<'js> JsLifetime<'js> for IntlObject<'js> {
    type Changed<'to> = IntlObject<'to>;
}

impl<'js> JsClass<'js> for IntlObject<'js> {
    const NAME: &'static str = "IntlObject";
    type Mutable = Readable;

    fn prototype(_ctx: &Ctx<'js>) -> Result<Option<Object<'js>>> {
        // Instances are always made with their constructor's prototype.
        Ok(None)
    }

    fn constructor(_ctx: &Ctx<'js>) -> Result<Option<rquickjs::function::Constructor<'js>>> {
        Ok(None)
    }
}

type Class<'js> = rquickjs::Class<'js, IntlObject<'js>>;

/// The wrapped state of `this`, or the TypeError V8 throws for a wrong receiver.
fn unwrap<'js>(ctx: &Ctx<'js>, this: &Value<'js>, method: &str) -> Result<(Class<'js>, Kind)> {
    if let Some(o) = this.as_object() {
        if o.instance_of::<IntlObject>() {
            if let Some(c) = Class::from_object(o) {
                let kind = c.borrow().kind.clone();
                return Ok((c, kind));
            }
        }
    }
    Err(incompatible(ctx, method, this))
}

fn incompatible<'js>(ctx: &Ctx<'js>, method: &str, this: &Value<'js>) -> rquickjs::Error {
    let shown = if this.is_undefined() {
        "undefined".to_string()
    } else if this.is_null() {
        "null".to_string()
    } else if this.is_object() {
        "#<Object>".to_string()
    } else {
        rquickjs::convert::Coerced::<String>::from_js(ctx, this.clone())
            .map(|c| c.0)
            .unwrap_or_default()
    };
    Exception::throw_type(
        ctx,
        &format!("Method {method} called on incompatible receiver {shown}"),
    )
}

use rquickjs::FromJs;

/// A constructor of the `Intl` object: `Intl[name]`, its prototype with `Symbol.toStringTag`,
/// and `supportedLocalesOf`.
fn constructor<'js>(
    ctx: &Ctx<'js>,
    intl: &Object<'js>,
    name: &'static str,
    callable: bool,
    build: fn(&Ctx<'js>, Option<Value<'js>>, Option<Value<'js>>) -> Result<Kind>,
) -> Result<Object<'js>> {
    let full: &'static str = match name {
        "NumberFormat" => "Intl.NumberFormat",
        "DateTimeFormat" => "Intl.DateTimeFormat",
        "PluralRules" => "Intl.PluralRules",
        "RelativeTimeFormat" => "Intl.RelativeTimeFormat",
        "Collator" => "Intl.Collator",
        _ => "Intl.ListFormat",
    };
    let f = Function::new(
        ctx.clone(),
        native(move |p| {
            let ctx = p.ctx().clone();
            if !p.is_constructor() && !callable {
                return Err(Exception::throw_type(
                    &ctx,
                    &format!("Constructor {full} requires 'new'"),
                ));
            }
            // The prototype of `new.target` (a subclass), else our own.
            let mut proto: Option<Object> = None;
            if p.is_constructor() {
                if let Some(nt) = p.this().as_object() {
                    proto = nt.get::<_, Value>("prototype")?.into_object();
                }
            }
            let proto = match proto {
                Some(p) => p,
                None => p
                    .function()
                    .as_object()
                    .map(|f| f.get::<_, Object>("prototype"))
                    .transpose()?
                    .ok_or_else(|| Exception::throw_type(&ctx, "no prototype"))?,
            };
            let kind = build(&ctx, arg(p, 0), arg(p, 1))?;
            let obj = Class::instance_proto(
                IntlObject {
                    kind,
                    bound: RefCell::new(None),
                },
                proto,
            )?;
            Ok(obj.into_value())
        }),
    )?
    .with_constructor(true);
    f.set_name(name)?;
    let proto = Object::new(ctx.clone())?;
    proto.prop(
        "constructor",
        Property::from(f.clone()).writable().configurable(),
    )?;
    let tag = to_string_tag(ctx)?;
    proto.prop(tag, Property::from(full).configurable())?;
    f.prop("prototype", Property::from(proto.clone()))?;
    let sup = Function::new(
        ctx.clone(),
        native(move |p| {
            locale::supported_locales_of(p.ctx(), arg(p, 0), arg(p, 1), full)
                .map(|a| a.into_value())
        }),
    )?
    .with_name("supportedLocalesOf")?;
    sup.set_length(1)?;
    f.prop(
        "supportedLocalesOf",
        Property::from(sup).writable().configurable(),
    )?;
    intl.prop(name, Property::from(f).writable().configurable())?;
    Ok(proto)
}

fn to_string_tag<'js>(ctx: &Ctx<'js>) -> Result<Symbol<'js>> {
    let sym: Object = ctx.globals().get("Symbol")?;
    sym.get("toStringTag")
}

/// A prototype method: `proto[name] = function (...) { ... }`.
fn method<'js, F>(proto: &Object<'js>, name: &'static str, length: usize, f: F) -> Result<()>
where
    F: Fn(&Params<'_, 'js>) -> Result<Value<'js>> + 'js,
{
    let func = Function::new(proto.ctx().clone(), native(f))?.with_name(name)?;
    func.set_length(length)?;
    proto.prop(name, Property::from(func).writable().configurable())
}

/// A prototype getter returning a function bound to the object (`format`, `compare`).
fn bound_getter<'js>(
    proto: &Object<'js>,
    name: &'static str,
    method_name: &'static str,
    make: fn(&Ctx<'js>, Kind) -> Result<Option<Function<'js>>>,
) -> Result<()> {
    let get = native(move |p: &Params<'_, 'js>| {
        let ctx = p.ctx().clone();
        let (cls, kind) = unwrap(&ctx, &p.this(), method_name)?;
        if let Some(f) = cls.borrow().bound.borrow().as_ref() {
            return Ok(f.clone().into_value());
        }
        let Some(f) = make(&ctx, kind)? else {
            return Err(incompatible(&ctx, method_name, &p.this()));
        };
        *cls.borrow().bound.borrow_mut() = Some(f.clone());
        Ok(f.into_value())
    });
    proto.prop(name, Accessor::new_get(get).configurable())
}

/// Builds the `Intl` object (on first read of `globalThis.Intl`).
fn build_intl<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let intl = Object::new(ctx.clone())?;
    let tag = to_string_tag(ctx)?;
    intl.prop(tag, Property::from("Intl").configurable())?;

    let gcl = Function::new(
        ctx.clone(),
        native(|p| locale::get_canonical_locales(p.ctx(), arg(p, 0)).map(|a| a.into_value())),
    )?
    .with_name("getCanonicalLocales")?;
    gcl.set_length(1)?;
    intl.prop(
        "getCanonicalLocales",
        Property::from(gcl).writable().configurable(),
    )?;

    let proto = constructor(ctx, &intl, "NumberFormat", true, |ctx, l, o| {
        // Equal options share one formatter (the JS objects stay distinct).
        let spec = number::read_spec(ctx, l, o)?;
        let nf = NUMBER_CACHE.with(|c| {
            c.borrow_mut()
                .get_or_try(spec, |s| number::NumberFormat::build(ctx, s.clone()))
        })?;
        Ok(Kind::Number(nf))
    })?;
    bound_getter(
        &proto,
        "format",
        "get Intl.NumberFormat.prototype.format",
        |ctx, k| {
            let Kind::Number(nf) = k else { return Ok(None) };
            let f = Function::new(
                ctx.clone(),
                native(move |p| {
                    let x = number::Num::from_value(p.ctx(), arg_or_undefined(p, 0))?;
                    rquickjs::String::from_str(p.ctx().clone(), &nf.format(&x))
                        .map(|s| s.into_value())
                }),
            )?;
            f.set_length(1)?;
            Ok(Some(f))
        },
    )?;
    method(&proto, "formatToParts", 1, |p| {
        let ctx = p.ctx();
        let (_, k) = unwrap(ctx, &p.this(), "Intl.NumberFormat.prototype.formatToParts")?;
        let Kind::Number(nf) = k else {
            return Err(incompatible(
                ctx,
                "Intl.NumberFormat.prototype.formatToParts",
                &p.this(),
            ));
        };
        let x = number::Num::from_value(ctx, arg_or_undefined(p, 0))?;
        number::parts_array(ctx, &nf.format_to_parts(&x)).map(|a| a.into_value())
    })?;
    method(&proto, "resolvedOptions", 0, |p| {
        let ctx = p.ctx();
        let (_, k) = unwrap(
            ctx,
            &p.this(),
            "Intl.NumberFormat.prototype.resolvedOptions",
        )?;
        let Kind::Number(nf) = k else {
            return Err(incompatible(
                ctx,
                "Intl.NumberFormat.prototype.resolvedOptions",
                &p.this(),
            ));
        };
        nf.resolved_options(ctx).map(|o| o.into_value())
    })?;

    let proto = constructor(ctx, &intl, "PluralRules", false, |ctx, l, o| {
        Ok(Kind::Plural(Rc::new(plural::PluralRules::new(ctx, l, o)?)))
    })?;
    method(&proto, "select", 1, |p| {
        let ctx = p.ctx();
        let (_, k) = unwrap(ctx, &p.this(), "Intl.PluralRules.prototype.select")?;
        let Kind::Plural(pr) = k else {
            return Err(incompatible(
                ctx,
                "Intl.PluralRules.prototype.select",
                &p.this(),
            ));
        };
        let n = to_number(ctx, arg_or_undefined(p, 0))?;
        rquickjs::String::from_str(ctx.clone(), pr.select(n)).map(|s| s.into_value())
    })?;
    method(&proto, "resolvedOptions", 0, |p| {
        let ctx = p.ctx();
        let (_, k) = unwrap(ctx, &p.this(), "Intl.PluralRules.prototype.resolvedOptions")?;
        let Kind::Plural(pr) = k else {
            return Err(incompatible(
                ctx,
                "Intl.PluralRules.prototype.resolvedOptions",
                &p.this(),
            ));
        };
        pr.resolved_options(ctx).map(|o| o.into_value())
    })?;

    datetime::install(ctx, &intl)?;
    relative::install(ctx, &intl)?;
    collator::install(ctx, &intl)?;
    list::install(ctx, &intl)?;
    Ok(intl)
}

/// ECMAScript ToNumber.
fn to_number<'js>(_ctx: &Ctx<'js>, v: Value<'js>) -> Result<f64> {
    let rquickjs::convert::Coerced(n) = v.get::<rquickjs::convert::Coerced<f64>>()?;
    Ok(n)
}

/// A small cache of built formatters keyed by their resolved options: `toLocaleString` in a
/// loop builds one formatter, not one per call.
pub struct Cache<K, V> {
    map: HashMap<K, Rc<V>>,
}

impl<K: Hash + Eq, V> Cache<K, V> {
    const MAX: usize = 32;

    fn new() -> Self {
        Cache {
            map: HashMap::new(),
        }
    }

    fn get_or_try(&mut self, key: K, build: impl FnOnce(&K) -> Result<V>) -> Result<Rc<V>> {
        if let Some(v) = self.map.get(&key) {
            return Ok(v.clone());
        }
        let v = Rc::new(build(&key)?);
        if self.map.len() >= Self::MAX {
            self.map.clear();
        }
        self.map.insert(key, v.clone());
        Ok(v)
    }
}

thread_local! {
    static NUMBER_CACHE: RefCell<Cache<number::Spec, number::NumberFormat>> = RefCell::new(Cache::new());
}

/// `Number.prototype.toLocaleString` and friends.
fn install_prototype_methods(ctx: &Ctx<'_>) -> Result<()> {
    let globals = ctx.globals();
    let number_proto: Object = globals.get::<_, Object>("Number")?.get("prototype")?;
    method(&number_proto, "toLocaleString", 0, |p| {
        let ctx = p.ctx();
        let this = p.this();
        let n = match this.as_number() {
            Some(n) => n,
            None => this_number(ctx, &this)?,
        };
        let spec = number::read_spec(ctx, arg(p, 0), arg(p, 1))?;
        let nf = NUMBER_CACHE.with(|c| {
            c.borrow_mut()
                .get_or_try(spec, |s| number::NumberFormat::build(ctx, s.clone()))
        })?;
        rquickjs::String::from_str(ctx.clone(), &nf.format(&number::Num::from_f64(n)))
            .map(|s| s.into_value())
    })?;
    if let Ok(bigint) = globals.get::<_, Object>("BigInt") {
        let proto: Object = bigint.get("prototype")?;
        method(&proto, "toLocaleString", 0, |p| {
            let ctx = p.ctx();
            let this = p.this();
            if !this.is_big_int() {
                return Err(Exception::throw_type(
                    ctx,
                    "BigInt.prototype.toLocaleString requires that 'this' be a BigInt",
                ));
            }
            let x = number::Num::from_value(ctx, this)?;
            let spec = number::read_spec(ctx, arg(p, 0), arg(p, 1))?;
            let nf = NUMBER_CACHE.with(|c| {
                c.borrow_mut()
                    .get_or_try(spec, |s| number::NumberFormat::build(ctx, s.clone()))
            })?;
            rquickjs::String::from_str(ctx.clone(), &nf.format(&x)).map(|s| s.into_value())
        })?;
    }
    datetime::install_prototype_methods(ctx)?;
    collator::install_prototype_methods(ctx)?;
    list::install_array_to_locale_string(ctx)?;
    Ok(())
}

/// `thisNumberValue(this)` for a Number object.
fn this_number<'js>(ctx: &Ctx<'js>, this: &Value<'js>) -> Result<f64> {
    let number_proto: Object = ctx.globals().get::<_, Object>("Number")?.get("prototype")?;
    if let Some(o) = this.as_object() {
        // A Number wrapper: Number.prototype.valueOf accepts it and nothing else.
        let value_of: Function = number_proto.get("valueOf")?;
        if let Ok(n) = value_of.call::<_, f64>((rquickjs::function::This(o.clone()),)) {
            return Ok(n);
        }
        let _ = ctx.catch();
    }
    Err(Exception::throw_type(
        ctx,
        "Number.prototype.toLocaleString requires that 'this' be a Number",
    ))
}
