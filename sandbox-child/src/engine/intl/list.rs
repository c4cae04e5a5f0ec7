//! `Intl.ListFormat` (ECMA-402 §13) on ICU4X's list formatter (conjunction, disjunction and
//! unit lists, long/short/narrow), and `Array.prototype.toLocaleString` with ECMA-402's
//! locales and options.

use super::data;
use super::locale;
use super::options::Options;
use super::{arg, arg_or_undefined, constructor, incompatible, method, unwrap, Kind};
use icu_list::options::{ListFormatterOptions, ListLength};
use icu_list::ListFormatter;
use icu_locale_core::Locale;
use rquickjs::convert::Coerced;
use rquickjs::{Array, Ctx, Exception, Function, Object, Result, Value};
use writeable::Writeable;

const OWNER: &str = "Intl.ListFormat";

pub struct ListFormat {
    tag: String,
    kind: &'static str,
    style: &'static str,
    formatter: ListFormatter,
}

impl ListFormat {
    pub fn new<'js>(
        ctx: &Ctx<'js>,
        locales: Option<Value<'js>>,
        options: Option<Value<'js>>,
    ) -> Result<ListFormat> {
        let requested = locale::canonicalize_list(ctx, locales)?;
        // ListFormat takes `GetOptionsObject`: anything but undefined or an object is a TypeError.
        if let Some(v) = &options {
            if !v.is_undefined() && !v.is_object() {
                return Err(Exception::throw_type(ctx, "Options must be an object"));
            }
        }
        let o = Options::coerce(ctx, options, OWNER)?;
        o.string("localeMatcher", &["lookup", "best fit"])?;
        let (resolved, _) = locale::resolve(&requested);
        let kind = match o
            .string_or(
                "type",
                &["conjunction", "disjunction", "unit"],
                "conjunction",
            )?
            .as_str()
        {
            "disjunction" => "disjunction",
            "unit" => "unit",
            _ => "conjunction",
        };
        let style = match o
            .string_or("style", &["long", "short", "narrow"], "long")?
            .as_str()
        {
            "short" => "short",
            "narrow" => "narrow",
            _ => "long",
        };
        let length = match style {
            "short" => ListLength::Short,
            "narrow" => ListLength::Narrow,
            _ => ListLength::Wide,
        };
        let locale: Locale = resolved.data.into_locale();
        let opts = ListFormatterOptions::default().with_length(length);
        let p = data::provider();
        let formatter = match kind {
            "disjunction" => ListFormatter::try_new_or_unstable(p, (&locale).into(), opts),
            "unit" => ListFormatter::try_new_unit_unstable(p, (&locale).into(), opts),
            _ => ListFormatter::try_new_and_unstable(p, (&locale).into(), opts),
        }
        .map_err(|e| Exception::throw_range(ctx, &format!("{OWNER}: no locale data ({e:?})")))?;
        Ok(ListFormat {
            tag: resolved.tag.to_string(),
            kind,
            style,
            formatter,
        })
    }

    fn parts(&self, items: &[String]) -> Vec<(&'static str, String)> {
        let mut sink = super::number::Parts::default();
        let _ = self
            .formatter
            .format(items.iter().map(|s| s.as_str()))
            .write_to_parts(&mut sink);
        let (text, mut spans) = sink.into_inner();
        spans.sort_by_key(|&(s, _, _)| s);
        let mut out = Vec::new();
        let mut pos = 0;
        for (s, e, v) in spans {
            if s < pos {
                continue;
            }
            if s > pos {
                out.push(("literal", text[pos..s].to_string()));
            }
            out.push((
                if v == "element" { "element" } else { "literal" },
                text[s..e].to_string(),
            ));
            pos = e;
        }
        if pos < text.len() {
            out.push(("literal", text[pos..].to_string()));
        }
        out
    }

    pub fn format(&self, items: &[String]) -> String {
        self.formatter
            .format(items.iter().map(|s| s.as_str()))
            .write_to_string()
            .into_owned()
    }

    pub fn resolved_options<'js>(&self, ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let o = Object::new(ctx.clone())?;
        o.set("locale", self.tag.as_str())?;
        o.set("type", self.kind)?;
        o.set("style", self.style)?;
        Ok(o)
    }
}

/// `StringListFromIterable(iterable)`.
fn string_list<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> Result<Vec<String>> {
    if v.is_undefined() {
        return Ok(Vec::new());
    }
    // Arrays (the usual case) directly; other iterables through the iterator protocol.
    let items: Vec<Value> = if let Some(a) = v.as_array() {
        a.iter::<Value>().collect::<Result<_>>()?
    } else {
        let from: Function = ctx.globals().get::<_, Object>("Array")?.get("from")?;
        let a: Array = from.call((v,))?;
        a.iter::<Value>().collect::<Result<_>>()?
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item.as_string() {
            Some(s) => out.push(s.to_string()?),
            None => {
                let Coerced(shown) = item
                    .get::<Coerced<String>>()
                    .unwrap_or(Coerced(String::new()));
                return Err(Exception::throw_type(
                    ctx,
                    &format!("Iterable yielded {shown} which is not a string"),
                ));
            }
        }
    }
    Ok(out)
}

pub fn install<'js>(ctx: &Ctx<'js>, intl: &Object<'js>) -> Result<()> {
    let proto = constructor(ctx, intl, "ListFormat", false, |ctx, l, o| {
        Ok(Kind::List(std::rc::Rc::new(ListFormat::new(ctx, l, o)?)))
    })?;
    method(&proto, "format", 1, |p| {
        let ctx = p.ctx();
        const M: &str = "Intl.ListFormat.prototype.format";
        let (_, k) = unwrap(ctx, &p.this(), M)?;
        let Kind::List(lf) = k else {
            return Err(incompatible(ctx, M, &p.this()));
        };
        let items = string_list(ctx, arg_or_undefined(p, 0))?;
        rquickjs::String::from_str(ctx.clone(), &lf.format(&items)).map(|s| s.into_value())
    })?;
    method(&proto, "formatToParts", 1, |p| {
        let ctx = p.ctx();
        const M: &str = "Intl.ListFormat.prototype.formatToParts";
        let (_, k) = unwrap(ctx, &p.this(), M)?;
        let Kind::List(lf) = k else {
            return Err(incompatible(ctx, M, &p.this()));
        };
        let items = string_list(ctx, arg_or_undefined(p, 0))?;
        super::number::parts_array(ctx, &lf.parts(&items)).map(|a| a.into_value())
    })?;
    method(&proto, "resolvedOptions", 0, |p| {
        let ctx = p.ctx();
        const M: &str = "Intl.ListFormat.prototype.resolvedOptions";
        let (_, k) = unwrap(ctx, &p.this(), M)?;
        let Kind::List(lf) = k else {
            return Err(incompatible(ctx, M, &p.this()));
        };
        lf.resolved_options(ctx).map(|o| o.into_value())
    })?;
    Ok(())
}

/// `Array.prototype.toLocaleString(locales, options)` (ECMA-402 §19.5.1): each element's
/// `toLocaleString(locales, options)`, joined with V8's separator ",".
pub fn install_array_to_locale_string(ctx: &Ctx<'_>) -> Result<()> {
    let proto: Object = ctx.globals().get::<_, Object>("Array")?.get("prototype")?;
    method(&proto, "toLocaleString", 0, |p| {
        let ctx = p.ctx();
        let this = p.this();
        let Some(obj) = this.clone().into_object() else {
            if this.is_undefined() || this.is_null() {
                return Err(Exception::throw_type(
                    ctx,
                    "Array.prototype.toLocaleString called on null or undefined",
                ));
            }
            return rquickjs::String::from_str(ctx.clone(), "").map(|s| s.into_value());
        };
        let len: Value = obj.get("length")?;
        let Coerced(len) = len.get::<Coerced<f64>>()?;
        let len = if len.is_finite() && len > 0.0 {
            len.min(u32::MAX as f64) as u32
        } else {
            0
        };
        let locales = arg(p, 0).unwrap_or_else(|| Value::new_undefined(ctx.clone()));
        let options = arg(p, 1).unwrap_or_else(|| Value::new_undefined(ctx.clone()));
        let mut out = String::new();
        for i in 0..len {
            if i > 0 {
                out.push(',');
            }
            let item: Value = obj.get(i)?;
            if item.is_undefined() || item.is_null() {
                continue;
            }
            let target = match item.as_object() {
                Some(o) => o.clone(),
                None => {
                    // ToObject for primitives: their prototype's method with the primitive.
                    let f = proto_method(ctx, &item)?;
                    let r: Value = f.call((
                        rquickjs::function::This(item.clone()),
                        locales.clone(),
                        options.clone(),
                    ))?;
                    let Coerced(s) = r.get::<Coerced<String>>()?;
                    out.push_str(&s);
                    continue;
                }
            };
            let f: Function = target.get("toLocaleString")?;
            let r: Value = f.call((
                rquickjs::function::This(target.clone()),
                locales.clone(),
                options.clone(),
            ))?;
            let Coerced(s) = r.get::<Coerced<String>>()?;
            out.push_str(&s);
        }
        rquickjs::String::from_str(ctx.clone(), &out).map(|s| s.into_value())
    })
}

/// `toLocaleString` of a primitive's prototype (`Number.prototype` for a number, ...).
fn proto_method<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> Result<Function<'js>> {
    let ctor = if v.is_number() {
        "Number"
    } else if v.is_string() {
        "String"
    } else if v.is_bool() {
        "Boolean"
    } else if v.is_big_int() {
        "BigInt"
    } else if v.is_symbol() {
        "Symbol"
    } else {
        "Object"
    };
    ctx.globals()
        .get::<_, Object>(ctor)?
        .get::<_, Object>("prototype")?
        .get("toLocaleString")
}
