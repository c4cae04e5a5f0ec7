//! The pool through the real `sandbox-child` binary: warm reuse and its boundaries, recovery
//! from children that die or misbehave, recycling, refills.

#[macro_use]
mod support;

use cs_invoker_pool::host::local::LocalHost;
use cs_invoker_pool::pool::{ErrorType, Execution, Job, KillReason, Pool, PoolConfig, StartKind};
use cs_invoker_pool::sandbox::{Sandbox, SandboxPolicy};
use sandbox_proto::bundle::{self, Bundle};
use sandbox_proto::messages::Status;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::child_bin;

fn make_bundle(source: &str, manifest: &str) -> Arc<Bundle> {
    let mut files = BTreeMap::new();
    files.insert("function.js".to_string(), source.as_bytes().to_vec());
    files.insert("manifest.json".to_string(), manifest.as_bytes().to_vec());
    Arc::new(bundle::parse_tar(&bundle::pack(&files).unwrap()).unwrap())
}

const MANIFEST: &str = r#"{"schema":"cs.function.script.v1","runtime":"cs-js","entry":"function.js",
  "limits":{"timeoutMs":5000,"memoryMb":64,"maxConcurrency":4}}"#;

/// A handler that counts its own invocations: a warm child answers 2, 3, ...
const COUNTER: &str = "let n = 0; export default () => ({ statusCode: 200, body: String(++n) });";

fn job(bundle: &Arc<Bundle>, tenant: &str, event: &str, timeout: Duration) -> Job {
    support::pool_job(bundle, tenant, event, Instant::now() + timeout)
}

/// The sandbox this host offers; with `CS_REQUIRE_SANDBOX=1` a host that cannot confine fails
/// the test here instead of running unconfined.
/// Each test gets its own cgroup parent (one sandbox per prefix per process).
fn sandbox(test: &str) -> Arc<Sandbox> {
    let policy = SandboxPolicy {
        cgroup_prefix: format!("cs-test-pool-{test}"),
        ..SandboxPolicy::default()
    };
    match Sandbox::prepare(&policy) {
        Ok(s) => {
            if !s.is_confined() {
                eprintln!("running unconfined: {:?}", s.unconfined);
            }
            Arc::new(s)
        }
        Err(e) => panic!("{e}"),
    }
}

fn pool(test: &str, prewarm: usize) -> Pool {
    let mut cfg = PoolConfig::new(child_bin(), sandbox(test));
    cfg.prewarm = prewarm;
    cfg.max_children = 8;
    Pool::start(cfg).expect("pool starts")
}

fn body(ex: &Execution) -> String {
    match &ex.outcome {
        Ok(r) => r.body.clone(),
        Err(e) => panic!("expected success, got {e:?}"),
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists; no signal is sent.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// CPU time (user + system) process `pid` has used, in ms (0 when unreadable).
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14 and stime 15 (1-based).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at the state (field 3), so utime and stime are f[11] and f[12].
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1000 / hz
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_reuse_stays_within_one_tenant_and_one_bundle() {
    let pool = pool("warm", 1);
    let host = LocalHost::new();
    let a = make_bundle(COUNTER, MANIFEST);
    let b = make_bundle(&format!("{COUNTER} // another version"), MANIFEST);
    assert_ne!(a.sha256, b.sha256);
    let t = Duration::from_secs(5);

    let first = pool.invoke(&job(&a, "tenant-1", "{}", t), &host).await;
    assert!(first.start.is_cold(), "{:?}", first.start);
    assert_eq!(body(&first), "1");

    let again = pool.invoke(&job(&a, "tenant-1", "{}", t), &host).await;
    assert_eq!(again.start, StartKind::Warm);
    assert_eq!(again.child_id, first.child_id);
    assert_eq!(body(&again), "2", "the warm child kept its module state");

    let other_tenant = pool.invoke(&job(&a, "tenant-2", "{}", t), &host).await;
    assert_ne!(other_tenant.child_id, first.child_id);
    assert!(other_tenant.start.is_cold());
    assert_eq!(
        body(&other_tenant),
        "1",
        "another tenant never sees tenant-1's state"
    );

    let other_bundle = pool.invoke(&job(&b, "tenant-1", "{}", t), &host).await;
    assert_ne!(other_bundle.child_id, first.child_id);
    assert_ne!(other_bundle.child_id, other_tenant.child_id);
    assert_eq!(
        body(&other_bundle),
        "1",
        "another version never sees this one's state"
    );

    let back = pool.invoke(&job(&a, "tenant-1", "{}", t), &host).await;
    assert_eq!(back.child_id, first.child_id);
    assert_eq!(body(&back), "3");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_mid_run_is_a_sandbox_error_and_the_pool_recovers() {
    let pool = pool("killed", 1);
    let host = Arc::new(LocalHost::new());
    let spin = make_bundle(
        "export default () => { const t = Date.now(); while (Date.now() - t < 20000) {} }",
        MANIFEST,
    );
    let j = job(&spin, "t1", "{}", Duration::from_secs(20));
    let p2 = pool.clone();
    let h2 = Arc::clone(&host);
    let run = tokio::spawn(async move { p2.invoke(&j, &*h2).await });
    let mut victim = Vec::new();
    wait_until("the child to be busy", || {
        victim = pool.busy_pids();
        !victim.is_empty()
    })
    .await;
    let pid = victim[0];
    // Busy from checkout on, but the kill must land while the function runs: a child killed
    // before its Invoke was written is a dead idle child, and the call rightly moves to another
    // one (seen on a slow guest). Its spin loop is the only thing that burns this much CPU.
    wait_until("the function to be running", || cpu_ms(pid) >= 200).await;
    // SAFETY: sending SIGKILL to a child process this test's pool started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let ex = run.await.unwrap();
    let err = ex.outcome.as_ref().unwrap_err();
    assert_eq!(err.kind, ErrorType::SandboxError, "{err:?}");
    assert!(
        err.message.contains("signal 9") && err.message.contains("SIGKILL"),
        "{}",
        err.message
    );
    assert_eq!(pool.stats().kills_for(KillReason::Died), 1);

    let ok = make_bundle(COUNTER, MANIFEST);
    let next = pool
        .invoke(&job(&ok, "t1", "{}", Duration::from_secs(5)), &*host)
        .await;
    assert_eq!(body(&next), "1");
    pool.shutdown().await;
}

/// The pool no longer asks the kernel for a child's status on every call: a warm child that
/// died while idle is found by the first write of the next call, which then runs on another
/// child — the caller sees a normal result, not a SandboxError.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_child_that_died_while_idle_is_replaced_within_the_next_call() {
    let pool = pool("deadwarm", 1);
    let host = LocalHost::new();
    let b = make_bundle(COUNTER, MANIFEST);
    let first = pool
        .invoke(&job(&b, "t1", "{}", Duration::from_secs(5)), &host)
        .await;
    assert_eq!(body(&first), "1");
    let pid = first.child_pid as i32;
    // SAFETY: sending SIGKILL to a child process this test's pool started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    // Let the process die, but call before the background check (every 500 ms) runs.
    std::thread::sleep(Duration::from_millis(50));
    let next = pool
        .invoke(&job(&b, "t1", "{}", Duration::from_secs(5)), &host)
        .await;
    // A fresh child: its counter starts again, and the dead one is counted as died.
    assert_eq!(body(&next), "1", "{:?}", next.outcome);
    assert_ne!(next.child_pid, first.child_pid);
    assert!(next.start.is_cold(), "{:?}", next.start);
    assert_eq!(pool.stats().kills_for(KillReason::Died), 1);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stem_child_that_dies_while_idle_is_noticed_and_replaced() {
    let pool = pool("stem", 2);
    assert!(pool.wait_prewarmed(Duration::from_secs(10)).await);
    let victim = pool.idle_pids()[0];
    // SAFETY: sending SIGKILL to a child process this test's pool started.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    wait_until("the dead stem to be noticed", || {
        pool.stats().kills_for(KillReason::Died) == 1
    })
    .await;
    wait_until("the stem to be replaced", || {
        let s = pool.stats();
        s.stem == 2 && !pool.idle_pids().contains(&victim)
    })
    .await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_recycled_after_max_uses_and_stems_refilled() {
    let mut cfg = PoolConfig::new(child_bin(), sandbox("recycle"));
    cfg.prewarm = 1;
    cfg.max_uses = 2;
    let pool = Pool::start(cfg).unwrap();
    assert!(pool.wait_prewarmed(Duration::from_secs(10)).await);
    let host = LocalHost::new();
    let b = make_bundle(COUNTER, MANIFEST);
    let t = Duration::from_secs(5);
    let one = pool.invoke(&job(&b, "t", "{}", t), &host).await;
    assert_eq!(one.start, StartKind::Stem);
    let two = pool.invoke(&job(&b, "t", "{}", t), &host).await;
    assert_eq!((two.child_id, body(&two)), (one.child_id, "2".to_string()));
    let three = pool.invoke(&job(&b, "t", "{}", t), &host).await;
    assert_ne!(three.child_id, one.child_id, "recycled after 2 uses");
    assert_eq!(body(&three), "1");
    assert_eq!(pool.stats().kills_for(KillReason::Recycled), 1);
    wait_until("the stem to be refilled", || pool.stats().stem == 1).await;
    assert!(
        !alive(one.child_pid) || {
            tokio::time::sleep(Duration::from_millis(200)).await;
            !alive(one.child_pid)
        }
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_child_is_killed_at_the_deadline_and_replaced() {
    // A stem child is ready before the clock starts, so the deadline measures the run, not a
    // child's start (which takes most of a second under qemu's emulation).
    let pool = pool("timeout", 1);
    assert!(pool.wait_prewarmed(Duration::from_secs(20)).await);
    let host = LocalHost::new();
    // Catastrophic backtracking: the engine polls its interrupt rarely or never here, so the
    // supervisor's SIGKILL is what ends it.
    let regex = make_bundle(
        r#"export default () => /^(a+)+$/.test("a".repeat(40) + "!")"#,
        MANIFEST,
    );
    let t0 = Instant::now();
    let ex = pool
        .invoke(&job(&regex, "t", "{}", Duration::from_millis(1000)), &host)
        .await;
    let took = t0.elapsed();
    let err = ex.outcome.as_ref().unwrap_err();
    assert_eq!(err.kind, ErrorType::Timeout, "{err:?}");
    assert_eq!(ex.status(), Status::Timeout);
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert_eq!(pool.stats().kills_for(KillReason::Timeout), 1);
    wait_until("the child to be gone", || !alive(ex.child_pid)).await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_invocation_kills_its_child() {
    let pool = pool("abandon", 1);
    assert!(pool.wait_prewarmed(Duration::from_secs(20)).await);
    let host = LocalHost::new();
    let spin = make_bundle("export default () => { while (true) {} }", MANIFEST);
    let j = job(&spin, "t", "{}", Duration::from_secs(30));
    let r = tokio::time::timeout(Duration::from_millis(1000), pool.invoke(&j, &host)).await;
    assert!(r.is_err(), "the invocation was still running");
    assert_eq!(pool.stats().kills_for(KillReason::Cancelled), 1);
    assert_eq!(pool.stats().busy, 0);
    pool.shutdown().await;
}

// --- hostile children -------------------------------------------------------------------------

/// Shell that reads one frame (the supervisor's Init) from stdin: the big-endian length, then
/// that many bytes. `dd` reads exactly what it is asked for from a pipe, unlike `head`.
const SKIP_FRAME: &str = "n=$(dd bs=1 count=4 2>/dev/null | od -An -tu1 | awk '{print $1*16777216+$2*65536+$3*256+$4}')\ndd bs=1 count=$n >/dev/null 2>&1\n";

/// A Ready frame of the current protocol version (pid 5), in printf escapes.
fn ready_frame() -> String {
    const { assert!(sandbox_proto::protocol::PROTOCOL_VERSION < 8) };
    format!(
        "\\0\\0\\0\\3\\0\\{}\\5",
        sandbox_proto::protocol::PROTOCOL_VERSION
    )
}

/// A fake `sandbox-child`: a shell script that answers the handshake correctly (Ready, this
/// protocol version) and then writes `payload` (printf escapes) instead of the next frame, then
/// lingers.
fn fake_child(dir: &Path, name: &str, payload: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let ready = ready_frame();
    let script = format!(
        "#!/bin/sh\n{SKIP_FRAME}printf '{ready}'\nhead -c 4 >/dev/null\nprintf '{payload}'\nexec sleep 30\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn hostile_run(bin: PathBuf) -> (Execution, Pool, Duration) {
    // A shell script cannot confine itself: these children test the supervisor's side only.
    let mut cfg = PoolConfig::new(bin, Arc::new(Sandbox::unconfined("fake child")));
    cfg.prewarm = 0;
    let pool = Pool::start(cfg).unwrap();
    let host = LocalHost::new();
    let b = make_bundle(COUNTER, MANIFEST);
    let t0 = Instant::now();
    let ex = pool
        .invoke(&job(&b, "t", "{}", Duration::from_secs(20)), &host)
        .await;
    (ex, pool, t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_are_refused_and_never_disturb_other_children() {
    let dir = tempfile::tempdir().unwrap();
    // A real pool with a warm child, to show it is not disturbed.
    let good = pool("hostile", 0);
    let host = LocalHost::new();
    let ok = make_bundle(COUNTER, MANIFEST);
    let t = Duration::from_secs(5);
    let warm = good.invoke(&job(&ok, "t", "{}", t), &host).await;
    assert_eq!(body(&warm), "1");

    let cases = [
        // A length prefix of 4 GiB - 1: refused from the prefix alone.
        ("oversized", "\\377\\377\\377\\377", "exceeds the limit"),
        // A 5-byte body whose variant does not exist.
        ("garbage", "\\0\\0\\0\\5\\11\\11\\11\\11\\11", "malformed"),
        // A well-formed Log frame whose string claims 2^60 bytes inside an 11-byte body.
        (
            "inner-length",
            "\\0\\0\\0\\13\\3\\0\\375\\0\\0\\0\\0\\0\\0\\0\\20",
            "malformed",
        ),
        // A second Ready in the middle of a load: out of order.
        ("out-of-order", "READY", "unexpected Ready"),
    ];
    for (name, payload, want) in cases {
        let ready = ready_frame();
        let payload = if payload == "READY" {
            ready.as_str()
        } else {
            payload
        };
        let (ex, hostile, took) = hostile_run(fake_child(dir.path(), name, payload)).await;
        let err = ex.outcome.as_ref().unwrap_err();
        assert_eq!(err.kind, ErrorType::SandboxError, "{name}: {err:?}");
        assert!(
            err.message.contains("protocol") && err.message.contains(want),
            "{name}: {}",
            err.message
        );
        assert!(took < Duration::from_secs(5), "{name}: took {took:?}");
        assert_eq!(hostile.stats().kills_for(KillReason::ProtocolBreach), 1);
        wait_until("the hostile child to be killed", || !alive(ex.child_pid)).await;
        hostile.shutdown().await;

        let again = good.invoke(&job(&ok, "t", "{}", t), &host).await;
        assert_eq!(
            again.child_id, warm.child_id,
            "{name}: the good child was disturbed"
        );
    }
    assert_eq!(
        body(&good.invoke(&job(&ok, "t", "{}", t), &host).await),
        "6"
    );
    good.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_speaking_another_protocol_version_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old-child");
    std::fs::write(
        &path,
        format!("#!/bin/sh\n{SKIP_FRAME}printf '\\0\\0\\0\\3\\0\\11\\5'\nexec sleep 30\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ex, pool, _) = hostile_run(path).await;
    let err = ex.outcome.as_ref().unwrap_err();
    assert_eq!(err.kind, ErrorType::SandboxError);
    assert!(
        err.message.contains("protocol version 9"),
        "{}",
        err.message
    );
    assert_eq!(pool.stats().spawn_failures, 1);
    pool.shutdown().await;
}
