//! `Intl.DateTimeFormat` (ECMA-402 §11) and `Date.prototype.toLocaleString`,
//! `toLocaleDateString`, `toLocaleTimeString`.
//!
//! The pattern is chosen as V8 (ICU's pattern generator) chooses it, from CLDR's
//! `availableFormats` for the requested fields (best match, then field widths adjusted to the
//! request; date and time matched separately and joined with the locale's date-time glue when
//! no single skeleton has both), or from the `dateStyle`/`timeStyle` patterns. ICU4X then
//! writes that pattern ([`FixedCalendarDateTimeNames`]: month and weekday names, day periods,
//! eras, time zone names) for the civil date and time of the instant in the time zone. The
//! offset of a time zone at an instant comes from the IANA database compiled into the binary
//! (jiff's bundled tzdb: the child has no files), DST included.
//!
//! Only the Gregorian calendar is implemented; other calendars (`-u-ca-`, `calendar`) resolve
//! to `gregory`. The default time zone is UTC (the child's local time).

use super::data::{self, tables};
use super::locale::{self, DEFAULT_TAG};
use super::number::{is_type_sequence, keyword};
use super::options::Options;
use super::{
    arg, arg_or_undefined, bound_getter, constructor, incompatible, method, native, unwrap, Cache,
    Kind,
};
use icu_calendar::{Date, Gregorian};
use icu_datetime::fieldsets::enums::CompositeFieldSet;
use icu_datetime::pattern::{DateTimePattern, FixedCalendarDateTimeNames};
use icu_decimal::provider::DecimalSymbolsV1;
use icu_locale_core::Locale;
use icu_provider::prelude::*;
use icu_time::zone::{IanaParser, UtcOffset, ZoneNameTimestamp};
use icu_time::{Time, TimeZone, ZonedDateTime};
use rquickjs::convert::Coerced;
use rquickjs::{Ctx, Exception, Function, Object, Result, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;
use writeable::TryWriteable;

const OWNER: &str = "Intl.DateTimeFormat";

/// Which fields `ToDateTimeOptions` must make sure of, and which it adds when none are given.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Required {
    Date,
    Time,
    Any,
}
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    Date,
    Time,
    All,
}

/// One field of a pattern or skeleton: its kind, letter and width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    kind: K,
    ch: char,
    len: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum K {
    Era,
    Year,
    Month,
    Weekday,
    Day,
    DayPeriod,
    Hour,
    Minute,
    Second,
    Frac,
    Zone,
}

impl K {
    fn of(c: char) -> Option<K> {
        Some(match c {
            'G' => K::Era,
            'y' | 'Y' | 'u' | 'U' | 'r' => K::Year,
            'M' | 'L' => K::Month,
            'E' | 'c' | 'e' => K::Weekday,
            'd' => K::Day,
            'a' | 'b' | 'B' => K::DayPeriod,
            'h' | 'H' | 'K' | 'k' | 'j' => K::Hour,
            'm' => K::Minute,
            's' => K::Second,
            'S' => K::Frac,
            'z' | 'Z' | 'v' | 'V' | 'O' | 'x' | 'X' => K::Zone,
            _ => return None,
        })
    }

    fn is_date(self) -> bool {
        matches!(self, K::Era | K::Year | K::Month | K::Weekday | K::Day)
    }
}

/// Numeric (1–2 letters) or text (3+) for fields that can be either.
fn is_text(kind: K, len: u8) -> bool {
    match kind {
        K::Month => len >= 3,
        K::Weekday | K::Era | K::DayPeriod => true,
        _ => false,
    }
}

/// A pattern as pieces: fields and literal text (quotes kept as written).
#[derive(Debug, Clone)]
enum Piece {
    Field(Field),
    Lit(String),
}

fn parse_pattern(p: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    let mut lit = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // A quoted run (with '' for a quote) stays literal, quotes included.
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if i + 1 < chars.len() && chars[i + 1] == '\'' {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            let end = (i + 1).min(chars.len());
            lit.extend(&chars[start..end]);
            i = end;
            continue;
        }
        if c.is_ascii_alphabetic() {
            let mut j = i + 1;
            while j < chars.len() && chars[j] == c {
                j += 1;
            }
            if !lit.is_empty() {
                out.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            let len = (j - i).min(9) as u8;
            match K::of(c) {
                Some(kind) => out.push(Piece::Field(Field { kind, ch: c, len })),
                None => {
                    for _ in i..j {
                        lit.push(c);
                    }
                    // An unknown letter must stay a literal: quote it.
                    let s: String = std::iter::repeat_n(c, j - i).collect();
                    lit.truncate(lit.len() - s.len());
                    lit.push('\'');
                    lit.push_str(&s);
                    lit.push('\'');
                }
            }
            i = j;
            continue;
        }
        lit.push(c);
        i += 1;
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    out
}

fn render(pieces: &[Piece]) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Lit(l) => s.push_str(l),
            Piece::Field(f) => {
                for _ in 0..f.len {
                    s.push(f.ch);
                }
            }
        }
    }
    s
}

fn fields_of(pieces: &[Piece]) -> Vec<Field> {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Field(f) => Some(*f),
            Piece::Lit(_) => None,
        })
        .collect()
}

/// Whether an hour letter is of the 12-hour kind.
fn twelve(c: char) -> bool {
    matches!(c, 'h' | 'K')
}

/// The skeleton → pattern candidates of a locale, in the order ICU's pattern generator holds
/// them: the date and time style patterns first (keyed by their own fields), then
/// `availableFormats`, which replace a style pattern of the same skeleton.
fn candidates(p: &tables::DatePatterns) -> Vec<(Vec<Field>, String)> {
    let mut out: Vec<(Vec<Field>, String)> = Vec::new();
    for style in ["full", "long", "medium", "short"] {
        for pat in [p.df.get(style), p.tf.get(style)] {
            let key: Vec<Field> = fields_of(&parse_pattern(pat))
                .into_iter()
                .filter(|f| f.kind != K::DayPeriod)
                .collect();
            if !out.iter().any(|(k, _)| *k == key) {
                out.push((key, pat.to_string()));
            }
        }
    }
    for (key, pat) in &p.af {
        let kf = fields_of(&parse_pattern(key));
        if kf.iter().any(|f| f.kind == K::DayPeriod) {
            continue;
        }
        match out.iter_mut().find(|(k, _)| *k == kf) {
            Some(e) => e.1 = pat.clone(),
            None => out.push((kf, pat.clone())),
        }
    }
    out
}

/// The best candidate pattern for `req` (no fractional seconds), widths adjusted, and its
/// distance (0x1000 per requested field it lacks); `None` when no candidate fits at all.
fn best_exact(p: &tables::DatePatterns, req: &[Field]) -> Option<(u32, Vec<Piece>, Vec<Field>)> {
    let mut best: Option<(u32, String, Vec<Field>)> = None;
    for (kf, pat) in candidates(p) {
        // A skeleton with a field we did not ask for is not a candidate.
        if kf.iter().any(|f| !req.iter().any(|r| r.kind == f.kind)) {
            continue;
        }
        let mut dist = 0u32;
        let mut ok = true;
        for r in req {
            match kf.iter().find(|f| f.kind == r.kind) {
                None => dist += 0x1000,
                Some(f) => {
                    if r.kind == K::Hour && twelve(r.ch) != twelve(f.ch) {
                        ok = false;
                        break;
                    }
                    if r.kind == K::Zone && r.ch != f.ch {
                        // Another zone style (v for z): ICU takes it and swaps the letter.
                        dist += 0x80;
                    } else if is_text(r.kind, r.len) != is_text(f.kind, f.len) {
                        dist += 0x100;
                    } else {
                        dist += (r.len as i32 - f.len as i32).unsigned_abs();
                    }
                }
            }
        }
        if !ok {
            continue;
        }
        // Ties go to the earlier candidate, as in ICU.
        if best.as_ref().is_none_or(|(d, _, _)| dist < *d) {
            best = Some((dist, pat, kf));
        }
    }
    let (dist, pat, kf) = best?;
    let mut pieces = parse_pattern(&pat);
    adjust_widths(&mut pieces, req, &kf);
    Some((dist, pieces, kf))
}

/// ICU's `adjustFieldTypes` (with V8's "match hour field length"): a field whose requested
/// width differs from the matched skeleton's takes the requested width, where both widths are
/// numeric or both text. Minutes and seconds keep the pattern's width.
fn adjust_widths(pieces: &mut [Piece], req: &[Field], key: &[Field]) {
    for p in pieces.iter_mut() {
        let Piece::Field(f) = p else { continue };
        if matches!(f.kind, K::Minute | K::Second) {
            continue;
        }
        let Some(r) = req.iter().find(|r| r.kind == f.kind) else {
            continue;
        };
        if f.kind == K::Zone {
            f.ch = r.ch;
            f.len = r.len;
            continue;
        }
        let key_len = key
            .iter()
            .find(|k| k.kind == f.kind)
            .map(|k| k.len)
            .unwrap_or(f.len);
        if r.len == key_len {
            continue;
        }
        if f.kind == K::Weekday {
            // E..EEE are all "short"; only long and narrow change the width.
            let want = if r.len <= 3 { 3 } else { r.len };
            let have = if f.len <= 3 { 3 } else { f.len };
            if want != have {
                f.len = if want == 3 { f.len.min(3) } else { want };
            }
            continue;
        }
        if is_text(f.kind, r.len) == is_text(f.kind, f.len) {
            f.len = r.len;
        }
    }
}

/// The pattern for a field request, as ICU's `getBestPattern` builds it.
fn best_pattern(p: &tables::DatePatterns, req: &[Field], decimal: &str) -> Vec<Piece> {
    let frac = req.iter().find(|f| f.kind == K::Frac).copied();
    let req: Vec<Field> = req.iter().filter(|f| f.kind != K::Frac).copied().collect();
    let mut pieces = match_fields(p, &req);
    if let Some(frac) = frac {
        // Fractional seconds follow the seconds, after the decimal separator.
        let pos = pieces
            .iter()
            .rposition(|x| matches!(x, Piece::Field(f) if f.kind == K::Second));
        let frac_piece = Piece::Field(Field {
            kind: K::Frac,
            ch: 'S',
            len: frac.len,
        });
        let sep = Piece::Lit(quote(decimal));
        match pos {
            Some(i) => {
                pieces.insert(i + 1, frac_piece);
                pieces.insert(i + 1, sep);
            }
            None => pieces.push(frac_piece),
        }
    }
    pieces
}

/// Text as a pattern literal.
fn quote(s: &str) -> String {
    if s.chars().all(|c| !c.is_ascii_alphabetic() && c != '\'') {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn match_fields(p: &tables::DatePatterns, req: &[Field]) -> Vec<Piece> {
    if req.is_empty() {
        return Vec::new();
    }
    if let Some((dist, pieces, _)) = best_exact(p, req) {
        if dist < 0x1000 {
            return pieces;
        }
    }
    let date: Vec<Field> = req.iter().filter(|f| f.kind.is_date()).copied().collect();
    let time: Vec<Field> = req.iter().filter(|f| !f.kind.is_date()).copied().collect();
    if !date.is_empty() && !time.is_empty() {
        let d = match_fields(p, &date);
        let t = match_fields(p, &time);
        let month = date.iter().find(|f| f.kind == K::Month).map(|f| f.len);
        let weekday = date.iter().any(|f| f.kind == K::Weekday && f.len == 4);
        let style = match month {
            Some(4) if weekday => "full",
            Some(4) => "long",
            Some(3) => "medium",
            _ => "short",
        };
        return glue(p.dta.get(style), &d, &t);
    }
    // Missing fields of one side: the best partial match, the rest appended.
    let (mut pieces, kf) = match best_exact(p, req) {
        Some((_, pieces, kf)) => (pieces, kf),
        None => {
            // Nothing covers even one field: the fields alone, joined by spaces (a lone minute
            // or second unpadded, as V8 writes it).
            let mut v = Vec::new();
            for (i, f) in req.iter().enumerate() {
                if i > 0 {
                    v.push(Piece::Lit(" ".into()));
                }
                let mut f = *f;
                if matches!(f.kind, K::Minute | K::Second) {
                    f.len = 1;
                }
                v.push(Piece::Field(f));
            }
            return v;
        }
    };
    for r in req {
        if kf.iter().any(|k| k.kind == r.kind) {
            continue;
        }
        pieces.push(Piece::Lit(" ".into()));
        pieces.push(Piece::Field(*r));
    }
    pieces
}

/// `{1}` the date, `{0}` the time.
fn glue(g: &str, date: &[Piece], time: &[Piece]) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = g;
    while !rest.is_empty() {
        let next = [rest.find("{0}"), rest.find("{1}")]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(i) => {
                if i > 0 {
                    out.extend(parse_pattern(&rest[..i]));
                }
                if &rest[i..i + 3] == "{1}" {
                    out.extend(date.iter().cloned());
                } else {
                    out.extend(time.iter().cloned());
                }
                rest = &rest[i + 3..];
            }
            None => {
                out.extend(parse_pattern(rest));
                break;
            }
        }
    }
    out
}

/// The options of one DateTimeFormat after reading, before the pattern is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spec {
    data_locale: DataLocale,
    tag: String,
    numbering_system: Option<String>,
    time_zone: String,
    pattern: String,
    date_style: Option<String>,
    time_style: Option<String>,
}

/// `CreateDateTimeFormat(newTarget, locales, options, required, defaults)`.
pub fn read_spec<'js>(
    ctx: &Ctx<'js>,
    locales: Option<Value<'js>>,
    options: Option<Value<'js>>,
    required: Required,
    defaults: Defaults,
) -> Result<Spec> {
    let requested = locale::canonicalize_list(ctx, locales)?;
    let o = Options::coerce(ctx, options, OWNER)?;
    o.string("localeMatcher", &["lookup", "best fit"])?;
    if let Some(c) = o.string("calendar", &[])? {
        if !is_type_sequence(&c) {
            return Err(Exception::throw_range(
                ctx,
                &format!("Invalid calendar : {c}"),
            ));
        }
    }
    let nu_option = o.string("numberingSystem", &[])?;
    if let Some(nu) = &nu_option {
        if !is_type_sequence(nu) {
            return Err(Exception::throw_range(
                ctx,
                &format!("Invalid numberingSystem : {nu}"),
            ));
        }
    }
    let hour12 = o.boolean("hour12")?;
    let mut hour_cycle = o.string("hourCycle", &["h11", "h12", "h23", "h24"])?;
    if hour12.is_some() {
        hour_cycle = None;
    }
    let (resolved, winner) = locale::resolve(&requested);
    let mut keywords: Vec<(&str, String)> = Vec::new();
    let nu = match (nu_option, keyword(winner.as_ref(), "nu")) {
        (Some(n), _) => Some(n),
        (None, Some(n)) => {
            keywords.push(("nu", n.clone()));
            Some(n)
        }
        _ => None,
    };
    if hour_cycle.is_none() && hour12.is_none() {
        if let Some(hc) = keyword(winner.as_ref(), "hc") {
            if ["h11", "h12", "h23", "h24"].contains(&hc.as_str()) {
                keywords.push(("hc", hc.clone()));
                hour_cycle = Some(hc);
            }
        }
    }
    let time_zone = match o.raw("timeZone")? {
        v if v.is_undefined() => "UTC".to_string(),
        v => {
            let Coerced(name) = v.get::<Coerced<String>>()?;
            canonical_time_zone(&name).ok_or_else(|| {
                Exception::throw_range(ctx, &format!("Invalid time zone specified: {name}"))
            })?
        }
    };

    // The component options, in the order of ECMA-402's table.
    let weekday = o.string("weekday", &["narrow", "short", "long"])?;
    let era = o.string("era", &["narrow", "short", "long"])?;
    let year = o.string("year", &["2-digit", "numeric"])?;
    let month = o.string("month", &["2-digit", "numeric", "narrow", "short", "long"])?;
    let day = o.string("day", &["2-digit", "numeric"])?;
    let day_period = o.string("dayPeriod", &["narrow", "short", "long"])?;
    let hour = o.string("hour", &["2-digit", "numeric"])?;
    let minute = o.string("minute", &["2-digit", "numeric"])?;
    let second = o.string("second", &["2-digit", "numeric"])?;
    let frac = o.number("fractionalSecondDigits", 1.0, 3.0)?;
    let tz_name = o.string(
        "timeZoneName",
        &[
            "short",
            "long",
            "shortOffset",
            "longOffset",
            "shortGeneric",
            "longGeneric",
        ],
    )?;
    o.string("formatMatcher", &["basic", "best fit"])?;
    let date_style = o.string("dateStyle", &["full", "long", "medium", "short"])?;
    let time_style = o.string("timeStyle", &["full", "long", "medium", "short"])?;

    let explicit = [
        ("weekday", weekday.is_some()),
        ("era", era.is_some()),
        ("year", year.is_some()),
        ("month", month.is_some()),
        ("day", day.is_some()),
        ("dayPeriod", day_period.is_some()),
        ("hour", hour.is_some()),
        ("minute", minute.is_some()),
        ("second", second.is_some()),
        ("fractionalSecondDigits", frac.is_some()),
        ("timeZoneName", tz_name.is_some()),
    ];
    let patterns = tables::dates(&resolved.data)
        .or_else(|| tables::dates(&"en".parse().unwrap_or_default()))
        .ok_or_else(|| Exception::throw_range(ctx, &format!("{OWNER}: no date data")))?;

    // The hour letter: an option, else the -u-hc- keyword, else the locale's. With `hour12`
    // the cycle follows the locale's default as V8 (ECMA-402 2023) has it: true → h11 where
    // the default is h11 or h23, else h12; false → h23 there, else h24 (so en-US with
    // hour12: false writes midnight as 24:00, like Node 20).
    let locale_hc = patterns.hc.chars().next().unwrap_or('h');
    let default_is_11_or_23 = matches!(locale_hc, 'K' | 'H');
    let cycle: Option<char> = match (hour12, hour_cycle.as_deref()) {
        (Some(true), _) => Some(if default_is_11_or_23 { 'K' } else { 'h' }),
        (Some(false), _) => Some(if default_is_11_or_23 { 'H' } else { 'k' }),
        (None, Some("h11")) => Some('K'),
        (None, Some("h12")) => Some('h'),
        (None, Some("h23")) => Some('H'),
        (None, Some("h24")) => Some('k'),
        _ => None,
    };
    let force = cycle;
    let hour_class = match cycle.unwrap_or(locale_hc) {
        'h' | 'K' => 'h',
        _ => 'H',
    };
    let decimal = decimal_separator(&resolved.data);

    let mut pieces: Vec<Piece>;
    if date_style.is_some() || time_style.is_some() {
        if let Some((name, _)) = explicit.iter().find(|(_, set)| *set) {
            let which = if date_style.is_some() {
                "dateStyle"
            } else {
                "timeStyle"
            };
            return Err(Exception::throw_type(
                ctx,
                &format!("Can't set option {name} when {which} is used"),
            ));
        }
        if required == Required::Date && time_style.is_some() {
            return Err(Exception::throw_type(ctx, "Invalid option : timeStyle"));
        }
        if required == Required::Time && date_style.is_some() {
            return Err(Exception::throw_type(ctx, "Invalid option : dateStyle"));
        }
        let date = date_style
            .as_deref()
            .map(|s| parse_pattern(patterns.df.get(s)));
        let time = time_style.as_deref().map(|s| {
            let pieces = parse_pattern(patterns.tf.get(s));
            let locale_class = fields_of(&pieces)
                .iter()
                .find(|f| f.kind == K::Hour)
                .map(|f| if twelve(f.ch) { 'h' } else { 'H' })
                .unwrap_or(hour_class);
            if locale_class == hour_class {
                pieces
            } else {
                // Another hour cycle: the style pattern's fields, with the other hour letter,
                // through the skeleton matcher (as V8 does).
                let req: Vec<Field> = fields_of(&pieces)
                    .into_iter()
                    .filter(|f| f.kind != K::DayPeriod)
                    .map(|mut f| {
                        if f.kind == K::Hour {
                            f.ch = hour_class;
                        }
                        f
                    })
                    .collect();
                best_pattern(&patterns, &req, &decimal)
            }
        });
        pieces = match (date, time) {
            (Some(d), Some(t)) => glue(
                patterns.dta.get(date_style.as_deref().unwrap_or("short")),
                &d,
                &t,
            ),
            (Some(d), None) => d,
            (None, Some(t)) => t,
            (None, None) => Vec::new(),
        };
    } else {
        let mut weekday = weekday;
        let mut year = year;
        let mut month = month;
        let mut day = day;
        let mut hour = hour;
        let mut minute = minute;
        let mut second = second;
        let any_date = weekday.is_some() || year.is_some() || month.is_some() || day.is_some();
        let any_time = day_period.is_some()
            || hour.is_some()
            || minute.is_some()
            || second.is_some()
            || frac.is_some();
        let need_defaults = match required {
            Required::Date => !any_date,
            Required::Time => !any_time,
            Required::Any => !any_date && !any_time,
        };
        if need_defaults && matches!(defaults, Defaults::Date | Defaults::All) {
            year = Some("numeric".into());
            month = Some("numeric".into());
            day = Some("numeric".into());
        }
        if need_defaults && matches!(defaults, Defaults::Time | Defaults::All) {
            hour = Some("numeric".into());
            minute = Some("numeric".into());
            second = Some("numeric".into());
        }
        let w = |v: &Option<String>| -> Option<u8> {
            v.as_deref().map(|s| match s {
                "2-digit" => 2,
                "short" => 3,
                "long" => 4,
                "narrow" => 5,
                _ => 1,
            })
        };
        let mut req = Vec::new();
        let mut push = |kind: K, ch: char, len: Option<u8>| {
            if let Some(len) = len {
                req.push(Field { kind, ch, len });
            }
        };
        push(
            K::Era,
            'G',
            era.as_deref().map(|s| match s {
                "long" => 4,
                "narrow" => 5,
                _ => 1,
            }),
        );
        push(K::Year, 'y', w(&year));
        push(K::Month, 'M', w(&month));
        push(
            K::Weekday,
            'E',
            weekday.take().as_ref().map(|s| match s.as_str() {
                "long" => 4,
                "narrow" => 5,
                _ => 3,
            }),
        );
        push(K::Day, 'd', w(&day));
        push(K::Hour, hour_class, w(&hour));
        push(K::Minute, 'm', w(&minute));
        push(K::Second, 's', w(&second));
        push(K::Frac, 'S', frac.map(|f| f as u8));
        if let Some(tz) = &tz_name {
            let (ch, len) = match tz.as_str() {
                "long" => ('z', 4),
                "shortOffset" => ('O', 1),
                "longOffset" => ('O', 4),
                "shortGeneric" => ('v', 1),
                "longGeneric" => ('v', 4),
                _ => ('z', 1),
            };
            push(K::Zone, ch, Some(len));
        }
        let _ = (&mut month, &mut day, &mut hour, &mut minute, &mut second);
        pieces = best_pattern(&patterns, &req, &decimal);
    }
    if let Some(c) = force {
        for p in pieces.iter_mut() {
            if let Piece::Field(f) = p {
                if f.kind == K::Hour {
                    f.ch = c;
                }
            }
        }
        // A 24-hour pattern has no day period; a forced 12-hour one keeps the locale's.
        if matches!(c, 'H' | 'k') {
            strip_day_period(&mut pieces);
        }
    }
    let kw: Vec<(&str, &str)> = keywords.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(Spec {
        data_locale: resolved.data,
        tag: if resolved.tag.to_string().is_empty() {
            DEFAULT_TAG.to_string()
        } else {
            resolved.tag_with(&kw)
        },
        numbering_system: nu,
        time_zone,
        pattern: render(&pieces),
        date_style,
        time_style,
    })
}

/// Removes day-period fields and the space next to them.
fn strip_day_period(pieces: &mut Vec<Piece>) {
    while let Some(i) = pieces
        .iter()
        .position(|p| matches!(p, Piece::Field(f) if f.kind == K::DayPeriod))
    {
        pieces.remove(i);
        let trim = |s: &mut String, front: bool| {
            if front {
                *s = s
                    .trim_start_matches([' ', '\u{a0}', '\u{202f}'])
                    .to_string();
            } else {
                *s = s.trim_end_matches([' ', '\u{a0}', '\u{202f}']).to_string();
            }
        };
        if i < pieces.len() {
            if let Piece::Lit(l) = &mut pieces[i] {
                trim(l, true);
            }
        }
        if i > 0 {
            if let Piece::Lit(l) = &mut pieces[i - 1] {
                trim(l, false);
            }
        }
        pieces.retain(|p| !matches!(p, Piece::Lit(l) if l.is_empty()));
    }
}

fn decimal_separator(locale: &DataLocale) -> String {
    let req = DataRequest {
        id: DataIdentifierBorrowed::for_locale(locale),
        ..Default::default()
    };
    match DataProvider::<DecimalSymbolsV1>::load(data::provider(), req) {
        Ok(r) => r.payload.get().decimal_separator().to_string(),
        Err(_) => ".".to_string(),
    }
}

/// The identifiers V8 reports as "UTC".
const UTC_NAMES: &[&str] = &[
    "utc",
    "etc/utc",
    "etc/gmt",
    "gmt",
    "etc/universal",
    "universal",
    "etc/zulu",
    "zulu",
    "etc/uct",
    "uct",
    "etc/greenwich",
    "greenwich",
    "etc/gmt0",
    "gmt0",
    "etc/gmt+0",
    "etc/gmt-0",
    "gmt+0",
    "gmt-0",
];

/// `IsValidTimeZoneName` + `CanonicalizeTimeZoneName`: the IANA name in its canonical case,
/// `UTC` for the UTC aliases; `None` for anything the database does not know.
fn canonical_time_zone(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if UTC_NAMES.contains(&lower.as_str()) {
        return Some("UTC".into());
    }
    // Only names (no POSIX TZ strings or offsets, which the database lookup does not take).
    if name.is_empty() || name.starts_with(['+', '-']) || name.contains(',') {
        return None;
    }
    let tz = jiff::tz::db().get(name).ok()?;
    tz.iana_name().map(str::to_string)
}

/// The Intl data as `FixedCalendarDateTimeNames::load_for_pattern` needs it.
///
/// ICU4X 2.4's provider-taking `load_for_pattern` passes the locations-root binding where the
/// locations-override one goes and vice versa (and the same for exemplar cities); both have
/// the same data struct, so it compiles, and every location-based zone name ("Japan Standard
/// Time", "Germany Time") comes out empty. The compiled-data `include_for_pattern` has the
/// right order. This provider answers each of the four markers with the other's data, which
/// undoes the swap.
struct NamesData(&'static data::Provider);

macro_rules! forward_names {
    ($($m:ty),* $(,)?) => {
        $(impl DataProvider<$m> for NamesData {
            fn load(&self, req: DataRequest) -> std::result::Result<DataResponse<$m>, DataError> {
                self.0.load(req)
            }
        })*
    };
}

macro_rules! swap_names {
    ($($asked:ty => $given:ty),* $(,)?) => {
        $(impl DataProvider<$asked> for NamesData {
            fn load(&self, req: DataRequest) -> std::result::Result<DataResponse<$asked>, DataError> {
                let r: DataResponse<$given> = self.0.load(req)?;
                Ok(DataResponse { metadata: r.metadata, payload: r.payload.cast() })
            }
        })*
    };
}

use icu_datetime::provider::names::{
    DatetimeNamesDayperiodV1, DatetimeNamesMonthGregorianV1, DatetimeNamesWeekdayV1,
    DatetimeNamesYearGregorianV1,
};
use icu_datetime::provider::time_zones::{
    TimezoneNamesCitiesOverrideV1, TimezoneNamesCitiesRootV1, TimezoneNamesEssentialsV1,
    TimezoneNamesGenericLongV1, TimezoneNamesGenericShortV1, TimezoneNamesLocationsOverrideV1,
    TimezoneNamesLocationsRootV1, TimezoneNamesSpecificLongV1, TimezoneNamesSpecificShortV1,
    TimezoneNamesStandardLongV1,
};

forward_names!(
    DatetimeNamesDayperiodV1,
    DatetimeNamesMonthGregorianV1,
    DatetimeNamesWeekdayV1,
    DatetimeNamesYearGregorianV1,
    TimezoneNamesEssentialsV1,
    TimezoneNamesGenericLongV1,
    TimezoneNamesGenericShortV1,
    TimezoneNamesSpecificLongV1,
    TimezoneNamesSpecificShortV1,
    TimezoneNamesStandardLongV1,
    icu_time::provider::TimezonePeriodsV1,
    icu_decimal::provider::DecimalSymbolsV1,
    icu_decimal::provider::DecimalDigitsV1,
);
swap_names!(
    TimezoneNamesLocationsRootV1 => TimezoneNamesLocationsOverrideV1,
    TimezoneNamesLocationsOverrideV1 => TimezoneNamesLocationsRootV1,
    TimezoneNamesCitiesRootV1 => TimezoneNamesCitiesOverrideV1,
    TimezoneNamesCitiesOverrideV1 => TimezoneNamesCitiesRootV1,
);

fn iana_parser() -> &'static IanaParser {
    static P: OnceLock<IanaParser> = OnceLock::new();
    P.get_or_init(|| {
        IanaParser::try_new_unstable(data::provider())
            .expect("the Intl data includes the IANA identifier markers")
    })
}

/// A built `Intl.DateTimeFormat`.
pub struct DateTimeFormat {
    spec: Spec,
    pattern: DateTimePattern,
    names: FixedCalendarDateTimeNames<Gregorian, CompositeFieldSet>,
    zone: jiff::tz::TimeZone,
    zone_id: TimeZone,
    numbering_system: String,
    /// The pattern asked for `k` (hours 1–24), written as `H`: midnight reads 24.
    h24: bool,
}

impl DateTimeFormat {
    pub fn build(ctx: &Ctx<'_>, spec: Spec) -> Result<DateTimeFormat> {
        let mut locale: Locale = spec.data_locale.into_locale();
        if let Some(nu) = &spec.numbering_system {
            if let Ok(v) = icu_locale_core::extensions::unicode::Value::try_from_str(nu) {
                locale
                    .extensions
                    .unicode
                    .keywords
                    .set(icu_locale_core::extensions::unicode::key!("nu"), v);
            }
        }
        // ICU4X has no `k` (hour 1–24): written as `H`, midnight fixed up in `parts`.
        let mut pieces = parse_pattern(&spec.pattern);
        let mut h24 = false;
        for p in pieces.iter_mut() {
            if let Piece::Field(f) = p {
                if f.ch == 'k' {
                    f.ch = 'H';
                    h24 = true;
                }
            }
        }
        let icu_pattern = render(&pieces);
        let pattern = DateTimePattern::try_from_pattern_str(&icu_pattern).map_err(|e| {
            Exception::throw_range(
                ctx,
                &format!("{OWNER}: bad pattern {:?}: {e:?}", spec.pattern),
            )
        })?;
        let mut names =
            FixedCalendarDateTimeNames::<Gregorian, CompositeFieldSet>::try_new_unstable(
                data::provider(),
                (&locale).into(),
            )
            .map_err(|e| {
                Exception::throw_range(ctx, &format!("{OWNER}: no locale data ({e:?})"))
            })?;
        names
            .load_for_pattern(&NamesData(data::provider()), &pattern)
            .map_err(|e| {
                Exception::throw_range(
                    ctx,
                    &format!("{OWNER}: no names for {:?} ({e:?})", spec.pattern),
                )
            })?;
        let zone = if spec.time_zone == "UTC" {
            jiff::tz::TimeZone::UTC
        } else {
            jiff::tz::db().get(&spec.time_zone).map_err(|_| {
                Exception::throw_range(
                    ctx,
                    &format!("Invalid time zone specified: {}", spec.time_zone),
                )
            })?
        };
        let zone_id = iana_parser().as_borrowed().parse(&spec.time_zone);
        let numbering_system = spec
            .numbering_system
            .clone()
            .unwrap_or_else(|| resolved_nu(&spec.data_locale));
        Ok(DateTimeFormat {
            spec,
            pattern,
            names,
            zone,
            zone_id,
            numbering_system,
            h24,
        })
    }

    /// The civil date, time and zone of the instant `ms` (already time-clipped).
    fn input(
        &self,
        ms: f64,
    ) -> ZonedDateTime<Gregorian, icu_time::TimeZoneInfo<icu_time::zone::models::AtTime>> {
        let ms = ms as i64;
        let secs = ms.div_euclid(1000);
        let milli = ms.rem_euclid(1000) as u32;
        // JavaScript dates reach ±275 760 years; the tz database (and jiff) ±9999. Beyond,
        // the offset of the nearest instant it has (local mean time in the far past, the
        // current rule in the far future), as ICU does.
        let t = jiff::Timestamp::from_second(secs).unwrap_or(if secs < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        });
        let offset = self.zone.to_offset(t).seconds();
        let local = secs + offset as i64;
        let days = local.div_euclid(86400);
        let sod = local.rem_euclid(86400);
        // Rata die 1 is 0001-01-01, so 1970-01-01 is 719 163.
        let rd = icu_calendar::types::RataDie::new(days + 719_163);
        let date = Date::from_rata_die(rd, Gregorian);
        let time = Time::try_new(
            (sod / 3600) as u8,
            (sod / 60 % 60) as u8,
            (sod % 60) as u8,
            milli * 1_000_000,
        )
        .unwrap_or(Time::start_of_day());
        let zone = self
            .zone_id
            .with_offset(UtcOffset::try_from_seconds(offset).ok())
            .with_zone_name_timestamp(ZoneNameTimestamp::from_epoch_seconds(secs));
        ZonedDateTime { date, time, zone }
    }

    pub fn format(&self, ms: f64) -> String {
        let s: String = self.parts(ms).into_iter().map(|(_, s)| s).collect();
        // V8 (Node 20) writes CLDR's narrow no-break space (U+202F, before AM/PM) as a plain
        // space in `format` output, for code that parses it; `formatToParts` keeps it.
        if s.contains('\u{202f}') {
            s.replace('\u{202f}', " ")
        } else {
            s
        }
    }

    pub fn parts(&self, ms: f64) -> Vec<(&'static str, String)> {
        let input = self.input(ms);
        let mut sink = super::number::Parts::only("datetime");
        // A field the pattern has but the data lacks is written as ICU4X's fallback (e.g. a
        // GMT offset for a zone without a name); the error only reports that.
        let _ = self
            .names
            .with_pattern_unchecked(&self.pattern)
            .format(&input)
            .try_write_to_parts(&mut sink);
        let mut parts = sink.date_parts();
        if self.h24 && input.time.hour.number() == 0 {
            if let Some(h) = parts.iter_mut().find(|(t, _)| *t == "hour") {
                if h.1 == "0" || h.1 == "00" {
                    h.1 = "24".into();
                }
            }
        }
        parts
    }

    pub fn resolved_options<'js>(&self, ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let o = Object::new(ctx.clone())?;
        o.set("locale", self.spec.tag.as_str())?;
        o.set("calendar", "gregory")?;
        o.set("numberingSystem", self.numbering_system.as_str())?;
        o.set("timeZone", self.spec.time_zone.as_str())?;
        let fields = fields_of(&parse_pattern(&self.spec.pattern));
        if let Some(h) = fields.iter().find(|f| f.kind == K::Hour) {
            let hc = match h.ch {
                'h' => "h12",
                'K' => "h11",
                'k' => "h24",
                _ => "h23",
            };
            o.set("hourCycle", hc)?;
            o.set("hour12", twelve(h.ch))?;
        }
        if self.spec.date_style.is_none() && self.spec.time_style.is_none() {
            for kind in [
                K::Weekday,
                K::Era,
                K::Year,
                K::Month,
                K::Day,
                K::Hour,
                K::Minute,
                K::Second,
                K::Frac,
                K::Zone,
            ] {
                let f = fields.iter().find(|f| f.kind == kind);
                let Some(f) = f else { continue };
                let text = |l: u8| match l {
                    4 => "long",
                    5 => "narrow",
                    _ => "short",
                };
                let num = |l: u8| if l == 2 { "2-digit" } else { "numeric" };
                match kind {
                    K::Weekday => o.set("weekday", text(f.len))?,
                    K::Era => o.set("era", text(f.len))?,
                    K::Year => o.set("year", num(f.len))?,
                    K::Month => {
                        o.set("month", if f.len >= 3 { text(f.len) } else { num(f.len) })?
                    }
                    K::Day => o.set("day", num(f.len))?,
                    K::Hour => o.set("hour", num(f.len))?,
                    K::Minute => o.set("minute", num(f.len))?,
                    K::Second => o.set("second", num(f.len))?,
                    K::Frac => o.set("fractionalSecondDigits", f.len)?,
                    _ => o.set(
                        "timeZoneName",
                        match (f.ch, f.len >= 4) {
                            ('v' | 'V', false) => "shortGeneric",
                            ('v' | 'V', true) => "longGeneric",
                            ('O', false) => "shortOffset",
                            ('O', true) => "longOffset",
                            (_, true) => "long",
                            _ => "short",
                        },
                    )?,
                }
            }
        }
        if let Some(s) = &self.spec.date_style {
            o.set("dateStyle", s.as_str())?;
        }
        if let Some(s) = &self.spec.time_style {
            o.set("timeStyle", s.as_str())?;
        }
        Ok(o)
    }
}

fn resolved_nu(locale: &DataLocale) -> String {
    let req = DataRequest {
        id: DataIdentifierBorrowed::for_locale(locale),
        ..Default::default()
    };
    match DataProvider::<DecimalSymbolsV1>::load(data::provider(), req) {
        Ok(r) => r.payload.get().numsys().to_string(),
        Err(_) => "latn".to_string(),
    }
}

/// `TimeClip` and the `x` argument of `format`: `undefined` → now.
fn time_value<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> Result<f64> {
    let t = if v.is_undefined() {
        now_ms()
    } else {
        let Coerced(n) = v.get::<Coerced<f64>>()?;
        n
    };
    if !t.is_finite() || t.abs() > 8.64e15 {
        return Err(Exception::throw_range(ctx, "Invalid time value"));
    }
    Ok(t.trunc() + 0.0)
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as f64)
        .unwrap_or(0.0)
}

impl super::number::Parts {
    /// Date parts: ICU4X's annotations with ECMA-402's names; the rest is `literal`.
    pub fn date_parts(self) -> Vec<(&'static str, String)> {
        let (text, mut spans) = self.into_inner();
        spans.sort_by_key(|&(s, e, _)| (s, std::cmp::Reverse(e)));
        let mut out: Vec<(&'static str, String)> = Vec::new();
        let mut pos = 0;
        for (s, e, v) in spans {
            if s < pos {
                continue;
            }
            if s > pos {
                out.push(("literal", text[pos..s].to_string()));
            }
            let name = match v {
                "era" => "era",
                "year" | "extendedYear" => "year",
                "relatedYear" => "relatedYear",
                "yearName" => "yearName",
                "month" => "month",
                "day" => "day",
                "weekday" => "weekday",
                "dayPeriod" => "dayPeriod",
                "hour" => "hour",
                "minute" => "minute",
                "second" => "second",
                "timeZoneName" => "timeZoneName",
                _ => "literal",
            };
            out.push((name, text[s..e].to_string()));
            pos = e;
        }
        if pos < text.len() {
            out.push(("literal", text[pos..].to_string()));
        }
        split_fraction(&mut out);
        out
    }
}

/// ICU4X writes `ss.SS` as one "second" part ("03.45"); ECMA-402 has the seconds, the
/// separator (a literal) and `fractionalSecond`.
fn split_fraction(parts: &mut Vec<(&'static str, String)>) {
    let Some(i) = parts
        .iter()
        .position(|(t, v)| *t == "second" && v.chars().any(|c| !c.is_numeric()))
    else {
        return;
    };
    let v = std::mem::take(&mut parts[i].1);
    let Some(at) = v.find(|c: char| !c.is_numeric()) else {
        parts[i].1 = v;
        return;
    };
    let sep_len = v[at..].chars().next().map_or(1, char::len_utf8);
    parts[i].1 = v[..at].to_string();
    parts.insert(i + 1, ("literal", v[at..at + sep_len].to_string()));
    parts.insert(i + 2, ("fractionalSecond", v[at + sep_len..].to_string()));
}

thread_local! {
    static CACHE: RefCell<Cache<Spec, DateTimeFormat>> = RefCell::new(Cache::new());
}

fn cached(ctx: &Ctx<'_>, spec: Spec) -> Result<Rc<DateTimeFormat>> {
    CACHE.with(|c| {
        c.borrow_mut()
            .get_or_try(spec, |s| DateTimeFormat::build(ctx, s.clone()))
    })
}

pub fn install<'js>(ctx: &Ctx<'js>, intl: &Object<'js>) -> Result<()> {
    let proto = constructor(ctx, intl, "DateTimeFormat", true, |ctx, l, o| {
        let spec = read_spec(ctx, l, o, Required::Any, Defaults::Date)?;
        Ok(Kind::DateTime(cached(ctx, spec)?))
    })?;
    bound_getter(
        &proto,
        "format",
        "get Intl.DateTimeFormat.prototype.format",
        |ctx, k| {
            let Kind::DateTime(df) = k else {
                return Ok(None);
            };
            let f = Function::new(
                ctx.clone(),
                native(move |p| {
                    let t = time_value(p.ctx(), arg_or_undefined(p, 0))?;
                    rquickjs::String::from_str(p.ctx().clone(), &df.format(t))
                        .map(|s| s.into_value())
                }),
            )?;
            f.set_length(1)?;
            Ok(Some(f))
        },
    )?;
    method(&proto, "formatToParts", 1, |p| {
        let ctx = p.ctx();
        const M: &str = "Intl.DateTimeFormat.prototype.formatToParts";
        let (_, k) = unwrap(ctx, &p.this(), M)?;
        let Kind::DateTime(df) = k else {
            return Err(incompatible(ctx, M, &p.this()));
        };
        let t = time_value(ctx, arg_or_undefined(p, 0))?;
        super::number::parts_array(ctx, &df.parts(t)).map(|a| a.into_value())
    })?;
    method(&proto, "resolvedOptions", 0, |p| {
        let ctx = p.ctx();
        const M: &str = "Intl.DateTimeFormat.prototype.resolvedOptions";
        let (_, k) = unwrap(ctx, &p.this(), M)?;
        let Kind::DateTime(df) = k else {
            return Err(incompatible(ctx, M, &p.this()));
        };
        df.resolved_options(ctx).map(|o| o.into_value())
    })?;
    Ok(())
}

/// `Date.prototype.toLocaleString`, `toLocaleDateString`, `toLocaleTimeString`.
pub fn install_prototype_methods(ctx: &Ctx<'_>) -> Result<()> {
    let date_proto: Object = ctx.globals().get::<_, Object>("Date")?.get("prototype")?;
    for (name, required, defaults) in [
        ("toLocaleString", Required::Any, Defaults::All),
        ("toLocaleDateString", Required::Date, Defaults::Date),
        ("toLocaleTimeString", Required::Time, Defaults::Time),
    ] {
        method(&date_proto, name, 0, move |p| {
            let ctx = p.ctx();
            let t = this_time_value(ctx, &p.this(), name)?;
            if t.is_nan() {
                return rquickjs::String::from_str(ctx.clone(), "Invalid Date")
                    .map(|s| s.into_value());
            }
            let spec = read_spec(ctx, arg(p, 0), arg(p, 1), required, defaults)?;
            let df = cached(ctx, spec)?;
            rquickjs::String::from_str(ctx.clone(), &df.format(t)).map(|s| s.into_value())
        })?;
    }
    Ok(())
}

/// `thisTimeValue(this)`: the time value of a Date, else a TypeError.
fn this_time_value<'js>(ctx: &Ctx<'js>, this: &Value<'js>, name: &str) -> Result<f64> {
    let date_proto: Object = ctx.globals().get::<_, Object>("Date")?.get("prototype")?;
    let get_time: Function = date_proto.get("getTime")?;
    match get_time.call::<_, f64>((rquickjs::function::This(this.clone()),)) {
        Ok(t) => Ok(t),
        Err(rquickjs::Error::Exception) => {
            let e = ctx.catch();
            if e.is_uncatchable_error() {
                return Err(ctx.throw(e));
            }
            Err(Exception::throw_type(
                ctx,
                &format!("this is not a Date object. (Date.prototype.{name})"),
            ))
        }
        Err(e) => Err(e),
    }
}
