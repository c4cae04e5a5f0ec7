// structuredClone (HTML structured serialize/deserialize in one pass), with the DataCloneError
// messages of Node 20 (V8's). Engine brands (clone.rs) tell the built-in types apart, so a guest
// object that fakes Symbol.toStringTag is cloned as the plain object it is.
(function (native) {
  'use strict';
  const { brand, DOMException, nodeError } = native;
  const TYPED = {
    Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
    Float32Array, Float64Array, BigInt64Array, BigUint64Array,
  };
  if (typeof Float16Array === 'function') TYPED.Float16Array = Float16Array;
  const ERRORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
  const getTime = Date.prototype.getTime;
  const mapEntries = Map.prototype.entries;
  const setValues = Set.prototype.values;
  const abSlice = ArrayBuffer.prototype.slice;
  const BOXES = [
    [Number, Number.prototype.valueOf], [String, String.prototype.valueOf],
    [Boolean, Boolean.prototype.valueOf], [BigInt, BigInt.prototype.valueOf],
  ];

  function fail(v) {
    let shown;
    if (typeof v === 'function' || typeof v === 'symbol') {
      shown = String(v);
    } else {
      let name = 'Object';
      try {
        name = Object.getPrototypeOf(v)?.constructor?.name || 'Object';
      } catch {}
      shown = `#<${name}>`;
    }
    return new DOMException(`${shown} could not be cloned.`, 'DataCloneError');
  }

  function structuredClone(value, options = undefined) {
    if (arguments.length === 0) {
      throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The value argument must be specified');
    }
    const memory = new Map();
    const transfer = options?.transfer;
    if (transfer !== undefined) {
      for (const t of transfer) {
        if (brand(t) !== 'ArrayBuffer') {
          throw new DOMException('Value not transferable', 'DataCloneError');
        }
        if (memory.has(t)) throw new DOMException('Duplicate transfer', 'DataCloneError');
        memory.set(t, null);
      }
      for (const t of transfer) memory.set(t, t.transfer());
    }
    return walk(value, memory);
  }

  function walk(v, memory) {
    if (typeof v === 'symbol' || typeof v === 'function') throw fail(v);
    if (typeof v !== 'object' || v === null) return v;
    if (memory.has(v)) return memory.get(v);
    let out;
    const b = brand(v);
    switch (b) {
      case 'Date':
        out = new Date(getTime.call(v));
        break;
      case 'RegExp':
        out = new RegExp(v.source, v.flags);
        break;
      case 'ArrayBuffer':
        out = abSlice.call(v, 0);
        break;
      case 'DataView':
        out = new DataView(walk(v.buffer, memory), v.byteOffset, v.byteLength);
        break;
      case 'Map': {
        out = new Map();
        memory.set(v, out);
        const entries = [...mapEntries.call(v)];
        for (const [k, x] of entries) out.set(walk(k, memory), walk(x, memory));
        return out;
      }
      case 'Set': {
        out = new Set();
        memory.set(v, out);
        const values = [...setValues.call(v)];
        for (const x of values) out.add(walk(x, memory));
        return out;
      }
      case 'Error': {
        const name = v.name;
        const Ctor = Object.hasOwn(ERRORS, name) ? ERRORS[name] : Error;
        out = Object.create(Ctor.prototype);
        out = new Ctor();
        memory.set(v, out);
        const message = v.message;
        if (message !== undefined) {
          Object.defineProperty(out, 'message', { value: String(message), writable: true, configurable: true });
        }
        const stack = v.stack;
        if (typeof stack === 'string') {
          Object.defineProperty(out, 'stack', { value: stack, writable: true, configurable: true });
        }
        if ('cause' in v) {
          Object.defineProperty(out, 'cause', { value: walk(v.cause, memory), writable: true, configurable: true });
        }
        return out;
      }
      case 'Array': {
        out = new Array(v.length);
        memory.set(v, out);
        for (const k of Object.keys(v)) out[k] = walk(v[k], memory);
        return out;
      }
      case 'Object': {
        for (const [Box, valueOf] of BOXES) {
          let p;
          try {
            p = valueOf.call(v);
          } catch {
            continue;
          }
          out = Object(p);
          memory.set(v, out);
          return out;
        }
        out = {};
        memory.set(v, out);
        for (const k of Object.keys(v)) out[k] = walk(v[k], memory);
        return out;
      }
      default:
        if (Object.hasOwn(TYPED, b)) {
          out = new TYPED[b](walk(v.buffer, memory), v.byteOffset, v.length);
          break;
        }
        throw fail(v);
    }
    memory.set(v, out);
    return out;
  }

  return { structuredClone };
})
