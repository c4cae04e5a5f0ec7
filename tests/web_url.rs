//! Issue 11, item 2: `URL` (WHATWG parsing, `URL.canParse`, `URL.parse`, setters) and
//! `URLSearchParams` — through `cs-invoker-pool run` (a confined pool child), each snippet's
//! results compared with what Node 20 computes for the same code.

#[macro_use]
mod support;

use serde_json::Value;
use support::cli::*;

/// Runs `source` (a handler returning `{ body: JSON.stringify(out) }`) through the real
/// `cs-invoker-pool run`, confined, and compares the parsed body with Node's.
fn matches_node(source: &str, node: &str) {
    let r = run_js(source, &[]);
    let got = r.body_json();
    let want: Value = serde_json::from_str(node).expect("expected JSON");
    if got != want {
        r.fail(&format!(
            "differs from Node 20:\n  got:  {got}\n  want: {want}"
        ));
    }
}

/// WHATWG parsing: every component of a messy URL, ports, IPv6/IPv4 shorthand, IDN, relative resolution, special and opaque schemes, JSON/String.
#[test]
fn url_parsing_and_components_match_node() {
    matches_node(
        r##"export default async function () {
  const parts = (u) => [u.href, u.origin, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash];
  const out = {
    full: parts(new URL('HTTPS://user:p%40ss w@Example.COM:443/a/./b/../c%20d/é?q=1 2&x=ü#frag ment')),
    port: parts(new URL('http://example.com:8080')),
    ipv6: parts(new URL('http://[2001:db8::1]:3000/x')),
    ipv4Shorthand: new URL('http://0x7f.1/').hostname,
    idn: [new URL('https://münchen.de/').hostname, new URL('https://xn--mnchen-3ya.de/').hostname],
    relative: [
      new URL('../up', 'https://api.example.com/v1/users/42').href,
      new URL('?page=2', 'https://api.example.com/v1/users?page=1').href,
      new URL('//cdn.example.com/lib.js', 'https://example.com/').href,
      new URL('/abs', new URL('https://example.com/a/b')).href,
    ],
    schemes: ['file:///tmp/x.txt', 'mailto:ops@example.com', 'data:text/plain,hi', 'blob:https://a.example/uuid', 'urn:isbn:0451450523', 'ws://h/s']
      .map((s) => { const u = new URL(s); return [u.protocol, u.origin, u.pathname]; }),
    json: JSON.stringify({ u: new URL('https://example.com/p?q') }),
    string: String(new URL('https://example.com')) + ' ' + `${new URL('https://EXAMPLE.com/%7e')}`,
    tag: Object.prototype.toString.call(new URL('https://a.b')),
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "full": [
    "https://user:p%40ss%20w@example.com/a/c%20d/%C3%A9?q=1%202&x=%C3%BC#frag%20ment",
    "https://example.com",
    "https:",
    "user",
    "p%40ss%20w",
    "example.com",
    "example.com",
    "",
    "/a/c%20d/%C3%A9",
    "?q=1%202&x=%C3%BC",
    "#frag%20ment"
  ],
  "port": [
    "http://example.com:8080/",
    "http://example.com:8080",
    "http:",
    "",
    "",
    "example.com:8080",
    "example.com",
    "8080",
    "/",
    "",
    ""
  ],
  "ipv6": [
    "http://[2001:db8::1]:3000/x",
    "http://[2001:db8::1]:3000",
    "http:",
    "",
    "",
    "[2001:db8::1]:3000",
    "[2001:db8::1]",
    "3000",
    "/x",
    "",
    ""
  ],
  "ipv4Shorthand": "127.0.0.1",
  "idn": [
    "xn--mnchen-3ya.de",
    "xn--mnchen-3ya.de"
  ],
  "relative": [
    "https://api.example.com/v1/up",
    "https://api.example.com/v1/users?page=2",
    "https://cdn.example.com/lib.js",
    "https://example.com/abs"
  ],
  "schemes": [
    [
      "file:",
      "null",
      "/tmp/x.txt"
    ],
    [
      "mailto:",
      "null",
      "ops@example.com"
    ],
    [
      "data:",
      "null",
      "text/plain,hi"
    ],
    [
      "blob:",
      "https://a.example",
      "https://a.example/uuid"
    ],
    [
      "urn:",
      "null",
      "isbn:0451450523"
    ],
    [
      "ws:",
      "ws://h",
      "/s"
    ]
  ],
  "json": "{\"u\":\"https://example.com/p?q\"}",
  "string": "https://example.com/ https://example.com/%7e",
  "tag": "[object URL]"
}"##,
    );
}

/// zod's z.string().url() pattern (`new URL(s)` throwing = invalid) gives Node's answers; the TypeError carries Node's code, input and base; URL.canParse/URL.parse agree.
#[test]
fn invalid_url_throws_type_error_as_validators_expect() {
    matches_node(
        r##"export default async function () {
  // zod's z.string().url() and many validators: "is it a URL?" = "does new URL() throw?".
  const isUrl = (s) => { try { new URL(s); return true; } catch { return false; } };
  const samples = ['https://example.com', 'http://localhost:3000/x', 'not a url', '', 'example.com', '/relative', 'mailto:a@b.c', 'http://', 'https://exa mple.com', 'http://[::1', 'javascript:alert(1)', 'ftp://files.example.com/a.txt'];
  let err;
  try { new URL('not a url'); } catch (e) { err = e; }
  let baseErr;
  try { new URL('/p', 'also not a url'); } catch (e) { baseErr = e; }
  let missing;
  try { new URL(); } catch (e) { missing = [e.name, e.code, e.message]; }
  const out = {
    isUrl: samples.map(isUrl),
    canParse: samples.map((s) => URL.canParse(s)),
    canParseWithBase: [URL.canParse('/x', 'https://a.example'), URL.canParse('/x', 'nope')],
    parse: [URL.parse('https://a.example/x')?.href ?? null, URL.parse('nope')],
    error: [err.name, err.code, err.message, err.input, err instanceof TypeError, err.stack.split('\n')[0]],
    baseError: [baseErr.name, baseErr.code, baseErr.input, baseErr.base],
    missing,
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "isUrl": [
    true,
    true,
    false,
    false,
    false,
    false,
    true,
    false,
    false,
    false,
    true,
    true
  ],
  "canParse": [
    true,
    true,
    false,
    false,
    false,
    false,
    true,
    false,
    false,
    false,
    true,
    true
  ],
  "canParseWithBase": [
    true,
    false
  ],
  "parse": [
    "https://a.example/x",
    null
  ],
  "error": [
    "TypeError",
    "ERR_INVALID_URL",
    "Invalid URL",
    "not a url",
    true,
    "TypeError: Invalid URL"
  ],
  "baseError": [
    "TypeError",
    "ERR_INVALID_URL",
    "/p",
    "also not a url"
  ],
  "missing": [
    "TypeError",
    "ERR_MISSING_ARGS",
    "The \"url\" argument must be specified"
  ]
}"##,
    );
}

/// Setters (search, pathname, hash, port, protocol, host, credentials, href) and url.searchParams update each other both ways.
#[test]
fn url_setters_and_search_params_stay_linked() {
    matches_node(
        r##"export default async function () {
  const u = new URL('https://api.example.com/v1/items?limit=10&tag=a#top');
  const log = [];
  const params = u.searchParams;
  params.append('tag', 'b c&d=e');
  log.push(u.href);
  params.set('limit', '20');
  params.delete('tag', 'a');
  log.push(u.search);
  u.search = '?x=1&y=2';
  log.push([...params].join(';'), params === u.searchParams);
  u.pathname = '/v2/other path/ü';
  u.hash = 'sec 2';
  u.port = '8443';
  log.push(u.href);
  u.port = '443';
  u.protocol = 'http';
  log.push(u.href, u.port);
  u.protocol = 'https';
  u.hostname = 'other.example';
  u.username = 'me';
  u.password = 'sec ret';
  log.push(u.href, u.origin);
  u.host = 'h.example:99';
  log.push(u.host);
  u.port = 'not a port';
  log.push(u.port);
  u.href = 'https://reset.example/';
  log.push(u.href, params.toString(), params.size);
  let bad;
  try { u.href = 'nope'; } catch (e) { bad = [e.name, e.code]; }
  log.push(bad, u.href);
  params.append('k', 'v');
  log.push(u.href);
  params.delete('k');
  log.push(u.href);
  return { body: JSON.stringify(log) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"[
  "https://api.example.com/v1/items?limit=10&tag=a&tag=b+c%26d%3De#top",
  "?limit=20&tag=b+c%26d%3De",
  "x,1;y,2",
  true,
  "https://api.example.com:8443/v2/other%20path/%C3%BC?x=1&y=2#sec%202",
  "http://api.example.com/v2/other%20path/%C3%BC?x=1&y=2#sec%202",
  "",
  "https://me:sec%20ret@other.example/v2/other%20path/%C3%BC?x=1&y=2#sec%202",
  "https://other.example",
  "h.example:99",
  "99",
  "https://reset.example/",
  "",
  0,
  [
    "TypeError",
    "ERR_INVALID_URL"
  ],
  "https://reset.example/",
  "https://reset.example/?k=v",
  "https://reset.example/"
]"##,
    );
}

/// URLSearchParams parsing (+, %-escapes, empty values), constructors from string/record/pairs/Map, get/getAll/has/set/delete/sort, live iterators, serialization and errors.
#[test]
fn url_search_params_match_node() {
    matches_node(
        r##"export default async function () {
  const p = new URLSearchParams('?a=1&b=2&a=3&empty=&plus=x+y&pct=%20%F0%9F%98%80&noeq');
  const caught = (f) => { try { f(); return 'no error'; } catch (e) { return [e.name, e.code, e.message]; } };
  const fe = [];
  p.forEach((v, k, self) => fe.push(`${k}=${v}:${self === p}`));
  const sorted = new URLSearchParams('z=1&a=2&m=3&a=1');
  sorted.sort();
  const out = {
    get: [p.get('a'), p.get('missing'), p.get('empty'), p.get('plus'), p.get('pct'), p.get('noeq')],
    getAll: p.getAll('a'),
    has: [p.has('a'), p.has('a', '3'), p.has('a', '9'), p.has('zz')],
    size: p.size,
    keys: [...p.keys()],
    values: [...p.values()],
    entries: [...p.entries()].map((e) => e.join('=')),
    iterTag: Object.prototype.toString.call(p.entries()),
    iterIsEntries: p[Symbol.iterator] === p.entries,
    forEach: fe,
    string: p.toString(),
    fromRecord: new URLSearchParams({ q: 'café & co', n: 5, arr: [1, 2] }).toString(),
    fromPairs: new URLSearchParams([['k', 'v1'], ['k', 'v2'], ['sp ace', '~*\'()!']]).toString(),
    fromParams: new URLSearchParams(new URLSearchParams('x=1')).toString(),
    fromMap: new URLSearchParams(new Map([['m', '1']])).toString(),
    sorted: sorted.toString(),
    setDelete: (() => { const s = new URLSearchParams('a=1&b=2&a=3'); s.set('a', 'x'); s.delete('b'); s.append('c', ''); return s.toString(); })(),
    badTuple: caught(() => new URLSearchParams([['only-one']])),
    badTupleType: caught(() => new URLSearchParams([1])),
    missingArg: caught(() => p.get()),
    tag: Object.prototype.toString.call(p),
    special: new URLSearchParams({ s: '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~' }).toString(),
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "get": [
    "1",
    null,
    "",
    "x y",
    " 😀",
    ""
  ],
  "getAll": [
    "1",
    "3"
  ],
  "has": [
    true,
    true,
    false,
    false
  ],
  "size": 7,
  "keys": [
    "a",
    "b",
    "a",
    "empty",
    "plus",
    "pct",
    "noeq"
  ],
  "values": [
    "1",
    "2",
    "3",
    "",
    "x y",
    " 😀",
    ""
  ],
  "entries": [
    "a=1",
    "b=2",
    "a=3",
    "empty=",
    "plus=x y",
    "pct= 😀",
    "noeq="
  ],
  "iterTag": "[object URLSearchParams Iterator]",
  "iterIsEntries": true,
  "forEach": [
    "a=1:true",
    "b=2:true",
    "a=3:true",
    "empty=:true",
    "plus=x y:true",
    "pct= 😀:true",
    "noeq=:true"
  ],
  "string": "a=1&b=2&a=3&empty=&plus=x+y&pct=+%F0%9F%98%80&noeq=",
  "fromRecord": "q=caf%C3%A9+%26+co&n=5&arr=1%2C2",
  "fromPairs": "k=v1&k=v2&sp+ace=%7E*%27%28%29%21",
  "fromParams": "x=1",
  "fromMap": "m=1",
  "sorted": "a=2&a=1&m=3&z=1",
  "setDelete": "a=x&c=",
  "badTuple": [
    "TypeError",
    "ERR_INVALID_TUPLE",
    "Each query pair must be an iterable [name, value] tuple"
  ],
  "badTupleType": [
    "TypeError",
    "ERR_INVALID_TUPLE",
    "Each query pair must be an iterable [name, value] tuple"
  ],
  "missingArg": [
    "TypeError",
    "ERR_MISSING_ARGS",
    "The \"name\" argument must be specified"
  ],
  "tag": "[object URLSearchParams]",
  "special": "s=%21%22%23%24%25%26%27%28%29*%2B%2C-.%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E_%60%7B%7C%7D%7E"
}"##,
    );
}
