//! Issue 11, item 8 (the `Buffer` part): Node's `Buffer` — from/alloc/concat/byteLength/
//! isBuffer/toString in utf8, hex, base64, base64url, latin1 (and ascii, utf16le), subarray,
//! equals, compare, plus the methods binary code uses — through `cs-invoker-pool run` (a
//! confined pool child), each snippet's results compared with what Node 20 computes for the
//! same code.

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

/// Every encoding both ways, with Node's leniency: hex stops at a bad pair, base64 skips whitespace and accepts both alphabets, base64url writes no padding (JWT segments), latin1 keeps the low byte.
#[test]
fn buffer_encodings_match_node() {
    matches_node(
        r##"export default async function () {
  const text = 'héllo wörld ✓ 😀';
  const b = Buffer.from(text);
  const out = {
    utf8: [b.length, b.toString(), b.toString('utf8', 1, 5), b.toString('utf-8')],
    hex: [b.toString('hex'), Buffer.from('48656c6C6f', 'hex').toString(), Buffer.from('48656c6x6f', 'hex').toString('hex'), Buffer.from('abc', 'hex').length],
    base64: [b.toString('base64'), Buffer.from('aGVsbG8gd29ybGQ=', 'base64').toString(), Buffer.from('aGVsbG8gd29ybGQ', 'base64').toString(), Buffer.from(' aGVs\nbG8= ', 'base64').toString()],
    // base64url: no padding out, either alphabet (and padding) in.
    base64url: [Buffer.from([0xfb, 0xff, 0xfe]).toString('base64url'), Buffer.from([0xfb, 0xff]).toString('base64url'), Buffer.from('-_8', 'base64url').toString('hex'), Buffer.from('+/8=', 'base64url').toString('hex'), Buffer.from('eyJzdWIiOiIxMjM0In0', 'base64url').toString()],
    latin1: [Buffer.from('café', 'latin1').toString('hex'), Buffer.from([0x63, 0xe9, 0xff]).toString('latin1'), Buffer.from('Ā', 'binary').toString('hex')],
    ascii: [Buffer.from('hé', 'ascii').toString('hex'), Buffer.from([0xe9, 0x41]).toString('ascii')],
    utf16le: [Buffer.from('hi✓', 'utf16le').toString('hex'), Buffer.from('6800690013', 'hex').toString('ucs2')],
    fromArray: [Buffer.from([1, 255, 256, -1, 3.7, '7']).toString('hex'), Buffer.from(new Uint16Array([1, 0x102])).toString('hex'), Buffer.from({ length: 2, 0: 65, 1: 66 }).toString()],
    fromJson: Buffer.from(JSON.parse(JSON.stringify(Buffer.from('hi')))).toString(),
    json: JSON.stringify(Buffer.from([1, 2])),
    lone: Buffer.from('a\ud800').toString('hex'),
    encodings: ['utf8', 'UTF-8', 'hex', 'base64', 'base64url', 'latin1', 'binary', 'ascii', 'ucs2', 'utf16le', 'nope', ''].map((e) => Buffer.isEncoding(e)),
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "utf8": [
    22,
    "héllo wörld ✓ 😀",
    "éll",
    "héllo wörld ✓ 😀"
  ],
  "hex": [
    "68c3a96c6c6f2077c3b6726c6420e29c9320f09f9880",
    "Hello",
    "48656c",
    1
  ],
  "base64": [
    "aMOpbGxvIHfDtnJsZCDinJMg8J+YgA==",
    "hello world",
    "hello world",
    "hello"
  ],
  "base64url": [
    "-__-",
    "-_8",
    "fbff",
    "fbff",
    "{\"sub\":\"1234\"}"
  ],
  "latin1": [
    "636166e9",
    "céÿ",
    "00"
  ],
  "ascii": [
    "68e9",
    "iA"
  ],
  "utf16le": [
    "680069001327",
    "hi"
  ],
  "fromArray": [
    "01ff00ff0307",
    "0102",
    "AB"
  ],
  "fromJson": "hi",
  "json": "{\"type\":\"Buffer\",\"data\":[1,2]}",
  "lone": "61efbfbd",
  "encodings": [
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    false,
    false
  ]
}"##,
    );
}

/// alloc/fill/concat/byteLength/isBuffer; subarray and slice share memory, Buffer.from(arrayBuffer) is a view; equals/compare (also as a sort comparator); write/copy/indexOf; fixed-width integer reads and writes; a Buffer is a Uint8Array.
#[test]
fn buffer_allocation_views_and_comparison_match_node() {
    matches_node(
        r##"export default async function () {
  const hex = (b) => b.toString('hex');
  const ab = new ArrayBuffer(8);
  const shared = Buffer.from(ab, 2, 4);
  shared[0] = 0xaa;
  const base = Buffer.from('abcdef');
  const sub = base.subarray(1, 4);
  sub[0] = 0x42;
  const sl = base.slice(-2);
  const list = [Buffer.from('b'), Buffer.from('a'), Buffer.from('ab'), Buffer.from('')];
  const w = Buffer.alloc(10);
  const written = w.write('hé✓', 1);
  const out = {
    alloc: [hex(Buffer.alloc(4)), hex(Buffer.alloc(5, 'ab')), hex(Buffer.alloc(3, 0x41)), hex(Buffer.alloc(6, 'aGk=', 'base64')), hex(Buffer.allocUnsafe(3).fill(7))],
    concat: [Buffer.concat([Buffer.from('ab'), new Uint8Array([99]), Buffer.from('d')]).toString(), Buffer.concat([Buffer.from('abc')], 2).toString(), hex(Buffer.concat([Buffer.from('a')], 3)), Buffer.concat([]).length],
    byteLength: [Buffer.byteLength('héllo'), Buffer.byteLength('😀'), Buffer.byteLength('aGVsbG8=', 'base64'), Buffer.byteLength('abcd', 'hex'), Buffer.byteLength('ab', 'utf16le'), Buffer.byteLength(new Uint8Array(7)), Buffer.byteLength(new ArrayBuffer(3))],
    isBuffer: [Buffer.isBuffer(base), Buffer.isBuffer(new Uint8Array(1)), Buffer.isBuffer('x'), base instanceof Uint8Array, sub instanceof Buffer],
    sharing: [Array.from(new Uint8Array(ab)), shared.byteOffset, base.toString(), hex(sl), sl instanceof Buffer],
    equals: [Buffer.from('abc').equals(Buffer.from('abc')), Buffer.from('abc').equals(new Uint8Array([97, 98, 99])), Buffer.from('abc').equals(Buffer.from('abd'))],
    compare: [Buffer.compare(Buffer.from('a'), Buffer.from('b')), Buffer.from('b').compare(Buffer.from('a')), Buffer.from('abc').compare(Buffer.from('abd'), 0, 2, 0, 2), list.sort(Buffer.compare).map((b) => b.toString())],
    fill: [hex(Buffer.alloc(5).fill('xy')), hex(Buffer.from('abcde').fill(0, 1, 3)), hex(Buffer.alloc(4).fill(Buffer.from([1, 2, 3])))],
    write: [written, hex(w)],
    copy: (() => { const t = Buffer.alloc(5); const n = Buffer.from('xyz').copy(t, 1); return [n, hex(t)]; })(),
    search: [Buffer.from('hello world').indexOf('o'), Buffer.from('hello world').lastIndexOf('o'), Buffer.from('hello world').indexOf(Buffer.from('wor')), Buffer.from('hello').includes('ll'), Buffer.from('hello').indexOf(0x6c), Buffer.from('abc').indexOf('z')],
    ints: (() => {
      const x = Buffer.alloc(16);
      x.writeUInt32BE(0xdeadbeef, 0);
      x.writeInt16LE(-2, 4);
      x.writeUInt8(255, 6);
      x.writeDoubleLE(1.5, 8);
      return [hex(x), x.readUInt32BE(0), x.readUInt32LE(0), x.readInt16LE(4), x.readUInt16BE(4), x.readInt8(6), x.readDoubleLE(8), x.readUIntBE(0, 3), x.readIntLE(4, 2), x.readBigUInt64LE(8).toString()];
    })(),
    map: hex(Buffer.from('ab').map((c) => c + 1)),
    swap: hex(Buffer.from([1, 2, 3, 4]).swap16()),
    iterate: [...Buffer.from('hi')],
    toJSON: Buffer.from('hi').toJSON(),
    callable: [Buffer('ab').toString(), Buffer.from('x').constructor === Buffer, Object.getPrototypeOf(Buffer) === Uint8Array],
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "alloc": [
    "00000000",
    "6162616261",
    "414141",
    "686968696869",
    "070707"
  ],
  "concat": [
    "abcd",
    "ab",
    "610000",
    0
  ],
  "byteLength": [
    6,
    4,
    5,
    2,
    4,
    7,
    3
  ],
  "isBuffer": [
    true,
    false,
    false,
    true,
    true
  ],
  "sharing": [
    [
      0,
      0,
      170,
      0,
      0,
      0,
      0,
      0
    ],
    2,
    "aBcdef",
    "6566",
    true
  ],
  "equals": [
    true,
    true,
    false
  ],
  "compare": [
    -1,
    1,
    0,
    [
      "",
      "a",
      "ab",
      "b"
    ]
  ],
  "fill": [
    "7879787978",
    "6100006465",
    "01020301"
  ],
  "write": [
    6,
    "0068c3a9e29c93000000"
  ],
  "copy": [
    3,
    "0078797a00"
  ],
  "search": [
    4,
    7,
    6,
    true,
    2,
    -1
  ],
  "ints": [
    "deadbeeffeffff00000000000000f83f",
    3735928559,
    4022250974,
    -2,
    65279,
    -1,
    1.5,
    14593470,
    -2,
    "4609434218613702656"
  ],
  "map": "6263",
  "swap": "02010403",
  "iterate": [
    104,
    105
  ],
  "toJSON": {
    "type": "Buffer",
    "data": [
      104,
      105
    ]
  },
  "callable": [
    "ab",
    true,
    true
  ]
}"##,
    );
}

/// Wrong argument types and ranges throw the classes, codes and messages Node throws.
#[test]
fn buffer_errors_match_node() {
    matches_node(
        r##"export default async function () {
  const caught = (f) => { try { f(); return 'no error'; } catch (e) { return [e.name, e.code, e.message]; } };
  const out = {
    fromNumber: caught(() => Buffer.from(5)),
    fromNull: caught(() => Buffer.from(null)),
    badEncoding: caught(() => Buffer.from('x', 'nope')),
    toStringBadEncoding: caught(() => Buffer.from('x').toString('nope')),
    negativeAlloc: caught(() => Buffer.alloc(-1)),
    allocString: caught(() => Buffer.alloc('5')),
    concatNotArray: caught(() => Buffer.concat('x')),
    concatBadItem: caught(() => Buffer.concat([Buffer.from('a'), 'b'])),
    equalsString: caught(() => Buffer.from('a').equals('a')),
    compareString: caught(() => Buffer.compare('a', Buffer.from('a'))),
    byteLengthNumber: caught(() => Buffer.byteLength(5)),
    readOutOfRange: caught(() => Buffer.alloc(2).readUInt32LE(0)),
    readBadOffset: caught(() => Buffer.alloc(4).readUInt16BE(3)),
    fromArrayBufferOffset: caught(() => Buffer.from(new ArrayBuffer(4), 5)),
    swapOdd: caught(() => Buffer.from([1, 2, 3]).swap16()),
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "fromNumber": [
    "TypeError",
    "ERR_INVALID_ARG_TYPE",
    "The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object. Received type number (5)"
  ],
  "fromNull": [
    "TypeError",
    "ERR_INVALID_ARG_TYPE",
    "The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object. Received null"
  ],
  "badEncoding": [
    "TypeError",
    "ERR_UNKNOWN_ENCODING",
    "Unknown encoding: nope"
  ],
  "toStringBadEncoding": [
    "TypeError",
    "ERR_UNKNOWN_ENCODING",
    "Unknown encoding: nope"
  ],
  "negativeAlloc": [
    "RangeError",
    "ERR_OUT_OF_RANGE",
    "The value of \"size\" is out of range. It must be >= 0 && <= 4294967296. Received -1"
  ],
  "allocString": [
    "TypeError",
    "ERR_INVALID_ARG_TYPE",
    "The \"size\" argument must be of type number. Received type string ('5')"
  ],
  "concatNotArray": [
    "TypeError",
    "ERR_INVALID_ARG_TYPE",
    "The \"list\" argument must be an instance of Array. Received type string ('x')"
  ],
  "concatBadItem": [
    "TypeError",
    "ERR_INVALID_ARG_TYPE",
    "The \"list[1]\" argument must be an instance of Buffer or Uint8Array. Received type string ('b')"
  ],
  "equalsString": [
    "TypeError",
    "ERR_INVALID_ARG_TYPE",
    "The \"otherBuffer\" argument must be an instance of Buffer or Uint8Array. Received type string ('a')"
  ],
  "compareString": [
    "TypeError",
    "ERR_INVALID_ARG_TYPE",
    "The \"buf1\" argument must be an instance of Buffer or Uint8Array. Received type string ('a')"
  ],
  "byteLengthNumber": [
    "TypeError",
    "ERR_INVALID_ARG_TYPE",
    "The \"string\" argument must be of type string or an instance of Buffer or ArrayBuffer. Received type number (5)"
  ],
  "readOutOfRange": [
    "RangeError",
    "ERR_BUFFER_OUT_OF_BOUNDS",
    "Attempt to access memory outside buffer bounds"
  ],
  "readBadOffset": [
    "RangeError",
    "ERR_OUT_OF_RANGE",
    "The value of \"offset\" is out of range. It must be >= 0 and <= 2. Received 3"
  ],
  "fromArrayBufferOffset": [
    "RangeError",
    "ERR_BUFFER_OUT_OF_BOUNDS",
    "\"offset\" is outside of buffer bounds"
  ],
  "swapOdd": [
    "RangeError",
    "ERR_INVALID_BUFFER_SIZE",
    "Buffer size must be a multiple of 16-bits"
  ]
}"##,
    );
}
