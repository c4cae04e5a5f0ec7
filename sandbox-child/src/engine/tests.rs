//! Engine behaviour tests: module loading, results, errors, limits, globals.

use super::*;
use sandbox_proto::protocol::LogLevel;

/// A host that records what the guest did and answers from a script.
#[derive(Default)]
struct TestHost {
    logs: Rc<RefCell<Vec<String>>>,
    ops: Rc<RefCell<Vec<HostOp>>>,
    kv: BTreeMap<String, String>,
}

impl Host for TestHost {
    fn call(&mut self, op: HostOp) -> Result<HostValue, HostError> {
        self.ops.borrow_mut().push(op.clone());
        match op {
            HostOp::KvGet { key } => Ok(HostValue::Kv(self.kv.get(&key).cloned())),
            HostOp::KvSet {
                key, value_json, ..
            } => {
                if key.starts_with("denied") {
                    return Err(HostError::denied(format!("kv.set {key}")));
                }
                self.kv.insert(key, value_json);
                Ok(HostValue::Done)
            }
            HostOp::KvDel { key } => {
                self.kv.remove(&key);
                Ok(HostValue::Done)
            }
            HostOp::CodeqPublish { .. } => Ok(HostValue::Done),
            HostOp::HttpFetch { .. } => Ok(HostValue::Http {
                status: 201,
                headers: vec![("X-A".into(), "1".into()), ("x-a".into(), "2".into())],
                body: b"hi!".to_vec(),
            }),
            HostOp::CadenceHeartbeat => Ok(HostValue::Done),
            HostOp::SecretGet { name } => Ok(HostValue::Text(format!("secret-of-{name}"))),
        }
    }
    fn log(&mut self, line: LogLine) {
        self.logs.borrow_mut().push(line.line);
    }
}

struct T {
    engine: Engine,
    logs: Rc<RefCell<Vec<String>>>,
    ops: Rc<RefCell<Vec<HostOp>>>,
}

fn engine() -> T {
    let host = TestHost::default();
    let (logs, ops) = (host.logs.clone(), host.ops.clone());
    T {
        engine: Engine::new(Box::new(host)).unwrap(),
        logs,
        ops,
    }
}

fn file(path: &str, src: &str) -> BundleFile {
    BundleFile {
        path: path.into(),
        contents: src.as_bytes().to_vec(),
    }
}

fn load_with(src: &str, mem: u64, limits: OutputLimits) -> (T, Result<(), GuestError>) {
    let mut t = engine();
    let r = t
        .engine
        .load(&[file("function.js", src)], "function.js", mem, limits, &[]);
    (t, r)
}

fn loaded(src: &str) -> T {
    let (t, r) = load_with(src, 64 << 20, OutputLimits::default());
    r.unwrap();
    t
}

fn run(t: &mut T) -> Outcome {
    t.engine
        .invoke(r#"{"n":2}"#, r#"{"tenant":"t1"}"#, Duration::from_secs(5))
}

fn ok(o: &Outcome) -> serde_json::Value {
    match &o.result {
        Ok(r) => serde_json::to_value(r).unwrap(),
        Err(e) => panic!("expected success, got {e:?}"),
    }
}

fn err(o: &Outcome) -> &GuestError {
    match &o.result {
        Err(e) => e,
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

#[test]
fn default_export_forms() {
    for src in [
        "export default function (e, c) { return {statusCode: 201, body: c.tenant + e.n}; }",
        "export default function handle(e, c) { return {statusCode: 201, body: c.tenant + e.n}; }",
        "export default async function (e, c) { await null; return {statusCode: 201, body: c.tenant + e.n}; }",
        "export default (e, c) => ({statusCode: 201, body: c.tenant + e.n});",
        "export default async (e, c) => ({statusCode: 201, body: c.tenant + e.n});",
        "const h = (e, c) => Promise.resolve({statusCode: 201, body: c.tenant + e.n}); export { h as default };",
    ] {
        let mut t = loaded(src);
        let o = run(&mut t);
        let v = ok(&o);
        assert_eq!(v["statusCode"], 201, "{src}");
        assert_eq!(v["body"], "t12", "{src}");
        assert_eq!(v["isBase64Encoded"], false);
        assert!(o.memory_peak_bytes > 0);
    }
}

#[test]
fn warm_invocations_reuse_the_module() {
    let mut t = loaded("let n = 0; export default () => ({body: String(++n)});");
    for i in 1..=3 {
        assert_eq!(ok(&run(&mut t))["body"], i.to_string());
    }
}

#[test]
fn a_module_without_a_handler_names_what_it_exports() {
    for (src, found) in [
        ("export default 42;", "it exports: default (a number)"),
        ("export const x = 1;", "it exports: x (a number)"),
        (
            "export const handle = () => 1, n = 'x';",
            "it exports: handle (a function), n (a string)",
        ),
        (
            "exports.other = () => 1;",
            "it exports: exports.other (a function)",
        ),
        ("const a = 1;", "it exports nothing"),
    ] {
        let (_, r) = load_with(src, 64 << 20, OutputLimits::default());
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Exception, "{src}");
        assert!(
            e.message
                .starts_with("TypeError: 'function.js' has no handler"),
            "{}",
            e.message
        );
        assert!(e.message.ends_with(found), "{src}: {}", e.message);
    }
}

#[test]
fn syntax_error_and_top_level_throw_fail_the_load() {
    let (_, r) = load_with("export default (", 64 << 20, OutputLimits::default());
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Exception);
    assert!(e.message.starts_with("SyntaxError: "), "{}", e.message);

    let (_, r) = load_with(
        "throw new TypeError('boom'); export default () => 1;",
        64 << 20,
        OutputLimits::default(),
    );
    let e = r.unwrap_err();
    assert_eq!(e.message, "TypeError: boom");
    assert!(e.stack.unwrap_or_default().contains("function.js"));
}

#[test]
fn relative_imports_work_and_everything_else_is_refused() {
    let mut t = engine();
    t.engine
        .load(
            &[
                file(
                    "function.js",
                    "import {f} from './lib/a.js'; export default () => ({body: f()});",
                ),
                file(
                    "lib/a.js",
                    "import {g} from '../lib/b.js'; export const f = () => g() + 'a';",
                ),
                file("lib/b.js", "export const g = () => 'b';"),
            ],
            "function.js",
            64 << 20,
            OutputLimits::default(),
            &[],
        )
        .unwrap();
    assert_eq!(ok(&run(&mut t))["body"], "ba");

    for spec in [
        "std",
        "os",
        "/etc/passwd",
        "../x.js",
        "https://example.com/x.js",
    ] {
        let src = format!("import * as m from '{spec}'; export default () => 1;");
        let (_, r) = load_with(&src, 64 << 20, OutputLimits::default());
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Exception, "{spec}");
        assert!(
            e.message.contains(&format!("'{spec}'")),
            "{spec}: {}",
            e.message
        );
    }

    // Dynamic import goes through the same resolver.
    let mut t = loaded("export default async () => { await import('std'); };");
    let e = err(&run(&mut t)).clone();
    assert!(e.message.contains("cannot import 'std'"), "{}", e.message);
}

#[test]
fn no_host_globals_beyond_the_runtime_api() {
    // QuickJS's libc helpers and Node's module system stay absent; the Web globals are there.
    let mut t = loaded(
        "export default () => ({body: JSON.stringify([typeof require, typeof std, typeof os, \
         typeof print, typeof scriptArgs, typeof performance.now, typeof cs.kv.get, \
         typeof console.log, typeof URL, typeof crypto.subtle.digest, typeof process, \
         typeof setTimeout, typeof fetch])});",
    );
    let v = ok(&run(&mut t));
    assert_eq!(
        v["body"],
        r#"["undefined","undefined","undefined","undefined","undefined","function","function","function","function","function","object","function","function"]"#
    );
}

#[test]
fn thrown_errors_and_rejections_are_exceptions() {
    let cases = [
        (
            "export default () => { throw new RangeError('bad'); };",
            "RangeError: bad",
        ),
        (
            "export default async () => { throw new Error('nope'); };",
            "Error: nope",
        ),
        (
            "export default () => Promise.reject(new TypeError('x'));",
            "TypeError: x",
        ),
        (
            "export default () => { throw 'just a string'; };",
            "Error: just a string",
        ),
        (
            "export default () => { throw {code: 7}; };",
            "Error: {\"code\":7}",
        ),
        ("export default () => { throw new Error(); };", "Error"),
        // Only a real deadline makes a Timeout.
        (
            "export default () => { throw new Error('timeout'); };",
            "Error: timeout",
        ),
    ];
    for (src, msg) in cases {
        let mut t = loaded(src);
        let o = run(&mut t);
        let e = err(&o);
        assert_eq!(e.kind, ErrorKind::Exception, "{src}");
        assert_eq!(e.message, msg, "{src}");
        assert!(!t.engine.poisoned());
    }
    let mut t = loaded("export default () => { throw new Error('x'); };");
    let stack = err(&run(&mut t)).stack.clone().unwrap();
    assert!(stack.contains("function.js"), "{stack}");
}

#[test]
fn error_message_and_stack_are_bounded() {
    let limits = OutputLimits {
        max_error_bytes: 50,
        max_stack_bytes: 20,
        ..OutputLimits::default()
    };
    let (mut t, r) = load_with(
        "function deep(n) { if (n == 0) throw new Error('é'.repeat(1000)); deep(n - 1); } \
         export default () => deep(50);",
        64 << 20,
        limits,
    );
    r.unwrap();
    let o = run(&mut t);
    let e = err(&o);
    assert!(e.message.len() <= 50 && e.message.starts_with("Error: é"));
    assert!(e.stack.as_ref().unwrap().len() <= 20);
}

#[test]
fn never_settling_promise_is_an_exception() {
    let mut t = loaded("export default () => new Promise(() => {});");
    let o = run(&mut t);
    let e = err(&o);
    assert_eq!(e.kind, ErrorKind::Exception);
    assert_eq!(e.message, "Error: handler promise never settled");
}

#[test]
fn interrupt_stops_busy_loops_uncatchably() {
    for src in [
        "export default () => { while (true) {} };",
        "export default () => { try { while (true) {} } finally { while (true) {} } };",
        "export default () => { for (;;) { try { while (true) {} } catch (e) {} } };",
        "export default async () => { await null; while (true) {} };",
    ] {
        let mut t = loaded(src);
        let start = Instant::now();
        let o = t.engine.invoke("null", "{}", Duration::from_millis(50));
        let took = start.elapsed();
        let e = err(&o);
        assert_eq!(e.kind, ErrorKind::Timeout, "{src}");
        assert_eq!(
            e.message,
            "function exceeded its deadline (timeout after 50 ms)"
        );
        // Without the interrupt these never end; how close to the deadline it stops is
        // measured by benches/timeouts.rs, not here (a loaded CI machine runs tests in parallel).
        assert!(took < Duration::from_secs(2), "{src}: {took:?}");
        assert!(t.engine.poisoned());
        assert_eq!(
            err(&run(&mut t)).kind,
            ErrorKind::SandboxError,
            "a poisoned engine refuses to run"
        );
    }
}

#[test]
fn top_level_loop_is_stopped_at_load() {
    let mut t = engine();
    t.engine.set_load_budget(Duration::from_millis(30));
    let e = t
        .engine
        .load(
            &[file(
                "function.js",
                "while (true) {} export default () => 1;",
            )],
            "function.js",
            64 << 20,
            OutputLimits::default(),
            &[],
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert_eq!(
        e.message,
        "module evaluation exceeded its budget (timeout after 30 ms)"
    );
    assert!(t.engine.poisoned());
}

#[test]
fn top_level_allocation_past_the_limit_fails_the_load() {
    let (t, r) = load_with(
        "const a = []; while (true) a.push('x'.repeat(1000)); export default () => 1;",
        8 << 20,
        OutputLimits::default(),
    );
    assert_eq!(r.unwrap_err().kind, ErrorKind::MemoryLimit);
    assert!(t.engine.poisoned());
}

#[test]
fn caught_out_of_memory_still_ends_as_memory_limit() {
    let (mut t, r) = load_with(
        "export default () => { \
           let caught = 0; \
           try { const a = []; while (true) a.push(new Array(100000).fill(1)); } \
           catch (e) { caught++; } \
           return {body: 'survived ' + caught}; }",
        16 << 20,
        OutputLimits::default(),
    );
    r.unwrap();
    let o = run(&mut t);
    let e = err(&o);
    assert_eq!(e.kind, ErrorKind::MemoryLimit);
    assert_eq!(e.message, "memory limit of 16 MiB reached");
    assert!(t.engine.poisoned());
    assert!(o.memory_peak_bytes <= 16 << 20);
    assert!(o.memory_peak_bytes > 8 << 20);
}

#[test]
fn deep_recursion_is_a_catchable_range_error() {
    let mut t = loaded(
        "function f(n) { return f(n + 1) + 1; } \
         export default () => { try { f(0); } catch (e) { return {body: e.name}; } };",
    );
    assert_eq!(ok(&run(&mut t))["body"], "RangeError");
    let mut t = loaded("function f(n) { return f(n + 1) + 1; } export default () => f(0);");
    assert!(err(&run(&mut t)).message.starts_with("RangeError"));
    assert!(!t.engine.poisoned());
}

#[test]
fn normalisation_of_return_values() {
    let cases: &[(&str, serde_json::Value)] = &[
        (
            "undefined",
            serde_json::json!({"statusCode":200,"headers":{},"body":"","isBase64Encoded":false}),
        ),
        (
            "null",
            serde_json::json!({"statusCode":200,"headers":{},"body":"","isBase64Encoded":false}),
        ),
        (
            "'hi'",
            serde_json::json!({"statusCode":200,"headers":{},"body":"\"hi\"","isBase64Encoded":false}),
        ),
        (
            "42",
            serde_json::json!({"statusCode":200,"headers":{},"body":"42","isBase64Encoded":false}),
        ),
        (
            "true",
            serde_json::json!({"statusCode":200,"headers":{},"body":"true","isBase64Encoded":false}),
        ),
        (
            "[1,{a:2}]",
            serde_json::json!({"statusCode":200,"headers":{},"body":"[1,{\"a\":2}]","isBase64Encoded":false}),
        ),
        (
            "{statusCode: 404}",
            serde_json::json!({"statusCode":404,"headers":{},"body":"","isBase64Encoded":false}),
        ),
        (
            "{body: {a: 1}, extra: 1}",
            serde_json::json!({"statusCode":200,"headers":{},"body":"{\"a\":1}","isBase64Encoded":false}),
        ),
        (
            "{headers: {'content-type': 'text/plain'}, body: 'aGk=', isBase64Encoded: true}",
            serde_json::json!({"statusCode":200,"headers":{"content-type":"text/plain"},"body":"aGk=","isBase64Encoded":true}),
        ),
    ];
    for (ret, want) in cases {
        let mut t = loaded(&format!("export default () => ({ret});"));
        assert_eq!(&ok(&run(&mut t)), want, "{ret}");
    }
}

#[test]
fn bad_shapes_are_validation_errors() {
    let cases = [
        (
            "{statusCode: 600}",
            "statusCode must be an integer in 100..599, got 600",
        ),
        (
            "{statusCode: 99}",
            "statusCode must be an integer in 100..599, got 99",
        ),
        (
            "{statusCode: 200.5}",
            "statusCode must be an integer in 100..599, got 200.5",
        ),
        (
            "{statusCode: '200'}",
            "statusCode must be an integer in 100..599, got \"200\"",
        ),
        (
            "{statusCode: null}",
            "statusCode must be an integer in 100..599, got null",
        ),
        ("{headers: {a: 1}}", "header \"a\" must be a string, got 1"),
        (
            "{headers: 'x'}",
            "headers must be an object of strings, got \"x\"",
        ),
        (
            "{isBase64Encoded: 'yes'}",
            "isBase64Encoded must be a boolean, got \"yes\"",
        ),
        (
            "() => 1",
            "the return value cannot be serialised as JSON (got a function)",
        ),
    ];
    for (ret, msg) in cases {
        let mut t = loaded(&format!("export default () => ({ret});"));
        let o = run(&mut t);
        let e = err(&o);
        assert_eq!(e.kind, ErrorKind::ValidationError, "{ret}");
        assert_eq!(e.message, msg);
        assert!(!t.engine.poisoned());
    }
}

#[test]
fn large_results_are_truncated() {
    let limits = OutputLimits {
        max_result_bytes: 1000,
        ..OutputLimits::default()
    };
    let (mut t, r) = load_with(
        "export default () => ({body: 'x'.repeat(5000)});",
        64 << 20,
        limits,
    );
    r.unwrap();
    let o = run(&mut t);
    assert!(o.result_truncated);
    let r = o.result.as_ref().unwrap();
    assert!(serde_json::to_string(r).unwrap().len() <= 1000);
}

#[test]
fn console_and_cs_log_lines() {
    let mut t = loaded(
        "console.log('at load'); \
         export default () => { \
           console.log('a', 1, {b: [2]}, undefined, null); \
           console.info('i'); console.warn('w'); console.error(new Map(), 10n); \
           cs.log.info('text'); cs.log.warn({k: 'v'}); cs.log.error(); \
         };",
    );
    ok(&run(&mut t));
    assert_eq!(
        *t.logs.borrow(),
        vec![
            "[info] at load",
            // console formats like Node's util.format; cs.log keeps JSON.
            "[info] a 1 { b: [ 2 ] } undefined null",
            "[info] i",
            "[warn] w",
            "[error] Map(0) {} 10n",
            "[info] text",
            "[warn] {\"k\":\"v\"}",
            "[error] undefined",
        ]
    );
    // Load-time lines go to the first activation only.
    t.logs.borrow_mut().clear();
    ok(&run(&mut t));
    assert_eq!(t.logs.borrow()[0], "[info] a 1 { b: [ 2 ] } undefined null");
    let _ = LogLevel::Info;
}

#[test]
fn log_output_is_capped() {
    let limits = OutputLimits {
        max_log_bytes: 25,
        ..OutputLimits::default()
    };
    let (mut t, r) = load_with(
        "export default () => { console.log('12345'); console.log('67890'); console.log('abc'); console.log('x'); };",
        64 << 20,
        limits,
    );
    r.unwrap();
    let o = run(&mut t);
    ok(&o);
    // "[info] 12345\n" is 13 bytes: one line fits, the second would pass 25 and is dropped,
    // and so is everything after it.
    assert_eq!(*t.logs.borrow(), vec!["[info] 12345"]);
    assert!(o.logs_truncated);
    // The budget is per activation.
    t.logs.borrow_mut().clear();
    let o = run(&mut t);
    assert_eq!(t.logs.borrow().len(), 1);
    assert!(o.logs_truncated);
}

#[test]
fn host_calls() {
    let mut t = loaded(
        "export default () => { \
           cs.kv.set('k', {a: [1]}, {ttlSeconds: 60}); \
           const got = cs.kv.get('k'); const missing = cs.kv.get('nope'); \
           cs.kv.del('k'); \
           cs.codeq.publish('topic.a', {x: 1}); \
           const r = cs.http.fetch('https://example.com/', {method: 'POST', headers: {'x-y': 'z'}, body: 'abc', timeoutMs: 100}); \
           let denied; try { cs.kv.set('denied.k', 1); } catch (e) { denied = e.message + '|' + (e instanceof Error); } \
           let te; try { cs.kv.get(5); } catch (e) { te = e.name + ': ' + e.message; } \
           let ue; try { cs.kv.set('k', undefined); } catch (e) { ue = e.name; } \
           return {body: JSON.stringify({got, missing, r, denied, te, ue})}; }",
    );
    let v = ok(&run(&mut t));
    let body: serde_json::Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["got"], serde_json::json!({"a": [1]}));
    assert_eq!(body["missing"], serde_json::Value::Null);
    assert_eq!(
        body["r"],
        serde_json::json!({"status": 201, "headers": {"x-a": "1, 2"}, "body": "aGkh", "isBase64Encoded": true})
    );
    assert_eq!(
        body["denied"],
        "CS_RUNTIME_CAPABILITY_DENIED: kv.set denied.k|true"
    );
    assert_eq!(body["te"], "TypeError: cs.kv.get: key must be a string");
    assert_eq!(body["ue"], "TypeError");
    let ops = t.ops.borrow();
    assert_eq!(
        ops[0],
        HostOp::KvSet {
            key: "k".into(),
            value_json: "{\"a\":[1]}".into(),
            ttl_seconds: Some(60)
        }
    );
    assert_eq!(
        ops[5],
        HostOp::HttpFetch {
            url: "https://example.com/".into(),
            method: "POST".into(),
            headers: vec![("x-y".into(), "z".into())],
            body: Some(b"abc".to_vec()),
            timeout_ms: Some(100),
        }
    );
}

#[test]
fn uncaught_host_error_keeps_its_message() {
    let mut t = loaded("export default () => { cs.kv.set('denied.x', 1); };");
    let e = err(&run(&mut t)).clone();
    assert_eq!(e.kind, ErrorKind::Exception);
    assert_eq!(
        e.message,
        "Error: CS_RUNTIME_CAPABILITY_DENIED: kv.set denied.x"
    );
}

#[test]
fn leftover_jobs_run_inside_the_activation() {
    let mut t = loaded(
        "let n = 0; export default () => { Promise.resolve().then(() => { n++; }); return {body: String(n)}; };",
    );
    assert_eq!(ok(&run(&mut t))["body"], "0");
    assert_eq!(ok(&run(&mut t))["body"], "1");
}

/// Ad-hoc timing (run with `cargo test --release -p sandbox-child timings -- --ignored
/// --nocapture`): medians over 1000 runs of engine creation, load of a trivial module, and a
/// warm invoke.
#[test]
#[ignore]
fn timings() {
    fn median(mut v: Vec<Duration>) -> Duration {
        v.sort();
        v[v.len() / 2]
    }
    let (mut new, mut load, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    let src = "export default () => ({statusCode: 200});";
    for _ in 0..1000 {
        let s = Instant::now();
        let mut t = engine();
        new.push(s.elapsed());
        let s = Instant::now();
        t.engine
            .load(
                &[file("function.js", src)],
                "function.js",
                64 << 20,
                OutputLimits::default(),
                &[],
            )
            .unwrap();
        load.push(s.elapsed());
    }
    let mut t = loaded(src);
    for _ in 0..1100 {
        let s = Instant::now();
        let o = t.engine.invoke("{}", "{}", Duration::from_secs(1));
        warm.push(s.elapsed());
        assert!(o.result.is_ok());
    }
    warm.drain(..100);
    println!(
        "engine new {:?}, load {:?}, warm invoke {:?}",
        median(new),
        median(load),
        median(warm)
    );
}

#[test]
fn hostile_sources_and_inputs_do_not_panic() {
    for src in [
        &b"export default () => 1;\0"[..],
        &b"export default () => '\xff\xfe';"[..],
    ] {
        let mut t = engine();
        let r = t.engine.load(
            &[BundleFile {
                path: "function.js".into(),
                contents: src.to_vec(),
            }],
            "function.js",
            64 << 20,
            OutputLimits::default(),
            &[],
        );
        if r.is_ok() {
            let _ = run(&mut t);
        }
    }
    let mut t = loaded("export default () => 1;");
    let o = t.engine.invoke("{\0}", "{}", Duration::from_secs(1));
    assert_eq!(err(&o).kind, ErrorKind::SandboxError);
    let (_, r) = load_with("export default () => 1;", 64 << 20, OutputLimits::default());
    r.unwrap();
    let mut t = engine();
    let e = t
        .engine
        .load(&[], "function.js", 64 << 20, OutputLimits::default(), &[])
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::SandboxError);
}

/// The compiled-module cache (`bytecode`): what a child writes, a fresh child reads.
mod compiled {
    use super::*;

    const LIMIT: u64 = 64 << 20;

    /// A bundle with shared imports (a diamond), top-level state and a throwing path, so the
    /// bytecode path has to rebuild the module graph and keep line numbers.
    fn bundle(entry_src: &str) -> Vec<BundleFile> {
        vec![
            file("function.js", entry_src),
            file(
                "lib/a.js",
                "import { base } from './c.js';\nexport const a = () => base + 1;\n",
            ),
            file(
                "lib/b.js",
                "import { base } from './c.js';\nexport const b = () => base + 2;\n",
            ),
            file("lib/c.js", "export let base = 40;\nbase += 0;\n"),
        ]
    }

    const ENTRY: &str = "import { a } from './lib/a.js';\nimport { b } from './lib/b.js';\n\
        let n = 0;\n\
        export default function handle(event) {\n\
          if (event.fail) { throw new Error('boom'); }\n\
          n += 1;\n\
          return { statusCode: 200, body: [a(), b(), n, handle.toString().length].join(',') };\n\
        }\n";

    fn load(
        t: &mut T,
        files: &[BundleFile],
        cached: Option<&[u8]>,
        want: bool,
    ) -> Result<LoadReport, GuestError> {
        let req = LoadRequest {
            files,
            entry: "function.js",
            memory_limit_bytes: LIMIT,
            limits: OutputLimits::default(),
            env: &[],
        };
        t.engine.load_compiled(&req, cached, want)
    }

    fn call(t: &mut T, event: &str) -> Outcome {
        t.engine.invoke(event, "{}", Duration::from_secs(5))
    }

    fn compiled_blob() -> (Vec<u8>, serde_json::Value) {
        let mut t = engine();
        let report = load(&mut t, &bundle(ENTRY), None, true).unwrap();
        assert!(!report.from_bytecode && report.rejected.is_none());
        let from_source = ok(&call(&mut t, "{}"));
        (
            report.bytecode.expect("bytecode was asked for"),
            from_source,
        )
    }

    #[test]
    fn bytecode_is_returned_only_when_asked() {
        let mut t = engine();
        let report = load(&mut t, &bundle(ENTRY), None, false).unwrap();
        assert_eq!(report.bytecode, None);
    }

    #[test]
    fn a_fresh_engine_runs_the_bytecode_without_parsing() {
        let (blob, from_source) = compiled_blob();
        let modules = bytecode::decode(&blob).unwrap();
        let paths: Vec<&str> = modules.keys().map(String::as_str).collect();
        assert_eq!(paths, ["function.js", "lib/a.js", "lib/b.js", "lib/c.js"]);

        // The sources handed along now fail to parse: only the bytecode can make this work.
        let broken: Vec<BundleFile> = bundle(ENTRY)
            .into_iter()
            .map(|f| file(&f.path, "this is ( not JavaScript"))
            .collect();
        let mut t = engine();
        let report = load(&mut t, &broken, Some(&blob), true).unwrap();
        assert_eq!(
            report,
            LoadReport {
                from_bytecode: true,
                bytecode: None,
                rejected: None
            }
        );
        // Same answers as from source; Node gives 164 for the handler's source text length.
        assert_eq!(ok(&call(&mut t, "{}")), from_source);
        assert_eq!(ok(&call(&mut t, "{}"))["body"], "41,42,2,164");
        // Line numbers survive: the throw is on line 5 of function.js.
        let e = err(&call(&mut t, r#"{"fail":true}"#)).clone();
        assert_eq!(e.message, "Error: boom");
        assert!(
            e.stack.as_deref().unwrap_or("").contains("function.js:5"),
            "{e:?}"
        );
    }

    #[test]
    fn another_builds_bytecode_falls_back_to_the_source() {
        let (blob, from_source) = compiled_blob();
        let modules = bytecode::decode(&blob).unwrap();
        let stale =
            bytecode::encode_with_identity("sandbox-child 0.0.1 quickjs-ng 0.1.0", &modules);
        let mut t = engine();
        let report = load(&mut t, &bundle(ENTRY), Some(&stale), true).unwrap();
        assert!(!report.from_bytecode);
        let why = report.rejected.unwrap();
        assert!(why.contains("another child build"), "{why}");
        // The fresh bytecode replaces the stale one, and the function runs.
        assert_eq!(report.bytecode.as_deref(), Some(&blob[..]));
        assert_eq!(ok(&call(&mut t, "{}")), from_source);
    }

    #[test]
    fn bytecode_quickjs_refuses_rebuilds_the_engine_and_compiles_the_source() {
        let (blob, from_source) = compiled_blob();
        // An intact envelope (right build, right checksum) around truncated bytecode: QuickJS's
        // reader, which is bounds-checked, refuses it part way through the module graph.
        let mut modules = bytecode::decode(&blob).unwrap();
        for code in modules.values_mut() {
            code.truncate(code.len() / 2);
        }
        let bad = bytecode::encode(&modules);
        let mut t = engine();
        let report = load(&mut t, &bundle(ENTRY), Some(&bad), true).unwrap();
        assert!(!report.from_bytecode);
        let why = report.rejected.unwrap();
        assert!(why.contains("QuickJS could not read it"), "{why}");
        assert_eq!(report.bytecode.as_deref(), Some(&blob[..]));
        assert_eq!(ok(&call(&mut t, "{}")), from_source);
        // Damaged bytes never reach QuickJS.
        let mut flipped = blob.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let mut t = engine();
        let report = load(&mut t, &bundle(ENTRY), Some(&flipped), false).unwrap();
        assert!(report.rejected.unwrap().contains("checksum"));
        assert_eq!(ok(&call(&mut t, "{}")), from_source);
    }

    #[test]
    fn a_top_level_throw_from_bytecode_is_the_guests_error() {
        let src = "if (!globalThis.pass) { throw new TypeError('top'); }\n\
                   export default () => 1;\n";
        // Compiled where it passes, then read where it throws: the error is the load's, and
        // the source is not tried again.
        let mut t = engine();
        t.engine
            .context
            .with(|ctx| ctx.globals().set("pass", true))
            .unwrap();
        let blob = load(&mut t, &[file("function.js", src)], None, true)
            .unwrap()
            .bytecode
            .unwrap();
        let mut t = engine();
        let e = load(&mut t, &[file("function.js", src)], Some(&blob), true).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Exception, "TypeError: top")
        );
    }

    #[test]
    fn no_bytecode_without_room_to_write_it() {
        // 1 MB of source (a comment: parsing it allocates nothing) and a heap limit that leaves
        // less than the writer's headroom: the load succeeds, uncached.
        let src = format!("// {}\nexport default () => 7;\n", "x".repeat(1 << 20));
        let mut t = engine();
        let limit = t.engine.memory_in_use() + (2 << 20);
        let req = LoadRequest {
            files: &[file("function.js", &src)],
            entry: "function.js",
            memory_limit_bytes: limit,
            limits: OutputLimits::default(),
            env: &[],
        };
        let report = t.engine.load_compiled(&req, None, true).unwrap();
        assert_eq!(report.bytecode, None);
        assert_eq!(ok(&call(&mut t, "{}"))["body"], "7");
        // With room, the same bundle is cached.
        let mut t = engine();
        let req = LoadRequest {
            memory_limit_bytes: LIMIT,
            ..req
        };
        assert!(t
            .engine
            .load_compiled(&req, None, true)
            .unwrap()
            .bytecode
            .is_some());
    }
}
