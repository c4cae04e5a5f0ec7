// Crypto, SubtleCrypto, CryptoKey around the Rust primitives of crypto.rs. Every SubtleCrypto
// method reads its arguments synchronously and returns a promise, so argument errors are
// rejections, as in Node. Error classes, names and messages are Node 20's.
(function (native) {
  'use strict';
  const { DOMException, nodeError, view, brand } = native;
  const custom = Symbol.for('nodejs.util.inspect.custom');
  const token = Symbol('internal');
  const INTEGER_ARRAYS = new Set(['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array',
    'Uint16Array', 'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array']);
  const HASHES = new Map([['sha-1', 'SHA-1'], ['sha-256', 'SHA-256'], ['sha-384', 'SHA-384'], ['sha-512', 'SHA-512']]);
  const HASH_BITS = { 'SHA-1': 1, 'SHA-256': 256, 'SHA-384': 384, 'SHA-512': 512 };
  const BLOCK_BITS = { 'SHA-1': 512, 'SHA-256': 512, 'SHA-384': 1024, 'SHA-512': 1024 };
  const ALGORITHMS = new Map([['hmac', 'HMAC'], ['aes-gcm', 'AES-GCM']]);
  const USAGES = {
    HMAC: ['sign', 'verify'],
    'AES-GCM': ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
  };

  function illegal(k) {
    if (k !== token) throw nodeError(TypeError, 'ERR_ILLEGAL_CONSTRUCTOR', 'Illegal constructor');
  }
  function operationError() {
    return new DOMException('The operation failed for an operation-specific reason', 'OperationError');
  }
  function missing(method, cls, needed, present) {
    return nodeError(TypeError, 'ERR_MISSING_ARGS',
      `Failed to execute '${method}' on '${cls}': ${needed} argument${needed > 1 ? 's' : ''} required, but only ${present} present.`);
  }
  function nameOf(alg) {
    if (typeof alg === 'string') return alg;
    if (alg !== null && typeof alg === 'object' && alg.name !== undefined) return String(alg.name);
    throw nodeError(TypeError, 'ERR_MISSING_OPTION',
      "Failed to normalize algorithm: passed algorithm can not be converted to 'Algorithm' because 'name' is required in 'Algorithm'.");
  }
  function hashOf(alg) {
    const h = HASHES.get(nameOf(alg).toLowerCase());
    if (h === undefined) throw new DOMException('Unrecognized algorithm name', 'NotSupportedError');
    return h;
  }
  function algorithmOf(alg) {
    const a = ALGORITHMS.get(nameOf(alg).toLowerCase());
    if (a === undefined) throw new DOMException('Unrecognized algorithm name', 'NotSupportedError');
    return a;
  }
  function bytesOf(v, method, position) {
    const u = view(v);
    if (u === undefined) {
      throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
        `Failed to execute '${method}' on 'SubtleCrypto': ${position} argument is not instance of ArrayBuffer, Buffer, TypedArray, or DataView.`);
    }
    return u.slice();
  }
  function required(params, member, dictionary) {
    if (params === null || typeof params !== 'object' || params[member] === undefined) {
      throw nodeError(TypeError, 'ERR_MISSING_OPTION',
        `Failed to normalize algorithm: passed algorithm can not be converted to '${dictionary}' because '${member}' is required in '${dictionary}'.`);
    }
    return params[member];
  }

  const KEYS = new WeakMap();
  class CryptoKey {
    constructor(k) { illegal(k); }
    get type() { return slot(this).type; }
    get extractable() { return slot(this).extractable; }
    get algorithm() { return slot(this).algorithm; }
    get usages() { return slot(this).usages; }
    // console.log shows "CryptoKey { type, extractable, algorithm, usages }", one level less
    // deep than the key itself, as Node does.
    [custom](depth, options, inspect) {
      const s = slot(this);
      const shown = { type: s.type, extractable: s.extractable, algorithm: s.algorithm, usages: s.usages };
      if (typeof inspect !== 'function') return shown;
      const d = typeof depth === 'number' ? depth - 1 : depth;
      return `CryptoKey ${inspect(shown, { ...options, depth: d })}`;
    }
  }

  function slot(key) {
    const s = KEYS.get(key);
    if (s === undefined) throw nodeError(TypeError, 'ERR_INVALID_THIS', 'Value of "this" must be of type CryptoKey');
    return s;
  }
  function keyOf(key, method) {
    const s = typeof key === 'object' && key !== null ? KEYS.get(key) : undefined;
    if (s === undefined) {
      throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
        `Failed to execute '${method}' on 'SubtleCrypto': 2nd argument is not of type CryptoKey.`);
    }
    return s;
  }
  function newKey(algorithm, extractable, usages, bytes) {
    const key = new CryptoKey(token);
    KEYS.set(key, { type: 'secret', extractable: Boolean(extractable), algorithm, usages, bytes });
    return key;
  }
  function checkUsages(alg, usages) {
    const list = [...usages].map(String);
    for (const u of list) {
      if (!USAGES[alg].includes(u)) {
        throw new DOMException(`Unsupported key usage for ${alg === 'HMAC' ? 'an HMAC' : 'an AES'} key`, 'SyntaxError');
      }
    }
    if (list.length === 0) throw new DOMException('Usages cannot be empty when creating a key.', 'SyntaxError');
    return list;
  }
  function use(s, alg, usage) {
    if (s.algorithm.name !== alg) {
      throw new DOMException('The requested operation is not valid for the provided key', 'InvalidAccessError');
    }
    if (!s.usages.includes(usage)) {
      // Node's wording differs between the HMAC and the cipher operations.
      const message = alg === 'HMAC'
        ? `Unable to use this key to ${usage}`
        : 'The requested operation is not valid for the provided key';
      throw new DOMException(message, 'InvalidAccessError');
    }
  }
  function aesParams(params) {
    const iv = view(required(params, 'iv', 'AesGcmParams'));
    if (iv === undefined) throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "iv" member must be a BufferSource');
    const tag = params.tagLength === undefined ? 128 : Number(params.tagLength);
    if (![32, 64, 96, 104, 112, 120, 128].includes(tag)) {
      throw new DOMException(`${tag} is not a valid AES-GCM tag length`, 'OperationError');
    }
    const aad = params.additionalData === undefined ? new Uint8Array(0) : view(params.additionalData);
    if (aad === undefined) throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "additionalData" member must be a BufferSource');
    return { iv: iv.slice(), aad: aad.slice(), tag: tag / 8 };
  }

  class SubtleCrypto {
    constructor(k) { illegal(k); }

    async digest(algorithm, data) {
      if (arguments.length < 2) throw missing('digest', 'SubtleCrypto', 2, arguments.length);
      const hash = hashOf(algorithm);
      return native.digest(hash, bytesOf(data, 'digest', '2nd'));
    }

    async importKey(format, keyData, algorithm, extractable, keyUsages) {
      if (arguments.length < 5) throw missing('importKey', 'SubtleCrypto', 5, arguments.length);
      const alg = algorithmOf(algorithm);
      let bytes;
      if (format === 'raw') {
        bytes = bytesOf(keyData, 'importKey', '2nd');
      } else if (format === 'jwk') {
        if (keyData === null || typeof keyData !== 'object') {
          throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "keyData" argument must be of type object.');
        }
        if (keyData.kty !== 'oct') throw new DOMException('Invalid JWK "kty" Parameter', 'DataError');
        if (typeof keyData.k !== 'string') throw new DOMException('Invalid JWK "k" Parameter', 'DataError');
        bytes = native.unbase64url(keyData.k);
      } else {
        throw new DOMException(`Unable to import ${alg} key with format ${format}`, 'NotSupportedError');
      }
      const usages = checkUsages(alg, keyUsages);
      let record;
      if (alg === 'HMAC') {
        const hash = hashOf(required(algorithm, 'hash', 'HmacImportParams'));
        if (bytes.length === 0) throw new DOMException('Zero-length key is not supported', 'DataError');
        if (format === 'jwk' && keyData.alg !== undefined && keyData.alg !== `HS${HASH_BITS[hash]}`) {
          throw new DOMException('JWK "alg" does not match the requested algorithm', 'DataError');
        }
        const length = algorithm.length === undefined ? bytes.length * 8 : Number(algorithm.length);
        record = { name: 'HMAC', hash: { name: hash }, length };
      } else {
        if (![16, 24, 32].includes(bytes.length)) throw new DOMException('Invalid key length', 'DataError');
        record = { name: 'AES-GCM', length: bytes.length * 8 };
      }
      return newKey(record, extractable, usages, bytes);
    }

    async exportKey(format, key) {
      if (arguments.length < 2) throw missing('exportKey', 'SubtleCrypto', 2, arguments.length);
      const s = keyOf(key, 'exportKey');
      if (!s.extractable) throw new DOMException('key is not extractable', 'InvalidAccessError');
      if (format === 'raw') return s.bytes.slice().buffer;
      if (format === 'jwk') {
        const alg = s.algorithm.name === 'HMAC'
          ? `HS${HASH_BITS[s.algorithm.hash.name]}`
          : `A${s.algorithm.length}GCM`;
        return { key_ops: [...s.usages], ext: true, kty: 'oct', k: native.base64url(s.bytes), alg };
      }
      throw new DOMException(`Unable to export a raw ${s.algorithm.name} key with format ${format}`, 'NotSupportedError');
    }

    async generateKey(algorithm, extractable, keyUsages) {
      if (arguments.length < 3) throw missing('generateKey', 'SubtleCrypto', 3, arguments.length);
      const alg = algorithmOf(algorithm);
      const usages = checkUsages(alg, keyUsages);
      if (alg === 'HMAC') {
        const hash = hashOf(required(algorithm, 'hash', 'HmacKeyGenParams'));
        const length = algorithm.length === undefined ? BLOCK_BITS[hash] : Number(algorithm.length);
        if (!(length > 0) || length % 8 !== 0) throw operationError();
        return newKey({ name: 'HMAC', length, hash: { name: hash } }, extractable, usages, native.randomBytes(length / 8));
      }
      const length = Number(required(algorithm, 'length', 'AesKeyGenParams'));
      if (![128, 192, 256].includes(length)) {
        throw new DOMException('AES key length must be 128, 192, or 256 bits', 'OperationError');
      }
      return newKey({ name: 'AES-GCM', length }, extractable, usages, native.randomBytes(length / 8));
    }

    async sign(algorithm, key, data) {
      if (arguments.length < 3) throw missing('sign', 'SubtleCrypto', 3, arguments.length);
      const alg = algorithmOf(algorithm);
      const s = keyOf(key, 'sign');
      use(s, alg, 'sign');
      return native.hmac(s.algorithm.hash.name, s.bytes, bytesOf(data, 'sign', '3rd'));
    }

    async verify(algorithm, key, signature, data) {
      if (arguments.length < 4) throw missing('verify', 'SubtleCrypto', 4, arguments.length);
      const alg = algorithmOf(algorithm);
      const s = keyOf(key, 'verify');
      use(s, alg, 'verify');
      const sig = bytesOf(signature, 'verify', '3rd');
      return native.hmacVerify(s.algorithm.hash.name, s.bytes, sig, bytesOf(data, 'verify', '4th'));
    }

    async encrypt(algorithm, key, data) {
      if (arguments.length < 3) throw missing('encrypt', 'SubtleCrypto', 3, arguments.length);
      const alg = algorithmOf(algorithm);
      const s = keyOf(key, 'encrypt');
      use(s, alg, 'encrypt');
      const { iv, aad, tag } = aesParams(algorithm);
      const out = native.aesGcm(true, s.bytes, iv, aad, bytesOf(data, 'encrypt', '3rd'), tag);
      if (out == null) throw operationError();
      return out;
    }

    async decrypt(algorithm, key, data) {
      if (arguments.length < 3) throw missing('decrypt', 'SubtleCrypto', 3, arguments.length);
      const alg = algorithmOf(algorithm);
      const s = keyOf(key, 'decrypt');
      use(s, alg, 'decrypt');
      const { iv, aad, tag } = aesParams(algorithm);
      const out = native.aesGcm(false, s.bytes, iv, aad, bytesOf(data, 'decrypt', '3rd'), tag);
      if (out == null) throw operationError();
      return out;
    }
  }

  const subtle = new SubtleCrypto(token);

  class Crypto {
    constructor(k) { illegal(k); }
    get subtle() { return subtle; }
    getRandomValues(array) {
      if (arguments.length === 0) throw missing('getRandomValues', 'Crypto', 1, 0);
      const b = brand(array);
      if (!INTEGER_ARRAYS.has(b)) {
        throw new DOMException('The data argument must be an integer-type TypedArray', 'TypeMismatchError');
      }
      const bytes = b === 'Uint8Array' ? array : new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
      if (!native.fill(bytes)) {
        throw new DOMException('The requested length exceeds 65,536 bytes', 'QuotaExceededError');
      }
      return array;
    }
    randomUUID() {
      return native.randomUUID();
    }
  }

  for (const C of [Crypto, SubtleCrypto, CryptoKey]) {
    Object.defineProperty(C.prototype, Symbol.toStringTag, { value: C.name, configurable: true });
  }
  return { crypto: new Crypto(token), Crypto, CryptoKey, SubtleCrypto };
})
