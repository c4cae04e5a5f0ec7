//! Confinement tests: the escape suite (`--features escape-tests`), the view from outside, a
//! QuickJS workload under the filter, and start-up timings.
//!
//! Each case runs a confined process: this test binary re-executed with `CS_CONFINE_HELPER`
//! set, which a constructor notices before `main`, so the helper is single-threaded and on
//! the main thread like a real child (the harness would have started threads). It confines
//! itself, does one thing (an escape attempt, a JS workload, wait on stdin, ...) and reports in
//! protocol frames on fd 3, which it moves to fd 1 first.
//!
//! The tests need root. Without it (or when namespaces cannot be created) they skip with a
//! printed reason, unless `CS_REQUIRE_SANDBOX=1`, when they fail.
#![cfg(feature = "escape-tests")]

use sandbox_child::confine::{self, escape, ConfineSettings};
use sandbox_proto::protocol::{
    self, Fatal, FrameError, FromChild, LogLevel, LogLine, Ready, MAX_FRAME_FROM_CHILD,
};
use std::fs::File;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;

const HELPER: &str = "CS_CONFINE_HELPER";
const EXIT_CONFINE_FAILED: i32 = 2;

// ---------------------------------------------------------------------------------------------
// The helper (child side).

/// Runs before `main` (an ELF constructor), while the process still has one thread, the main
/// thread, exactly as a real child: when `CS_CONFINE_HELPER` is set, this process is a helper
/// and never reaches the test harness.
#[used]
#[link_section = ".init_array"]
static HELPER_CTOR: extern "C" fn() = helper_ctor;

extern "C" fn helper_ctor() {
    let Some(spec) = std::env::var_os(HELPER) else {
        return;
    };
    let code = run_helper(&spec.to_string_lossy());
    // SAFETY: leaving before the test harness ever starts.
    unsafe { libc::_exit(code) };
}

/// Writes one frame to fd 1 (the report pipe, moved there from fd 3).
fn send(msg: &FromChild) {
    let Ok(buf) = protocol::encode(msg) else {
        return;
    };
    // SAFETY: fd 1 stays open for the process's life; ManuallyDrop keeps it from being closed.
    let mut out = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    let _ = out.write_all(&buf);
}

fn log(line: String) {
    send(&FromChild::Log(LogLine {
        level: LogLevel::Info,
        line,
    }));
}

/// `<mode>|<op>`; mode: `seccomp`, `no-seccomp`, `uid0`, `wrong-parent`.
fn run_helper(spec: &str) -> i32 {
    let (mode, op) = spec.split_once('|').unwrap_or((spec, "noop"));
    // SAFETY: fd 3 is the report pipe the test set up; fd 1 is the harness's (ignored) stdout.
    if unsafe { libc::dup2(3, 1) } != 1 {
        return 90;
    }
    let (uid, gid) = confine::default_identity();
    let mut settings = ConfineSettings::new(uid, gid);
    match mode {
        "seccomp" => {}
        "no-seccomp" => settings.seccomp = false,
        "uid0" => settings.uid = 0,
        "wrong-parent" => settings.parent_pid = u32::MAX,
        _ => return 91,
    }
    // Not eprintln!: with fsize 0 a write to a stderr that is a regular file fails (EFBIG),
    // and eprintln! would panic on that.
    let mut explain = |line: &str| {
        let _ = writeln!(std::io::stderr(), "explain: {line}");
    };
    let report = match confine::confine(&settings, &mut explain) {
        Ok(r) => r,
        Err(e) => {
            send(&FromChild::Fatal(e.to_fatal()));
            return EXIT_CONFINE_FAILED;
        }
    };
    let mut timings = String::from("timings");
    for step in [
        "threads",
        "close-fds",
        "environment",
        "pdeathsig",
        "namespaces",
        "root",
        "capabilities",
        "identity",
        "no-new-privs",
        "rlimits",
        "seccomp",
    ] {
        timings.push_str(&format!(" {step}={}", report.micros(step)));
    }
    timings.push_str(&format!(" total={}", report.total_us));
    log(timings);

    match op {
        "noop" => 0,
        "wait" => {
            send(&FromChild::Ready(Ready {
                protocol_version: protocol::PROTOCOL_VERSION,
                pid: std::process::id(),
            }));
            let mut buf = [0u8; 64];
            // SAFETY: fd 0 is the test's pipe; ManuallyDrop keeps it open.
            let mut stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            0
        }
        "js" => {
            log(format!("js: {}", js_workload()));
            0
        }
        "abort" => std::process::abort(),
        op => {
            log(escape::try_forbidden(op));
            0
        }
    }
}

/// Allocation (small and large), JSON, regex, promises, exceptions, typed arrays, Date.
fn js_workload() -> String {
    let rt = match rquickjs::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return format!("runtime: {e}"),
    };
    let ctx = match rquickjs::Context::full(&rt) {
        Ok(c) => c,
        Err(e) => return format!("context: {e}"),
    };
    let src = r#"
        var out = {};
        var objs = [];
        for (let i = 0; i < 200000; i++) objs.push({ i, s: 'x' + i });
        out.objs = objs.length;
        var big = new Float64Array(4 << 20);           // 32 MiB: mmap
        big.fill(1.5);
        out.big = big[big.length - 1];
        var s = 'y'.repeat(1 << 22); s = s + s + s;     // growing strings: realloc/mremap
        out.s = s.length;
        var parsed = JSON.parse(JSON.stringify(objs.slice(0, 5000)));
        out.json = parsed[4999].s;
        out.re = 'a1-b22 c333-d4444'.replace(/(\w)(\d+)-(\w)(\d+)/g, '$3$4=$1$2');
        try { null.x; } catch (e) { out.caught = e instanceof TypeError; }
        out.date = typeof Date.now() === 'number';
        out.random = Math.random() < 1;
        objs = null; big = null; s = null;
        var done = 0;
        Promise.resolve(20).then(v => v * 2).then(v => { done = v + 2; });
        async function f() { await null; return 7; }
        f().then(v => { out.async = v; });
        globalThis.out = out;
        globalThis.doneRef = () => done;
    "#;
    let r: Result<(), String> = ctx.with(|ctx| {
        ctx.eval::<(), _>(src)
            .map_err(|e| format!("eval: {e}: {:?}", ctx.catch()))
    });
    if let Err(e) = r {
        return e;
    }
    while let Ok(true) = rt.execute_pending_job() {}
    ctx.with(|ctx| {
        ctx.eval::<String, _>("out.done = doneRef(); JSON.stringify(out)")
            .unwrap_or_else(|e| format!("eval: {e}"))
    })
}

// ---------------------------------------------------------------------------------------------
// The tests (parent side).

struct Run {
    frames: Vec<FromChild>,
    status: ExitStatus,
    stderr: String,
}

impl Run {
    fn logs(&self) -> Vec<&str> {
        self.frames
            .iter()
            .filter_map(|f| match f {
                FromChild::Log(l) => Some(l.line.as_str()),
                _ => None,
            })
            .collect()
    }

    fn fatal(&self) -> Option<&Fatal> {
        self.frames.iter().find_map(|f| match f {
            FromChild::Fatal(f) => Some(f),
            _ => None,
        })
    }

    fn describe(&self) -> String {
        format!(
            "status {:?}, frames {:?}, stderr:\n{}",
            self.status, self.frames, self.stderr
        )
    }
}

struct Spawned {
    child: Child,
    reports: File,
}

fn spawn(spec: &str) -> Spawned {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a live two-int array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = (fds[0], fds[1]);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(HELPER, spec)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; it runs in the forked child before exec and puts the
    // report pipe's write end on fd 3 (without O_CLOEXEC).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(w, 3) == 3 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let child = cmd.spawn().expect("spawn the helper");
    // SAFETY: closing our copy of the write end, and owning the read end from here on.
    let reports = unsafe {
        libc::close(w);
        File::from_raw_fd(r)
    };
    Spawned { child, reports }
}

fn read_frames(reports: &mut File) -> Vec<FromChild> {
    let mut frames = Vec::new();
    loop {
        match protocol::read_frame::<_, FromChild>(reports, MAX_FRAME_FROM_CHILD) {
            Ok(f) => frames.push(f),
            Err(FrameError::Closed) => return frames,
            Err(e) => panic!("bad frame from the helper: {e} (after {frames:?})"),
        }
    }
}

fn finish(mut s: Spawned, mut frames: Vec<FromChild>) -> Run {
    drop(s.child.stdin.take());
    frames.extend(read_frames(&mut s.reports));
    let mut stderr = String::new();
    if let Some(mut e) = s.child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = s.child.wait().expect("wait for the helper");
    Run {
        frames,
        status,
        stderr,
    }
}

fn run(spec: &str) -> Run {
    finish(spawn(spec), Vec::new())
}

/// `None` when confinement works here; else why not. Fails the test under
/// `CS_REQUIRE_SANDBOX=1`.
fn unavailable() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    let reason = REASON
        .get_or_init(|| {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Some("not running as root".into());
            }
            let r = run("seccomp|noop");
            match (r.fatal(), r.status.code()) {
                (None, Some(0)) => None,
                (Some(f), _) => Some(format!("confinement fails here: {}: {}", f.step, f.message)),
                _ => Some(format!("the helper failed: {}", r.describe())),
            }
        })
        .clone();
    if let Some(why) = &reason {
        if std::env::var("CS_REQUIRE_SANDBOX").as_deref() == Ok("1") {
            panic!("CS_REQUIRE_SANDBOX=1 but the sandbox is unavailable: {why}");
        }
        eprintln!("skipping: {why}");
    }
    reason
}

fn op_spec(op: &escape::EscapeOp) -> String {
    match op.op {
        "kill:<pid>" => format!("kill:{}", std::process::id()),
        o => o.to_string(),
    }
}

#[test]
fn under_seccomp_every_escape_is_killed_and_named() {
    if unavailable().is_some() {
        return;
    }
    let mut failures = Vec::new();
    for op in escape::ESCAPE_OPS {
        let r = run(&format!("seccomp|{}", op_spec(op)));
        let nr = confine::syscalls::number(op.syscall).expect("syscall in the name table");
        let want = format!("blocked syscall {nr} ({})", op.syscall);
        let ok = r.status.code() == Some(confine::sigsys::EXIT_BLOCKED_SYSCALL)
            && r.fatal()
                == Some(&Fatal {
                    step: "seccomp".into(),
                    message: want.clone(),
                })
            && r.stderr.contains(&want);
        println!(
            "{:<16} seccomp → {:?}",
            op.op,
            r.fatal().map(|f| &f.message)
        );
        if !ok {
            failures.push(format!("{}: wanted {want:?}; {}", op.op, r.describe()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn without_seccomp_escapes_still_fail() {
    if unavailable().is_some() {
        return;
    }
    let mut failures = Vec::new();
    for op in escape::ESCAPE_OPS {
        let r = run(&format!("no-seccomp|{}", op_spec(op)));
        let line = r
            .logs()
            .into_iter()
            .find(|l| !l.starts_with("timings"))
            .unwrap_or("")
            .to_string();
        println!("{:<16} no seccomp → {line}", op.op);
        if r.status.code() != Some(0) {
            failures.push(format!("{}: {}", op.op, r.describe()));
            continue;
        }
        if op.errnos.is_empty() {
            // Only seccomp stops these; the result is reported, not asserted.
            continue;
        }
        let blocked = op
            .errnos
            .iter()
            .any(|&e| line.ends_with(&format!(": blocked: {} ({e})", escape::errno_name(e))));
        if !blocked {
            failures.push(format!(
                "{}: expected one of {:?}, got {line:?}",
                op.op, op.errnos
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_waiting_child_looks_confined_from_outside() {
    if unavailable().is_some() {
        return;
    }
    let mut s = spawn("seccomp|wait");
    let mut frames = Vec::new();
    let pid = loop {
        match protocol::read_frame::<_, FromChild>(&mut s.reports, MAX_FRAME_FROM_CHILD) {
            Ok(FromChild::Ready(r)) => break r.pid,
            Ok(f) => frames.push(f),
            Err(e) => panic!("no Ready: {e}; {:?}", finish(s, frames).describe()),
        }
    };
    assert_eq!(pid, s.child.id(), "the helper is the spawned process");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in status"))
            .trim()
            .to_string()
    };
    let mut problems = Vec::new();
    for (name, want) in [
        ("Seccomp", "2"),
        ("NoNewPrivs", "1"),
        ("CapInh", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("CapEff", "0000000000000000"),
        ("CapBnd", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
        ("Threads", "1"),
    ] {
        if field(name) != want {
            problems.push(format!("{name}: {} (want {want})", field(name)));
        }
    }
    let (uid, gid) = confine::default_identity();
    let uids: Vec<String> = field("Uid").split_whitespace().map(String::from).collect();
    let gids: Vec<String> = field("Gid").split_whitespace().map(String::from).collect();
    if uids.iter().any(|u| u != &uid.to_string()) || uid == 0 {
        problems.push(format!("Uid: {uids:?}"));
    }
    if gids.iter().any(|g| g != &gid.to_string()) {
        problems.push(format!("Gid: {gids:?}"));
    }
    if !field("Groups").is_empty() {
        problems.push(format!("Groups: {}", field("Groups")));
    }
    for ns in ["mnt", "net", "ipc", "uts", "cgroup"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        if theirs == ours {
            problems.push(format!("{ns} namespace shared: {}", ours.display()));
        }
    }
    // The child's root is an empty directory.
    let root: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/root"))
        .unwrap()
        .collect();
    if !root.is_empty() {
        problems.push(format!("root has {} entries", root.len()));
    }
    // Only fds 0, 1, 2.
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    if fds != [0, 1, 2] {
        problems.push(format!("open fds {fds:?}"));
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    for (name, want) in [
        ("Max core file size", "0"),
        ("Max file size", "0"),
        ("Max open files", "3"),
        ("Max processes", "1"),
    ] {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        let soft = line[name.len()..].split_whitespace().next().unwrap();
        if soft != want {
            problems.push(line.to_string());
        }
    }
    let run = finish(s, frames);
    assert!(problems.is_empty(), "{problems:#?}\n{}", run.describe());
    assert_eq!(run.status.code(), Some(0), "{}", run.describe());
}

#[test]
fn quickjs_runs_under_the_filter() {
    if unavailable().is_some() {
        return;
    }
    let r = run("seccomp|js");
    assert_eq!(r.status.code(), Some(0), "{}", r.describe());
    let line = r
        .logs()
        .into_iter()
        .find(|l| l.starts_with("js: "))
        .unwrap_or_else(|| panic!("no result: {}", r.describe()))
        .to_string();
    let v: serde_json::Value =
        serde_json::from_str(&line[4..]).unwrap_or_else(|e| panic!("not JSON: {e}: {line}"));
    assert_eq!(v["objs"], 200000);
    assert_eq!(v["big"], 1.5);
    assert_eq!(v["s"], 3 * (1 << 22));
    assert_eq!(v["json"], "x4999");
    assert_eq!(v["re"], "b22=a1 d4444=c333");
    assert_eq!(v["caught"], true);
    assert_eq!(v["date"], true);
    assert_eq!(v["random"], true);
    assert_eq!(v["done"], 42);
    assert_eq!(v["async"], 7);
}

#[test]
fn native_allocation_is_allowed_and_abort_is_attributed() {
    if unavailable().is_some() {
        return;
    }
    let r = run("seccomp|alloc:64");
    assert_eq!(r.status.code(), Some(0), "{}", r.describe());
    assert!(
        r.logs()
            .iter()
            .any(|l| l.contains("ALLOWED: allocated and touched 64 MiB")),
        "{}",
        r.describe()
    );

    let r = run("seccomp|abort");
    assert_eq!(
        r.status.code(),
        Some(confine::sigsys::EXIT_ABORT),
        "{}",
        r.describe()
    );
    let f = r.fatal().unwrap_or_else(|| panic!("{}", r.describe()));
    assert_eq!(f.step, "abort");
    assert!(f.message.contains("(tgkill)"), "{f:?}");
}

#[test]
fn a_failing_step_names_itself() {
    if unavailable().is_some() {
        return;
    }
    let r = run("uid0|noop");
    assert_eq!(
        r.status.code(),
        Some(EXIT_CONFINE_FAILED),
        "{}",
        r.describe()
    );
    let f = r.fatal().unwrap_or_else(|| panic!("{}", r.describe()));
    assert_eq!(f.step, "identity", "{f:?}");
    assert!(f.message.contains("uid 0"), "{f:?}");
    assert!(r.status.signal().is_none());

    // A supervisor that is gone before PR_SET_PDEATHSIG took effect.
    let r = run("wrong-parent|noop");
    assert_eq!(
        r.status.code(),
        Some(EXIT_CONFINE_FAILED),
        "{}",
        r.describe()
    );
    let f = r.fatal().unwrap_or_else(|| panic!("{}", r.describe()));
    assert_eq!(f.step, "pdeathsig", "{f:?}");
}

#[test]
fn startup_timings() {
    if unavailable().is_some() {
        return;
    }
    const N: usize = 31;
    let mut per_step: Vec<(String, Vec<u64>)> = Vec::new();
    for _ in 0..N {
        let r = run("seccomp|noop");
        assert_eq!(r.status.code(), Some(0), "{}", r.describe());
        let line = r
            .logs()
            .into_iter()
            .find(|l| l.starts_with("timings"))
            .unwrap()
            .to_string();
        for kv in line.split_whitespace().skip(1) {
            let (k, v) = kv.split_once('=').unwrap();
            let v: u64 = v.parse().unwrap();
            match per_step.iter_mut().find(|(name, _)| name == k) {
                Some((_, vs)) => vs.push(v),
                None => per_step.push((k.to_string(), vec![v])),
            }
        }
    }
    let mut summary = Vec::new();
    for (k, vs) in &mut per_step {
        vs.sort_unstable();
        summary.push(format!("{k}={}µs", vs[vs.len() / 2]));
    }
    println!("confinement medians over {N} runs: {}", summary.join(" "));
    let total = &per_step.iter().find(|(k, _)| k == "total").unwrap().1;
    // Generous: the point is "a few ms", not a benchmark.
    assert!(
        total[N / 2] < 50_000,
        "median confinement {} µs",
        total[N / 2]
    );
}
