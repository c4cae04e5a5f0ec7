// fetch, Headers, Request, Response (Fetch Standard), shaped as Node 20 (undici) has them, over
// the `cs.http.fetch` host call: the supervisor checks the manifest's allowHosts and every
// address, follows redirects and buffers the body. `natives`: start(url, method, headers,
// body, callback) → ticket, callback(error, {status, headers, body: ArrayBuffer});
// cancel(ticket); encode(string) → Uint8Array (UTF-8); decode(bytes) → string; events() → the
// events group (AbortSignal). No streams: `body` is null, read with text/json/arrayBuffer/bytes.
(function (natives) {
  'use strict';

  const { AbortSignal, AbortController } = natives.events();
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const DENIED = 'CS_RUNTIME_CAPABILITY_DENIED:';

  function normalizeValue(v) {
    return `${v}`.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
  }

  // ---------------------------------------------------------------------------------------
  // Headers

  let headerList, setGuard; // internal access for Request/Response/fetch

  class Headers {
    #map = new Map(); // lower-case name → values[]
    #guard = 'none';
    constructor(init = undefined) {
      if (init === undefined || init === null) return;
      if (typeof init !== 'object' && typeof init !== 'function') {
        throw new TypeError("Headers constructor: expected an object or an iterable of pairs");
      }
      if (init instanceof Headers) {
        for (const [k, v] of init.#map) this.#map.set(k, v.slice());
        return;
      }
      if (typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const p = Array.from(pair);
          if (p.length !== 2) {
            throw new TypeError('Headers constructor: expected name/value pair to be length 2, found ' + p.length + '.');
          }
          this.append(p[0], p[1]);
        }
        return;
      }
      for (const k of Object.keys(init)) this.append(k, init[k]);
    }
    static {
      headerList = (h) => h.#map;
      setGuard = (h, g) => { h.#guard = g; };
    }
    #check(name, value, method) {
      name = `${name}`;
      if (!TOKEN.test(name)) {
        throw new TypeError(`Headers.${method}: "${name}" is an invalid header name.`);
      }
      if (value !== undefined && /[\0\r\n]/.test(value)) {
        throw new TypeError(`Headers.${method}: "${value}" is an invalid header value.`);
      }
      if (this.#guard === 'immutable') throw new TypeError('immutable');
      return name.toLowerCase();
    }
    append(name, value) {
      value = normalizeValue(value);
      const key = this.#check(name, value, 'append');
      const list = this.#map.get(key);
      if (list) list.push(value);
      else this.#map.set(key, [value]);
    }
    set(name, value) {
      value = normalizeValue(value);
      const key = this.#check(name, value, 'set');
      this.#map.set(key, [value]);
    }
    delete(name) {
      const key = this.#check(name, undefined, 'delete');
      this.#map.delete(key);
    }
    get(name) {
      name = `${name}`;
      if (!TOKEN.test(name)) throw new TypeError(`Headers.get: "${name}" is an invalid header name.`);
      const list = this.#map.get(name.toLowerCase());
      if (!list) return null;
      return list.join(', ');
    }
    has(name) {
      name = `${name}`;
      if (!TOKEN.test(name)) throw new TypeError(`Headers.has: "${name}" is an invalid header name.`);
      return this.#map.has(name.toLowerCase());
    }
    getSetCookie() {
      const list = this.#map.get('set-cookie');
      return list ? list.slice() : [];
    }
    // Sorted by name, values combined with ", " — except set-cookie, one entry per value.
    #pairs() {
      const out = [];
      for (const k of [...this.#map.keys()].sort()) {
        const list = this.#map.get(k);
        if (k === 'set-cookie') for (const v of list) out.push([k, v]);
        else out.push([k, list.join(', ')]);
      }
      return out;
    }
    forEach(callback, thisArg = undefined) {
      if (typeof callback !== 'function') {
        throw new TypeError('Headers.forEach: the "callback" argument must be a function');
      }
      for (const [k, v] of this.#pairs()) callback.call(thisArg, v, k, this);
    }
    *entries() { yield* this.#pairs(); }
    *keys() { for (const [k] of this.#pairs()) yield k; }
    *values() { for (const [, v] of this.#pairs()) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return 'Headers'; }
  }

  // ---------------------------------------------------------------------------------------
  // Bodies

  // What a body init becomes: bytes and the content type it implies.
  function extractBody(body) {
    if (body === null || body === undefined) return { bytes: null, type: null };
    if (typeof body === 'string') {
      return { bytes: natives.encode(body.toWellFormed()), type: 'text/plain;charset=UTF-8' };
    }
    if (body instanceof ArrayBuffer) return { bytes: new Uint8Array(body.slice(0)), type: null };
    if (ArrayBuffer.isView(body)) {
      return { bytes: new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)), type: null };
    }
    if (typeof URLSearchParams === 'function' && body instanceof URLSearchParams) {
      return { bytes: natives.encode(body.toString()), type: 'application/x-www-form-urlencoded;charset=UTF-8' };
    }
    if (typeof body[Symbol.asyncIterator] === 'function' || typeof body.getReader === 'function') {
      throw new TypeError('cs-js has no streams: give the body as a string, an ArrayBuffer or a typed array');
    }
    const s = `${body}`;
    return { bytes: natives.encode(s.toWellFormed()), type: 'text/plain;charset=UTF-8' };
  }

  let bodyOf, setBody; // internal access

  class Body {
    #bytes = null;
    #used = false;
    static {
      bodyOf = (b) => b.#bytes;
      setBody = (b, bytes) => { b.#bytes = bytes; };
    }
    get body() { return null; }
    get bodyUsed() { return this.#used; }
    #consume(method) {
      if (this.#used) {
        return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
      }
      const signal = this instanceof Request ? this.signal : null;
      if (signal && signal.aborted) return Promise.reject(signal.reason);
      this.#used = true;
      return Promise.resolve(this.#bytes || new Uint8Array(0));
    }
    text() { return this.#consume('text').then((b) => natives.decode(b)); }
    json() { return this.#consume('json').then((b) => JSON.parse(natives.decode(b))); }
    arrayBuffer() {
      return this.#consume('arrayBuffer').then((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    }
    bytes() { return this.#consume('bytes').then((b) => new Uint8Array(b)); }
    blob() { return Promise.reject(new TypeError('cs-js has no Blob: use arrayBuffer(), bytes() or text()')); }
    formData() { return Promise.reject(new TypeError('cs-js has no FormData: use text() and URLSearchParams')); }
  }

  // ---------------------------------------------------------------------------------------
  // Request

  const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);
  const NORMALIZED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH']);

  function parseURL(input, what) {
    const s = `${input}`;
    if (typeof URL === 'function') {
      try {
        return new URL(s).href;
      } catch {
        throw new TypeError(`Failed to parse URL from ${s}`);
      }
    }
    if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(s)) throw new TypeError(`Failed to parse URL from ${s}`);
    return s;
  }

  class Request extends Body {
    #url; #method; #headers; #signal; #redirect;
    constructor(input, init = {}) {
      super();
      if (arguments.length === 0) {
        throw new TypeError("Request constructor: 1 argument required, but only 0 present.");
      }
      if (init === null || init === undefined) init = {};
      const from = input instanceof Request ? input : null;
      this.#url = from ? from.url : parseURL(input, 'Request');
      let method = init.method !== undefined ? `${init.method}` : from ? from.method : 'GET';
      if (!TOKEN.test(method)) throw new TypeError(`'${method}' is not a valid HTTP method.`);
      const upper = method.toUpperCase();
      if (FORBIDDEN_METHODS.has(upper)) throw new TypeError(`'${method}' HTTP method is unsupported.`);
      if (NORMALIZED_METHODS.has(upper) && upper !== 'PATCH') method = upper;
      this.#method = method;
      this.#headers = new Headers(init.headers !== undefined ? init.headers : from ? from.headers : undefined);
      this.#redirect = init.redirect !== undefined ? `${init.redirect}` : from ? from.redirect : 'follow';
      if (!['follow', 'error', 'manual'].includes(this.#redirect)) {
        throw new TypeError(`Request constructor: ${this.#redirect} is not an accepted type. Expected one of follow, manual, error.`);
      }
      const signal = init.signal !== undefined ? init.signal : from ? from.signal : undefined;
      if (signal !== undefined && signal !== null && !(signal instanceof AbortSignal)) {
        throw new TypeError("Failed to construct 'Request': member signal is not of type AbortSignal.");
      }
      this.#signal = signal || new AbortController().signal;
      let bytes = null;
      if (init.body !== undefined && init.body !== null) {
        if (method === 'GET' || method === 'HEAD') {
          throw new TypeError('Request with GET/HEAD method cannot have body.');
        }
        const { bytes: b, type } = extractBody(init.body);
        bytes = b;
        if (type !== null && !this.#headers.has('content-type')) this.#headers.set('content-type', type);
      } else if (from && init.body === undefined) {
        if (from.bodyUsed) throw new TypeError('Cannot construct a Request with a Request object that has already been used.');
        bytes = bodyOf(from);
      }
      setBody(this, bytes);
    }
    get url() { return this.#url; }
    get method() { return this.#method; }
    get headers() { return this.#headers; }
    get signal() { return this.#signal; }
    get redirect() { return this.#redirect; }
    get mode() { return 'cors'; }
    get credentials() { return 'same-origin'; }
    get cache() { return 'default'; }
    get referrer() { return 'about:client'; }
    get referrerPolicy() { return ''; }
    get integrity() { return ''; }
    get keepalive() { return false; }
    get destination() { return ''; }
    get duplex() { return 'half'; }
    clone() {
      if (this.bodyUsed) throw new TypeError('Request.clone: Body has already been consumed.');
      return new Request(this);
    }
    get [Symbol.toStringTag]() { return 'Request'; }
  }

  // ---------------------------------------------------------------------------------------
  // Response

  const NULL_BODY = new Set([101, 103, 204, 205, 304]);
  const REDIRECTS = new Set([301, 302, 303, 307, 308]);
  let makeResponse; // (bytes, status, statusText, headers, extra) without the checks

  class Response extends Body {
    #status = 200; #statusText = ''; #headers; #type = 'default'; #url = ''; #redirected = false;
    constructor(body = null, init = {}) {
      super();
      if (init === null || init === undefined) init = {};
      if (typeof init !== 'object') throw new TypeError("Response constructor: init must be an object");
      const status = init.status !== undefined ? Number(init.status) : 200;
      if (!Number.isInteger(status) || status < 200 || status > 599) {
        throw new RangeError('init["status"] must be in the range of 200 to 599, inclusive.');
      }
      this.#status = status;
      this.#statusText = init.statusText !== undefined ? `${init.statusText}` : '';
      this.#headers = new Headers(init.headers);
      if (body !== null && body !== undefined) {
        if (NULL_BODY.has(status)) throw new TypeError('Response constructor: Invalid response status code ' + status);
        const { bytes, type } = extractBody(body);
        if (type !== null && !this.#headers.has('content-type')) this.#headers.set('content-type', type);
        setBody(this, bytes);
      }
    }
    static {
      makeResponse = (bytes, status, statusText, headers, extra) => {
        const r = new Response(null);
        r.#status = status;
        r.#statusText = statusText;
        r.#headers = headers;
        if (extra) {
          r.#type = extra.type || 'default';
          r.#url = extra.url || '';
          r.#redirected = !!extra.redirected;
        }
        setBody(r, bytes);
        return r;
      };
    }
    static json(data, init = {}) {
      const text = JSON.stringify(data);
      if (text === undefined) throw new TypeError('Value is not JSON serializable');
      const headers = new Headers(init && init.headers);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      return new Response(text, { ...(init || {}), headers });
    }
    static error() {
      const r = makeResponse(null, 0, '', new Headers(), { type: 'error' });
      setGuard(r.headers, 'immutable');
      return r;
    }
    static redirect(url, status = 302) {
      const href = parseURL(url, 'Response.redirect');
      if (!REDIRECTS.has(status)) throw new RangeError(`Invalid status code ${status}`);
      const headers = new Headers({ location: href });
      setGuard(headers, 'immutable');
      return makeResponse(null, status, '', headers, null);
    }
    get status() { return this.#status; }
    get statusText() { return this.#statusText; }
    get ok() { return this.#status >= 200 && this.#status <= 299; }
    get headers() { return this.#headers; }
    get type() { return this.#type; }
    get url() { return this.#url; }
    get redirected() { return this.#redirected; }
    clone() {
      if (this.bodyUsed) throw new TypeError('Response.clone: Body has already been consumed.');
      const b = bodyOf(this);
      return makeResponse(b && new Uint8Array(b), this.#status, this.#statusText, new Headers(this.#headers), {
        type: this.#type, url: this.#url, redirected: this.#redirected,
      });
    }
    get [Symbol.toStringTag]() { return 'Response'; }
  }

  // ---------------------------------------------------------------------------------------
  // fetch

  function fetchError(message) {
    if (message.startsWith(DENIED)) return new Error(message);
    return new TypeError('fetch failed', { cause: new Error(message) });
  }

  function fetch(input, init = undefined) {
    return new Promise((resolve, reject) => {
      const request = new Request(input, init);
      const signal = request.signal;
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const headers = [...request.headers];
      const body = bodyOf(request);
      let ticket = 0;
      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        natives.cancel(ticket);
        reject(signal.reason);
      };
      ticket = natives.start(request.url, request.method, headers, body, (error, res) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) return;
        settled = true;
        if (error !== undefined) {
          reject(fetchError(error));
          return;
        }
        const h = new Headers();
        for (const [k, v] of res.headers) {
          try { h.append(k, v); } catch { /* a header undici would refuse too */ }
        }
        setGuard(h, 'immutable');
        const bytes = NULL_BODY.has(res.status) || request.method === 'HEAD' ? null : new Uint8Array(res.body);
        resolve(makeResponse(bytes, res.status, '', h, { type: 'basic', url: request.url }));
      });
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  // ---------------------------------------------------------------------------------------
  // Workers-style handlers: `export default { fetch(request, env, ctx) }`.

  // Sous' HTTP event (the API Gateway v2 shape; v1's httpMethod/path also read) as a Request.
  function requestFromEvent(event) {
    const e = event && typeof event === 'object' ? event : {};
    const rc = e.requestContext || {};
    const http = rc.http || {};
    const headers = new Headers();
    const raw = e.headers && typeof e.headers === 'object' ? e.headers : {};
    for (const k of Object.keys(raw)) {
      if (raw[k] !== undefined && raw[k] !== null) {
        try { headers.append(k, raw[k]); } catch { /* not a valid header: dropped */ }
      }
    }
    if (Array.isArray(e.cookies) && e.cookies.length > 0 && !headers.has('cookie')) {
      headers.set('cookie', e.cookies.join('; '));
    }
    const method = `${http.method || e.httpMethod || 'GET'}`.toUpperCase();
    const host = headers.get('host') || rc.domainName || 'localhost';
    const proto = (headers.get('x-forwarded-proto') || 'https').split(',')[0].trim();
    let path = e.rawPath || http.path || e.path || '/';
    if (!path.startsWith('/')) path = '/' + path;
    let query = e.rawQueryString || '';
    if (!query && e.queryStringParameters && typeof e.queryStringParameters === 'object') {
      query = Object.entries(e.queryStringParameters)
        .map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v))
        .join('&');
    }
    const url = `${proto}://${host}${path}${query ? '?' + query : ''}`;
    let body;
    if (e.body !== undefined && e.body !== null && method !== 'GET' && method !== 'HEAD') {
      body = e.isBase64Encoded ? Uint8Array.fromBase64(`${e.body}`) : `${e.body}`;
    }
    return new Request(url, { method, headers, body });
  }

  // A Response as the result object of contract §6: the body always base64.
  async function resultOf(response) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    const headers = {};
    for (const [k, v] of response.headers) {
      headers[k] = k in headers ? headers[k] + ', ' + v : v;
    }
    return { statusCode: response.status, headers, body: bytes.toBase64(), isBase64Encoded: true };
  }

  // The handler of a module whose default export is an object with fetch(request, env, ctx).
  // For an `http` trigger the event becomes a Request; for the others a POST of the event as
  // JSON. The returned Response becomes the result; ctx.waitUntil promises are awaited first.
  function workersHandler(worker, env) {
    return async function (event, ctx) {
      const waits = [];
      const context = {
        ...ctx,
        waitUntil(p) { waits.push(Promise.resolve(p)); },
        passThroughOnException() {},
      };
      const request = ctx && ctx.trigger && ctx.trigger.type === 'http'
        ? requestFromEvent(event)
        : new Request('https://localhost/', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(event === undefined ? null : event),
        });
      const response = await worker.fetch(request, env, context);
      if (waits.length > 0) await Promise.allSettled(waits);
      return response instanceof Response ? resultOf(response) : response;
    };
  }

  return { fetch, Headers, Request, Response, workersHandler };
})
