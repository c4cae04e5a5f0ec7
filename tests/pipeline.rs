//! The pipeline (contract §1) end to end against a real `redis-server` and the real pool: functions
//! are published the way the Sous control plane does it (version meta, bundle, alias keys), the
//! request arrives as the envelope bytes of a codeQ task, and what is written to the store and
//! handed to the publisher is checked with a raw client, TTLs included.

#[macro_use]
mod support;

use cs_invoker_pool::host::http::{HttpConfig, HttpFetcher};
use cs_invoker_pool::host::service::ServiceHost;
use cs_invoker_pool::pipeline::{Answer, Pipeline, PipelineConfig, RetryCause};
use cs_invoker_pool::pool::{Pool, PoolConfig};
use cs_invoker_pool::sandbox::{Sandbox, SandboxPolicy};
use cs_invoker_pool::store::{RedisStore, StoreConfig};
use cs_invoker_pool::testing::MemoryPublisher;
use redis::Commands;
use sandbox_proto::bundle;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::redis_server::RedisServer;
use support::{child_bin, now_ms};

const T: &str = "t_acme01";
const NS: &str = "payments";
const FN: &str = "reconcile";

type TestPipeline =
    Pipeline<RedisStore, MemoryPublisher, Pool, ServiceHost<RedisStore, MemoryPublisher>>;

struct Harness {
    pipeline: Arc<TestPipeline>,
    publisher: Arc<MemoryPublisher>,
    pool: Arc<Pool>,
    raw: redis::Connection,
}

impl Harness {
    async fn new(server: &RedisServer, test: &str, cfg: PipelineConfig) -> Harness {
        Self::with_store_addr(server, &server.addr(), test, cfg).await
    }

    /// The pipeline's store connects to `addr` (a proxy in front of `server`); the raw client
    /// goes to the server itself.
    async fn with_store_addr(
        server: &RedisServer,
        addr: &str,
        test: &str,
        cfg: PipelineConfig,
    ) -> Harness {
        let store = RedisStore::connect(StoreConfig {
            addr: addr.to_string(),
            connect_timeout: Duration::from_millis(300),
            response_timeout: Duration::from_millis(300),
            ..StoreConfig::default()
        })
        .await
        .expect("store connects");
        let policy = SandboxPolicy {
            cgroup_prefix: format!("cs-test-pipeline-{test}"),
            ..SandboxPolicy::default()
        };
        let sandbox = Sandbox::prepare(&policy).unwrap_or_else(|e| panic!("{e}"));
        let mut pcfg = PoolConfig::new(child_bin(), Arc::new(sandbox));
        pcfg.prewarm = 1;
        pcfg.max_children = 6;
        let pool = Arc::new(Pool::start(pcfg).expect("pool starts"));
        let publisher = Arc::new(MemoryPublisher::default());
        let store = Arc::new(store);
        let host = ServiceHost::new(
            store.clone(),
            publisher.clone(),
            Arc::new(HttpFetcher::new(HttpConfig::default())),
        );
        let pipeline = Arc::new(Pipeline::new(
            cfg,
            store,
            publisher.clone(),
            pool.clone(),
            Arc::new(host),
        ));
        Harness {
            pipeline,
            publisher,
            pool,
            raw: server.raw(),
        }
    }

    /// Publishes version `v` of `FN` as the control plane does: bundle, meta with its sha256,
    /// and optionally an alias pointing at it.
    fn publish(&mut self, v: u64, source: &str, manifest: &Value, alias: Option<&str>) -> String {
        let mut files = BTreeMap::new();
        files.insert("function.js".to_string(), source.as_bytes().to_vec());
        files.insert(
            "manifest.json".to_string(),
            manifest.to_string().into_bytes(),
        );
        let tar = bundle::pack(&files).expect("pack");
        let sha = bundle::sha256_hex(&tar);
        let prefix = format!("cs:fn:{T}:{NS}:{FN}");
        let _: () = self
            .raw
            .set(format!("{prefix}:ver:{v}:bundle"), &tar)
            .unwrap();
        let meta = json!({"version": v, "sha256": sha, "config": {}, "published_at_ms": 1_730_000_000_000u64});
        let _: () = self
            .raw
            .set(format!("{prefix}:ver:{v}:meta"), meta.to_string())
            .unwrap();
        if let Some(a) = alias {
            let rec = json!({"alias": a, "version": v, "updated_at_ms": 1_730_000_000_001u64});
            let _: () = self
                .raw
                .set(format!("{prefix}:alias:{a}"), rec.to_string())
                .unwrap();
        }
        sha
    }

    fn get(&mut self, key: &str) -> Option<String> {
        self.raw.get(key).unwrap()
    }

    fn json(&mut self, key: &str) -> Value {
        let s = self.get(key).unwrap_or_else(|| panic!("{key} is missing"));
        serde_json::from_str(&s).unwrap()
    }

    fn ttl(&mut self, key: &str) -> i64 {
        redis::cmd("TTL").arg(key).query(&mut self.raw).unwrap()
    }

    fn keys(&mut self, pattern: &str) -> Vec<String> {
        let mut k: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.raw)
            .unwrap();
        k.sort();
        k
    }

    fn record(&mut self, aid: &str) -> Value {
        self.json(&format!("cs:act:{T}:{aid}:meta"))
    }
}

fn manifest(timeout_ms: u64, max_concurrency: u32, caps: Value) -> Value {
    json!({
        "schema": "cs.function.script.v1", "runtime": "cs-js", "entry": "function.js",
        "handler": "default",
        "limits": {"timeoutMs": timeout_ms, "memoryMb": 64, "maxConcurrency": max_concurrency},
        "capabilities": caps,
    })
}

fn kv_caps() -> Value {
    json!({"kv": {"prefixes": ["runs:", "data:"], "ops": ["get", "set", "del"]},
           "codeq": {"publishTopics": ["orders.*"]}})
}

fn request(aid: &str, reference: Value, deadline_ms: u64, event: Value) -> Value {
    json!({
        "activation_id": aid,
        "request_id": format!("req-{}", &aid[..8]),
        "tenant": T,
        "namespace": NS,
        "ref": reference,
        "trigger": {"type": "http", "source": {"path": "/reconcile"}},
        "principal": {"sub": "user-1", "roles": ["admin"]},
        "deadline_ms": deadline_ms,
        "event": event,
    })
}

fn envelope(body: &Value) -> Vec<u8> {
    json!({
        "schema": "cs.envelope.v1", "id": format!("msg_{}", uuid::Uuid::new_v4()),
        "ts_ms": now_ms(), "tenant": T, "type": "InvocationRequest", "body": body,
    })
    .to_string()
    .into_bytes()
}

fn aid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn in_a_minute() -> u64 {
    now_ms() + 60_000
}

/// Counts its runs in cs.kv (`runs:{activation}`), logs, and answers 201 with the event.
const COUNTING: &str = r#"
export default async function handle(event, ctx) {
  const key = "runs:" + ctx.activation_id;
  const n = (cs.kv.get(key) || 0) + 1;
  cs.kv.set(key, n);
  console.log("run", n, "of", ctx.function, "v" + ctx.version, "alias", ctx.ref.alias);
  cs.log.warn({ sub: ctx.principal.sub });
  if (event.sleepMs) { const end = Date.now() + event.sleepMs; while (Date.now() < end) {} }
  return { statusCode: 201, headers: { "x-run": String(n) }, body: JSON.stringify(event) };
}
"#;

fn runs(h: &mut Harness, aid: &str) -> u64 {
    h.get(&format!("cs:kv:{T}:runs:{aid}"))
        .map(|s| s.parse().unwrap())
        .unwrap_or(0)
}

fn completed(a: &Answer) -> &sandbox_proto::messages::InvocationResult {
    match a {
        Answer::Completed(r) => r,
        other => panic!("expected Completed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_function_runs_by_alias_and_everything_written_is_as_spec_says() {
    let server = server!();
    let mut h = Harness::new(&server, "alias", PipelineConfig::default()).await;
    h.publish(3, COUNTING, &manifest(5000, 4, kv_caps()), Some("prod"));
    let a = aid();
    let req = request(
        &a,
        json!({"function": FN, "alias": "prod"}),
        in_a_minute(),
        json!({"order": 7}),
    );
    let before = now_ms();
    let p = h.pipeline.process(&envelope(&req)).await;
    let r = completed(&p.answer).clone();
    assert_eq!(r.status, sandbox_proto::messages::Status::Success);
    let result = r.result.clone().unwrap();
    assert_eq!(result.status_code, 201);
    assert_eq!(result.body, r#"{"order":7}"#);
    assert_eq!(result.headers.get("x-run").map(String::as_str), Some("1"));
    let summary = p.activation.unwrap();
    assert_eq!(summary.version, Some(3));
    assert!(summary.executed && !summary.republished);

    // The ActivationRecord (contract §3) with the resolved version and the operator fields.
    let rec = h.record(&a);
    assert_eq!(rec["activation_id"], json!(a));
    assert_eq!(rec["request_id"], req["request_id"]);
    assert_eq!(rec["tenant"], json!(T));
    assert_eq!(rec["namespace"], json!(NS));
    assert_eq!(rec["function"], json!(FN));
    assert_eq!(
        rec["ref"],
        json!({"function": FN, "alias": "prod", "version": 3})
    );
    assert_eq!(
        rec["trigger"],
        json!({"type": "http", "source": {"path": "/reconcile"}})
    );
    assert_eq!(rec["status"], json!("success"));
    assert_eq!(rec["result_truncated"], json!(false));
    assert_eq!(rec["result"]["statusCode"], json!(201));
    assert!(rec.get("error").is_none());
    let (start, end) = (
        rec["start_ms"].as_u64().unwrap(),
        rec["end_ms"].as_u64().unwrap(),
    );
    assert!(start >= before && end >= start, "{rec}");
    assert_eq!(rec["duration_ms"].as_u64().unwrap(), r.duration_ms);
    assert!(
        rec["cold_start"].is_boolean() && rec["wait_ms"].is_u64(),
        "{rec}"
    );
    assert_eq!(rec["host_calls"]["count"], json!(2), "{rec}");
    assert!(rec["memory_peak_bytes"].as_u64().unwrap_or(1) > 0);
    let (meta_ttl, status_ttl) = (
        h.ttl(&format!("cs:act:{T}:{a}:meta")),
        h.ttl(&format!("cs:act:{T}:{a}:status")),
    );
    assert!(
        (604_790..=604_800).contains(&meta_ttl),
        "meta ttl {meta_ttl}"
    );
    assert!(
        (604_790..=604_800).contains(&status_ttl),
        "status ttl {status_ttl}"
    );
    assert_eq!(
        h.get(&format!("cs:act:{T}:{a}:status")).as_deref(),
        Some("success")
    );

    // Log chunks and their index.
    let chunk_key = format!("cs:log:{T}:{a}:000000000000");
    let chunk = h.get(&chunk_key).expect("log chunk");
    assert_eq!(
        chunk,
        "[info] run 1 of reconcile v3 alias prod\n[warn] {\"sub\":\"user-1\"}\n"
    );
    assert!((604_790..=604_800).contains(&h.ttl(&chunk_key)));
    let index: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("cs:log:{T}:{a}:chunks"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut h.raw)
        .unwrap();
    assert_eq!(index, vec![("0".to_string(), 0.0)]);

    // The correlation key holds the InvocationResult, TTL 600.
    let corr_key = format!("cs:req:{T}:{}:result", req["request_id"].as_str().unwrap());
    assert_eq!(h.json(&corr_key), serde_json::to_value(&r).unwrap());
    assert!((590..=600).contains(&h.ttl(&corr_key)));

    // The published InvocationResult.
    let published = h.publisher.on_topic("cs.results");
    assert_eq!(published.len(), 1);
    let m = &published[0];
    assert_eq!(
        m.idempotency_key.as_deref(),
        Some(format!("result:{a}").as_str())
    );
    assert_eq!(m.payload["schema"], json!("cs.envelope.v1"));
    assert_eq!(m.payload["type"], json!("InvocationResult"));
    assert_eq!(m.payload["tenant"], json!(T));
    assert!(m.payload["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(m.payload["body"], serde_json::to_value(&r).unwrap());

    // By version, too: version 4 without an alias.
    h.publish(
        4,
        "export default () => 'v4'",
        &manifest(5000, 1, json!({})),
        None,
    );
    let b = aid();
    let p = h
        .pipeline
        .process(&envelope(&request(
            &b,
            json!({"function": FN, "version": 4}),
            in_a_minute(),
            json!({}),
        )))
        .await;
    assert_eq!(completed(&p.answer).result.as_ref().unwrap().body, "\"v4\"");
    assert_eq!(h.record(&b)["ref"], json!({"function": FN, "version": 4}));
    // No logs: no chunks, no index.
    assert!(h.keys(&format!("cs:log:{T}:{b}:*")).is_empty());
    h.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_activation_is_republished_and_not_run_again() {
    let server = server!();
    let mut h = Harness::new(&server, "terminal", PipelineConfig::default()).await;
    h.publish(1, COUNTING, &manifest(5000, 4, kv_caps()), Some("prod"));
    let a = aid();
    let payload = envelope(&request(
        &a,
        json!({"function": FN, "alias": "prod"}),
        in_a_minute(),
        json!({}),
    ));
    let first = h.pipeline.process(&payload).await;
    let r1 = completed(&first.answer).clone();
    assert_eq!(runs(&mut h, &a), 1);

    // The correlation key expired (or was lost): the redelivery puts it back without running.
    let corr_key = format!("cs:req:{T}:req-{}:result", &a[..8]);
    let _: () = h.raw.del(&corr_key).unwrap();
    let second = h.pipeline.process(&payload).await;
    assert_eq!(completed(&second.answer), &r1);
    assert!(second.activation.as_ref().unwrap().republished);
    assert!(!second.activation.as_ref().unwrap().executed);
    assert_eq!(runs(&mut h, &a), 1, "the code ran again");
    assert_eq!(h.json(&corr_key), serde_json::to_value(&r1).unwrap());
    // Republished with the same idempotency key: codeQ (here the recording publisher) keeps one.
    assert_eq!(h.publisher.on_topic("cs.results").len(), 1);
    h.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_leftover_is_run_again_and_ends_with_one_terminal_record() {
    let server = server!();
    let mut h = Harness::new(&server, "leftover", PipelineConfig::default()).await;
    h.publish(1, COUNTING, &manifest(5000, 4, kv_caps()), Some("prod"));
    let a = aid();
    // A replica died mid-run: its running record stays behind.
    let _: () = h
        .raw
        .set(format!("cs:act:{T}:{a}:status"), "running")
        .unwrap();
    let _: () = h
        .raw
        .set(
            format!("cs:act:{T}:{a}:meta"),
            json!({"activation_id": a, "request_id": "req-old-run", "tenant": T, "namespace": NS,
                   "function": FN, "ref": {"function": FN, "alias": "prod", "version": 1},
                   "trigger": {"type": "http"}, "status": "running", "start_ms": 1})
            .to_string(),
        )
        .unwrap();
    let payload = envelope(&request(
        &a,
        json!({"function": FN, "alias": "prod"}),
        in_a_minute(),
        json!({}),
    ));
    let p = h.pipeline.process(&payload).await;
    completed(&p.answer);
    assert_eq!(runs(&mut h, &a), 1);
    assert_eq!(h.record(&a)["status"], json!("success"));
    assert_eq!(
        h.get(&format!("cs:act:{T}:{a}:status")).as_deref(),
        Some("success")
    );
    assert_eq!(h.publisher.on_topic("cs.results").len(), 1);
    h.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_deliveries_run_at_most_twice_and_leave_one_result() {
    let server = server!();
    let mut h = Harness::new(&server, "concurrent", PipelineConfig::default()).await;
    h.publish(1, COUNTING, &manifest(5000, 4, kv_caps()), Some("prod"));
    for _ in 0..3 {
        let a = aid();
        let payload = envelope(&request(
            &a,
            json!({"function": FN, "alias": "prod"}),
            in_a_minute(),
            json!({"sleepMs": 100}),
        ));
        let (x, y) = tokio::join!(h.pipeline.process(&payload), h.pipeline.process(&payload));
        let (rx, ry) = (completed(&x.answer).clone(), completed(&y.answer).clone());
        // Both deliveries answer with the one stored result.
        assert_eq!(rx, ry);
        let n = runs(&mut h, &a);
        assert!((1..=2).contains(&n), "ran {n} times");
        let rec = h.record(&a);
        assert_eq!(rec["status"], json!("success"));
        assert_eq!(serde_json::to_value(&rx).unwrap()["result"], rec["result"]);
        let results: Vec<_> = h
            .publisher
            .on_topic("cs.results")
            .into_iter()
            .filter(|m| m.payload["body"]["activation_id"] == json!(a))
            .collect();
        assert_eq!(results.len(), 1);
        assert_eq!(
            results[0].payload["body"],
            serde_json::to_value(&rx).unwrap()
        );
    }
    h.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_dead_lettered_and_write_nothing() {
    let server = server!();
    let mut h = Harness::new(&server, "invalid", PipelineConfig::default()).await;
    h.publish(1, COUNTING, &manifest(5000, 4, kv_caps()), Some("prod"));
    let good = request(
        &aid(),
        json!({"function": FN, "alias": "prod"}),
        in_a_minute(),
        json!({}),
    );
    // Each case is its own request (its own activation id): dead letters are keyed by it.
    let fresh = || {
        let mut r = good.clone();
        r["activation_id"] = json!(aid());
        r
    };
    let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
    let mut missing = fresh();
    missing.as_object_mut().unwrap().remove("principal");
    cases.push((envelope(&missing), "principal: missing"));
    let mut bad_uuid = good.clone();
    bad_uuid["activation_id"] = json!("not-a-uuid");
    cases.push((envelope(&bad_uuid), "activation_id: must be a UUID"));
    let mut bad_trigger = fresh();
    bad_trigger["trigger"]["type"] = json!("email");
    cases.push((envelope(&bad_trigger), "trigger.type"));
    let mut no_ref = fresh();
    no_ref["ref"] = json!({"function": FN});
    cases.push((envelope(&no_ref), "ref: needs ref.alias or ref.version"));
    cases.push((b"{not json".to_vec(), "payload is not JSON"));

    for (i, (payload, why)) in cases.iter().enumerate() {
        let p = h.pipeline.process(payload).await;
        match &p.answer {
            Answer::Failed { error } => {
                assert!(error.starts_with("validation failed: "), "{error}");
                assert!(error.contains(why), "{error} does not name {why}");
            }
            other => panic!("case {i}: expected Failed, got {other:?}"),
        }
        let dlq = h.publisher.on_topic("cs.dlq.invoke");
        assert_eq!(dlq.len(), i + 1);
        let m = &dlq[i].payload;
        assert!(m["body"]["reason"].as_str().unwrap().contains(why));
        // The request exactly as it came.
        let raw: Value = serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
        assert_eq!(m["body"]["request"], raw);
    }
    assert!(h.keys("cs:act:*").is_empty());
    assert!(h.keys("cs:req:*").is_empty());
    assert!(h.publisher.on_topic("cs.results").is_empty());
    assert_eq!(h.keys("cs:kv:*"), Vec::<String>::new(), "no code ran");

    // A redelivery of an invalid request (the replica died between the dead letter and the
    // FAILED answer) dead-letters it once: the dead letter is keyed by the activation id, or
    // by the payload's sha256 when it has none.
    let before = h.publisher.on_topic("cs.dlq.invoke").len();
    for (payload, key) in [
        (
            envelope(&missing),
            format!("dlq:{}", missing["activation_id"].as_str().unwrap()),
        ),
        (
            b"{not json".to_vec(),
            format!("dlq:sha256:{}", bundle::sha256_hex(b"{not json")),
        ),
    ] {
        for _ in 0..2 {
            let p = h.pipeline.process(&payload).await;
            assert!(matches!(p.answer, Answer::Failed { .. }));
        }
        let dlq = h.publisher.on_topic("cs.dlq.invoke");
        assert!(dlq
            .iter()
            .any(|m| m.idempotency_key.as_deref() == Some(key.as_str())));
    }
    assert_eq!(h.publisher.on_topic("cs.dlq.invoke").len(), before);
    h.pool.shutdown().await;
}

/// Issue 10 #10: a re-run activation (its replica died mid-run, the record stayed `running`)
/// publishes each of its `cs.codeq.publish` messages once: their idempotency keys are the
/// activation id and the call's index, the same on every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_activation_publishes_each_message_once() {
    let server = server!();
    let mut h = Harness::new(&server, "republish", PipelineConfig::default()).await;
    let source = r#"export default (event) => {
        cs.codeq.publish("orders.created", { n: 1 });
        cs.codeq.publish("orders.created", { n: 2 });
        return "ok";
    };"#;
    h.publish(1, source, &manifest(5000, 4, kv_caps()), Some("prod"));
    let a = aid();
    let payload = envelope(&request(
        &a,
        json!({"function": FN, "alias": "prod"}),
        in_a_minute(),
        json!({}),
    ));
    completed(&h.pipeline.process(&payload).await.answer);
    // As if the replica had died before its terminal write: the record is `running` again.
    let _: () = h
        .raw
        .set(format!("cs:act:{T}:{a}:status"), "running")
        .unwrap();
    completed(&h.pipeline.process(&payload).await.answer);
    let published = h.publisher.on_topic("orders.created");
    assert_eq!(published.len(), 2, "{published:?}");
    let keys: Vec<_> = published
        .iter()
        .map(|m| m.idempotency_key.clone().unwrap_or_default())
        .collect();
    assert_eq!(keys, [format!("pub:{a}:1"), format!("pub:{a}:2")]);
    h.pool.shutdown().await;
}

/// Runs `req` and returns the error of its terminal record after checking it was published.
async fn terminal_error(h: &mut Harness, req: &Value) -> (String, Value) {
    let a = req["activation_id"].as_str().unwrap().to_string();
    let p = h.pipeline.process(&envelope(req)).await;
    let error = match p.answer {
        Answer::Failed { error } => error,
        other => panic!("expected Failed, got {other:?}"),
    };
    let rec = h.record(&a);
    let published = h
        .publisher
        .on_topic("cs.results")
        .into_iter()
        .find(|m| m.payload["body"]["activation_id"] == json!(a))
        .expect("the result is published");
    assert_eq!(published.payload["body"]["error"], rec["error"]);
    assert_eq!(
        error,
        format!(
            "{}: {}",
            rec["error"]["type"].as_str().unwrap(),
            rec["error"]["message"].as_str().unwrap()
        )
    );
    (error, rec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_before_execution_are_terminal_results() {
    let server = server!();
    let mut h = Harness::new(&server, "before", PipelineConfig::default()).await;
    h.publish(1, COUNTING, &manifest(5000, 4, kv_caps()), Some("prod"));

    let (e, rec) = terminal_error(
        &mut h,
        &request(
            &aid(),
            json!({"function": FN, "alias": "beta"}),
            in_a_minute(),
            json!({}),
        ),
    )
    .await;
    assert!(
        e.starts_with("ValidationError: unknown alias \"beta\""),
        "{e}"
    );
    assert_eq!(rec["status"], json!("error"));
    assert_eq!(rec["ref"], json!({"function": FN, "alias": "beta"}));

    let (e, _) = terminal_error(
        &mut h,
        &request(
            &aid(),
            json!({"function": FN, "version": 9}),
            in_a_minute(),
            json!({}),
        ),
    )
    .await;
    assert!(e.starts_with("ValidationError: unknown version 9"), "{e}");

    // A bundle whose bytes do not match the meta's sha256.
    h.publish(2, COUNTING, &manifest(5000, 4, kv_caps()), None);
    let _: () = h
        .raw
        .append(
            format!("cs:fn:{T}:{NS}:{FN}:ver:2:bundle"),
            b"tampered".as_slice(),
        )
        .unwrap();
    let (e, _) = terminal_error(
        &mut h,
        &request(
            &aid(),
            json!({"function": FN, "version": 2}),
            in_a_minute(),
            json!({}),
        ),
    )
    .await;
    assert!(e.starts_with("BundleError: sha256 mismatch"), "{e}");

    // Bytes that are not a tar at all, with a matching sha256 (the control plane hashed garbage).
    let garbage = b"\x00\x01 this is not a tar archive".repeat(40);
    let sha = bundle::sha256_hex(&garbage);
    let prefix = format!("cs:fn:{T}:{NS}:{FN}");
    let _: () = h
        .raw
        .set(format!("{prefix}:ver:6:bundle"), &garbage)
        .unwrap();
    let meta = json!({"version": 6, "sha256": sha, "config": {}, "published_at_ms": 1u64});
    let _: () = h
        .raw
        .set(format!("{prefix}:ver:6:meta"), meta.to_string())
        .unwrap();
    let (e, _) = terminal_error(
        &mut h,
        &request(
            &aid(),
            json!({"function": FN, "version": 6}),
            in_a_minute(),
            json!({}),
        ),
    )
    .await;
    assert!(e.starts_with("BundleError: "), "{e}");

    // A manifest with an unknown field.
    let mut bad = manifest(5000, 4, json!({}));
    bad["limits"]["cpuMs"] = json!(5);
    h.publish(5, COUNTING, &bad, None);
    let (e, _) = terminal_error(
        &mut h,
        &request(
            &aid(),
            json!({"function": FN, "version": 5}),
            in_a_minute(),
            json!({}),
        ),
    )
    .await;
    assert!(
        e.starts_with("ManifestError: ") && e.contains("cpuMs"),
        "{e}"
    );

    // A deadline already behind us: nothing runs, the activation times out.
    let a = aid();
    let (e, rec) = terminal_error(
        &mut h,
        &request(
            &a,
            json!({"function": FN, "alias": "prod"}),
            now_ms() - 1,
            json!({}),
        ),
    )
    .await;
    assert_eq!(e, "Timeout: deadline passed before execution");
    assert_eq!(rec["status"], json!("timeout"));
    assert_eq!(runs(&mut h, &a), 0);
    h.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_errors_and_timeouts_are_failed_tasks_with_their_type() {
    let server = server!();
    let mut h = Harness::new(&server, "errors", PipelineConfig::default()).await;
    h.publish(
        1,
        "export default () => { throw new TypeError('boom'); }",
        &manifest(5000, 4, json!({})),
        Some("throws"),
    );
    let (e, rec) = terminal_error(
        &mut h,
        &request(
            &aid(),
            json!({"function": FN, "alias": "throws"}),
            in_a_minute(),
            json!({}),
        ),
    )
    .await;
    assert_eq!(e, "Exception: TypeError: boom");
    assert!(rec["error"]["stack"].is_string());

    h.publish(
        2,
        "export default () => { for (;;) {} }",
        &manifest(300, 4, json!({})),
        Some("spins"),
    );
    let started = Instant::now();
    let (e, rec) = terminal_error(
        &mut h,
        &request(
            &aid(),
            json!({"function": FN, "alias": "spins"}),
            in_a_minute(),
            json!({}),
        ),
    )
    .await;
    assert!(e.starts_with("Timeout: "), "{e}");
    assert_eq!(rec["status"], json!("timeout"));
    assert!(started.elapsed() < Duration::from_secs(5));
    h.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_calls_reach_the_store_and_the_publisher_after_the_checks() {
    let server = server!();
    let mut h = Harness::new(&server, "host", PipelineConfig::default()).await;
    let src = r#"
export default (event, ctx) => {
  cs.kv.set("data:greeting", { hello: event.name }, { ttlSeconds: 120 });
  const back = cs.kv.get("data:greeting");
  cs.kv.set("data:gone", 1); cs.kv.del("data:gone");
  cs.codeq.publish("orders.created", { id: 42 });
  let denied = [];
  try { cs.kv.set("secrets:x", 1); } catch (e) { denied.push(String(e.message)); }
  try { cs.codeq.publish("billing", {}); } catch (e) { denied.push(String(e.message)); }
  return { body: JSON.stringify({ back, denied }) };
};
"#;
    h.publish(1, src, &manifest(5000, 4, kv_caps()), Some("prod"));
    let a = aid();
    let p = h
        .pipeline
        .process(&envelope(&request(
            &a,
            json!({"function": FN, "alias": "prod"}),
            in_a_minute(),
            json!({"name": "Sous"}),
        )))
        .await;
    let body: Value =
        serde_json::from_str(&completed(&p.answer).result.as_ref().unwrap().body).unwrap();
    assert_eq!(body["back"], json!({"hello": "Sous"}));
    let denied = body["denied"].as_array().unwrap();
    assert_eq!(denied.len(), 2);
    for d in denied {
        assert!(
            d.as_str()
                .unwrap()
                .starts_with("CS_RUNTIME_CAPABILITY_DENIED:"),
            "{d}"
        );
    }
    // Tenant-scoped keys, JSON values, the TTL asked for.
    assert_eq!(
        h.json(&format!("cs:kv:{T}:data:greeting")),
        json!({"hello": "Sous"})
    );
    let ttl = h.ttl(&format!("cs:kv:{T}:data:greeting"));
    assert!((110..=120).contains(&ttl), "ttl {ttl}");
    assert!(h.get(&format!("cs:kv:{T}:data:gone")).is_none());
    assert!(h.keys("cs:kv:*:secrets:*").is_empty());
    // The user publish, as a RuntimePublish envelope of the activation's tenant.
    let user = h.publisher.on_topic("orders.created");
    assert_eq!(user.len(), 1);
    let m = &user[0].payload;
    assert_eq!(m["type"], json!("RuntimePublish"));
    assert_eq!(m["tenant"], json!(T));
    assert_eq!(m["body"]["payload"], json!({"id": 42}));
    assert_eq!(m["body"]["activation_id"], json!(a));
    assert!(h.publisher.on_topic("billing").is_empty());
    let rec = h.record(&a);
    assert_eq!(rec["host_calls"]["count"], json!(7), "{rec}");
    assert_eq!(rec["host_calls"]["denied"], json!(2), "{rec}");
    h.pool.shutdown().await;
}

/// A TCP proxy in front of the test redis-server that can cut every connection and refuse new
/// ones: an outage in which commands sent during the cut are lost, never executed later (which
/// a SIGSTOPped server would do once resumed).
struct Cuttable {
    addr: String,
    cut: Arc<std::sync::atomic::AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Cuttable {
    async fn start(upstream: String) -> Cuttable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(tx);
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if c.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: connection reset
                }
                let upstream = upstream.clone();
                let mut rx = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Cuttable {
            addr,
            cut,
            generation,
        }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_mid_activation_is_retried_and_writes_nothing_terminal() {
    let server = server!();
    let proxy = Cuttable::start(server.addr()).await;
    let mut h =
        Harness::with_store_addr(&server, &proxy.addr, "outage", PipelineConfig::default()).await;
    h.publish(1, COUNTING, &manifest(5000, 4, kv_caps()), Some("prod"));
    // Warm the bundle cache and the child so the outage lands during execution.
    let warm = h
        .pipeline
        .process(&envelope(&request(
            &aid(),
            json!({"function": FN, "alias": "prod"}),
            in_a_minute(),
            json!({}),
        )))
        .await;
    completed(&warm.answer);

    let a = aid();
    let payload = envelope(&request(
        &a,
        json!({"function": FN, "alias": "prod"}),
        in_a_minute(),
        json!({"sleepMs": 800}),
    ));
    let pipeline = h.pipeline.clone();
    let run = tokio::spawn({
        let payload = payload.clone();
        async move { pipeline.process(&payload).await }
    });
    // Let the running write and the kv calls land, then cut the store off.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    let p = run.await.unwrap();
    match &p.answer {
        Answer::RetryLater { cause, reason } => {
            assert_eq!(*cause, RetryCause::Store, "{reason}");
            assert!(reason.contains("unavailable"), "{reason}")
        }
        other => panic!("expected RetryLater, got {other:?}"),
    }
    assert_eq!(
        h.get(&format!("cs:act:{T}:{a}:status")).as_deref(),
        Some("running")
    );
    assert_eq!(h.record(&a)["status"], json!("running"));
    assert!(h.keys(&format!("cs:log:{T}:{a}:*")).is_empty());
    assert!(h.keys(&format!("cs:req:{T}:*{}*", &a[..8])).is_empty());
    assert!(h
        .publisher
        .on_topic("cs.results")
        .iter()
        .all(|m| m.payload["body"]["activation_id"] != json!(a)));

    // The store is back: the redelivery completes the activation once.
    proxy.restore();
    let again = h.pipeline.process(&payload).await;
    completed(&again.answer);
    assert_eq!(h.record(&a)["status"], json!("success"));
    let mine: Vec<_> = h
        .publisher
        .on_topic("cs.results")
        .into_iter()
        .filter(|m| m.payload["body"]["activation_id"] == json!(a))
        .collect();
    assert_eq!(mine.len(), 1);

    // A publisher outage is also a retry; the terminal record stays and the retry publishes it
    // without running the code again.
    let b = aid();
    let payload = envelope(&request(
        &b,
        json!({"function": FN, "alias": "prod"}),
        in_a_minute(),
        json!({}),
    ));
    h.publisher
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        h.pipeline.process(&payload).await.answer,
        Answer::RetryLater { .. }
    ));
    h.publisher
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let p = h.pipeline.process(&payload).await;
    completed(&p.answer);
    assert!(
        p.activation.as_ref().unwrap().republished,
        "the terminal record was kept"
    );
    assert_eq!(runs(&mut h, &b), 1);
    assert_eq!(
        h.publisher
            .on_topic("cs.results")
            .iter()
            .filter(|m| m.payload["body"]["activation_id"] == json!(b))
            .count(),
        1
    );
    h.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_are_cached_by_sha256_and_evicted_by_count() {
    let server = server!();
    let cfg = PipelineConfig {
        cache_bundles_max: 1,
        ..PipelineConfig::default()
    };
    let mut h = Harness::new(&server, "cache", cfg).await;
    h.publish(
        1,
        "export default () => 1",
        &manifest(5000, 4, json!({})),
        None,
    );
    h.publish(
        2,
        "export default () => 2",
        &manifest(5000, 4, json!({})),
        None,
    );
    let run = |v: u64| {
        envelope(&request(
            &aid(),
            json!({"function": FN, "version": v}),
            in_a_minute(),
            json!({}),
        ))
    };
    completed(&h.pipeline.process(&run(1)).await.answer);
    completed(&h.pipeline.process(&run(1)).await.answer);
    let s = h.pipeline.cache_stats();
    assert_eq!((s.items, s.hits, s.misses), (1, 1, 1));
    // The pipeline handed its cache to the pool: the stem child's compiled modules are kept
    // beside the bundle, counted in its bytes.
    assert_eq!(h.pool.stats().bytecode_misses, 1);
    assert_eq!(s.bytecode_items, 1);
    assert!(s.bytecode_bytes > 0 && s.bytes > s.bytecode_bytes, "{s:?}");
    // A cached bundle is not read again: delete it from the store and it still runs.
    let _: () = h
        .raw
        .del(format!("cs:fn:{T}:{NS}:{FN}:ver:1:bundle"))
        .unwrap();
    completed(&h.pipeline.process(&run(1)).await.answer);
    // Version 2 evicts version 1 (bundles_max = 1), which then has to come from the store.
    completed(&h.pipeline.process(&run(2)).await.answer);
    assert_eq!(h.pipeline.cache_stats().items, 1);
    // Version 1's compiled modules went with its bundle.
    assert_eq!(h.pipeline.cache_stats().bytecode_items, 1);
    let (e, _) = terminal_error(
        &mut h,
        &request(
            &aid(),
            json!({"function": FN, "version": 1}),
            in_a_minute(),
            json!({}),
        ),
    )
    .await;
    assert!(e.contains("missing from the store"), "{e}");
    h.pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_one_serialises_a_version() {
    let server = server!();
    let mut h = Harness::new(&server, "concurrency", PipelineConfig::default()).await;
    h.publish(1, COUNTING, &manifest(5000, 1, kv_caps()), Some("prod"));
    let (a, b) = (aid(), aid());
    let ev = json!({"sleepMs": 300});
    let pa = envelope(&request(
        &a,
        json!({"function": FN, "alias": "prod"}),
        in_a_minute(),
        ev.clone(),
    ));
    let pb = envelope(&request(
        &b,
        json!({"function": FN, "alias": "prod"}),
        in_a_minute(),
        ev,
    ));
    let (x, y) = tokio::join!(h.pipeline.process(&pa), h.pipeline.process(&pb));
    completed(&x.answer);
    completed(&y.answer);
    let (ra, rb) = (h.record(&a), h.record(&b));
    // One of them waited for the other's whole run.
    let waited = ra["wait_ms"]
        .as_u64()
        .unwrap()
        .max(rb["wait_ms"].as_u64().unwrap());
    assert!(waited >= 250, "wait_ms {ra} {rb}");
    let (sa, ea) = (
        ra["start_ms"].as_u64().unwrap(),
        ra["end_ms"].as_u64().unwrap(),
    );
    let (sb, eb) = (
        rb["start_ms"].as_u64().unwrap(),
        rb["end_ms"].as_u64().unwrap(),
    );
    assert!(
        ea <= sb || eb <= sa,
        "runs overlapped: {sa}-{ea} and {sb}-{eb}"
    );
    h.pool.shutdown().await;
}

/// A TCP proxy in front of the test redis-server that, after it has forwarded the `n`-th
/// command mentioning `needle`, holds the server's replies back until released: the store
/// applied the command, but the pipeline's reply times out — a stall of the server (or a
/// dying one) seen from the client.
struct Stalling {
    addr: String,
    stalled: Arc<std::sync::atomic::AtomicBool>,
    released: Arc<tokio::sync::Notify>,
}

impl Stalling {
    async fn start(upstream: String, needle: String, n: usize) -> Stalling {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stalled = Arc::new(AtomicBool::new(false));
        let released = Arc::new(tokio::sync::Notify::new());
        let seen = Arc::new(AtomicUsize::new(0));
        let (st, rel) = (stalled.clone(), released.clone());
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (mut down_r, mut down_w) = down.into_split();
                let (mut up_r, mut up_w) = up.into_split();
                let (st1, seen, needle) = (st.clone(), seen.clone(), needle.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(k) = down_r.read(&mut buf).await {
                        if k == 0 {
                            break;
                        }
                        let text = String::from_utf8_lossy(&buf[..k]);
                        let hits = text.matches(needle.as_str()).count();
                        if hits > 0 {
                            let before = seen.fetch_add(hits, Ordering::SeqCst);
                            // Once: at the command that makes it `n`.
                            if before < n && before + hits >= n {
                                st1.store(true, Ordering::SeqCst);
                            }
                        }
                        if up_w.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                    }
                });
                let (st2, rel) = (st.clone(), rel.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(k) = up_r.read(&mut buf).await {
                        if k == 0 {
                            break;
                        }
                        while st2.load(Ordering::SeqCst) {
                            let wake = rel.notified();
                            tokio::select! {
                                _ = wake => {}
                                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                            }
                        }
                        if down_w.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Stalling {
            addr,
            stalled,
            released,
        }
    }

    fn is_stalled(&self) -> bool {
        self.stalled.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn release(&self) {
        self.stalled
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.released.notify_waiters();
    }
}

/// Issue 10, "log chunks lost": the terminal compare-and-set is applied by the store, but its
/// reply comes too late (the store stalled past our timeout). The task is retried; the
/// redelivery finds the activation terminal and only republishes — so the logs must have been
/// written by the compare-and-set itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_write_whose_reply_is_lost_keeps_its_logs() {
    let server = server!();
    let a = aid();
    // Commands naming the status key: the begin script (the idempotency read and, the alias
    // being known from the warm-up, the running write), then the terminal compare-and-set,
    // whose reply is held back.
    let proxy = Stalling::start(server.addr(), format!("cs:act:{T}:{a}:status"), 2).await;
    let mut h =
        Harness::with_store_addr(&server, &proxy.addr, "stall", PipelineConfig::default()).await;
    h.publish(1, COUNTING, &manifest(5000, 4, kv_caps()), Some("prod"));
    // A first activation loads the scripts into the server (EVALSHA then needs no EVAL).
    let warm = h
        .pipeline
        .process(&envelope(&request(
            &aid(),
            json!({"function": FN, "alias": "prod"}),
            in_a_minute(),
            json!({}),
        )))
        .await;
    completed(&warm.answer);
    let payload = envelope(&request(
        &a,
        json!({"function": FN, "alias": "prod"}),
        in_a_minute(),
        json!({"n": 1}),
    ));
    let first = h.pipeline.process(&payload).await;
    assert!(proxy.is_stalled(), "the terminal write went out");
    match &first.answer {
        Answer::RetryLater { cause, reason } => {
            assert_eq!(*cause, RetryCause::Store, "{reason}");
            assert!(reason.contains("unavailable"), "{reason}")
        }
        other => panic!("expected RetryLater, got {other:?}"),
    }
    // The store applied it.
    assert_eq!(
        h.get(&format!("cs:act:{T}:{a}:status")).as_deref(),
        Some("success")
    );
    proxy.release();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The redelivery republishes without running the code again; the logs are there.
    let again = h.pipeline.process(&payload).await;
    completed(&again.answer);
    assert!(again.activation.as_ref().is_some_and(|s| s.republished));
    assert_eq!(runs(&mut h, &a), 1);
    let chunks = h.keys(&format!("cs:log:{T}:{a}:0*"));
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    let text = h.get(&chunks[0]).unwrap();
    assert!(text.contains("[info] run 1 of reconcile"), "{text}");
    assert!(h
        .get(&format!("cs:req:{T}:req-{}:result", &a[..8]))
        .is_some());
    h.pool.shutdown().await;
}
