//! The error-mapping table of contract §6 through `cs-invoker-pool run`: every way a function can
//! fail ends as one well-formed InvocationResult with the right status and type, and exit 1.

#[macro_use]
mod support;

use std::time::Duration;
use support::cli::*;

/// Timeouts run with this budget to keep the suite fast.
const SHORT: &[&str] = &["--timeout-ms", "300"];

/// A timed-out run must end soon after its deadline (interrupt or SIGKILL), not hang.
fn assert_timed_out(r: &Run) {
    let e = r.failure("timeout", "Timeout");
    assert!(e["message"].is_string(), "{r:?}");
    assert!(
        r.wall < Duration::from_secs(10),
        "a 300 ms timeout took {:?} to report",
        r.wall
    );
    assert_eq!(r.summary_field("status"), "timeout", "{r:?}");
}

#[test]
fn thrown_error_is_exception_with_name_message_and_stack() {
    let r = run_js(
        r#"function inner() { throw new TypeError("bad thing happened"); }
           export default () => inner();"#,
        &[],
    );
    let e = r.failure("error", "Exception");
    assert_eq!(e["message"], "TypeError: bad thing happened", "{r:?}");
    let stack = e["stack"]
        .as_str()
        .unwrap_or_else(|| r.fail("an exception carries a stack"));
    assert!(
        stack.contains("inner"),
        "the stack names the throwing function: {stack:?}"
    );
}

#[test]
fn calling_a_non_function_is_a_type_error_exception() {
    let r = run_js("export default () => { const x = 1; return x(); };", &[]);
    let m = r.error("Exception");
    assert!(
        m.starts_with("TypeError: ") && m.contains("not a function"),
        "want `TypeError: … not a function`, got {m:?}"
    );
}

#[test]
fn custom_error_subclass_keeps_its_name() {
    let r = run_js(
        r#"class PaymentError extends Error { constructor(m) { super(m); this.name = "PaymentError"; } }
           export default () => { throw new PaymentError("card declined"); };"#,
        &[],
    );
    assert_eq!(r.error("Exception"), "PaymentError: card declined", "{r:?}");
}

#[test]
fn an_exception_mentioning_timeout_is_not_a_timeout() {
    let r = run_js(
        "export default () => { throw new Error('upstream timeout after 30s'); };",
        SHORT,
    );
    assert_eq!(
        r.error("Exception"),
        "Error: upstream timeout after 30s",
        "{r:?}"
    );
}

#[test]
fn thrown_non_error_values_are_exceptions() {
    let fx = Fixture::new();
    let mut failures = Vec::new();
    for (name, stmt, marker) in [
        (
            "string",
            "throw 'plain string thrown';",
            "plain string thrown",
        ),
        ("number", "throw 4242;", "4242"),
        ("object", "throw { code: 'E_CUSTOM' };", ""),
        ("null", "throw null;", ""),
    ] {
        let p = fx.js(name, &format!("export default () => {{ {stmt} }};"));
        let r = run(&p, &[]);
        let v = r.result();
        let ok = v["status"] == "error"
            && v["error"]["type"] == "Exception"
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(marker));
        if !ok {
            failures.push(format!(
                "{name}: want error/Exception mentioning {marker:?}, got {}",
                r.stdout.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rejected_promise_from_async_handler_is_exception() {
    let r = run_js(
        r#"export default async () => { await null; throw new RangeError("out of range"); };"#,
        &[],
    );
    assert_eq!(r.error("Exception"), "RangeError: out of range", "{r:?}");
}

#[test]
fn returned_rejected_promise_is_exception() {
    let r = run_js(
        "export default () => Promise.reject(new Error('rejected on purpose'));",
        &[],
    );
    assert_eq!(r.error("Exception"), "Error: rejected on purpose", "{r:?}");
}

#[test]
fn never_settling_promise_is_exception_without_waiting_for_the_deadline() {
    let r = run_js(
        "export default () => new Promise(() => {});",
        &["--timeout-ms", "20000"],
    );
    r.error("Exception");
    assert!(
        r.wall < Duration::from_secs(10),
        "nothing can settle the promise once the job queue is empty; took {:?}",
        r.wall
    );
}

#[test]
fn awaiting_a_never_settling_promise_is_exception() {
    let r = run_js(
        "export default async () => { await new Promise(() => {}); return { body: 'unreachable' }; };",
        &["--timeout-ms", "20000"],
    );
    r.error("Exception");
}

#[test]
fn infinite_loop_times_out() {
    let r = run_js("export default () => { while (true) {} };", SHORT);
    assert_timed_out(&r);
}

#[test]
fn infinite_loop_inside_try_finally_times_out() {
    let r = run_js(
        r#"export default () => {
             for (;;) {
               try { for (;;) {} } finally { for (;;) {} }
             }
           };"#,
        SHORT,
    );
    assert_timed_out(&r);
}

#[test]
fn loop_that_swallows_the_interrupt_still_times_out() {
    let r = run_js(
        r#"export default () => {
             for (;;) {
               try { while (true) {} } catch (e) { /* keep going */ } finally { continue; }
             }
           };"#,
        SHORT,
    );
    assert_timed_out(&r);
}

#[test]
fn infinite_loop_after_await_times_out() {
    let r = run_js(
        "export default async () => { await null; for (;;) {} };",
        SHORT,
    );
    assert_timed_out(&r);
}

#[test]
fn catastrophic_regex_backtracking_times_out() {
    let r = run_js(
        r#"export default () => ({ body: String(/(a+)+$/.test("a".repeat(40) + "!")) });"#,
        SHORT,
    );
    assert_timed_out(&r);
}

#[test]
fn caught_out_of_memory_is_still_memory_limit() {
    let r = run_js(
        r#"export default () => {
             try { let a = []; while (true) a.push(new Array(1e6).fill(1)); } catch (e) {}
             return { statusCode: 200 };
           };"#,
        &["--memory-mb", "16", "--timeout-ms", "20000"],
    );
    r.error("MemoryLimit");
}

#[test]
fn uncaught_out_of_memory_is_memory_limit() {
    let r = run_js(
        r#"export default () => { const a = []; for (;;) a.push("x".repeat(1 << 20) + a.length); };"#,
        &["--memory-mb", "16", "--timeout-ms", "20000"],
    );
    r.error("MemoryLimit");
}

#[test]
fn allocation_under_the_limit_succeeds() {
    // About 4 MB of live data under the default 64 MiB.
    let r = run_js(
        r#"export default () => {
             const a = []; for (let i = 0; i < 32; i++) a.push(new Array(16384).fill(i));
             return { body: String(a.length) };
           };"#,
        &[],
    );
    assert_eq!(r.body(), "32", "{r:?}");
}

#[test]
fn unbounded_recursion_is_an_exception_not_a_crash() {
    let r = run_js(
        "function f(n) { return f(n + 1) + 1; } export default () => ({ body: String(f(0)) });",
        &["--timeout-ms", "20000"],
    );
    r.error("Exception");
}

#[test]
fn syntax_error_is_exception() {
    let r = run_js("export default function (event { return 1; }", &[]);
    let m = r.error("Exception");
    assert!(m.starts_with("SyntaxError"), "want SyntaxError…, got {m:?}");
}

#[test]
fn status_code_outside_100_599_is_validation_error() {
    let fx = Fixture::new();
    let mut failures = Vec::new();
    for code in ["42", "600", "99", "-1", "1000"] {
        let p = fx.js(
            &format!("code{code}"),
            &format!("export default () => ({{ statusCode: {code}, body: 'x' }});"),
        );
        let r = run(&p, &[]);
        let v = r.result();
        if v["status"] != "error" || v["error"]["type"] != "ValidationError" {
            failures.push(format!(
                "statusCode {code}: want error/ValidationError, got {}",
                r.stdout.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn status_code_bounds_are_inclusive() {
    let fx = Fixture::new();
    for code in [100, 599] {
        let p = fx.js(
            &format!("code{code}"),
            &format!("export default () => ({{ statusCode: {code} }});"),
        );
        let r = run(&p, &[]);
        assert_eq!(r.success()["statusCode"], code, "{r:?}");
    }
}

#[test]
fn missing_default_export_fails() {
    let r = run_js("export const notTheHandler = () => 1;", &[]);
    assert_eq!(r.status(), "error", "{r:?}");
}

#[test]
fn unknown_manifest_field_is_manifest_error_naming_it() {
    let fx = Fixture::new();
    let manifest = r#"{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js",
        "handler":"default","limits":{"timeoutMs":3000,"memoryMb":64,"maxConcurrency":1},
        "surpriseField":true}"#;
    let p = fx.function("f", "export default () => ({});", manifest);
    let m = run(&p, &[]).error("ManifestError");
    assert!(
        m.contains("surpriseField"),
        "the message names the field: {m:?}"
    );
}

#[test]
fn bad_manifest_values_are_manifest_errors_naming_the_field() {
    let fx = Fixture::new();
    let base = serde_json::json!({
        "schema": "cs.function.script.v1", "runtime": "cs-js", "entry": "function.js",
        "handler": "default", "limits": {"timeoutMs": 3000, "memoryMb": 64, "maxConcurrency": 1}
    });
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("runtime", serde_json::json!({"runtime": "node"})),
        (
            "schema",
            serde_json::json!({"schema": "cs.function.script.v2"}),
        ),
        (
            "memoryMb",
            serde_json::json!({"limits": {"timeoutMs": 3000, "memoryMb": 8, "maxConcurrency": 1}}),
        ),
        (
            "timeoutMs",
            serde_json::json!({"limits": {"timeoutMs": 0, "memoryMb": 64, "maxConcurrency": 1}}),
        ),
        (
            "ops",
            serde_json::json!({"capabilities": {"kv": {"prefixes": ["a:"], "ops": ["get", "drop"]}}}),
        ),
        (
            "bogusLimit",
            serde_json::json!({"limits": {"timeoutMs": 3000, "memoryMb": 64, "maxConcurrency": 1, "bogusLimit": 1}}),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (field, patch)) in cases.into_iter().enumerate() {
        let mut m = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            m[k] = v.clone();
        }
        let p = fx.function(
            &format!("m{i}"),
            "export default () => ({ body: 'ran' });",
            &m.to_string(),
        );
        let r = run(&p, &[]);
        let v = r.result();
        let ok = v["status"] == "error"
            && v["error"]["type"] == "ManifestError"
            && v["error"]["message"]
                .as_str()
                .is_some_and(|s| s.contains(field));
        if !ok {
            failures.push(format!(
                "{field}: want error/ManifestError naming it, got {}",
                r.stdout.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn import_of_std_or_os_is_refused() {
    let fx = Fixture::new();
    for module in ["std", "os"] {
        let p = fx.js(
            module,
            &format!(
                "import * as m from '{module}'; export default () => ({{ body: typeof m.open }});"
            ),
        );
        let r = run(&p, &[]);
        r.error("Exception");
    }
}

#[test]
fn dynamic_import_of_std_is_refused() {
    let r = run_js(
        "export default async () => { const m = await import('std'); return { body: typeof m }; };",
        &[],
    );
    r.error("Exception");
}

#[test]
fn a_failed_run_still_prints_logs_written_before_the_failure() {
    let r = run_js(
        "export default () => { console.log('before-the-throw'); throw new Error('boom'); };",
        &[],
    );
    assert_eq!(r.error("Exception"), "Error: boom", "{r:?}");
    assert!(
        r.logs().iter().any(|l| l.contains("before-the-throw")),
        "{r:?}"
    );
}

#[test]
fn error_message_is_capped_at_64_kib() {
    let r = run_js(
        "export default () => { throw new Error('m'.repeat(200000)); };",
        &[],
    );
    let m = r.error("Exception");
    assert!(m.starts_with("Error: mmmm"), "{}", &m[..40.min(m.len())]);
    assert!(m.len() <= MAX_ERROR_BYTES, "message is {} bytes", m.len());
    assert!(m.len() > 1024, "the message is cut, not dropped");
}

#[test]
fn stack_is_capped_at_8_kib() {
    let r = run_js(
        r#"function deep(n) { if (n === 0) { const e = new Error("deep"); e.stack = "s".repeat(50000); throw e; } return deep(n - 1); }
           export default () => deep(50);"#,
        &[],
    );
    let e = r.failure("error", "Exception");
    if let Some(s) = e["stack"].as_str() {
        assert!(s.len() <= MAX_STACK_BYTES, "stack is {} bytes", s.len());
    }
}
