//! `Intl.RelativeTimeFormat` (ECMA-402 §17): ICU4X's relative time formatter ("in 3 days",
//! "yesterday" with `numeric: "auto"`), one per unit, built when a unit is first used. The
//! number is rounded as V8 rounds it (at most three fraction digits).

use super::data;
use super::locale;
use super::number::{is_type_sequence, keyword, round, Digits, Num, Parts};
use super::options::Options;
use super::{arg_or_undefined, constructor, incompatible, method, unwrap, Kind};
use fixed_decimal::Sign;
use icu_experimental::relativetime::options::{Numeric, RelativeTimeFormatterOptions};
use icu_experimental::relativetime::RelativeTimeFormatter;
use icu_locale_core::Locale;
use rquickjs::convert::Coerced;
use rquickjs::{Ctx, Exception, Object, Result, Value};
use std::cell::RefCell;
use writeable::Writeable;

const OWNER: &str = "Intl.RelativeTimeFormat";

const UNITS: [&str; 8] = [
    "second", "minute", "hour", "day", "week", "month", "quarter", "year",
];

pub struct RelativeTimeFormat {
    tag: String,
    locale: Locale,
    style: &'static str,
    numeric_auto: bool,
    numbering_system: String,
    /// Formatters by unit index, built on first use.
    built: RefCell<[Option<RelativeTimeFormatter>; 8]>,
}

impl RelativeTimeFormat {
    pub fn new<'js>(
        ctx: &Ctx<'js>,
        locales: Option<Value<'js>>,
        options: Option<Value<'js>>,
    ) -> Result<RelativeTimeFormat> {
        let requested = locale::canonicalize_list(ctx, locales)?;
        let o = Options::coerce(ctx, options, OWNER)?;
        o.string("localeMatcher", &["lookup", "best fit"])?;
        let nu_option = o.string("numberingSystem", &[])?;
        if let Some(nu) = &nu_option {
            if !is_type_sequence(nu) {
                return Err(Exception::throw_range(
                    ctx,
                    &format!("Invalid numberingSystem : {nu}"),
                ));
            }
        }
        let (resolved, winner) = locale::resolve(&requested);
        let style = match o
            .string_or("style", &["long", "short", "narrow"], "long")?
            .as_str()
        {
            "short" => "short",
            "narrow" => "narrow",
            _ => "long",
        };
        let numeric_auto = o.string_or("numeric", &["always", "auto"], "always")? == "auto";
        let mut keywords = Vec::new();
        let nu = match (nu_option, keyword(winner.as_ref(), "nu")) {
            (Some(n), _) => Some(n),
            (None, Some(n)) => {
                keywords.push(("nu", n.clone()));
                Some(n)
            }
            _ => None,
        };
        let mut locale: Locale = resolved.data.into_locale();
        if let Some(n) = &nu {
            if let Ok(v) = icu_locale_core::extensions::unicode::Value::try_from_str(n) {
                locale
                    .extensions
                    .unicode
                    .keywords
                    .set(icu_locale_core::extensions::unicode::key!("nu"), v);
            }
        }
        let kw: Vec<(&str, &str)> = keywords.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let numbering_system = super::number::resolved_numbering_system(&locale);
        Ok(RelativeTimeFormat {
            tag: resolved.tag_with(&kw),
            locale,
            style,
            numeric_auto,
            numbering_system,
            built: RefCell::new(Default::default()),
        })
    }

    fn unit_index(ctx: &Ctx<'_>, unit: &str) -> Result<usize> {
        let singular = unit.strip_suffix('s').unwrap_or(unit);
        UNITS.iter().position(|u| *u == singular).ok_or_else(|| {
            Exception::throw_range(
                ctx,
                &format!(
                    "Invalid unit argument for Intl.RelativeTimeFormat.prototype.format() '{unit}'"
                ),
            )
        })
    }

    fn build(
        &self,
        i: usize,
    ) -> std::result::Result<RelativeTimeFormatter, icu_provider::DataError> {
        let p = data::provider();
        let prefs = (&self.locale).into();
        let mut opts = RelativeTimeFormatterOptions::default();
        opts.numeric = Some(if self.numeric_auto {
            Numeric::Auto
        } else {
            Numeric::Always
        });
        type Ctor = fn(
            &data::Provider,
            icu_experimental::relativetime::RelativeTimeFormatterPreferences,
            RelativeTimeFormatterOptions,
        )
            -> std::result::Result<RelativeTimeFormatter, icu_provider::DataError>;
        macro_rules! ctors {
            ($($f:ident),*) => { [$(|p: &data::Provider, prefs, o| RelativeTimeFormatter::$f(p, prefs, o)),*] };
        }
        let long: [Ctor; 8] = ctors!(
            try_new_long_second_unstable,
            try_new_long_minute_unstable,
            try_new_long_hour_unstable,
            try_new_long_day_unstable,
            try_new_long_week_unstable,
            try_new_long_month_unstable,
            try_new_long_quarter_unstable,
            try_new_long_year_unstable
        );
        let short: [Ctor; 8] = ctors!(
            try_new_short_second_unstable,
            try_new_short_minute_unstable,
            try_new_short_hour_unstable,
            try_new_short_day_unstable,
            try_new_short_week_unstable,
            try_new_short_month_unstable,
            try_new_short_quarter_unstable,
            try_new_short_year_unstable
        );
        let narrow: [Ctor; 8] = ctors!(
            try_new_narrow_second_unstable,
            try_new_narrow_minute_unstable,
            try_new_narrow_hour_unstable,
            try_new_narrow_day_unstable,
            try_new_narrow_week_unstable,
            try_new_narrow_month_unstable,
            try_new_narrow_quarter_unstable,
            try_new_narrow_year_unstable
        );
        let table = match self.style {
            "short" => short,
            "narrow" => narrow,
            _ => long,
        };
        table[i](p, prefs, opts)
    }

    /// `PartitionRelativeTimePattern(rtf, value, unit)` as (type, text, is-number) pieces.
    fn pieces(
        &self,
        ctx: &Ctx<'_>,
        value: f64,
        unit: &str,
    ) -> Result<(Vec<(&'static str, String)>, &'static str)> {
        if !value.is_finite() {
            return Err(Exception::throw_range(
                ctx,
                "Value need to be finite number for Intl.RelativeTimeFormat.prototype.format()",
            ));
        }
        let i = Self::unit_index(ctx, unit)?;
        let Num::Finite(mut d) = Num::from_f64(value) else {
            return Err(Exception::throw_range(ctx, "Invalid value"));
        };
        d = round(&d, &Digits::fraction(0, 3));
        if self.numeric_auto && d.absolute.is_zero() {
            // -0 is "today" too.
            d.sign = Sign::None;
        }
        let mut built = self.built.borrow_mut();
        if built[i].is_none() {
            built[i] = Some(self.build(i).map_err(|e| {
                Exception::throw_range(ctx, &format!("{OWNER}: no locale data ({e:?})"))
            })?);
        }
        let Some(f) = built[i].as_ref() else {
            return Err(Exception::throw_range(ctx, "no formatter"));
        };
        let mut sink = Parts::default();
        let _ = f.format(d).write_to_parts(&mut sink);
        Ok((sink.relative_parts(), UNITS[i]))
    }

    pub fn format(&self, ctx: &Ctx<'_>, value: f64, unit: &str) -> Result<String> {
        Ok(self
            .pieces(ctx, value, unit)?
            .0
            .into_iter()
            .map(|(_, s)| s)
            .collect())
    }

    pub fn format_to_parts<'js>(
        &self,
        ctx: &Ctx<'js>,
        value: f64,
        unit: &str,
    ) -> Result<rquickjs::Array<'js>> {
        let (parts, unit) = self.pieces(ctx, value, unit)?;
        let arr = rquickjs::Array::new(ctx.clone())?;
        for (i, (t, v)) in parts.into_iter().enumerate() {
            let o = Object::new(ctx.clone())?;
            o.set("type", t)?;
            o.set("value", v)?;
            if t != "literal" {
                o.set("unit", unit)?;
            }
            arr.set(i, o)?;
        }
        Ok(arr)
    }

    pub fn resolved_options<'js>(&self, ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let o = Object::new(ctx.clone())?;
        o.set("locale", self.tag.as_str())?;
        o.set("style", self.style)?;
        o.set("numeric", if self.numeric_auto { "auto" } else { "always" })?;
        o.set("numberingSystem", self.numbering_system.as_str())?;
        Ok(o)
    }
}

impl Parts {
    /// Relative time parts: the number's parts as ICU4X marked them, the rest `literal`.
    pub fn relative_parts(self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for (k, text) in self.segments() {
            let kind = k.unwrap_or("literal");
            match out.last_mut() {
                Some(last) if last.0 == "literal" && kind == "literal" => last.1.push_str(&text),
                _ => out.push((kind, text)),
            }
        }
        out
    }
}

pub fn install<'js>(ctx: &Ctx<'js>, intl: &Object<'js>) -> Result<()> {
    let proto = constructor(ctx, intl, "RelativeTimeFormat", false, |ctx, l, o| {
        Ok(Kind::Relative(std::rc::Rc::new(RelativeTimeFormat::new(
            ctx, l, o,
        )?)))
    })?;
    fn args<'js>(ctx: &Ctx<'js>, p: &rquickjs::function::Params<'_, 'js>) -> Result<(f64, String)> {
        let Coerced(v) = arg_or_undefined(p, 0).get::<Coerced<f64>>()?;
        let Coerced(u) = arg_or_undefined(p, 1).get::<Coerced<String>>()?;
        let _ = ctx;
        Ok((v, u))
    }
    method(&proto, "format", 2, |p| {
        let ctx = p.ctx();
        const M: &str = "Intl.RelativeTimeFormat.prototype.format";
        let (_, k) = unwrap(ctx, &p.this(), M)?;
        let Kind::Relative(rtf) = k else {
            return Err(incompatible(ctx, M, &p.this()));
        };
        let (v, u) = args(ctx, p)?;
        rquickjs::String::from_str(ctx.clone(), &rtf.format(ctx, v, &u)?).map(|s| s.into_value())
    })?;
    method(&proto, "formatToParts", 2, |p| {
        let ctx = p.ctx();
        const M: &str = "Intl.RelativeTimeFormat.prototype.formatToParts";
        let (_, k) = unwrap(ctx, &p.this(), M)?;
        let Kind::Relative(rtf) = k else {
            return Err(incompatible(ctx, M, &p.this()));
        };
        let (v, u) = args(ctx, p)?;
        rtf.format_to_parts(ctx, v, &u).map(|a| a.into_value())
    })?;
    method(&proto, "resolvedOptions", 0, |p| {
        let ctx = p.ctx();
        const M: &str = "Intl.RelativeTimeFormat.prototype.resolvedOptions";
        let (_, k) = unwrap(ctx, &p.this(), M)?;
        let Kind::Relative(rtf) = k else {
            return Err(incompatible(ctx, M, &p.this()));
        };
        rtf.resolved_options(ctx).map(|o| o.into_value())
    })?;
    Ok(())
}
