//! `make bench`: start-up and invocation costs of the pool, measured in one run against a
//! same-run baseline (a fresh `node` process per invocation, what a user without a pool does).
//!
//! Writes `target/bench/results.json` and prints a table. Figures are medians (and p99 where
//! named) because these machines are noisy.

use cs_invoker_pool::cgroup::CgroupLimits;
use cs_invoker_pool::host::local::LocalHost;
use cs_invoker_pool::host::HostScope;
use cs_invoker_pool::pipeline::request;
use cs_invoker_pool::pool::child::ChildProcess;
use cs_invoker_pool::pool::{Job, Pool, PoolConfig, StartKind};
use cs_invoker_pool::sandbox::{Sandbox, SandboxPolicy};
use sandbox_proto::bundle::{self, Bundle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod peers;

const HANDLER: &str = "export default (event, ctx) => ({ statusCode: 200, body: 'ok' });";

/// The JSON path alone: a 12 KB event in, a 12 KB body out, next to no work in between (the
/// body is built once, at module load). Its warm figure minus the trivial one is what handing
/// a realistic event over and its result back costs.
const PASSTHROUGH_HANDLER: &str = "const body = JSON.stringify(Array.from({length: 300}, (_, i) => ({ i, sku: 'SKU-' + i })));\n\
export default (event, ctx) => ({ statusCode: 200, headers: { 'content-type': 'application/json' }, body: body.slice(0, 12000) + event.order.id });";

/// A realistic handler on the same event: reads the order, totals it, answers JSON.
const REALISTIC_HANDLER: &str = "export default (event, ctx) => {\n\
  const o = event.order; let total = 0; const lines = [];\n\
  for (const it of o.line_items) { const t = it.price * it.quantity; total += t; lines.push({ sku: it.sku, qty: it.quantity, total: t, tags: it.tags }); }\n\
  return { statusCode: 200, headers: { 'content-type': 'application/json', 'x-order': String(o.id) },\n\
           body: JSON.stringify({ id: o.id, customer: o.customer.email, currency: o.currency, total, lines }) };\n\
};";

/// A realistic 12 KB event: an order webhook with nested objects, arrays, strings of varied
/// length, numbers, booleans and nulls, deterministic so every run measures the same bytes.
fn realistic_event() -> String {
    use serde_json::json;
    let items: Vec<serde_json::Value> = (0..37)
        .map(|i| {
            json!({
                "id": 1_000_000 + i,
                "sku": format!("SKU-{:05}", i * 37),
                "title": format!("Organic cotton t-shirt, size {} (colour #{i})", ["S", "M", "L", "XL"][i % 4]),
                "quantity": 1 + i % 3,
                "price": 19.5 + i as f64,
                "taxable": i % 2 == 0,
                "gift_card": false,
                "vendor": "Sous Apparel",
                "tags": ["summer", "cotton", format!("batch-{}", i / 5)],
                "properties": [{"name": "engraving", "value": if i % 4 == 0 { serde_json::Value::Null } else { json!(format!("for #{i}")) }}],
                "tax_lines": [{"title": "VAT", "rate": 0.2, "price": (19.5 + i as f64) * 0.2}],
            })
        })
        .collect();
    let event = json!({
        "id": "evt_9f2c1d7e4b",
        "type": "order.created",
        "created_at": "2026-11-30T17:04:11Z",
        "order": {
            "id": 5_123_456_789u64,
            "name": "#1042",
            "currency": "EUR",
            "financial_status": "paid",
            "customer": {"id": 77, "email": "ana@example.com", "first_name": "Ana", "last_name": "Silva", "accepts_marketing": true},
            "shipping_address": {"address1": "Rua das Flores 12", "city": "Lisboa", "zip": "1200-195", "country_code": "PT", "phone": null},
            "line_items": items,
            "note": "Please leave the parcel with the neighbour if nobody answers.",
        },
    });
    let s = event.to_string();
    assert!(
        (11_000..14_000).contains(&s.len()),
        "event is {} bytes",
        s.len()
    );
    s
}
const MANIFEST: &str = r#"{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js",
  "limits":{"timeoutMs":10000,"memoryMb":64,"maxConcurrency":100}}"#;

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
    // target/<profile>/deps/pool-xxxx → target/<profile>/sandbox-child
    let exe = std::env::current_exe().expect("bench executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = profile_dir.join("sandbox-child");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --release -p sandbox-child` first (make bench does)",
        bin.display()
    );
    bin
}

fn bundle() -> Arc<Bundle> {
    bundle_of(HANDLER)
}

fn bundle_of(source: &str) -> Arc<Bundle> {
    let mut files = BTreeMap::new();
    files.insert("function.js".to_string(), source.as_bytes().to_vec());
    files.insert("manifest.json".to_string(), MANIFEST.as_bytes().to_vec());
    Arc::new(bundle::parse_tar(&bundle::pack(&files).expect("pack")).expect("bundle"))
}

fn job(bundle: &Arc<Bundle>, tenant: &str) -> Job {
    let deadline = Instant::now() + Duration::from_secs(10);
    Job {
        bundle: Arc::clone(bundle),
        scope: HostScope {
            tenant: tenant.to_string(),
            namespace: "bench".into(),
            function: "trivial".into(),
            version: 1,
            activation_id: "00000000-0000-4000-8000-000000000000".into(),
            capabilities: Arc::new(bundle.manifest.capabilities.clone()),
            deadline,
            trigger: "api".into(),
            heartbeat: None,
            policy: Default::default(),
            calls: Default::default(),
            context: Default::default(),
        },
        event_json: r#"{"n":1}"#.into(),
        ctx_json: format!(
            r#"{{"activation_id":"a","request_id":"r","deadline_ms":0,"tenant":"{tenant}","namespace":"bench","function":"trivial","version":1,"ref":{{"alias":null,"version":1}},"trigger":{{"type":"api"}},"principal":{{"sub":"bench","roles":[]}}}}"#
        ),
        deadline,
        log_sink: None,
        env: Default::default(),
    }
}

/// A `cs.invoke` task payload (a `cs.envelope.v1` InvocationRequest) carrying `event`.
fn invoke_envelope(event: &str) -> Vec<u8> {
    format!(
        r#"{{"schema":"cs.envelope.v1","id":"msg_1","ts_ms":1,"tenant":"json","type":"InvocationRequest","body":{{"activation_id":"6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b","request_id":"req_0123456789","tenant":"json","namespace":"bench","ref":{{"function":"f","alias":"prod"}},"trigger":{{"type":"api","source":{{}}}},"principal":{{"sub":"bench","roles":[]}},"deadline_ms":4102444800000,"event":{event}}}}}"#
    )
    .into_bytes()
}

/// The event text the pipeline hands to the child for `req` (what `Pipeline::execute` does).
fn event_text(req: &request::InvocationRequest) -> String {
    req.event.get().to_string()
}

/// `field` of `/proc/PID/smaps_rollup`, in KiB. `Pss` is what an idle stem child costs the
/// host with its shared pages (the binary's text) divided among the processes mapping them —
/// here the child is alone, so its text counts in full; `Private_Dirty` is what each further
/// child adds (its heap, stack and written data).
fn smaps_kb(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    if samples.is_empty() {
        return f64::NAN;
    }
    let idx = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[idx]
}

/// Calls per second with the pool sized to the cores and as many concurrent callers as
/// children, each calling `n / cores` times.
async fn our_throughput(
    bin: &Path,
    sandbox: &Arc<Sandbox>,
    b: &Arc<Bundle>,
    cores: usize,
    n: usize,
) -> f64 {
    let mut cfg = PoolConfig::new(bin.to_path_buf(), Arc::clone(sandbox));
    cfg.prewarm = cores;
    let pool = Pool::start(cfg).expect("pool");
    let host = Arc::new(LocalHost::new());
    // Warm one child per caller.
    let warmups: Vec<_> = (0..cores)
        .map(|_| {
            let (p, h, b) = (pool.clone(), Arc::clone(&host), Arc::clone(b));
            tokio::spawn(async move { p.invoke(&job(&b, "tp"), &*h).await })
        })
        .collect();
    for w in warmups {
        let _ = w.await;
    }
    let t = Instant::now();
    let per = n / cores;
    let tasks: Vec<_> = (0..cores)
        .map(|_| {
            let (p, h, b) = (pool.clone(), Arc::clone(&host), Arc::clone(b));
            tokio::spawn(async move {
                let j = job(&b, "tp");
                for _ in 0..per {
                    let ex = p.invoke(&j, &*h).await;
                    assert!(ex.outcome.is_ok());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let rate = (per * cores) as f64 / t.elapsed().as_secs_f64();
    pool.shutdown().await;
    rate
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let bin = child_bin();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("runtime");
    let b = bundle();
    let host = LocalHost::new();
    let sandbox = rt.block_on(async {
        Arc::new(Sandbox::prepare(&SandboxPolicy::default()).expect("sandbox"))
    });
    if !sandbox.is_confined() {
        println!("note: unconfined on this host: {:?}", sandbox.unconfined);
    }

    // 1. exec → Ready, bare and fully confined (namespaces, empty root, uid drop, seccomp, and
    //    a cgroup created, joined and removed per child).
    let spawn_n = env_usize("BENCH_SPAWN_N", 100);
    let mut spawn_ms = Vec::new();
    let mut spawn_confined_ms = Vec::new();
    let mut idle_pss_kb = Vec::new();
    let mut idle_private_kb = Vec::new();
    rt.block_on(async {
        for i in 0..spawn_n {
            let t = Instant::now();
            let mut c = ChildProcess::spawn(&bin, i as u64, Duration::from_secs(5), None, None)
                .await
                .expect("spawn");
            spawn_ms.push(t.elapsed().as_secs_f64() * 1e3);
            if let Some(kb) = smaps_kb(c.pid, "Pss:") {
                idle_pss_kb.push(kb);
            }
            if let Some(kb) = smaps_kb(c.pid, "Private_Dirty:") {
                idle_private_kb.push(kb);
            }
            c.kill();
            let _ = c.exit_description(Duration::from_secs(1)).await;

            if !sandbox.is_confined() {
                continue;
            }
            let t = Instant::now();
            let cg = sandbox.cgroups.as_ref().map(|m| {
                m.create(
                    &format!("bench-{i}"),
                    &CgroupLimits {
                        memory_bytes: Some(256 << 20),
                        pids_max: Some(4),
                        cpu: None,
                    },
                )
                .expect("cgroup")
            });
            let mut c = ChildProcess::spawn(
                &bin,
                i as u64,
                Duration::from_secs(5),
                sandbox.confine.clone(),
                cg,
            )
            .await
            .expect("confined spawn");
            spawn_confined_ms.push(t.elapsed().as_secs_f64() * 1e3);
            c.kill();
            let _ = c.exit_description(Duration::from_secs(1)).await;
            if let Some(cg) = c.cgroup.take() {
                cg.remove().expect("cgroup removed");
            }
        }
    });

    // 2. Cold: a stem child, bundle not loaded, end to end through the pool.
    let cold_n = env_usize("BENCH_COLD_N", 100);
    let mut cold_ms = Vec::new();
    rt.block_on(async {
        let mut cfg = PoolConfig::new(bin.clone(), Arc::clone(&sandbox));
        cfg.prewarm = 2;
        let pool = Pool::start(cfg).expect("pool");
        for i in 0..cold_n {
            assert!(pool.wait_prewarmed(Duration::from_secs(5)).await);
            // A fresh tenant each time: never a warm hit.
            let j = job(&b, &format!("cold{i}"));
            let t = Instant::now();
            let ex = pool.invoke(&j, &host).await;
            cold_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(ex.start, StartKind::Stem);
            assert!(ex.outcome.is_ok(), "{:?}", ex.outcome);
        }
        pool.shutdown().await;
    });

    // 3. Warm: the same binding over and over, confined (production) and bare (to show what
    //    confinement costs on the warm path: seccomp's per-syscall filter only).
    let warm_n = env_usize("BENCH_WARM_N", 5000);
    let bare = Arc::new(Sandbox::unconfined("bench baseline"));
    let warm = |sb: &Arc<Sandbox>| -> Vec<f64> {
        let mut samples = Vec::new();
        rt.block_on(async {
            let mut cfg = PoolConfig::new(bin.clone(), Arc::clone(sb));
            cfg.prewarm = 1;
            let pool = Pool::start(cfg).expect("pool");
            let j = job(&b, "warm");
            let _ = pool.invoke(&j, &host).await;
            for _ in 0..warm_n {
                let t = Instant::now();
                let ex = pool.invoke(&j, &host).await;
                samples.push(t.elapsed().as_secs_f64() * 1e6);
                assert_eq!(ex.start, StartKind::Warm);
            }
            pool.shutdown().await;
        });
        samples
    };
    let mut warm_us = warm(&sandbox);
    let mut warm_bare_us = warm(&bare);

    // 3b. The JSON path as production walks it, per call: the `cs.invoke` envelope decoded
    //     and validated (`request::decode`), the event handed to the child, the result back and
    //     the InvocationResult serialised (as for the task answer). Three functions: trivial
    //     (a 10-byte event, `body: 'ok'`), passthrough (the 12 KB event in, a 12 KB body out,
    //     next to no work between) and realistic (the same event, a handler that reads and
    //     totals it), interleaved call by call on one confined pool so that load changes hit
    //     all three alike. json_path = passthrough − trivial.
    let json_n = env_usize("BENCH_JSON_N", 2000);
    let event_12k = realistic_event();
    let (pass_b, real_b) = (bundle_of(PASSTHROUGH_HANDLER), bundle_of(REALISTIC_HANDLER));
    let (mut json_trivial_us, mut json_pass_us, mut json_real_us) =
        (Vec::new(), Vec::new(), Vec::new());
    let (small_env, big_env) = (invoke_envelope(r#"{"n":1}"#), invoke_envelope(&event_12k));
    rt.block_on(async {
        let mut cfg = PoolConfig::new(bin.clone(), Arc::clone(&sandbox));
        cfg.prewarm = 3;
        let pool = Pool::start(cfg).expect("pool");
        for round in 0..=json_n {
            for (which, bundle, payload) in [
                (0, &b, &small_env),
                (1, &pass_b, &big_env),
                (2, &real_b, &big_env),
            ] {
                let t = Instant::now();
                let (_, req) = request::decode(payload).expect("valid request");
                let mut j = job(bundle, "json");
                j.event_json = event_text(&req);
                let ex = pool.invoke(&j, &host).await;
                let answer = serde_json::to_vec(&ex.to_invocation_result(
                    &req.activation_id,
                    &req.request_id,
                    1,
                ))
                .expect("result json");
                let us = t.elapsed().as_secs_f64() * 1e6;
                std::hint::black_box(answer);
                assert!(ex.outcome.is_ok(), "{:?}", ex.outcome);
                if round == 0 {
                    continue; // the cold call of each binding
                }
                assert_eq!(ex.start, StartKind::Warm);
                [&mut json_trivial_us, &mut json_pass_us, &mut json_real_us][which].push(us);
            }
        }
        pool.shutdown().await;
    });

    // 4. Throughput: pool sized to the cores, as many concurrent callers as children.
    let tp_n = env_usize("BENCH_THROUGHPUT_N", 40_000);
    let throughput = rt.block_on(our_throughput(&bin, &sandbox, &b, cores, tp_n));

    // 5. Baseline: a fresh node process per invocation running the same handler.
    let node_n = env_usize("BENCH_NODE_N", 30);
    let mut node_ms = Vec::new();
    let dir = std::env::temp_dir().join(format!("cs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("function.mjs"), HANDLER).expect("write handler");
    std::fs::write(
        dir.join("runner.mjs"),
        "import handle from './function.mjs';\n\
         const r = await handle(JSON.parse(process.argv[2]), {});\n\
         process.stdout.write(JSON.stringify(r) + '\\n');\n",
    )
    .expect("write runner");
    let node_ok = Command::new("node").arg("--version").output().is_ok();
    if node_ok {
        for _ in 0..node_n {
            let t = Instant::now();
            let out = Command::new("node")
                .arg(dir.join("runner.mjs"))
                .arg(r#"{"n":1}"#)
                .output()
                .expect("node");
            node_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(out.status.success());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    // 6. The peers, interleaved round by round with our own figures so that load changes hit
    //    every system alike: isolated-vm (V8 isolates in Node 24), a fresh `deno` process and
    //    a fresh `node` process per call, on the same handlers and events (benches/peers/).
    let peer_rounds = env_usize("BENCH_PEER_ROUNDS", 5);
    let peer_dir = std::env::var_os("CS_BENCH_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/peers"));
    let peers = peers::Peers::find(&peer_dir, &event_12k);
    let mut cmp = peers::Comparison::default();
    for round in 0..peer_rounds {
        let ours = rt.block_on(peers::ours_round(
            &bin,
            &sandbox,
            &host,
            [&b, &real_b],
            &event_12k,
            round,
        ));
        cmp.add_ours(ours);
        let tp = rt.block_on(our_throughput(&bin, &sandbox, &b, cores, tp_n / 4));
        cmp.ours_throughput.push(tp);
        peers.round(&mut cmp);
    }
    peers.cleanup();

    let spawn_p50 = percentile(&mut spawn_ms, 0.5);
    let spawn_confined_p50 = percentile(&mut spawn_confined_ms, 0.5);
    let idle_pss_p50 = percentile(&mut idle_pss_kb, 0.5);
    let idle_private_p50 = percentile(&mut idle_private_kb, 0.5);
    let warm_bare_p50 = percentile(&mut warm_bare_us, 0.5);
    let cold_p50 = percentile(&mut cold_ms, 0.5);
    let warm_p50 = percentile(&mut warm_us, 0.5);
    let warm_p99 = percentile(&mut warm_us, 0.99);
    let node_p50 = percentile(&mut node_ms, 0.5);
    let json_trivial_p50 = percentile(&mut json_trivial_us, 0.5);
    let json_pass_p50 = percentile(&mut json_pass_us, 0.5);
    let json_real_p50 = percentile(&mut json_real_us, 0.5);
    let peer_figures = cmp.report();
    let results = serde_json::json!({
        "peers": peer_figures,
        "spawn_ready_ms_p50": spawn_p50,
        "spawn_ready_confined_ms_p50": if sandbox.is_confined() { serde_json::json!(spawn_confined_p50) } else { serde_json::Value::Null },
        "idle_child_pss_kib_p50": idle_pss_p50,
        "idle_child_private_dirty_kib_p50": idle_private_p50,
        "warm_invoke_unconfined_us_p50": warm_bare_p50,
        "warm_confined_vs_unconfined_ratio": warm_p50 / warm_bare_p50,
        "confined": sandbox.is_confined(),
        "cold_invoke_ms_p50": cold_p50,
        "warm_invoke_us_p50": warm_p50,
        "warm_invoke_us_p99": warm_p99,
        "throughput_per_s": throughput,
        "warm_invoke_trivial_interleaved_us_p50": json_trivial_p50,
        "warm_invoke_12kb_passthrough_us_p50": json_pass_p50,
        "warm_invoke_12kb_realistic_us_p50": json_real_p50,
        "json_path_12kb_us_p50": json_pass_p50 - json_trivial_p50,
        "event_12kb_bytes": event_12k.len(),
        "baseline_node_ms_p50": if node_ok { serde_json::json!(node_p50) } else { serde_json::Value::Null },
        "cold_vs_node_ratio": if node_ok { serde_json::json!(node_p50 / cold_p50) } else { serde_json::Value::Null },
        "warm_vs_node_ratio": if node_ok { serde_json::json!(node_p50 * 1e3 / warm_p50) } else { serde_json::Value::Null },
        "samples": {
            "spawn": spawn_n, "cold": cold_n, "warm": warm_n,
            "throughput": (tp_n / cores) * cores, "node": if node_ok { node_n } else { 0 },
            "json": json_n,
        },
        "cores": cores,
    });
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out_dir).expect("target/bench");
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&results).expect("json"),
    )
    .expect("write results");

    println!();
    println!("{:<30} {:>12}  target", "metric", "value");
    println!("{:<30} {:>12.2}  <= 10 ms", "spawn_ready_ms_p50", spawn_p50);
    if sandbox.is_confined() {
        println!(
            "{:<30} {:>12.2}  <= 10 ms",
            "spawn_ready_confined_ms_p50", spawn_confined_p50
        );
    }
    println!(
        "{:<30} {:>12.0}  (a stem child after Ready, alone)",
        "idle_child_pss_kib_p50", idle_pss_p50
    );
    println!(
        "{:<30} {:>12.0}  (what each further stem child adds)",
        "idle_child_private_kib_p50", idle_private_p50
    );
    println!("{:<30} {:>12.2}  <= 3 ms", "cold_invoke_ms_p50", cold_p50);
    println!("{:<30} {:>12.1}  <= 100 us", "warm_invoke_us_p50", warm_p50);
    println!("{:<30} {:>12.1}", "warm_invoke_us_p99", warm_p99);
    println!(
        "{:<30} {:>12.1}  (confined / bare = {:.2}, target <= 1.10)",
        "warm_invoke_unconfined_us_p50",
        warm_bare_p50,
        warm_p50 / warm_bare_p50
    );
    println!(
        "{:<30} {:>12.1}  (12 KB event, 12 KB body, interleaved with trivial {:.1})",
        "warm_invoke_12kb_passthrough_us_p50", json_pass_p50, json_trivial_p50
    );
    println!(
        "{:<30} {:>12.1}  (passthrough - trivial)",
        "json_path_12kb_us_p50",
        json_pass_p50 - json_trivial_p50
    );
    println!(
        "{:<30} {:>12.1}  (realistic handler, same event)",
        "warm_invoke_12kb_realistic_us_p50", json_real_p50
    );
    println!(
        "{:<30} {:>12.0}  >= 10000/s",
        "throughput_per_s", throughput
    );
    if node_ok {
        println!(
            "{:<30} {:>12.2}  (baseline)",
            "baseline_node_ms_p50", node_p50
        );
        println!(
            "cold start is {:.0}x faster than a fresh node process; a warm call {:.0}x",
            node_p50 / cold_p50,
            node_p50 * 1e3 / warm_p50
        );
    } else {
        println!("baseline_node_ms_p50: node not found, baseline skipped");
    }
    println!("written to {}", out_dir.join("results.json").display());
}
