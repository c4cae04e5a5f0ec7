//! The command line itself: exit codes, usage errors, `--event-file`, `--child-bin`, the
//! examples shipped in `examples/`, and `sandbox-child run` for function authors.

#[macro_use]
mod support;

use serde_json::json;
use std::path::Path;
use support::cli::*;

const ECHO: &str = "export default (event) => ({ body: JSON.stringify(event) });";

#[test]
fn exit_0_on_success_and_1_on_error_or_timeout() {
    let ok = run_js("export default () => ({ body: 'ok' });", &[]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(ok.status(), "success");
    let err = run_js("export default () => { throw new Error('x'); };", &[]);
    assert_eq!(err.code, 1, "{err:?}");
    assert_eq!(err.status(), "error");
    let timeout = run_js(
        "export default () => { for (;;) {} };",
        &["--timeout-ms", "200"],
    );
    assert_eq!(timeout.code, 1, "{timeout:?}");
    assert_eq!(timeout.status(), "timeout");
}

#[test]
fn summary_line_closes_stderr() {
    let r = run_js(
        "export default () => { console.log('hi'); return {}; };",
        &[],
    );
    let s = r.summary();
    assert!(s.contains("status=success"), "{s}");
    assert!(s.contains("result_truncated=false"), "{s}");
    assert!(s.contains("logs_truncated=false"), "{s}");
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let fx = Fixture::new();
    let p = fx.js("f", ECHO);
    run(&p, &["--no-such-flag"]).usage_error();
}

#[test]
fn missing_path_is_a_usage_error() {
    exec(&invoker_bin(), &["run"]).usage_error();
}

#[test]
fn non_existent_path_is_a_usage_error() {
    let fx = Fixture::new();
    run(&fx.path("does-not-exist.js"), &[]).usage_error();
    run(&fx.path("no-such-dir"), &[]).usage_error();
}

#[test]
fn event_and_event_file_together_are_a_usage_error() {
    let fx = Fixture::new();
    let p = fx.js("f", ECHO);
    let ev = fx.write("event.json", "{}");
    run(&p, &["--event", "{}", "--event-file", ev.to_str().unwrap()]).usage_error();
}

#[test]
fn invalid_event_json_is_a_usage_error() {
    let fx = Fixture::new();
    let p = fx.js("f", ECHO);
    for bad in ["{not json", "", "{\"a\":1} trailing", "undefined"] {
        let r = run(&p, &["--event", bad]);
        r.usage_error();
    }
}

#[test]
fn event_file_is_read_as_the_event() {
    let fx = Fixture::new();
    let p = fx.js("f", ECHO);
    let event = json!({"from": "file", "list": [1, 2, 3], "u": "ü"});
    let ev = fx.write("event.json", serde_json::to_string_pretty(&event).unwrap());
    let r = run(&p, &["--event-file", ev.to_str().unwrap()]);
    assert_eq!(r.body_json(), event, "{r:?}");
}

#[test]
fn invalid_or_missing_event_file_is_a_usage_error() {
    let fx = Fixture::new();
    let p = fx.js("f", ECHO);
    let bad = fx.write("bad.json", "{\"unterminated\": ");
    run(&p, &["--event-file", bad.to_str().unwrap()]).usage_error();
    run(
        &p,
        &["--event-file", fx.path("missing.json").to_str().unwrap()],
    )
    .usage_error();
}

#[test]
fn explicit_child_bin_is_used() {
    let fx = Fixture::new();
    let p = fx.js("f", "export default () => ({ body: 'via --child-bin' });");
    let r = run(&p, &["--child-bin", child_bin().to_str().unwrap()]);
    assert_eq!(r.body(), "via --child-bin", "{r:?}");
}

#[test]
fn runs_in_parallel_do_not_interfere() {
    let fx = Fixture::new();
    let p = fx.js(
        "par",
        "export default (e) => { let s = 0; for (let i = 0; i < 1e5; i++) s += i; return { body: e.id + ':' + s }; };",
    );
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let p = p.clone();
            std::thread::spawn(move || {
                let r = run_event(&p, &json!({"id": i}), &[]);
                (i, r.body())
            })
        })
        .collect();
    for h in handles {
        let (i, body) = h.join().unwrap();
        assert_eq!(body, format!("{i}:4999950000"));
    }
}

fn example(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel)
}

#[test]
fn hello_example_runs_like_make_demo() {
    let r = run(&example("hello"), &["--event", r#"{"name":"Sous"}"#]);
    let res = r.success();
    assert_eq!(res["headers"]["content-type"], "application/json", "{r:?}");
    let body = r.body_json();
    assert_eq!(body["message"], "Hello, Sous!", "{r:?}");
    assert_eq!(
        body["greetings"], 1,
        "first greeting in a fresh store: {r:?}"
    );
    assert_eq!(body["tenant"], "local", "{r:?}");
    assert!(
        r.logs()
            .iter()
            .any(|l| l.starts_with("[info] ") && l.contains("Sous")),
        "{r:?}"
    );
    assert_eq!(r.published().len(), 1, "{r:?}");
    assert_eq!(r.published()[0]["body"]["topic"], "greetings.sent");
}

#[test]
fn hello_example_without_a_name_greets_the_world() {
    let r = run(&example("hello"), &[]);
    assert_eq!(r.body_json()["message"], "Hello, world!", "{r:?}");
}

#[test]
fn sandbox_child_run_prints_a_result_line() {
    let fx = Fixture::new();
    let p = fx.js(
        "direct",
        "export default (e, ctx) => { console.log('direct-log'); return { statusCode: 203, body: 'hi ' + e.name + ' ' + typeof ctx.activation_id }; };",
    );
    let r = exec(
        &child_bin(),
        &["run", p.to_str().unwrap(), "--event", r#"{"name":"dev"}"#],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one result line: {r:?}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON result line");
    assert_eq!(v["status"], "success", "{r:?}");
    assert!(is_uuid(v["activation_id"].as_str().unwrap_or("")), "{r:?}");
    assert!(v["duration_ms"].is_u64(), "{r:?}");
    assert_eq!(v["result"]["statusCode"], 203, "{r:?}");
    assert_eq!(v["result"]["body"], "hi dev string", "{r:?}");
    assert_eq!(v["result"]["isBase64Encoded"], false, "{r:?}");
    assert!(
        !r.stdout.contains("direct-log"),
        "logs stay off stdout: {r:?}"
    );
}

#[test]
fn sandbox_child_run_reports_errors_in_the_same_shape() {
    let fx = Fixture::new();
    let p = fx.js(
        "boom",
        "export default () => { throw new TypeError('nope'); };",
    );
    let r = exec(&child_bin(), &["run", p.to_str().unwrap(), "--event", "{}"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON result line");
    assert_eq!(v["status"], "error", "{r:?}");
    assert_eq!(v["error"]["type"], "Exception", "{r:?}");
    assert_eq!(v["error"]["message"], "TypeError: nope", "{r:?}");
}

#[test]
fn sandbox_child_help_explains_what_differs_from_production() {
    let r = exec(&child_bin(), &["--help"]);
    assert_eq!(r.code, 0, "{r:?}");
    let text = format!("{}{}", r.stdout, r.stderr).to_lowercase();
    for word in ["run", "supervisor", "capabilit", "confine"] {
        assert!(
            text.contains(word),
            "--help should mention {word:?}:\n{text}"
        );
    }
}

#[test]
fn invoker_help_exits_0_and_documents_run() {
    let r = exec(&invoker_bin(), &["run", "--help"]);
    assert_eq!(r.code, 0, "{r:?}");
    for flag in [
        "--event",
        "--event-file",
        "--tenant",
        "--namespace",
        "--trigger",
        "--timeout-ms",
        "--memory-mb",
        "--child-bin",
    ] {
        assert!(r.stdout.contains(flag), "run --help lists {flag}: {r:?}");
    }
}
