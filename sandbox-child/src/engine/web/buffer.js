// Node's Buffer: a Uint8Array subclass (FastBuffer) with Node's statics and methods, over the
// byte codecs of encoding.rs. `Buffer` itself is a plain function (Node allows calling it without
// `new`) sharing FastBuffer's prototype, so `instanceof Buffer` and `Buffer.isBuffer` agree.
// Error codes and messages are Node 20's.
(function (native) {
  'use strict';
  const { nodeError, view, brand, received } = native;
  const custom = Symbol.for('nodejs.util.inspect.custom');
  const MAX_LENGTH = 2 ** 32;

  function argType(name, expected, v) {
    return nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}.${received(v)}`);
  }
  function outOfRange(name, range, v) {
    return nodeError(RangeError, 'ERR_OUT_OF_RANGE',
      `The value of "${name}" is out of range. It must be ${range}. Received ${v}`);
  }

  const ENCODINGS = new Map([
    ['utf8', 'utf8'], ['utf-8', 'utf8'], ['hex', 'hex'], ['base64', 'base64'], ['base64url', 'base64url'],
    ['latin1', 'latin1'], ['binary', 'latin1'], ['ascii', 'ascii'], ['ucs2', 'utf16le'], ['ucs-2', 'utf16le'],
    ['utf16le', 'utf16le'], ['utf-16le', 'utf16le'],
  ]);
  function encodingOf(enc) {
    if (enc === undefined || enc === null) return 'utf8';
    const e = ENCODINGS.get(String(enc).toLowerCase());
    if (e === undefined) throw nodeError(TypeError, 'ERR_UNKNOWN_ENCODING', `Unknown encoding: ${enc}`);
    return e;
  }
  function isUint8(v) {
    const b = brand(v);
    return b === 'Uint8Array';
  }

  class FastBuffer extends Uint8Array {}

  function wrap(u8) {
    return new FastBuffer(u8.buffer, u8.byteOffset, u8.length);
  }
  function fromString(s, enc) {
    return wrap(native.encode(s, encodingOf(enc)));
  }
  function copyOf(arrayLike) {
    const b = new FastBuffer(arrayLike.length >>> 0);
    b.set(arrayLike);
    return b;
  }

  function Buffer(arg, encodingOrOffset, length) {
    if (typeof arg === 'number') {
      if (typeof encodingOrOffset === 'string') {
        throw argType('string', 'of type string', arg);
      }
      return Buffer.alloc(arg);
    }
    return Buffer.from(arg, encodingOrOffset, length);
  }
  Object.setPrototypeOf(Buffer, Uint8Array);
  Buffer.prototype = FastBuffer.prototype;
  Object.defineProperty(FastBuffer.prototype, 'constructor', { value: Buffer, writable: true, configurable: true });
  Object.defineProperty(Buffer, Symbol.species, { get() { return FastBuffer; }, configurable: true });
  Buffer.poolSize = 8192;

  Buffer.from = function from(value, encodingOrOffset, length) {
    if (typeof value === 'string') return fromString(value, encodingOrOffset);
    if (typeof value === 'object' && value !== null) {
      const b = brand(value);
      if (b === 'ArrayBuffer' || b === 'SharedArrayBuffer') {
        const max = value.byteLength;
        const offset = encodingOrOffset === undefined ? 0 : Number(encodingOrOffset) || 0;
        if (offset > max) {
          throw nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds');
        }
        const len = length === undefined ? max - offset : Number(length) || 0;
        if (offset + len > max) {
          throw nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds');
        }
        return new FastBuffer(value, offset, len);
      }
      if (b === 'Uint8Array') {
        const out = new FastBuffer(value.length);
        out.set(value);
        return out;
      }
      if (b !== 'Array' && b !== 'DataView' && b.endsWith('Array')) return copyOf(value);
      const prim = value.valueOf?.();
      if (prim !== undefined && prim !== null && prim !== value) return Buffer.from(prim, encodingOrOffset, length);
      if (typeof value[Symbol.toPrimitive] === 'function') {
        const p = value[Symbol.toPrimitive]('string');
        if (typeof p === 'string') return fromString(p, encodingOrOffset);
      }
      if (b === 'Array' || typeof value.length === 'number') return copyOf(value);
      if (value.type === 'Buffer' && Array.isArray(value.data)) return copyOf(value.data);
    }
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      'The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an ' +
      `Array-like Object.${received(value)}`);
  };

  function checkSize(size) {
    if (typeof size !== 'number') throw argType('size', 'of type number', size);
    if (!(size >= 0 && size <= MAX_LENGTH)) throw outOfRange('size', `>= 0 && <= ${MAX_LENGTH}`, size);
  }
  Buffer.alloc = function alloc(size, fill, encoding) {
    checkSize(size);
    const b = new FastBuffer(size);
    if (fill !== undefined && fill !== 0 && size > 0) b.fill(fill, encoding);
    return b;
  };
  // Zero-filled: a guest never sees memory another activation left behind.
  Buffer.allocUnsafe = function allocUnsafe(size) {
    checkSize(size);
    return new FastBuffer(size);
  };
  Buffer.allocUnsafeSlow = function allocUnsafeSlow(size) {
    checkSize(size);
    return new FastBuffer(size);
  };
  Buffer.isBuffer = function isBuffer(b) {
    return b instanceof Buffer;
  };
  Buffer.isEncoding = function isEncoding(e) {
    return typeof e === 'string' && e.length !== 0 && ENCODINGS.has(e.toLowerCase());
  };
  Buffer.byteLength = function byteLength(string, encoding) {
    if (typeof string !== 'string') {
      const b = brand(string);
      if (b === 'ArrayBuffer' || b === 'SharedArrayBuffer' || b === 'DataView' || (b !== 'Array' && b.endsWith('Array'))) {
        return string.byteLength;
      }
      throw argType('string', 'of type string or an instance of Buffer or ArrayBuffer', string);
    }
    switch (encoding === undefined ? 'utf8' : ENCODINGS.get(String(encoding).toLowerCase()) ?? 'utf8') {
      case 'hex': return string.length >>> 1;
      case 'base64':
      case 'base64url': {
        let n = string.length;
        if (n > 0 && string.charCodeAt(n - 1) === 0x3D) n--;
        if (n > 1 && string.charCodeAt(n - 1) === 0x3D) n--;
        return (n * 3) >>> 2;
      }
      case 'latin1':
      case 'ascii': return string.length;
      case 'utf16le': return string.length * 2;
      default: return native.byteLengthUtf8(string);
    }
  };
  Buffer.compare = function compare(a, b) {
    if (!isUint8(a)) throw argType('buf1', 'an instance of Buffer or Uint8Array', a);
    if (!isUint8(b)) throw argType('buf2', 'an instance of Buffer or Uint8Array', b);
    return native.compare(a, b);
  };
  Buffer.concat = function concat(list, totalLength) {
    if (!Array.isArray(list)) throw argType('list', 'an instance of Array', list);
    if (list.length === 0) return new FastBuffer(0);
    let total = 0;
    for (let i = 0; i < list.length; i++) {
      if (!isUint8(list[i])) throw argType(`list[${i}]`, 'an instance of Buffer or Uint8Array', list[i]);
      total += list[i].length;
    }
    if (totalLength !== undefined) {
      checkSize(totalLength);
      total = totalLength;
    }
    const out = new FastBuffer(total);
    let pos = 0;
    for (const item of list) {
      if (pos >= total) break;
      const part = item.length > total - pos ? item.subarray(0, total - pos) : item;
      out.set(part, pos);
      pos += part.length;
    }
    return out;
  };
  Buffer.of = function of(...items) {
    return copyOf(items);
  };

  const P = FastBuffer.prototype;
  function clamp(v, dflt, len) {
    if (v === undefined) return dflt;
    v = Math.trunc(Number(v)) || 0;
    return v < 0 ? Math.max(len + v, 0) : Math.min(v, len);
  }
  function define(name, fn) {
    Object.defineProperty(P, name, { value: fn, writable: true, configurable: true });
  }

  define('toString', function toString(encoding, start, end) {
    const len = this.length;
    const s = start === undefined ? 0 : Math.max(0, Math.trunc(Number(start)) || 0);
    const e = end === undefined ? len : Math.min(len, Math.trunc(Number(end)) || 0);
    if (s >= e) return '';
    const bytes = s === 0 && e === len ? this : this.subarray(s, e);
    return native.bytesToString(bytes, encodingOf(encoding));
  });
  define('toLocaleString', P.toString);
  define('equals', function equals(other) {
    if (!isUint8(other)) throw argType('otherBuffer', 'an instance of Buffer or Uint8Array', other);
    return native.compare(this, other) === 0;
  });
  define('compare', function compare(target, targetStart = 0, targetEnd = target?.length,
    sourceStart = 0, sourceEnd = this.length) {
    if (!isUint8(target)) throw argType('target', 'an instance of Buffer or Uint8Array', target);
    return native.compare(this.subarray(sourceStart, sourceEnd), target.subarray(targetStart, targetEnd));
  });
  define('slice', function slice(start, end) {
    return this.subarray(start, end);
  });
  define('toJSON', function toJSON() {
    return { type: 'Buffer', data: Array.from(this) };
  });
  define('write', function write(string, offset, length, encoding) {
    if (typeof string !== 'string') throw argType('argument', 'of type string', string);
    if (typeof offset === 'string') {
      encoding = offset;
      offset = 0;
      length = undefined;
    } else if (typeof length === 'string') {
      encoding = length;
      length = undefined;
    }
    const off = offset === undefined ? 0 : Number(offset);
    if (!(off >= 0 && off <= this.length)) throw outOfRange('offset', `>= 0 && <= ${this.length}`, off);
    const enc = encodingOf(encoding);
    const bytes = native.encode(string, enc);
    let n = Math.min(bytes.length, this.length - off, length === undefined ? Infinity : Number(length));
    // Never write part of a UTF-8 character.
    if (enc === 'utf8') while (n > 0 && n < bytes.length && (bytes[n] & 0xC0) === 0x80) n--;
    this.set(bytes.subarray(0, n), off);
    return n;
  });
  define('copy', function copy(target, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
    if (!isUint8(target)) throw argType('target', 'an instance of Buffer or Uint8Array', target);
    const ts = clamp(targetStart, 0, target.length);
    const ss = clamp(sourceStart, 0, this.length);
    const se = clamp(sourceEnd, this.length, this.length);
    if (se <= ss || ts >= target.length) return 0;
    const part = this.subarray(ss, Math.min(se, ss + target.length - ts));
    target.set(part, ts);
    return part.length;
  });
  define('fill', function fill(value, offset = 0, end = this.length, encoding = undefined) {
    if (typeof offset === 'string') {
      encoding = offset;
      offset = 0;
      end = this.length;
    } else if (typeof end === 'string') {
      encoding = end;
      end = this.length;
    }
    const s = clamp(offset, 0, this.length);
    const e = clamp(end, this.length, this.length);
    if (e <= s) return this;
    let bytes;
    if (typeof value === 'number') {
      return Uint8Array.prototype.fill.call(this, value & 255, s, e);
    } else if (typeof value === 'boolean') {
      return Uint8Array.prototype.fill.call(this, Number(value), s, e);
    } else if (typeof value === 'string') {
      bytes = native.encode(value, encodingOf(encoding));
      if (bytes.length === 0) {
        if (value.length !== 0) {
          throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'value' is invalid. Received '${value}'`);
        }
        return Uint8Array.prototype.fill.call(this, 0, s, e);
      }
    } else {
      bytes = view(value);
      if (bytes === undefined) return Uint8Array.prototype.fill.call(this, Number(value) & 255, s, e);
    }
    // Write the pattern once, then double what is written.
    const total = e - s;
    const first = Math.min(bytes.length, total);
    this.set(bytes.subarray(0, first), s);
    let done = first;
    while (done < total) {
      const n = Math.min(done, total - done);
      this.copyWithin(s + done, s, s + n);
      done += n;
    }
    return this;
  });
  function needle(value, encoding) {
    if (typeof value === 'string') return native.encode(value, encodingOf(encoding));
    if (typeof value === 'number') return new Uint8Array([value & 255]);
    const v = view(value);
    if (v === undefined) {
      throw argType('value', 'one of type number or string or an instance of Buffer or Uint8Array', value);
    }
    return v;
  }
  define('indexOf', function indexOf(value, byteOffset = 0, encoding = undefined) {
    if (typeof byteOffset === 'string') {
      encoding = byteOffset;
      byteOffset = 0;
    }
    return native.indexOf(this, needle(value, encoding), clamp(byteOffset, 0, this.length), false);
  });
  define('lastIndexOf', function lastIndexOf(value, byteOffset = this.length, encoding = undefined) {
    if (typeof byteOffset === 'string') {
      encoding = byteOffset;
      byteOffset = this.length;
    }
    return native.indexOf(this, needle(value, encoding), clamp(byteOffset, this.length, this.length), true);
  });
  define('includes', function includes(value, byteOffset = 0, encoding = undefined) {
    return this.indexOf(value, byteOffset, encoding) !== -1;
  });

  // Fixed-width reads and writes, with Node's bounds errors.
  function dv(b) {
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  function checkOffset(b, offset, width) {
    if (offset === undefined) offset = 0;
    if (typeof offset !== 'number') throw argType('offset', 'of type number', offset);
    if (!Number.isInteger(offset)) throw outOfRange('offset', 'an integer', offset);
    if (b.length - width < 0) {
      throw nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', 'Attempt to access memory outside buffer bounds');
    }
    if (offset < 0 || offset > b.length - width) {
      throw outOfRange('offset', `>= 0 and <= ${b.length - width}`, offset);
    }
    return offset;
  }
  const FIXED = [
    ['UInt8', 1, 'Uint8'], ['Int8', 1, 'Int8'],
    ['UInt16LE', 2, 'Uint16', true], ['UInt16BE', 2, 'Uint16', false],
    ['Int16LE', 2, 'Int16', true], ['Int16BE', 2, 'Int16', false],
    ['UInt32LE', 4, 'Uint32', true], ['UInt32BE', 4, 'Uint32', false],
    ['Int32LE', 4, 'Int32', true], ['Int32BE', 4, 'Int32', false],
    ['FloatLE', 4, 'Float32', true], ['FloatBE', 4, 'Float32', false],
    ['DoubleLE', 8, 'Float64', true], ['DoubleBE', 8, 'Float64', false],
    ['BigUInt64LE', 8, 'BigUint64', true], ['BigUInt64BE', 8, 'BigUint64', false],
    ['BigInt64LE', 8, 'BigInt64', true], ['BigInt64BE', 8, 'BigInt64', false],
  ];
  for (const [name, width, type, little] of FIXED) {
    const get = DataView.prototype[`get${type}`];
    const set = DataView.prototype[`set${type}`];
    const read = {
      [`read${name}`](offset = 0) {
        return get.call(dv(this), checkOffset(this, offset, width), little);
      },
    }[`read${name}`];
    const write = {
      [`write${name}`](value, offset = 0) {
        const o = checkOffset(this, offset, width);
        set.call(dv(this), o, type.startsWith('Big') ? value : Number(value), little);
        return o + width;
      },
    }[`write${name}`];
    define(`read${name}`, read);
    define(`write${name}`, write);
    if (name.includes('UInt')) {
      define(`read${name.replace('UInt', 'Uint')}`, read);
      define(`write${name.replace('UInt', 'Uint')}`, write);
    }
  }
  // Variable-width integers (1 to 6 bytes), as Node's readUIntBE & co.
  function checkWidth(w) {
    if (typeof w !== 'number') throw argType('byteLength', 'of type number', w);
    if (!Number.isInteger(w) || w < 1 || w > 6) throw outOfRange('byteLength', '>= 1 and <= 6', w);
  }
  for (const [name, signed, little] of [['UIntBE', false, false], ['UIntLE', false, true],
    ['IntBE', true, false], ['IntLE', true, true]]) {
    const read = {
      [`read${name}`](offset, byteLength) {
        checkWidth(byteLength);
        const o = checkOffset(this, offset, byteLength);
        let v = 0;
        for (let i = 0; i < byteLength; i++) v = v * 256 + this[o + (little ? byteLength - 1 - i : i)];
        if (signed && v >= 2 ** (8 * byteLength - 1)) v -= 2 ** (8 * byteLength);
        return v;
      },
    }[`read${name}`];
    const write = {
      [`write${name}`](value, offset, byteLength) {
        checkWidth(byteLength);
        const o = checkOffset(this, offset, byteLength);
        const max = signed ? 2 ** (8 * byteLength - 1) : 2 ** (8 * byteLength);
        const min = signed ? -max : 0;
        const v = Number(value);
        if (!(v >= min && v < max)) {
          throw outOfRange('value', `>= ${min} and < ${max}`, value);
        }
        let u = v < 0 ? v + 2 ** (8 * byteLength) : v;
        for (let i = 0; i < byteLength; i++) {
          this[o + (little ? i : byteLength - 1 - i)] = u % 256;
          u = Math.floor(u / 256);
        }
        return o + byteLength;
      },
    }[`write${name}`];
    define(`read${name}`, read);
    define(`write${name}`, write);
    if (name.startsWith('UInt')) {
      define(`read${name.replace('UInt', 'Uint')}`, read);
      define(`write${name.replace('UInt', 'Uint')}`, write);
    }
  }
  for (const [name, size] of [['swap16', 2], ['swap32', 4], ['swap64', 8]]) {
    define(name, {
      [name]() {
        if (this.length % size !== 0) {
          throw nodeError(RangeError, 'ERR_INVALID_BUFFER_SIZE', `Buffer size must be a multiple of ${size * 8}-bits`);
        }
        for (let i = 0; i < this.length; i += size) {
          for (let j = 0; j < size / 2; j++) {
            const t = this[i + j];
            this[i + j] = this[i + size - 1 - j];
            this[i + size - 1 - j] = t;
          }
        }
        return this;
      },
    }[name]);
  }
  define(custom, function inspect() {
    const max = 50;
    const hex = native.bytesToString(this.length > max ? this.subarray(0, max) : this, 'hex');
    let s = hex.replace(/(.{2})(?!$)/g, '$1 ');
    if (this.length > max) s += ` ... ${this.length - max} more byte${this.length - max > 1 ? 's' : ''}`;
    return `<Buffer ${s}>`;
  });

  return { Buffer };
})
