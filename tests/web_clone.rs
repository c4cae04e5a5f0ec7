//! Issue 11, item 4 (the parts of web1): `structuredClone` and `performance.now()` /
//! `performance.timeOrigin` — through `cs-invoker-pool run` (a confined pool child), each
//! snippet's results compared with what Node 20 computes for the same code.

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

/// A deep copy that keeps cycles and shared references, Date/RegExp/Map/Set/typed arrays/DataView/boxed primitives/errors (with cause), ArrayBuffer transfer, and class instances become plain objects.
#[test]
fn structured_clone_matches_node() {
    matches_node(
        r##"export default async function () {
  const shared = { tag: 'shared' };
  const src = {
    n: 1, s: 'x', b: true, nul: null, und: undefined, big: 10n, neg: -0, nan: NaN,
    date: new Date(Date.UTC(2024, 1, 29, 12, 30)), re: /a+b/gi,
    map: new Map([['k', { v: 1 }], [2, shared]]), set: new Set([1, 'two', shared]),
    arr: [1, , 3], u8: new Uint8Array([1, 2, 3]), f64: new Float64Array([1.5]),
    boxed: [new Number(3), new String('s'), new Boolean(false)],
    err: Object.assign(new RangeError('out of range', { cause: 'why' }), { extra: 1 }),
    a: shared, b2: shared,
  };
  src.self = src;
  const c = structuredClone(src);
  const ab = new ArrayBuffer(8);
  const views = structuredClone({ x: new Uint8Array(ab, 2, 3), y: new DataView(ab) });
  const t = new ArrayBuffer(4);
  const moved = structuredClone(t, { transfer: [t] });
  class Point { constructor() { this.x = 1; } get len() { return 5; } }
  const p = structuredClone(new Point());
  const out = {
    distinct: c !== src && c.map !== src.map && c.date !== src.date,
    cycle: c.self === c,
    sharedKept: c.a === c.b2 && c.map.get(2) === c.a && c.set.has(c.a),
    primitives: [c.n, c.s, c.b, c.nul, c.und === undefined && 'und' in c, typeof c.big, Object.is(c.neg, -0), Number.isNaN(c.nan)],
    date: [c.date instanceof Date, c.date.toISOString()],
    re: [c.re instanceof RegExp, c.re.source, c.re.flags],
    map: [c.map instanceof Map, c.map.size, c.map.get('k').v],
    set: [c.set instanceof Set, [...c.set].slice(0, 2)],
    arr: [c.arr.length, 1 in c.arr, c.arr[2]],
    typed: [c.u8 instanceof Uint8Array, [...c.u8], c.f64[0]],
    boxed: c.boxed.map((x) => [typeof x, x.valueOf()]),
    err: [c.err instanceof RangeError, c.err.name, c.err.message, c.err.cause, c.err.extra, c.err.stack === src.err.stack],
    views: [views.x.buffer === views.y.buffer, views.x.byteOffset, views.x.length, views.y.byteLength],
    transfer: [t.byteLength, moved.byteLength],
    classInstance: [p.constructor === Object, p.x, 'len' in p],
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "distinct": true,
  "cycle": true,
  "sharedKept": true,
  "primitives": [
    1,
    "x",
    true,
    null,
    true,
    "bigint",
    true,
    true
  ],
  "date": [
    true,
    "2024-02-29T12:30:00.000Z"
  ],
  "re": [
    true,
    "a+b",
    "gi"
  ],
  "map": [
    true,
    2,
    1
  ],
  "set": [
    true,
    [
      1,
      "two"
    ]
  ],
  "arr": [
    3,
    false,
    3
  ],
  "typed": [
    true,
    [
      1,
      2,
      3
    ],
    1.5
  ],
  "boxed": [
    [
      "object",
      3
    ],
    [
      "object",
      "s"
    ],
    [
      "object",
      false
    ]
  ],
  "err": [
    true,
    "RangeError",
    "out of range",
    "why",
    null,
    true
  ],
  "views": [
    true,
    2,
    3,
    8
  ],
  "transfer": [
    0,
    4
  ],
  "classInstance": [
    true,
    1,
    false
  ]
}"##,
    );
}

/// Functions, symbols, promises, weak collections and proxies throw Node's DataCloneError; performance.now() is a monotonic millisecond clock from timeOrigin.
#[test]
fn structured_clone_errors_and_performance_match_node() {
    matches_node(
        r##"export default async function () {
  const caught = (v) => { try { structuredClone(v); return 'cloned'; } catch (e) { return [e.name, e.code, e.message, e instanceof DOMException]; } };
  let missing;
  try { structuredClone(); } catch (e) { missing = [e.name, e.code, e.message]; }
  const t0 = performance.now();
  let spin = 0;
  for (let i = 0; i < 1e5; i++) spin += i;
  const t1 = performance.now();
  const out = {
    fn: caught(() => {}),
    method: caught({ f() {} }),
    symbol: caught(Symbol('s')),
    weak: caught(new WeakMap()),
    promise: caught(Promise.resolve()),
    proxy: caught(new Proxy({}, {})),
    missing,
    perf: [typeof t0, t1 >= t0, spin > 0, performance.now() < 3600e3, Math.abs(performance.timeOrigin + performance.now() - Date.now()) < 1000, performance.toJSON().timeOrigin === performance.timeOrigin],
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "fn": [
    "DataCloneError",
    25,
    "() => {} could not be cloned.",
    true
  ],
  "method": [
    "DataCloneError",
    25,
    "f() {} could not be cloned.",
    true
  ],
  "symbol": [
    "DataCloneError",
    25,
    "Symbol(s) could not be cloned.",
    true
  ],
  "weak": [
    "DataCloneError",
    25,
    "#<WeakMap> could not be cloned.",
    true
  ],
  "promise": [
    "DataCloneError",
    25,
    "#<Promise> could not be cloned.",
    true
  ],
  "proxy": [
    "DataCloneError",
    25,
    "#<Object> could not be cloned.",
    true
  ],
  "missing": [
    "TypeError",
    "ERR_MISSING_ARGS",
    "The value argument must be specified"
  ],
  "perf": [
    "number",
    true,
    true,
    true,
    true,
    true
  ]
}"##,
    );
}
