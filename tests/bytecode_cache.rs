//! The compiled-module cache through the real pool and real, confined `sandbox-child`s: a child
//! that compiles a bundle returns its bytecode, the bundle cache keeps it under the typed
//! (tenant, sha256), and the next child bound to that same tenant and bundle reads it instead
//! of parsing. Observed through the pool's counters (`cs_invoker_bytecode_{hits,misses,
//! rejected}_total` on /metrics), the cache's contents, and the operator's warn log.

#[macro_use]
mod support;

use cs_invoker_pool::host::local::LocalHost;
use cs_invoker_pool::pipeline::cache::BundleCache;
use cs_invoker_pool::pool::{
    CompiledKey, CompiledModules, Execution, Job, Pool, PoolConfig, PoolStats,
};
use cs_invoker_pool::sandbox::{Sandbox, SandboxPolicy};
use sandbox_child::engine::bytecode;
use sandbox_proto::bundle::{self, Bundle};
use sandbox_proto::protocol::MAX_BYTECODE_BYTES;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::child_bin;

const MANIFEST: &str = r#"{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js",
  "limits":{"timeoutMs":5000,"memoryMb":64,"maxConcurrency":4}}"#;

/// Two files, so the bytecode path rebuilds an import as well.
fn make_bundle(tag: &str) -> Arc<Bundle> {
    let mut files = BTreeMap::new();
    files.insert(
        "function.js".to_string(),
        format!(
            "import {{ greet }} from './lib/greet.js';\n\
             export default (event) => ({{ statusCode: 200, body: greet(event.name) + ' {tag}' }});\n"
        )
        .into_bytes(),
    );
    files.insert(
        "lib/greet.js".to_string(),
        b"export const greet = (n) => `hello ${n}`;\n".to_vec(),
    );
    files.insert("manifest.json".to_string(), MANIFEST.as_bytes().to_vec());
    Arc::new(bundle::parse_tar(&bundle::pack(&files).unwrap()).unwrap())
}

fn job(bundle: &Arc<Bundle>, tenant: &str) -> Job {
    let deadline = Instant::now() + Duration::from_secs(10);
    support::pool_job(bundle, tenant, r#"{"name":"Sous"}"#, deadline)
}

/// A pool whose every child serves one activation (`max_uses = 1`): each job is a cold load,
/// so each one shows whether it read bytecode.
fn pool(test: &str, cache: &Arc<BundleCache>) -> Pool {
    let policy = SandboxPolicy {
        cgroup_prefix: format!("cs-test-bytecode-{test}"),
        ..SandboxPolicy::default()
    };
    let sandbox = Sandbox::prepare(&policy).unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = PoolConfig::new(child_bin(), Arc::new(sandbox));
    cfg.prewarm = 1;
    cfg.max_children = 4;
    cfg.max_uses = 1;
    let pool = Pool::start(cfg).expect("pool starts");
    pool.attach_compiled_modules(cache.clone());
    pool
}

fn body(ex: &Execution) -> String {
    match &ex.outcome {
        Ok(r) => r.body.clone(),
        Err(e) => panic!("expected success, got {e:?}"),
    }
}

fn counts(s: &PoolStats) -> (u64, u64, u64) {
    (s.bytecode_hits, s.bytecode_misses, s.bytecode_rejected)
}

fn key(tenant: &str, b: &Bundle) -> CompiledKey {
    CompiledKey {
        tenant: tenant.into(),
        sha256: b.sha256.clone(),
    }
}

/// Everything logged at warn and above by this test binary.
fn warnings() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Writer(sink.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn warned_about(sha256: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&warnings().lock().unwrap()).to_string();
    text.lines()
        .filter(|l| l.contains(sha256) && l.contains("refused the cached bytecode"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytecode_never_crosses_a_tenant_or_a_bundle() {
    let cache = Arc::new(BundleCache::new(16, 64 << 20));
    let pool = pool("isolation", &cache);
    let host = LocalHost::new();
    let (a, b) = (make_bundle("a"), make_bundle("b"));
    cache.insert(a.clone());
    cache.insert(b.clone());

    // tenant-1 compiles bundle a: a miss, and its bytecode is kept under (tenant-1, a).
    let ex = pool.invoke(&job(&a, "tenant-1"), &host).await;
    assert_eq!(body(&ex), "hello Sous a");
    assert_eq!(counts(&pool.stats()), (0, 1, 0));
    let t1a = cache
        .get_compiled(&key("tenant-1", &a))
        .expect("tenant-1's bytecode kept");
    assert!(bytecode::decode(&t1a).is_ok());

    // tenant-2 with the identical bundle bytes compiles its own: another miss, not a hit.
    let ex = pool.invoke(&job(&a, "tenant-2"), &host).await;
    assert_eq!(body(&ex), "hello Sous a");
    assert_eq!(counts(&pool.stats()), (0, 2, 0));
    assert!(cache.get_compiled(&key("tenant-2", &a)).is_some());

    // tenant-1 with another bundle never gets bundle a's bytecode.
    let ex = pool.invoke(&job(&b, "tenant-1"), &host).await;
    assert_eq!(body(&ex), "hello Sous b");
    assert_eq!(counts(&pool.stats()), (0, 3, 0));

    // The next child of (tenant-1, a) reads tenant-1's bytecode: a hit.
    let ex = pool.invoke(&job(&a, "tenant-1"), &host).await;
    assert!(ex.start.is_cold());
    assert_eq!(body(&ex), "hello Sous a");
    assert_eq!(counts(&pool.stats()), (1, 3, 0));

    // Damaging tenant-1's entry touches tenant-2 in no way: tenant-2 still hits its own.
    let mut bad = t1a.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(cache.put_compiled(&key("tenant-1", &a), bad));
    let ex = pool.invoke(&job(&a, "tenant-2"), &host).await;
    assert_eq!(body(&ex), "hello Sous a");
    assert_eq!(counts(&pool.stats()), (2, 3, 0));
    let s = cache.stats();
    assert_eq!(s.bytecode_items, 3);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_or_corrupt_entry_falls_back_to_the_source_and_is_replaced() {
    warnings();
    let cache = Arc::new(BundleCache::new(16, 64 << 20));
    let pool = pool("fallback", &cache);
    let host = LocalHost::new();
    let a = make_bundle("fallback");
    cache.insert(a.clone());
    let k = key("tenant-1", &a);

    let ex = pool.invoke(&job(&a, "tenant-1"), &host).await;
    assert_eq!(body(&ex), "hello Sous fallback");
    let good = cache.get_compiled(&k).expect("bytecode kept").to_vec();
    let modules = bytecode::decode(&good).unwrap();

    let stale = bytecode::encode_with_identity("sandbox-child 0.0.1 quickjs-ng 0.1.0", &modules);
    let mut damaged = good.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x55;
    // Right build and checksum around truncated bytecode: QuickJS itself refuses it, inside
    // the confined child, which rebuilds its engine and compiles the source.
    let truncated = bytecode::encode(
        &modules
            .iter()
            .map(|(p, c)| (p.clone(), c[..c.len() / 2].to_vec()))
            .collect(),
    );
    for (n, (what, entry)) in [
        ("another child build", stale),
        ("checksum", damaged),
        ("QuickJS could not read it", truncated),
    ]
    .into_iter()
    .enumerate()
    {
        assert!(cache.put_compiled(&k, entry));
        let ex = pool.invoke(&job(&a, "tenant-1"), &host).await;
        assert_eq!(
            body(&ex),
            "hello Sous fallback",
            "{what}: the function still runs"
        );
        assert_eq!(counts(&pool.stats()), (0, 1, n as u64 + 1), "{what}");
        // The entry is replaced by the fresh compile.
        assert_eq!(cache.get_compiled(&k).as_deref(), Some(&good[..]), "{what}");
        let warned = warned_about(&a.sha256);
        assert_eq!(warned.len(), n + 1, "{what}: {warned:?}");
        assert!(
            warned[n].contains("WARN") && warned[n].contains(what),
            "{warned:?}"
        );
    }
    // And the replacement is used.
    let ex = pool.invoke(&job(&a, "tenant-1"), &host).await;
    assert_eq!(body(&ex), "hello Sous fallback");
    assert_eq!(counts(&pool.stats()), (1, 1, 3));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytecode_over_the_frame_limit_is_not_cached() {
    let cache = Arc::new(BundleCache::new(16, 64 << 20));
    let pool = pool("frame", &cache);
    let host = LocalHost::new();
    // A string constant as large as a child's whole reply may be: its bytecode cannot fit.
    let big = "x".repeat(MAX_BYTECODE_BYTES + 1);
    let mut files = BTreeMap::new();
    files.insert(
        "function.js".to_string(),
        format!("const s = '{big}';\nexport default () => ({{ body: String(s.length) }});\n")
            .into_bytes(),
    );
    files.insert("manifest.json".to_string(), MANIFEST.as_bytes().to_vec());
    let a = Arc::new(bundle::parse_tar(&bundle::pack(&files).unwrap()).unwrap());
    cache.insert(a.clone());
    for round in 1..=2 {
        let ex = pool.invoke(&job(&a, "tenant-1"), &host).await;
        assert_eq!(body(&ex), (MAX_BYTECODE_BYTES + 1).to_string());
        assert_eq!(counts(&pool.stats()), (0, round, 0));
        assert!(cache.get_compiled(&key("tenant-1", &a)).is_none());
    }
    pool.shutdown().await;
}
