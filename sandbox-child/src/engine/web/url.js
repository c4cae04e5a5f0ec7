// URL and URLSearchParams around the `url` crate (url.rs). A URL holds its attributes as an
// array (see url.rs for the order); its searchParams object is linked both ways, as the URL
// Standard says. Error codes and messages are Node 20's.
(function (native) {
  'use strict';
  const { nodeError } = native;
  const custom = Symbol.for('nodejs.util.inspect.custom');
  const HREF = 0, ORIGIN = 1, PROTOCOL = 2, USERNAME = 3, PASSWORD = 4, HOST = 5, HOSTNAME = 6,
    PORT = 7, PATHNAME = 8, SEARCH = 9, HASH = 10;

  function invalid(input, base) {
    const e = nodeError(TypeError, 'ERR_INVALID_URL', 'Invalid URL');
    e.input = input;
    if (base !== undefined) e.base = base;
    return e;
  }
  function need(args, n, names) {
    if (args.length < n) {
      throw nodeError(TypeError, 'ERR_MISSING_ARGS',
        names.length === 1
          ? `The "${names[0]}" argument must be specified`
          : `The "${names[0]}" and "${names[1]}" arguments must be specified`);
    }
  }

  // Set by the class static blocks so the two classes can reach each other's private state.
  let paramsList, paramsReplace, paramsBind, urlSetSearch;

  class URLSearchParams {
    #list = [];
    #url = null;
    static {
      paramsList = (p) => p.#list;
      paramsReplace = (p, search) => { p.#list = native.parseQuery(search); };
      paramsBind = (p, url) => { p.#url = url; };
    }
    constructor(init = undefined) {
      if (init === undefined || init === null) return;
      if (typeof init === 'object' || typeof init === 'function') {
        const iter = init[Symbol.iterator];
        if (iter !== undefined) {
          if (typeof iter !== 'function') {
            throw nodeError(TypeError, 'ERR_ARG_NOT_ITERABLE', 'Query pairs must be iterable');
          }
          for (const pair of init) {
            if ((typeof pair !== 'object' && typeof pair !== 'function') || pair === null ||
                typeof pair[Symbol.iterator] !== 'function') {
              throw nodeError(TypeError, 'ERR_INVALID_TUPLE', 'Each query pair must be an iterable [name, value] tuple');
            }
            const kv = [...pair];
            if (kv.length !== 2) {
              throw nodeError(TypeError, 'ERR_INVALID_TUPLE', 'Each query pair must be an iterable [name, value] tuple');
            }
            this.#list.push(String(kv[0]), String(kv[1]));
          }
        } else {
          for (const k of Object.keys(init)) this.#list.push(k, String(init[k]));
        }
        return;
      }
      let s = String(init);
      if (s.startsWith('?')) s = s.slice(1);
      this.#list = native.parseQuery(s);
    }
    #update() {
      if (this.#url !== null) urlSetSearch(this.#url, native.serializeQuery(this.#list));
    }
    get size() { return this.#list.length / 2; }
    append(name, value) {
      need(arguments, 2, ['name', 'value']);
      this.#list.push(String(name), String(value));
      this.#update();
    }
    delete(name, value = undefined) {
      need(arguments, 1, ['name']);
      const n = String(name), v = value === undefined ? undefined : String(value);
      const out = [];
      for (let i = 0; i < this.#list.length; i += 2) {
        if (this.#list[i] === n && (v === undefined || this.#list[i + 1] === v)) continue;
        out.push(this.#list[i], this.#list[i + 1]);
      }
      this.#list = out;
      this.#update();
    }
    get(name) {
      need(arguments, 1, ['name']);
      const n = String(name);
      for (let i = 0; i < this.#list.length; i += 2) if (this.#list[i] === n) return this.#list[i + 1];
      return null;
    }
    getAll(name) {
      need(arguments, 1, ['name']);
      const n = String(name), out = [];
      for (let i = 0; i < this.#list.length; i += 2) if (this.#list[i] === n) out.push(this.#list[i + 1]);
      return out;
    }
    has(name, value = undefined) {
      need(arguments, 1, ['name']);
      const n = String(name), v = value === undefined ? undefined : String(value);
      for (let i = 0; i < this.#list.length; i += 2) {
        if (this.#list[i] === n && (v === undefined || this.#list[i + 1] === v)) return true;
      }
      return false;
    }
    set(name, value) {
      need(arguments, 2, ['name', 'value']);
      const n = String(name), v = String(value), out = [];
      let found = false;
      for (let i = 0; i < this.#list.length; i += 2) {
        if (this.#list[i] !== n) {
          out.push(this.#list[i], this.#list[i + 1]);
        } else if (!found) {
          found = true;
          out.push(n, v);
        }
      }
      if (!found) out.push(n, v);
      this.#list = out;
      this.#update();
    }
    sort() {
      const pairs = [];
      for (let i = 0; i < this.#list.length; i += 2) pairs.push([this.#list[i], this.#list[i + 1]]);
      // Array.prototype.sort is stable and compares strings by UTF-16 code units, as required.
      pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      this.#list = pairs.flat();
      this.#update();
    }
    forEach(callback, thisArg = undefined) {
      if (typeof callback !== 'function') {
        throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "callback" argument must be of type function.');
      }
      for (let i = 0; i < this.#list.length; i += 2) {
        callback.call(thisArg, this.#list[i + 1], this.#list[i], this);
      }
    }
    keys() { return new Iterator(this, 'keys'); }
    values() { return new Iterator(this, 'values'); }
    entries() { return new Iterator(this, 'entries'); }
    toString() { return native.serializeQuery(this.#list); }
    [custom](depth, options, inspect) {
      if (this.#list.length === 0) return 'URLSearchParams {}';
      const show = typeof inspect === 'function' ? inspect : (v) => `'${v}'`;
      const parts = [];
      for (let i = 0; i < this.#list.length; i += 2) {
        parts.push(`${show(this.#list[i])} => ${show(this.#list[i + 1])}`);
      }
      return `URLSearchParams { ${parts.join(', ')} }`;
    }
  }
  URLSearchParams.prototype[Symbol.iterator] = URLSearchParams.prototype.entries;

  // The live iterator of the URL Standard: it reads the list by index at each step.
  class Iterator {
    #params;
    #kind;
    #index = 0;
    constructor(params, kind) {
      this.#params = params;
      this.#kind = kind;
    }
    next() {
      const list = paramsList(this.#params);
      if (this.#index >= list.length) return { value: undefined, done: true };
      const i = this.#index;
      this.#index += 2;
      const value = this.#kind === 'keys' ? list[i] : this.#kind === 'values' ? list[i + 1] : [list[i], list[i + 1]];
      return { value, done: false };
    }
  }
  Object.setPrototypeOf(Iterator.prototype, Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())));
  Object.defineProperty(Iterator.prototype, Symbol.toStringTag, { value: 'URLSearchParams Iterator', configurable: true });

  class URL {
    #c;
    #params = null;
    static {
      urlSetSearch = (url, serialized) => {
        url.#c = native.set(url.#c[HREF], SEARCH, serialized);
      };
    }
    constructor(url, base = undefined) {
      need(arguments, 1, ['url']);
      const input = String(url);
      const b = base === undefined ? undefined : String(base);
      const c = native.parse(input, b);
      if (c == null) throw invalid(input, b);
      this.#c = c;
    }
    static parse(url, base = undefined) {
      need(arguments, 1, ['url']);
      const c = native.parse(String(url), base === undefined ? undefined : String(base));
      return c == null ? null : new URL(c[HREF]);
    }
    static canParse(url, base = undefined) {
      need(arguments, 1, ['url']);
      return native.parse(String(url), base === undefined ? undefined : String(base)) != null;
    }
    #set(which, value) {
      const c = native.set(this.#c[HREF], which, String(value));
      if (c == null) throw invalid(String(value));
      this.#c = c;
      if (this.#params !== null && (which === HREF || which === SEARCH)) {
        paramsReplace(this.#params, this.#c[SEARCH].slice(1));
      }
    }
    get href() { return this.#c[HREF]; }
    set href(v) { this.#set(HREF, v); }
    get origin() { return this.#c[ORIGIN]; }
    get protocol() { return this.#c[PROTOCOL]; }
    set protocol(v) { this.#set(PROTOCOL, v); }
    get username() { return this.#c[USERNAME]; }
    set username(v) { this.#set(USERNAME, v); }
    get password() { return this.#c[PASSWORD]; }
    set password(v) { this.#set(PASSWORD, v); }
    get host() { return this.#c[HOST]; }
    set host(v) { this.#set(HOST, v); }
    get hostname() { return this.#c[HOSTNAME]; }
    set hostname(v) { this.#set(HOSTNAME, v); }
    get port() { return this.#c[PORT]; }
    set port(v) { this.#set(PORT, v); }
    get pathname() { return this.#c[PATHNAME]; }
    set pathname(v) { this.#set(PATHNAME, v); }
    get search() { return this.#c[SEARCH]; }
    set search(v) { this.#set(SEARCH, v); }
    get hash() { return this.#c[HASH]; }
    set hash(v) { this.#set(HASH, v); }
    get searchParams() {
      if (this.#params === null) {
        this.#params = new URLSearchParams(this.#c[SEARCH]);
        paramsBind(this.#params, this);
      }
      return this.#params;
    }
    toString() { return this.#c[HREF]; }
    toJSON() { return this.#c[HREF]; }
    // console.log shows "URL { href: …, …, searchParams: …, hash: … }", as in Node.
    [custom](depth, options, inspect) {
      if (typeof depth === 'number' && depth < 0) return this;
      const v = {};
      for (const k of ['href', 'origin', 'protocol', 'username', 'password', 'host', 'hostname', 'port',
        'pathname', 'search']) {
        v[k] = this[k];
      }
      v.searchParams = this.searchParams;
      v.hash = this.hash;
      return typeof inspect === 'function' ? `URL ${inspect(v, options)}` : v;
    }
  }

  // Web IDL operations are enumerable (console.log(URL) lists them, as in Node).
  for (const name of ['parse', 'canParse']) {
    Object.defineProperty(URL, name, { enumerable: true });
  }
  for (const C of [URL, URLSearchParams]) {
    Object.defineProperty(C.prototype, Symbol.toStringTag, { value: C.name, configurable: true });
  }
  return { URL, URLSearchParams };
})
