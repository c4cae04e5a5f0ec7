//! Confinement through the real supervisor pool, the real `sandbox-child` and a real
//! [`Sandbox`]: escape attempts from inside a confined child, the view of a running child from
//! outside, memory limits, and cgroups never being left behind.
//!
//! The escape tests need the test-only build of the child (`--features escape-tests`, which
//! defines the JS global `__csEscape(op)`); `make test` builds it in its own target directory
//! and passes its path in `CS_ESCAPE_CHILD_BIN`. Without it, or when this host cannot confine
//! (not root, no cgroups), the tests that need it skip with a printed reason — unless
//! `CS_REQUIRE_SANDBOX=1`, when they fail.

#[macro_use]
mod support;

use cs_invoker_pool::cgroup::CgroupVersion;
use cs_invoker_pool::host::local::LocalHost;
use cs_invoker_pool::pool::{ErrorType, Execution, Job, KillReason, Pool, PoolConfig};
use cs_invoker_pool::sandbox::{self, Sandbox, SandboxPolicy};
use sandbox_child::confine::syscalls;
use sandbox_proto::bundle::{self, Bundle};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{child_bin, invoker_bin};

/// The escape build of `sandbox-child`.
const ESCAPE_BIN_ENV: &str = "CS_ESCAPE_CHILD_BIN";

/// Memory a child's cgroup may allow beyond `memoryMb` at most (the measured idle child plus
/// the pool's slack must stay well under this).
const MAX_HEADROOM_MB: u64 = 64;

// --- set-up -----------------------------------------------------------------------------------

/// Skips (returns `None`) with a printed reason, or fails under `CS_REQUIRE_SANDBOX=1`.
fn skip<T>(why: &str) -> Option<T> {
    if sandbox::required_by_env() {
        panic!("{}=1 but {why}", sandbox::REQUIRE_ENV);
    }
    eprintln!("skipping: {why}");
    None
}

/// The escape build of the child, from `CS_ESCAPE_CHILD_BIN`.
fn escape_bin() -> Option<PathBuf> {
    match std::env::var_os(ESCAPE_BIN_ENV) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "{ESCAPE_BIN_ENV}={} does not exist: build it with `cargo build -p sandbox-child \
                 --features escape-tests --target-dir target/escape` (make test does)",
                p.display()
            );
            assert_ne!(
                std::fs::canonicalize(&p).ok(),
                std::fs::canonicalize(child_bin()).ok(),
                "{ESCAPE_BIN_ENV} must not be the normal child binary"
            );
            Some(p)
        }
        None => skip(&format!(
            "{ESCAPE_BIN_ENV} is not set (the escape build of sandbox-child; `make test` sets it)"
        )),
    }
}

/// A fully confined sandbox with its own cgroup parent (one sandbox per prefix per process),
/// or `None` (skip) when this host cannot confine.
fn sandbox(test: &str) -> Option<Arc<Sandbox>> {
    let policy = SandboxPolicy {
        cgroup_prefix: format!("cs-test-confinement-{test}"),
        ..SandboxPolicy::default()
    };
    let s = Sandbox::prepare(&policy).unwrap_or_else(|e| panic!("{e}"));
    if !s.is_confined() {
        return skip(&format!("this host cannot confine: {:?}", s.unconfined));
    }
    assert!(s.cgroups.is_some() && s.confine.is_some(), "{s:?}");
    Some(Arc::new(s))
}

fn pool(bin: PathBuf, sandbox: &Arc<Sandbox>, prewarm: usize) -> Pool {
    let mut cfg = PoolConfig::new(bin, Arc::clone(sandbox));
    cfg.prewarm = prewarm;
    cfg.max_children = 8;
    Pool::start(cfg).expect("pool starts")
}

/// Shuts the pool down and checks that no child cgroup is left under the sandbox's parents,
/// then drops the sandbox and checks that the parents themselves are gone.
async fn finish(pool: Pool, sandbox: Arc<Sandbox>) {
    pool.shutdown().await;
    let parents = sandbox.cgroups.as_ref().unwrap().parent_paths();
    for p in &parents {
        let left: Vec<_> = std::fs::read_dir(p)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "child cgroups left after shutdown: {left:?}"
        );
    }
    drop(pool);
    drop(sandbox);
    // The pool's background task holds the last reference until it has seen the shutdown.
    wait_until("the sandbox's parent cgroups to be removed", || {
        parents.iter().all(|p| !p.exists())
    })
    .await;
}

fn make_bundle(source: &str, memory_mb: u64, timeout_ms: u64) -> Arc<Bundle> {
    let manifest = format!(
        r#"{{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js",
          "limits":{{"timeoutMs":{timeout_ms},"memoryMb":{memory_mb},"maxConcurrency":4}}}}"#
    );
    let mut files = BTreeMap::new();
    files.insert("function.js".to_string(), source.as_bytes().to_vec());
    files.insert("manifest.json".to_string(), manifest.into_bytes());
    Arc::new(bundle::parse_tar(&bundle::pack(&files).unwrap()).unwrap())
}

fn job(bundle: &Arc<Bundle>, event: &serde_json::Value) -> Job {
    let deadline = Instant::now() + Duration::from_millis(bundle.timeout_ms());
    support::pool_job(bundle, "t", &event.to_string(), deadline)
}

fn body(ex: &Execution) -> String {
    match &ex.outcome {
        Ok(r) => r.body.clone(),
        Err(e) => panic!("expected success, got {e:?}"),
    }
}

/// The activation's `error.type` and `error.message`, as a caller of the API sees them.
fn error_of(ex: &Execution) -> (String, String) {
    let r = ex.to_invocation_result("a", "r", 0);
    let e = r
        .error
        .unwrap_or_else(|| panic!("expected an error, got {:?}", r.result));
    (e.kind.to_string(), e.message)
}

/// Whether `pid` is a live process (a zombie counts as dead).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may contain spaces.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn wait_until_blocking(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `/proc/<pid>/status` as `field → value`.
fn proc_status(pid: u32) -> BTreeMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"))
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The cgroup paths of `pid`, one per hierarchy line of `/proc/<pid>/cgroup`:
/// `(controllers, path)`; v2 has empty controllers.
fn proc_cgroups(pid: u32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/cgroup: {e}"))
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _id = f.next()?;
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

/// The filesystem directory of cgroup `path` of a `/proc/<pid>/cgroup` line with `controllers`,
/// through this process's mount table.
fn cgroup_dir(controllers: &str, path: &str) -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in mountinfo.lines() {
        let (pre, post) = line.split_once(" - ")?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (root, mount_point) = (pre.get(3)?, pre.get(4)?);
        let (fstype, super_opts) = (post.first()?, post.get(2).unwrap_or(&""));
        let matches = if controllers.is_empty() {
            *fstype == "cgroup2"
        } else {
            *fstype == "cgroup"
                && controllers
                    .split(',')
                    .all(|c| super_opts.split(',').any(|o| o == c))
        };
        if !matches {
            continue;
        }
        let rel = if *root == "/" {
            path
        } else {
            match path.strip_prefix(root) {
                Some(r) => r,
                None => continue,
            }
        };
        let dir = Path::new(mount_point).join(rel.trim_start_matches('/'));
        if dir.is_dir() {
            return Some(dir);
        }
    }
    None
}

/// The child's own cgroup directories: asserts that in every hierarchy that limits it (v1:
/// memory and pids; v2: the unified tree) the child is in a cgroup directly under one of the
/// sandbox's parents, alone.
fn child_cgroup_dirs(pid: u32, sandbox: &Sandbox) -> Vec<PathBuf> {
    let cgroups = sandbox.cgroups.as_ref().unwrap();
    let parents = cgroups.parent_paths();
    let lines = proc_cgroups(pid);
    let limiting: Vec<&(String, String)> = match cgroups.version() {
        CgroupVersion::V1 => ["memory", "pids"]
            .iter()
            .map(|want| {
                lines
                    .iter()
                    .find(|(ctl, _)| ctl.split(',').any(|c| c == *want))
                    .unwrap_or_else(|| panic!("no {want} line for {pid}: {lines:?}"))
            })
            .collect(),
        CgroupVersion::V2 => vec![lines
            .iter()
            .find(|(ctl, _)| ctl.is_empty())
            .unwrap_or_else(|| panic!("no v2 line for {pid}: {lines:?}"))],
    };
    let mut dirs = Vec::new();
    for (ctl, path) in limiting {
        let dir = cgroup_dir(ctl, path)
            .unwrap_or_else(|| panic!("{ctl}:{path} of {pid} is not mounted here"));
        assert!(
            dir.parent().is_some_and(|p| parents.iter().any(|q| q == p)),
            "child {pid} is in {} ({ctl}), not directly under the sandbox's parents {parents:?}",
            dir.display()
        );
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert_eq!(
            procs.split_whitespace().collect::<Vec<_>>(),
            vec![pid.to_string()],
            "{} holds exactly the child",
            dir.display()
        );
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// The first of `file` found in `dirs`, parsed as a number.
fn read_limit(dirs: &[PathBuf], files: &[&str]) -> u64 {
    for d in dirs {
        for f in files {
            if let Ok(s) = std::fs::read_to_string(d.join(f)) {
                return s
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{}/{f}: {s:?}: {e}", d.display()));
            }
        }
    }
    panic!("none of {files:?} in {dirs:?}")
}

// --- escape attempts --------------------------------------------------------------------------

/// Calls `__csEscape(event.op)` and returns its report; under seccomp a forbidden op never
/// returns.
const ESCAPE: &str = "export default (event) => ({ statusCode: 200, body: __csEscape(event.op) });";
const OK: &str = r#"export default () => ({ statusCode: 200, body: "ok" });"#;

/// The ops the issue names; the binary's list must contain at least these.
const REQUIRED_OPS: &[&str] = &[
    "open",
    "openat",
    "creat",
    "socket",
    "execve",
    "fork",
    "clone",
    "ptrace",
    "mount",
    "unshare",
    "setns",
    "bpf",
    "keyctl",
    "io_uring_setup",
    "kill:<pid>",
    "setuid",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_escape_attempt_is_a_sandbox_error_naming_the_syscall() {
    let Some(bin) = escape_bin() else { return };
    let Some(sandbox) = sandbox("escape") else {
        return;
    };
    let pool = pool(bin, &sandbox, 2);
    let host = LocalHost::new();

    // The op list of the very binary under test (`__csEscape.ops` = escape::ESCAPE_OPS).
    let list = make_bundle(
        "export default () => ({ statusCode: 200, body: JSON.stringify(__csEscape.ops) });",
        64,
        5000,
    );
    let ops: Vec<serde_json::Value> = serde_json::from_str(&body(
        &pool
            .invoke(&job(&list, &serde_json::json!({})), &host)
            .await,
    ))
    .unwrap();
    let ops: Vec<(String, String)> = ops
        .iter()
        .map(|o| {
            (
                o["op"].as_str().unwrap().to_string(),
                o["syscall"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in REQUIRED_OPS {
        assert!(
            ops.iter().any(|(op, _)| op == want),
            "{want} missing from {ops:?}"
        );
    }

    let escape = make_bundle(ESCAPE, 64, 5000);
    let ok = make_bundle(OK, 64, 5000);
    let mut failures = Vec::new();
    for (i, (op, syscall)) in ops.iter().enumerate() {
        // Another pid than the child's own: the supervisor's (this test process).
        let arg = match op.as_str() {
            "kill:<pid>" => format!("kill:{}", std::process::id()),
            o => o.to_string(),
        };
        let nr = syscalls::number(syscall).expect("the syscall is in the name table");
        let want = format!("blocked syscall {nr} ({syscall})");
        let ex = pool
            .invoke(&job(&escape, &serde_json::json!({ "op": arg })), &host)
            .await;
        match &ex.outcome {
            Err(e) if e.kind == ErrorType::SandboxError && e.message.contains(&want) => {
                let (kind, message) = error_of(&ex);
                assert_eq!(kind, "SandboxError");
                println!("{op:<16} → {message}");
            }
            other => failures.push(format!(
                "{arg}: wanted SandboxError with {want:?}, got {other:?}"
            )),
        }
        let violations = pool.stats().kills_for(KillReason::SandboxViolation);
        if violations != i as u64 + 1 {
            failures.push(format!(
                "{arg}: {violations} sandbox_violation kills after {} escapes",
                i + 1
            ));
        }
        let pid = ex.child_pid;
        wait_until(
            &format!("the child of {arg} (pid {pid}) to be gone"),
            || !alive(pid),
        )
        .await;
        // The pool still serves.
        let next = pool.invoke(&job(&ok, &serde_json::json!({})), &host).await;
        assert_eq!(body(&next), "ok", "after {arg}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    finish(pool, sandbox).await;
}

// --- the view from outside --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_child_is_confined_as_seen_from_outside() {
    let Some(sandbox) = sandbox("view") else {
        return;
    };
    let pool = pool(child_bin(), &sandbox, 0);
    let host = Arc::new(LocalHost::new());
    let memory_mb = 32;
    let spin = make_bundle(
        "export default () => { while (true) {} }",
        memory_mb,
        30_000,
    );
    let j = job(&spin, &serde_json::json!({}));
    let (p2, h2) = (pool.clone(), Arc::clone(&host));
    let run = tokio::spawn(async move { p2.invoke(&j, &*h2).await });
    let mut busy = Vec::new();
    wait_until("the child to run the function", || {
        busy = pool.busy_pids();
        !busy.is_empty()
    })
    .await;
    let pid = busy[0];
    // Busy from the checkout on; the invocation runs once the bundle's memory limit is set.
    let mut dirs = Vec::new();
    wait_until("the child's cgroup to hold the bundle's limit", || {
        dirs = child_cgroup_dirs(pid, &sandbox);
        read_limit(&dirs, &["memory.limit_in_bytes", "memory.max"]) < 4096 << 20
    })
    .await;

    let status = proc_status(pid);
    assert_eq!(status["Seccomp"], "2", "{status:?}");
    assert_eq!(status["NoNewPrivs"], "1", "{status:?}");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            u64::from_str_radix(&status[cap], 16).unwrap(),
            0,
            "{cap}: {status:?}"
        );
    }
    for ids in ["Uid", "Gid"] {
        let v: Vec<u32> = status[ids]
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(v.len(), 4, "{ids}: {v:?}");
        assert!(
            v.iter().all(|&id| id != 0),
            "{ids} (real, effective, saved, fs): {v:?}"
        );
    }
    for ns in ["mnt", "net", "ipc", "uts"] {
        let child = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(child, ours, "{ns} namespace is shared with the supervisor");
    }
    let memory = read_limit(&dirs, &["memory.limit_in_bytes", "memory.max"]);
    assert!(
        memory > memory_mb << 20 && memory < (memory_mb + MAX_HEADROOM_MB) << 20,
        "memory limit {memory} bytes for memoryMb {memory_mb}"
    );
    if let Some(swap) = dirs.iter().find_map(|d| {
        std::fs::read_to_string(d.join("memory.memsw.limit_in_bytes"))
            .ok()
            .map(|s| s.trim().parse::<u64>().unwrap())
    }) {
        assert_eq!(swap, memory, "v1: memory+swap equals memory (no swap)");
    }
    if let Some(swap) = dirs
        .iter()
        .find_map(|d| std::fs::read_to_string(d.join("memory.swap.max")).ok())
    {
        assert_eq!(swap.trim(), "0", "v2: no swap");
    }
    assert_eq!(read_limit(&dirs, &["pids.max"]), sandbox.pids_max);

    // SIGKILLed from outside: reported, and its cgroup removed.
    // SAFETY: sending SIGKILL to a child process this test's pool started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let ex = run.await.unwrap();
    let (kind, message) = error_of(&ex);
    assert_eq!(kind, "SandboxError");
    assert!(message.contains("SIGKILL"), "{message}");
    assert_eq!(pool.stats().kills_for(KillReason::Died), 1);
    wait_until("the killed child's cgroup to be removed", || {
        dirs.iter().all(|d| !d.exists())
    })
    .await;
    finish(pool, sandbox).await;
}

// --- memory -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_allocation_beyond_the_cgroup_limit_is_a_memory_limit() {
    let Some(bin) = escape_bin() else { return };
    let Some(sandbox) = sandbox("native-oom") else {
        return;
    };
    let pool = pool(bin, &sandbox, 0);
    let host = LocalHost::new();
    let memory_mb = 16;
    // Far above memoryMb plus any headroom, far below RLIMIT_AS: only the cgroup stops it.
    let alloc_mb = memory_mb + MAX_HEADROOM_MB + 192;
    let escape = make_bundle(ESCAPE, memory_mb, 10_000);
    let ex = pool
        .invoke(
            &job(
                &escape,
                &serde_json::json!({ "op": format!("alloc:{alloc_mb}") }),
            ),
            &host,
        )
        .await;
    let (kind, message) = error_of(&ex);
    assert_eq!(kind, "MemoryLimit", "{message}");
    assert!(message.contains("memory limit of 16 MiB"), "{message}");
    println!("native allocation → {message}");
    assert_eq!(pool.stats().kills_for(KillReason::MemoryLimit), 1);
    assert_eq!(pool.stats().kills_for(KillReason::SandboxViolation), 0);
    assert!(
        ex.memory_peak_bytes > memory_mb << 20,
        "peak {} bytes",
        ex.memory_peak_bytes
    );
    let pid = ex.child_pid;
    wait_until("the OOM-killed child to be gone", || !alive(pid)).await;

    // The pool still serves, within the same limit.
    let ok = make_bundle(OK, memory_mb, 5000);
    assert_eq!(
        body(&pool.invoke(&job(&ok, &serde_json::json!({})), &host).await),
        "ok"
    );
    finish(pool, sandbox).await;
}

/// Issue 10 #9: a native allocation refused at the address-space limit used to abort the
/// child (SIGABRT through a blocked `tgkill`: an unattributed `SandboxError`). The limit is now
/// sized from the function's memory limit when the child is bound, and the child's allocator
/// reports the failure: `MemoryLimit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_allocation_refused_at_the_address_space_limit_is_a_memory_limit() {
    let Some(bin) = escape_bin() else { return };
    let Some(sandbox) = sandbox("native-as") else {
        return;
    };
    let pool = pool(bin, &sandbox, 0);
    let host = LocalHost::new();
    // 2 GiB untouched: under the stem's 4.5 GiB limit, over 64 MiB + the headroom.
    let escape = make_bundle(ESCAPE, 64, 10_000);
    let ex = pool
        .invoke(
            &job(&escape, &serde_json::json!({ "op": "rust-alloc:2048" })),
            &host,
        )
        .await;
    let (kind, message) = error_of(&ex);
    assert_eq!(kind, "MemoryLimit", "{message}");
    assert!(
        message.contains("memory limit of 64 MiB")
            && message.contains("native allocation of 2147483648 bytes failed"),
        "{message}"
    );
    assert_eq!(pool.stats().kills_for(KillReason::MemoryLimit), 1);
    assert_eq!(pool.stats().kills_for(KillReason::SandboxViolation), 0);
    finish(pool, sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_allocation_beyond_memory_mb_is_a_memory_limit() {
    let Some(sandbox) = sandbox("js-oom") else {
        return;
    };
    let pool = pool(child_bin(), &sandbox, 0);
    let host = LocalHost::new();
    let hog = make_bundle(
        "export default () => { const a = []; while (true) a.push(new Array(65536).fill(a.length)); }",
        16,
        10_000,
    );
    let ex = pool.invoke(&job(&hog, &serde_json::json!({})), &host).await;
    let (kind, message) = error_of(&ex);
    assert_eq!(kind, "MemoryLimit", "{message}");
    assert_eq!(pool.stats().kills_for(KillReason::MemoryLimit), 1);
    finish(pool, sandbox).await;
}

// --- a daemon killed mid-activation -----------------------------------------------------------

/// Direct children of `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(|v| v.trim().to_string());
        if ppid.as_deref() == Some(parent.to_string().as_str()) {
            out.push(pid);
        }
    }
    out
}

/// A process this test started, SIGKILLed and reaped if the test fails before it does so.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_daemon_killed_mid_activation_leaves_no_cgroup_after_a_restart() {
    // The daemon's own sandbox decides; this one only says whether this host can confine.
    let Some(probe) = sandbox("daemon-probe") else {
        return;
    };
    drop(probe);
    let dir = tempfile::tempdir().unwrap();
    let spin = dir.path().join("spin.js");
    std::fs::write(
        &spin,
        "export default () => { console.log('spinning'); while (true) {} }",
    )
    .unwrap();
    // The deadline bounds how long the spinning child could outlive a failed test.
    let mut daemon = KillOnDrop(
        Command::new(invoker_bin())
            .args(["run", spin.to_str().unwrap(), "--timeout-ms", "20000"])
            .env_remove("CS_SANDBOX_CHILD_BIN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let daemon = &mut daemon.0;
    let daemon_pid = daemon.id();
    let stderr = daemon.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.contains("spinning") => break,
            Ok(line) => seen.push(line),
            Err(e) => {
                let _ = daemon.kill();
                panic!("the function never started ({e}); daemon stderr: {seen:?}");
            }
        }
    }

    let children = children_of(daemon_pid);
    assert_eq!(children.len(), 1, "children of the daemon: {children:?}");
    let child = children[0];
    let parent_name = format!("cs-invoker-pool.{daemon_pid}");
    let parents: Vec<PathBuf> = proc_cgroups(child)
        .iter()
        .filter(|(_, path)| path.split('/').any(|c| c == parent_name))
        .filter_map(|(ctl, path)| {
            let dir = cgroup_dir(ctl, path)?;
            dir.ancestors()
                .find(|a| a.file_name().and_then(|n| n.to_str()) == Some(parent_name.as_str()))
                .map(Path::to_path_buf)
        })
        .collect();
    assert!(
        !parents.is_empty(),
        "the child is in no cgroup under {parent_name}: {:?}",
        proc_cgroups(child)
    );
    assert_eq!(proc_status(child)["Seccomp"], "2");

    daemon.kill().unwrap();
    daemon.wait().unwrap();
    // PR_SET_PDEATHSIG(SIGKILL): the kernel kills the child as its daemon dies. Checked last
    // (below), so that a failure here does not hide what the restart does.
    let until = Instant::now() + Duration::from_secs(3);
    while alive(child) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let survived_daemon = alive(child);
    // Nobody removed them: the daemon died without a chance to.
    assert!(
        parents.iter().any(|p| p.exists()),
        "{parents:?} vanished before the restart"
    );

    let ok = dir.path().join("ok.js");
    std::fs::write(
        &ok,
        r#"export default () => ({ statusCode: 200, body: "ok" })"#,
    )
    .unwrap();
    let again = Command::new(invoker_bin())
        .args(["run", ok.to_str().unwrap()])
        .env_remove("CS_SANDBOX_CHILD_BIN")
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "the restarted daemon failed: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    let left: Vec<_> = parents.iter().filter(|p| p.exists()).collect();
    assert!(
        left.is_empty(),
        "the restart's start-up sweep left the dead daemon's cgroups: {left:?}"
    );
    // The sweep SIGKILLs whatever is still inside a leftover cgroup.
    wait_until_blocking("the orphaned child to be gone", || !alive(child));
    assert!(
        !survived_daemon,
        "child {child} kept running for 3 s after its daemon {daemon_pid} was SIGKILLed: \
         PR_SET_PDEATHSIG did not fire (only the restart's sweep killed it)"
    );
}
