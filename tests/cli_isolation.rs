//! Tenant isolation and platform limits (issue 10) through `cs-invoker-pool run`: what one
//! function can make the supervisor hold, send or reach is bounded, and every bound is an
//! error the function can catch, naming the limit.

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::cli::*;

const LIMIT: &str = "CS_RUNTIME_LIMIT_EXCEEDED:";

/// A function whose handler runs `body` with `r` (an object) and `attempt(fn)` in scope and
/// returns `r` as its JSON body. `attempt` records `{ok, value}` or `{ok: false, message}`.
fn probe(fx: &Fixture, name: &str, body: &str, capabilities: Value) -> std::path::PathBuf {
    let source = format!(
        r#"function attempt(f) {{
             try {{ return {{ ok: true, value: f() }}; }}
             catch (e) {{ return {{ ok: false, name: e.name, message: String(e.message) }}; }}
           }}
           export default function handle(event, ctx) {{
             const r = {{}};
             {body}
             return {{ statusCode: 200, body: JSON.stringify(r) }};
           }}"#
    );
    fx.function(name, &source, &manifest_with(20_000, 256, capabilities))
}

fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or("")
}

#[test]
fn lone_surrogates_are_replaced_at_the_boundary_not_fatal() {
    let fx = Fixture::new();
    let p = fx.js(
        "surrogates",
        r#"export default function handle(event) {
             console.log("log \uD800 line");
             if (event.throw) throw new Error("bad \uDC00 message");
             return { statusCode: 200, headers: { "x-h": "a\uDBFFb" }, body: "body \uD800 end" };
           }"#,
    );
    let ok = run(&p, &[]);
    let res = ok.success();
    assert_eq!(res["body"], "body \u{FFFD} end");
    assert_eq!(res["headers"]["x-h"], "a\u{FFFD}b");
    assert_eq!(ok.logs(), vec!["[info] log \u{FFFD} line"]);

    let thrown = run_event(&p, &json!({"throw": true}), &[]);
    let e = thrown.failure("error", "Exception");
    assert_eq!(e["message"], "Error: bad \u{FFFD} message");
}

#[test]
fn one_log_call_is_one_record_even_with_line_breaks_inside() {
    let r = run_js(
        r#"export default () => {
             console.log("first\n[error] forged record\r\n[warn] another");
             console.error("second");
             return 1;
           };"#,
        &[],
    );
    r.success();
    assert_eq!(
        r.logs(),
        vec![
            "[info] first\\n[error] forged record\\r\\n[warn] another",
            "[error] second",
        ]
    );
}

#[test]
fn a_host_call_argument_over_the_frame_limit_is_a_catchable_error() {
    let fx = Fixture::new();
    let p = probe(
        &fx,
        "bigarg",
        r#"r.set = attempt(() => cs.kv.set("k:1", "x".repeat(9e6)));
           r.publish = attempt(() => cs.codeq.publish("events.big", { blob: "y".repeat(9e6) }));
           r.after = attempt(() => cs.kv.set("k:2", "small"));
           r.read = attempt(() => cs.kv.get("k:2"));"#,
        json!({"kv": {"prefixes": ["k:"], "ops": ["get", "set"]},
               "codeq": {"publishTopics": ["events.*"]}}),
    );
    let rep = run(&p, &[]).body_json();
    for call in ["set", "publish"] {
        let m = message(&rep[call]);
        assert_eq!(rep[call]["ok"], false, "{call}: {rep}");
        assert!(m.starts_with(LIMIT), "{call}: {m}");
        assert!(m.contains("8388608 bytes"), "{call} names the limit: {m}");
    }
    // The child and the conversation are intact.
    assert_eq!(rep["after"]["ok"], true, "{rep}");
    assert_eq!(rep["read"]["value"], "small", "{rep}");
}

#[test]
fn a_publish_over_codeqs_message_limit_is_refused_in_the_function() {
    let fx = Fixture::new();
    let p = probe(
        &fx,
        "bigpub",
        r#"r.big = attempt(() => cs.codeq.publish("events.big", { blob: "y".repeat(4.5e6) }));
           r.small = attempt(() => cs.codeq.publish("events.small", { n: 1 }));"#,
        json!({"codeq": {"publishTopics": ["events.*"]}}),
    );
    let out = run(&p, &[]);
    let rep = out.body_json();
    let m = message(&rep["big"]);
    assert!(m.starts_with(LIMIT), "{m}");
    assert!(m.contains("4177920 bytes"), "names the limit: {m}");
    assert_eq!(rep["small"]["ok"], true, "{rep}");
    // Only the small one was published.
    let published = out.published();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["body"]["topic"], "events.small");
}

#[test]
fn result_headers_count_in_the_result_limit() {
    let r = run_js(
        r#"export default () => {
             const headers = { "content-type": "text/plain" };
             for (let i = 0; i < 5; i++) headers["x-big-" + i] = "h".repeat(1e6);
             return { statusCode: 200, headers, body: "b".repeat(1000) };
           };"#,
        // 5 MB of headers through a debug build: well within 3 s alone, not on a loaded CI
        // machine; the limit under test is the result's size, not the time.
        &["--timeout-ms", "20000"],
    );
    let res = r.success();
    let size = serde_json::to_vec(&res).unwrap().len();
    assert!(size <= MAX_RESULT_BYTES, "result of {size} bytes");
    assert!(r.result_truncated());
    assert_eq!(res["headers"]["content-type"], "text/plain");
}

#[test]
fn the_platforms_topics_are_reserved_even_under_a_wildcard() {
    let fx = Fixture::new();
    let p = probe(
        &fx,
        "reserved",
        r#"for (const t of ["cs.invoke", "cs.results", "cs.dlq.invoke", "cs.dlq.results", "cs.mine"])
             r[t] = attempt(() => cs.codeq.publish(t, { x: 1 }));
           r.user = attempt(() => cs.codeq.publish("orders.created", { x: 1 }));"#,
        json!({"codeq": {"publishTopics": ["*", "cs.*"]}}),
    );
    let out = run(&p, &[]);
    let rep = out.body_json();
    for t in [
        "cs.invoke",
        "cs.results",
        "cs.dlq.invoke",
        "cs.dlq.results",
        "cs.mine",
    ] {
        let m = message(&rep[t]);
        assert!(m.starts_with(DENIED), "{t}: {rep}");
        assert!(m.contains("reserved"), "{t}: {m}");
    }
    assert_eq!(rep["user"]["ok"], true, "{rep}");
    assert_eq!(out.published().len(), 1);
}

#[test]
fn publishes_per_activation_are_capped() {
    let fx = Fixture::new();
    let p = probe(
        &fx,
        "flood",
        r#"let ok = 0, err = null;
           for (let i = 0; i < 150; i++) {
             try { cs.codeq.publish("events.n", { i }); ok++; }
             catch (e) { err = e.message; break; }
           }
           r.ok = ok; r.err = err;"#,
        json!({"codeq": {"publishTopics": ["events.*"]}}),
    );
    let out = run(&p, &[]);
    let rep = out.body_json();
    assert_eq!(rep["ok"], 100, "{rep}");
    let m = rep["err"].as_str().unwrap_or("");
    assert!(m.starts_with(LIMIT) && m.contains("100 publishes"), "{m}");
    assert_eq!(out.published().len(), 100);
}

#[test]
fn the_local_in_memory_kv_is_bounded() {
    let fx = Fixture::new();
    let p = probe(
        &fx,
        "kvflood",
        r#"const v = "v".repeat(1 << 20);
           let stored = 0, err = null;
           for (let i = 0; i < 200; i++) {
             try { cs.kv.set("k:" + i, v); stored++; }
             catch (e) { err = e.message; break; }
           }
           r.stored = stored; r.err = err;
           r.replace = attempt(() => cs.kv.set("k:0", "small"));
           r.after = attempt(() => cs.kv.set("k:new", v));"#,
        json!({"kv": {"prefixes": ["k:"], "ops": ["get", "set"]}}),
    );
    let rep = run(&p, &["--timeout-ms", "60000"]).body_json();
    let stored = rep["stored"].as_u64().unwrap_or(0);
    assert!((60..=64).contains(&stored), "{rep}");
    let m = rep["err"].as_str().unwrap_or("");
    assert!(m.starts_with(LIMIT) && m.contains("64 MiB"), "{m}");
    // Replacing a value with a smaller one frees room for another.
    assert_eq!(rep["replace"]["ok"], true, "{rep}");
    assert_eq!(rep["after"]["ok"], true, "{rep}");
}

#[test]
fn a_huge_manifest_error_is_bounded() {
    let fx = Fixture::new();
    let long = "k".repeat(10 << 20);
    let manifest = format!(
        r#"{{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js",
            "handler":"default","{long}":1}}"#
    );
    let p = fx.function("hugemanifest", "export default () => 1;", &manifest);
    let r = run(&p, &[]);
    let m = r.error("ManifestError");
    assert!(m.len() <= MAX_ERROR_BYTES, "message of {} bytes", m.len());
    assert!(
        r.stdout.len() < 2 * MAX_ERROR_BYTES,
        "{} bytes",
        r.stdout.len()
    );
}

#[test]
fn special_purpose_and_own_addresses_are_not_reachable() {
    let own = own_address();
    let targets = [
        "192.0.0.1",
        "192.0.2.7",
        "198.18.0.1",
        "198.19.255.1",
        "198.51.100.7",
        "203.0.113.9",
        "192.88.99.1",
        "[2001:db8::1]",
        "[100::1]",
        "[2001:2::1]",
        "[3fff::1]",
        own.as_str(),
    ];
    let fx = Fixture::new();
    let calls: String = targets
        .iter()
        .map(|t| {
            format!(
                r#"r["{t}"] = attempt(() => cs.http.fetch("http://{t}/", {{ timeoutMs: 500 }}));"#
            )
        })
        .collect();
    let hosts: Vec<String> = targets
        .iter()
        .map(|t| t.trim_matches(['[', ']']).to_string())
        .collect();
    let p = probe(
        &fx,
        "ssrf",
        &calls,
        json!({"http": {"allowHosts": hosts, "timeoutMs": 1000}}),
    );
    let rep = run(&p, &[]).body_json();
    for t in targets {
        let m = message(&rep[t]);
        assert!(m.starts_with(DENIED), "{t} must be denied: {rep}");
        assert!(m.contains("denied: address"), "{t}: {m}");
    }
    assert!(
        message(&rep[own.as_str()]).contains("an address of this host"),
        "{rep}"
    );
}

/// A non-loopback IPv4 address of this host (eth0's), from `ip -4 -o addr`.
fn own_address() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("`ip` (iproute2) is needed for this test");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no global IPv4 address on this host: {text}"))
}
