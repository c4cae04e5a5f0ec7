//! Regenerates `sandbox-child/src/engine/intl/data/icu.postcard`: ICU4X's own compiled CLDR data
//! (the `icu_*_data` crates of the ICU4X release the child links), filtered to the locales of
//! `locales.txt` and to the data markers the child's Intl code loads, re-exported as one
//! postcard blob.
//!
//! Why not the child enabling `compiled_data`: that links every locale ICU4X ships (hundreds)
//! for each marker used, and compiles the whole data crates (tens of MB of source) in every
//! clean build. Why a blob rather than baked Rust statics: baked data is full of `&'static`
//! references, which the dynamic loader relocates in every process at start-up (measured here:
//! +4 300 relocations, ~0.08 ms per exec and 130 KB of private dirty pages in every child,
//! used or not). A blob is one byte array, untouched until a function uses `Intl`.
//!
//! Usage: `cargo run --release -- <locales.txt> <currencies.txt> <output .postcard>` (what
//! `make intl-data` runs).

extern crate alloc;

use icu_provider_export::blob_exporter::BlobExporter;
use icu_provider_export::prelude::*;

/// The source: every marker below, answered from the `icu_*_data` crates, and iterable so the
/// exporter can enumerate what exists.
struct Source;

const _: () = {
    // ICU4X 2.4's data macros spell `BTreeSet` as `BtreeSet` in the iterable impls of singleton
    // markers; this local `std` resolves that one name and forwards everything else.
    #[allow(unused_imports)]
    mod std {
        pub use ::std::*;
        pub mod collections {
            pub use ::std::collections::*;
            pub type BtreeSet<T> = ::std::collections::BTreeSet<T>;
        }
    }
    // The per-marker macros call their `__impl_*` helpers unqualified.
    use icu_decimal_data::*;
    use icu_plurals_data::*;
    use icu_list_data::*;
    use icu_collator_data::*;
    use icu_normalizer_data::*;
    use icu_locale_data::*;
    use icu_locale_fallback_data::*;
    use icu_datetime_data::*;
    use icu_time_data::*;
    use icu_experimental_data::*;
    icu_list_data::make_provider!(Source);
    icu_decimal_data::impl_decimal_symbols_v1!(Source, ITER);
    icu_decimal_data::impl_decimal_digits_v1!(Source, ITER);
    icu_decimal_data::impl_decimal_compact_short_v1!(Source, ITER);
    icu_decimal_data::impl_decimal_compact_long_v1!(Source, ITER);
    icu_plurals_data::impl_plurals_cardinal_v1!(Source, ITER);
    icu_plurals_data::impl_plurals_ordinal_v1!(Source, ITER);
    icu_list_data::impl_list_and_v1!(Source, ITER);
    icu_list_data::impl_list_or_v1!(Source, ITER);
    icu_list_data::impl_list_unit_v1!(Source, ITER);
    icu_collator_data::impl_collation_root_v1!(Source, ITER);
    icu_collator_data::impl_collation_tailoring_v1!(Source, ITER);
    icu_collator_data::impl_collation_diacritics_v1!(Source, ITER);
    icu_collator_data::impl_collation_jamo_v1!(Source, ITER);
    icu_collator_data::impl_collation_metadata_v1!(Source, ITER);
    icu_collator_data::impl_collation_reordering_v1!(Source, ITER);
    icu_collator_data::impl_collation_special_primaries_v1!(Source, ITER);
    icu_normalizer_data::impl_normalizer_nfd_data_v1!(Source, ITER);
    icu_normalizer_data::impl_normalizer_nfd_tables_v1!(Source, ITER);
    icu_locale_data::impl_locale_aliases_v1!(Source, ITER);
    icu_locale_data::impl_locale_likely_subtags_extended_v1!(Source, ITER);
    icu_locale_data::impl_locale_likely_subtags_script_region_v1!(Source, ITER);
    icu_locale_fallback_data::impl_locale_likely_subtags_language_v1!(Source, ITER);
    icu_locale_fallback_data::impl_locale_parents_v1!(Source, ITER);
    icu_datetime_data::impl_datetime_names_dayperiod_v1!(Source, ITER);
    icu_datetime_data::impl_datetime_names_month_gregorian_v1!(Source, ITER);
    icu_datetime_data::impl_datetime_names_weekday_v1!(Source, ITER);
    icu_datetime_data::impl_datetime_names_year_gregorian_v1!(Source, ITER);
    icu_datetime_data::impl_datetime_patterns_date_gregorian_v1!(Source, ITER);
    icu_datetime_data::impl_datetime_patterns_glue_v1!(Source, ITER);
    icu_datetime_data::impl_datetime_patterns_time_v1!(Source, ITER);
    icu_datetime_data::impl_timezone_names_cities_override_v1!(Source, ITER);
    icu_datetime_data::impl_timezone_names_cities_root_v1!(Source, ITER);
    icu_datetime_data::impl_timezone_names_essentials_v1!(Source, ITER);
    icu_datetime_data::impl_timezone_names_generic_long_v1!(Source, ITER);
    icu_datetime_data::impl_timezone_names_generic_short_v1!(Source, ITER);
    icu_datetime_data::impl_timezone_names_locations_override_v1!(Source, ITER);
    icu_datetime_data::impl_timezone_names_locations_root_v1!(Source, ITER);
    icu_datetime_data::impl_timezone_names_specific_long_v1!(Source, ITER);
    icu_datetime_data::impl_timezone_names_specific_short_v1!(Source, ITER);
    icu_datetime_data::impl_timezone_names_standard_long_v1!(Source, ITER);
    icu_time_data::impl_timezone_identifiers_iana_core_v1!(Source, ITER);
    icu_time_data::impl_timezone_identifiers_iana_extended_v1!(Source, ITER);
    icu_time_data::impl_timezone_periods_v1!(Source, ITER);
    icu_experimental_data::impl_currency_decimal_symbols_v1!(Source, ITER);
    icu_experimental_data::impl_currency_essentials_v1!(Source, ITER);
    icu_experimental_data::impl_currency_extended_data_v1!(Source, ITER);
    icu_experimental_data::impl_currency_fractions_v1!(Source, ITER);
    icu_experimental_data::impl_currency_patterns_data_v1!(Source, ITER);
    icu_experimental_data::impl_currency_patterns_no_currency_v1!(Source, ITER);
    icu_experimental_data::impl_currency_symbols_v1!(Source, ITER);
    icu_experimental_data::impl_decimal_percent_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_second_long_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_second_short_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_second_narrow_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_minute_long_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_minute_short_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_minute_narrow_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_hour_long_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_hour_short_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_hour_narrow_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_day_long_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_day_short_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_day_narrow_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_week_long_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_week_short_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_week_narrow_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_month_long_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_month_short_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_month_narrow_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_quarter_long_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_quarter_short_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_quarter_narrow_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_year_long_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_year_short_v1!(Source, ITER);
    icu_experimental_data::impl_datetime_relative_year_narrow_v1!(Source, ITER);
};

icu_provider::export::make_exportable_provider!(
    Source,
    [
        icu::decimal::provider::DecimalSymbolsV1,
        icu::decimal::provider::DecimalDigitsV1,
        icu::decimal::provider::DecimalCompactShortV1,
        icu::decimal::provider::DecimalCompactLongV1,
        icu::plurals::provider::PluralsCardinalV1,
        icu::plurals::provider::PluralsOrdinalV1,
        icu::list::provider::ListAndV1,
        icu::list::provider::ListOrV1,
        icu::list::provider::ListUnitV1,
        icu::collator::provider::CollationRootV1,
        icu::collator::provider::CollationTailoringV1,
        icu::collator::provider::CollationDiacriticsV1,
        icu::collator::provider::CollationJamoV1,
        icu::collator::provider::CollationMetadataV1,
        icu::collator::provider::CollationReorderingV1,
        icu::collator::provider::CollationSpecialPrimariesV1,
        icu::normalizer::provider::NormalizerNfdDataV1,
        icu::normalizer::provider::NormalizerNfdTablesV1,
        icu::locale::provider::LocaleAliasesV1,
        icu::locale::provider::LocaleLikelySubtagsExtendedV1,
        icu::locale::provider::LocaleLikelySubtagsScriptRegionV1,
        icu::locale::fallback::provider::LocaleLikelySubtagsLanguageV1,
        icu::locale::fallback::provider::LocaleParentsV1,
        icu::datetime::provider::names::DatetimeNamesDayperiodV1,
        icu::datetime::provider::names::DatetimeNamesMonthGregorianV1,
        icu::datetime::provider::names::DatetimeNamesWeekdayV1,
        icu::datetime::provider::names::DatetimeNamesYearGregorianV1,
        icu::datetime::provider::semantic_skeletons::DatetimePatternsDateGregorianV1,
        icu::datetime::provider::semantic_skeletons::DatetimePatternsGlueV1,
        icu::datetime::provider::semantic_skeletons::DatetimePatternsTimeV1,
        icu::datetime::provider::time_zones::TimezoneNamesCitiesOverrideV1,
        icu::datetime::provider::time_zones::TimezoneNamesCitiesRootV1,
        icu::datetime::provider::time_zones::TimezoneNamesEssentialsV1,
        icu::datetime::provider::time_zones::TimezoneNamesGenericLongV1,
        icu::datetime::provider::time_zones::TimezoneNamesGenericShortV1,
        icu::datetime::provider::time_zones::TimezoneNamesLocationsOverrideV1,
        icu::datetime::provider::time_zones::TimezoneNamesLocationsRootV1,
        icu::datetime::provider::time_zones::TimezoneNamesSpecificLongV1,
        icu::datetime::provider::time_zones::TimezoneNamesSpecificShortV1,
        icu::datetime::provider::time_zones::TimezoneNamesStandardLongV1,
        icu::time::provider::iana::TimezoneIdentifiersIanaCoreV1,
        icu::time::provider::iana::TimezoneIdentifiersIanaExtendedV1,
        icu::time::provider::TimezonePeriodsV1,
        icu::experimental::dimension::provider::currency::symbols::CurrencyDecimalSymbolsV1,
        icu::experimental::dimension::provider::currency::essentials::CurrencyEssentialsV1,
        icu::experimental::dimension::provider::currency::extended::CurrencyExtendedDataV1,
        icu::experimental::dimension::provider::currency::fractions::CurrencyFractionsV1,
        icu::experimental::dimension::provider::currency::patterns::CurrencyPatternsDataV1,
        icu::experimental::dimension::provider::currency::no_currency::CurrencyPatternsNoCurrencyV1,
        icu::experimental::dimension::provider::currency::symbols::CurrencySymbolsV1,
        icu::experimental::dimension::provider::percent::DecimalPercentV1,
        icu::experimental::relativetime::provider::DatetimeRelativeSecondLongV1,
        icu::experimental::relativetime::provider::DatetimeRelativeSecondShortV1,
        icu::experimental::relativetime::provider::DatetimeRelativeSecondNarrowV1,
        icu::experimental::relativetime::provider::DatetimeRelativeMinuteLongV1,
        icu::experimental::relativetime::provider::DatetimeRelativeMinuteShortV1,
        icu::experimental::relativetime::provider::DatetimeRelativeMinuteNarrowV1,
        icu::experimental::relativetime::provider::DatetimeRelativeHourLongV1,
        icu::experimental::relativetime::provider::DatetimeRelativeHourShortV1,
        icu::experimental::relativetime::provider::DatetimeRelativeHourNarrowV1,
        icu::experimental::relativetime::provider::DatetimeRelativeDayLongV1,
        icu::experimental::relativetime::provider::DatetimeRelativeDayShortV1,
        icu::experimental::relativetime::provider::DatetimeRelativeDayNarrowV1,
        icu::experimental::relativetime::provider::DatetimeRelativeWeekLongV1,
        icu::experimental::relativetime::provider::DatetimeRelativeWeekShortV1,
        icu::experimental::relativetime::provider::DatetimeRelativeWeekNarrowV1,
        icu::experimental::relativetime::provider::DatetimeRelativeMonthLongV1,
        icu::experimental::relativetime::provider::DatetimeRelativeMonthShortV1,
        icu::experimental::relativetime::provider::DatetimeRelativeMonthNarrowV1,
        icu::experimental::relativetime::provider::DatetimeRelativeQuarterLongV1,
        icu::experimental::relativetime::provider::DatetimeRelativeQuarterShortV1,
        icu::experimental::relativetime::provider::DatetimeRelativeQuarterNarrowV1,
        icu::experimental::relativetime::provider::DatetimeRelativeYearLongV1,
        icu::experimental::relativetime::provider::DatetimeRelativeYearShortV1,
        icu::experimental::relativetime::provider::DatetimeRelativeYearNarrowV1,
    ]
);

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(list), Some(currencies), Some(out)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: intl-data <locales.txt> <currencies.txt> <output .postcard>");
        std::process::exit(2);
    };
    // Currencies in current use (written by cldr.mjs): their symbols and long names are kept,
    // the several hundred historic ones are not.
    let currencies: std::collections::BTreeSet<String> = std::fs::read_to_string(&currencies)
        .unwrap_or_else(|e| panic!("{currencies}: {e}"))
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let text = std::fs::read_to_string(&list).unwrap_or_else(|e| panic!("{list}: {e}"));
    let mut families = vec![DataLocaleFamily::single(DataLocale::default())];
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let locale: DataLocale = line.parse().unwrap_or_else(|e| panic!("{line}: {e:?}"));
        // The locale and its ancestors, not its descendants: a requested child locale that is
        // not listed falls back to its nearest listed ancestor.
        families.push(DataLocaleFamily::without_descendants(locale));
    }
    let fallbacker = LocaleFallbacker::try_new_unstable(&Source).expect("fallback data");
    let file = std::fs::File::create(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    let exporter = BlobExporter::new_with_sink(Box::new(std::io::BufWriter::new(file)));
    ExportDriver::new(families, DeduplicationStrategy::Maximal.into(), fallbacker)
        // Only each locale's default collation (no `-u-co-` alternatives such as zh stroke
        // or ja unihan): they are most of the collation data and Intl.Collator here does not
        // offer them.
        .with_marker_attributes_filter("collator", |attrs| attrs.is_empty())
        .with_marker_attributes_filter("currency", move |attrs| {
            attrs.is_empty() || currencies.contains(attrs.as_str())
        })
        .export(&Source, exporter)
        .expect("export");
}
