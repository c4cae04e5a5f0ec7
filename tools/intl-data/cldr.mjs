// Extracts from CLDR's JSON release (the npm packages cldr-core, cldr-dates-full,
// cldr-numbers-full and cldr-units-full; the version is pinned in fetch-cldr.sh) the parts of
// CLDR that ICU4X 2.4 does not carry in the shape ECMA-402 needs:
//
// - dates: the Gregorian `availableFormats` (skeleton -> pattern), the date/time/date-time style
//   patterns and each locale's preferred hour cycle. ICU4X formats by semantic field sets whose
//   patterns differ from the skeleton matches ECMA-402 engines (ICU's pattern generator) make,
//   e.g. `de` numeric dates are "5.1.2024" in Node and "05.01.2024" through ICU4X.
// - units: the unit patterns of every ECMA-402 sanctioned unit and the compound units CLDR has a
//   name for (kilometer-per-hour, ...). ICU4X's experimental units formatter covers only five
//   categories (no speed, temperature, digital or angle).
// - the NaN, infinity and exponent symbols, which ICU4X's decimal data leaves out.
// - the list of currencies in current use, which filters ICU4X's currency display names.
//
// Output: `cldr.rs` (per-locale JSON strings, parsed lazily by the child for the one locale it
// needs) and `currencies.txt` (read by the ICU4X export, src/main.rs).
//
// Usage: node cldr.mjs <cldr json dir> <locales.txt> <cldr.rs> <currencies.txt>

import fs from 'node:fs';
import path from 'node:path';

const [cldrDir, localesFile, rsOut, currenciesOut] = process.argv.slice(2);
if (!currenciesOut) {
  console.error('usage: node cldr.mjs <cldr json dir> <locales.txt> <cldr.rs> <currencies.txt>');
  process.exit(2);
}

const read = (p) => JSON.parse(fs.readFileSync(path.join(cldrDir, p), 'utf8'));
const locales = fs
  .readFileSync(localesFile, 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

const version = read('cldr-core/package.json').version;
const parents = read('cldr-core/supplemental/parentLocales.json').supplemental.parentLocales.parentLocale;

// The CLDR parent of a locale (explicit parent, else the tag truncated), `root` at the top.
function parentOf(locale) {
  if (parents[locale]) return parents[locale];
  const i = locale.lastIndexOf('-');
  return i < 0 ? 'root' : locale.slice(0, i);
}
const likely = read('cldr-core/supplemental/likelySubtags.json').supplemental.likelySubtags;
const timeData = read('cldr-core/supplemental/timeData.json').supplemental.timeData;
const currencyData = read('cldr-core/supplemental/currencyData.json').supplemental.currencyData;

// ECMA-402's sanctioned single units (ECMA-402 table "Simple units"), by their CLDR category.
const SIMPLE = {
  acre: 'area', bit: 'digital', byte: 'digital', celsius: 'temperature', centimeter: 'length',
  day: 'duration', degree: 'angle', fahrenheit: 'temperature', 'fluid-ounce': 'volume',
  foot: 'length', gallon: 'volume', gigabit: 'digital', gigabyte: 'digital', gram: 'mass',
  hectare: 'area', hour: 'duration', inch: 'length', kilobit: 'digital', kilobyte: 'digital',
  kilogram: 'mass', kilometer: 'length', liter: 'volume', megabit: 'digital',
  megabyte: 'digital', meter: 'length', microsecond: 'duration', mile: 'length',
  'mile-scandinavian': 'length', milliliter: 'volume', millimeter: 'length',
  millisecond: 'duration', minute: 'duration', month: 'duration', nanosecond: 'duration',
  ounce: 'mass', percent: 'concentr', petabyte: 'digital', pound: 'mass', second: 'duration',
  stone: 'mass', terabit: 'digital', terabyte: 'digital', week: 'duration', yard: 'length',
  year: 'duration',
};
// Compound `X-per-Y` units of sanctioned units that CLDR names as units of their own.
const COMPOUND = {
  'kilometer-per-hour': 'speed', 'meter-per-second': 'speed', 'mile-per-hour': 'speed',
  'liter-per-kilometer': 'consumption', 'mile-per-gallon': 'consumption',
};

function region(locale) {
  const parts = locale.split('-');
  const r = parts.find((p, i) => i > 0 && /^([A-Z]{2}|[0-9]{3})$/.test(p));
  if (r) return r;
  const full = likely[locale] ?? likely[parts[0]] ?? 'en-Latn-US';
  return full.split('-').at(-1);
}

function hourCycle(locale) {
  const r = region(locale);
  const lang = locale.split('-')[0];
  const t = timeData[`${lang}_${r}`] ?? timeData[r] ?? timeData['001'];
  return { preferred: t._preferred, allowed: t._allowed };
}

function dates(locale) {
  const g = read(`cldr-dates-full/main/${locale}/ca-gregorian.json`).main[locale].dates.calendars
    .gregorian;
  const styles = (o) => ({ full: o.full, long: o.long, medium: o.medium, short: o.short });
  const af = {};
  for (const [k, v] of Object.entries(g.dateTimeFormats.availableFormats)) {
    // Week-of and quarter skeletons have no ECMA-402 option; plural-variant keys neither.
    if (/[wWQ]|-count-|-alt-/.test(k)) continue;
    af[k] = v;
  }
  const atTime = g['dateTimeFormats-atTime']?.standard;
  const hc = hourCycle(locale);
  return {
    df: styles(g.dateFormats),
    tf: styles(g.timeFormats),
    dta: atTime ? styles(atTime) : styles(g.dateTimeFormats),
    af,
    hc: hc.preferred,
    hca: hc.allowed,
  };
}

function units(locale) {
  const u = read(`cldr-units-full/main/${locale}/units.json`).main[locale].units;
  const out = {};
  for (const width of ['long', 'short', 'narrow']) {
    const w = { per: u[width].per.compoundUnitPattern };
    const add = (name, key) => {
      const e = u[width][key];
      if (!e) throw new Error(`${locale}: no ${width} ${key}`);
      const forms = {};
      for (const [k, v] of Object.entries(e)) {
        const m = /^unitPattern-count-(.+)$/.exec(k);
        if (m) forms[m[1]] = v;
      }
      forms.dn = e.displayName;
      if (e.perUnitPattern) forms.per = e.perUnitPattern;
      w[name] = forms;
    };
    for (const [name, cat] of Object.entries(SIMPLE)) add(name, `${cat}-${name}`);
    for (const [name, cat] of Object.entries(COMPOUND)) add(name, `${cat}-${name}`);
    out[width] = w;
  }
  // The number symbols ICU4X's decimal data leaves out.
  const n = read(`cldr-numbers-full/main/${locale}/numbers.json`).main[locale].numbers;
  const sym = n[`symbols-numberSystem-${n.defaultNumberingSystem}`];
  out.sym = { nan: sym.nan, inf: sym.infinity, exp: sym.exponential };
  return out;
}

// Currencies some region uses today as legal tender.
const currencies = new Set();
for (const list of Object.values(currencyData.region)) {
  for (const entry of list) {
    for (const [code, v] of Object.entries(entry)) {
      if (!v._to && v._tender !== 'false') currencies.add(code);
    }
  }
}

// A Rust raw string literal that cannot be closed by its content.
const raw = (s) => {
  let hashes = '#';
  while (s.includes(`"${hashes}`)) hashes += '#';
  return `r${hashes}"${s}"${hashes}`;
};

// A table identical to the nearest listed ancestor's is stored empty: the child finds it by
// following the same fallback chain at run time.
const listed = new Set(locales);
const tables = new Map(locales.map((l) => [l, { dates: JSON.stringify(dates(l)), units: JSON.stringify(units(l)) }]));
function inherited(locale, key) {
  for (let p = parentOf(locale); p !== 'root'; p = parentOf(p)) {
    if (listed.has(p)) return tables.get(p)[key] === tables.get(locale)[key];
  }
  return false;
}

let rs = `// @generated by tools/intl-data/cldr.mjs from CLDR ${version} (JSON, npm packages
// cldr-core, cldr-dates-full, cldr-numbers-full, cldr-units-full). Do not edit; run \`make intl-data\`.

/// The CLDR release these tables come from.
pub const CLDR_VERSION: &str = "${version}";

/// Per locale: (BCP 47 tag, date patterns as JSON, unit patterns as JSON), sorted by tag. An
/// empty JSON string means "the same as the nearest listed CLDR ancestor".
pub static LOCALES: &[(&str, &str, &str)] = &[
`;
let shared = 0;
for (const l of [...locales].sort()) {
  const t = tables.get(l);
  const d = inherited(l, 'dates') ? '' : t.dates;
  const u = inherited(l, 'units') ? '' : t.units;
  shared += (d === '') + (u === '');
  rs += `    (\n        "${l}",\n        ${raw(d)},\n        ${raw(u)},\n    ),\n`;
}
rs += '];\n';

fs.writeFileSync(rsOut, rs);
fs.writeFileSync(currenciesOut, [...currencies].sort().join('\n') + '\n');
console.log(`cldr.mjs: CLDR ${version}, ${locales.length} locales (${shared} tables inherited), ${currencies.size} currencies`);
