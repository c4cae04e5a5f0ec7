// TextEncoder, TextDecoder, atob, btoa: the classes around the Rust codecs of encoding.rs.
// Error names, codes and messages are Node 20's.
(function (native) {
  'use strict';
  const { brand, DOMException } = native;
  const custom = Symbol.for('nodejs.util.inspect.custom');

  function nodeError(Ctor, code, message) {
    const e = new Ctor(message);
    Object.defineProperty(e, 'code', { value: code, writable: true, enumerable: true, configurable: true });
    return e;
  }

  // Node's " Received …" suffix of ERR_INVALID_ARG_TYPE messages.
  function received(v) {
    if (v === null || v === undefined) return ` Received ${v}`;
    if (typeof v === 'function') return ` Received function ${v.name}`;
    if (typeof v === 'object') {
      const name = v.constructor?.name;
      return name ? ` Received an instance of ${name}` : ' Received [Object: null prototype]';
    }
    let shown = typeof v === 'string' ? `'${v}'` : typeof v === 'bigint' ? `${v}n` : String(v);
    if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
    return ` Received type ${typeof v} (${shown})`;
  }

  // An ArrayBuffer or ArrayBufferView as a Uint8Array over the same bytes, or undefined.
  function view(v) {
    const b = brand(v);
    if (b === 'Uint8Array') return v;
    if (b === 'ArrayBuffer') return new Uint8Array(v);
    if (b === 'DataView' || (b !== 'Array' && b.endsWith('Array'))) {
      return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    }
    return undefined;
  }

  const LABELS = new Map();
  for (const [name, labels] of [
    ['utf-8', ['unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'utf-8', 'utf8', 'x-unicode20utf8']],
    ['utf-16le', ['csunicode', 'iso-10646-ucs-2', 'ucs-2', 'unicode', 'unicodefeff', 'utf-16', 'utf-16le']],
    ['utf-16be', ['unicodefffe', 'utf-16be']],
    ['windows-1252', ['ansi_x3.4-1968', 'ascii', 'cp1252', 'cp819', 'csisolatin1', 'ibm819', 'iso-8859-1',
      'iso-ir-100', 'iso8859-1', 'iso88591', 'iso_8859-1', 'iso_8859-1:1987', 'l1', 'latin1', 'us-ascii',
      'windows-1252', 'x-cp1252']],
  ]) {
    for (const l of labels) LABELS.set(l, name);
  }

  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(input = '') {
      return native.utf8Encode(String(input));
    }
    encodeInto(source, destination) {
      if (brand(destination) !== 'Uint8Array') {
        throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
          `The "dest" argument must be an instance of Uint8Array.${received(destination)}`);
      }
      const [read, written] = native.utf8EncodeInto(String(source), destination);
      return { read, written };
    }
    [custom]() {
      return { encoding: 'utf-8' };
    }
  }

  class TextDecoder {
    #encoding;
    #fatal;
    #ignoreBOM;
    #pending = null;
    #started = false;
    constructor(label = 'utf-8', options = undefined) {
      const encoding = LABELS.get(String(label).replace(/^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, '').toLowerCase());
      if (encoding === undefined) {
        throw nodeError(RangeError, 'ERR_ENCODING_NOT_SUPPORTED', `The "${label}" encoding is not supported`);
      }
      if (options !== undefined && options !== null && typeof options !== 'object') {
        throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "options" argument must be of type object.');
      }
      this.#encoding = encoding;
      this.#fatal = Boolean(options?.fatal);
      this.#ignoreBOM = Boolean(options?.ignoreBOM);
    }
    get encoding() { return this.#encoding; }
    get fatal() { return this.#fatal; }
    get ignoreBOM() { return this.#ignoreBOM; }
    decode(input = undefined, options = undefined) {
      let bytes;
      if (input === undefined) {
        bytes = new Uint8Array(0);
      } else {
        bytes = view(input);
        if (bytes === undefined) {
          throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
            'The "list" argument must be an instance of SharedArrayBuffer, ArrayBuffer or ArrayBufferView.');
        }
      }
      const stream = Boolean(options?.stream);
      if (this.#pending !== null) {
        const joined = new Uint8Array(this.#pending.length + bytes.length);
        joined.set(this.#pending, 0);
        joined.set(bytes, this.#pending.length);
        bytes = joined;
        this.#pending = null;
      }
      const r = native.decode(bytes, this.#encoding, this.#fatal, stream);
      if (r == null) {
        this.#started = false;
        throw nodeError(TypeError, 'ERR_ENCODING_INVALID_ENCODED_DATA',
          `The encoded data was not valid for encoding ${this.#encoding}`);
      }
      let text = r[0];
      if (r[1] < bytes.length) this.#pending = bytes.slice(r[1]);
      if (!this.#started && text.length > 0) {
        this.#started = true;
        if (!this.#ignoreBOM && this.#encoding !== 'windows-1252' && text.charCodeAt(0) === 0xFEFF) {
          text = text.slice(1);
        }
      }
      if (!stream) {
        this.#started = false;
        this.#pending = null;
      }
      return text;
    }
    [custom]() {
      return `TextDecoder { encoding: '${this.#encoding}', fatal: ${this.#fatal}, ignoreBOM: ${this.#ignoreBOM} }`;
    }
  }

  for (const C of [TextEncoder, TextDecoder]) {
    Object.defineProperty(C.prototype, Symbol.toStringTag, { value: C.name, configurable: true });
  }

  function atob(data) {
    if (arguments.length === 0) {
      throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "input" argument must be specified');
    }
    const r = native.atob(String(data));
    if (!r[0]) throw new DOMException(r[1], 'InvalidCharacterError');
    return r[1];
  }

  function btoa(data) {
    if (arguments.length === 0) {
      throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "input" argument must be specified');
    }
    const r = native.btoa(String(data));
    if (r == null) throw new DOMException('Invalid character', 'InvalidCharacterError');
    return r;
  }

  return { TextEncoder, TextDecoder, atob, btoa, view, nodeError, received };
})
