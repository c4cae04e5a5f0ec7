//! `Intl.Collator` (ECMA-402 §10) and `String.prototype.localeCompare`: ICU4X's collator
//! (the UCA with CLDR's tailorings for the locale) with ECMA-402's options: `sensitivity`
//! (base = primary strength, accent = secondary, case = primary with the case level, variant
//! = tertiary), `numeric` and `caseFirst` (also as `-u-kn`, `-u-kf`), `ignorePunctuation`
//! (alternate = shifted). `usage: "search"` is accepted and reported but sorts as "sort" (no
//! search tailorings in the data).

use super::data;
use super::locale;
use super::number::keyword;
use super::options::Options;
use super::{
    arg, arg_or_undefined, bound_getter, constructor, incompatible, method, native, unwrap, Cache,
    Kind,
};
use icu_collator::options::{AlternateHandling, CaseLevel, CollatorOptions, Strength};
use icu_collator::preferences::{CollationCaseFirst, CollationNumericOrdering};
use icu_collator::{Collator as IcuCollator, CollatorPreferences};
use icu_locale_core::Locale;
use rquickjs::convert::Coerced;
use rquickjs::{Ctx, Exception, Function, Object, Result, Value};
use std::cell::RefCell;
use std::cmp::Ordering;

/// Options after reading; equal specs give equal collators (`localeCompare` caches by it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spec {
    data_locale: icu_provider::DataLocale,
    tag: String,
    usage: &'static str,
    sensitivity: &'static str,
    ignore_punctuation: bool,
    numeric: bool,
    case_first: &'static str,
}

pub fn read_spec<'js>(
    ctx: &Ctx<'js>,
    locales: Option<Value<'js>>,
    options: Option<Value<'js>>,
    owner: &'static str,
) -> Result<Spec> {
    let requested = locale::canonicalize_list(ctx, locales)?;
    let o = Options::coerce(ctx, options, owner)?;
    let usage = if o.string_or("usage", &["sort", "search"], "sort")? == "search" {
        "search"
    } else {
        "sort"
    };
    o.string("localeMatcher", &["lookup", "best fit"])?;
    if let Some(c) = o.string("collation", &[])? {
        if !super::number::is_type_sequence(&c) {
            return Err(Exception::throw_range(
                ctx,
                &format!("Invalid collation : {c}"),
            ));
        }
    }
    let numeric_opt = o.boolean("numeric")?;
    let case_first_opt = o.string("caseFirst", &["upper", "lower", "false"])?;
    let (resolved, winner) = locale::resolve(&requested);
    let mut keywords: Vec<(&str, &str)> = Vec::new();
    let kn = keyword(winner.as_ref(), "kn");
    let numeric = match numeric_opt {
        Some(n) => n,
        None => match kn.as_deref() {
            Some("" | "true") => {
                keywords.push(("kn", "true"));
                true
            }
            Some("false") => {
                keywords.push(("kn", "false"));
                false
            }
            _ => false,
        },
    };
    let kf = keyword(winner.as_ref(), "kf");
    let case_first = match case_first_opt.as_deref() {
        Some("upper") => "upper",
        Some("lower") => "lower",
        Some(_) => "false",
        None => match kf.as_deref() {
            Some("upper") => {
                keywords.push(("kf", "upper"));
                "upper"
            }
            Some("lower") => {
                keywords.push(("kf", "lower"));
                "lower"
            }
            Some("false") => {
                keywords.push(("kf", "false"));
                "false"
            }
            _ => "false",
        },
    };
    let sensitivity = match o
        .string_or(
            "sensitivity",
            &["base", "accent", "case", "variant"],
            "variant",
        )?
        .as_str()
    {
        "base" => "base",
        "accent" => "accent",
        "case" => "case",
        _ => "variant",
    };
    let ignore_punctuation = o.boolean("ignorePunctuation")?.unwrap_or(false);
    Ok(Spec {
        data_locale: resolved.data,
        tag: resolved.tag_with(&keywords),
        usage,
        sensitivity,
        ignore_punctuation,
        numeric,
        case_first,
    })
}

pub struct Collator {
    spec: Spec,
    collator: IcuCollator,
}

impl Collator {
    pub fn build(ctx: &Ctx<'_>, spec: Spec) -> Result<Collator> {
        let locale: Locale = spec.data_locale.into_locale();
        let mut prefs = CollatorPreferences::from(&locale);
        prefs.numeric_ordering = Some(if spec.numeric {
            CollationNumericOrdering::True
        } else {
            CollationNumericOrdering::False
        });
        prefs.case_first = Some(match spec.case_first {
            "upper" => CollationCaseFirst::Upper,
            "lower" => CollationCaseFirst::Lower,
            _ => CollationCaseFirst::False,
        });
        let mut opts = CollatorOptions::default();
        let (strength, case_level) = match spec.sensitivity {
            "base" => (Strength::Primary, CaseLevel::Off),
            "accent" => (Strength::Secondary, CaseLevel::Off),
            "case" => (Strength::Primary, CaseLevel::On),
            _ => (Strength::Tertiary, CaseLevel::Off),
        };
        opts.strength = Some(strength);
        opts.case_level = Some(case_level);
        if spec.ignore_punctuation {
            opts.alternate_handling = Some(AlternateHandling::Shifted);
        }
        let collator =
            IcuCollator::try_new_unstable(data::provider(), prefs, opts).map_err(|e| {
                Exception::throw_range(ctx, &format!("Intl.Collator: no collation data ({e:?})"))
            })?;
        Ok(Collator { spec, collator })
    }

    pub fn compare(&self, a: &str, b: &str) -> i32 {
        match self.collator.as_borrowed().compare(a, b) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    pub fn resolved_options<'js>(&self, ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let s = &self.spec;
        let o = Object::new(ctx.clone())?;
        o.set("locale", s.tag.as_str())?;
        o.set("usage", s.usage)?;
        o.set("sensitivity", s.sensitivity)?;
        o.set("ignorePunctuation", s.ignore_punctuation)?;
        o.set("collation", "default")?;
        o.set("numeric", s.numeric)?;
        o.set("caseFirst", s.case_first)?;
        Ok(o)
    }
}

fn to_str<'js>(v: Value<'js>) -> Result<String> {
    let Coerced(s) = v.get::<Coerced<String>>()?;
    Ok(s)
}

thread_local! {
    static CACHE: RefCell<Cache<Spec, Collator>> = RefCell::new(Cache::new());
}

pub fn install<'js>(ctx: &Ctx<'js>, intl: &Object<'js>) -> Result<()> {
    let proto = constructor(ctx, intl, "Collator", true, |ctx, l, o| {
        let spec = read_spec(ctx, l, o, "Intl.Collator")?;
        let c = CACHE.with(|c| {
            c.borrow_mut()
                .get_or_try(spec, |s| Collator::build(ctx, s.clone()))
        })?;
        Ok(Kind::Collator(c))
    })?;
    bound_getter(
        &proto,
        "compare",
        "get Intl.Collator.prototype.compare",
        |ctx, k| {
            let Kind::Collator(c) = k else {
                return Ok(None);
            };
            let f = Function::new(
                ctx.clone(),
                native(move |p| {
                    let a = to_str(arg_or_undefined(p, 0))?;
                    let b = to_str(arg_or_undefined(p, 1))?;
                    Ok(Value::new_int(p.ctx().clone(), c.compare(&a, &b)))
                }),
            )?;
            f.set_length(2)?;
            Ok(Some(f))
        },
    )?;
    method(&proto, "resolvedOptions", 0, |p| {
        let ctx = p.ctx();
        const M: &str = "Intl.Collator.prototype.resolvedOptions";
        let (_, k) = unwrap(ctx, &p.this(), M)?;
        let Kind::Collator(c) = k else {
            return Err(incompatible(ctx, M, &p.this()));
        };
        c.resolved_options(ctx).map(|o| o.into_value())
    })?;
    Ok(())
}

/// `String.prototype.localeCompare(that, locales, options)`.
pub fn install_prototype_methods(ctx: &Ctx<'_>) -> Result<()> {
    let proto: Object = ctx.globals().get::<_, Object>("String")?.get("prototype")?;
    method(&proto, "localeCompare", 1, |p| {
        let ctx = p.ctx();
        let this = p.this();
        if this.is_undefined() || this.is_null() {
            return Err(Exception::throw_type(
                ctx,
                "String.prototype.localeCompare called on null or undefined",
            ));
        }
        let s = to_str(this)?;
        let that = to_str(arg_or_undefined(p, 0))?;
        let spec = read_spec(ctx, arg(p, 1), arg(p, 2), "String.prototype.localeCompare")?;
        let c = CACHE.with(|c| {
            c.borrow_mut()
                .get_or_try(spec, |s| Collator::build(ctx, s.clone()))
        })?;
        Ok(Value::new_int(ctx.clone(), c.compare(&s, &that)))
    })
}
