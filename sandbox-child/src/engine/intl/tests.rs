//! In-process checks of the Intl data and plumbing. What the output must be is tested against
//! Node through the real binary (tests/web_intl.rs); these guard the generated data.

use rquickjs::{Context, FromJs, Runtime};

/// Evaluates `src` in a fresh context with Intl installed; the result as a string, or
/// `THROWN <error>`.
fn eval(src: &str) -> String {
    let rt = Runtime::new().expect("runtime");
    let ctx = Context::full(&rt).expect("context");
    ctx.with(|ctx| {
        super::install(&ctx).expect("install");
        match ctx.eval::<rquickjs::Coerced<String>, _>(src) {
            Ok(s) => s.0,
            Err(rquickjs::Error::Exception) => {
                let e = ctx.catch();
                let shown = rquickjs::Coerced::<String>::from_js(&ctx, e)
                    .map(|c| c.0)
                    .unwrap_or_default();
                format!("THROWN {shown}")
            }
            Err(e) => format!("ERROR {e}"),
        }
    })
}

/// Every locale of the data builds every formatter and formats without an error: a
/// regeneration that loses a marker or a table for some locale fails here.
#[test]
fn every_listed_locale_has_complete_data() {
    let tags: Vec<&str> = super::data::cldr::LOCALES.iter().map(|e| e.0).collect();
    let src = format!(
        r#"const out = [];
        for (const l of {tags:?}) {{
          const d = new Date(Date.UTC(2024, 6, 15, 18, 30, 5));
          const parts = [
            new Intl.NumberFormat(l, {{style: 'currency', currency: 'EUR'}}).format(-1234.5),
            new Intl.NumberFormat(l, {{style: 'currency', currency: 'USD', currencyDisplay: 'name'}}).format(2),
            new Intl.NumberFormat(l, {{style: 'percent'}}).format(0.25),
            new Intl.NumberFormat(l, {{notation: 'compact', compactDisplay: 'long'}}).format(1234567),
            new Intl.NumberFormat(l, {{style: 'unit', unit: 'kilometer-per-hour', unitDisplay: 'long'}}).format(3),
            new Intl.DateTimeFormat(l, {{dateStyle: 'full', timeStyle: 'full', timeZone: 'Europe/Berlin'}}).format(d),
            new Intl.DateTimeFormat(l, {{month: 'long', day: 'numeric', hour: 'numeric', timeZone: 'Asia/Tokyo'}}).format(d),
            new Intl.PluralRules(l, {{type: 'ordinal'}}).select(2),
            new Intl.RelativeTimeFormat(l, {{numeric: 'auto'}}).format(-1, 'day'),
            ['b', 'a'].sort(new Intl.Collator(l).compare).join(''),
            new Intl.ListFormat(l, {{type: 'disjunction'}}).format(['x', 'y', 'z']),
          ];
          if (parts.some((p) => typeof p !== 'string' || p.length === 0)) out.push(l + ': ' + JSON.stringify(parts));
          // A zone name, not an empty one: the long time style is the medium one plus it.
          const medium = new Intl.DateTimeFormat(l, {{timeStyle: 'medium', timeZone: 'Europe/Berlin'}}).format(d);
          const full = new Intl.DateTimeFormat(l, {{timeStyle: 'full', timeZone: 'Europe/Berlin'}}).format(d);
          if (full.length < medium.length + 3 || /\s$/.test(full)) out.push(l + ' zone: ' + full);
        }}
        out.length === 0 ? 'ok' : out.join('\n');"#
    );
    assert_eq!(eval(&src), "ok");
}

/// Bad arguments are JavaScript errors the function can catch, not engine failures.
#[test]
fn errors_are_catchable() {
    assert_eq!(
        eval("try { new Intl.NumberFormat('en', {style: 'currency'}); 'no error' } catch (e) { e.name }"),
        "TypeError"
    );
    assert_eq!(
        eval("try { new Intl.DateTimeFormat('en', {timeZone: 'Nowhere/City'}); 'no error' } catch (e) { e.message }"),
        "Invalid time zone specified: Nowhere/City"
    );
}
