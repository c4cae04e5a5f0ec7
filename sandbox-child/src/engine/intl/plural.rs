//! `Intl.PluralRules` (ECMA-402 §16): ICU4X's CLDR plural rules, cardinal and ordinal, on the
//! number as rounded by the digit options (so `1.0` with `minimumFractionDigits: 1` is "other"
//! in English, as in V8).

use super::data;
use super::locale;
use super::number::{digit_options, round, Digits, Num};
use super::options::Options;
use icu_locale_core::Locale;
use icu_plurals::{PluralCategory, PluralRuleType, PluralRules as IcuPluralRules};
use rquickjs::{Array, Ctx, Exception, Object, Result, Value};

const OWNER: &str = "Intl.PluralRules";

pub fn category_name(c: PluralCategory) -> &'static str {
    match c {
        PluralCategory::Zero => "zero",
        PluralCategory::One => "one",
        PluralCategory::Two => "two",
        PluralCategory::Few => "few",
        PluralCategory::Many => "many",
        PluralCategory::Other => "other",
    }
}

pub struct PluralRules {
    tag: String,
    ordinal: bool,
    digits: Digits,
    rules: IcuPluralRules,
}

impl PluralRules {
    pub fn new<'js>(
        ctx: &Ctx<'js>,
        locales: Option<Value<'js>>,
        options: Option<Value<'js>>,
    ) -> Result<PluralRules> {
        let requested = locale::canonicalize_list(ctx, locales)?;
        let o = Options::coerce(ctx, options, OWNER)?;
        o.string("localeMatcher", &["lookup", "best fit"])?;
        let ordinal = o.string_or("type", &["cardinal", "ordinal"], "cardinal")? == "ordinal";
        let digits = digit_options(ctx, &o, 0, 3, false)?;
        let (resolved, _) = locale::resolve(&requested);
        let kind = if ordinal {
            PluralRuleType::Ordinal
        } else {
            PluralRuleType::Cardinal
        };
        let loc: Locale = resolved.data.into_locale();
        let rules = IcuPluralRules::try_new_unstable(data::provider(), (&loc).into(), kind.into())
            .map_err(|e| {
                Exception::throw_range(ctx, &format!("{OWNER}: no plural rules ({e:?})"))
            })?;
        Ok(PluralRules {
            tag: resolved.tag.to_string(),
            ordinal,
            digits,
            rules,
        })
    }

    /// `ResolvePlural(pr, n)`.
    pub fn select(&self, n: f64) -> &'static str {
        match Num::from_f64(n) {
            Num::Finite(d) => category_name(self.rules.category_for(&round(&d, &self.digits))),
            _ => "other",
        }
    }

    pub fn resolved_options<'js>(&self, ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let o = Object::new(ctx.clone())?;
        o.set("locale", self.tag.as_str())?;
        o.set("type", if self.ordinal { "ordinal" } else { "cardinal" })?;
        let d = &self.digits;
        o.set("minimumIntegerDigits", d.min_integer)?;
        use super::number::RoundingType as R;
        if matches!(
            d.rounding_type,
            R::FractionDigits | R::MorePrecision | R::LessPrecision
        ) {
            o.set("minimumFractionDigits", d.min_fraction)?;
            o.set("maximumFractionDigits", d.max_fraction)?;
        }
        if matches!(
            d.rounding_type,
            R::SignificantDigits | R::MorePrecision | R::LessPrecision
        ) {
            o.set("minimumSignificantDigits", d.min_significant)?;
            o.set("maximumSignificantDigits", d.max_significant)?;
        }
        let mut cats: Vec<&str> = self.rules.categories().map(category_name).collect();
        // V8's order: alphabetical, "other" last.
        cats.sort_unstable_by_key(|c| (*c == "other", *c));
        let arr = Array::new(ctx.clone())?;
        for (i, c) in cats.into_iter().enumerate() {
            arr.set(i, c)?;
        }
        o.set("pluralCategories", arr)?;
        Ok(o)
    }
}
