//! `Event`, `CustomEvent`, `EventTarget`, `AbortController` and `AbortSignal` (issue 11 item 4)
//! through `cs-invoker-pool run`, against what Node 20 computes for the same module (kept in
//! each test; the module was run with a runner printing `JSON.stringify(await handler({}))`).

#[macro_use]
mod support;

use serde_json::Value;
use support::cli::*;

const EVENTS: &str = r#"export default async () => {
  const out = {};
  const t = new EventTarget();
  const seen = [];
  const a = (e) => seen.push('a:' + e.type + ':' + (e.target === t) + ':' + e.eventPhase);
  t.addEventListener('ping', a);
  t.addEventListener('ping', a); // duplicate: ignored
  t.addEventListener('ping', { handleEvent(e) { seen.push('obj:' + (this !== t)); } });
  t.addEventListener('ping', () => seen.push('once'), { once: true });
  t.addEventListener('ping', function () { seen.push('this:' + (this === t)); });
  t.dispatchEvent(new Event('ping'));
  t.dispatchEvent(new Event('ping'));
  t.removeEventListener('ping', a);
  t.dispatchEvent(new Event('ping'));
  out.seen = seen;

  const stop = [];
  const t2 = new EventTarget();
  t2.addEventListener('x', (e) => { stop.push(1); e.stopImmediatePropagation(); });
  t2.addEventListener('x', () => stop.push(2));
  const ev = new Event('x', { cancelable: true });
  t2.addEventListener('x', (e) => e.preventDefault(), { capture: true });
  out.dispatched = t2.dispatchEvent(ev);
  out.stop = stop;
  out.ev = [ev.type, ev.bubbles, ev.cancelable, ev.composed, ev.defaultPrevented, ev.eventPhase, ev.target === t2, ev.currentTarget, ev.isTrusted, typeof ev.timeStamp];
  const p = new Event('p', { cancelable: true });
  const t3 = new EventTarget();
  t3.addEventListener('p', (e) => e.preventDefault(), { passive: true });
  out.passive = [t3.dispatchEvent(p), p.defaultPrevented];
  out.custom = [new CustomEvent('c', { detail: { n: 1 } }).detail, new CustomEvent('c').detail, new CustomEvent('c') instanceof Event];
  try { new Event(); } catch (e) { out.noType = e.name; }
  try { t.dispatchEvent({ type: 'x' }); } catch (e) { out.notEvent = e.name; }

  const c = new AbortController();
  const reasons = [];
  c.signal.addEventListener('abort', (e) => reasons.push(['listener', e.type, c.signal.aborted]));
  c.signal.onabort = () => reasons.push(['onabort']);
  out.before = [c.signal.aborted, c.signal.reason];
  c.abort();
  c.abort('again');
  out.after = [c.signal.aborted, c.signal.reason.name, c.signal.reason.message, c.signal.reason instanceof Error, c.signal.reason.code];
  out.reasons = reasons;
  try { c.signal.throwIfAborted(); } catch (e) { out.thrown = e.name; }
  const c2 = new AbortController();
  c2.abort(new TypeError('custom'));
  out.custom_reason = [c2.signal.reason.name, c2.signal.reason.message];
  const s = AbortSignal.abort('why');
  out.static_abort = [s.aborted, s.reason];
  try { new AbortSignal(); } catch (e) { out.illegal = e.name; }
  const ts = AbortSignal.timeout(20);
  let fired = 0; ts.addEventListener('abort', () => fired++);
  await new Promise((r) => setTimeout(r, 80));
  out.fired = fired;
  out.timeout = [ts.aborted, ts.reason.name, ts.reason.message];
  const a1 = new AbortController(), a2 = new AbortController();
  const any = AbortSignal.any([a1.signal, a2.signal]);
  a2.abort('second');
  out.any = [any.aborted, any.reason];
  const removed = [];
  const t4 = new EventTarget();
  const ctl = new AbortController();
  t4.addEventListener('e', () => removed.push('called'), { signal: ctl.signal });
  t4.dispatchEvent(new Event('e'));
  ctl.abort();
  t4.dispatchEvent(new Event('e'));
  out.removed = removed;
  out.tags = [String(new EventTarget()), String(new Event('z')), String(new AbortController()), String(AbortSignal.abort())];
  return { body: JSON.stringify(out) };
};
"#;

#[test]
fn events_and_abort_signals_behave_as_in_node() {
    let r = run_js(EVENTS, &[]);
    // Node 20.
    let node: Value = serde_json::from_str(
        r#"{"seen":["a:ping:true:2","obj:true","once","this:true","a:ping:true:2","obj:true","this:true","obj:true","this:true"],"dispatched":true,"stop":[1],"ev":["x",false,true,false,false,0,true,null,false,"number"],"passive":[false,true],"custom":[{"n":1},null,true],"noType":"TypeError","notEvent":"TypeError","before":[false,null],"after":[true,"AbortError","This operation was aborted",true,20],"reasons":[["listener","abort",true],["onabort"]],"thrown":"AbortError","custom_reason":["TypeError","custom"],"static_abort":[true,"why"],"illegal":"TypeError","fired":1,"timeout":[true,"TimeoutError","The operation was aborted due to timeout"],"any":[true,"second"],"removed":["called"],"tags":["[object EventTarget]","[object Event]","[object AbortController]","[object AbortSignal]"]}"#,
    )
    .unwrap();
    assert_eq!(r.body_json(), node, "{r:?}");
    assert!(r.logs().is_empty(), "{:?}", r.logs());
}

#[test]
fn a_listener_that_throws_is_an_uncaught_exception() {
    // Node reports the error as uncaught (and the process ends) after dispatchEvent returned.
    for asynchronous in ["", "async"] {
        let r = run_js(
            &format!(
                r#"export default {asynchronous} () => {{
  const t = new EventTarget();
  const seen = [];
  t.addEventListener('x', () => {{ throw new TypeError('in listener'); }});
  t.addEventListener('x', () => seen.push('second still runs'));
  t.dispatchEvent(new Event('x'));
  return {{ body: seen.join() }};
}};"#
            ),
            &[],
        );
        assert_eq!(r.error("Exception"), "TypeError: in listener", "{r:?}");
    }
}
