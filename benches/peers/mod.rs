//! The peers a user would pick instead of this pool, measured by `make bench` in the same run
//! as our own figures, round by round, so that the load on these shared 2-core machines hits
//! every system alike (issue 15):
//!
//! - **isolated-vm** 7 (V8 isolates inside one Node 24 process: `ivm.mjs`): a warm call
//!   synchronous and asynchronous, a cold start (new isolate, context, module, first call), and
//!   throughput with one isolate per core;
//! - a fresh **deno** process per call and a fresh **node** process per call (`runner.mjs`).
//!
//! Same handlers and events as ours: the trivial one on `{"n":1}`, the realistic one on the
//! 12 KB order event; the event crosses as JSON text and the result comes back as JSON text,
//! as with our child. `make bench` installs the peers (exact versions, `package-lock.json`)
//! into `target/bench/peers` once (`install.sh`); a peer that is missing is skipped, and said.

use super::{env_usize, job, percentile, HANDLER, REALISTIC_HANDLER};
use cs_invoker_pool::host::local::LocalHost;
use cs_invoker_pool::pool::{Pool, PoolConfig, StartKind};
use cs_invoker_pool::sandbox::Sandbox;
use sandbox_proto::bundle::Bundle;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Peers {
    /// Where install.sh put the peers and their scripts.
    dir: PathBuf,
    /// The handlers and events, as files the peers read.
    work: PathBuf,
    node24: Option<PathBuf>,
    deno: Option<PathBuf>,
    node: bool,
    warm_n: usize,
    cold_n: usize,
    fresh_n: usize,
}

/// Our side of one round.
pub struct OursRound {
    warm_us: Vec<f64>,
    real_us: Vec<f64>,
    cold_ms: Vec<f64>,
}

#[derive(Default)]
pub struct Comparison {
    ours_warm_us: Vec<f64>,
    ours_real_us: Vec<f64>,
    ours_cold_ms: Vec<f64>,
    pub ours_throughput: Vec<f64>,
    ivm_sync_us: Vec<f64>,
    ivm_async_us: Vec<f64>,
    ivm_real_sync_us: Vec<f64>,
    ivm_real_async_us: Vec<f64>,
    ivm_cold_ms: Vec<f64>,
    ivm_throughput: Vec<f64>,
    deno_ms: Vec<f64>,
    node_ms: Vec<f64>,
    /// `cs-invoker-pool run` of the same handler: one fresh, fully confined child per process.
    ours_run_ms: Vec<f64>,
    notes: Vec<String>,
}

impl Comparison {
    pub fn add_ours(&mut self, r: OursRound) {
        self.ours_warm_us.extend(r.warm_us);
        self.ours_real_us.extend(r.real_us);
        self.ours_cold_ms.extend(r.cold_ms);
    }
}

/// Runs `program` and returns its stdout, or why not.
fn run(program: &Path, args: &[&Path]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} exited with {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Peers {
    pub fn find(dir: &Path, event_12k: &str) -> Peers {
        let work = std::env::temp_dir().join(format!("cs-bench-peers-{}", std::process::id()));
        std::fs::create_dir_all(&work).expect("peer work dir");
        for (name, text) in [
            ("trivial.mjs", HANDLER),
            ("realistic.mjs", REALISTIC_HANDLER),
            ("small.json", r#"{"n":1}"#),
            ("12k.json", event_12k),
        ] {
            std::fs::write(work.join(name), text).expect("peer file");
        }
        let bin = |name: &str| {
            let p = dir.join("node_modules/.bin").join(name);
            p.is_file().then_some(p)
        };
        let peers = Peers {
            dir: dir.to_path_buf(),
            work,
            node24: bin("node").filter(|_| dir.join("ivm.mjs").is_file()),
            deno: bin("deno"),
            node: Command::new("node").arg("--version").output().is_ok(),
            warm_n: env_usize("BENCH_PEER_WARM_N", 1000),
            cold_n: env_usize("BENCH_PEER_COLD_N", 10),
            fresh_n: env_usize("BENCH_PEER_FRESH_N", 5),
        };
        if peers.node24.is_none() || peers.deno.is_none() {
            println!(
                "note: peers not installed in {} (benches/peers/install.sh): isolated-vm/deno skipped",
                dir.display()
            );
        }
        peers
    }

    fn file(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// One round of every peer; failures are recorded as notes, not panics.
    pub fn round(&self, cmp: &mut Comparison) {
        if let Some(node24) = &self.node24 {
            let script = self.dir.join("ivm.mjs");
            let (warm, cold) = (self.warm_n.to_string(), self.cold_n.to_string());
            let trivial = run(
                node24,
                &[
                    &script,
                    &self.file("trivial.mjs"),
                    &self.file("small.json"),
                    Path::new(&warm),
                    Path::new(&cold),
                ],
            );
            let realistic = run(
                node24,
                &[
                    &script,
                    &self.file("realistic.mjs"),
                    &self.file("12k.json"),
                    Path::new(&warm),
                    Path::new("0"),
                ],
            );
            match (trivial, realistic) {
                (Ok(t), Ok(r)) => {
                    let (t, r): (serde_json::Value, serde_json::Value) = (
                        serde_json::from_str(&t).expect("ivm.mjs prints JSON"),
                        serde_json::from_str(&r).expect("ivm.mjs prints JSON"),
                    );
                    let samples = |v: &serde_json::Value, k: &str| -> Vec<f64> {
                        v[k].as_array()
                            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                            .unwrap_or_default()
                    };
                    cmp.ivm_sync_us.extend(samples(&t, "warm_sync_us"));
                    cmp.ivm_async_us.extend(samples(&t, "warm_async_us"));
                    cmp.ivm_cold_ms
                        .extend(samples(&t, "cold_us").iter().map(|us| us / 1e3));
                    cmp.ivm_throughput.extend(t["throughput_per_s"].as_f64());
                    cmp.ivm_real_sync_us.extend(samples(&r, "warm_sync_us"));
                    cmp.ivm_real_async_us.extend(samples(&r, "warm_async_us"));
                }
                (Err(e), _) | (_, Err(e)) => cmp.notes.push(format!("isolated-vm: {e}")),
            }
        }
        let fresh = |program: &Path, pre: &[&Path], out: &mut Vec<f64>, notes: &mut Vec<String>| {
            let runner = self.dir.join("runner.mjs");
            let runner = if runner.is_file() {
                runner
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/runner.mjs")
            };
            for _ in 0..self.fresh_n {
                let (h, e) = (self.file("trivial.mjs"), self.file("small.json"));
                let mut args: Vec<&Path> = pre.to_vec();
                args.extend([runner.as_path(), h.as_path(), e.as_path()]);
                let t = Instant::now();
                match run(program, &args) {
                    Ok(_) => out.push(t.elapsed().as_secs_f64() * 1e3),
                    Err(e) => {
                        notes.push(e);
                        return;
                    }
                }
            }
        };
        if let Some(deno) = &self.deno {
            fresh(
                deno,
                &[Path::new("run"), Path::new("--allow-read")],
                &mut cmp.deno_ms,
                &mut cmp.notes,
            );
        }
        if self.node {
            fresh(Path::new("node"), &[], &mut cmp.node_ms, &mut cmp.notes);
        }
        // Ours as a fresh process too: `run` starts the supervisor, one confined child (its
        // cgroup, namespaces, seccomp), loads, invokes, tears down.
        let ours = Path::new(env!("CARGO_BIN_EXE_cs-invoker-pool"));
        let (h, e) = (self.file("trivial.mjs"), self.file("small.json"));
        for _ in 0..self.fresh_n {
            let t = Instant::now();
            match run(ours, &[Path::new("run"), &h, Path::new("--event-file"), &e]) {
                Ok(_) => cmp.ours_run_ms.push(t.elapsed().as_secs_f64() * 1e3),
                Err(e) => {
                    cmp.notes.push(e);
                    break;
                }
            }
        }
    }

    pub fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// Our side of one round, on a confined pool: warm calls of the trivial and the realistic
/// handler interleaved, then cold calls (a stem child's first call, a new tenant each time).
pub async fn ours_round(
    bin: &Path,
    sandbox: &Arc<Sandbox>,
    host: &LocalHost,
    [trivial, realistic]: [&Arc<Bundle>; 2],
    event_12k: &str,
    round: usize,
) -> OursRound {
    let warm_n = env_usize("BENCH_PEER_WARM_N", 1000);
    let cold_n = env_usize("BENCH_PEER_COLD_N", 10);
    let mut cfg = PoolConfig::new(bin.to_path_buf(), Arc::clone(sandbox));
    cfg.prewarm = 2;
    let pool = Pool::start(cfg).expect("pool");
    let jt = job(trivial, "peer");
    let mut jr = job(realistic, "peer");
    jr.event_json = event_12k.to_string();
    let _ = pool.invoke(&jt, host).await;
    let _ = pool.invoke(&jr, host).await;
    let mut r = OursRound {
        warm_us: Vec::new(),
        real_us: Vec::new(),
        cold_ms: Vec::new(),
    };
    for _ in 0..warm_n {
        for (j, out) in [(&jt, &mut r.warm_us), (&jr, &mut r.real_us)] {
            let t = Instant::now();
            let ex = pool.invoke(j, host).await;
            out.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(ex.start, StartKind::Warm);
            assert!(ex.outcome.is_ok(), "{:?}", ex.outcome);
        }
    }
    for i in 0..cold_n {
        assert!(pool.wait_prewarmed(Duration::from_secs(5)).await);
        let j = job(trivial, &format!("peercold{round}x{i}"));
        let t = Instant::now();
        let ex = pool.invoke(&j, host).await;
        r.cold_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(ex.start, StartKind::Stem);
        assert!(ex.outcome.is_ok(), "{:?}", ex.outcome);
    }
    pool.shutdown().await;
    r
}

/// (figure, peer, ours, peer's, higher is better).
type Row = (&'static str, &'static str, Option<f64>, Option<f64>, bool);

fn median(v: &mut [f64]) -> Option<f64> {
    let m = percentile(v, 0.5);
    m.is_finite().then_some(m)
}

impl Comparison {
    /// Prints the side-by-side table and returns its figures for results.json. Ratios are
    /// peer / ours for times (above 1: we are faster) and ours / peer for throughput (above 1:
    /// we serve more).
    pub fn report(&mut self) -> serde_json::Value {
        let ours_warm = median(&mut self.ours_warm_us);
        let ours_real = median(&mut self.ours_real_us);
        let ours_cold = median(&mut self.ours_cold_ms);
        let ours_tp = median(&mut self.ours_throughput);
        let rows: Vec<Row> = vec![
            (
                "warm_trivial_us",
                "isolated-vm sync",
                ours_warm,
                median(&mut self.ivm_sync_us),
                false,
            ),
            (
                "warm_trivial_us",
                "isolated-vm async",
                ours_warm,
                median(&mut self.ivm_async_us),
                false,
            ),
            (
                "warm_12kb_realistic_us",
                "isolated-vm sync",
                ours_real,
                median(&mut self.ivm_real_sync_us),
                false,
            ),
            (
                "warm_12kb_realistic_us",
                "isolated-vm async",
                ours_real,
                median(&mut self.ivm_real_async_us),
                false,
            ),
            (
                "cold_first_call_ms",
                "isolated-vm new isolate",
                ours_cold,
                median(&mut self.ivm_cold_ms),
                false,
            ),
            (
                "cold_first_call_ms",
                "deno fresh process",
                ours_cold,
                median(&mut self.deno_ms),
                false,
            ),
            (
                "cold_first_call_ms",
                "node fresh process",
                ours_cold,
                median(&mut self.node_ms),
                false,
            ),
            (
                "fresh_process_ms",
                "deno fresh process",
                median(&mut self.ours_run_ms),
                median(&mut self.deno_ms),
                false,
            ),
            (
                "fresh_process_ms",
                "node fresh process",
                median(&mut self.ours_run_ms),
                median(&mut self.node_ms),
                false,
            ),
            (
                "throughput_per_s",
                "isolated-vm, isolate per core",
                ours_tp,
                median(&mut self.ivm_throughput),
                true,
            ),
        ];
        println!();
        println!("peers, interleaved in this run (medians):");
        println!(
            "{:<24} {:<30} {:>10} {:>10} {:>8}",
            "figure", "peer", "ours", "peer", "ratio"
        );
        let mut out = serde_json::Map::new();
        for (figure, peer, ours, theirs, higher_is_better) in rows {
            let ratio = match (ours, theirs) {
                (Some(o), Some(t)) if higher_is_better => Some(o / t),
                (Some(o), Some(t)) => Some(t / o),
                _ => None,
            };
            let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
            println!(
                "{:<24} {:<30} {:>10} {:>10} {:>8}",
                figure,
                peer,
                show(ours),
                show(theirs),
                show(ratio)
            );
            let key = format!(
                "{figure}:{}",
                peer.replace([' ', ','], "_").replace("__", "_")
            );
            out.insert(key, json!({ "ours": ours, "peer": theirs, "ratio": ratio }));
        }
        println!("(ratio: peer/ours for times, ours/peer for throughput; above 1 we lead)");
        for n in &self.notes {
            println!("note: {n}");
        }
        json!({
            "rows": out,
            "samples": {
                "ours_warm": self.ours_warm_us.len(), "ours_cold": self.ours_cold_ms.len(),
                "ivm_warm": self.ivm_sync_us.len(), "ivm_cold": self.ivm_cold_ms.len(),
                "deno": self.deno_ms.len(), "node": self.node_ms.len(),
                "ours_run": self.ours_run_ms.len(),
            },
            "notes": self.notes,
        })
    }
}
