// Event, CustomEvent, EventTarget, AbortSignal, AbortController (DOM Standard), shaped as
// Node 20 has them. `natives`: setTimer(cb, ms) / clearTimer(id) (the runtime's own unref'd
// timers, for AbortSignal.timeout), uncaught(err) (a listener threw: the activation fails, as
// Node's process does), now() (Event.timeStamp), DOMException.
(function (natives) {
  'use strict';

  const DOMExceptionCtor = natives.DOMException;
  function domException(message, name) {
    return new DOMExceptionCtor(message, name);
  }

  let eventState; // (event) => its internal state
  const NONE = 0, AT_TARGET = 2;

  class Event {
    #s;
    constructor(type, options = undefined) {
      if (arguments.length === 0) {
        throw new TypeError('The "type" argument must be specified');
      }
      if (options != null && typeof options !== 'object') {
        throw new TypeError('The "options" argument must be of type object.');
      }
      this.#s = {
        type: `${type}`,
        bubbles: !!(options && options.bubbles),
        cancelable: !!(options && options.cancelable),
        composed: !!(options && options.composed),
        defaultPrevented: false,
        timeStamp: natives.now(),
        target: null,
        currentTarget: null,
        phase: NONE,
        stop: false,
        stopImmediate: false,
        dispatching: false,
      };
    }
    static {
      eventState = (e) => {
        if (e === null || typeof e !== 'object' || !(#s in e)) {
          throw new TypeError('The "event" argument must be an instance of Event.');
        }
        return e.#s;
      };
    }
    get type() { return eventState(this).type; }
    get bubbles() { return eventState(this).bubbles; }
    get cancelable() { return eventState(this).cancelable; }
    get composed() { return eventState(this).composed; }
    get defaultPrevented() { const s = eventState(this); return s.cancelable && s.defaultPrevented; }
    get timeStamp() { return eventState(this).timeStamp; }
    get target() { return eventState(this).target; }
    get currentTarget() { return eventState(this).currentTarget; }
    get srcElement() { return eventState(this).target; }
    get eventPhase() { return eventState(this).phase; }
    get isTrusted() { return false; }
    get returnValue() { return !this.defaultPrevented; }
    get cancelBubble() { return eventState(this).stop; }
    set cancelBubble(v) { if (v) eventState(this).stop = true; }
    composedPath() {
      const s = eventState(this);
      return s.dispatching ? [s.currentTarget] : [];
    }
    // Node 20 lets a passive listener cancel too (the DOM standard would not); Node is the
    // reference here.
    preventDefault() { eventState(this).defaultPrevented = true; }
    stopPropagation() { eventState(this).stop = true; }
    stopImmediatePropagation() {
      const s = eventState(this);
      s.stop = true;
      s.stopImmediate = true;
    }
    get [Symbol.toStringTag]() { return 'Event'; }
  }
  for (const [name, value] of [['NONE', 0], ['CAPTURING_PHASE', 1], ['AT_TARGET', 2], ['BUBBLING_PHASE', 3]]) {
    Object.defineProperty(Event, name, { value, enumerable: true });
    Object.defineProperty(Event.prototype, name, { value, enumerable: true });
  }

  class CustomEvent extends Event {
    #detail;
    constructor(type, options = undefined) {
      if (arguments.length === 0) {
        throw new TypeError('The "type" argument must be specified');
      }
      super(type, options);
      this.#detail = options != null && options.detail !== undefined ? options.detail : null;
    }
    get detail() { return this.#detail; }
    get [Symbol.toStringTag]() { return 'CustomEvent'; }
  }

  function flatten(options) {
    if (typeof options === 'boolean') return { capture: options, once: false, passive: false, signal: undefined };
    if (options == null) return { capture: false, once: false, passive: false, signal: undefined };
    return {
      capture: !!options.capture,
      once: !!options.once,
      passive: !!options.passive,
      signal: options.signal,
    };
  }

  let targetListeners; // (target) => Map<type, listener record[]>

  class EventTarget {
    #listeners = new Map();
    static {
      targetListeners = (t) => {
        if (t === null || typeof t !== 'object' || !(#listeners in t)) {
          throw new TypeError('Value of "this" must be of type EventTarget');
        }
        return t.#listeners;
      };
    }
    addEventListener(type, listener, options = undefined) {
      const all = targetListeners(this);
      if (arguments.length < 2) {
        throw new TypeError('The "type" and "listener" arguments must be specified');
      }
      if (listener == null) return;
      if (typeof listener !== 'function' && typeof listener !== 'object') {
        throw new TypeError('The "listener" argument must be an instance of EventListener.');
      }
      const { capture, once, passive, signal } = flatten(options);
      if (signal !== undefined && !(signal instanceof AbortSignal)) {
        throw new TypeError('The "options.signal" property must be an instance of AbortSignal.');
      }
      if (signal && signal.aborted) return;
      type = `${type}`;
      let list = all.get(type);
      if (!list) all.set(type, (list = []));
      if (list.some((r) => r.listener === listener && r.capture === capture)) return;
      const record = { listener, capture, once, passive, removed: false };
      list.push(record);
      if (signal) {
        signal.addEventListener('abort', () => this.removeEventListener(type, listener, { capture }), { once: true });
      }
    }
    removeEventListener(type, listener, options = undefined) {
      const all = targetListeners(this);
      if (arguments.length < 2) {
        throw new TypeError('The "type" and "listener" arguments must be specified');
      }
      const capture = typeof options === 'boolean' ? options : !!(options && options.capture);
      const list = all.get(`${type}`);
      if (!list) return;
      const i = list.findIndex((r) => r.listener === listener && r.capture === capture);
      if (i >= 0) {
        list[i].removed = true;
        list.splice(i, 1);
      }
    }
    dispatchEvent(event) {
      const all = targetListeners(this);
      if (!(event instanceof Event)) {
        throw new TypeError('The "event" argument must be an instance of Event.');
      }
      const s = eventState(event);
      if (s.dispatching) {
        throw domException('The event is already being dispatched', 'InvalidStateError');
      }
      s.dispatching = true;
      s.target = this;
      s.currentTarget = this;
      s.phase = AT_TARGET;
      const list = all.get(s.type);
      if (list) {
        for (const r of list.slice()) {
          if (r.removed) continue;
          if (r.once) this.removeEventListener(s.type, r.listener, { capture: r.capture });
          try {
            if (typeof r.listener === 'function') {
              r.listener.call(this, event);
            } else if (typeof r.listener.handleEvent === 'function') {
              r.listener.handleEvent(event);
            }
          } catch (err) {
            natives.uncaught(err);
          }
          if (s.stopImmediate) break;
        }
      }
      s.dispatching = false;
      s.currentTarget = null;
      s.phase = NONE;
      s.stop = false;
      s.stopImmediate = false;
      return !event.defaultPrevented;
    }
    get [Symbol.toStringTag]() { return 'EventTarget'; }
  }

  let makeSignal, abortSignal;
  const illegal = Symbol('illegal');

  class AbortSignal extends EventTarget {
    #aborted = false;
    #reason = undefined;
    #onabort = null;
    constructor(key) {
      if (key !== illegal) throw new TypeError('Illegal constructor');
      super();
    }
    static {
      makeSignal = () => new AbortSignal(illegal);
      abortSignal = (signal, reason) => {
        if (signal.#aborted) return;
        signal.#aborted = true;
        signal.#reason = reason === undefined
          ? domException('This operation was aborted', 'AbortError')
          : reason;
        signal.dispatchEvent(new Event('abort'));
      };
    }
    get aborted() { return this.#aborted; }
    get reason() { return this.#reason; }
    get onabort() { return this.#onabort; }
    set onabort(f) {
      if (this.#onabort) this.removeEventListener('abort', this.#onabort);
      this.#onabort = typeof f === 'function' ? f : null;
      if (this.#onabort) this.addEventListener('abort', this.#onabort);
    }
    throwIfAborted() {
      if (this.#aborted) throw this.#reason;
    }
    static abort(reason = undefined) {
      const s = makeSignal();
      abortSignal(s, reason);
      return s;
    }
    static timeout(ms) {
      ms = Number(ms);
      if (!Number.isFinite(ms) || ms < 0 || ms > Number.MAX_SAFE_INTEGER) {
        throw new RangeError(`The value of "delay" is out of range. It must be >= 0 && <= ${Number.MAX_SAFE_INTEGER}. Received ${ms}`);
      }
      const s = makeSignal();
      natives.setTimer(() => {
        abortSignal(s, domException('The operation was aborted due to timeout', 'TimeoutError'));
      }, ms);
      return s;
    }
    static any(signals) {
      const s = makeSignal();
      const list = Array.from(signals);
      for (const x of list) {
        if (!(x instanceof AbortSignal)) {
          throw new TypeError('The "signals" argument must be an instance of AbortSignal[].');
        }
      }
      const done = list.find((x) => x.aborted);
      if (done) {
        abortSignal(s, done.reason);
        return s;
      }
      for (const x of list) {
        x.addEventListener('abort', () => abortSignal(s, x.reason), { once: true });
      }
      return s;
    }
    get [Symbol.toStringTag]() { return 'AbortSignal'; }
  }

  class AbortController {
    #signal = makeSignal();
    get signal() { return this.#signal; }
    abort(reason = undefined) { abortSignal(this.#signal, reason); }
    get [Symbol.toStringTag]() { return 'AbortController'; }
  }

  return { Event, CustomEvent, EventTarget, AbortSignal, AbortController };
})
