//! The handler shapes of issue 11 item 8 through `cs-invoker-pool run`: Sous' default-export
//! function, Lambda's named `handler`, Workers' `export default { fetch }` (the `http` event
//! becomes a `Request`, the `Response` the result), CommonJS modules, and `process.env`.
//!
//! Expected values are what Node 20 computes for the same modules: ES modules through a runner
//! that imports them and awaits the handler, CommonJS ones through one that `require`s them,
//! and Workers modules through one that builds the `Request` with Node's own classes by the
//! mapping cs-js documents and turns the `Response` into `{statusCode, headers, body (base64)}`.

#[macro_use]
mod support;

use serde_json::json;
use support::cli::*;

#[test]
fn a_lambda_style_named_handler_is_called() {
    let r = run_js(
        "export const handler = async (event, context) => ({ statusCode: 200, body: `${event.n} ${context.tenant}` });",
        &["--event", r#"{"n":21}"#],
    );
    // Node 20: {"statusCode":200,"body":"21 local"}
    assert_eq!(r.success()["body"], "21 local", "{r:?}");
    let r = run_js(
        "export const handler = () => ({ body: 'named' }); export default () => ({ body: 'default' });",
        &[],
    );
    assert_eq!(r.body(), "default", "the default export comes first: {r:?}");
}

#[test]
fn commonjs_modules_run_in_each_shape() {
    // (module, what Node 20 returns for event {"n":21} through require()).
    let cases = [
        (
            r#"exports.default = async (event) => ({ statusCode: 200, body: 'default ' + event.n });
"#,
            json!({"statusCode":200,"body":"default 21"}),
        ),
        (
            r#"module.exports = (event, ctx) => ({ body: 'fn ' + event.n + ' ' + ctx.tenant });
"#,
            json!({"body":"fn 21 local"}),
        ),
        (
            r#"const handler = async (event) => ({ body: 'obj ' + event.n });
module.exports = { handler };
"#,
            json!({"body":"obj 21"}),
        ),
        // TypeScript's CommonJS output: `__esModule`, and an export read back through
        // `exports` when the handler runs.
        (
            r#""use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.handler = exports.double = void 0;
const double = (n) => n * 2;
exports.double = double;
const handler = async (event) => {
    return { statusCode: 201, body: String((0, exports.double)(event.n)) };
};
exports.handler = handler;
"#,
            json!({"statusCode":201,"body":"42"}),
        ),
    ];
    for (src, node) in cases {
        let r = run_js(src, &["--event", r#"{"n":21}"#]);
        let res = r.success();
        assert_eq!(res["body"], node["body"], "{src}\n{r:?}");
        assert_eq!(
            res["statusCode"],
            node.get("statusCode").cloned().unwrap_or(json!(200)),
            "{src}"
        );
    }
}

const WORKER: &str = r#"export default {
  async fetch(request, env, ctx) {
    const body = request.method === 'POST' ? await request.json() : null;
    ctx.waitUntil(new Promise((r) => setTimeout(() => { console.log('waited'); r(); }, 20)));
    return new Response(JSON.stringify({
      method: request.method, url: request.url, ua: request.headers.get('user-agent'),
      cookie: request.headers.get('cookie'), ct: request.headers.get('content-type'), body,
      greeting: env.GREETING, tenant: ctx.tenant, waitUntil: typeof ctx.waitUntil,
    }), { status: 201, headers: { 'content-type': 'application/json', 'x-worker': 'yes' } });
  },
};
"#;

/// Sous' HTTP event: the API Gateway v2 shape.
const HTTP_EVENT: &str = r#"{"version":"2.0","routeKey":"POST /orders","rawPath":"/orders/42","rawQueryString":"a=1&b=two","cookies":["s=abc","t=1"],"headers":{"host":"api.example.com","user-agent":"curl/8","content-type":"application/json"},"requestContext":{"domainName":"api.example.com","http":{"method":"POST","path":"/orders/42"}},"body":"eyJxdHkiOjN9","isBase64Encoded":true}"#;

#[test]
fn a_workers_fetch_handler_gets_a_request_and_answers_a_response() {
    let r = run_js(
        WORKER,
        &[
            "--trigger",
            "http",
            "--env",
            "GREETING=hi",
            "--event",
            HTTP_EVENT,
        ],
    );
    // Node 20, with its own Request and Response (see the module docs).
    let node = json!({"statusCode":201,"headers":{"content-type":"application/json","x-worker":"yes"},"body":"eyJtZXRob2QiOiJQT1NUIiwidXJsIjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20vb3JkZXJzLzQyP2E9MSZiPXR3byIsInVhIjoiY3VybC84IiwiY29va2llIjoicz1hYmM7IHQ9MSIsImN0IjoiYXBwbGljYXRpb24vanNvbiIsImJvZHkiOnsicXR5IjozfSwiZ3JlZXRpbmciOiJoaSIsInRlbmFudCI6ImxvY2FsIiwid2FpdFVudGlsIjoiZnVuY3Rpb24ifQ==","isBase64Encoded":true});
    assert_eq!(r.success(), node, "{r:?}");
    // ctx.waitUntil's promise ran to its end before the activation did.
    assert_eq!(r.logs(), vec!["[info] waited"], "{r:?}");

    // Any other trigger: a POST of the event as JSON.
    let r = run_js(WORKER, &["--env", "GREETING=hi", "--event", r#"{"n":1}"#]);
    // Node 20.
    let node = json!({"statusCode":201,"headers":{"content-type":"application/json","x-worker":"yes"},"body":"eyJtZXRob2QiOiJQT1NUIiwidXJsIjoiaHR0cHM6Ly9sb2NhbGhvc3QvIiwidWEiOm51bGwsImNvb2tpZSI6bnVsbCwiY3QiOiJhcHBsaWNhdGlvbi9qc29uIiwiYm9keSI6eyJuIjoxfSwiZ3JlZXRpbmciOiJoaSIsInRlbmFudCI6ImxvY2FsIiwid2FpdFVudGlsIjoiZnVuY3Rpb24ifQ==","isBase64Encoded":true});
    assert_eq!(r.success(), node, "{r:?}");

    // The same object under CommonJS.
    let r = run_js(
        "module.exports = { async fetch(req, env) { return new Response(`${req.method} ${env.GREETING}`); } };",
        &["--env", "GREETING=cjs"],
    );
    let res = r.success();
    assert_eq!(res["body"], "UE9TVCBjanM=", "base64 of 'POST cjs': {r:?}");
    assert_eq!(res["headers"]["content-type"], "text/plain;charset=UTF-8");
}

#[test]
fn a_module_without_a_handler_is_told_what_it_exports() {
    for (src, found) in [
        (
            "export const helper = () => 1; export const version = 3;",
            "it exports: helper (a function), version (a number)",
        ),
        ("export default 42;", "it exports: default (a number)"),
        (
            "export default { get() {} };",
            "it exports: default (an object)",
        ),
        (
            "exports.helper = () => 1;",
            "it exports: exports.helper (a function)",
        ),
        ("const x = 1;", "it exports nothing"),
    ] {
        let r = run_js(src, &[]);
        let m = r.error("Exception");
        assert!(
            m.starts_with("TypeError: 'function.js' has no handler"),
            "{src}: {m}"
        );
        assert!(m.ends_with(found), "{src}: {m}");
    }
}

#[test]
fn require_stays_absent_and_its_error_says_how_to_bundle() {
    let r = run_js("const fs = require('fs'); export default () => 1;", &[]);
    let m = r.error("Exception");
    assert!(
        m.starts_with("ReferenceError: require is not defined. "),
        "{m}"
    );
    assert!(
        m.contains("esbuild") && m.contains("--bundle --format=esm"),
        "{m}"
    );
    // Code that checks for require takes its other path, as in a browser.
    let r = run_js(
        "const lib = typeof require === 'function' ? require('x') : { v: 'no require' }; \
         export default () => ({ body: lib.v });",
        &[],
    );
    assert_eq!(r.body(), "no require", "{r:?}");
}

#[test]
fn process_env_holds_the_run_env_values() {
    let src = "const atLoad = process.env.API_URL; \
               export default () => ({ body: JSON.stringify({ atLoad, env: process.env, type: typeof process.env }) });";
    let r = run_js(src, &[]);
    // No --env: {} (a version without config.env).
    assert_eq!(r.body_json(), json!({"env": {}, "type": "object"}), "{r:?}");
    let r = run_js(
        src,
        &[
            "--env",
            "API_URL=https://api.example.com",
            "--env",
            "EMPTY=",
            "--env",
            "EQ=a=b",
        ],
    );
    assert_eq!(
        r.body_json(),
        json!({"atLoad": "https://api.example.com",
               "env": {"API_URL": "https://api.example.com", "EMPTY": "", "EQ": "a=b"},
               "type": "object"}),
        "{r:?}"
    );
    let r = run_js(src, &["--env", "novalue"]);
    r.usage_error();
}
