//! The handler contract of contract §6 through `cs-invoker-pool run`: the forms of default export,
//! the event and `ctx` a handler sees, return normalisation, and logging.

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::cli::*;

#[test]
fn sync_named_default_export_returns_its_response() {
    let r = run_js(
        r#"export default function handle(event, ctx) {
             return { statusCode: 201, headers: { "x-greeting": "yes" }, body: "hi " + event.name };
           }"#,
        &["--event", r#"{"name":"Sous"}"#],
    );
    let res = r.success();
    assert_eq!(res["statusCode"], 201, "{r:?}");
    assert_eq!(res["headers"], json!({"x-greeting": "yes"}), "{r:?}");
    assert_eq!(res["body"], "hi Sous", "{r:?}");
    assert_eq!(res["isBase64Encoded"], false, "{r:?}");
}

#[test]
fn anonymous_default_function_gets_default_status_200() {
    let r = run_js(
        "export default function (event) { return { body: String(event.n * 2) }; }",
        &["--event", r#"{"n":21}"#],
    );
    let res = r.success();
    assert_eq!(res["statusCode"], 200, "{r:?}");
    assert_eq!(res["body"], "42", "{r:?}");
}

#[test]
fn async_named_default_export_is_awaited() {
    let r = run_js(
        r#"async function step(x) { await null; return x + 1; }
           export default async function handle(event) {
             let v = event.start;
             for (let i = 0; i < 5; i++) v = await step(v);
             const w = await new Promise((resolve) => resolve(v * 10));
             return { statusCode: 202, body: String(w) };
           }"#,
        &["--event", r#"{"start":1}"#],
    );
    let res = r.success();
    assert_eq!(res["statusCode"], 202, "{r:?}");
    assert_eq!(res["body"], "60", "{r:?}");
}

#[test]
fn arrow_default_export_receives_event_and_ctx() {
    let r = run_js(
        "export default (e, c) => ({ statusCode: 200, body: e.who + '@' + c.tenant });",
        &["--event", r#"{"who":"ana"}"#],
    );
    assert_eq!(r.body(), "ana@local", "{r:?}");
}

#[test]
fn async_arrow_default_export_is_awaited() {
    let r = run_js(
        "export default async (e) => { const v = await Promise.resolve(e.v); return { body: v }; };",
        &["--event", r#"{"v":"async-arrow"}"#],
    );
    assert_eq!(r.body(), "async-arrow", "{r:?}");
}

#[test]
fn the_event_arrives_intact() {
    let event = json!({
        "s": "ünïcødé ✓ \"quoted\" \\ back",
        "n": 1.5,
        "big": 9007199254740991u64,
        "neg": -3,
        "b": true,
        "nil": null,
        "arr": [1, "two", {"three": 3}],
        "nested": {"deep": {"deeper": ["x"]}}
    });
    let fx = Fixture::new();
    let p = fx.js(
        "echo",
        "export default (event) => ({ body: JSON.stringify(event) });",
    );
    let r = run_event(&p, &event, &[]);
    assert_eq!(r.body_json(), event, "{r:?}");
}

#[test]
fn non_object_events_are_passed_as_is() {
    let fx = Fixture::new();
    let p = fx.js(
        "kind",
        "export default (event) => ({ body: JSON.stringify([typeof event, event]) });",
    );
    for (event, want) in [
        (r#""text""#, json!(["string", "text"])),
        ("7", json!(["number", 7])),
        ("[1,2]", json!(["object", [1, 2]])),
        ("null", json!(["object", null])),
    ] {
        let r = run(&p, &["--event", event]);
        assert_eq!(r.body_json(), want, "event {event}: {r:?}");
    }
}

#[test]
fn without_event_the_handler_gets_an_empty_object() {
    let r = run_js(
        "export default (event) => ({ body: JSON.stringify(event) });",
        &[],
    );
    assert_eq!(r.body_json(), json!({}), "{r:?}");
}

const CTX_DUMP: &str = "export default (event, ctx) => ({ body: JSON.stringify(ctx) });";

#[test]
fn ctx_has_every_field_with_the_run_defaults() {
    let fx = Fixture::new();
    let p = fx.js("ctxfn", CTX_DUMP);
    let before = now_ms();
    let r = run(&p, &[]);
    let after = now_ms();
    let v = r.result();
    let ctx = r.body_json();
    let keys: Vec<&str> = ctx
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "activation_id",
        "request_id",
        "deadline_ms",
        "tenant",
        "namespace",
        "function",
        "version",
        "ref",
        "trigger",
        "principal",
    ] {
        assert!(keys.contains(&k), "ctx lacks {k}: {ctx}");
    }
    assert_eq!(ctx["activation_id"], v["activation_id"], "{ctx}");
    assert_eq!(ctx["request_id"], v["request_id"], "{ctx}");
    assert_eq!(ctx["tenant"], "local", "{ctx}");
    assert_eq!(ctx["namespace"], "default", "{ctx}");
    assert_eq!(ctx["function"], "ctxfn", "{ctx}");
    assert_eq!(ctx["version"], 1, "{ctx}");
    assert_eq!(ctx["ref"], json!({"alias": null, "version": 1}), "{ctx}");
    assert_eq!(ctx["trigger"]["type"], "api", "{ctx}");
    assert!(ctx["principal"]["sub"].is_string(), "{ctx}");
    assert!(ctx["principal"]["roles"].is_array(), "{ctx}");
    // A lone .js file gets the default 3000 ms timeout: deadline ≈ now + 3000.
    let deadline = ctx["deadline_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("deadline_ms must be an integer: {ctx}"));
    assert!(
        deadline + 100 >= before + 3000 && deadline <= after + 3000 + 100,
        "deadline_ms {deadline} not within [{} , {}]",
        before + 3000,
        after + 3000
    );
}

#[test]
fn ctx_deadline_follows_timeout_override() {
    let fx = Fixture::new();
    let p = fx.js("ctxfn", CTX_DUMP);
    let before = now_ms();
    let r = run(&p, &["--timeout-ms", "7000"]);
    let after = now_ms();
    let deadline = r.body_json()["deadline_ms"].as_u64().unwrap();
    assert!(
        deadline + 100 >= before + 7000 && deadline <= after + 7000 + 100,
        "deadline_ms {deadline} not within [{}, {}]",
        before + 7000,
        after + 7000
    );
}

#[test]
fn ctx_follows_tenant_namespace_and_trigger_overrides() {
    let fx = Fixture::new();
    let p = fx.js("ctxfn", CTX_DUMP);
    let r = run(
        &p,
        &[
            "--tenant",
            "acme",
            "--namespace",
            "billing",
            "--trigger",
            "http",
        ],
    );
    let ctx = r.body_json();
    assert_eq!(ctx["tenant"], "acme", "{ctx}");
    assert_eq!(ctx["namespace"], "billing", "{ctx}");
    assert_eq!(ctx["trigger"]["type"], "http", "{ctx}");
    assert_eq!(ctx["function"], "ctxfn", "{ctx}");
}

#[test]
fn every_run_gets_a_fresh_activation_id() {
    let fx = Fixture::new();
    let p = fx.js("ctxfn", CTX_DUMP);
    let a = run(&p, &[]).result();
    let b = run(&p, &[]).result();
    assert_ne!(a["activation_id"], b["activation_id"]);
    assert_ne!(a["request_id"], b["request_id"]);
}

#[test]
fn base64_flag_and_body_pass_through_undecoded() {
    let r = run_js(
        "export default () => ({ statusCode: 200, body: 'aGVsbG8=', isBase64Encoded: true });",
        &[],
    );
    let res = r.success();
    assert_eq!(res["body"], "aGVsbG8=", "{r:?}");
    assert_eq!(res["isBase64Encoded"], true, "{r:?}");
}

/// contract §6: `undefined`/`null` → `{statusCode:200}`; any other non-object value →
/// `{statusCode:200, body: JSON.stringify(value)}`.
#[test]
fn non_object_returns_are_normalised() {
    let fx = Fixture::new();
    let cases: [(&str, &str, &str); 7] = [
        ("string", "return 'hello';", r#""hello""#),
        ("number", "return 42;", "42"),
        ("float", "return 1.5;", "1.5"),
        ("boolean", "return true;", "true"),
        (
            "array",
            "return [1, 'two', { three: 3 }];",
            r#"[1,"two",{"three":3}]"#,
        ),
        ("null", "return null;", ""),
        ("undefined", "return undefined;", ""),
    ];
    let mut failures = Vec::new();
    for (name, stmt, want_body) in cases {
        let p = fx.js(name, &format!("export default () => {{ {stmt} }};"));
        let r = run(&p, &[]);
        let v = r.result();
        let res = &v["result"];
        if v["status"] != "success"
            || res["statusCode"] != 200
            || res["body"] != want_body
            || res["headers"] != json!({})
        {
            failures.push(format!(
                "{name}: want statusCode 200, body {want_body:?}, no headers; got {}",
                r.stdout.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn async_non_object_return_is_normalised_too() {
    let r = run_js("export default async () => 'later';", &[]);
    let res = r.success();
    assert_eq!(res["statusCode"], 200, "{r:?}");
    assert_eq!(res["body"], r#""later""#, "{r:?}");
}

#[test]
fn an_object_without_status_code_defaults_to_200() {
    let r = run_js(
        "export default () => ({ headers: { 'content-type': 'text/plain' }, body: 'x' });",
        &[],
    );
    let res = r.success();
    assert_eq!(res["statusCode"], 200, "{r:?}");
    assert_eq!(res["headers"]["content-type"], "text/plain", "{r:?}");
}

#[test]
fn logs_go_to_stderr_with_their_level_and_in_order() {
    let r = run_js(
        r#"export default () => {
             console.log("log-marker", 1);
             console.info("info-marker");
             console.warn("warn-marker");
             console.error("error-marker");
             cs.log.info({ k: "structured" });
             cs.log.warn("cs-warn-marker");
             cs.log.error("cs-error-marker");
             return { body: "ok" };
           };"#,
        &[],
    );
    assert_eq!(r.body(), "ok", "{r:?}");
    // The log lines never reach stdout.
    assert!(!r.stdout.contains("marker"), "{r:?}");
    let logs = r.logs();
    let expect: [(&str, &str); 7] = [
        ("[info] ", "log-marker"),
        ("[info] ", "info-marker"),
        ("[warn] ", "warn-marker"),
        ("[error] ", "error-marker"),
        ("[info] ", "structured"),
        ("[warn] ", "cs-warn-marker"),
        ("[error] ", "cs-error-marker"),
    ];
    assert_eq!(logs.len(), expect.len(), "log lines: {logs:#?}\n{r:?}");
    for (line, (prefix, marker)) in logs.iter().zip(expect) {
        assert!(
            line.starts_with(prefix) && line.contains(marker),
            "expected {prefix}…{marker}…, got {line:?}"
        );
    }
    // console.log joins its arguments; cs.log.info of an object logs its JSON.
    assert!(logs[0].contains("log-marker 1"), "{:?}", logs[0]);
    let structured = logs[4].strip_prefix("[info] ").unwrap();
    let v: Value = serde_json::from_str(structured)
        .unwrap_or_else(|e| panic!("cs.log.info({{..}}) must log JSON ({e}): {structured:?}"));
    assert_eq!(v, json!({"k": "structured"}));
    assert!(!r.logs_truncated(), "{r:?}");
}

#[test]
fn module_scope_code_runs_before_the_handler() {
    let r = run_js(
        r#"const table = Object.freeze({ a: 1, b: 2 });
           const total = Object.values(table).reduce((x, y) => x + y, 0);
           class Greeter { constructor(n) { this.n = n; } hi() { return `hi ${this.n}`; } }
           export default (e) => ({ body: new Greeter(e.n).hi() + " " + total });"#,
        &["--event", r#"{"n":"x"}"#],
    );
    assert_eq!(r.body(), "hi x 3", "{r:?}");
}

#[test]
fn node_and_quickjs_host_globals_are_absent() {
    // `process` exists for `process.env`, but nothing that makes code believe it runs on Node
    // (`process.versions.node`) and no `require`.
    let r = run_js(
        r#"export default () => ({ body: JSON.stringify({
             require: typeof require, process: typeof process, std: typeof std, os: typeof os,
             scriptArgs: typeof scriptArgs, cs: typeof cs, console: typeof console,
             versions: typeof process.versions }) });"#,
        &[],
    );
    assert_eq!(
        r.body_json(),
        json!({"require": "undefined", "process": "object", "std": "undefined",
               "os": "undefined", "scriptArgs": "undefined", "cs": "object", "console": "object",
               "versions": "undefined"}),
        "{r:?}"
    );
}
