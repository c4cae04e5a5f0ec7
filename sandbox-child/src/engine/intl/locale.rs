//! Locale lists and locale negotiation (ECMA-402 §9.2): `CanonicalizeLocaleList`,
//! `ResolveLocale`, `SupportedLocales`.
//!
//! The available locales are those the data was generated for (`tools/intl-data/locales.txt`).
//! A requested locale is served by the first of its CLDR fallback chain (`de-LU` → `de`,
//! `zh-TW` → `zh-Hant`, `es-AR` → `es-419`, `pt-AO` → `pt-PT`) that is available, as a browser
//! serves a regional variant it has no data for from its parent; a locale whose chain reaches
//! only the root falls through to the next requested one, and finally to the default `en-US`.
//! `resolvedOptions().locale` reports the requested tag (without the Unicode extension keys that
//! were not applied), as V8 does for the locales it has.

use super::data;
use icu_locale::LocaleCanonicalizer;
use icu_locale_core::extensions::unicode::{Key, Value as UValue};
use icu_locale_core::{DataLocale, Locale};
use icu_locale_fallback::LocaleFallbackConfig;
use rquickjs::{Array, Ctx, Exception, Result, Value};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// The default locale (what `new Intl.NumberFormat()` resolves to): Node's without LANG.
pub const DEFAULT_TAG: &str = "en-US";

/// The locales the data covers.
fn available() -> &'static BTreeSet<&'static str> {
    static A: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    A.get_or_init(|| data::cldr::LOCALES.iter().map(|(tag, _, _)| *tag).collect())
}

fn canonicalizer() -> &'static LocaleCanonicalizer {
    static C: OnceLock<LocaleCanonicalizer> = OnceLock::new();
    C.get_or_init(|| {
        LocaleCanonicalizer::try_new_common_unstable(data::raw())
            .expect("the Intl data includes the locale alias markers")
    })
}

fn incorrect(ctx: &Ctx<'_>) -> rquickjs::Error {
    Exception::throw_range(ctx, "Incorrect locale information provided")
}

/// Parses and canonicalises one language tag (`IsStructurallyValidLanguageTag` and
/// `CanonicalizeUnicodeLocaleId`): case, aliases (`iw` → `he`), extension order.
pub fn parse_tag(ctx: &Ctx<'_>, tag: &str) -> Result<Locale> {
    // ICU4X also accepts `_` as a separator; BCP 47 (and V8) do not.
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(incorrect(ctx));
    }
    let mut locale = Locale::try_from_str(tag).map_err(|_| incorrect(ctx))?;
    canonicalizer().canonicalize(&mut locale);
    Ok(locale)
}

/// `CanonicalizeLocaleList(locales)`: `undefined` → empty; a string → that one tag; else an
/// array-like of strings. Duplicates are removed, order kept.
pub fn canonicalize_list<'js>(ctx: &Ctx<'js>, locales: Option<Value<'js>>) -> Result<Vec<Locale>> {
    let Some(v) = locales.filter(|v| !v.is_undefined()) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Locale> = Vec::new();
    let mut push = |l: Locale| {
        if !out.contains(&l) {
            out.push(l);
        }
    };
    if let Some(s) = v.as_string() {
        push(parse_tag(ctx, &s.to_string()?)?);
        return Ok(out);
    }
    if v.is_null() {
        return Err(Exception::throw_type(
            ctx,
            "Cannot convert undefined or null to object",
        ));
    }
    let Some(obj) = v.into_object() else {
        // A number or boolean: ToObject gives a wrapper with length 0.
        return Ok(out);
    };
    let len: Value = obj.get("length")?;
    let len = match len.as_number() {
        Some(n) if n.is_finite() && n > 0.0 => n.min(1e6) as usize,
        _ => 0,
    };
    for i in 0..len {
        let item: Value = obj.get(i as u32)?;
        if item.is_undefined() && !has_index(&obj, i)? {
            continue;
        }
        match item.as_string() {
            Some(s) => push(parse_tag(ctx, &s.to_string()?)?),
            None => {
                return Err(Exception::throw_type(
                    ctx,
                    "Language ID should be string or object.",
                ))
            }
        }
    }
    Ok(out)
}

fn has_index(obj: &rquickjs::Object<'_>, i: usize) -> Result<bool> {
    obj.contains_key(i as u32)
}

/// The available locale serving `locale`, if any other than the root.
pub fn best_available(locale: &Locale) -> Option<DataLocale> {
    let avail = available();
    let mut it = data::fallbacker()
        .for_config(LocaleFallbackConfig::default())
        .fallback_for(DataLocale::from(locale));
    loop {
        let cur = it.get();
        if cur.is_unknown() {
            return None;
        }
        if avail.contains(cur.to_string().as_str()) {
            return Some(*cur);
        }
        it.step();
    }
}

/// The outcome of `ResolveLocale`.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The requested locale as reported by `resolvedOptions().locale`, without extensions.
    pub tag: Locale,
    /// The available locale whose data is used.
    pub data: DataLocale,
}

impl Resolved {
    /// The reported tag with the applied extension keywords, in key order, as V8 prints it.
    pub fn tag_with(&self, keywords: &[(&str, &str)]) -> String {
        let mut l = self.tag.clone();
        let mut kw: Vec<(&str, &str)> = keywords.to_vec();
        kw.sort();
        for (k, v) in kw {
            if let (Ok(k), Ok(v)) = (k.parse::<Key>(), v.parse::<UValue>()) {
                l.extensions.unicode.keywords.set(k, v);
            }
        }
        l.to_string()
    }
}

/// `ResolveLocale` for one constructor call. Returns the resolution and the requested locale
/// that won (with its extensions), if any.
pub fn resolve(requested: &[Locale]) -> (Resolved, Option<Locale>) {
    for l in requested {
        if let Some(data) = best_available(l) {
            let mut tag = l.clone();
            tag.extensions = Default::default();
            return (Resolved { tag, data }, Some(l.clone()));
        }
    }
    let tag: Locale = DEFAULT_TAG.parse().expect("a valid default tag");
    let data = best_available(&tag).unwrap_or_default();
    (Resolved { tag, data }, None)
}

/// `SupportedLocales(available, requested, options)`: the requested tags some available locale
/// serves, as an array.
pub fn supported_locales_of<'js>(
    ctx: &Ctx<'js>,
    locales: Option<Value<'js>>,
    options: Option<Value<'js>>,
    owner: &'static str,
) -> Result<Array<'js>> {
    let list = canonicalize_list(ctx, locales)?;
    let opts = super::options::Options::coerce(ctx, options, owner)?;
    opts.string("localeMatcher", &["lookup", "best fit"])?;
    let arr = Array::new(ctx.clone())?;
    let mut i = 0;
    for l in list {
        if best_available(&l).is_some() {
            arr.set(i, l.to_string())?;
            i += 1;
        }
    }
    Ok(arr)
}

/// `Intl.getCanonicalLocales(locales)`.
pub fn get_canonical_locales<'js>(
    ctx: &Ctx<'js>,
    locales: Option<Value<'js>>,
) -> Result<Array<'js>> {
    let arr = Array::new(ctx.clone())?;
    for (i, l) in canonicalize_list(ctx, locales)?.into_iter().enumerate() {
        arr.set(i, l.to_string())?;
    }
    Ok(arr)
}
