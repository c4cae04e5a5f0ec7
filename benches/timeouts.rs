//! `make bench`: how far past its deadline an activation that overruns it ends, per kind of
//! work. A tight JavaScript loop is stopped by the engine's interrupt handler; long native
//! operations (JSON of huge values, `String.prototype.repeat`, BigInt arithmetic, typed-array
//! sort, `Array.prototype.join`) poll it rarely or never, so only the supervisor's SIGKILL at
//! the deadline stops them. The overshoot is the time from the deadline to the `Timeout`
//! outcome, measured through the real pool with confined children.
//!
//! Each round warms a child (its module's top level builds the data), then invokes it with a
//! deadline `BENCH_TIMEOUT_MS` (50) ahead; the child is then retired, so the next round warms a
//! new one. Writes `timeout_overshoot_ms_{p50,p99,max}_<kind>` into
//! `target/bench/results.json` (merged with what the other benches wrote).

use cs_invoker_pool::host::local::LocalHost;
use cs_invoker_pool::host::HostScope;
use cs_invoker_pool::pool::{ErrorType, Job, Pool, PoolConfig};
use cs_invoker_pool::sandbox::{Sandbox, SandboxPolicy};
use sandbox_proto::bundle::{self, Bundle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (kind, top-level setup, the overrunning operation). Each operation takes far longer than
/// the deadline on these machines.
const KINDS: &[(&str, &str, &str)] = &[
    ("loop", "", "for (;;) {}"),
    (
        "json_stringify",
        "const data = Array.from({ length: 600000 }, (_, i) => ({ i, s: 'item-' + i, t: [i, i] }));",
        "JSON.stringify(data); JSON.stringify(data); JSON.stringify(data);",
    ),
    (
        "json_parse",
        "const text = JSON.stringify(Array.from({ length: 600000 }, (_, i) => ({ i, s: 'item-' + i })));",
        "JSON.parse(text); JSON.parse(text); JSON.parse(text);",
    ),
    ("string_repeat", "", "'abcdefgh'.repeat(60000000).length;"),
    ("bigint", "", "(7n ** 3000000n).toString().length;"),
    (
        "typedarray_sort",
        "const arr = new Float64Array(6000000).map((_, i) => (i * 7919) % 1000003);",
        "arr.sort();",
    ),
    (
        "array_join",
        "const parts = new Array(6000000).fill('abcdef');",
        "parts.join(',').length; parts.join(';').length;",
    ),
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn child_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CS_SANDBOX_CHILD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("bench executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    profile_dir.join("sandbox-child")
}

fn bundle(setup: &str, op: &str) -> Arc<Bundle> {
    let source = format!(
        "{setup}\nexport default (event) => {{ if (event.warm) return 'warm'; {op} return 'done'; }};"
    );
    let manifest = r#"{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js",
      "limits":{"timeoutMs":60000,"memoryMb":1024,"maxConcurrency":1}}"#;
    let mut files = BTreeMap::new();
    files.insert("function.js".to_string(), source.into_bytes());
    files.insert("manifest.json".to_string(), manifest.as_bytes().to_vec());
    Arc::new(bundle::parse_tar(&bundle::pack(&files).expect("pack")).expect("bundle"))
}

fn job(bundle: &Arc<Bundle>, event: &str, deadline: Instant) -> Job {
    Job {
        bundle: Arc::clone(bundle),
        scope: HostScope {
            tenant: "t_bench1".into(),
            namespace: "bench".into(),
            function: "overrun".into(),
            version: 1,
            activation_id: "00000000-0000-4000-8000-000000000001".into(),
            capabilities: Arc::new(bundle.manifest.capabilities.clone()),
            deadline,
            trigger: "api".into(),
            heartbeat: None,
            policy: Default::default(),
            calls: Default::default(),
            context: Default::default(),
        },
        event_json: event.into(),
        ctx_json: r#"{"activation_id":"a","request_id":"r","deadline_ms":0,"tenant":"t_bench1","namespace":"bench","function":"overrun","version":1,"ref":{"alias":null,"version":1},"trigger":{"type":"api"},"principal":{"sub":"bench","roles":[]}}"#.into(),
        deadline,
        log_sink: None,
        env: Default::default(),
    }
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    if samples.is_empty() {
        return f64::NAN;
    }
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let rounds = env_usize("BENCH_TIMEOUT_N", 25);
    let timeout = Duration::from_millis(env_usize("BENCH_TIMEOUT_MS", 50) as u64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = rt.block_on(async {
        Arc::new(Sandbox::prepare(&SandboxPolicy::default()).expect("sandbox"))
    });
    let mut cfg = PoolConfig::new(child_bin(), sandbox.clone());
    cfg.prewarm = 1;
    cfg.max_children = 2;
    let pool = rt.block_on(async { Pool::start(cfg).expect("pool") });
    let host = LocalHost::new();

    let mut results = serde_json::Map::new();
    println!(
        "timeout overshoot, deadline {} ms ahead, {rounds} rounds per kind (ms past the deadline)",
        timeout.as_millis()
    );
    println!(
        "{:<16} {:>8} {:>8} {:>8}  outcome",
        "kind", "p50", "p99", "max"
    );
    for (kind, setup, op) in KINDS {
        let b = bundle(setup, op);
        let mut overshoot = Vec::with_capacity(rounds);
        let mut other = Vec::new();
        rt.block_on(async {
            for _ in 0..rounds {
                let warm = pool
                    .invoke(
                        &job(
                            &b,
                            r#"{"warm":true}"#,
                            Instant::now() + Duration::from_secs(60),
                        ),
                        &host,
                    )
                    .await;
                if warm.outcome.is_err() {
                    other.push(format!("warm-up failed: {:?}", warm.outcome.err()));
                    continue;
                }
                let deadline = Instant::now() + timeout;
                let ex = pool.invoke(&job(&b, "{}", deadline), &host).await;
                let ended = Instant::now();
                match &ex.outcome {
                    Err(e) if e.kind == ErrorType::Timeout => overshoot
                        .push(ended.saturating_duration_since(deadline).as_secs_f64() * 1e3),
                    other_outcome => other.push(format!("{other_outcome:?}")),
                }
            }
        });
        let p50 = percentile(&mut overshoot, 0.5);
        let p99 = percentile(&mut overshoot, 0.99);
        let max = overshoot.last().copied().unwrap_or(f64::NAN);
        println!(
            "{kind:<16} {p50:>8.2} {p99:>8.2} {max:>8.2}  {} timeouts{}",
            overshoot.len(),
            if other.is_empty() {
                String::new()
            } else {
                format!(", {} other: {}", other.len(), other[0])
            }
        );
        for (name, v) in [("p50", p50), ("p99", p99), ("max", max)] {
            results.insert(
                format!("timeout_overshoot_ms_{name}_{kind}"),
                serde_json::json!((v * 100.0).round() / 100.0),
            );
        }
    }
    rt.block_on(pool.shutdown());

    let path = Path::new("target/bench/results.json");
    let mut all: serde_json::Map<String, serde_json::Value> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    all.extend(results);
    let _ = std::fs::create_dir_all("target/bench");
    std::fs::write(
        path,
        serde_json::to_vec_pretty(&serde_json::Value::Object(all)).expect("json"),
    )
    .expect("write results");
    println!("→ {}", path.display());
}
