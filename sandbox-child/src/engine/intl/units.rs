//! Unit patterns for `Intl.NumberFormat` with `style: "unit"`, from CLDR's unit data
//! ([`super::data::tables`]): ECMA-402's sanctioned simple units, and `X-per-Y` compounds,
//! either as the unit CLDR names (`kilometer-per-hour` → "km/h") or composed as CLDR says
//! (the denominator's "per unit" pattern, else the compound pattern `{0}/{1}`).

use super::data::tables;
use super::number::UnitDisplay;
use icu_provider::DataLocale;

/// ECMA-402's sanctioned simple units.
const SANCTIONED: &[&str] = &[
    "acre",
    "bit",
    "byte",
    "celsius",
    "centimeter",
    "day",
    "degree",
    "fahrenheit",
    "fluid-ounce",
    "foot",
    "gallon",
    "gigabit",
    "gigabyte",
    "gram",
    "hectare",
    "hour",
    "inch",
    "kilobit",
    "kilobyte",
    "kilogram",
    "kilometer",
    "liter",
    "megabit",
    "megabyte",
    "meter",
    "microsecond",
    "mile",
    "mile-scandinavian",
    "milliliter",
    "millimeter",
    "millisecond",
    "minute",
    "month",
    "nanosecond",
    "ounce",
    "percent",
    "petabyte",
    "pound",
    "second",
    "stone",
    "terabit",
    "terabyte",
    "week",
    "yard",
    "year",
];

pub fn is_sanctioned(unit: &str) -> bool {
    SANCTIONED.contains(&unit)
}

/// The patterns of one unit in one width and locale: plural category → `{0} km/h`.
#[derive(Debug, Clone)]
pub struct UnitPatterns {
    forms: Vec<(String, String)>,
}

impl UnitPatterns {
    /// The pattern for a plural category, falling back to `other`.
    pub fn pattern(&self, category: &str) -> &String {
        self.forms
            .iter()
            .find(|(c, _)| c == category)
            .or_else(|| self.forms.iter().find(|(c, _)| c == "other"))
            .map(|(_, p)| p)
            .unwrap_or(&self.forms[0].1)
    }
}

const CATEGORIES: &[&str] = &["zero", "one", "two", "few", "many", "other"];

/// The patterns for `unit` (already checked well-formed) in `locale`.
pub fn patterns(locale: &DataLocale, unit: &str, display: UnitDisplay) -> Option<UnitPatterns> {
    let units = tables::units(locale)?;
    let width = match display {
        UnitDisplay::Long => &units.long,
        UnitDisplay::Short => &units.short,
        UnitDisplay::Narrow => &units.narrow,
    };
    let forms_of = |name: &str| -> Option<Vec<(String, String)>> {
        let u = width.units.get(name)?;
        let v: Vec<(String, String)> = CATEGORIES
            .iter()
            .filter_map(|c| u.forms.get(*c).map(|p| (c.to_string(), p.clone())))
            .collect();
        (!v.is_empty()).then_some(v)
    };
    if let Some(forms) = forms_of(unit) {
        return Some(UnitPatterns { forms });
    }
    let (num, den) = unit.split_once("-per-")?;
    let num_forms = forms_of(num)?;
    let den_unit = width.units.get(den)?;
    let forms = match den_unit.forms.get("per") {
        // "{0}/h": the numerator's pattern in the denominator's per-pattern.
        Some(per) => num_forms
            .into_iter()
            .map(|(c, p)| (c, per.replace("{0}", &p)))
            .collect(),
        None => {
            // "{0}/{1}" with the denominator's singular name.
            let one = den_unit
                .forms
                .get("one")
                .or_else(|| den_unit.forms.get("other"))?;
            let name = one.replace("{0}", "");
            let name = name.trim_matches(|c: char| c.is_whitespace() || c == '\u{a0}');
            num_forms
                .into_iter()
                .map(|(c, p)| (c, width.per.replace("{0}", &p).replace("{1}", name)))
                .collect()
        }
    };
    Some(UnitPatterns { forms })
}
