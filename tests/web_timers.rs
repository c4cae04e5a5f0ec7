//! Timers of `cs-js` (issue 11 item 4) through `cs-invoker-pool run`: `setTimeout`,
//! `setInterval`, `clearTimeout`, `clearInterval` on the child's event loop, in Node's order;
//! bounded by the deadline; cancelled (with one `[warn]` line) when the handler settles; and
//! sleeping without burning CPU.
//!
//! Expected values are what Node 20 prints for the same module (`node run.mjs MODULE`, a runner
//! that imports the module and prints `JSON.stringify(await handler({}, ctx))`); they are kept in
//! each test with a comment saying so.

#[macro_use]
mod support;

use std::time::Duration;
use support::cli::*;

/// setTimeout vs microtasks vs setInterval, nested timers, argument passing, Node's delay
/// coercion (0, -1, NaN → 1 ms; "3" → 3 ms), equal delays in creation order, and a
/// clearTimeout before the timer fires.
#[test]
fn timers_and_microtasks_run_in_nodes_order() {
    let r = run_js(
        r#"export default async () => {
  const out = [];
  setTimeout(() => out.push('timeout 0'), 0);
  setTimeout((a, b) => out.push(`timeout 5 ${a} ${b}`), 5, 'x', 42);
  setTimeout(() => out.push('timeout 1'), 1);
  setTimeout(() => out.push('timeout -1'), -1);
  setTimeout(() => out.push('timeout NaN'), NaN);
  setTimeout(() => out.push('timeout "3"'), '3');
  const cancelled = setTimeout(() => out.push('never'), 2);
  clearTimeout(cancelled);
  Promise.resolve().then(() => out.push('promise'));
  queueMicrotask(() => out.push('microtask'));
  setTimeout(() => {
    out.push('outer');
    Promise.resolve().then(() => out.push('outer micro'));
    setTimeout(() => out.push('inner 0'), 0);
    queueMicrotask(() => out.push('outer microtask'));
  }, 30);
  setTimeout(() => { out.push('t120a'); Promise.resolve().then(() => out.push('t120a micro')); }, 120);
  setTimeout(() => out.push('t120b'), 120);
  let n = 0;
  const iv = setInterval(() => { out.push('interval ' + (++n)); if (n === 3) clearInterval(iv); }, 50);
  out.push('sync');
  await new Promise((r) => setTimeout(r, 200));
  return { body: JSON.stringify(out) };
};"#,
        &[],
    );
    // Node 20.
    let node = r#"["sync","promise","microtask","timeout 0","timeout 1","timeout -1","timeout NaN","timeout \"3\"","timeout 5 x 42","outer","outer micro","outer microtask","inner 0","interval 1","interval 2","t120a","t120a micro","t120b","interval 3"]"#;
    assert_eq!(r.body(), node, "{r:?}");
    assert!(
        r.logs().is_empty(),
        "nothing was left pending: {:?}",
        r.logs()
    );
}

#[test]
fn an_interval_cleared_inside_its_callback_stops() {
    let r = run_js(
        r#"export default async () => {
  let n = 0, m = 0;
  const id = setInterval(() => { n++; if (n === 3) clearInterval(id); }, 5);
  const id2 = setInterval(() => { m++; if (m === 2) clearTimeout(id2); }, 7);
  const t = setTimeout(() => { m += 100; }, 3);
  clearInterval(t);
  clearTimeout(undefined); clearTimeout(null); clearTimeout({}); clearInterval('nope');
  await new Promise((r) => setTimeout(r, 120));
  return { body: JSON.stringify({ n, m }) };
};"#,
        &[],
    );
    // Node 20.
    assert_eq!(r.body(), r#"{"n":3,"m":2}"#, "{r:?}");
}

#[test]
fn callback_arguments_and_bad_callbacks_follow_node() {
    let r = run_js(
        r#"export default async () => {
  const errors = [];
  for (const bad of [undefined, null, 'code()', 42, {}]) {
    try { setTimeout(bad, 1); errors.push('accepted'); } catch (e) { errors.push(e.name); }
  }
  const got = await new Promise((r) => setTimeout((...a) => r(a), 1, 'a', 2, null, { k: true }));
  const ticks = [];
  process.nextTick((x, y) => ticks.push(x + y), 1, 2);
  await new Promise((r) => setTimeout(r, 1));
  return { body: JSON.stringify({ errors, got, ticks }) };
};"#,
        &[],
    );
    // Node 20.
    assert_eq!(
        r.body(),
        r#"{"errors":["TypeError","TypeError","TypeError","TypeError","TypeError"],"got":["a",2,null,{"k":true}],"ticks":[3]}"#,
        "{r:?}"
    );
}

#[test]
fn a_timer_past_the_deadline_is_a_timeout() {
    let r = run_js(
        "export default async () => { await new Promise((r) => setTimeout(r, 10000)); return 1; };",
        &["--timeout-ms", "300"],
    );
    let e = r.failure("timeout", "Timeout");
    assert!(e["message"].as_str().unwrap().contains("deadline"), "{r:?}");
    // An interval keeps the loop alive too: still a timeout, not "never settled".
    let r = run_js(
        "export default async () => { setInterval(() => {}, 10); await new Promise(() => {}); };",
        &["--timeout-ms", "300"],
    );
    r.failure("timeout", "Timeout");
}

#[test]
fn a_promise_nothing_can_settle_is_an_error_at_once() {
    // No timer, no fetch: nothing can ever settle it, so it fails without waiting for the
    // deadline. (AbortSignal.timeout's timer is the runtime's own, unref'd as in Node: it
    // keeps nothing alive.)
    let r = run_js(
        "export default async () => { AbortSignal.timeout(5000); await new Promise(() => {}); };",
        &["--timeout-ms", "20000"],
    );
    let m = r.error("Exception");
    assert_eq!(m, "Error: handler promise never settled", "{r:?}");
    assert!(r.wall < Duration::from_secs(10), "{r:?}");
}

#[test]
fn timers_pending_when_the_handler_settles_are_cancelled_with_one_warning() {
    let r = run_js(
        r#"export default async () => {
  setTimeout(() => console.log('late timeout'), 50);
  setTimeout(() => console.log('late timeout 2'), 500);
  setInterval(() => console.log('late interval'), 20);
  const s = AbortSignal.timeout(1000);
  await new Promise((r) => setTimeout(r, 5));
  return { body: 'done early ' + s.aborted };
};"#,
        &[],
    );
    // Node 20 returns the same value (and would keep running the timers afterwards).
    assert_eq!(r.body(), "done early false", "{r:?}");
    assert_eq!(
        r.logs(),
        vec![
            "[warn] 3 timers still pending when the handler settled were cancelled (nothing outlives an activation)"
        ],
        "{r:?}"
    );
}

#[test]
fn a_throwing_timer_callback_fails_the_activation() {
    // Node: an exception in a timer callback is uncaught and ends the process.
    let r = run_js(
        r#"export default async () => {
  setTimeout(() => { throw new RangeError('from a timer'); }, 1);
  await new Promise((r) => setTimeout(r, 50));
  return 'not reached';
};"#,
        &[],
    );
    assert_eq!(r.error("Exception"), "RangeError: from a timer", "{r:?}");
}

#[test]
fn sleeping_on_a_timer_burns_no_cpu() {
    let fx = Fixture::new();
    let sleep = fx.js(
        "sleep",
        "export default async () => { const t = Date.now(); \
         await new Promise((r) => setTimeout(r, 300)); return { body: String(Date.now() - t >= 295) }; };",
    );
    let busy = fx.js(
        "busy",
        "export default async () => { let x = 0; for (let i = 0; i < 1e7; i++) x += i % 7; \
         return { body: String(x > 0) }; };",
    );
    // The child's own CPU time for the invocation (`cpu_us=` of the summary line, the
    // ActivationRecord's `cpu_ms`), against its wall time (`exec_us=`).
    let measure = |path: &std::path::Path| {
        let r = run(path, &["--timeout-ms", "60000"]);
        assert_eq!(r.body(), "true", "{r:?}");
        let us = |k: &str| -> u64 { r.summary_field(k).parse().unwrap() };
        (us("cpu_us"), us("exec_us"))
    };
    let (cpu, exec) = measure(&sleep);
    assert!(exec >= 295_000, "the sleep took {exec} µs");
    // A busy wait costs about 300 ms of CPU; the event loop's ppoll costs next to none.
    assert!(cpu < 20_000, "a 300 ms timer cost {cpu} µs of CPU");
    // The measure does see computation: ten million loop iterations (a fixed amount of work,
    // so the figure does not depend on how busy the machine is).
    let (cpu, _) = measure(&busy);
    assert!(cpu >= 50_000, "a busy loop was measured at {cpu} µs of CPU");
}
