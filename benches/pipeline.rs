//! Pipeline overhead: the same warm trivial function run (a) straight through the pool and
//! (b) through the whole pipeline (decode, idempotency read, alias and meta reads, cached bundle,
//! permits, running write, terminal CAS, correlation key, publish) against a real redis-server
//! on loopback. Both are measured in the same run, interleaved, and the overhead reported is
//! median(b) − median(a). Merges its figures into `target/bench/results.json`.
//!
//! Needs `redis-server` on PATH (Debian package); skipped with a note otherwise.

#[path = "../tests/support/mod.rs"]
mod support;

use cs_invoker_pool::host::http::{HttpConfig, HttpFetcher};
use cs_invoker_pool::host::local::LocalHost;
use cs_invoker_pool::host::service::ServiceHost;
use cs_invoker_pool::host::HostScope;
use cs_invoker_pool::pipeline::{Answer, Pipeline, PipelineConfig};
use cs_invoker_pool::pool::{Job, Pool, PoolConfig};
use cs_invoker_pool::sandbox::{Sandbox, SandboxPolicy};
use cs_invoker_pool::store::{RedisStore, StoreConfig};
use cs_invoker_pool::testing::MemoryPublisher;
use sandbox_proto::bundle;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::redis_server::RedisServer;

const HANDLER: &str = "export default (event, ctx) => ({ statusCode: 200, body: 'ok' });";
const MANIFEST: &str = r#"{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js",
  "limits":{"timeoutMs":10000,"memoryMb":64,"maxConcurrency":100}}"#;
const T: &str = "t_bench1";

fn child_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CS_SANDBOX_CHILD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("bench executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    profile_dir.join("sandbox-child")
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn main() {
    let iterations: usize = std::env::var("CS_BENCH_PIPELINE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let Some(server) = RedisServer::start() else {
        println!(
            "pipeline bench skipped: redis-server is not installed (apt-get install redis-server)"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut files = BTreeMap::new();
    files.insert("function.js".to_string(), HANDLER.as_bytes().to_vec());
    files.insert("manifest.json".to_string(), MANIFEST.as_bytes().to_vec());
    let tar = bundle::pack(&files).expect("pack");
    let b = Arc::new(bundle::parse_tar(&tar).expect("bundle"));
    {
        let mut raw = server.raw();
        let prefix = format!("cs:fn:{T}:bench:trivial");
        redis::cmd("SET")
            .arg(format!("{prefix}:ver:1:bundle"))
            .arg(&tar)
            .query::<()>(&mut raw)
            .expect("set bundle");
        redis::cmd("SET")
            .arg(format!("{prefix}:ver:1:meta"))
            .arg(format!(
                r#"{{"version":1,"sha256":"{}","config":{{}},"published_at_ms":1}}"#,
                b.sha256
            ))
            .query::<()>(&mut raw)
            .expect("set meta");
        redis::cmd("SET")
            .arg(format!("{prefix}:alias:prod"))
            .arg(r#"{"alias":"prod","version":1,"updated_at_ms":1}"#)
            .query::<()>(&mut raw)
            .expect("set alias");
    }

    let (direct, piped, confined) = rt.block_on(async {
        let sandbox = Arc::new(Sandbox::prepare(&SandboxPolicy::default()).expect("sandbox"));
        let confined = sandbox.is_confined();
        let mut cfg = PoolConfig::new(child_bin(), sandbox);
        cfg.prewarm = 1;
        cfg.max_children = 2;
        let pool = Arc::new(Pool::start(cfg).expect("pool"));
        let store = RedisStore::connect(StoreConfig {
            addr: server.addr(),
            ..StoreConfig::default()
        })
        .await
        .expect("store");
        let publisher = Arc::new(MemoryPublisher::default());
        let store = Arc::new(store);
        let host = ServiceHost::new(
            store.clone(),
            publisher.clone(),
            Arc::new(HttpFetcher::new(HttpConfig::default())),
        );
        let pipeline = Pipeline::new(
            PipelineConfig::default(),
            store,
            publisher,
            pool.clone(),
            Arc::new(host),
        );
        let host = LocalHost::new();
        let (mut direct, mut piped) = (Vec::new(), Vec::new());
        for i in 0..iterations + 20 {
            let aid = uuid::Uuid::new_v4().to_string();
            let payload = format!(
                r#"{{"schema":"cs.envelope.v1","id":"msg_{i}","ts_ms":{},"tenant":"{T}","type":"InvocationRequest","body":{{"activation_id":"{aid}","request_id":"req-{i:08}","tenant":"{T}","namespace":"bench","ref":{{"function":"trivial","alias":"prod"}},"trigger":{{"type":"api","source":{{}}}},"principal":{{"sub":"bench","roles":[]}},"deadline_ms":{},"event":{{"n":1}}}}}}"#,
                now_ms(),
                now_ms() + 10_000
            );
            let t = Instant::now();
            let p = pipeline.process(payload.as_bytes()).await;
            let pipe_us = t.elapsed().as_secs_f64() * 1e6;
            assert!(matches!(p.answer, Answer::Completed(_)), "{:?}", p.answer);

            let deadline = Instant::now() + Duration::from_secs(10);
            let job = Job {
                bundle: b.clone(),
                scope: HostScope {
                    tenant: T.into(),
                    namespace: "bench".into(),
                    function: "trivial".into(),
                    version: 1,
                    activation_id: aid,
                    capabilities: Arc::new(b.manifest.capabilities.clone()),
                    deadline,
                    trigger: "api".into(),
                    heartbeat: None,
                    policy: Default::default(),
                    calls: Default::default(),
                    context: Default::default(),
                },
                event_json: r#"{"n":1}"#.into(),
                ctx_json: r#"{"activation_id":"a","request_id":"r","deadline_ms":0,"tenant":"t_bench1","namespace":"bench","function":"trivial","version":1,"ref":{"alias":"prod","version":1},"trigger":{"type":"api"},"principal":{"sub":"bench","roles":[]}}"#.into(),
                deadline,
                log_sink: None,
                env: Default::default(),
            };
            let t = Instant::now();
            let ex = pool.invoke(&job, &host).await;
            let direct_us = t.elapsed().as_secs_f64() * 1e6;
            assert!(ex.outcome.is_ok());
            if i >= 20 {
                piped.push(pipe_us);
                direct.push(direct_us);
            }
        }
        pool.shutdown().await;
        (direct, piped, confined)
    });
    let (mut direct, mut piped) = (direct, piped);
    let d = median(&mut direct);
    let p = median(&mut piped);
    let out = serde_json::json!({
        "iterations": iterations,
        "confined": confined,
        "warm_invoke_direct_us_p50": d,
        "warm_invoke_through_pipeline_us_p50": p,
        "pipeline_overhead_us_p50": p - d,
        "pipeline_vs_direct_ratio": p / d,
    });
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("bench");
    let _ = std::fs::create_dir_all(&dir);
    // Merged into results.json beside the pool bench's figures.
    let path = dir.join("results.json");
    let mut all: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    if let (Some(all), Some(out)) = (all.as_object_mut(), out.as_object()) {
        all.insert("pipeline".into(), serde_json::Value::Object(out.clone()));
        for k in ["pipeline_overhead_us_p50"] {
            if let Some(v) = out.get(k) {
                all.insert(k.into(), v.clone());
            }
        }
    }
    let _ = std::fs::write(
        &path,
        serde_json::to_string_pretty(&all).unwrap_or_default(),
    );
    println!();
    println!("{:<38} {:>10}  target", "metric", "value");
    println!("{:<38} {:>10.1}", "warm_invoke_direct_us_p50", d);
    println!("{:<38} {:>10.1}", "warm_invoke_through_pipeline_us_p50", p);
    println!(
        "{:<38} {:>10.1}  <= 150 us",
        "pipeline_overhead_us_p50",
        p - d
    );
    println!("written to {}", path.display());
}
