//! Issue 11, item 7: `console` formats like Node (`util.format`/`util.inspect`: `%s %d %i %f %j
//! %o %O %%`, objects broken at 80 columns, Map, Set, Symbol, `undefined`, nesting below depth 2
//! as `[Object]`, cycles as `[Circular *1]`, errors as their stack plus extra properties, also for
//! custom error classes), and `err.stack` starts with `Name: message` as in V8 — through
//! `cs-invoker-pool run` (a confined pool child). Expected log records are what Node 20 prints
//! for the same code; error snippets set `Error.stackTraceLimit = 0` where the frames (whose file
//! names and columns differ between engines) would be printed.

#[macro_use]
mod support;

use serde_json::Value;
use support::cli::*;

/// The log records of a run, `(level, text)`: one `[level] text` line each (a line break
/// inside a record is written as the two characters `\n`, so no text can forge a line).
fn records(r: &Run) -> Vec<(String, String)> {
    r.stderr
        .lines()
        .filter_map(|line| {
            ["info", "warn", "error"].iter().find_map(|l| {
                line.strip_prefix(&format!("[{l}] "))
                    .map(|t| (l.to_string(), t.to_string()))
            })
        })
        .collect()
}

/// Node's text as one record line: line breaks written as `\n` (and `\r`).
fn one_line(text: &str) -> String {
    text.replace('\n', "\\n").replace('\r', "\\r")
}

/// Runs `source` through `cs-invoker-pool run` and compares its log records with Node's.
fn logs_match_node(source: &str, node: &str) {
    let r = run_js(source, &[]);
    r.success();
    let want: Vec<(String, String)> = serde_json::from_str(node).expect("expected JSON");
    let want: Vec<(String, String)> = want.into_iter().map(|(l, t)| (l, one_line(&t))).collect();
    let got = records(&r);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if g != w {
            r.fail(&format!(
                "record {i} differs from Node 20:\n--- got [{}]:\n{}\n--- want [{}]:\n{}",
                g.0, g.1, w.0, w.1
            ));
        }
    }
    if got.len() != want.len() {
        r.fail(&format!(
            "{} records, Node printed {}",
            got.len(),
            want.len()
        ));
    }
}

/// Runs `source` (a handler returning `{ body: JSON.stringify(out) }`) and compares the body
/// with Node's.
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

/// Objects and arrays (line breaking at 80 columns, grouping of long arrays, depth 2, holes, extra keys), Map, Set, Symbol, undefined, BigInt, -0, functions and classes, getters, quoting of strings and keys, circular references, boxed primitives, typed arrays, promises.
#[test]
fn values_format_like_node() {
    logs_match_node(
        r##"export default async function () {
  console.log({a: 'x'.repeat(30), b: 'y'.repeat(30)});
  console.log({a: 'x'.repeat(25), b: 'y'.repeat(25)});
  console.log({a: {b: {c: {}}}, x: [1, [2, [3, [4]]]]});
  const o = {name: 'o'}; o.self = o; o.arr = [o]; console.log(o);
  console.log(new Map([['a', 1], [{k: 1}, [2]]]), new Set([1, 'two']));
  console.log('%s', {a: 1}, 'extra', 5);
  console.log('a\nb', ["it's", 'say "hi"', 'both \' "', 'x\ny']);
  console.log([1, , 3, , , 6], new Array(5), [ , 1]);
  const arr = [1, 2]; arr.extra = 'x'; console.log(arr);
  console.log(Object.create(null), Object.assign(Object.create(null), {a: 1}));
  class Foo { constructor() { this.x = 1; } get y() { return 2; } }
  console.log(new Foo(), [new Foo()], {f: new Foo()});
  console.log({ get g() { return 1; }, set s(v) {}, get gs() { return 1; }, set gs(v) {} });
  console.log({'a-b': 1, 'c d': 2, _ok: 3, $no: 4, 1: 5, [Symbol('sym')]: 6, [Symbol()]: 7});
  console.log([new Date(0), /ab+c/gi, new Date(NaN)]);
  console.log(new Uint8Array([1, 2, 3]), new Float64Array(2), new ArrayBuffer(3), new DataView(new ArrayBuffer(2)));
  console.log(Promise.resolve(42), new Promise(() => {}), Promise.reject(new Error('no')).catch(() => {}) && 1);
  console.log([new WeakMap(), new WeakSet()]);
  console.log(new Number(3), new String('str'), new Boolean(false), Object(10n));
  console.log('long', 'x'.repeat(100));
  console.log({long: 'x'.repeat(100)});
  console.log({multi: 'line one\nline two\nline three that is quite long indeed, more than eighty chars wide'});
  console.log(Array.from({length: 120}, (_, i) => i));
  console.log(Array.from({length: 10}, (_, i) => 'item' + i));
  console.log({a: [{b: 1, c: [1, 2, {d: 3}]}]});
  console.log([[[[1]]]], {x: {y: {z: {w: {}}}}});
  console.log(null, undefined, true, 3.14, -0, 0, NaN, Infinity, 1e21, 1e-7, 123456789012345680000);
  console.log(function named() {}, Math.max, class Q extends Foo {}, Object.assign(function withProps() {}, {p: 1}));
  console.log('%d %i %f', '42', '42.9px', 'abc', 'rest');
  console.log('%s %s', 'only one');
  console.log('100%', '%% literal', 5);
  console.log('%j', (() => { const c = {}; c.c = c; return c; })());
  console.log('%o', [1, {a: 2}]);
  console.log('%s', null, undefined, Symbol('q'), 10n, [1, [2, [3]]], new Error('e1').message);
  console.log({und: undefined, nul: null, fn() {}, arrow: () => 1, async am() {}});
  console.log(['a', 'b'].entries ? [...['a', 'b'].entries()] : 0);
  console.log(new Map([[1, new Map([[2, new Map([[3, new Map()]])]])]]));
  console.log({k: new Set([[1, 2], {a: 1}])});
  console.log([{}, [], new Map(), new Set(), '']);
  console.log({emptyStr: '', zero: 0, nested: {arr: []}});
}"##,
        // What Node 20 (v20.20.2) prints for the same code, as [level, text] records
        // (console.warn/error go to stderr in Node, here to the [warn]/[error] log lines).
        r##"[
  [
    "info",
    "{\n  a: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',\n  b: 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy'\n}"
  ],
  [
    "info",
    "{ a: 'xxxxxxxxxxxxxxxxxxxxxxxxx', b: 'yyyyyyyyyyyyyyyyyyyyyyyyy' }"
  ],
  [
    "info",
    "{ a: { b: { c: {} } }, x: [ 1, [ 2, [Array] ] ] }"
  ],
  [
    "info",
    "<ref *1> { name: 'o', self: [Circular *1], arr: [ [Circular *1] ] }"
  ],
  [
    "info",
    "Map(2) { 'a' => 1, { k: 1 } => [ 2 ] } Set(2) { 1, 'two' }"
  ],
  [
    "info",
    "{ a: 1 } extra 5"
  ],
  [
    "info",
    "a\nb [ \"it's\", 'say \"hi\"', `both ' \"`, 'x\\ny' ]"
  ],
  [
    "info",
    "[ 1, <1 empty item>, 3, <2 empty items>, 6 ] [ <5 empty items> ] [ <1 empty item>, 1 ]"
  ],
  [
    "info",
    "[ 1, 2, extra: 'x' ]"
  ],
  [
    "info",
    "[Object: null prototype] {} [Object: null prototype] { a: 1 }"
  ],
  [
    "info",
    "Foo { x: 1 } [ Foo { x: 1 } ] { f: Foo { x: 1 } }"
  ],
  [
    "info",
    "{ g: [Getter], s: [Setter], gs: [Getter/Setter] }"
  ],
  [
    "info",
    "{\n  '1': 5,\n  'a-b': 1,\n  'c d': 2,\n  _ok: 3,\n  '$no': 4,\n  [Symbol(sym)]: 6,\n  [Symbol()]: 7\n}"
  ],
  [
    "info",
    "[ 1970-01-01T00:00:00.000Z, /ab+c/gi, Invalid Date ]"
  ],
  [
    "info",
    "Uint8Array(3) [ 1, 2, 3 ] Float64Array(2) [ 0, 0 ] ArrayBuffer { [Uint8Contents]: <00 00 00>, byteLength: 3 } DataView {\n  byteLength: 2,\n  byteOffset: 0,\n  buffer: ArrayBuffer { [Uint8Contents]: <00 00>, byteLength: 2 }\n}"
  ],
  [
    "info",
    "Promise { 42 } Promise { <pending> } 1"
  ],
  [
    "info",
    "[ WeakMap { <items unknown> }, WeakSet { <items unknown> } ]"
  ],
  [
    "info",
    "[Number: 3] [String: 'str'] [Boolean: false] [BigInt: 10n]"
  ],
  [
    "info",
    "long xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
  ],
  [
    "info",
    "{\n  long: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'\n}"
  ],
  [
    "info",
    "{\n  multi: 'line one\\n' +\n    'line two\\n' +\n    'line three that is quite long indeed, more than eighty chars wide'\n}"
  ],
  [
    "info",
    "[\n   0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11,\n  12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,\n  24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,\n  36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,\n  48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,\n  60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71,\n  72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83,\n  84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,\n  96, 97, 98, 99,\n  ... 20 more items\n]"
  ],
  [
    "info",
    "[\n  'item0', 'item1',\n  'item2', 'item3',\n  'item4', 'item5',\n  'item6', 'item7',\n  'item8', 'item9'\n]"
  ],
  [
    "info",
    "{ a: [ { b: 1, c: [Array] } ] }"
  ],
  [
    "info",
    "[ [ [ [Array] ] ] ] { x: { y: { z: [Object] } } }"
  ],
  [
    "info",
    "null undefined true 3.14 -0 0 NaN Infinity 1e+21 1e-7 123456789012345680000"
  ],
  [
    "info",
    "[Function: named] [Function: max] [class Q extends Foo] [Function: withProps] { p: 1 }"
  ],
  [
    "info",
    "42 42 NaN rest"
  ],
  [
    "info",
    "only one %s"
  ],
  [
    "info",
    "100% %% literal 5"
  ],
  [
    "info",
    "[Circular]"
  ],
  [
    "info",
    "[ 1, { a: 2 }, [length]: 2 ]"
  ],
  [
    "info",
    "null undefined Symbol(q) 10n [ 1, [ 2, [ 3 ] ] ] e1"
  ],
  [
    "info",
    "{\n  und: undefined,\n  nul: null,\n  fn: [Function: fn],\n  arrow: [Function: arrow],\n  am: [AsyncFunction: am]\n}"
  ],
  [
    "info",
    "[ [ 0, 'a' ], [ 1, 'b' ] ]"
  ],
  [
    "info",
    "Map(1) { 1 => Map(1) { 2 => Map(1) { 3 => Map(0) {} } } }"
  ],
  [
    "info",
    "{ k: Set(2) { [ 1, 2 ], { a: 1 } } }"
  ],
  [
    "info",
    "[ {}, [], Map(0) {}, Set(0) {}, '' ]"
  ],
  [
    "info",
    "{ emptyStr: '', zero: 0, nested: { arr: [] } }"
  ]
]"##,
    );
}

/// %s %d %i %f %j %o %O %c and %% (also with too few or extra arguments), argument joining, levels.
#[test]
fn format_directives_like_node() {
    logs_match_node(
        r##"export default async function () {
  const user = { id: 7, name: 'Ana', roles: ['admin', 'dev'] };
  console.log('user %s logged in from %s', user.name, '10.0.0.1');
  console.log('%s has %d items costing %f (int %i)', 'cart', 3, '19.99', 42.9);
  console.log('%d %i %f', '42', '42.9px', 'abc', 'rest', 1);
  console.log('%s|%s|%s|%s|%s|%s', null, undefined, Symbol('q'), 10n, -0, [1, [2, [3]]]);
  console.log('%s', user, 'and', { toString() { return 'custom'; } });
  console.log('%j', user);
  console.log('%j', (() => { const c = {}; c.c = c; return c; })());
  console.log('%o', [1, { a: 2 }]);
  console.log('%O', { deep: { deeper: { deepest: { gone: 1 } } } });
  console.log('100%', '%% literal', 5);
  console.log('100%%');
  console.log('%% %s', 'x');
  console.log('%c styled %s', 'color: red', 'text');
  console.log('%s %s', 'only one');
  console.log('%x unknown %s', 'y');
  console.log('%d', 12345678901234567890n, '%i', Symbol('n'));
  console.log('%s', 1.5, 'tail', { a: 1 }, ['arr'], null);
  console.log(5, 'five', { five: 5 });
  console.log();
  console.log('');
  console.info('info %s', 'level');
  console.debug('debug level');
  console.warn('warn %d', 1);
  console.error('error', new Map([['k', 'v']]));
}"##,
        // What Node 20 (v20.20.2) prints for the same code, as [level, text] records
        // (console.warn/error go to stderr in Node, here to the [warn]/[error] log lines).
        r##"[
  [
    "info",
    "user Ana logged in from 10.0.0.1"
  ],
  [
    "info",
    "cart has 3 items costing 19.99 (int 42)"
  ],
  [
    "info",
    "42 42 NaN rest 1"
  ],
  [
    "info",
    "null|undefined|Symbol(q)|10n|-0|[ 1, [Array] ]"
  ],
  [
    "info",
    "{ id: 7, name: 'Ana', roles: [Array] } and { toString: [Function: toString] }"
  ],
  [
    "info",
    "{\"id\":7,\"name\":\"Ana\",\"roles\":[\"admin\",\"dev\"]}"
  ],
  [
    "info",
    "[Circular]"
  ],
  [
    "info",
    "[ 1, { a: 2 }, [length]: 2 ]"
  ],
  [
    "info",
    "{ deep: { deeper: { deepest: [Object] } } }"
  ],
  [
    "info",
    "100% %% literal 5"
  ],
  [
    "info",
    "100%%"
  ],
  [
    "info",
    "% x"
  ],
  [
    "info",
    " styled text"
  ],
  [
    "info",
    "only one %s"
  ],
  [
    "info",
    "%x unknown y"
  ],
  [
    "info",
    "12345678901234567890n %i Symbol(n)"
  ],
  [
    "info",
    "1.5 tail { a: 1 } [ 'arr' ] null"
  ],
  [
    "info",
    "5 five { five: 5 }"
  ],
  [
    "info",
    ""
  ],
  [
    "info",
    ""
  ],
  [
    "info",
    "info level"
  ],
  [
    "info",
    "debug level"
  ],
  [
    "warn",
    "warn 1"
  ],
  [
    "error",
    "error Map(1) { 'k' => 'v' }"
  ]
]"##,
    );
}

/// Errors print as their stack (here without frames: [Name: message]), custom classes by class name, extra properties, [cause], AggregateError [errors], DOMException, nested errors.
#[test]
fn errors_format_like_node() {
    logs_match_node(
        r##"export default async function () {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  console.log(new Error('plain'));
  console.log(new TypeError('typed'));
  class ValidationError extends Error {}
  console.log(new ValidationError('bad input'));
  class HttpError extends Error {
    constructor(status, message) { super(message); this.name = 'HttpError'; this.status = status; }
  }
  console.log(new HttpError(404, 'not found'));
  const e = new Error('with props'); e.code = 'E_CODE'; e.details = { field: 'email', rule: 'format' };
  console.log(e);
  console.log({ nested: new RangeError('inner'), list: [new SyntaxError('in list')] });
  console.log(new Error('outer', { cause: new Error('root cause') }));
  console.log(new Error('outer', { cause: 'a string cause' }));
  console.log(new Error(''), [new Error()]);
  const renamed = new Error('m'); renamed.name = 'CustomName'; console.log(renamed);
  console.log(new AggregateError([new Error('first'), new TypeError('second')], 'many failed'));
  console.log(new DOMException('aborted', 'AbortError'));
  console.log(String(new TypeError('x')), `${new RangeError('y')}`, new Error('msg') + '');
  console.error('failed:', new Error('in error'));
  console.log('%s', new Error('via %s'));
  Error.stackTraceLimit = limit;
}"##,
        // What Node 20 (v20.20.2) prints for the same code, as [level, text] records
        // (console.warn/error go to stderr in Node, here to the [warn]/[error] log lines).
        r##"[
  [
    "info",
    "[Error: plain]"
  ],
  [
    "info",
    "[TypeError: typed]"
  ],
  [
    "info",
    "[ValidationError: bad input]"
  ],
  [
    "info",
    "[HttpError: not found] { status: 404 }"
  ],
  [
    "info",
    "[Error: with props] {\n  code: 'E_CODE',\n  details: { field: 'email', rule: 'format' }\n}"
  ],
  [
    "info",
    "{ nested: [RangeError: inner], list: [ [SyntaxError: in list] ] }"
  ],
  [
    "info",
    "[Error: outer] { [cause]: [Error: root cause] }"
  ],
  [
    "info",
    "[Error: outer] { [cause]: 'a string cause' }"
  ],
  [
    "info",
    "[Error] [ [Error] ]"
  ],
  [
    "info",
    "[CustomName: m]"
  ],
  [
    "info",
    "[AggregateError: many failed] {\n  [errors]: [ [Error: first], [TypeError: second] ]\n}"
  ],
  [
    "info",
    "[DOMException [AbortError]: aborted]"
  ],
  [
    "info",
    "TypeError: x RangeError: y Error: msg"
  ],
  [
    "error",
    "failed: [Error: in error]"
  ],
  [
    "info",
    "[Error: via %s]"
  ]
]"##,
    );
}

/// URL, URLSearchParams, Buffer, TextEncoder/TextDecoder, CryptoKey, SubtleCrypto, buffers and promises print as Node prints them.
#[test]
fn web_objects_format_like_node() {
    logs_match_node(
        r##"export default async function () {
  console.log(new URL('https://user@example.com:8080/p/a/t/h?query=string#hash'));
  console.log(new URLSearchParams('a=1&b=two&b=three'), new URLSearchParams(''));
  console.log(Buffer.from('hello world'), Buffer.alloc(0), { buf: Buffer.from([1, 2, 3]) });
  console.log(Buffer.alloc(60, 1));
  console.log(new TextEncoder(), new TextDecoder('utf-16le', { fatal: true }));
  const key = await crypto.subtle.importKey('raw', new Uint8Array(8), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  console.log(key);
  console.log(crypto.subtle, typeof crypto.getRandomValues);
  console.log([new Uint8Array([1, 2]), new ArrayBuffer(3), new DataView(new ArrayBuffer(2))]);
  console.log(Promise.resolve({ ok: true }), new Promise(() => {}));
  console.log(structuredClone(new Map([[1, { deep: [1, 2] }]])));
}"##,
        // What Node 20 (v20.20.2) prints for the same code, as [level, text] records
        // (console.warn/error go to stderr in Node, here to the [warn]/[error] log lines).
        r##"[
  [
    "info",
    "URL {\n  href: 'https://user@example.com:8080/p/a/t/h?query=string#hash',\n  origin: 'https://example.com:8080',\n  protocol: 'https:',\n  username: 'user',\n  password: '',\n  host: 'example.com:8080',\n  hostname: 'example.com',\n  port: '8080',\n  pathname: '/p/a/t/h',\n  search: '?query=string',\n  searchParams: URLSearchParams { 'query' => 'string' },\n  hash: '#hash'\n}"
  ],
  [
    "info",
    "URLSearchParams { 'a' => '1', 'b' => 'two', 'b' => 'three' } URLSearchParams {}"
  ],
  [
    "info",
    "<Buffer 68 65 6c 6c 6f 20 77 6f 72 6c 64> <Buffer > { buf: <Buffer 01 02 03> }"
  ],
  [
    "info",
    "<Buffer 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 ... 10 more bytes>"
  ],
  [
    "info",
    "{ encoding: 'utf-8' } TextDecoder { encoding: 'utf-16le', fatal: true, ignoreBOM: false }"
  ],
  [
    "info",
    "CryptoKey {\n  type: 'secret',\n  extractable: false,\n  algorithm: { name: 'HMAC', hash: [Object], length: 64 },\n  usages: [ 'sign' ]\n}"
  ],
  [
    "info",
    "SubtleCrypto {} function"
  ],
  [
    "info",
    "[\n  Uint8Array(2) [ 1, 2 ],\n  ArrayBuffer { [Uint8Contents]: <00 00 00>, byteLength: 3 },\n  DataView {\n    byteLength: 2,\n    byteOffset: 0,\n    buffer: ArrayBuffer { [Uint8Contents]: <00 00>, byteLength: 2 }\n  }\n]"
  ],
  [
    "info",
    "Promise { { ok: true } } Promise { <pending> }"
  ],
  [
    "info",
    "Map(1) { 1 => { deep: [ 1, 2 ] } }"
  ]
]"##,
    );
}

/// console.assert, count/countReset, dir (with depth, and without custom inspectors), debug.
#[test]
fn console_methods_like_node() {
    logs_match_node(
        r##"export default async function () {
  console.assert(1 === 1, 'never printed');
  console.assert(false);
  console.assert(false, 'expected %s got %s', 'a', 'b');
  console.assert(0, { reason: 'object' });
  console.count();
  console.count('jobs');
  console.count();
  console.count('jobs');
  console.countReset('jobs');
  console.count('jobs');
  console.dir({ a: { b: { c: { d: { e: 1 } } } } }, { depth: 0 });
  console.dir({ a: { b: { c: { d: { e: 1 } } } } }, { depth: null });
  console.dir(new URL('https://a.example/x'), { depth: 0 });
  console.debug({ level: 'debug' });
}"##,
        // What Node 20 (v20.20.2) prints for the same code, as [level, text] records
        // (console.warn/error go to stderr in Node, here to the [warn]/[error] log lines).
        r##"[
  [
    "warn",
    "Assertion failed"
  ],
  [
    "warn",
    "Assertion failed: expected a got b"
  ],
  [
    "warn",
    "Assertion failed: [object Object]"
  ],
  [
    "info",
    "default: 1"
  ],
  [
    "info",
    "jobs: 1"
  ],
  [
    "info",
    "default: 2"
  ],
  [
    "info",
    "jobs: 2"
  ],
  [
    "info",
    "jobs: 1"
  ],
  [
    "info",
    "{ a: [Object] }"
  ],
  [
    "info",
    "{\n  a: {\n    b: { c: { d: { e: 1 } } }\n  }\n}"
  ],
  [
    "info",
    "https://a.example/x"
  ],
  [
    "info",
    "{ level: 'debug' }"
  ]
]"##,
    );
}

/// The stack an activation reports for an uncaught error starts with `Name: message`, as V8's
/// does, also for a custom error class, and keeps its frames.
#[test]
fn uncaught_error_stack_starts_with_name_and_message() {
    let r = run_js(
        r#"class ValidationError extends Error {
             constructor(m) { super(m); this.name = 'ValidationError'; }
           }
           function check(email) { if (!email.includes('@')) throw new ValidationError(`bad email: ${email}`); }
           export default () => { check('nobody'); };"#,
        &[],
    );
    let e = r.failure("error", "Exception");
    assert_eq!(e["message"], "ValidationError: bad email: nobody", "{r:?}");
    let stack = e["stack"].as_str().unwrap_or_default();
    let mut lines = stack.lines();
    assert_eq!(
        lines.next(),
        Some("ValidationError: bad email: nobody"),
        "{stack}"
    );
    let frames: Vec<&str> = lines.collect();
    assert!(
        !frames.is_empty() && frames.iter().all(|l| l.starts_with("    at ")),
        "{stack}"
    );
    assert!(frames.iter().any(|f| f.contains("at check (")), "{stack}");
}

/// A log call that prints an error shows its frames after the `Name: message` line, indented
/// under the property that holds it, like Node (frames differ in file names and columns, so
/// only their shape is compared).
#[test]
fn logged_errors_show_their_frames_like_node() {
    let r = run_js(
        r#"function inner() { throw new TypeError('deep'); }
           export default () => {
             try { inner(); } catch (e) { console.log(e); console.log({ wrapped: e }); }
           };"#,
        &[],
    );
    r.success();
    let recs = records(&r);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let top: Vec<&str> = recs[0].1.split("\\n").collect();
    assert_eq!(top[0], "TypeError: deep", "{recs:?}");
    assert!(top[1].starts_with("    at inner ("), "{recs:?}");
    let nested: Vec<&str> = recs[1].1.split("\\n").collect();
    assert_eq!(nested[0], "{", "{recs:?}");
    assert_eq!(nested[1], "  wrapped: TypeError: deep", "{recs:?}");
    assert!(nested[2].starts_with("      at inner ("), "{recs:?}");
    assert_eq!(*nested.last().unwrap(), "}", "{recs:?}");
}

/// `err.stack` starts with `Name: message` as in V8: built-in and custom classes (name set in the
/// constructor), `Error.captureStackTrace` targets, the header taken at the first read and kept,
/// engine-thrown errors; the stack is then an own, writable data property.
#[test]
fn error_stack_header_matches_v8() {
    matches_node(
        r##"export default async function () {
  const first = (e) => e.stack.split('\n')[0];
  const framed = (e) => /\n {4}at /.test(e.stack);
  class MyError extends Error { constructor(m) { super(m); this.name = 'MyError'; } }
  class Plain extends Error {}
  function Legacy(message) { Error.captureStackTrace(this, Legacy); this.name = 'Legacy'; this.message = message; }
  Legacy.prototype = Object.create(Error.prototype);
  const target = {};
  Error.captureStackTrace(target);
  const later = new Error('m');
  const firstRead = later.stack;
  later.name = 'Renamed';
  const beforeRead = new Error('m2');
  beforeRead.name = 'Renamed';
  let thrown;
  try { null.prop; } catch (e) { thrown = e; }
  const out = {
    errors: [new Error('boom'), new TypeError('bad type'), new RangeError('far'), new MyError('custom'), new Plain('plain'),
      new Error(''), new Error(), new DOMException('gone', 'NotFoundError')].map(first),
    legacy: [first(new Legacy('old style')), new Legacy('x') instanceof Error],
    captured: first(target),
    cachedOnFirstRead: [firstRead === later.stack, first(later)],
    nameBeforeFirstRead: first(beforeRead),
    engineError: [thrown.name, thrown.constructor === TypeError, thrown.stack.startsWith('TypeError: ')],
    hasFrames: [framed(new Error('f')), framed(new MyError('f'))],
    ownProperty: (() => { const e = new Error('own'); e.stack; const d = Object.getOwnPropertyDescriptor(e, 'stack'); return [typeof d.value, d.enumerable, d.writable]; })(),
    assignable: (() => { const e = new Error('x'); e.stack = 'replaced'; return e.stack; })(),
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "errors": [
    "Error: boom",
    "TypeError: bad type",
    "RangeError: far",
    "MyError: custom",
    "Error: plain",
    "Error",
    "Error",
    "NotFoundError: gone"
  ],
  "legacy": [
    "Legacy: old style",
    true
  ],
  "captured": "Error",
  "cachedOnFirstRead": [
    true,
    "Error: m"
  ],
  "nameBeforeFirstRead": "Renamed: m2",
  "engineError": [
    "TypeError",
    true,
    true
  ],
  "hasFrames": [
    true,
    true
  ],
  "ownProperty": [
    "string",
    false,
    true
  ],
  "assignable": "replaced"
}"##,
    );
}

/// Logging a value nested far deeper than the native stack allows (a 100 000-element linked
/// list with `depth: null`, custom inspectors that recurse) stops with Node's "Inspection
/// interrupted" marker or a catchable RangeError; the child survives (Node itself dies on the
/// second case).
#[test]
fn deeply_nested_values_do_not_crash_the_child() {
    let r = run_js(
        r#"export default () => {
             let o = { end: true };
             for (let i = 0; i < 100000; i++) o = { next: o };
             console.dir(o, { depth: null });
             const C = Symbol.for('nodejs.util.inspect.custom');
             const again = () => ({ [C](depth, opts, inspect) { return inspect(again(), opts); } });
             let caught = 'none';
             try { console.log(again()); } catch (e) { caught = e.name; }
             const fresh = () => ({ [C]() { return fresh(); } });
             console.log(fresh());
             return { body: caught };
           };"#,
        &[],
    );
    assert_eq!(r.body(), "RangeError", "{r:?}");
    let recs = records(&r);
    assert!(
        recs[0].1.starts_with("{\\n  next: {\\n    next: {")
            && recs[0].1.contains(
                "[Object: Inspection interrupted prematurely. Maximum call stack size exceeded.]"
            ),
        "{}",
        &recs[0].1[..200.min(recs[0].1.len())]
    );
    assert_eq!(
        recs.last().map(|r| r.1.as_str()),
        Some("[Object: Inspection interrupted prematurely. Maximum call stack size exceeded.]")
    );
}
