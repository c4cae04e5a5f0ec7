//! `make bench`: the compiled-module cache on a large bundle — mathjs bundled by esbuild
//! (~1.4 MB, benches/mathjs/, installed under target/bench/mathjs by the bench target) — cold
//! started on a confined stem child from source (what a pool without the cache does), from
//! source with the bytecode written back (a cache miss), and from the cached bytecode (a hit),
//! interleaved, medians. Beside them: Node's import of the same file in a fresh process.
//!
//! Prints a table and writes `target/bench/bytecode.json`. Skipped, saying so, when the bundle
//! is not installed (no npm or no registry).

#[path = "../tests/support/mod.rs"]
mod support;

use cs_invoker_pool::host::local::LocalHost;
use cs_invoker_pool::pipeline::cache::BundleCache;
use cs_invoker_pool::pool::{CompiledKey, CompiledModules, Execution, Job, Pool, PoolConfig};
use cs_invoker_pool::sandbox::{Sandbox, SandboxPolicy};
use sandbox_proto::bundle::{self, Bundle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MANIFEST: &str = r#"{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js",
  "limits":{"timeoutMs":30000,"memoryMb":256,"maxConcurrency":100}}"#;

fn child_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CS_SANDBOX_CHILD_BIN") {
        return PathBuf::from(p);
    }
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

fn job(bundle: &Arc<Bundle>, tenant: &str) -> Job {
    let deadline = Instant::now() + Duration::from_secs(30);
    support::pool_job(bundle, tenant, r#"{"expr":"2 + 3 * 4"}"#, deadline)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Pss and Rss of a process, in KiB.
fn memory_kb(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    (field("Pss:"), field("Rss:"))
}

struct Pools {
    plain: Pool,
    cached: Pool,
}

fn pool(sandbox: &Arc<Sandbox>, max_uses: u32) -> Pool {
    let mut cfg = PoolConfig::new(child_bin(), sandbox.clone());
    cfg.prewarm = 1;
    cfg.max_children = 4;
    cfg.max_uses = max_uses;
    Pool::start(cfg).expect("pool starts")
}

/// One cold call on a stem child (waiting for the stem first, so no spawn is measured).
async fn cold(pool: &Pool, job: &Job, host: &LocalHost) -> (Execution, Duration) {
    assert!(pool.wait_prewarmed(Duration::from_secs(30)).await);
    let t = Instant::now();
    let ex = pool.invoke(job, host).await;
    let total = t.elapsed();
    match &ex.outcome {
        Ok(r) => assert_eq!(r.body, "14"),
        Err(e) => panic!("the mathjs bundle failed: {e:?}"),
    }
    assert!(ex.start.is_cold());
    (ex, total)
}

fn node_import_ms(dir: &Path, rounds: usize) -> Option<f64> {
    let mut v = Vec::new();
    for _ in 0..rounds {
        let out = Command::new("node")
            .arg("import.mjs")
            .arg("bundle/function.mjs")
            .current_dir(dir)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        let t: f64 = it.next()?.parse().ok()?;
        if it.next() != Some("14") {
            return None;
        }
        v.push(t);
    }
    Some(median(&mut v))
}

fn main() {
    let dir = PathBuf::from(
        std::env::var("CS_BENCH_MATHJS_DIR").unwrap_or_else(|_| "target/bench/mathjs".into()),
    );
    let source = match std::fs::read(dir.join("bundle/function.js")) {
        Ok(s) => s,
        Err(e) => {
            println!(
                "bytecode bench skipped: no mathjs bundle in {} ({e}); `make bench` installs it",
                dir.display()
            );
            return;
        }
    };
    let rounds: usize = std::env::var("CS_BENCH_BYTECODE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let mut files = BTreeMap::new();
    files.insert("function.js".to_string(), source.clone());
    files.insert("manifest.json".to_string(), MANIFEST.as_bytes().to_vec());
    let bundle = Arc::new(bundle::parse_tar(&bundle::pack(&files).expect("pack")).expect("bundle"));
    // The same code inside a function that never runs: QuickJS compiles every function
    // eagerly, so this bundle costs the whole parse (or read) and next to no evaluation — what
    // the cache saves, apart from mathjs' own start-up (its factories), which both paths run.
    let text = String::from_utf8_lossy(&source).to_string();
    let export = "export {\n  handle as default\n};";
    let parse_only = text.contains(export).then(|| {
        let wrapped = format!(
            "export default () => ({{ statusCode: 200, body: '14' }});\nfunction unused() {{\n{}",
            text.replacen(export, "}", 1)
        );
        let mut files = BTreeMap::new();
        files.insert("function.js".to_string(), wrapped.into_bytes());
        files.insert("manifest.json".to_string(), MANIFEST.as_bytes().to_vec());
        Arc::new(bundle::parse_tar(&bundle::pack(&files).expect("pack")).expect("bundle"))
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let policy = SandboxPolicy {
            cgroup_prefix: "cs-bench-bytecode".into(),
            ..SandboxPolicy::default()
        };
        let sandbox = Arc::new(Sandbox::prepare(&policy).expect("sandbox"));
        let confined = sandbox.is_confined();
        let cache = Arc::new(BundleCache::new(16, 256 << 20));
        cache.insert(bundle.clone());
        let pools = Pools {
            plain: pool(&sandbox, 1),
            cached: pool(&sandbox, 1),
        };
        pools.cached.attach_compiled_modules(cache.clone());
        let host = LocalHost::new();

        // The cache's entry for the tenant whose hits are measured.
        let (first, _) = cold(&pools.cached, &job(&bundle, "hits"), &host).await;
        let key = CompiledKey {
            tenant: "hits".into(),
            sha256: bundle.sha256.clone(),
        };
        let bytecode_len = cache.get_compiled(&key).map(|b| b.len()).unwrap_or(0);
        assert!(bytecode_len > 0, "no bytecode came back ({:?})", first.outcome);

        let (mut src_load, mut src_total) = (Vec::new(), Vec::new());
        let (mut miss_load, mut miss_total) = (Vec::new(), Vec::new());
        let (mut hit_load, mut hit_total) = (Vec::new(), Vec::new());
        for i in 0..rounds {
            let (ex, t) = cold(&pools.plain, &job(&bundle, "plain"), &host).await;
            src_load.push(ms(ex.load));
            src_total.push(ms(t));
            // A tenant of its own each round: always a miss (compile, write, keep).
            let (ex, t) = cold(&pools.cached, &job(&bundle, &format!("miss-{i}")), &host).await;
            miss_load.push(ms(ex.load));
            miss_total.push(ms(t));
            let (ex, t) = cold(&pools.cached, &job(&bundle, "hits"), &host).await;
            hit_load.push(ms(ex.load));
            hit_total.push(ms(t));
        }
        let stats = pools.cached.stats();
        assert_eq!(stats.bytecode_hits, rounds as u64);

        // Parse alone: the wrapped bundle, from source and from its bytecode.
        let (mut parse_src, mut parse_bc) = (Vec::new(), Vec::new());
        if let Some(p) = &parse_only {
            cache.insert(p.clone());
            cold(&pools.cached, &job(p, "parse"), &host).await;
            for _ in 0..rounds {
                let (ex, _) = cold(&pools.plain, &job(p, "plain"), &host).await;
                parse_src.push(ms(ex.load));
                let (ex, _) = cold(&pools.cached, &job(p, "parse"), &host).await;
                parse_bc.push(ms(ex.load));
            }
        }
        let (ps, pb) = (median(&mut parse_src), median(&mut parse_bc));
        assert_eq!(stats.bytecode_rejected, 0);

        // Memory of a warm child loaded each way.
        let mem_pool_plain = pool(&sandbox, 10);
        let mem_pool_cached = pool(&sandbox, 10);
        mem_pool_cached.attach_compiled_modules(cache.clone());
        let (ex_src, _) = cold(&mem_pool_plain, &job(&bundle, "mem"), &host).await;
        let (ex_bc, _) = cold(&mem_pool_cached, &job(&bundle, "hits"), &host).await;
        let (pss_src, rss_src) = memory_kb(ex_src.child_pid);
        let (pss_bc, rss_bc) = memory_kb(ex_bc.child_pid);

        let node = node_import_ms(&dir, rounds.min(7));
        let (sl, st) = (median(&mut src_load), median(&mut src_total));
        let (ml, mt) = (median(&mut miss_load), median(&mut miss_total));
        let (hl, ht) = (median(&mut hit_load), median(&mut hit_total));

        println!();
        println!(
            "compiled-module cache: mathjs bundled by esbuild, {} bytes of source, {} bytes of \
             bytecode, {rounds} interleaved rounds, {}",
            source.len(),
            bytecode_len,
            if confined { "confined" } else { "UNCONFINED" }
        );
        println!("{:<44} {:>10} {:>14}", "cold start of a stem child", "load ms", "first call ms");
        println!("{:<44} {sl:>10.1} {st:>14.1}", "from source (no cache)");
        println!("{:<44} {ml:>10.1} {mt:>14.1}", "from source, bytecode written back (miss)");
        println!("{:<44} {hl:>10.1} {ht:>14.1}", "from cached bytecode (hit)");
        println!(
            "{:<44} {ps:>10.1}",
            "parse only (top level not run), from source"
        );
        println!(
            "{:<44} {pb:>10.1}",
            "parse only (top level not run), from bytecode"
        );
        match node {
            Some(n) => println!("{:<44} {n:>10.1}", "node 20 import of the same file (fresh process)"),
            None => println!("node import: not measured (node missing or failed)"),
        }
        println!(
            "warm child memory: from source Pss {:.0} KiB / Rss {:.0} KiB; from bytecode Pss {:.0} KiB / Rss {:.0} KiB",
            pss_src, rss_src, pss_bc, rss_bc
        );
        println!("speed-up of the load from the cache: {:.1}x", sl / hl);

        let results = serde_json::json!({
            "bundle_source_bytes": source.len(),
            "bundle_bytecode_bytes": bytecode_len,
            "rounds": rounds,
            "confined": confined,
            "load_from_source_ms_p50": sl,
            "cold_call_from_source_ms_p50": st,
            "load_miss_ms_p50": ml,
            "cold_call_miss_ms_p50": mt,
            "load_from_bytecode_ms_p50": hl,
            "cold_call_from_bytecode_ms_p50": ht,
            "node_import_ms_p50": node,
            "parse_only_load_from_source_ms_p50": ps,
            "parse_only_load_from_bytecode_ms_p50": pb,
            "warm_child_pss_kib_from_source": pss_src,
            "warm_child_pss_kib_from_bytecode": pss_bc,
            "warm_child_rss_kib_from_source": rss_src,
            "warm_child_rss_kib_from_bytecode": rss_bc,
        });
        let out_dir = PathBuf::from("target/bench");
        let _ = std::fs::create_dir_all(&out_dir);
        std::fs::write(
            out_dir.join("bytecode.json"),
            serde_json::to_string_pretty(&results).expect("json"),
        )
        .expect("write results");
        println!("written to {}", out_dir.join("bytecode.json").display());

        for p in [&pools.plain, &pools.cached, &mem_pool_plain, &mem_pool_cached] {
            p.shutdown().await;
        }
    });
}
