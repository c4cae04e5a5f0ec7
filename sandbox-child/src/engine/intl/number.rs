//! `Intl.NumberFormat` (ECMA-402 §15) and `Number.prototype.toLocaleString`.
//!
//! Rounding, digit options, sign display and notation follow ECMA-402's algorithms
//! (`SetNumberFormatDigitOptions`, `FormatNumericToString`, `ComputeExponent`) on exact decimals
//! ([`fixed_decimal::Decimal`]; a Number enters as its shortest round-trip decimal, as in V8).
//! The rounded decimal is then written by ICU4X: `DecimalFormatter` (symbols, grouping,
//! numbering system), `PercentFormatter`, `CurrencyFormatter` (symbol, code, name; standard
//! and accounting patterns), `CompactDecimalFormatter` (with the exponent we computed). Units
//! use CLDR's unit patterns (`data::cldr`), chosen by ICU4X plural rules.
//!
//! ICU4X's number formatters take grouping and currency rounding from their data; a small
//! provider wrapper ([`NumberData`]) adjusts those two data items for the options given (the
//! currency formatter would otherwise round again to the currency's digits, and has no
//! grouping option).

use super::data::{self, Provider};
use super::locale::{self, Resolved};
use super::options::Options;
use super::plural::category_name;
use super::units as cldr_units;
use fixed_decimal::{
    Decimal, FloatPrecision, RoundingIncrement, Sign, SignedRoundingMode, UnsignedRoundingMode,
};
use icu_decimal::options::{DecimalFormatterOptions, GroupingStrategy};
use icu_decimal::provider::{
    DecimalCompactLongV1, DecimalCompactShortV1, DecimalDigitsV1, DecimalSymbolsV1,
};
use icu_decimal::{CompactDecimalFormatter, DecimalFormatter};
use icu_experimental::dimension::currency::formatter::CurrencyFormatter;
use icu_experimental::dimension::currency::options::{CurrencyFormatterOptions, CurrencyUsage};
use icu_experimental::dimension::currency::CurrencyType;
use icu_experimental::dimension::percent::formatter::PercentFormatter;
use icu_experimental::dimension::percent::options::{
    Display as PercentDisplay, PercentFormatterOptions,
};
use icu_experimental::dimension::provider::currency::essentials::CurrencyEssentialsV1;
use icu_experimental::dimension::provider::currency::extended::CurrencyExtendedDataV1;
use icu_experimental::dimension::provider::currency::fractions::{
    CurrencyFractions, CurrencyFractionsV1, FractionInfo, Rounding,
};
use icu_experimental::dimension::provider::currency::no_currency::CurrencyPatternsNoCurrencyV1;
use icu_experimental::dimension::provider::currency::patterns::CurrencyPatternsDataV1;
use icu_experimental::dimension::provider::currency::symbols::{
    CurrencyDecimalSymbolsV1, CurrencySymbolsV1,
};
use icu_experimental::dimension::provider::percent::DecimalPercentV1;
use icu_locale_core::Locale;
use icu_plurals::provider::{PluralsCardinalV1, PluralsOrdinalV1};
use icu_plurals::{PluralRules, PluralRulesPreferences};
use icu_provider::prelude::*;
use rquickjs::convert::Coerced;
use rquickjs::{Ctx, Exception, Object, Result, Value};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::str::FromStr;
use writeable::PartsWrite as _;
use writeable::Writeable;

const OWNER: &str = "Intl.NumberFormat";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CurrencyDisplay {
    Code,
    Symbol,
    NarrowSymbol,
    Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitDisplay {
    Short,
    Narrow,
    Long,
}

impl UnitDisplay {
    fn as_str(self) -> &'static str {
        match self {
            UnitDisplay::Short => "short",
            UnitDisplay::Narrow => "narrow",
            UnitDisplay::Long => "long",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Style {
    Decimal,
    Percent,
    Currency {
        code: String,
        display: CurrencyDisplay,
        accounting: bool,
    },
    Unit {
        unit: String,
        display: UnitDisplay,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notation {
    Standard,
    Scientific,
    Engineering,
    Compact { long: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoundingType {
    FractionDigits,
    SignificantDigits,
    MorePrecision,
    LessPrecision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grouping {
    Always,
    Auto,
    Min2,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignDisplay {
    Auto,
    Never,
    Always,
    ExceptZero,
    Negative,
}

/// The digit options after `SetNumberFormatDigitOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digits {
    pub min_integer: u8,
    pub min_fraction: u8,
    pub max_fraction: u8,
    pub min_significant: u8,
    pub max_significant: u8,
    pub rounding_type: RoundingType,
    /// What `resolvedOptions().roundingPriority` reports.
    pub priority: &'static str,
    pub mode: &'static str,
    pub increment: u16,
    pub strip_if_integer: bool,
}

impl Digits {
    /// Integer digits only, as `Intl.PluralRules` and `RelativeTimeFormat` default to.
    pub fn fraction(min: u8, max: u8) -> Digits {
        Digits {
            min_integer: 1,
            min_fraction: min,
            max_fraction: max,
            min_significant: 1,
            max_significant: 21,
            rounding_type: RoundingType::FractionDigits,
            priority: "auto",
            mode: "halfExpand",
            increment: 1,
            strip_if_integer: false,
        }
    }
}

/// Everything a NumberFormat is built from: the options after reading and validation, and
/// the locale. Equal specs give equal formatters, so `toLocaleString` caches by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spec {
    pub data_locale: DataLocale,
    pub tag: String,
    pub numbering_system: Option<String>,
    pub style: Style,
    pub notation: Notation,
    pub digits: Digits,
    pub grouping: Grouping,
    /// What `resolvedOptions().useGrouping` reports ("auto", "always", "min2" or false).
    pub grouping_reported: Option<&'static str>,
    pub sign: SignDisplay,
}

/// The largest fraction digit count: 20 in Node 20 (V8 11), which the tests follow
/// (ECMA-402 2023 allows 100).
const MAX_FRACTION_DIGITS: f64 = 20.0;

const ROUNDING_MODES: &[&str] = &[
    "ceil",
    "floor",
    "expand",
    "trunc",
    "halfCeil",
    "halfFloor",
    "halfExpand",
    "halfTrunc",
    "halfEven",
];
const INCREMENTS: &[u16] = &[
    1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000,
];

/// `SetNumberFormatDigitOptions(intlObj, options, mnfdDefault, mxfdDefault, notation)`.
pub fn digit_options<'js>(
    ctx: &Ctx<'js>,
    o: &Options<'js>,
    mnfd_default: u8,
    mxfd_default: u8,
    compact: bool,
) -> Result<Digits> {
    let mnid = o.number("minimumIntegerDigits", 1.0, 21.0)?.unwrap_or(1.0) as u8;
    let mnfd = o.raw("minimumFractionDigits")?;
    let mxfd = o.raw("maximumFractionDigits")?;
    let mnsd = o.raw("minimumSignificantDigits")?;
    let mxsd = o.raw("maximumSignificantDigits")?;
    let increment = o.number("roundingIncrement", 1.0, 5000.0)?.unwrap_or(1.0) as u16;
    if !INCREMENTS.contains(&increment) {
        return Err(Exception::throw_range(
            ctx,
            "roundingIncrement value is out of range.",
        ));
    }
    let mode = o.string_or("roundingMode", ROUNDING_MODES, "halfExpand")?;
    let priority = o.string_or(
        "roundingPriority",
        &["auto", "morePrecision", "lessPrecision"],
        "auto",
    )?;
    let tzd = o.string_or("trailingZeroDisplay", &["auto", "stripIfInteger"], "auto")?;
    let mxfd_default = if increment != 1 {
        mnfd_default
    } else {
        mxfd_default
    };
    let has_sd = !mnsd.is_undefined() || !mxsd.is_undefined();
    let has_fd = !mnfd.is_undefined() || !mxfd.is_undefined();
    let mut need_sd = true;
    let mut need_fd = true;
    if priority == "auto" {
        need_sd = has_sd;
        if need_sd || (!has_fd && compact) {
            need_fd = false;
        }
    }
    let mut d = Digits {
        min_integer: mnid,
        min_fraction: 0,
        max_fraction: 0,
        min_significant: 1,
        max_significant: 21,
        rounding_type: RoundingType::FractionDigits,
        priority: "auto",
        mode: ROUNDING_MODES
            .iter()
            .copied()
            .find(|m| *m == mode)
            .unwrap_or("halfExpand"),
        increment,
        strip_if_integer: tzd == "stripIfInteger",
    };
    use super::options::number_in_range as num;
    if need_sd && has_sd {
        let min = num(ctx, mnsd, "minimumSignificantDigits", 1.0, 21.0)?.unwrap_or(1.0);
        let max = num(ctx, mxsd, "maximumSignificantDigits", min, 21.0)?.unwrap_or(21.0);
        d.min_significant = min as u8;
        d.max_significant = max as u8;
    }
    if need_fd {
        if has_fd {
            let min = num(ctx, mnfd, "minimumFractionDigits", 0.0, MAX_FRACTION_DIGITS)?;
            let max = num(ctx, mxfd, "maximumFractionDigits", 0.0, MAX_FRACTION_DIGITS)?;
            let (min, max) = match (min, max) {
                (None, Some(max)) => ((mnfd_default as f64).min(max), max),
                (Some(min), None) => (min, (mxfd_default as f64).max(min)),
                (Some(min), Some(max)) if min > max => {
                    return Err(Exception::throw_range(
                        ctx,
                        "maximumFractionDigits value is out of range.",
                    ))
                }
                (Some(min), Some(max)) => (min, max),
                (None, None) => (mnfd_default as f64, mxfd_default as f64),
            };
            d.min_fraction = min as u8;
            d.max_fraction = max as u8;
        } else {
            d.min_fraction = mnfd_default;
            d.max_fraction = mxfd_default;
        }
    }
    if !need_sd && !need_fd {
        d.min_fraction = 0;
        d.max_fraction = 0;
        d.min_significant = 1;
        d.max_significant = 2;
        d.rounding_type = RoundingType::MorePrecision;
        d.priority = "morePrecision";
    } else if priority == "auto" {
        d.rounding_type = if need_sd {
            RoundingType::SignificantDigits
        } else {
            RoundingType::FractionDigits
        };
    } else if priority == "morePrecision" {
        d.rounding_type = RoundingType::MorePrecision;
        d.priority = "morePrecision";
    } else {
        d.rounding_type = RoundingType::LessPrecision;
        d.priority = "lessPrecision";
    }
    if increment != 1 {
        if d.rounding_type != RoundingType::FractionDigits {
            return Err(Exception::throw_type(
                ctx,
                "roundingIncrement can only be used with fraction digit rounding",
            ));
        }
        if d.max_fraction != d.min_fraction {
            return Err(Exception::throw_range(
                ctx,
                "maximumFractionDigits value is out of range.",
            ));
        }
    }
    Ok(d)
}

/// A well-formed unit identifier (ECMA-402 `IsWellFormedUnitIdentifier`): a sanctioned unit
/// or `X-per-Y` of two.
fn well_formed_unit(unit: &str) -> bool {
    if cldr_units::is_sanctioned(unit) {
        return true;
    }
    match unit.split_once("-per-") {
        Some((a, b)) => cldr_units::is_sanctioned(a) && cldr_units::is_sanctioned(b),
        None => false,
    }
}

/// The options of `new Intl.NumberFormat(locales, options)` (`InitializeNumberFormat`).
pub fn read_spec<'js>(
    ctx: &Ctx<'js>,
    locales: Option<Value<'js>>,
    options: Option<Value<'js>>,
) -> Result<Spec> {
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
    let nu_ext = keyword(winner.as_ref(), "nu");
    // An option wins over the extension; either is used only if the data has it.
    let (numbering_system, nu_from_ext) = match (nu_option, nu_ext) {
        (Some(n), _) => (Some(n), false),
        (None, Some(n)) => (Some(n), true),
        (None, None) => (None, false),
    };
    let numbering_system = numbering_system.filter(|n| numbering_system_supported(&resolved, n));

    let style = o.string_or(
        "style",
        &["decimal", "percent", "currency", "unit"],
        "decimal",
    )?;
    let currency = o.string("currency", &[])?;
    if let Some(c) = &currency {
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Exception::throw_range(
                ctx,
                &format!("Invalid currency code : {c}"),
            ));
        }
    }
    let currency_display = o.string_or(
        "currencyDisplay",
        &["code", "symbol", "narrowSymbol", "name"],
        "symbol",
    )?;
    let currency_sign = o.string_or("currencySign", &["standard", "accounting"], "standard")?;
    let unit = o.string("unit", &[])?;
    if let Some(u) = &unit {
        if !well_formed_unit(u) {
            return Err(Exception::throw_range(
                ctx,
                &format!("Invalid unit argument for Intl.NumberFormat() '{u}'"),
            ));
        }
    }
    let unit_display = o.string_or("unitDisplay", &["short", "narrow", "long"], "short")?;
    let style = match style.as_str() {
        "percent" => Style::Percent,
        "currency" => {
            let Some(code) = currency else {
                return Err(Exception::throw_type(
                    ctx,
                    "Currency code is required with currency style.",
                ));
            };
            Style::Currency {
                code: code.to_ascii_uppercase(),
                display: match currency_display.as_str() {
                    "code" => CurrencyDisplay::Code,
                    "narrowSymbol" => CurrencyDisplay::NarrowSymbol,
                    "name" => CurrencyDisplay::Name,
                    _ => CurrencyDisplay::Symbol,
                },
                accounting: currency_sign == "accounting",
            }
        }
        "unit" => {
            let Some(unit) = unit else {
                return Err(Exception::throw_type(
                    ctx,
                    "Invalid unit argument for Intl.NumberFormat() ''",
                ));
            };
            Style::Unit {
                unit,
                display: match unit_display.as_str() {
                    "narrow" => UnitDisplay::Narrow,
                    "long" => UnitDisplay::Long,
                    _ => UnitDisplay::Short,
                },
            }
        }
        _ => Style::Decimal,
    };
    let notation = o.string_or(
        "notation",
        &["standard", "scientific", "engineering", "compact"],
        "standard",
    )?;
    let (mnfd_default, mxfd_default) = match (&style, notation.as_str()) {
        (Style::Currency { code, .. }, "standard") => {
            let d = currency_digits(code);
            (d, d)
        }
        (Style::Percent, _) => (0, 0),
        _ => (0, 3),
    };
    let compact = notation == "compact";
    let digits = digit_options(ctx, &o, mnfd_default, mxfd_default, compact)?;
    let compact_display = o.string_or("compactDisplay", &["short", "long"], "short")?;
    let notation = match notation.as_str() {
        "scientific" => Notation::Scientific,
        "engineering" => Notation::Engineering,
        "compact" => Notation::Compact {
            long: compact_display == "long",
        },
        _ => Notation::Standard,
    };
    let default_grouping = if compact { "min2" } else { "auto" };
    let grouping_reported = use_grouping_option(&o, default_grouping)?;
    let grouping = match grouping_reported {
        Some("always") => Grouping::Always,
        Some("min2") => Grouping::Min2,
        Some(_) => Grouping::Auto,
        None => Grouping::Never,
    };
    let sign = match o
        .string_or(
            "signDisplay",
            &["auto", "never", "always", "exceptZero", "negative"],
            "auto",
        )?
        .as_str()
    {
        "never" => SignDisplay::Never,
        "always" => SignDisplay::Always,
        "exceptZero" => SignDisplay::ExceptZero,
        "negative" => SignDisplay::Negative,
        _ => SignDisplay::Auto,
    };
    let mut keywords = Vec::new();
    if let (Some(nu), true) = (&numbering_system, nu_from_ext) {
        keywords.push(("nu", nu.as_str()));
    }
    let tag = resolved.tag_with(&keywords);
    Ok(Spec {
        data_locale: resolved.data,
        tag,
        numbering_system,
        style,
        notation,
        digits,
        grouping,
        grouping_reported,
        sign,
    })
}

/// `GetBooleanOrStringNumberFormatOption(options, "useGrouping", …)`.
fn use_grouping_option<'js>(
    o: &Options<'js>,
    default: &'static str,
) -> Result<Option<&'static str>> {
    let v = o.raw("useGrouping")?;
    if v.is_undefined() {
        return Ok(Some(default));
    }
    if v.as_bool() == Some(true) {
        return Ok(Some("always"));
    }
    if !super::options::truthy(&v) {
        return Ok(None);
    }
    let Coerced(s) = v.get::<Coerced<String>>()?;
    match s.as_str() {
        "true" | "false" => Ok(Some(default)),
        "min2" => Ok(Some("min2")),
        "auto" => Ok(Some("auto")),
        "always" => Ok(Some("always")),
        _ => Err(o.out_of_range("useGrouping", &s)),
    }
}

/// `-u-` keyword `key` of a requested locale.
pub fn keyword(locale: Option<&Locale>, key: &str) -> Option<String> {
    let l = locale?;
    let k = icu_locale_core::extensions::unicode::Key::try_from_str(key).ok()?;
    l.extensions.unicode.keywords.get(&k).map(|v| v.to_string())
}

/// A Unicode `type` sequence: (3*8alphanum) *("-" (3*8alphanum)).
pub fn is_type_sequence(s: &str) -> bool {
    !s.is_empty()
        && s.split('-')
            .all(|p| (3..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Whether the data has digits for numbering system `nu` (any locale may use any numbering
/// system with digits; symbols then come from the locale's default system).
fn numbering_system_supported(_resolved: &Resolved, nu: &str) -> bool {
    let Ok(sub) = icu_locale_core::subtags::Subtag::try_from_str(nu) else {
        return false;
    };
    let attrs = DecimalSymbolsV1::make_attributes(&sub);
    let req = DataRequest {
        id: DataIdentifierBorrowed::for_marker_attributes(attrs),
        ..Default::default()
    };
    DataProvider::<DecimalDigitsV1>::load(data::raw(), req).is_ok()
}

/// ISO 4217 minor-unit digits of a currency (2 when unknown, as ECMA-402 says).
pub fn currency_digits(code: &str) -> u8 {
    let Ok(c) = CurrencyType::try_from_str(&code.to_ascii_lowercase()) else {
        return 2;
    };
    match DataProvider::<CurrencyFractionsV1>::load(data::provider(), Default::default()) {
        Ok(r) => r.payload.get().resolve(c).digits,
        Err(_) => 2,
    }
}

/// The data provider of the number formatters: the Intl data, with grouping sizes and
/// currency rounding adjusted for the options (module docs).
pub struct NumberData {
    inner: &'static Provider,
    grouping: Grouping,
    /// The fraction digits the currency formatter is told the currency has.
    currency_digits: u8,
}

impl NumberData {
    fn new(grouping: Grouping) -> Self {
        NumberData {
            inner: data::provider(),
            grouping,
            currency_digits: 0,
        }
    }
}

macro_rules! forward {
    ($($m:ty),* $(,)?) => {
        $(impl DataProvider<$m> for NumberData {
            fn load(&self, req: DataRequest) -> std::result::Result<DataResponse<$m>, DataError> {
                self.inner.load(req)
            }
        })*
    };
}

forward!(
    DecimalDigitsV1,
    DecimalCompactShortV1,
    DecimalCompactLongV1,
    PluralsCardinalV1,
    PluralsOrdinalV1,
    DecimalPercentV1,
    CurrencyEssentialsV1,
    CurrencySymbolsV1,
    CurrencyPatternsNoCurrencyV1,
    CurrencyDecimalSymbolsV1,
    CurrencyExtendedDataV1,
    CurrencyPatternsDataV1,
);

impl DataProvider<DecimalSymbolsV1> for NumberData {
    fn load(
        &self,
        req: DataRequest,
    ) -> std::result::Result<DataResponse<DecimalSymbolsV1>, DataError> {
        let mut r = self.inner.load(req)?;
        let g = self.grouping;
        if g != Grouping::Auto {
            r.payload.with_mut(
                move |s: &mut icu_decimal::provider::DecimalSymbols<'_>| match g {
                    Grouping::Always => s.grouping_sizes.min_grouping = 1,
                    Grouping::Min2 => {
                        s.grouping_sizes.min_grouping = s.grouping_sizes.min_grouping.max(2)
                    }
                    Grouping::Never => s.grouping_sizes.primary = 0,
                    Grouping::Auto => {}
                },
            );
        }
        Ok(r)
    }
}

impl DataProvider<CurrencyFractionsV1> for NumberData {
    fn load(
        &self,
        _req: DataRequest,
    ) -> std::result::Result<DataResponse<CurrencyFractionsV1>, DataError> {
        // The value arrives rounded already (digit options), with this many fraction digits:
        // the formatter's own rounding is then a no-op.
        let payload = DataPayload::from_owned(CurrencyFractions {
            fractions: Default::default(),
            default: FractionInfo {
                digits: self.currency_digits,
                rounding: Rounding::R1,
                cash_digits: None,
                cash_rounding: None,
            },
        });
        Ok(DataResponse {
            metadata: Default::default(),
            payload,
        })
    }
}

enum Body {
    Decimal,
    Percent(PercentFormatter<DecimalFormatter>),
    Currency(CurrencyBody),
    Unit(cldr_units::UnitPatterns),
}

enum AnyCurrency {
    Standard(CurrencyFormatter<DecimalFormatter>),
    Compact(CurrencyFormatter<CompactDecimalFormatter>),
}

/// ICU4X's currency formatter rounds (and pads) to the currency's digits from its data; ours
/// tells it the number of fraction digits of the value, already rounded by the digit options,
/// so it neither rounds nor pads. One formatter per digit count seen (usually one).
struct CurrencyBody {
    currency: CurrencyType,
    built: RefCell<Vec<(u8, AnyCurrency)>>,
}

impl CurrencyBody {
    fn with<R>(
        &self,
        spec: &Spec,
        digits: u8,
        f: impl FnOnce(&AnyCurrency) -> R,
    ) -> std::result::Result<R, DataError> {
        if let Some((_, c)) = self.built.borrow().iter().find(|(d, _)| *d == digits) {
            return Ok(f(c));
        }
        let c = self.build(spec, digits)?;
        let r = f(&c);
        let mut built = self.built.borrow_mut();
        if built.len() >= 8 {
            built.clear();
        }
        built.push((digits, c));
        Ok(r)
    }

    fn build(&self, spec: &Spec, digits: u8) -> std::result::Result<AnyCurrency, DataError> {
        let Style::Currency {
            display,
            accounting,
            ..
        } = &spec.style
        else {
            return Err(DataErrorKind::InvalidRequest.into_error());
        };
        let provider = NumberData {
            inner: data::provider(),
            grouping: spec.grouping,
            currency_digits: digits,
        };
        let mut locale = spec.data_locale.into_locale();
        set_nu(&mut locale, spec.numbering_system.as_deref());
        let c = self.currency;
        let usage = if *accounting {
            CurrencyUsage::Accounting
        } else {
            CurrencyUsage::Standard
        };
        let opts = CurrencyFormatterOptions::from(usage);
        let prefs = (&locale).into();
        Ok(match spec.notation {
            Notation::Compact { long } => AnyCurrency::Compact(match (display, long) {
                (CurrencyDisplay::Name, _) => {
                    CurrencyFormatter::try_new_compact_name_unstable(&provider, prefs, c)
                }
                (CurrencyDisplay::Code, false) => {
                    CurrencyFormatter::try_new_compact_code_unstable(&provider, prefs, c, opts)
                }
                (CurrencyDisplay::Code, true) => {
                    CurrencyFormatter::try_new_compact_long_code_unstable(&provider, prefs, c, opts)
                }
                (CurrencyDisplay::NarrowSymbol, false) => {
                    CurrencyFormatter::try_new_compact_symbol_narrow_unstable(
                        &provider, prefs, c, opts,
                    )
                }
                (CurrencyDisplay::NarrowSymbol, true) => {
                    CurrencyFormatter::try_new_compact_long_symbol_narrow_unstable(
                        &provider, prefs, c, opts,
                    )
                }
                (CurrencyDisplay::Symbol, false) => {
                    CurrencyFormatter::try_new_compact_symbol_unstable(&provider, prefs, c, opts)
                }
                (CurrencyDisplay::Symbol, true) => {
                    CurrencyFormatter::try_new_compact_long_symbol_unstable(
                        &provider, prefs, c, opts,
                    )
                }
            }?),
            _ => AnyCurrency::Standard(match display {
                CurrencyDisplay::Name => {
                    CurrencyFormatter::try_new_name_unstable(&provider, prefs, c)
                }
                CurrencyDisplay::Code => {
                    CurrencyFormatter::try_new_code_unstable(&provider, prefs, c, opts)
                }
                CurrencyDisplay::NarrowSymbol => {
                    CurrencyFormatter::try_new_symbol_narrow_unstable(&provider, prefs, c, opts)
                }
                CurrencyDisplay::Symbol => {
                    CurrencyFormatter::try_new_symbol_unstable(&provider, prefs, c, opts)
                }
            }?),
        })
    }
}

/// The number of fraction digits `d` shows.
fn fraction_digits(d: &Decimal) -> u8 {
    let range = d.absolute.magnitude_range();
    let low = *range.start();
    u8::try_from((-low).max(0)).unwrap_or(u8::MAX)
}

/// A built `Intl.NumberFormat`.
pub struct NumberFormat {
    pub spec: Spec,
    decimal: DecimalFormatter,
    compact: Option<CompactDecimalFormatter>,
    plural: Option<PluralRules>,
    body: Body,
    /// The resolved numbering system (e.g. "latn").
    numbering_system: String,
    /// The locale's digit for one, to place NaN and ∞ in the patterns.
    one: String,
    /// CLDR's NaN, infinity and exponent symbols for the locale.
    symbols: (String, String, String),
}

fn data_error(ctx: &Ctx<'_>, what: &str, e: impl std::fmt::Debug) -> rquickjs::Error {
    Exception::throw_range(ctx, &format!("{OWNER}: no locale data for {what} ({e:?})"))
}

impl NumberFormat {
    pub fn build(ctx: &Ctx<'_>, spec: Spec) -> Result<NumberFormat> {
        let provider = NumberData::new(spec.grouping);
        let mut locale = spec.data_locale.into_locale();
        set_nu(&mut locale, spec.numbering_system.as_deref());
        let dopts = decimal_options();
        let decimal = DecimalFormatter::try_new_unstable(&provider, (&locale).into(), dopts)
            .map_err(|e| data_error(ctx, "numbers", e))?;
        let compact = match spec.notation {
            Notation::Compact { long } => {
                let mut o = icu_decimal::options::CompactDecimalFormatterOptions::default();
                o.grouping_strategy = Some(GroupingStrategy::Auto);
                let f = if long {
                    CompactDecimalFormatter::try_new_long_unstable(&provider, (&locale).into(), o)
                } else {
                    CompactDecimalFormatter::try_new_short_unstable(&provider, (&locale).into(), o)
                };
                Some(f.map_err(|e| data_error(ctx, "compact numbers", e))?)
            }
            _ => None,
        };
        let _compact_notation = matches!(spec.notation, Notation::Compact { .. });
        let body = match &spec.style {
            Style::Decimal => Body::Decimal,
            Style::Percent => {
                let df = DecimalFormatter::try_new_unstable(&provider, (&locale).into(), dopts)
                    .map_err(|e| data_error(ctx, "numbers", e))?;
                let opts = PercentFormatterOptions::default();
                Body::Percent(
                    PercentFormatter::try_new_with_decimal_formatter_unstable(
                        &provider,
                        (&locale).into(),
                        df,
                        opts,
                    )
                    .map_err(|e| data_error(ctx, "percent", e))?,
                )
            }
            Style::Currency { code, .. } => {
                let c = CurrencyType::try_from_str(&code.to_ascii_lowercase()).map_err(|_| {
                    Exception::throw_range(ctx, &format!("Invalid currency code : {code}"))
                })?;
                let cur = CurrencyBody {
                    currency: c,
                    built: RefCell::new(Vec::new()),
                };
                // Built now for the usual number of digits, so bad data fails the constructor.
                let digits = spec.digits.min_fraction;
                cur.with(&spec, digits, |_| ())
                    .map_err(|e| data_error(ctx, "currencies", e))?;
                Body::Currency(cur)
            }
            Style::Unit { unit, display } => Body::Unit(
                cldr_units::patterns(&spec.data_locale, unit, *display)
                    .ok_or_else(|| data_error(ctx, "units", unit))?,
            ),
        };
        let plural = match spec.style {
            Style::Unit { .. } => Some(
                PluralRules::try_new_cardinal_unstable(
                    &provider,
                    PluralRulesPreferences::from(&locale),
                )
                .map_err(|e| data_error(ctx, "plural rules", e))?,
            ),
            _ => None,
        };
        let numbering_system = resolved_numbering_system(&locale);
        let one = decimal
            .format(&Decimal::from(1))
            .write_to_string()
            .into_owned();
        let symbols = super::data::tables::units(&spec.data_locale)
            .map(|u| (u.sym.nan.clone(), u.sym.inf.clone(), u.sym.exp.clone()))
            .unwrap_or_else(|| ("NaN".into(), "∞".into(), "E".into()));
        Ok(NumberFormat {
            spec,
            decimal,
            compact,
            plural,
            body,
            numbering_system,
            one,
            symbols,
        })
    }

    /// `FormatNumeric(nf, x)` as parts: (type, text) pairs in order.
    pub fn format_to_parts(&self, x: &Num) -> Vec<(&'static str, String)> {
        let mut parts = Vec::new();
        self.write(x, &mut parts);
        parts
    }

    /// `FormatNumeric(nf, x)`.
    pub fn format(&self, x: &Num) -> String {
        let mut parts = Vec::new();
        self.write(x, &mut parts);
        parts.into_iter().map(|(_, s)| s).collect()
    }

    fn write(&self, x: &Num, out: &mut Vec<(&'static str, String)>) {
        let (value, special) = match x {
            Num::NaN => (Decimal::from(1), Some(true)),
            Num::Infinity(neg) => {
                let mut d = Decimal::from(1);
                if *neg {
                    d.sign = Sign::Negative;
                }
                (d, Some(false))
            }
            Num::Finite(d) => (d.clone(), None),
        };
        let mut value = value;
        if matches!(self.spec.style, Style::Percent) && special.is_none() {
            value.multiply_pow10(2);
        }
        let negative = value.sign == Sign::Negative;
        let (mut rounded, exponent) = match special {
            Some(_) => (value.clone(), 0),
            None => self.round_with_exponent(value),
        };
        // signDisplay (ECMA-402 PartitionNumberPattern), after rounding.
        let zero = special.is_none() && rounded.absolute.is_zero();
        let sign = match (self.spec.sign, special) {
            (_, Some(true)) => Sign::None,
            (SignDisplay::Never, _) => Sign::None,
            (SignDisplay::Auto, _) => {
                if negative {
                    Sign::Negative
                } else {
                    Sign::None
                }
            }
            (SignDisplay::Always, _) => {
                if negative {
                    Sign::Negative
                } else {
                    Sign::Positive
                }
            }
            (SignDisplay::ExceptZero, _) => {
                if zero {
                    Sign::None
                } else if negative {
                    Sign::Negative
                } else {
                    Sign::Positive
                }
            }
            (SignDisplay::Negative, _) => {
                if negative && !zero {
                    Sign::Negative
                } else {
                    Sign::None
                }
            }
        };
        rounded.sign = sign;
        let mut text = Parts::default();
        let result = match (&self.body, self.spec.notation) {
            (Body::Currency(c), _) => {
                // The compact currency formatter compacts (and rounds) itself: it gets the
                // whole value, and the currency's own digits.
                rounded.multiply_pow10(exponent);
                let digits = match (&self.spec.style, self.spec.notation) {
                    (Style::Currency { code, .. }, Notation::Compact { .. }) => {
                        currency_digits(code)
                    }
                    _ => fraction_digits(&rounded),
                };
                match c.with(&self.spec, digits, |f| match f {
                    AnyCurrency::Standard(f) => {
                        f.format_fixed_decimal(&rounded).write_to_parts(&mut text)
                    }
                    AnyCurrency::Compact(f) => {
                        f.format_fixed_decimal(&rounded).write_to_parts(&mut text)
                    }
                }) {
                    Ok(r) => r,
                    Err(_) => self.decimal.format(&rounded).write_to_parts(&mut text),
                }
            }
            (Body::Percent(f), _) => {
                let mut abs = rounded.clone();
                abs.sign = Sign::None;
                let full = if sign == Sign::Positive {
                    let mut o = PercentFormatterOptions::default();
                    o.display = PercentDisplay::ExplicitSign;
                    // A percent formatter with an explicit sign, on the same data.
                    match PercentFormatter::try_new_with_decimal_formatter_unstable(
                        &NumberData::new(self.spec.grouping),
                        (&self.spec.data_locale.into_locale()).into(),
                        self.fresh_decimal(),
                        o,
                    ) {
                        Ok(p) => p.format(&abs).write_to_string().into_owned(),
                        Err(_) => f.format(&abs).write_to_string().into_owned(),
                    }
                } else {
                    f.format(&rounded).write_to_string().into_owned()
                };
                // ICU4X's percent formatter does not annotate its output: the number in it
                // is the decimal formatter's, so that one supplies the number's parts.
                let body = self.decimal.format(&abs).write_to_string().into_owned();
                match full.find(&body) {
                    Some(at) => {
                        let _ = text.write_str(&full[..at]);
                        let _ = self.decimal.format(&abs).write_to_parts(&mut text);
                        text.write_str(&full[at + body.len()..])
                    }
                    None => text.write_str(&full),
                }
            }
            (Body::Unit(u), _) => self.write_unit(u, &rounded, exponent, &mut text),
            (Body::Decimal, _) => self.write_number(&rounded, exponent, &mut text),
        };
        let _ = result;
        text.finish();
        let mut pieces = text.classify(self);
        if let Some(special) = special {
            // The value was written as 1: replace its digits by the symbol.
            let (kind, symbol) = if special {
                ("nan", &self.symbols.0)
            } else {
                ("infinity", &self.symbols.1)
            };
            if let Some(p) = pieces
                .iter_mut()
                .find(|(t, s)| *t == "integer" && *s == self.one)
            {
                *p = (kind, symbol.clone());
            }
        }
        out.extend(pieces);
    }

    /// A decimal formatter like the one this NumberFormat holds (for the rare explicit-sign
    /// percent).
    fn fresh_decimal(&self) -> DecimalFormatter {
        let mut locale = self.spec.data_locale.into_locale();
        set_nu(&mut locale, self.spec.numbering_system.as_deref());
        let dopts = decimal_options();
        DecimalFormatter::try_new_unstable(
            &NumberData::new(self.spec.grouping),
            (&locale).into(),
            dopts,
        )
        .unwrap_or_else(|_| self.decimal.clone())
    }

    /// A number in its notation (standard, compact, scientific), with its sign.
    fn write_number(&self, d: &Decimal, exponent: i16, sink: &mut Parts) -> std::fmt::Result {
        match self.spec.notation {
            Notation::Compact { .. } => {
                let Some(c) = &self.compact else {
                    return self.decimal.format(d).write_to_parts(sink);
                };
                let e = u8::try_from(exponent).unwrap_or(0);
                match c.format_with_exponent(d, e) {
                    Ok(w) => w.write_to_parts(sink),
                    Err(_) => {
                        let mut full = d.clone();
                        full.multiply_pow10(exponent);
                        self.decimal.format(&full).write_to_parts(sink)
                    }
                }
            }
            Notation::Scientific | Notation::Engineering => {
                self.decimal.format(d).write_to_parts(sink)?;
                sink.with_part(EXPONENT_SEPARATOR, |s| s.write_str(&self.symbols.2))?;
                let e = Decimal::from(exponent as i32);
                sink.with_part(EXPONENT_INTEGER, |s| self.decimal.format(&e).write_to(s))
            }
            Notation::Standard => self.decimal.format(d).write_to_parts(sink),
        }
    }

    fn write_unit(
        &self,
        u: &cldr_units::UnitPatterns,
        d: &Decimal,
        exponent: i16,
        sink: &mut Parts,
    ) -> std::fmt::Result {
        let category = match &self.plural {
            Some(p) => {
                let mut v = d.clone();
                v.multiply_pow10(exponent);
                category_name(p.category_for(&v))
            }
            None => "other",
        };
        let pattern = u.pattern(category);
        let (before, after) = pattern.split_once("{0}").unwrap_or(("", pattern.as_str()));
        if !before.is_empty() {
            sink.with_part(UNIT, |s| s.write_str(before))?;
        }
        self.write_number(d, exponent, sink)?;
        if !after.is_empty() {
            sink.with_part(UNIT, |s| s.write_str(after))?;
        }
        Ok(())
    }

    /// Rounds `x` per the digit options and notation; returns the value to write (for
    /// compact/scientific: the significand) and its exponent.
    fn round_with_exponent(&self, x: Decimal) -> (Decimal, i16) {
        let digits = &self.spec.digits;
        match self.spec.notation {
            Notation::Standard => (round(&x, digits), 0),
            Notation::Scientific | Notation::Engineering => {
                if x.absolute.is_zero() {
                    return (round(&x, digits), 0);
                }
                let eng = matches!(self.spec.notation, Notation::Engineering);
                let expo = |m: i16| if eng { m.div_euclid(3) * 3 } else { m };
                let m = x.absolute.nonzero_magnitude_start();
                let mut e = expo(m);
                let mut s = x.clone();
                s.multiply_pow10(-e);
                let mut r = round(&s, digits);
                let limit = if eng { 3 } else { 1 };
                if r.absolute.nonzero_magnitude_start() >= limit {
                    e = expo(m + 1);
                    s = x.clone();
                    s.multiply_pow10(-e);
                    r = round(&s, digits);
                }
                (r, e)
            }
            Notation::Compact { .. } => {
                let Some(c) = &self.compact else {
                    return (round(&x, digits), 0);
                };
                if x.absolute.is_zero() {
                    return (round(&x, digits), 0);
                }
                let m = x.absolute.nonzero_magnitude_start();
                let e = c.compact_exponent_for_magnitude(m) as i16;
                let mut s = x.clone();
                s.multiply_pow10(-e);
                let r = round(&s, digits);
                if r.absolute.is_zero() || r.absolute.nonzero_magnitude_start() == m - e {
                    return (r, e);
                }
                let e2 = c.compact_exponent_for_magnitude(m + 1) as i16;
                let mut s = x.clone();
                s.multiply_pow10(-e2);
                (round(&s, digits), e2)
            }
        }
    }

    /// `resolvedOptions()`.
    pub fn resolved_options<'js>(&self, ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let o = Object::new(ctx.clone())?;
        let s = &self.spec;
        o.set("locale", s.tag.as_str())?;
        o.set("numberingSystem", self.numbering_system.as_str())?;
        match &s.style {
            Style::Decimal => o.set("style", "decimal")?,
            Style::Percent => o.set("style", "percent")?,
            Style::Currency {
                code,
                display,
                accounting,
            } => {
                o.set("style", "currency")?;
                o.set("currency", code.as_str())?;
                o.set(
                    "currencyDisplay",
                    match display {
                        CurrencyDisplay::Code => "code",
                        CurrencyDisplay::Symbol => "symbol",
                        CurrencyDisplay::NarrowSymbol => "narrowSymbol",
                        CurrencyDisplay::Name => "name",
                    },
                )?;
                o.set(
                    "currencySign",
                    if *accounting {
                        "accounting"
                    } else {
                        "standard"
                    },
                )?;
            }
            Style::Unit { unit, display } => {
                o.set("style", "unit")?;
                o.set("unit", unit.as_str())?;
                o.set("unitDisplay", display.as_str())?;
            }
        }
        let d = &s.digits;
        o.set("minimumIntegerDigits", d.min_integer)?;
        let sd = matches!(
            d.rounding_type,
            RoundingType::SignificantDigits
                | RoundingType::MorePrecision
                | RoundingType::LessPrecision
        );
        let fd = matches!(
            d.rounding_type,
            RoundingType::FractionDigits
                | RoundingType::MorePrecision
                | RoundingType::LessPrecision
        );
        if sd {
            o.set("minimumSignificantDigits", d.min_significant)?;
            o.set("maximumSignificantDigits", d.max_significant)?;
        }
        if fd {
            o.set("minimumFractionDigits", d.min_fraction)?;
            o.set("maximumFractionDigits", d.max_fraction)?;
        }
        match s.grouping_reported {
            Some(g) => o.set("useGrouping", g)?,
            None => o.set("useGrouping", false)?,
        }
        match s.notation {
            Notation::Standard => o.set("notation", "standard")?,
            Notation::Scientific => o.set("notation", "scientific")?,
            Notation::Engineering => o.set("notation", "engineering")?,
            Notation::Compact { long } => {
                o.set("notation", "compact")?;
                o.set("compactDisplay", if long { "long" } else { "short" })?;
            }
        }
        o.set(
            "signDisplay",
            match s.sign {
                SignDisplay::Auto => "auto",
                SignDisplay::Never => "never",
                SignDisplay::Always => "always",
                SignDisplay::ExceptZero => "exceptZero",
                SignDisplay::Negative => "negative",
            },
        )?;
        o.set("roundingMode", d.mode)?;
        o.set("roundingIncrement", d.increment)?;
        o.set(
            "trailingZeroDisplay",
            if d.strip_if_integer {
                "stripIfInteger"
            } else {
                "auto"
            },
        )?;
        o.set("roundingPriority", d.priority)?;
        Ok(o)
    }
}

/// `-u-nu-<nu>` on `locale`.
fn set_nu(locale: &mut Locale, nu: Option<&str>) {
    let Some(nu) = nu else { return };
    if let Ok(v) = icu_locale_core::extensions::unicode::Value::try_from_str(nu) {
        locale
            .extensions
            .unicode
            .keywords
            .set(icu_locale_core::extensions::unicode::key!("nu"), v);
    }
}

fn decimal_options() -> DecimalFormatterOptions {
    let mut o = DecimalFormatterOptions::default();
    o.grouping_strategy = Some(GroupingStrategy::Auto);
    o
}

/// The numbering system the decimal data for `locale` uses.
pub fn resolved_numbering_system(locale: &Locale) -> String {
    let mut nu_req: Option<icu_locale_core::subtags::Subtag> = None;
    if let Some(v) = locale
        .extensions
        .unicode
        .keywords
        .get(&icu_locale_core::extensions::unicode::key!("nu"))
    {
        nu_req = icu_locale_core::subtags::Subtag::try_from_str(&v.to_string()).ok();
    }
    if let Some(n) = nu_req {
        return n.to_string();
    }
    let dl = DataLocale::from(locale);
    let req = DataRequest {
        id: DataIdentifierBorrowed::for_locale(&dl),
        ..Default::default()
    };
    match DataProvider::<DecimalSymbolsV1>::load(data::provider(), req) {
        Ok(r) => r.payload.get().numsys().to_string(),
        Err(_) => "latn".to_string(),
    }
}

/// `ToIntlMathematicalValue`: a Number, BigInt or numeric string as an exact decimal.
#[derive(Debug, Clone)]
pub enum Num {
    Finite(Decimal),
    Infinity(bool),
    NaN,
}

impl Num {
    pub fn from_f64(x: f64) -> Num {
        if x.is_nan() {
            return Num::NaN;
        }
        if x.is_infinite() {
            return Num::Infinity(x < 0.0);
        }
        let mut d = Decimal::try_from_f64(x, FloatPrecision::RoundTrip)
            .unwrap_or_else(|_| Decimal::from(0));
        d.sign = if x.is_sign_negative() {
            Sign::Negative
        } else {
            Sign::None
        };
        Num::Finite(d)
    }

    pub fn from_value<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> Result<Num> {
        if let Some(n) = v.as_number() {
            return Ok(Num::from_f64(n));
        }
        if let Some(b) = v.as_big_int() {
            let s: String = b.clone().into_value().get::<Coerced<String>>()?.0;
            return Ok(Decimal::try_from_str(&s)
                .map(Num::Finite)
                .unwrap_or(Num::NaN));
        }
        if let Some(s) = v.as_string() {
            return Ok(Num::from_str_value(&s.to_string()?));
        }
        // ToPrimitive, then again (objects, booleans, null, undefined).
        let prim: Value = if v.is_object() {
            let Coerced(n) = v.get::<Coerced<f64>>()?;
            return Ok(Num::from_f64(n));
        } else {
            v
        };
        let Coerced(n) = prim.get::<Coerced<f64>>()?;
        let _ = ctx;
        Ok(Num::from_f64(n))
    }

    /// A numeric string as an exact decimal (StringNumericLiteral; `Infinity`, hex and
    /// empty strings as Number does).
    fn from_str_value(s: &str) -> Num {
        let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        if t.is_empty() {
            return Num::from_f64(0.0);
        }
        match t {
            "Infinity" | "+Infinity" => return Num::Infinity(false),
            "-Infinity" => return Num::Infinity(true),
            _ => {}
        }
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("0x") || lower.starts_with("0o") || lower.starts_with("0b") {
            let radix = match &lower[1..2] {
                "x" => 16,
                "o" => 8,
                _ => 2,
            };
            return match u128::from_str_radix(&t[2..], radix) {
                Ok(v) => Num::Finite(Decimal::from(v)),
                Err(_) => Num::NaN,
            };
        }
        let valid = t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && t.bytes().any(|b| b.is_ascii_digit());
        if !valid {
            return Num::NaN;
        }
        // fixed_decimal reads plain and exponent notation.
        let t = t.strip_prefix('+').unwrap_or(t);
        match Decimal::from_str(t) {
            Ok(d) => Num::Finite(d),
            Err(_) => match t.parse::<f64>() {
                Ok(f) => Num::from_f64(f),
                Err(_) => Num::NaN,
            },
        }
    }
}

fn mode_of(name: &str) -> SignedRoundingMode {
    use SignedRoundingMode as S;
    use UnsignedRoundingMode as U;
    match name {
        "ceil" => S::Ceil,
        "floor" => S::Floor,
        "expand" => S::Unsigned(U::Expand),
        "trunc" => S::Unsigned(U::Trunc),
        "halfCeil" => S::HalfCeil,
        "halfFloor" => S::HalfFloor,
        "halfTrunc" => S::Unsigned(U::HalfTrunc),
        "halfEven" => S::Unsigned(U::HalfEven),
        _ => S::Unsigned(U::HalfExpand),
    }
}

/// `ToRawPrecision`: `max` significant digits, trailing zeros kept down to `min`. Returns the
/// rounded value and its rounding magnitude.
fn raw_precision(x: &Decimal, min: u8, max: u8, mode: SignedRoundingMode) -> (Decimal, i16) {
    let mut d = x.clone();
    if d.absolute.is_zero() {
        let mut z = Decimal::from(0);
        z.sign = x.sign;
        z.absolute.pad_end(-(min as i16 - 1));
        return (z, -(max as i16 - 1));
    }
    let e = d.absolute.nonzero_magnitude_start();
    let pos = e - max as i16 + 1;
    d.round_with_mode(pos, mode);
    d.absolute.trim_end();
    // Rounding may have added a digit (9.99 → 10).
    let e2 = d.absolute.nonzero_magnitude_start();
    let keep = e2 - min as i16 + 1;
    if keep < 0 {
        d.absolute.pad_end(keep);
    }
    (d, pos)
}

/// `ToRawFixed`: `max` fraction digits (in steps of `increment`), trailing zeros kept down to
/// `min`.
fn raw_fixed(
    x: &Decimal,
    min: u8,
    max: u8,
    increment: u16,
    mode: SignedRoundingMode,
) -> (Decimal, i16) {
    let mut d = x.clone();
    let mut pos = -(max as i16);
    let mut inc = increment;
    while inc >= 10 && inc.is_multiple_of(10) {
        inc /= 10;
        pos += 1;
    }
    let step = match inc {
        2 => Some(RoundingIncrement::MultiplesOf2),
        5 => Some(RoundingIncrement::MultiplesOf5),
        25 => Some(RoundingIncrement::MultiplesOf25),
        _ => None,
    };
    match step {
        Some(s) => d.round_with_mode_and_increment(pos, mode, s),
        None => d.round_with_mode(pos, mode),
    }
    d.absolute.trim_end();
    d.absolute.pad_end(-(min as i16));
    (d, -(max as i16))
}

/// `FormatNumericToString`'s rounding: the digit options applied to `x` (sign kept).
pub fn round(x: &Decimal, digits: &Digits) -> Decimal {
    let mode = mode_of(digits.mode);
    let mut r = match digits.rounding_type {
        RoundingType::SignificantDigits => {
            raw_precision(x, digits.min_significant, digits.max_significant, mode).0
        }
        RoundingType::FractionDigits => {
            raw_fixed(
                x,
                digits.min_fraction,
                digits.max_fraction,
                digits.increment,
                mode,
            )
            .0
        }
        RoundingType::MorePrecision | RoundingType::LessPrecision => {
            let (s, sm) = raw_precision(x, digits.min_significant, digits.max_significant, mode);
            let (f, fm) = raw_fixed(x, digits.min_fraction, digits.max_fraction, 1, mode);
            let pick_s = if digits.rounding_type == RoundingType::MorePrecision {
                sm <= fm
            } else {
                sm > fm
            };
            if pick_s {
                s
            } else {
                f
            }
        }
    };
    if digits.strip_if_integer {
        let mut t = r.clone();
        t.absolute.trim_end();
        if t.absolute.nonzero_magnitude_end() >= 0 || t.absolute.is_zero() {
            r = t;
        }
    }
    r.absolute.pad_start(digits.min_integer as i16);
    r
}

const EXPONENT_SEPARATOR: writeable::Part = writeable::Part {
    category: "intl",
    value: "exponentSeparator",
};
const EXPONENT_INTEGER: writeable::Part = writeable::Part {
    category: "intl",
    value: "exponentInteger",
};
const UNIT: writeable::Part = writeable::Part {
    category: "intl",
    value: "unit",
};

/// Collects a formatter's output with ICU4X's part annotations, then names every piece the
/// way `formatToParts` does.
#[derive(Default)]
pub struct Parts {
    text: String,
    spans: Vec<(usize, usize, &'static str)>,
    /// Only annotations of this category (e.g. "datetime") are kept, if set.
    category: Option<&'static str>,
}

impl std::fmt::Write for Parts {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.text.push_str(s);
        Ok(())
    }
}

impl writeable::PartsWrite for Parts {
    type SubPartsWrite = Parts;
    fn with_part(
        &mut self,
        part: writeable::Part,
        mut f: impl FnMut(&mut Self::SubPartsWrite) -> std::fmt::Result,
    ) -> std::fmt::Result {
        let start = self.text.len();
        f(self)?;
        let end = self.text.len();
        if end > start && self.category.is_none_or(|c| c == part.category) {
            self.spans.push((start, end, part.value));
        }
        Ok(())
    }
}

impl Parts {
    /// A collector keeping only the annotations of one category.
    pub fn only(category: &'static str) -> Parts {
        Parts {
            category: Some(category),
            ..Default::default()
        }
    }

    /// The text and its annotated spans (start, end, part name).
    pub fn into_inner(self) -> (String, Vec<(usize, usize, &'static str)>) {
        (self.text, self.spans)
    }

    /// The text cut where the innermost annotation changes: (part name or `None`, text).
    pub fn segments(&self) -> Vec<(Option<&'static str>, String)> {
        let mut spans = self.spans.clone();
        // Outer spans first, so inner ones overwrite them.
        spans.sort_by_key(|&(s, e, _)| (s, std::cmp::Reverse(e)));
        let mut kinds: Vec<Option<&'static str>> = vec![None; self.text.len()];
        for &(s, e, v) in &spans {
            for k in kinds.iter_mut().take(e).skip(s) {
                *k = Some(v);
            }
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.text.len() {
            let k = kinds[i];
            let mut j = i + 1;
            while j < self.text.len() && (kinds[j] == k || !self.text.is_char_boundary(j)) {
                j += 1;
            }
            out.push((k, self.text[i..j].to_string()));
            i = j;
        }
        out
    }

    fn finish(&mut self) {
        // Innermost annotations win: sort by start, then by length.
        self.spans
            .sort_by_key(|&(s, e, _)| (s, std::cmp::Reverse(e)));
    }

    /// Splits the text into typed pieces: annotated spans as ICU4X marked them (innermost
    /// first), the rest by what it is (currency symbol, percent sign, compact suffix, space).
    fn classify(&self, nf: &NumberFormat) -> Vec<(&'static str, String)> {
        // Byte → part type, innermost annotation last so it overwrites.
        let mut kinds: Vec<Option<&'static str>> = vec![None; self.text.len()];
        for &(s, e, v) in &self.spans {
            for k in kinds.iter_mut().take(e).skip(s) {
                *k = Some(v);
            }
        }
        let mut out: Vec<(&'static str, String)> = Vec::new();
        let mut i = 0;
        let bytes = self.text.as_bytes();
        while i < bytes.len() {
            let k = kinds[i];
            let mut j = i + 1;
            while j < bytes.len() && (kinds[j] == k || !self.text.is_char_boundary(j)) {
                j += 1;
            }
            let piece = &self.text[i..j];
            match k {
                Some("integer")
                | Some("fraction")
                | Some("group")
                | Some("decimal")
                | Some("minusSign")
                | Some("plusSign")
                | Some("exponentSeparator")
                | Some("exponentInteger")
                | Some("unit") => {
                    let name = match k {
                        Some("integer") => "integer",
                        Some("fraction") => "fraction",
                        Some("group") => "group",
                        Some("decimal") => "decimal",
                        Some("minusSign") => "minusSign",
                        Some("plusSign") => "plusSign",
                        Some("exponentSeparator") => "exponentSeparator",
                        Some("exponentInteger") => "exponentInteger",
                        _ => "unit",
                    };
                    if name == "unit" {
                        split_literal(piece, "unit", &mut out);
                    } else {
                        out.push((name, piece.to_string()));
                    }
                }
                _ => self.classify_affix(nf, piece, &mut out),
            }
            i = j;
        }
        out
    }

    fn classify_affix(
        &self,
        nf: &NumberFormat,
        piece: &str,
        out: &mut Vec<(&'static str, String)>,
    ) {
        let kind = match &nf.spec.style {
            Style::Currency { .. } => "currency",
            Style::Percent => "percentSign",
            _ => "compact",
        };
        // Signs a pattern placed (accounting parentheses are literals).
        let mut rest = piece;
        while !rest.is_empty() {
            let c = rest.chars().next().unwrap_or(' ');
            let len = c.len_utf8();
            if is_literal_char(c) {
                push_piece(out, "literal", &rest[..len]);
            } else if c == '-' || c == '\u{2212}' {
                push_piece(out, "minusSign", &rest[..len]);
            } else if c == '+' {
                push_piece(out, "plusSign", &rest[..len]);
            } else if (c == '%' || c == '٪' || c == '‰') && kind == "percentSign" {
                push_piece(out, "percentSign", &rest[..len]);
            } else if kind == "percentSign" {
                push_piece(out, "literal", &rest[..len]);
            } else {
                push_piece(out, kind, &rest[..len]);
            }
            rest = &rest[len..];
        }
    }
}

/// Spaces, bidi marks and accounting parentheses: `literal` parts.
fn is_literal_char(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{a0}' | '\u{202f}' | '\u{200e}' | '\u{200f}' | '\u{61c}' | '(' | ')'
        )
}

fn push_piece(out: &mut Vec<(&'static str, String)>, kind: &'static str, s: &str) {
    if let Some(last) = out.last_mut() {
        if last.0 == kind && kind != "minusSign" && kind != "plusSign" {
            last.1.push_str(s);
            return;
        }
    }
    out.push((kind, s.to_string()));
}

/// A unit affix: leading/trailing spaces are literals, the rest is the unit.
fn split_literal(piece: &str, kind: &'static str, out: &mut Vec<(&'static str, String)>) {
    let start = piece.len() - piece.trim_start_matches(is_literal_char).len();
    let end = piece.trim_end_matches(is_literal_char).len();
    if start > 0 {
        push_piece(out, "literal", &piece[..start]);
    }
    if end > start {
        push_piece(out, kind, &piece[start..end]);
    }
    if end < piece.len() && end >= start {
        push_piece(out, "literal", &piece[end.max(start)..]);
    }
}

/// A string written from parts, for `NumberFormat.prototype.formatToParts`.
pub fn parts_array<'js>(
    ctx: &Ctx<'js>,
    parts: &[(&'static str, String)],
) -> Result<rquickjs::Array<'js>> {
    let arr = rquickjs::Array::new(ctx.clone())?;
    for (i, (t, v)) in parts.iter().enumerate() {
        let o = Object::new(ctx.clone())?;
        o.set("type", *t)?;
        o.set("value", v.as_str())?;
        arr.set(i, o)?;
    }
    Ok(arr)
}
