//! Capabilities (contract §5, §6) through `cs-invoker-pool run`: `cs.kv` ops and prefixes,
//! `cs.codeq.publish` topics, `cs.http.fetch` hosts. A denied call throws a catchable `Error`
//! whose message starts with `CS_RUNTIME_CAPABILITY_DENIED:`; allowed calls work against the
//! local in-memory store and print published messages to stderr.

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::cli::*;

/// Wraps each attempted call: `{ok, value}` or `{ok:false, message, isError}`.
const ATTEMPT: &str = r#"
function attempt(f) {
  try { const v = f(); return { ok: true, value: v === undefined ? "undefined" : v }; }
  catch (e) { return { ok: false, message: String(e && e.message), isError: e instanceof Error }; }
}
"#;

fn function_with(fx: &Fixture, name: &str, body: &str, caps: Value) -> std::path::PathBuf {
    fx.function(
        name,
        &format!("{ATTEMPT}\nexport default (event, ctx) => {{ const r = {{}};\n{body}\nreturn {{ body: JSON.stringify(r) }}; }};"),
        &manifest_with(3000, 64, caps),
    )
}

fn assert_ok(report: &Value, key: &str) {
    assert_eq!(
        report[key]["ok"], true,
        "{key} should be allowed: {}",
        report[key]
    );
}

fn assert_denied(report: &Value, key: &str) {
    let r = &report[key];
    assert_eq!(r["ok"], false, "{key} should be denied: {r}");
    assert_eq!(r["isError"], true, "{key}: the denial is an Error: {r}");
    let m = r["message"].as_str().unwrap_or("");
    assert!(
        m.starts_with(DENIED),
        "{key}: message must start with {DENIED}: {m:?}"
    );
}

#[test]
fn kv_ops_not_listed_are_denied() {
    let fx = Fixture::new();
    let p = function_with(
        &fx,
        "kvops",
        r#"r.set = attempt(() => cs.kv.set("user:1", { n: 1 }));
           r.get = attempt(() => cs.kv.get("user:1"));
           r.del = attempt(() => cs.kv.del("user:1"));
           r.getAfterDeniedDel = attempt(() => cs.kv.get("user:1"));"#,
        json!({"kv": {"prefixes": ["user:"], "ops": ["get", "set"]}}),
    );
    let r = run(&p, &[]);
    let rep = r.body_json();
    assert_ok(&rep, "set");
    assert_ok(&rep, "get");
    assert_eq!(rep["get"]["value"], json!({"n": 1}), "set then get: {rep}");
    assert_denied(&rep, "del");
    assert_eq!(
        rep["getAfterDeniedDel"]["value"],
        json!({"n": 1}),
        "a denied del deletes nothing: {rep}"
    );
}

#[test]
fn kv_get_only_denies_set_and_del() {
    let fx = Fixture::new();
    let p = function_with(
        &fx,
        "kvget",
        r#"r.get = attempt(() => cs.kv.get("cfg:missing"));
           r.set = attempt(() => cs.kv.set("cfg:a", 1));
           r.del = attempt(() => cs.kv.del("cfg:a"));"#,
        json!({"kv": {"prefixes": ["cfg:"], "ops": ["get"]}}),
    );
    let rep = run(&p, &[]).body_json();
    assert_ok(&rep, "get");
    assert_eq!(
        rep["get"]["value"],
        Value::Null,
        "a missing key is null: {rep}"
    );
    assert_denied(&rep, "set");
    assert_denied(&rep, "del");
}

#[test]
fn kv_keys_outside_the_prefixes_are_denied() {
    let fx = Fixture::new();
    let p = function_with(
        &fx,
        "kvprefix",
        r#"r.setUser = attempt(() => cs.kv.set("user:42", "u"));
           r.setSession = attempt(() => cs.kv.set("session:9", "s"));
           r.setAdmin = attempt(() => cs.kv.set("admin:1", "a"));
           r.getAdmin = attempt(() => cs.kv.get("admin:1"));
           r.delAdmin = attempt(() => cs.kv.del("admin:1"));
           r.getPrefixWithoutColon = attempt(() => cs.kv.get("user"));
           r.getCaseDiffers = attempt(() => cs.kv.get("USER:42"));
           r.getEmpty = attempt(() => cs.kv.get(""));
           r.getUser = attempt(() => cs.kv.get("user:42"));"#,
        json!({"kv": {"prefixes": ["user:", "session:"], "ops": ["get", "set", "del"]}}),
    );
    let rep = run(&p, &[]).body_json();
    assert_ok(&rep, "setUser");
    assert_ok(&rep, "setSession");
    assert_ok(&rep, "getUser");
    assert_eq!(rep["getUser"]["value"], "u", "{rep}");
    for k in [
        "setAdmin",
        "getAdmin",
        "delAdmin",
        "getPrefixWithoutColon",
        "getCaseDiffers",
        "getEmpty",
    ] {
        assert_denied(&rep, k);
    }
}

#[test]
fn kv_set_get_del_round_trip_with_values_as_json() {
    let fx = Fixture::new();
    let p = function_with(
        &fx,
        "kvrt",
        r#"const value = { s: "ü✓", n: 1.5, a: [1, null, true], o: { d: "e" } };
           r.set = attempt(() => cs.kv.set("k:1", value, { ttlSeconds: 60 }));
           r.get = attempt(() => cs.kv.get("k:1"));
           r.setNum = attempt(() => cs.kv.set("k:n", 7));
           r.getNum = attempt(() => cs.kv.get("k:n"));
           r.del = attempt(() => cs.kv.del("k:1"));
           r.getAfterDel = attempt(() => cs.kv.get("k:1"));"#,
        json!({"kv": {"prefixes": ["k:"], "ops": ["get", "set", "del"]}}),
    );
    let rep = run(&p, &[]).body_json();
    for k in ["set", "get", "setNum", "getNum", "del", "getAfterDel"] {
        assert_ok(&rep, k);
    }
    assert_eq!(
        rep["get"]["value"],
        json!({"s": "ü✓", "n": 1.5, "a": [1, null, true], "o": {"d": "e"}}),
        "{rep}"
    );
    assert_eq!(rep["getNum"]["value"], 7, "{rep}");
    assert_eq!(rep["getAfterDel"]["value"], Value::Null, "{rep}");
}

#[test]
fn without_capabilities_everything_is_denied() {
    let fx = Fixture::new();
    let p = fx.js(
        "nocaps",
        &format!(
            r#"{ATTEMPT}
               export default () => {{ const r = {{}};
                 r.get = attempt(() => cs.kv.get("any:1"));
                 r.set = attempt(() => cs.kv.set("any:1", 1));
                 r.del = attempt(() => cs.kv.del("any:1"));
                 r.pub = attempt(() => cs.codeq.publish("events.x", {{}}));
                 r.fetch = attempt(() => cs.http.fetch("https://example.com/"));
                 return {{ body: JSON.stringify(r) }}; }};"#
        ),
    );
    let r = run(&p, &[]);
    let rep = r.body_json();
    for k in ["get", "set", "del", "pub", "fetch"] {
        assert_denied(&rep, k);
    }
    assert!(r.published().is_empty(), "nothing is published: {r:?}");
}

#[test]
fn publish_topics_allow_exact_names_and_star_prefixes() {
    let fx = Fixture::new();
    let p = function_with(
        &fx,
        "pub",
        r#"r.prefixed = attempt(() => cs.codeq.publish("events.created", { id: 7, tags: ["a"] }));
           r.exact = attempt(() => cs.codeq.publish("audit.log", { who: ctx.tenant }));
           r.other = attempt(() => cs.codeq.publish("billing.charged", { id: 1 }));
           r.exactIsNotPrefix = attempt(() => cs.codeq.publish("audit.log.extra", {}));
           r.starNeedsPrefix = attempt(() => cs.codeq.publish("events", {}));
           r.caseDiffers = attempt(() => cs.codeq.publish("EVENTS.created", {}));"#,
        json!({"codeq": {"publishTopics": ["events.*", "audit.log"]}}),
    );
    let r = run(&p, &["--tenant", "acme"]);
    let v = r.result();
    let rep = r.body_json();
    assert_ok(&rep, "prefixed");
    assert_ok(&rep, "exact");
    for k in [
        "other",
        "exactIsNotPrefix",
        "starNeedsPrefix",
        "caseDiffers",
    ] {
        assert_denied(&rep, k);
    }
    let published = r.published();
    assert_eq!(
        published.len(),
        2,
        "one JSON line per allowed publish, none for denied ones: {r:?}"
    );
    let aid = v["activation_id"].as_str().unwrap();
    for (env, topic, payload) in [
        (
            &published[0],
            "events.created",
            json!({"id": 7, "tags": ["a"]}),
        ),
        (&published[1], "audit.log", json!({"who": "acme"})),
    ] {
        assert_eq!(env["schema"], "cs.envelope.v1", "{env}");
        assert_eq!(env["type"], "RuntimePublish", "{env}");
        assert_eq!(env["tenant"], "acme", "{env}");
        let id = env["id"].as_str().unwrap_or("");
        assert!(
            id.starts_with("msg_") && is_uuid(&id[4..]),
            "id is msg_<uuid>: {env}"
        );
        let ts = env["ts_ms"].as_u64().unwrap_or(0);
        assert!(ts.abs_diff(now_ms()) < 120_000, "ts_ms is now: {env}");
        assert_eq!(env["body"]["topic"], topic, "{env}");
        assert_eq!(env["body"]["payload"], payload, "{env}");
        assert_eq!(env["body"]["activation_id"], aid, "{env}");
    }
}

#[test]
fn an_uncaught_denial_fails_the_activation_as_exception() {
    let fx = Fixture::new();
    let p = fx.function(
        "uncaught",
        "export default () => { cs.kv.get('secret:1'); return { body: 'read it' }; };",
        &manifest_with(
            3000,
            64,
            json!({"kv": {"prefixes": ["public:"], "ops": ["get"]}}),
        ),
    );
    let m = run(&p, &[]).error("Exception");
    assert!(m.contains(DENIED), "{m:?}");
}

#[test]
fn the_manifest_is_the_authority_not_the_event() {
    // Nothing the caller sends widens what the function may do.
    let fx = Fixture::new();
    let p = function_with(
        &fx,
        "authority",
        r#"r.get = attempt(() => cs.kv.get(event.key));"#,
        json!({"kv": {"prefixes": ["mine:"], "ops": ["get"]}}),
    );
    let rep = run_event(
        &p,
        &json!({"key": "theirs:1", "capabilities": {"kv": {"prefixes": ["theirs:"]}}}),
        &[],
    )
    .body_json();
    assert_denied(&rep, "get");
}

#[test]
fn fetch_to_a_host_not_allowed_is_denied() {
    let fx = Fixture::new();
    let p = function_with(
        &fx,
        "fetch",
        r#"r.other = attempt(() => cs.http.fetch("https://evil.example.net/x"));
           r.metadata = attempt(() => cs.http.fetch("http://169.254.169.254/latest/meta-data/"));"#,
        json!({"http": {"allowHosts": ["example.com"], "timeoutMs": 1000}}),
    );
    let rep = run(&p, &[]).body_json();
    assert_denied(&rep, "other");
    assert_denied(&rep, "metadata");
}

#[test]
fn fetch_to_an_allowed_host_does_not_crash_the_function() {
    // `cs.http.fetch` may answer with an error until the data-plane issue; either way the call
    // is catchable and the activation completes.
    let fx = Fixture::new();
    let p = function_with(
        &fx,
        "fetchok",
        r#"r.allowed = attempt(() => cs.http.fetch("https://EXAMPLE.com/", { timeoutMs: 500 }));"#,
        json!({"http": {"allowHosts": ["example.com"], "timeoutMs": 1000}}),
    );
    let rep = run(&p, &[]).body_json();
    let a = &rep["allowed"];
    if a["ok"] == false {
        let m = a["message"].as_str().unwrap_or("");
        assert!(
            !m.starts_with(DENIED),
            "an allowed host (case-insensitive) is not a capability denial: {m:?}"
        );
    }
}
