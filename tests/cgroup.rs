//! cgroup manager tests.
//!
//! `v2_*`: the v2 backend's file protocol against a temporary directory laid out like cgroupfs
//! (a `CgroupFs` model plays the kernel's part in mkdir/rmdir), with fake `/proc/self/cgroup`
//! and `/proc/self/mountinfo` so detection itself is exercised.
//!
//! `real_*`: the backend detected on this host, for real (v1 on the development machines, v2 on a
//! delegated systemd host). They skip with a printed reason when cgroups are unavailable, and
//! fail instead when `CS_REQUIRE_SANDBOX=1`.

use cs_invoker_pool::cgroup::{
    detect_with, CgroupConfig, CgroupError, CgroupFs, CgroupLimits, CgroupManager, CgroupMode,
    CgroupVersion, ChildCgroup, CpuLimit, RealFs,
};
use std::fs;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// A model of cgroupfs v2 in a temporary directory.

/// mkdir creates the interface files the kernel would; rmdir refuses (EBUSY) while the cgroup
/// has child cgroups or member processes, like the kernel, and otherwise removes the files too.
struct Model {
    /// Whether `cgroup.kill` exists (kernel 5.14+).
    kill_file: bool,
}

impl CgroupFs for Model {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)?;
        let parent_sc = fs::read_to_string(dir.parent().unwrap().join("cgroup.subtree_control"))
            .unwrap_or_default()
            .replace('+', "");
        let mut files = vec![
            ("cgroup.procs", String::new()),
            ("cgroup.controllers", parent_sc),
            ("cgroup.subtree_control", String::new()),
            ("cgroup.events", "populated 0\nfrozen 0\n".into()),
            ("memory.max", "max\n".into()),
            ("memory.swap.max", "max\n".into()),
            ("memory.oom.group", "0\n".into()),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n".into(),
            ),
            ("memory.peak", "0\n".into()),
            ("memory.current", "0\n".into()),
            ("pids.max", "max\n".into()),
            ("pids.events", "max 0\n".into()),
            ("cpu.max", "max 100000\n".into()),
        ];
        if self.kill_file {
            files.push(("cgroup.kill", String::new()));
        }
        for (name, content) in files {
            fs::write(dir.join(name), content)?;
        }
        Ok(())
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        let mut entries = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            entries.push(e.path());
        }
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if !procs.trim().is_empty() {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        for p in entries {
            fs::remove_file(p)?;
        }
        fs::remove_dir(dir)
    }
}

const SERVICE: &str = "system.slice/cs-invoker-pool.service";

struct FakeHost {
    _tmp: tempfile::TempDir,
    proc_self: PathBuf,
    mount: PathBuf,
    /// The daemon's own (delegated) cgroup.
    own: PathBuf,
}

/// A v2 host: cgroup2 mounted at `<tmp>/cg`, the daemon in `SERVICE` whose cgroup offers
/// `own_controllers` and holds `procs`.
fn fake_v2(own_controllers: &str, own_subtree: &str, procs: &[u32]) -> FakeHost {
    let tmp = tempfile::tempdir().unwrap();
    let proc_self = tmp.path().join("proc/self");
    let mount = tmp.path().join("cg");
    let own = mount.join(SERVICE);
    fs::create_dir_all(&proc_self).unwrap();
    fs::create_dir_all(&own).unwrap();
    fs::write(proc_self.join("cgroup"), format!("0::/{SERVICE}\n")).unwrap();
    fs::write(
        proc_self.join("mountinfo"),
        format!(
            "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
             30 22 0:26 / {} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
            mount.display()
        ),
    )
    .unwrap();
    fs::write(
        mount.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    fs::write(own.join("cgroup.controllers"), own_controllers).unwrap();
    fs::write(own.join("cgroup.subtree_control"), own_subtree).unwrap();
    let procs: String = procs.iter().map(|p| format!("{p}\n")).collect();
    fs::write(own.join("cgroup.procs"), procs).unwrap();
    FakeHost {
        _tmp: tmp,
        proc_self,
        mount,
        own,
    }
}

fn fake_cfg(host: &FakeHost, mode: CgroupMode, kill_file: bool) -> CgroupConfig {
    CgroupConfig {
        proc_self: host.proc_self.clone(),
        remove_timeout: Duration::from_millis(200),
        fs: Arc::new(Model { kill_file }),
        ..CgroupConfig::new(mode)
    }
}

fn me() -> u32 {
    std::process::id()
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn read_trim(path: &Path) -> String {
    fs::read_to_string(path).unwrap().trim().to_string()
}

// ---------------------------------------------------------------------------------------------
// v2 file protocol

#[test]
fn v2_detect_prepare_moves_daemon_into_leaf() {
    let host = fake_v2("cpu io memory pids\n", "", &[me()]);
    let mgr = detect_with(&fake_cfg(&host, CgroupMode::Auto, true)).expect("v2 detected");
    assert_eq!(mgr.version(), CgroupVersion::V2);
    assert!(mgr.has_cpu());

    // The daemon moved into the leaf *before* the controllers were enabled in its old cgroup.
    let leaf = host.own.join("supervisor");
    assert_eq!(lines(&leaf.join("cgroup.procs")), vec![me().to_string()]);
    let sc = lines(&host.own.join("cgroup.subtree_control"));
    for c in ["+memory", "+pids", "+cpu"] {
        assert!(sc.contains(&c.to_string()), "{sc:?}");
    }
    // The parent sits beside the leaf and delegates the same controllers to its children.
    let parent = host.own.join(format!("cs-invoker-pool.{}", me()));
    assert_eq!(mgr.parent_paths(), vec![parent.clone()]);
    assert_eq!(
        read_trim(&parent.join("cgroup.subtree_control")),
        "+memory +pids +cpu"
    );
    assert!(mgr.describe().contains("cgroup v2"), "{}", mgr.describe());
    // Nothing was written above the delegated cgroup.
    assert_eq!(
        read_trim(&host.mount.join("cgroup.controllers")),
        "cpuset cpu io memory pids"
    );
    assert!(!host.mount.join("cgroup.subtree_control").exists());

    // prepare is idempotent.
    mgr.prepare().unwrap();
    drop(mgr);
    assert!(!parent.exists(), "an empty parent is removed on drop");
}

#[test]
fn v2_no_move_when_controllers_already_delegated() {
    let host = fake_v2("memory pids\n", "memory pids\n", &[]);
    let mgr = detect_with(&fake_cfg(&host, CgroupMode::V2, true)).unwrap();
    assert!(!mgr.has_cpu(), "cpu is not offered");
    assert!(!host.own.join("supervisor").exists());
    assert_eq!(
        read_trim(&host.own.join("cgroup.subtree_control")),
        "memory pids",
        "untouched"
    );
    let c = mgr
        .create(
            "c",
            &CgroupLimits {
                cpu: Some(CpuLimit::cores(1.0)),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(c, CgroupError::Unsupported { .. }), "{c}");
    assert!(c.to_string().contains("cpu"), "{c}");
}

#[test]
fn v2_refuses_to_move_other_processes() {
    let host = fake_v2("memory pids\n", "", &[me(), 4_000_001]);
    let err = detect_with(&fake_cfg(&host, CgroupMode::V2, true)).unwrap_err();
    assert!(err.reason.contains("4000001"), "{err}");
    assert!(err.reason.contains("cgroup.procs"), "{err}");
    assert!(err.reason.contains("Delegate=yes"), "{err}");
    assert!(!host.own.join("supervisor").exists());
    assert_eq!(read_trim(&host.own.join("cgroup.subtree_control")), "");
}

#[test]
fn v2_unavailable_reasons_are_precise() {
    let host = fake_v2("cpu io\n", "", &[me()]);
    let err = detect_with(&fake_cfg(&host, CgroupMode::V2, true)).unwrap_err();
    let want = format!(
        "no cgroup v2 memory controller: {}/cgroup.controllers lacks memory (has: cpu io)",
        host.own.display()
    );
    assert_eq!(err.reason, want);

    let host = fake_v2("memory\n", "", &[me()]);
    let err = detect_with(&fake_cfg(&host, CgroupMode::V2, true)).unwrap_err();
    assert!(err.reason.contains("lacks pids"), "{err}");

    // Auto on a host with neither: both reasons.
    let host = fake_v2("", "", &[me()]);
    let err = detect_with(&fake_cfg(&host, CgroupMode::Auto, true)).unwrap_err();
    assert!(
        err.reason.contains("no cgroup v2 memory controller"),
        "{err}"
    );
    assert!(
        err.reason
            .contains("no cgroup v1 memory controller: no cgroup mount with option memory"),
        "{err}"
    );

    // No cgroup2 mount at all.
    fs::write(
        host.proc_self.join("mountinfo"),
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
    )
    .unwrap();
    let err = detect_with(&fake_cfg(&host, CgroupMode::V2, true)).unwrap_err();
    assert!(
        err.reason.starts_with("no cgroup2 filesystem mounted"),
        "{err}"
    );

    // Missing /proc file.
    fs::remove_file(host.proc_self.join("cgroup")).unwrap();
    let err = detect_with(&fake_cfg(&host, CgroupMode::V2, true)).unwrap_err();
    assert!(
        err.reason.contains("cannot read") && err.reason.contains("cgroup"),
        "{err}"
    );
}

#[test]
fn v2_create_writes_limits_and_remove_is_idempotent() {
    let host = fake_v2("cpu memory pids\n", "", &[me()]);
    let mgr = detect_with(&fake_cfg(&host, CgroupMode::V2, true)).unwrap();
    let limits = CgroupLimits {
        memory_bytes: Some(32 * MIB),
        pids_max: Some(8),
        cpu: Some(CpuLimit::cores(0.5)),
    };
    let child = mgr.create("child-1", &limits).unwrap();
    let dir = host.own.join(format!("cs-invoker-pool.{}/child-1", me()));
    assert_eq!(child.path(), dir);
    assert_eq!(child.paths(), vec![dir.clone()]);
    assert_eq!(read_trim(&dir.join("memory.max")), "33554432");
    assert_eq!(read_trim(&dir.join("memory.swap.max")), "0");
    assert_eq!(read_trim(&dir.join("memory.oom.group")), "1");
    assert_eq!(read_trim(&dir.join("pids.max")), "8");
    assert_eq!(read_trim(&dir.join("cpu.max")), "50000 100000");

    // A second live child of the same name is refused; bad names never reach the filesystem.
    let dup = mgr.create("child-1", &limits).unwrap_err();
    assert!(dup.to_string().contains("live child"), "{dup}");
    for bad in ["", "../escape", "a/b", "memory.max", ".hidden"] {
        let e = mgr.create(bad, &limits).unwrap_err();
        assert!(matches!(e, CgroupError::Name { .. }), "{bad:?}: {e}");
    }

    child.remove().unwrap();
    assert!(!dir.exists());
    child.remove().unwrap();
    drop(child);

    drop(mgr);
    assert!(!host.own.join(format!("cs-invoker-pool.{}", me())).exists());
}

#[test]
fn v2_counters_parse() {
    let host = fake_v2("memory pids\n", "", &[me()]);
    let mgr = detect_with(&fake_cfg(&host, CgroupMode::V2, true)).unwrap();
    let child = mgr.create("counters", &CgroupLimits::default()).unwrap();
    let dir = child.path().to_path_buf();
    assert_eq!(child.oom_kills().unwrap(), 0);
    assert_eq!(child.pids_max_hits(), Some(0));
    fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 41\noom 2\noom_kill 3\noom_group_kill 1\n",
    )
    .unwrap();
    fs::write(dir.join("memory.peak"), "34078720\n").unwrap();
    fs::write(dir.join("memory.current"), "1048576\n").unwrap();
    fs::write(dir.join("pids.events"), "max 7\n").unwrap();
    assert_eq!(child.oom_kills().unwrap(), 3);
    assert_eq!(child.memory_peak(), Some(34_078_720));
    assert_eq!(child.memory_current(), Some(1_048_576));
    assert_eq!(child.pids_max_hits(), Some(7));

    // memory.peak is 5.19+: absent means None, not an error.
    fs::remove_file(dir.join("memory.peak")).unwrap();
    assert_eq!(child.memory_peak(), None);
    // A memory.events without oom_kill (kernel < 4.13) is an error naming the file.
    fs::write(dir.join("memory.events"), "low 0\n").unwrap();
    let e = child.oom_kills().unwrap_err().to_string();
    assert!(e.contains("memory.events") && e.contains("oom_kill"), "{e}");
    child.remove().unwrap();
}

#[test]
fn v2_attach_and_bounded_remove() {
    let host = fake_v2("memory pids\n", "", &[me()]);
    let mgr = detect_with(&fake_cfg(&host, CgroupMode::V2, true)).unwrap();
    let child = mgr.create("attached", &CgroupLimits::default()).unwrap();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    child.attach(sleeper.id()).unwrap();
    assert_eq!(child.procs().unwrap(), vec![sleeper.id()]);

    // The model's cgroup.kill kills nothing, so the member never leaves: remove gives up after
    // the configured bound and says which cgroup and which pids.
    let t = Instant::now();
    let e = child.remove().unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2));
    match &e {
        CgroupError::Busy { path, pids, .. } => {
            assert_eq!(path, child.path());
            assert_eq!(pids, &vec![sleeper.id()]);
        }
        other => panic!("{other}"),
    }
    assert_eq!(read_trim(&child.path().join("cgroup.kill")), "1");

    // The kernel would drop the pid when the process exits.
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    fs::write(child.path().join("cgroup.procs"), "").unwrap();
    child.remove().unwrap();
    assert!(!child.path().exists());
}

#[test]
fn v2_kill_without_cgroup_kill_signals_each_member() {
    let host = fake_v2("memory pids\n", "", &[me()]);
    let mgr = detect_with(&fake_cfg(&host, CgroupMode::V2, false)).unwrap();
    let child = mgr.create("oldkernel", &CgroupLimits::default()).unwrap();
    assert!(!child.path().join("cgroup.kill").exists());
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    // Our own pid in the file must never be signalled.
    child.attach(me()).unwrap();
    child.attach(sleeper.id()).unwrap();
    child.kill_all().unwrap();
    let status = sleeper.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    fs::write(child.path().join("cgroup.procs"), "").unwrap();
    child.remove().unwrap();
}

#[test]
fn v2_sweep_removes_only_our_leftovers() {
    let host = fake_v2("memory pids\n", "", &[me()]);
    let cfg = fake_cfg(&host, CgroupMode::V2, true);
    let mgr = detect_with(&cfg).unwrap();
    let live = mgr.create("live-1", &CgroupLimits::default()).unwrap();

    let model = Model { kill_file: true };
    let dead_pid = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let own = &host.own;
    let dead = own.join(format!("cs-invoker-pool.{dead_pid}"));
    let ours = own.join(format!("cs-invoker-pool.{}", me()));
    let alive = own.join("cs-invoker-pool.1"); // pid 1 is alive: another daemon's tree
    let other_prefix = own.join("cs-invoker-pool-x.5");
    let unrelated = own.join("something-else");
    for d in [&dead, &alive, &other_prefix, &unrelated] {
        model.mkdir(d).unwrap();
    }
    model.mkdir(&dead.join("c1")).unwrap();
    model.mkdir(&dead.join("c2")).unwrap();
    model.mkdir(&ours.join("stale")).unwrap();
    model.mkdir(&alive.join("busy")).unwrap();

    let report = mgr.sweep().unwrap();
    let mut removed = report.removed.clone();
    removed.sort();
    let mut want = vec![
        dead.join("c1"),
        dead.join("c2"),
        dead.clone(),
        ours.join("stale"),
    ];
    want.sort();
    assert_eq!(removed, want);
    assert_eq!(report.skipped_live, vec![alive.clone()]);
    assert_eq!(report.killed, 0);
    assert!(live.path().exists(), "a live child is never swept");
    for d in [
        &alive,
        &alive.join("busy"),
        &other_prefix,
        &unrelated,
        &ours,
    ] {
        assert!(d.exists(), "{}", d.display());
    }
    assert!(host.own.join("supervisor").exists());

    // teardown removes our whole subtree; the live handle's remove then succeeds.
    let t = mgr.teardown().unwrap();
    assert!(t.removed.contains(&ours));
    assert!(!ours.exists());
    live.remove().unwrap();
}

#[test]
fn v2_create_clears_a_leftover_of_the_same_name() {
    let host = fake_v2("memory pids\n", "", &[me()]);
    let mgr = detect_with(&fake_cfg(&host, CgroupMode::V2, true)).unwrap();
    let stale = host.own.join(format!("cs-invoker-pool.{}/again", me()));
    Model { kill_file: true }.mkdir(&stale).unwrap();
    fs::write(stale.join("memory.max"), "123\n").unwrap();
    let c = mgr
        .create(
            "again",
            &CgroupLimits {
                memory_bytes: Some(MIB),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(read_trim(&c.path().join("memory.max")), "1048576");
    c.remove().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The real kernel (v1 here)

/// Prefix per test: tests run in parallel in one process, and one manager per prefix per process
/// is the contract.
fn real_manager(prefix: &str) -> Option<Arc<dyn CgroupManager>> {
    let cfg = CgroupConfig {
        prefix: prefix.to_string(),
        ..CgroupConfig::new(CgroupMode::Auto)
    };
    match detect_with(&cfg) {
        Ok(m) => {
            eprintln!("{}", m.describe());
            Some(m)
        }
        Err(e) if std::env::var("CS_REQUIRE_SANDBOX").as_deref() == Ok("1") => {
            panic!("CS_REQUIRE_SANDBOX=1 and cgroups are unavailable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: cgroups unavailable: {e}");
            None
        }
    }
}

fn assert_gone(paths: &[PathBuf]) {
    for p in paths {
        assert!(!p.exists(), "left behind: {}", p.display());
    }
}

/// Removes the child and then the manager, asserting nothing of ours is left.
fn finish(mgr: Arc<dyn CgroupManager>, child: Box<dyn ChildCgroup>) {
    let paths = child.paths();
    child.remove().unwrap();
    assert_gone(&paths);
    drop(child);
    let parents = mgr.parent_paths();
    drop(mgr);
    assert_gone(&parents);
}

fn spawn_in(child: &dyn ChildCgroup, cmd: &mut Command) -> std::process::Child {
    let attach = child.pre_exec_attacher();
    // SAFETY: attach_current only makes async-signal-safe system calls (open, write, close).
    unsafe { cmd.pre_exec(move || attach.attach_current()) };
    cmd.spawn().unwrap()
}

#[test]
fn real_oom_kill_is_attributed() {
    let Some(mgr) = real_manager("cs-invoker-pool-test-oom") else {
        return;
    };
    let child = mgr
        .create(
            "oom",
            &CgroupLimits {
                memory_bytes: Some(32 * MIB),
                pids_max: Some(16),
                cpu: None,
            },
        )
        .unwrap();
    // dd allocates a 100 MiB buffer and fills it from /dev/zero: every page is touched.
    let mut p = spawn_in(
        &*child,
        Command::new("dd")
            .args(["if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"])
            .stderr(Stdio::null()),
    );
    let status = p.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let kills = child.oom_kills().unwrap();
    assert!(kills >= 1, "oom_kills = {kills}");
    let peak = child.memory_peak().expect("peak");
    assert!(peak > 16 * MIB && peak <= 33 * MIB, "peak = {peak}");
    eprintln!("oom_kills={kills} peak={peak}");
    finish(mgr, child);
}

#[test]
fn real_attach_by_pid_and_remove_kills() {
    let Some(mgr) = real_manager("cs-invoker-pool-test-attach") else {
        return;
    };
    let child = mgr
        .create(
            "attach",
            &CgroupLimits {
                memory_bytes: Some(64 * MIB),
                pids_max: Some(8),
                cpu: mgr.has_cpu().then(|| CpuLimit::cores(0.5)),
            },
        )
        .unwrap();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    child.attach(sleeper.id()).unwrap();
    assert_eq!(child.procs().unwrap(), vec![sleeper.id()]);
    // From outside: /proc/<pid>/cgroup names our child in every controller.
    let membership = fs::read_to_string(format!("/proc/{}/cgroup", sleeper.id())).unwrap();
    let suffix = format!("/cs-invoker-pool-test-attach.{}/attach", me());
    let hits = membership.lines().filter(|l| l.ends_with(&suffix)).count();
    assert_eq!(hits, child.paths().len(), "{membership}");
    assert!(child.memory_current().is_some());

    let paths = child.paths();
    child.remove().unwrap();
    assert_eq!(sleeper.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert_gone(&paths);
    finish(mgr, child);
}

#[test]
fn real_pids_limit_stops_fork() {
    let Some(mgr) = real_manager("cs-invoker-pool-test-pids") else {
        return;
    };
    let child = mgr
        .create(
            "pids",
            &CgroupLimits {
                memory_bytes: Some(64 * MIB),
                pids_max: Some(4),
                cpu: None,
            },
        )
        .unwrap();
    let out = spawn_in(
        &*child,
        Command::new("sh")
            .args([
                "-c",
                "for i in 1 2 3 4 5 6 7 8; do sleep 5 >/dev/null 2>&1 & done; wait",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .wait_with_output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{:?} {stderr}", out.status);
    assert!(stderr.to_lowercase().contains("fork"), "{stderr}");
    let hits = child.pids_max_hits();
    assert!(hits.is_none_or(|h| h >= 1), "pids.events max = {hits:?}");
    eprintln!(
        "fork refused; pids.events max = {hits:?}; sh said: {}",
        stderr.trim()
    );
    // The sleeps that did start are still inside: remove() kills them.
    finish(mgr, child);
}

#[test]
fn real_sweep_after_daemon_crash() {
    const PREFIX: &str = "cs-invoker-pool-test-sweep";
    let Some(mgr) = real_manager(PREFIX) else {
        return;
    };
    // A crashed daemon: its pid is dead, its parent and a child with a process are left.
    let dead_pid = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let mut orphan = Command::new("sleep").arg("60").spawn().unwrap();
    let mut stale_dirs = Vec::new();
    for parent in mgr.parent_paths() {
        let own = parent.parent().unwrap();
        let stale_parent = own.join(format!("{PREFIX}.{dead_pid}"));
        let stale_child = stale_parent.join("child-7");
        RealFs.mkdir(&stale_parent).unwrap();
        RealFs.mkdir(&stale_child).unwrap();
        fs::write(stale_child.join("cgroup.procs"), orphan.id().to_string()).unwrap();
        stale_dirs.push(stale_child);
        stale_dirs.push(stale_parent);
    }
    let report = mgr.sweep().unwrap();
    eprintln!("{report:?}");
    assert_eq!(orphan.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(report.killed >= 1);
    for d in &stale_dirs {
        assert!(report.removed.contains(d), "{}", d.display());
    }
    assert_gone(&stale_dirs);
    let parents = mgr.parent_paths();
    drop(mgr);
    assert_gone(&parents);
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Cost of the per-child cgroup operations on this host (printed; run with --nocapture).
#[test]
fn real_costs() {
    let Some(mgr) = real_manager("cs-invoker-pool-test-cost") else {
        return;
    };
    const N: usize = 200;
    let limits = CgroupLimits {
        memory_bytes: Some(64 * MIB),
        pids_max: Some(16),
        cpu: None,
    };
    let (mut create, mut attach, mut remove) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..N {
        let mut p = Command::new("sleep").arg("30").spawn().unwrap();
        let t = Instant::now();
        let child = mgr.create(&format!("cost-{i}"), &limits).unwrap();
        create.push(t.elapsed());
        let t = Instant::now();
        child.attach(p.id()).unwrap();
        attach.push(t.elapsed());
        p.kill().unwrap();
        p.wait().unwrap();
        let paths = child.paths();
        let t = Instant::now();
        child.remove().unwrap();
        remove.push(t.elapsed());
        assert_gone(&paths);
    }
    // Removal including the kill of a live member (the usual teardown of a killed child).
    let mut kill_remove = Vec::new();
    for i in 0..N / 4 {
        let child = mgr.create(&format!("costk-{i}"), &limits).unwrap();
        let mut p = Command::new("sleep").arg("30").spawn().unwrap();
        child.attach(p.id()).unwrap();
        let t = Instant::now();
        child.remove().unwrap();
        kill_remove.push(t.elapsed());
        p.wait().unwrap();
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    eprintln!(
        "cgroup {} costs over {N}: create(mkdir+limits) p50 {:.0} us, attach p50 {:.0} us, \
         remove(empty) p50 {:.0} us, kill+remove(1 live process) p50 {:.0} us over {}",
        mgr.version(),
        us(median(&mut create)),
        us(median(&mut attach)),
        us(median(&mut remove)),
        us(median(&mut kill_remove)),
        N / 4
    );
    let parents = mgr.parent_paths();
    drop(mgr);
    assert_gone(&parents);
}
