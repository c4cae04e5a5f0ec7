//! Typed access to the CLDR JSON tables of [`super::cldr`]: each locale's JSON is parsed the
//! first time it is needed and kept for the life of the process (a child serves one function;
//! it rarely needs more than a couple of locales).

use super::cldr::LOCALES;
use icu_provider::DataLocale;
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// The Gregorian patterns of one locale.
#[derive(Debug, Deserialize)]
pub struct DatePatterns {
    /// dateStyle patterns: full, long, medium, short.
    pub df: Styles,
    /// timeStyle patterns.
    pub tf: Styles,
    /// Date + time glue for date styles with a time ("{1} 'at' {0}").
    pub dta: Styles,
    /// availableFormats: skeleton → pattern.
    pub af: BTreeMap<String, String>,
    /// Preferred hour symbol of the locale's region (`h`, `H`, `K`, `k`).
    pub hc: String,
}

#[derive(Debug, Deserialize)]
pub struct Styles {
    pub full: String,
    pub long: String,
    pub medium: String,
    pub short: String,
}

impl Styles {
    pub fn get(&self, style: &str) -> &str {
        match style {
            "full" => &self.full,
            "long" => &self.long,
            "medium" => &self.medium,
            _ => &self.short,
        }
    }
}

/// One unit in one width: plural category → pattern, plus its display name and, for units
/// that have one, the "per unit" pattern (`{0}/h`).
#[derive(Debug, Deserialize, Clone)]
pub struct UnitForms {
    #[serde(flatten)]
    pub forms: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct UnitWidth {
    /// The compound pattern `{0}/{1}`.
    pub per: String,
    #[serde(flatten)]
    pub units: BTreeMap<String, UnitForms>,
}

#[derive(Debug, Deserialize)]
pub struct Units {
    pub long: UnitWidth,
    pub short: UnitWidth,
    pub narrow: UnitWidth,
    /// Number symbols ICU4X's decimal data does not carry.
    pub sym: Symbols,
}

#[derive(Debug, Deserialize)]
pub struct Symbols {
    pub nan: String,
    pub inf: String,
    pub exp: String,
}

fn entry(locale: &DataLocale) -> Option<&'static (&'static str, &'static str, &'static str)> {
    let tag = locale.to_string();
    LOCALES
        .binary_search_by(|(t, _, _)| (*t).cmp(tag.as_str()))
        .ok()
        .map(|i| &LOCALES[i])
}

/// The (tag, JSON) of `locale`'s table, following CLDR's fallback chain past the locales
/// whose table is stored empty (identical to an ancestor's).
fn table(
    locale: &DataLocale,
    pick: fn(&(&'static str, &'static str, &'static str)) -> &'static str,
) -> Option<(&'static str, &'static str)> {
    let mut it = super::fallbacker()
        .for_config(Default::default())
        .fallback_for(*locale);
    loop {
        let cur = it.get();
        if cur.is_unknown() {
            return None;
        }
        if let Some(e) = entry(cur) {
            let json = pick(e);
            if !json.is_empty() {
                return Some((e.0, json));
            }
        }
        it.step();
    }
}

thread_local! {
    static DATES: RefCell<HashMap<&'static str, Rc<DatePatterns>>> = RefCell::new(HashMap::new());
    static UNITS: RefCell<HashMap<&'static str, Rc<Units>>> = RefCell::new(HashMap::new());
}

/// The date patterns of an available locale (`None` for a locale the data does not list).
pub fn dates(locale: &DataLocale) -> Option<Rc<DatePatterns>> {
    let (tag, json) = table(locale, |e| e.1)?;
    DATES.with(|m| {
        if let Some(p) = m.borrow().get(tag) {
            return Some(p.clone());
        }
        let p: Rc<DatePatterns> = Rc::new(serde_json::from_str(json).ok()?);
        m.borrow_mut().insert(tag, p.clone());
        Some(p)
    })
}

/// The unit patterns of an available locale.
pub fn units(locale: &DataLocale) -> Option<Rc<Units>> {
    let (tag, json) = table(locale, |e| e.2)?;
    UNITS.with(|m| {
        if let Some(p) = m.borrow().get(tag) {
            return Some(p.clone());
        }
        let p: Rc<Units> = Rc::new(serde_json::from_str(json).ok()?);
        m.borrow_mut().insert(tag, p.clone());
        Some(p)
    })
}
