//! Issue 11, item 1: `TextEncoder`, `TextDecoder` (UTF-8 with `fatal`/`ignoreBOM`/streaming,
//! UTF-16LE, latin1), `atob`, `btoa` — through `cs-invoker-pool run` (a confined pool child),
//! each snippet's results compared with what Node 20 computes for the same code.

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

/// UTF-8 both ways (lone surrogates, encodeInto, BOM, streaming across chunks, replacement of bad bytes), UTF-16LE and latin1 decoding, labels.
#[test]
fn text_encoder_and_decoder_match_node() {
    matches_node(
        r##"export default async function () {
  const enc = new TextEncoder();
  const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');
  const text = 'Olá, mundo ✓ 😀';
  const bytes = enc.encode(text);
  const into = new Uint8Array(8);
  const r = enc.encodeInto(text, into);
  const dec = new TextDecoder();
  const streamed = new TextDecoder();
  const parts = [bytes.slice(0, 13), bytes.slice(13, 17), bytes.slice(17)];
  const joined = parts.map((p, i) => streamed.decode(p, { stream: i < parts.length - 1 })).join('|');
  const out = {
    encoding: enc.encoding,
    bytes: hex(bytes),
    length: bytes.length,
    loneSurrogate: hex(enc.encode('a\ud800b')),
    encodeInto: [r.read, r.written, hex(into)],
    roundTrip: dec.decode(bytes) === text,
    bom: JSON.stringify(dec.decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0x69]))),
    keepBom: [...new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x68]))].map((c) => c.codePointAt(0).toString(16)),
    streamed: joined,
    replaced: [...dec.decode(new Uint8Array([0x61, 0xc3, 0x28, 0xe2, 0x82, 0xf0, 0x80, 0x80, 0x80, 0xed, 0xa0, 0x80, 0x62]))].map((c) => c.codePointAt(0).toString(16)).join(' '),
    fromArrayBuffer: dec.decode(bytes.buffer.slice(0, 4)),
    fromDataView: dec.decode(new DataView(bytes.buffer, 2, 2)),
    utf16: [new TextDecoder('utf-16le').encoding, new TextDecoder('utf-16le').decode(new Uint8Array([0xff, 0xfe, 0x68, 0, 0x3d, 0xd8, 0, 0xde]))],
    utf16Odd: [...new TextDecoder('utf-16le').decode(new Uint8Array([0x68, 0, 0x69]))].map((c) => c.codePointAt(0).toString(16)),
    latin1: [new TextDecoder('latin1').encoding, new TextDecoder('iso-8859-1').decode(new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0xff])).split('').map((c) => c.charCodeAt(0))],
    labels: ['UTF8', ' utf-8 ', 'unicode-1-1-utf-8', 'ucs-2', 'ascii', 'US-ASCII'].map((l) => new TextDecoder(l).encoding),
    attrs: [dec.fatal, dec.ignoreBOM, new TextDecoder('utf-8', { fatal: true }).fatal],
    tags: [Object.prototype.toString.call(enc), Object.prototype.toString.call(dec)],
    empty: [enc.encode().length, dec.decode(), dec.decode(undefined)],
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "encoding": "utf-8",
  "bytes": "4f6cc3a12c206d756e646f20e29c9320f09f9880",
  "length": 20,
  "loneSurrogate": "61efbfbd62",
  "encodeInto": [
    7,
    8,
    "4f6cc3a12c206d75"
  ],
  "roundTrip": true,
  "bom": "\"hi\"",
  "keepBom": [
    "feff",
    "68"
  ],
  "streamed": "Olá, mundo |✓ |😀",
  "replaced": "61 fffd 28 fffd fffd fffd fffd fffd fffd fffd fffd 62",
  "fromArrayBuffer": "Olá",
  "fromDataView": "á",
  "utf16": [
    "utf-16le",
    "h😀"
  ],
  "utf16Odd": [
    "68",
    "fffd"
  ],
  "latin1": [
    "windows-1252",
    [
      99,
      97,
      102,
      233,
      255
    ]
  ],
  "labels": [
    "utf-8",
    "utf-8",
    "utf-8",
    "utf-16le",
    "windows-1252",
    "windows-1252"
  ],
  "attrs": [
    false,
    false,
    true
  ],
  "tags": [
    "[object TextEncoder]",
    "[object TextDecoder]"
  ],
  "empty": [
    0,
    "",
    ""
  ]
}"##,
    );
}

/// A fatal decoder throws Node's TypeError on bad UTF-8 (what input validators rely on); bad labels and arguments throw Node's errors.
#[test]
fn fatal_decoder_throws_type_error_like_node() {
    matches_node(
        r##"export default async function () {
  const caught = (f) => { try { return ['no error', f()]; } catch (e) { return [e.name, e.code, e.message, e instanceof TypeError, e instanceof RangeError, e instanceof DOMException]; } };
  const out = {
    fatal: caught(() => new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0x68, 0xff, 0x69]))),
    fatalTruncated: caught(() => new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0xe2, 0x9c]))),
    fatalOk: caught(() => new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0xe2, 0x9c, 0x93]))),
    fatalStreamOk: caught(() => new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0xe2, 0x9c]), { stream: true })),
    unknownLabel: caught(() => new TextDecoder('klingon')),
    notBytes: caught(() => new TextDecoder().decode('abc')),
    intoNotU8: caught(() => new TextEncoder().encodeInto('a', [])),
    // The pattern libraries use to validate UTF-8 input.
    isUtf8: [[0x68, 0x69], [0xc0, 0xaf], [0xf0, 0x9f, 0x98, 0x80], [0xed, 0xa0, 0x80]].map((b) => {
      try { new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(b)); return true; } catch { return false; }
    }),
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "fatal": [
    "TypeError",
    "ERR_ENCODING_INVALID_ENCODED_DATA",
    "The encoded data was not valid for encoding utf-8",
    true,
    false,
    false
  ],
  "fatalTruncated": [
    "TypeError",
    "ERR_ENCODING_INVALID_ENCODED_DATA",
    "The encoded data was not valid for encoding utf-8",
    true,
    false,
    false
  ],
  "fatalOk": [
    "no error",
    "✓"
  ],
  "fatalStreamOk": [
    "no error",
    ""
  ],
  "unknownLabel": [
    "RangeError",
    "ERR_ENCODING_NOT_SUPPORTED",
    "The \"klingon\" encoding is not supported",
    false,
    true,
    false
  ],
  "notBytes": [
    "TypeError",
    "ERR_INVALID_ARG_TYPE",
    "The \"list\" argument must be an instance of SharedArrayBuffer, ArrayBuffer or ArrayBufferView.",
    true,
    false,
    false
  ],
  "intoNotU8": [
    "TypeError",
    "ERR_INVALID_ARG_TYPE",
    "The \"dest\" argument must be an instance of Uint8Array. Received an instance of Array",
    true,
    false,
    false
  ],
  "isUtf8": [
    true,
    false,
    true,
    false
  ]
}"##,
    );
}

/// btoa/atob round trips (a JWT header in base64url), forgiving whitespace, and the DOMException InvalidCharacterError cases.
#[test]
fn atob_and_btoa_match_node_including_errors() {
    matches_node(
        r##"export default async function () {
  const caught = (f) => { try { return ['no error', f()]; } catch (e) { return [e.name, e.code, e.message, e instanceof DOMException, e instanceof Error]; } };
  const jwtPart = btoa(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  const out = {
    btoa: [btoa(''), btoa('f'), btoa('fo'), btoa('foo'), btoa('Man is'), btoa('\u00ff\u00fe\u0000')],
    atob: [atob('Zg=='), atob('Zm8'), atob(' Zm9v\nYmFy\t'), atob('TWFuIGlz')],
    binary: Array.from(atob('/+8A'), (c) => c.charCodeAt(0)),
    jwtHeader: jwtPart,
    jwtBack: JSON.parse(atob(jwtPart.replace(/-/g, '+').replace(/_/g, '/'))).alg,
    badChar: caught(() => atob('Zm9v!')),
    badLength: caught(() => atob('Zm9vY')),
    badPadding: caught(() => atob('Zg=')),
    notLatin1: caught(() => btoa('✓')),
    missing: caught(() => atob()),
    coerced: [atob(null === null ? 'bnVsbA==' : ''), btoa(123)],
  };
  return { body: JSON.stringify(out) };
}"##,
        // Computed by Node 20 (v20.20.2) for the same code.
        r##"{
  "btoa": [
    "",
    "Zg==",
    "Zm8=",
    "Zm9v",
    "TWFuIGlz",
    "//4A"
  ],
  "atob": [
    "f",
    "fo",
    "foobar",
    "Man is"
  ],
  "binary": [
    255,
    239,
    0
  ],
  "jwtHeader": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
  "jwtBack": "HS256",
  "badChar": [
    "InvalidCharacterError",
    5,
    "Invalid character",
    true,
    true
  ],
  "badLength": [
    "InvalidCharacterError",
    5,
    "The string to be decoded is not correctly encoded.",
    true,
    true
  ],
  "badPadding": [
    "InvalidCharacterError",
    5,
    "Invalid character",
    true,
    true
  ],
  "notLatin1": [
    "InvalidCharacterError",
    5,
    "Invalid character",
    true,
    true
  ],
  "missing": [
    "TypeError",
    "ERR_MISSING_ARGS",
    "The \"input\" argument must be specified",
    false,
    true
  ],
  "coerced": [
    "null",
    "MTIz"
  ]
}"##,
    );
}
