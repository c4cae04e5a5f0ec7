//! Issue 13 through `cs-invoker-pool serve` (the codeQ emulator over real gRPC, a real
//! `redis-server`) and `cs-invoker-pool run`: secrets by name and their redaction in everything
//! stored, published and printed; W3C trace context from `trigger.source` to `cs.results`, a
//! publish, an outgoing fetch (a loopback server started here), the ActivationRecord and
//! `ctx.traceparent`.

#[macro_use]
mod support;

use codeq_emulator::{Emulator, EnqueueOptions, TaskStatus};
use redis::Commands;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Command;
use std::sync::{Arc, Mutex};
use support::serve::*;

const SECRET: &str = "sk_live_4242abcd";
/// Node 20: `Buffer.from("sk_live_4242abcd").toString("base64")`.
const SECRET_B64: &str = "c2tfbGl2ZV80MjQyYWJjZA==";
const REDACTED: &str = "[REDACTED:kv:payments/stripe_key]";

const SECRET_FN: &str = r#"
export default (e) => {
  const k = cs.secrets.get("stripe_key");
  const full = cs.secrets.get("kv:payments/stripe_key");
  console.log("the key is", k);
  cs.log.info({ auth: "Basic " + Buffer.from(k).toString("base64") });
  let denied = null;
  try { cs.secrets.get("payments/other"); } catch (err) { denied = err.message; }
  if (e.throw) throw new Error("rejected key " + k);
  return { body: JSON.stringify({ same: k === full, len: k.length, denied }) };
};
"#;

/// Every text the activation left in the store: record, status, log chunks, correlation key.
fn stored_texts(raw: &mut redis::Connection, aid: &str) -> String {
    let keys: Vec<String> = raw.keys(format!("cs:*:{T}:*{aid}*")).unwrap();
    let mut rid_keys: Vec<String> = raw.keys(format!("cs:req:{T}:req-{}*", &aid[..8])).unwrap();
    let mut all = keys;
    all.append(&mut rid_keys);
    assert!(!all.is_empty(), "nothing stored for {aid}");
    let mut out = String::new();
    for k in all {
        let t: String = raw.get(&k).unwrap_or_default();
        out.push_str(&t);
        out.push('\n');
    }
    out
}

fn log_text(raw: &mut redis::Connection, aid: &str) -> String {
    let mut out = String::new();
    for n in 0.. {
        let chunk: Option<String> = raw.get(format!("cs:log:{T}:{aid}:{n:012}")).unwrap();
        match chunk {
            Some(c) => out.push_str(&c),
            None => break,
        }
    }
    out
}

fn secret_config() -> Value {
    json!({"secrets": ["kv:payments/stripe_key"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_read_by_name_and_redacted_in_everything_kept_or_sent() {
    let redis = server!();
    let mut raw = redis.raw();
    let m = manifest(5000, 8, json!({}));
    publish_version(&mut raw, T, NS, "pay", 1, SECRET_FN, &m, &secret_config());
    let _: () = raw
        .set(format!("cs:secret:{T}:payments/stripe_key"), SECRET)
        .unwrap();
    // Another tenant's secret under the same path is never this tenant's.
    let _: () = raw
        .set(
            "cs:secret:other-tenant:payments/stripe_key",
            "other-value-9999",
        )
        .unwrap();
    // Version 2 declares a secret nobody set; version 3 an unknown provider; version 4 a path
    // that tries to leave the tenant.
    publish_version(
        &mut raw,
        T,
        NS,
        "pay",
        2,
        SECRET_FN,
        &m,
        &json!({"secrets": ["kv:payments/missing"]}),
    );
    publish_version(
        &mut raw,
        T,
        NS,
        "pay",
        3,
        SECRET_FN,
        &m,
        &json!({"secrets": ["vault:payments/stripe_key"]}),
    );
    publish_version(
        &mut raw,
        T,
        NS,
        "pay",
        4,
        SECRET_FN,
        &m,
        &json!({"secrets": ["kv:../other-tenant/payments/stripe_key"]}),
    );
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(&emu, &redis, "w-secrets", "");
    d.wait_ready().await;

    // Read, logged (plain and base64), an undeclared name denied.
    let (aid, p) = invocation_with("pay", json!({"version": 1}), "api", json!({}));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let t = finished(&emu, &id, 20).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", d.log());
    let body: Value = serde_json::from_str(
        t.result_value().unwrap()["result"]["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["same"], json!(true));
    assert_eq!(body["len"], json!(SECRET.len()));
    let denied = body["denied"].as_str().unwrap();
    assert!(
        denied.starts_with("CS_RUNTIME_CAPABILITY_DENIED:") && denied.contains("payments/other"),
        "{denied}"
    );
    let logs = log_text(&mut raw, &aid);
    assert_eq!(
        logs,
        format!("[info] the key is {REDACTED}\n[info] {{\"auth\":\"Basic {REDACTED}\"}}\n"),
    );

    // Thrown: the error is redacted in the answer, the published result, the record.
    let (aid2, p) = invocation_with("pay", json!({"version": 1}), "api", json!({"throw": true}));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let t = finished(&emu, &id, 20).await;
    assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
    let err = t.error.clone().unwrap_or_default();
    assert!(
        err.starts_with("Exception: Error: rejected key [REDACTED:kv:payments/stripe_key]"),
        "{err}"
    );
    let published = results_for(&emu, &aid2);
    assert_eq!(published.len(), 1);
    let perr = &published[0]["body"]["error"];
    assert!(
        perr["message"].as_str().unwrap().contains(REDACTED),
        "{perr}"
    );
    assert!(perr["stack"].as_str().is_some(), "{perr}");

    let mut kept = stored_texts(&mut raw, &aid) + &stored_texts(&mut raw, &aid2);
    kept.push_str(&serde_json::to_string(&published).unwrap());
    kept.push_str(&err);
    kept.push_str(&d.log());
    for leak in [
        SECRET,
        SECRET_B64,
        "c2tfbGl2ZV80MjQyYWJjZA",
        "other-value-9999",
    ] {
        assert!(!kept.contains(leak), "{leak} leaked:\n{kept}");
    }
    assert!(kept.contains(REDACTED));

    // Two log lines and the message (the stack may hold it too) were redacted.
    let (_, metrics) = d.get("/metrics").unwrap();
    let n: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cs_invoker_secret_redactions_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(n >= 3, "{n}");
    for want in [
        "cs_invoker_host_calls_total{kind=\"secrets.get\",outcome=\"ok\"} 4\n",
        "cs_invoker_capability_denied_total{kind=\"secrets.get\"} 2\n",
    ] {
        assert!(metrics.contains(want), "{want}: {metrics}");
    }

    // Terminal ManifestErrors naming the secret or the provider, never a value.
    for (version, want) in [
        (
            2,
            "secret \"kv:payments/missing\" declared in config.secrets is not set",
        ),
        (3, "unknown secret provider \"vault\""),
        (4, "may not contain '..'"),
    ] {
        let (_, p) = invocation_with("pay", json!({"version": version}), "api", json!({}));
        let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
        let t = finished(&emu, &id, 20).await;
        assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
        let e = t.error.unwrap_or_default();
        assert!(
            e.starts_with("ManifestError: ") && e.contains(want),
            "v{version}: {e}"
        );
        assert!(!e.contains(SECRET) && !e.contains("other-value"), "{e}");
    }
}

#[test]
fn run_secret_is_given_to_the_function_and_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.js");
    std::fs::write(
        &f,
        "export default () => { const s = cs.secrets.get('API_TOKEN'); console.log('tok', s, \
         btoa(s)); throw new Error('bad ' + s); };",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cs-invoker-pool"))
        .arg("run")
        .arg(&f)
        .args(["--secret", "API_TOKEN=tok-7788-zz"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    // Node 20: btoa("tok-7788-zz") === "dG9rLTc3ODgteno="
    for leak in ["tok-7788-zz", "dG9rLTc3ODgteno"] {
        assert!(
            !stdout.contains(leak) && !stderr.contains(leak),
            "{leak}: {stdout}\n{stderr}"
        );
    }
    assert!(
        stderr.contains("[info] tok [REDACTED:API_TOKEN] [REDACTED:API_TOKEN]"),
        "{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        result["error"]["message"],
        json!("Error: bad [REDACTED:API_TOKEN]")
    );
    // An undeclared name is denied, catchably.
    std::fs::write(
        &f,
        "export default () => { try { cs.secrets.get('NOPE'); } catch (e) { return e.message; } };",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cs-invoker-pool"))
        .arg("run")
        .arg(&f)
        .output()
        .unwrap();
    let result: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let message: String = serde_json::from_str(result["result"]["body"].as_str().unwrap()).unwrap();
    assert!(
        message.starts_with("CS_RUNTIME_CAPABILITY_DENIED: cs.secrets.get(\"NOPE\")"),
        "{result}"
    );
}

/// A one-request-at-a-time HTTP/1.1 server on loopback that keeps the request heads it saw.
fn header_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let _ = r.get_mut().set_nonblocking(true);
            let mut rest = [0u8; 1024];
            let _ = r.read(&mut rest);
            keep.lock().unwrap().push(head);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, seen)
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// The `traceparent` parts (trace id, parent span id, flags), checked for W3C shape.
fn parts(tp: &str) -> (String, String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "{tp}");
    assert_eq!(p[0], "00", "{tp}");
    assert_eq!((p[1].len(), p[2].len(), p[3].len()), (32, 16, 2), "{tp}");
    (p[1].into(), p[2].into(), p[3].into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_in_is_the_parent_of_everything_the_activation_causes() {
    let redis = server!();
    let mut raw = redis.raw();
    let (port, seen) = header_server();
    let src = r#"
export default (e, ctx) => {
  const r = cs.http.fetch(e.url, { headers: { traceparent: "00-" + "1".repeat(32) + "-" + "2".repeat(16) + "-01" } });
  cs.codeq.publish("orders.created", { n: 1 });
  return { body: JSON.stringify({ tp: ctx.traceparent, status: r.status }) };
};
"#;
    let m = manifest(
        5000,
        8,
        json!({"http": {"allowHosts": ["127.0.0.1"]},
               "codeq": {"publishTopics": ["orders.*"]}}),
    );
    publish_version(&mut raw, T, NS, "traced", 1, src, &m, &json!({}));
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(
        &emu,
        &redis,
        "w-trace",
        "  http_fetch:\n    allow_private_networks: true\n",
    );
    d.wait_ready().await;

    let traced = |source: Value| {
        let (aid, p) = invocation_with(
            "traced",
            json!({"version": 1}),
            "http",
            json!({"url": format!("http://127.0.0.1:{port}/x")}),
        );
        let mut env: Value = serde_json::from_slice(&p).unwrap();
        env["body"]["trigger"]["source"] = source;
        (aid, serde_json::to_vec(&env).unwrap())
    };
    let (aid, p) = traced(json!({
        "traceparent": format!("00-{TRACE_ID}-{PARENT}-01"),
        "tracestate": "vendor=abc",
    }));
    let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let t = finished(&emu, &id, 20).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", d.log());
    let body: Value = serde_json::from_str(
        t.result_value().unwrap()["result"]["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["status"], json!(200));

    // ctx.traceparent: the same trace, a new span (cs.invoke), the producer's flags.
    let ctx_tp = body["tp"].as_str().unwrap().to_string();
    let (trace, span, flags) = parts(&ctx_tp);
    assert_eq!(trace, TRACE_ID);
    assert_ne!(span, PARENT);
    assert_eq!(flags, "01");

    // cs.results and the publish carry it in CreateTask fields 10 and 11.
    let results: Vec<_> = emu
        .tasks("cs.results")
        .into_iter()
        .filter(|t| {
            t.payload_value()
                .is_some_and(|p| p["body"]["activation_id"] == json!(aid))
        })
        .collect();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].trace_parent, ctx_tp);
    assert_eq!(results[0].trace_state, "vendor=abc");
    let publishes = emu.tasks("orders.created");
    assert_eq!(publishes.len(), 1);
    assert_eq!(publishes[0].trace_parent, ctx_tp);
    assert_eq!(publishes[0].trace_state, "vendor=abc");

    // The fetch sent it (the function's own traceparent replaced).
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let h = heads[0].to_ascii_lowercase();
    assert!(h.contains(&format!("traceparent: {ctx_tp}\r\n")), "{h}");
    assert!(h.contains("tracestate: vendor=abc\r\n"), "{h}");
    assert!(!h.contains("1111111111"), "{h}");

    // The record keeps the trace id.
    let rec: String = raw.get(format!("cs:act:{T}:{aid}:meta")).unwrap();
    let rec: Value = serde_json::from_str(&rec).unwrap();
    assert_eq!(rec["trace_id"], json!(TRACE_ID));

    // The log: every line one JSON object with the standard fields; the activation's line
    // names it and its trace.
    let log = d.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{log}");
    for l in &lines {
        assert!(
            l["ts_ms"].as_u64().is_some_and(|t| t > 1_700_000_000_000),
            "{l}"
        );
        assert!(
            ["info", "warn", "error", "debug"].contains(&l["level"].as_str().unwrap()),
            "{l}"
        );
        assert_eq!(l["service"], json!("cs-invoker-pool"), "{l}");
    }
    let line = lines
        .iter()
        .find(|l| l["activation_id"] == json!(aid) && l["message"] == json!("activation finished"))
        .unwrap_or_else(|| panic!("no line for {aid}:\n{log}"));
    assert_eq!(line["trace_id"], json!(TRACE_ID), "{line}");
    assert_eq!(line["tenant"], json!(T), "{line}");
    assert_eq!(line["namespace"], json!(NS), "{line}");
    assert_eq!(line["function"], json!("traced"), "{line}");
    assert!(
        line["request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req-")),
        "{line}"
    );

    // Absent or malformed: a new trace, never an error.
    for source in [
        json!({}),
        json!({"traceparent": "00-zz-bad", "tracestate": "k=v"}),
    ] {
        let (aid, p) = traced(source.clone());
        let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
        let t = finished(&emu, &id, 20).await;
        assert_eq!(t.status, TaskStatus::Completed, "{source}: {t:?}");
        let body: Value = serde_json::from_str(
            t.result_value().unwrap()["result"]["body"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let (trace, _, _) = parts(body["tp"].as_str().unwrap());
        assert_ne!(trace, TRACE_ID);
        let rec: String = raw.get(format!("cs:act:{T}:{aid}:meta")).unwrap();
        let rec: Value = serde_json::from_str(&rec).unwrap();
        assert_eq!(rec["trace_id"], json!(trace));
        let r: Vec<_> = emu
            .tasks("cs.results")
            .into_iter()
            .filter(|t| {
                t.payload_value()
                    .is_some_and(|p| p["body"]["activation_id"] == json!(aid))
            })
            .collect();
        assert_eq!(parts(&r[0].trace_parent).0, trace);
        assert_eq!(r[0].trace_state, "");
    }
    let (_, metrics) = d.get("/metrics").unwrap();
    assert!(
        metrics.contains("\ncs_invoker_traceparent_malformed_total 1\n"),
        "{metrics}"
    );
}

/// The metric names a PromQL expression reads: every `cs_…` identifier, with a histogram's
/// `_bucket`/`_sum`/`_count` suffix kept (the scrape has those sample names).
fn queried_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let starts = expr[i..].starts_with("cs_") && (i == 0 || !is_ident(b[i - 1]));
        if starts {
            let end = (i..b.len()).find(|&j| !is_ident(b[j])).unwrap_or(b.len());
            out.push(expr[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Label names an expression groups by or selects on (`by (a, b)`, `{a="…"}`), without `le`.
fn queried_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in expr.split("by (").skip(1) {
        let inner = part.split(')').next().unwrap_or("");
        out.extend(inner.split(',').map(|s| s.trim().to_string()));
    }
    for part in expr.split('{').skip(1) {
        let inner = part.split('}').next().unwrap_or("");
        for m in inner.split(',') {
            if let Some((name, _)) = m.split_once(['=', '!']) {
                out.push(name.trim().trim_end_matches('~').to_string());
            }
        }
    }
    out.retain(|l| !l.is_empty() && l != "le");
    out
}

/// The label names of the sample lines of `name` in an exposition.
fn sample_labels(scrape: &str, name: &str) -> Option<Vec<String>> {
    let line = scrape.lines().find(|l| {
        l.strip_prefix(name)
            .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
    })?;
    let rest = &line[name.len()..];
    let Some(inner) = rest
        .strip_prefix('{')
        .and_then(|r| r.split_once('}'))
        .map(|x| x.0)
    else {
        return Some(Vec::new());
    };
    Some(
        inner
            .split("\",")
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_the_documented_names_labels_a_series_cap_and_the_dashboard_matches() {
    let redis = server!();
    let mut raw = redis.raw();
    let m = manifest(5000, 8, json!({}));
    publish_version(
        &mut raw,
        T,
        NS,
        "slowpoke",
        1,
        "export default () => { const end = Date.now() + 1500; while (Date.now() < end) {} };",
        &m,
        &json!({}),
    );
    for f in ["f1", "f2", "f3"] {
        publish_version(
            &mut raw,
            T,
            NS,
            f,
            1,
            "export default () => 'ok';",
            &m,
            &json!({}),
        );
    }
    let emu = Emulator::start(emulator_config()).await.unwrap();
    let mut d = Daemon::start(
        &emu,
        &redis,
        "w-metrics",
        "  metrics:\n    max_function_series: 2\n",
    );
    d.wait_ready().await;
    let fl = |f: &str| format!("tenant=\"{T}\",namespace=\"{NS}\",function=\"{f}\",version=\"1\"");

    // In flight, by function, while it runs.
    let (_, p) = invocation_with("slowpoke", json!({"version": 1}), "http", json!({}));
    let slow = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    let want = format!("cs_invoker_inflight{{{}}} 1\n", fl("slowpoke"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let during = loop {
        let (_, text) = d.get("/metrics").unwrap();
        if text.contains(&want) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {want:?} in:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        finished(&emu, &slow, 20).await.status,
        TaskStatus::Completed
    );
    for f in ["f1", "f2", "f3"] {
        let (_, p) = invocation_with(f, json!({"version": 1}), "api", json!({}));
        let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
        assert_eq!(finished(&emu, &id, 20).await.status, TaskStatus::Completed);
    }
    let (code, text) = d.get("/metrics").unwrap();
    assert_eq!(code, 200);
    let other = "tenant=\"other\",namespace=\"other\",function=\"other\",version=\"other\"";
    for want in [
        format!(
            "cs_invocations_total{{{},trigger=\"http\",status=\"success\"}} 1\n",
            fl("slowpoke")
        ),
        format!(
            "cs_invocations_total{{{},trigger=\"api\",status=\"success\"}} 1\n",
            fl("f1")
        ),
        // f2 and f3 are over the cap of 2 function series: folded, counted.
        format!("cs_invocations_total{{{other},trigger=\"api\",status=\"success\"}} 2\n"),
        format!("cs_invocation_duration_ms_count{{{other},trigger=\"api\"}} 2\n"),
        format!(
            "cs_invocation_duration_ms_bucket{{le=\"+Inf\",{},trigger=\"http\"}} 1\n",
            fl("slowpoke")
        ),
        "cs_invoker_metrics_overflow_total 2\n".into(),
        "cs_invoker_tasks_total{outcome=\"completed\"} 4\n".into(),
        "cs_invoker_queue_lag_ms_count{topic=\"cs.invoke\"} 4\n".into(),
        // (how many of the four were cold depends on the pool's stems; at least the first)
        "cs_invoker_cold_starts_total{runtime=\"cs-js\"} ".into(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("function=\"f2\"") && !text.contains("function=\"f3\""));
    // Nothing in flight any more: the gauge has no series left.
    assert!(!text.contains("cs_invoker_inflight{"), "{text}");

    // Every series the shipped dashboard queries is exported, with the labels it uses.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/grafana/cs-invoker-pool.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<String> = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    assert!(exprs.len() >= 15, "{exprs:?}");
    // The gauge of what runs has series only while something runs: both scrapes count.
    let text = format!("{during}\n{text}");
    let mut checked = 0;
    for e in &exprs {
        for name in queried_names(e) {
            let family = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "the dashboard queries {name} ({e}), which /metrics does not export"
            );
            // Families with samples now: the labels the query uses are theirs.
            if let Some(have) = sample_labels(&text, &name) {
                for l in queried_labels(e) {
                    assert!(
                        have.contains(&l),
                        "{name} has no label {l} ({e}); it has {have:?}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} queried series had samples");
}

mod otlp {
    //! A small OTLP receiver: the collector's gRPC trace service (tonic) and its HTTP/protobuf
    //! endpoint (`POST /v1/traces`, axum), both keeping what they receive.
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub struct Received(pub Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

    #[tonic::async_trait]
    impl TraceService for Received {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0.lock().unwrap().push(request.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        }
    }

    /// Starts the gRPC receiver; its address.
    pub async fn grpc(received: Received) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(received))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
                .await
                .unwrap();
        });
        format!("http://{addr}")
    }

    /// Starts the HTTP/protobuf receiver; the URL of its `/v1/traces`.
    pub async fn http(received: Received) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: bytes::Bytes| {
                let received = received.clone();
                async move {
                    match ExportTraceServiceRequest::decode(body) {
                        Ok(r) => {
                            received.0.lock().unwrap().push(r);
                            (
                                [("content-type", "application/x-protobuf")],
                                ExportTraceServiceResponse {
                                    partial_success: None,
                                }
                                .encode_to_vec(),
                            )
                        }
                        Err(_) => ([("content-type", "text/plain")], b"bad".to_vec()),
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        format!("http://{addr}/v1/traces")
    }
}

/// One received span: (name, span id, parent span id, attributes as text, service name).
type ReceivedSpan = (String, String, String, Vec<(String, String)>, String);

/// Every span received for `trace_id`.
fn received_spans(r: &otlp::Received, trace_id: &str) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for req in r.0.lock().unwrap().iter() {
        for rs in &req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|res| res.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    if hex::encode(&s.trace_id) != trace_id {
                        continue;
                    }
                    let attrs = s
                        .attributes
                        .iter()
                        .map(|a| {
                            (
                                a.key.clone(),
                                a.value
                                    .as_ref()
                                    .map(|v| format!("{:?}", v.value))
                                    .unwrap_or_default(),
                            )
                        })
                        .collect();
                    out.push((
                        s.name.clone(),
                        hex::encode(&s.span_id),
                        hex::encode(&s.parent_span_id),
                        attrs,
                        service.clone(),
                    ));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_grpc_and_http_with_their_parents() {
    let redis = server!();
    let mut raw = redis.raw();
    publish_version(
        &mut raw,
        T,
        NS,
        "exported",
        1,
        "export default (e, ctx) => ({ body: ctx.traceparent });",
        &manifest(5000, 8, json!({})),
        &json!({}),
    );
    let emu = Emulator::start(emulator_config()).await.unwrap();
    for protocol in ["grpc", "http/protobuf"] {
        let received = otlp::Received::default();
        let endpoint = if protocol == "grpc" {
            otlp::grpc(received.clone()).await
        } else {
            otlp::http(received.clone()).await
        };
        let extra = format!(
            "  tracing:\n    enabled: true\n    endpoint: \"{endpoint}\"\n    protocol: \
             {protocol}\n    service_name: invoker-under-test\n"
        );
        let mut d = Daemon::start(&emu, &redis, &format!("w-otlp-{}", protocol.len()), &extra);
        d.wait_ready().await;
        let trace_id = format!("{:032x}", rand_u128());
        let (aid, p) = invocation_with("exported", json!({"version": 1}), "http", json!({}));
        let mut env: Value = serde_json::from_slice(&p).unwrap();
        env["body"]["trigger"]["source"] =
            json!({"traceparent": format!("00-{trace_id}-{PARENT}-01")});
        let id = emu.enqueue(
            "cs.invoke",
            serde_json::to_vec(&env).unwrap(),
            EnqueueOptions::default(),
        );
        let t = finished(&emu, &id, 20).await;
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}\n{}", d.log());
        let ctx_tp = t.result_value().unwrap()["result"]["body"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, invoke_span, _) = parts(&ctx_tp);

        let want = [
            "cs.load_bundle",
            "cs.store.write_running",
            "cs.wait_for_child",
            "cs.execute",
            "cs.store.write_terminal",
            "cs.publish",
        ];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let spans = loop {
            let spans = received_spans(&received, &trace_id);
            if spans.len() > want.len() {
                break spans;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{protocol}: spans {spans:?}\n{}",
                d.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let root = spans
            .iter()
            .find(|s| s.0 == "cs.invoke")
            .unwrap_or_else(|| panic!("{protocol}: no cs.invoke in {spans:?}"));
        assert_eq!(
            root.1, invoke_span,
            "{protocol}: the span ctx.traceparent names"
        );
        assert_eq!(root.2, PARENT, "{protocol}: child of the producer's span");
        assert!(
            root.4.contains("invoker-under-test"),
            "{protocol}: {}",
            root.4
        );
        let attr = |k: &str| {
            root.3
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{protocol}: no {k} in {:?}", root.3))
        };
        assert!(attr("activation_id").contains(&aid));
        assert!(attr("function").contains("exported"));
        assert!(attr("trigger.type").contains("http"));
        assert!(attr("tenant").contains(T));
        assert!(attr("namespace").contains(NS));
        assert!(attr("status").contains("success"));
        assert!(attr("version").contains('1'));
        attr("cold_start");
        for name in want {
            let s = spans
                .iter()
                .find(|s| s.0 == name)
                .unwrap_or_else(|| panic!("{protocol}: no {name} in {spans:?}"));
            assert_eq!(
                s.2, invoke_span,
                "{protocol}: {name} is a child of cs.invoke"
            );
        }
        drop(d);
    }

    // A collector that is not there: activations are not slowed or failed; the drops count.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let extra = format!(
        "  tracing:\n    enabled: true\n    endpoint: \"http://127.0.0.1:{closed}\"\n    queue_size: 4\n"
    );
    let d = Daemon::start(&emu, &redis, "w-otlp-down", &extra);
    let mut d = d;
    d.wait_ready().await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let (_, p) = invocation_with("exported", json!({"version": 1}), "http", json!({}));
        let id = emu.enqueue("cs.invoke", p, EnqueueOptions::default());
        assert_eq!(finished(&emu, &id, 20).await.status, TaskStatus::Completed);
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, m) = d.get("/metrics").unwrap();
        let dropped: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("cs_invoker_trace_spans_dropped_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // 3 activations × 7 spans, through a queue of 4 into a refused connection.
        if dropped >= 21 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dropped {dropped}\n{}",
            d.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn rand_u128() -> u128 {
    u128::from_be_bytes(*uuid::Uuid::new_v4().as_bytes())
}
