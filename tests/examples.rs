//! The functions in `examples/`, run through `cs-invoker-pool run` as their READMEs and
//! comments say, their answers compared with what Node 20 computes for the same modules and
//! events (kept in each test): `order-validation` (zod bundled with esbuild), `workers-router`
//! (a Workers-style `fetch` handler) and `webhook-hmac` (an HMAC signature check), plus the
//! original `hello`.

#[macro_use]
mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use support::cli::*;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn hello_greets_counts_and_publishes() {
    let r = run_event(&example("hello"), &json!({"name": "Sous"}), &[]);
    let body = r.body_json();
    assert_eq!(body["message"], "Hello, Sous!", "{r:?}");
    assert_eq!(body["greetings"], 1);
    assert_eq!(r.published().len(), 1, "{r:?}");
}

#[test]
fn order_validation_runs_its_bundled_npm_library() {
    let dir = example("order-validation");
    assert!(
        !dir.join("node_modules").exists(),
        "examples/order-validation/node_modules is part of the bundle directory: remove it \
         after `npm run build` (see its README)"
    );
    // (event, Node 20's result for the same bundle).
    let cases = [
        (
            json!({"id":"o-1","email":"ana@example.com","items":[{"sku":"SKU-1","qty":2,"price":3.5},{"sku":"SKU-22","qty":1,"price":10}],"coupon":"WELCOME"}),
            json!({"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\"id\":\"o-1\",\"items\":2,\"total\":17}"}),
        ),
        (
            json!({"id":"","email":"nope","items":[{"sku":"X","qty":1.5,"price":-1}],"coupon":3}),
            json!({"statusCode":422,"headers":{"content-type":"application/json"},"body":"{\"errors\":[{\"path\":\"id\",\"code\":\"too_small\",\"message\":\"Too small: expected string to have >=1 characters\"},{\"path\":\"email\",\"code\":\"invalid_format\",\"message\":\"Invalid email address\"},{\"path\":\"items.0.sku\",\"code\":\"invalid_format\",\"message\":\"Invalid string: must match pattern /^SKU-\\\\d+$/\"},{\"path\":\"items.0.qty\",\"code\":\"invalid_type\",\"message\":\"Invalid input: expected int, received number\"},{\"path\":\"items.0.price\",\"code\":\"too_small\",\"message\":\"Too small: expected number to be >=0\"},{\"path\":\"coupon\",\"code\":\"invalid_type\",\"message\":\"Invalid input: expected string, received number\"}]}"}),
        ),
        (
            json!({}),
            json!({"statusCode":422,"headers":{"content-type":"application/json"},"body":"{\"errors\":[{\"path\":\"id\",\"code\":\"invalid_type\",\"message\":\"Invalid input: expected string, received undefined\"},{\"path\":\"email\",\"code\":\"invalid_type\",\"message\":\"Invalid input: expected string, received undefined\"},{\"path\":\"items\",\"code\":\"invalid_type\",\"message\":\"Invalid input: expected array, received undefined\"}]}"}),
        ),
    ];
    for (event, node) in cases {
        let r = run_event(&dir, &event, &[]);
        let mut got = r.success();
        got.as_object_mut().unwrap().remove("isBase64Encoded");
        assert_eq!(got, node, "{event}\n{r:?}");
    }
}

/// An `http` trigger's event (Sous' API Gateway v2 shape).
fn http_event(method: &str, path: &str, query: &str, body: Option<&str>) -> Value {
    let mut e = json!({
        "rawPath": path, "rawQueryString": query,
        "headers": {"host": "api.example.com"},
        "requestContext": {"http": {"method": method, "path": path}},
        "isBase64Encoded": false,
    });
    if let Some(b) = body {
        e["body"] = json!(b);
        e["headers"]["content-type"] = json!("application/json");
    }
    e
}

#[test]
fn workers_router_answers_requests() {
    let dir = example("workers-router");
    // (event, Node 20's result: its own Request built from the event, the Response converted).
    let cases = [
        (
            http_event("GET", "/hello", "name=Ana%20Maria", None),
            json!({"statusCode":200,"headers":{"content-type":"application/json"},"body":"eyJoZWxsbyI6IkFuYSBNYXJpYSIsInNlcnZpY2UiOiJvcmRlcnMifQ==","isBase64Encoded":true}),
        ),
        (
            http_event("POST", "/orders", "", Some(r#"{"id":"o-42"}"#)),
            json!({"statusCode":201,"headers":{"content-type":"application/json","location":"/orders/o-42"},"body":"eyJhY2NlcHRlZCI6Im8tNDIifQ==","isBase64Encoded":true}),
        ),
        (
            http_event("POST", "/orders", "", Some("not json")),
            json!({"statusCode":400,"headers":{"content-type":"application/json"},"body":"eyJlcnJvciI6InRoZSBib2R5IG11c3QgYmUgSlNPTiJ9","isBase64Encoded":true}),
        ),
        (
            http_event("DELETE", "/nope", "", None),
            json!({"statusCode":404,"headers":{"content-type":"text/plain;charset=UTF-8"},"body":"bm8gcm91dGUgZm9yIERFTEVURSAvbm9wZQ==","isBase64Encoded":true}),
        ),
    ];
    for (event, node) in cases {
        let r = run_event(
            &dir,
            &event,
            &["--trigger", "http", "--env", "SERVICE=orders"],
        );
        assert_eq!(r.success(), node, "{event}\n{r:?}");
    }
    // waitUntil's work happened within the activation.
    let r = run_event(
        &dir,
        &http_event("POST", "/orders", "", Some(r#"{"id":"o-7"}"#)),
        &["--trigger", "http"],
    );
    assert_eq!(r.logs(), vec!["[info] order o-7 accepted"], "{r:?}");
}

#[test]
fn webhook_hmac_accepts_good_signatures_only() {
    let dir = example("webhook-hmac");
    let event: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("event.json")).unwrap()).unwrap();
    let secret = ["--trigger", "http", "--env", "WEBHOOK_SECRET=s3cret"];
    // Node 20 for event.json (signed with s3cret), the same body tampered with, and the same
    // body sent base64-encoded.
    let r = run_event(&dir, &event, &secret);
    assert_eq!(
        r.success(),
        json!({"statusCode":202,"headers":{"content-type":"application/json"},"body":"{\"accepted\":\"opened\",\"repository\":\"sous/cs-js\"}","isBase64Encoded":false}),
        "{r:?}"
    );
    let mut tampered = event.clone();
    tampered["body"] = json!(event["body"].as_str().unwrap().replace("opened", "closed"));
    let r = run_event(&dir, &tampered, &secret);
    assert_eq!(r.success()["statusCode"], 401, "{r:?}");
    assert_eq!(
        r.logs(),
        vec!["[warn] rejected a webhook with a bad signature"]
    );
    let b64 = "eyJhY3Rpb24iOiJvcGVuZWQiLCJyZXBvc2l0b3J5Ijp7ImZ1bGxfbmFtZSI6InNvdXMvY3MtanMifSwibnVtYmVyIjo3fQ==";
    let mut encoded = event.clone();
    encoded["body"] = json!(b64);
    encoded["isBase64Encoded"] = json!(true);
    let r = run_event(&dir, &encoded, &secret);
    assert_eq!(r.success()["statusCode"], 202, "{r:?}");
}
