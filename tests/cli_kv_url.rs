//! `cs-invoker-pool run --kv-url`: a local run whose `cs.kv` reads and writes a real
//! KVRocks-compatible server under the production keys (`cs:kv:{tenant}:{key}`).

#[macro_use]
mod support;

use redis::Commands;
use serde_json::json;
use support::cli::*;
use support::redis_server::RedisServer;

#[test]
fn kv_calls_go_to_the_server_under_tenant_scoped_keys() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut raw = server.raw();
    let _: () = raw.set("cs:kv:t_local1:counter:n", "41").unwrap();
    let fx = Fixture::new();
    let f = fx.function(
        "count",
        "export default () => { const n = cs.kv.get('counter:n') + 1; cs.kv.set('counter:n', n); \
         cs.kv.set('counter:obj', {n}, {ttlSeconds: 60}); return { body: String(n) }; };",
        &manifest_with(
            3000,
            64,
            json!({"kv": {"prefixes": ["counter:"], "ops": ["get", "set"]}}),
        ),
    );
    let url = server.url();
    let r = run(&f, &["--tenant", "t_local1", "--kv-url", &url]);
    assert_eq!(r.body(), "42");
    let n: String = raw.get("cs:kv:t_local1:counter:n").unwrap();
    assert_eq!(n, "42");
    let obj: String = raw.get("cs:kv:t_local1:counter:obj").unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&obj).unwrap(),
        json!({"n": 42})
    );
    let ttl: i64 = raw.ttl("cs:kv:t_local1:counter:obj").unwrap();
    assert!((50..=60).contains(&ttl), "ttl {ttl}");

    // host:port works too; without --kv-url the same function sees the in-memory store.
    let r = run(&f, &["--tenant", "t_local1", "--kv-url", &server.addr()]);
    assert_eq!(r.body(), "43");
    let r = run(&f, &["--tenant", "t_local1"]);
    assert_eq!(r.body(), "1");
}

#[test]
fn a_bad_or_unreachable_kv_url_is_a_usage_error_that_names_it() {
    let fx = Fixture::new();
    let f = fx.js("f.js", "export default () => 1;");
    let r = run(&f, &["--kv-url", "http://example.com"]);
    r.usage_error();
    assert!(
        r.stderr.contains("--kv-url") && r.stderr.contains("redis://"),
        "{}",
        r.stderr
    );
    // Nothing listens on port 1.
    let r = run(&f, &["--kv-url", "127.0.0.1:1"]);
    r.usage_error();
    assert!(
        r.stderr.contains("cannot use the store at 127.0.0.1:1"),
        "{}",
        r.stderr
    );
}
