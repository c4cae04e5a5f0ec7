//! `vm-driver e2e`: the end-to-end part of `make vm-test`, run inside the VM (a real kernel and a
//! real systemd, booted once with the unified cgroup v2 hierarchy and once with the legacy v1
//! one) by `packaging/vm/guest/vm-test.sh`.
//!
//! It runs the codeQ emulator in-process on codeQ's default ports (worker :9091, producer :9092),
//! publishes functions into the redis-server the guest script started (the KVRocks layout of
//! tests/serve.rs), installs a package -- the .deb (`dpkg -i`, which enables and starts the unit)
//! or the .rpm (`rpm -i`, then `systemctl enable --now`, as on RHEL) -- then drives the installed
//! daemon through codeQ tasks and systemctl and checks what systemd and the kernel show:
//! delegation, the per-child cgroup limits (v2 or v1 files), memory-limit attribution
//! (JavaScript and native), a crash and systemd's restart, stop/drain, restart, an upgrade to a
//! newer revision while tasks flow (each finishes exactly once, the configuration is kept), and
//! removal (`dpkg -r` / `dpkg -P`, or `rpm -e`).
//!
//! Output: one `PASS e2e/<name>: ...`, `FAIL e2e/<name>: ...` or `INFO e2e/<name>: ...` line per
//! check on stdout. Exit status 0 when nothing failed.

use codeq_emulator::{Emulator, EmulatorConfig, EnqueueOptions, Listen, TaskStatus, TaskView};
use redis::Commands;
use sandbox_proto::bundle;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const UNIT: &str = "cs-invoker-pool.service";
const PKG: &str = "cs-invoker-pool";
const T: &str = "t_vm01";
const NS: &str = "vm";
const HTTP: &str = "127.0.0.1:8082";
const DROPIN_DIR: &str = "/etc/systemd/system/cs-invoker-pool.service.d";
const ENV_FILE: &str = "/etc/cs-invoker-pool-vm-test.env";

/// When the driver started (the time stamps of the report lines).
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

// --- reporting --------------------------------------------------------------------------------

#[derive(Default)]
struct Report {
    failed: Vec<String>,
    passed: usize,
}

impl Report {
    /// One line: `KIND e2e/NAME: DETAIL [+S s]`, S the seconds since the driver started (where
    /// the time of a run goes).
    fn line(&self, kind: &str, name: &str, detail: &str) {
        let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{kind} e2e/{name}: {detail} [+{t:.1} s]");
        let _ = out.flush();
    }
    fn pass(&mut self, name: &str, detail: impl AsRef<str>) {
        self.passed += 1;
        self.line("PASS", name, detail.as_ref());
    }
    fn fail(&mut self, name: &str, detail: impl AsRef<str>) {
        self.failed.push(name.to_string());
        self.line("FAIL", name, detail.as_ref());
    }
    fn info(&self, name: &str, detail: impl AsRef<str>) {
        self.line("INFO", name, detail.as_ref());
    }
    fn check(&mut self, name: &str, ok: bool, detail: impl AsRef<str>) -> bool {
        if ok {
            self.pass(name, detail)
        } else {
            self.fail(name, detail)
        }
        ok
    }
}

// --- small helpers ----------------------------------------------------------------------------

/// Runs a command; (success, stdout + stderr).
fn sh(prog: &str, args: &[&str]) -> (bool, String) {
    match Command::new(prog).args(args).output() {
        Ok(o) => {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.success(), s.trim_end().to_string())
        }
        Err(e) => (false, format!("cannot run {prog}: {e}")),
    }
}

fn show(prop: &str) -> String {
    sh("systemctl", &["show", UNIT, "-p", prop, "--value"]).1
}

fn main_pid() -> u32 {
    show("MainPID").trim().parse().unwrap_or(0)
}

fn read(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn http_get(path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(HTTP).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Every cgroup directory below `dir` (not `dir` itself), depth first.
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(subdirs(&p));
                out.push(p);
            }
        }
    }
    out
}

fn procs_named(name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if read(format!("/proc/{pid}/comm")).as_deref() == Some(name) {
            out.push(pid);
        }
    }
    out
}

fn status_field(pid: u32, key: &str) -> String {
    read(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn journal(r: &Report, lines: &str) {
    let (_, j) = sh(
        "journalctl",
        &["-u", UNIT, "--no-pager", "-o", "cat", "-n", lines],
    );
    for l in j.lines() {
        r.line("LOG", "journal", l);
    }
}

// --- functions and tasks ----------------------------------------------------------------------

/// Publishes `function` version 1 with alias `prod`, as tests/serve.rs `publish()` does.
fn publish(
    raw: &mut redis::Connection,
    function: &str,
    source: &str,
    timeout_ms: u64,
    memory_mb: u64,
    capabilities: Value,
) {
    let manifest = json!({
        "schema": "cs.function.script.v1", "runtime": "cs-js", "entry": "function.js",
        "handler": "default",
        "limits": {"timeoutMs": timeout_ms, "memoryMb": memory_mb, "maxConcurrency": 64},
        "capabilities": capabilities,
    });
    let mut files = BTreeMap::new();
    files.insert("function.js".to_string(), source.as_bytes().to_vec());
    files.insert(
        "manifest.json".to_string(),
        manifest.to_string().into_bytes(),
    );
    let tar = bundle::pack(&files).expect("pack the bundle");
    let sha = bundle::sha256_hex(&tar);
    let p = format!("cs:fn:{T}:{NS}:{function}");
    let _: () = raw.set(format!("{p}:ver:1:bundle"), &tar).unwrap();
    let _: () = raw
        .set(
            format!("{p}:ver:1:meta"),
            json!({"version": 1, "sha256": sha, "config": {}, "published_at_ms": 1u64}).to_string(),
        )
        .unwrap();
    let _: () = raw
        .set(
            format!("{p}:alias:prod"),
            json!({"alias": "prod", "version": 1, "updated_at_ms": 1u64}).to_string(),
        )
        .unwrap();
}

/// The `cs.invoke` payload of tests/serve.rs `invocation()`.
fn invocation(function: &str, event: Value) -> (String, Vec<u8>) {
    let aid = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "activation_id": aid, "request_id": format!("req-{}", &aid[..8]), "tenant": T,
        "namespace": NS, "ref": {"function": function, "alias": "prod"},
        "trigger": {"type": "api", "source": {}}, "principal": {"sub": "u1", "roles": []},
        "deadline_ms": now_ms() + 300_000, "event": event,
    });
    let env = json!({"schema": "cs.envelope.v1", "id": format!("msg_{aid}"), "ts_ms": now_ms(),
                     "tenant": T, "type": "InvocationRequest", "body": body});
    (aid, env.to_string().into_bytes())
}

struct Ctx {
    emu: Emulator,
    r: Report,
}

impl Ctx {
    fn enqueue(&self, function: &str, event: Value) -> String {
        let (_, p) = invocation(function, event);
        self.emu.enqueue("cs.invoke", p, EnqueueOptions::default())
    }

    fn wait_task(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&TaskView) -> bool,
    ) -> Option<TaskView> {
        let mut found = None;
        wait_for(timeout, || match self.emu.task(id) {
            Some(t) if pred(&t) => {
                found = Some(t);
                true
            }
            _ => false,
        });
        found
    }

    fn finished(&self, id: &str, secs: u64) -> Option<TaskView> {
        self.wait_task(id, Duration::from_secs(secs), |t| t.status.is_terminal())
    }

    /// Runs `function` once; the terminal task, or None after `secs`.
    fn run(&self, function: &str, event: Value, secs: u64) -> Option<TaskView> {
        let id = self.enqueue(function, event);
        self.finished(&id, secs)
    }

    fn describe(t: &Option<TaskView>) -> String {
        match t {
            None => "no terminal state in time".into(),
            Some(t) => format!(
                "status={} error={:?} result={} deliveries={}",
                t.status,
                t.error,
                t.result_value().map(|v| v.to_string()).unwrap_or_default(),
                t.deliveries
            ),
        }
    }

    /// hello → COMPLETED with its body.
    fn hello(&mut self, name: &str, who: &str) -> bool {
        let t = self.run("hello", json!({"name": who}), 60);
        let ok = t.as_ref().is_some_and(|t| {
            t.status == TaskStatus::Completed
                && t.result_value()
                    .map(|v| v["result"]["body"] == json!(format!("hi {who}")))
                    == Some(true)
        });
        let d = Self::describe(&t);
        self.r.check(name, ok, d)
    }

    /// Waits until the unit is active and /readyz answers 200.
    fn wait_ready(&mut self, name: &str, secs: u64) -> bool {
        let t0 = Instant::now();
        let ok = wait_for(Duration::from_secs(secs), || {
            show("ActiveState") == "active" && matches!(http_get("/readyz"), Some((200, _)))
        });
        let detail = format!(
            "ActiveState={} MainPID={} /readyz={:?} after {} ms",
            show("ActiveState"),
            main_pid(),
            http_get("/readyz").map(|x| x.0),
            t0.elapsed().as_millis()
        );
        if !self.r.check(name, ok, detail) {
            journal(&self.r, "40");
        }
        ok
    }
}

/// The daemon's settings for the test, in the EnvironmentFile the drop-in adds. Among them
/// CS_INVOKER_MAX_INFLIGHT=4, the size of this VM (2 TCG vCPUs, ~10x slower than the host): with
/// the shipped 2048, the backlog an upgrade leaves (tasks keep coming while dpkg runs for
/// ~30 s) is claimed at once, and ~100 children started together under TCG take longer than
/// the pool's 5 s ready timeout; those tasks then fail with SandboxError (still finished
/// exactly once).
fn write_env(child_bin: Option<&str>) {
    let mut env = String::from(
        "# written by packaging/vm/driver (make vm-test)\n\
         CS_KVROCKS_ADDR=127.0.0.1:6666\n\
         CS_CODEQ_PRODUCER_TOKEN=producer-token\n\
         CS_CODEQ_WORKER_TOKEN=worker-token\n\
         CS_CODEQ_WORKER_ADDR=127.0.0.1:9091\n\
         CS_CODEQ_PRODUCER_ADDR=127.0.0.1:9092\n\
         CS_INVOKER_HTTP_ADDR=127.0.0.1:8082\n\
         CS_INVOKER_MAX_INFLIGHT=4\n",
    );
    if let Some(bin) = child_bin {
        env.push_str(&format!("CS_SANDBOX_CHILD_BIN={bin}\n"));
    }
    std::fs::write(ENV_FILE, env).unwrap();
}

// --- cgroup layouts ---------------------------------------------------------------------------

/// The hierarchy the guest was booted with (`systemd.unified_cgroup_hierarchy=`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hier {
    /// cgroup v2: one tree at /sys/fs/cgroup; the daemon moves itself into `<unit>/supervisor`.
    V2,
    /// Legacy v1 (RHEL 8's default): one tree per controller; the daemon stays in the unit's
    /// cgroup and creates `cs-invoker-pool.<pid>` in the memory and pids trees.
    V1,
}

impl Hier {
    fn name(self) -> &'static str {
        match self {
            Hier::V2 => "v2",
            Hier::V1 => "v1",
        }
    }

    /// The controller trees that matter, by name: v2 one, v1 memory and pids.
    fn roots(self) -> Vec<(&'static str, PathBuf)> {
        match self {
            Hier::V2 => vec![("unified", PathBuf::from("/sys/fs/cgroup"))],
            Hier::V1 => vec![
                ("memory", PathBuf::from("/sys/fs/cgroup/memory")),
                ("pids", PathBuf::from("/sys/fs/cgroup/pids")),
            ],
        }
    }

    /// The unit's delegated cgroup in each tree.
    fn unit_dirs(self) -> Vec<PathBuf> {
        self.roots()
            .into_iter()
            .map(|(_, r)| r.join("system.slice").join(UNIT))
            .collect()
    }

    /// The memory files of this hierarchy live here (the unit's cgroup in that tree).
    fn memory_unit(self) -> PathBuf {
        self.unit_dirs().remove(0)
    }

    /// Where the daemon must sit: v2 its leaf, v1 the unit's own cgroup in each tree.
    fn expected_daemon_dirs(self) -> Vec<PathBuf> {
        match self {
            Hier::V2 => vec![self.memory_unit().join("supervisor")],
            Hier::V1 => self.unit_dirs(),
        }
    }

    /// Where `pid` sits, in the trees of [`Hier::roots`] (from /proc/PID/cgroup).
    fn dirs_of(self, pid: u32) -> Vec<PathBuf> {
        let text = read(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let mut out = Vec::new();
        for (ctl, root) in self.roots() {
            let found = text.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctls, path) = (parts.next()?, parts.next()?, parts.next()?);
                let matches = match self {
                    Hier::V2 => ctls.is_empty(),
                    Hier::V1 => ctls.split(',').any(|c| c == ctl),
                };
                matches.then(|| root.join(path.trim_start_matches('/')))
            });
            if let Some(p) = found {
                out.push(p);
            }
        }
        out
    }

    /// The daemon's per-process parents (`cs-invoker-pool.<pid>`) in each tree.
    fn parents(self, pid: u32) -> Vec<PathBuf> {
        self.unit_dirs()
            .into_iter()
            .map(|u| u.join(format!("cs-invoker-pool.{pid}")))
            .collect()
    }

    fn memory_limit_file(self) -> &'static str {
        match self {
            Hier::V2 => "memory.max",
            Hier::V1 => "memory.limit_in_bytes",
        }
    }
}

/// Is /sys/fs/cgroup what a boot with `hier` must give (memory and pids usable there)?
fn hierarchy_ok(hier: Hier) -> (bool, String) {
    let mounts = read("/proc/mounts").unwrap_or_default();
    let fstype = |at: &str| {
        mounts
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(1) == Some(&at)).then(|| f.get(2).map(|s| s.to_string()))
            })
            .flatten()
            .unwrap_or_else(|| "none".into())
    };
    match hier {
        Hier::V2 => {
            let ctl = read("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
            let t = fstype("/sys/fs/cgroup");
            (
                t == "cgroup2" && ctl.contains("memory") && ctl.contains("pids"),
                format!("/sys/fs/cgroup is {t}, controllers: {ctl:?}"),
            )
        }
        Hier::V1 => {
            let (m, p, t) = (
                fstype("/sys/fs/cgroup/memory"),
                fstype("/sys/fs/cgroup/pids"),
                fstype("/sys/fs/cgroup"),
            );
            let unified = fstype("/sys/fs/cgroup/unified");
            (
                t == "tmpfs" && m == "cgroup" && p == "cgroup" && unified == "none",
                format!(
                    "/sys/fs/cgroup is {t}; memory: {m}, pids: {p} (v1 trees); \
                     /sys/fs/cgroup/unified: {unified} (legacy: no v2 tree at all, as RHEL 8)"
                ),
            )
        }
    }
}

// --- packages ---------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Deb,
    Rpm,
}

/// The package under test and its newer revision.
struct Pkg {
    kind: Kind,
    first: String,
    newer: String,
}

impl Pkg {
    /// Installs `path` (upgrade: over the installed revision). The guest's rpm database knows
    /// none of the Debian system's packages (glibc, systemd, shadow-utils are dpkg's), so rpm is
    /// told --nodeps; the dependencies themselves are checked by `make package-check`.
    fn install(&self, path: &str, upgrade: bool) -> (bool, String) {
        install_file(self.kind, path, upgrade)
    }

    fn version(&self) -> String {
        match self.kind {
            Kind::Deb => sh("dpkg-query", &["-W", "-f", "${Version}", PKG]).1,
            Kind::Rpm => sh("rpm", &["-q", "--qf", "%{VERSION}-%{RELEASE}", PKG]).1,
        }
    }

    /// The version a package file carries.
    fn file_version(&self, path: &str) -> String {
        match self.kind {
            Kind::Deb => sh("dpkg-deb", &["-f", path, "Version"]).1,
            Kind::Rpm => sh("rpm", &["-qp", "--qf", "%{VERSION}-%{RELEASE}", path]).1,
        }
    }

    fn files(&self) -> Vec<String> {
        let out = match self.kind {
            Kind::Deb => sh("dpkg", &["-L", PKG]).1,
            Kind::Rpm => sh("rpm", &["-ql", PKG]).1,
        };
        out.lines().map(str::to_string).collect()
    }

    fn tool(&self) -> &'static str {
        match self.kind {
            Kind::Deb => "dpkg",
            Kind::Rpm => "rpm",
        }
    }
}

fn install_file(kind: Kind, path: &str, upgrade: bool) -> (bool, String) {
    match (kind, upgrade) {
        (Kind::Deb, _) => sh("dpkg", &["-i", path]),
        (Kind::Rpm, false) => sh("rpm", &["-i", "--nodeps", path]),
        (Kind::Rpm, true) => sh("rpm", &["-U", "--nodeps", path]),
    }
}

/// The operator's change to the configuration that every upgrade must keep.
const CONFIG: &str = "/etc/cs-invoker-pool/config.yaml";
const CONFIG_SHIPPED: &str = "    drain_seconds: 25\n";
const CONFIG_EDITED: &str =
    "    drain_seconds: 24 # vm-test: an operator's edit, kept by upgrades\n";

// --- the scenario -----------------------------------------------------------------------------

struct Args {
    pkg: Pkg,
    hier: Hier,
    escape: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut deb, mut deb_new, mut rpm, mut rpm_new) = (None, None, None, None);
    let (mut kind, mut hier, mut escape) = (None, None, None);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "e2e" => {}
            "--deb" => deb = Some(val()?),
            "--deb-upgrade" => deb_new = Some(val()?),
            "--rpm" => rpm = Some(val()?),
            "--rpm-upgrade" => rpm_new = Some(val()?),
            "--escape-child" => escape = Some(val()?),
            "--package" => {
                kind = Some(match val()?.as_str() {
                    "deb" => Kind::Deb,
                    "rpm" => Kind::Rpm,
                    other => return Err(format!("--package deb|rpm, not {other}")),
                })
            }
            "--cgroup" => {
                hier = Some(match val()?.as_str() {
                    "v2" => Hier::V2,
                    "v1" => Hier::V1,
                    other => return Err(format!("--cgroup v1|v2, not {other}")),
                })
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let kind = kind.ok_or("--package is required")?;
    let (first, newer) = match kind {
        Kind::Deb => (deb, deb_new),
        Kind::Rpm => (rpm, rpm_new),
    };
    let first = first.ok_or("the package (--deb / --rpm) is required")?;
    let newer = newer.ok_or("the newer revision (--deb-upgrade / --rpm-upgrade) is required")?;
    Ok(Args {
        pkg: Pkg { kind, first, newer },
        hier: hier.ok_or("--cgroup is required")?,
        escape,
    })
}

const USAGE: &str =
    "usage: vm-driver e2e --package deb|rpm --cgroup v1|v2 --deb PATH --deb-upgrade PATH \
                     --rpm PATH --rpm-upgrade PATH [--escape-child PATH]";

fn main() -> ExitCode {
    START.get_or_init(Instant::now);
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vm-driver: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = EmulatorConfig {
        listen: Listen::Split {
            worker: SocketAddr::from(([127, 0, 0, 1], 9091)),
            producer: SocketAddr::from(([127, 0, 0, 1], 9092)),
        },
        ready_expiry: Duration::from_secs(5),
        reap_interval: Duration::from_millis(200),
        backoff_base_seconds: 0,
        ..EmulatorConfig::default()
    };
    let emu = match rt.block_on(Emulator::start(cfg)) {
        Ok(e) => e,
        Err(e) => {
            println!("FAIL e2e/emulator: cannot start the codeQ emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut cx = Ctx {
        emu,
        r: Report::default(),
    };
    cx.r.info(
        "setup",
        format!(
            "package {:?} ({}), cgroup {}; codeQ emulator worker {} producer {}",
            args.pkg.kind,
            args.pkg.first,
            args.hier.name(),
            cx.emu.worker_addr(),
            cx.emu.producer_addr()
        ),
    );
    let t_all = Instant::now();
    scenario(&mut cx, &args);
    let r = &cx.r;
    println!(
        "INFO e2e/summary: {} passed, {} failed{} in {:.1} s",
        r.passed,
        r.failed.len(),
        if r.failed.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.failed.join(", "))
        },
        t_all.elapsed().as_secs_f64()
    );
    drop(rt);
    if r.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn publish_functions(raw: &mut redis::Connection) {
    publish(
        raw,
        "hello",
        "export default (e) => ({ statusCode: 200, body: 'hi ' + e.name });",
        30_000,
        64,
        json!({}),
    );
    publish(
        raw,
        "slow",
        "export default (e) => { const end = Date.now() + e.ms; while (Date.now() < end) {} return 'slept ' + e.ms; };",
        120_000,
        64,
        json!({}),
    );
    publish(
        raw,
        "hog",
        "export default () => { const a = []; while (true) a.push(new Array(65536).fill(a.length)); }",
        60_000,
        16,
        json!({}),
    );
    publish(
        raw,
        "escape",
        "export default (event) => ({ statusCode: 200, body: __csEscape(event.op) });",
        60_000,
        16,
        json!({}),
    );
    // Counts its own executions in cs.kv (runs:<activation id>) before it spends `ms`: a task
    // run twice, e.g. cut by a stop and redelivered, shows 2.
    publish(
        raw,
        "count",
        "export default (e, ctx) => { const k = 'runs:' + ctx.activation_id; \
         cs.kv.set(k, (cs.kv.get(k) ?? 0) + 1, { ttlSeconds: 3600 }); \
         const end = Date.now() + e.ms; while (Date.now() < end) {} return 'ran ' + ctx.activation_id; };",
        60_000,
        32,
        json!({"kv": {"prefixes": ["runs:"], "ops": ["get", "set"]}}),
    );
}

fn scenario(cx: &mut Ctx, args: &Args) {
    let (pkg, hier) = (&args.pkg, args.hier);
    let (ok, detail) = hierarchy_ok(hier);
    if !cx.r.check(&format!("cgroup-{}", hier.name()), ok, detail) {
        return;
    }

    // Functions, in the store.
    let mut raw =
        match redis::Client::open("redis://127.0.0.1:6666/").and_then(|c| c.get_connection()) {
            Ok(c) => c,
            Err(e) => {
                cx.r.fail("redis", format!("cannot connect to 127.0.0.1:6666: {e}"));
                return;
            }
        };
    publish_functions(&mut raw);
    cx.r.pass(
        "publish",
        "hello, slow, hog, escape, count published as version 1 / alias prod",
    );

    // Our settings come from an EnvironmentFile added by a drop-in (read after the unit's own),
    // so the shipped /etc/cs-invoker-pool/config.yaml is installed and used untouched.
    write_env(None);
    std::fs::create_dir_all(DROPIN_DIR).unwrap();
    // VM_DROPIN (a file in the guest, from run.sh's VM_DROPIN): extra [Service] lines, to try
    // a unit change without rebuilding the package. Reported, since the unit is then not the
    // shipped one.
    let extra = std::env::var("VM_DROPIN_FILE")
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    if !extra.trim().is_empty() {
        cx.r.info(
            "unit-modified",
            format!("drop-in adds: {}", extra.trim().replace('\n', " | ")),
        );
    }
    std::fs::write(
        format!("{DROPIN_DIR}/vm-test.conf"),
        format!("[Service]\nEnvironmentFile={ENV_FILE}\n{extra}"),
    )
    .unwrap();

    if !install(cx, pkg) {
        return;
    }
    let (user_ok, user) = sh("getent", &["passwd", "cs-sandbox"]);
    cx.r.check(
        "user",
        user_ok,
        format!("getent passwd cs-sandbox → {user}"),
    );
    let sandbox_uid: Option<u32> = user.split(':').nth(2).and_then(|u| u.parse().ok());
    let fragment = show("FragmentPath");

    // The unit runs: delegated, the daemon where the hierarchy puts it.
    if !cx.wait_ready("active-and-ready", 180) {
        return;
    }
    let delegate = show("Delegate");
    cx.r.check(
        "delegate",
        delegate == "yes",
        format!(
            "Delegate={delegate} DelegateControllers={}",
            show("DelegateControllers")
        ),
    );
    let pid = main_pid();
    let own = hier.dirs_of(pid);
    cx.r.check(
        "daemon-cgroup",
        own == hier.expected_daemon_dirs(),
        format!(
            "MainPID {pid} in {own:?} (expected {:?})",
            hier.expected_daemon_dirs()
        ),
    );
    match hier {
        Hier::V2 => {
            let sub = read(hier.memory_unit().join("cgroup.subtree_control")).unwrap_or_default();
            cx.r.check(
                "unit-subtree-control",
                sub.contains("memory") && sub.contains("pids"),
                format!(
                    "{}/cgroup.subtree_control = {sub:?}",
                    hier.memory_unit().display()
                ),
            );
        }
        Hier::V1 => {
            // Delegate=yes on the legacy hierarchy: the unit has a cgroup of its own in the
            // memory and the pids tree, and the daemon is in both.
            let dirs = hier.unit_dirs();
            let ok = dirs.iter().all(|d| {
                read(d.join("cgroup.procs"))
                    .is_some_and(|p| p.lines().any(|l| l == pid.to_string()))
            });
            cx.r.check(
                "unit-delegated-trees",
                ok,
                format!("MainPID {pid} in {dirs:?}"),
            );
        }
    }

    // A function runs end to end.
    cx.hello("hello", "vm");

    child_limits(cx, hier, pid, sandbox_uid);

    // A JavaScript allocation past memoryMb: the engine's counter, attributed MemoryLimit.
    let t = cx.run("hog", json!({}), 120);
    let ok = t.as_ref().is_some_and(|t| {
        t.status == TaskStatus::Failed
            && t.error
                .as_deref()
                .is_some_and(|e| e.starts_with("MemoryLimit"))
    });
    let d = Ctx::describe(&t);
    cx.r.check("js-memory-limit", ok, d);
    cx.hello("hello-after-hog", "again");

    if !native_oom(cx, hier, args.escape.as_deref()) {
        return;
    }
    crash(cx, hier);
    stop_start(cx, hier);
    if !upgrade(cx, pkg, &mut raw) {
        return;
    }
    remove(cx, pkg, hier, &fragment);
}

/// Installs the first revision; for the .rpm also `systemctl enable --now` (its %post leaves a
/// new service as the presets say, which on RHEL and Fedora is disabled).
fn install(cx: &mut Ctx, pkg: &Pkg) -> bool {
    let t0 = Instant::now();
    let (ok, out) = pkg.install(&pkg.first, false);
    let took = t0.elapsed();
    let name = format!("{}-install", pkg.tool());
    if !cx.r.check(
        &name,
        ok,
        format!(
            "{} {} ({}) in {} ms",
            pkg.tool(),
            if pkg.kind == Kind::Deb {
                "-i"
            } else {
                "-i --nodeps"
            },
            pkg.first,
            took.as_millis()
        ),
    ) {
        for l in out.lines() {
            cx.r.line("LOG", pkg.tool(), l);
        }
        return false;
    }
    let files = pkg.files();
    let expect = [
        "/usr/bin/cs-invoker-pool",
        "/usr/bin/sandbox-child",
        CONFIG,
        "/usr/share/man/man1/cs-invoker-pool.1.gz",
        "/usr/share/man/man1/sandbox-child-run.1.gz",
        "/usr/share/bash-completion/completions/cs-invoker-pool",
        "/usr/share/bash-completion/completions/sandbox-child",
    ];
    let missing: Vec<&str> = expect
        .iter()
        .copied()
        .filter(|f| !files.iter().any(|l| l == f) || !Path::new(f).is_file())
        .collect();
    cx.r.check(
        "installed-files",
        missing.is_empty(),
        format!(
            "{} files; binaries, config, man pages, completions present (missing: {missing:?})",
            files.len()
        ),
    );
    let enabled = sh("systemctl", &["is-enabled", UNIT]).1;
    match pkg.kind {
        Kind::Deb => {
            cx.r.check(
                "enabled",
                enabled == "enabled",
                format!("systemctl is-enabled → {enabled} (dpkg enables and starts it)"),
            );
        }
        Kind::Rpm => {
            let active = show("ActiveState");
            cx.r.check(
                "rpm-preset-leaves-it-off",
                enabled == "disabled" && active == "inactive",
                format!(
                    "after rpm -i: is-enabled → {enabled}, ActiveState={active} (the preset \
                     policy \"disable *\" of RHEL/Fedora; not started)"
                ),
            );
            let (ok, out) = sh("systemctl", &["enable", "--now", UNIT]);
            cx.r.check(
                "enable-now",
                ok,
                format!("systemctl enable --now {UNIT} {out}"),
            );
        }
    }
    true
}

/// A slow function: its child's cgroup, seen from outside while it runs.
fn child_limits(cx: &mut Ctx, hier: Hier, pid: u32, sandbox_uid: Option<u32>) {
    let slow = cx.enqueue("slow", json!({"ms": 6000}));
    let in_progress = cx.wait_task(&slow, Duration::from_secs(60), |t| {
        t.status == TaskStatus::InProgress
    });
    cx.r.check(
        "slow-claimed",
        in_progress.is_some(),
        "the slow task is IN_PROGRESS",
    );
    let parents = hier.parents(pid);
    let mem_parent = parents[0].clone();
    let memory_mb = 64u64;
    let limit_file = hier.memory_limit_file();
    let mut busy: Option<(PathBuf, Vec<u32>)> = None;
    wait_for(Duration::from_secs(30), || {
        for d in subdirs(&mem_parent) {
            let procs: Vec<u32> = read(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect();
            let max: u64 = read(d.join(limit_file))
                .and_then(|m| m.parse().ok())
                .unwrap_or(u64::MAX);
            if !procs.is_empty() && max < (memory_mb + 64) << 20 {
                busy = Some((d, procs));
                return true;
            }
        }
        false
    });
    let Some((dir, procs)) = busy else {
        let all: Vec<String> = hier
            .unit_dirs()
            .iter()
            .flat_map(|u| subdirs(u))
            .map(|d| {
                format!(
                    "{} procs={:?} {limit_file}={:?}",
                    d.display(),
                    read(d.join("cgroup.procs")),
                    read(d.join(limit_file))
                )
            })
            .collect();
        cx.r.fail(
            "child-cgroup",
            format!(
                "no busy child cgroup under {}: {all:?}",
                mem_parent.display()
            ),
        );
        let _ = cx.finished(&slow, 90);
        return;
    };
    // The child's cgroup in the pids tree: the same path below the pids parent (v1), or the same
    // directory (v2).
    let rel = dir
        .strip_prefix(&mem_parent)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let pids_dir = parents.last().unwrap_or(&mem_parent).join(&rel);
    let f = |d: &Path, n: &str| read(d.join(n)).unwrap_or_else(|| "<missing>".into());
    cx.r.pass(
        "child-cgroup",
        format!(
            "{} procs={procs:?} (under the unit's delegated subtree)",
            dir.display()
        ),
    );
    let mmax = f(&dir, limit_file);
    let mem: u64 = mmax.parse().unwrap_or(0);
    cx.r.check(
        "child-memory-limit",
        mem > memory_mb << 20 && mem <= (memory_mb + 64) << 20,
        format!(
            "{limit_file}={mmax} ({:.1} MiB for memoryMb {memory_mb})",
            mem as f64 / 1048576.0
        ),
    );
    match hier {
        Hier::V2 => {
            let swap = f(&dir, "memory.swap.max");
            cx.r.check(
                "child-no-swap",
                swap == "0",
                format!("memory.swap.max={swap}"),
            );
            let oomg = f(&dir, "memory.oom.group");
            cx.r.check(
                "child-memory.oom.group",
                oomg == "1",
                format!("memory.oom.group={oomg}"),
            );
        }
        Hier::V1 => {
            // memsw is memory + swap: equal to the memory limit means no swap at all. Without
            // swap accounting in the kernel the file is absent and swappiness 0 is what is left.
            let memsw = read(dir.join("memory.memsw.limit_in_bytes"));
            let swappiness = f(&dir, "memory.swappiness");
            cx.r.check(
                "child-no-swap",
                memsw.as_deref().map_or(swappiness == "0", |m| m == mmax),
                format!("memory.memsw.limit_in_bytes={memsw:?} memory.swappiness={swappiness}"),
            );
            cx.r.info(
                "child-memory.oom.group",
                "v1 has no memory.oom.group: the OOM killer kills one process, the pool's teardown the rest",
            );
        }
    }
    let pmax = f(&pids_dir, "pids.max");
    let pm: u64 = pmax.parse().unwrap_or(0);
    cx.r.check(
        "child-pids.max",
        (1..=16).contains(&pm),
        format!(
            "{}/pids.max={pmax} pids.current={}",
            pids_dir.display(),
            f(&pids_dir, "pids.current")
        ),
    );
    // The kernel enforces pids.max on this very cgroup: a shell moved into it (root may write
    // any cgroup.procs) cannot fork past the limit. (The child itself cannot fork at all:
    // seccomp stops it first.) Its sleeps (2 s) end before the 6 s function does.
    let script = format!(
        "echo $$ > {}/cgroup.procs || exit 9; for i in 1 2 3 4 5 6; do sleep 2 & done; wait",
        pids_dir.display()
    );
    let (_, out) = sh("/bin/sh", &["-c", &script]);
    let refused = out.contains("Cannot fork") || out.contains("Resource temporarily unavailable");
    cx.r.check(
        "child-pids-enforced",
        refused,
        format!(
            "6 forks from a shell inside the child's pids cgroup (pids.max={pmax}): {}",
            out.replace('\n', " | ")
        ),
    );
    match hier {
        Hier::V2 => {
            let psub = read(mem_parent.join("cgroup.subtree_control")).unwrap_or_default();
            cx.r.check(
                "parent-subtree-control",
                psub.contains("memory") && psub.contains("pids"),
                format!("{}/cgroup.subtree_control = {psub:?}", mem_parent.display()),
            );
        }
        Hier::V1 => {
            cx.r.check(
                "parents-in-both-trees",
                parents.iter().all(|p| p.is_dir()),
                format!("{parents:?}"),
            );
        }
    }
    let cpid = procs[0];
    let (seccomp, nnp, capeff, uid) = (
        status_field(cpid, "Seccomp"),
        status_field(cpid, "NoNewPrivs"),
        status_field(cpid, "CapEff"),
        status_field(cpid, "Uid"),
    );
    let uids: Vec<u32> = uid
        .split_whitespace()
        .filter_map(|u| u.parse().ok())
        .collect();
    let uid_ok = uids.len() == 4 && uids.iter().all(|&u| Some(u) == sandbox_uid);
    cx.r.check(
        "child-confined",
        seccomp == "2" && nnp == "1" && capeff.trim_start_matches('0').is_empty() && uid_ok,
        format!("pid {cpid}: Seccomp={seccomp} NoNewPrivs={nnp} CapEff={capeff} Uid={uid} (cs-sandbox={sandbox_uid:?})"),
    );
    let t = cx.finished(&slow, 90);
    let ok = t
        .as_ref()
        .is_some_and(|t| t.status == TaskStatus::Completed);
    let d = Ctx::describe(&t);
    cx.r.check("slow-completed", ok, d);
}

/// A native allocation past the cgroup limit (the escape-test child): the kernel's OOM kill in
/// the child's cgroup, attributed MemoryLimit. Also checks `systemctl restart` with a changed
/// environment. `false` when the daemon did not come back.
fn native_oom(cx: &mut Ctx, hier: Hier, escape: Option<&str>) -> bool {
    match escape {
        Some(esc) if Path::new(esc).is_file() => {
            write_env(Some(esc));
            let old = main_pid();
            let (ok, out) = sh("systemctl", &["restart", UNIT]);
            cx.r.check(
                "restart-escape-child",
                ok,
                format!("systemctl restart (CS_SANDBOX_CHILD_BIN={esc}) {out}"),
            );
            if cx.wait_ready("ready-escape-child", 120) {
                cx.r.check(
                    "new-mainpid",
                    main_pid() != old,
                    format!("MainPID {old} → {}", main_pid()),
                );
                let alloc_mb = 16 + 64 + 192;
                let t = cx.run("escape", json!({"op": format!("alloc:{alloc_mb}")}), 120);
                let err = t.as_ref().and_then(|t| t.error.clone()).unwrap_or_default();
                let ok = t.as_ref().is_some_and(|t| t.status == TaskStatus::Failed)
                    && err.starts_with("MemoryLimit")
                    && err.contains("memory limit of 16 MiB");
                let d = Ctx::describe(&t);
                cx.r.check("native-memory-limit", ok, d);
                let t = cx.run("escape", json!({"op": "socket"}), 60);
                let err = t.as_ref().and_then(|t| t.error.clone()).unwrap_or_default();
                let d = Ctx::describe(&t);
                cx.r.check(
                    "escape-socket-blocked",
                    err.starts_with("SandboxError") && err.contains("socket"),
                    d,
                );
            }
            write_env(None);
            let old = main_pid();
            let t0 = Instant::now();
            let (ok, out) = sh("systemctl", &["restart", UNIT]);
            cx.r.check(
                "restart-normal-child",
                ok,
                format!("systemctl restart in {} ms {out}", t0.elapsed().as_millis()),
            );
            let back = cx.wait_ready("ready-again", 120);
            let new = main_pid();
            let left: Vec<PathBuf> = hier
                .parents(old)
                .into_iter()
                .filter(|p| p.exists())
                .collect();
            cx.r.check(
                "restart-new-process",
                back && new != old && left.is_empty(),
                format!("MainPID {old} → {new}; the old daemon's parents left: {left:?}"),
            );
            back
        }
        _ => {
            cx.r.fail(
                "native-memory-limit",
                format!("escape child {escape:?} not found"),
            );
            true
        }
    }
}

/// A crash: SIGKILL the daemon mid-activation. systemd restarts it (Restart=on-failure), the
/// new daemon sweeps the dead one's cgroups, and the task, redelivered (the emulator ends its
/// lease at once instead of after 60 s), is finished once.
fn crash(cx: &mut Ctx, hier: Hier) {
    let old = main_pid();
    let (aid, p) = invocation("slow", json!({"ms": 2000}));
    let id = cx.emu.enqueue("cs.invoke", p, EnqueueOptions::default());
    if cx
        .wait_task(&id, Duration::from_secs(60), |t| {
            t.status == TaskStatus::InProgress
        })
        .is_none()
    {
        cx.r.fail("crash-restarted", "the task was never claimed");
        return;
    }
    std::thread::sleep(Duration::from_millis(300));
    let restarts_before: u32 = show("NRestarts").parse().unwrap_or(0);
    // SAFETY: kill(2) with a pid read from systemd; SIGKILL of the daemon under test.
    unsafe { libc::kill(old as libc::pid_t, libc::SIGKILL) };
    let t0 = Instant::now();
    let back = wait_for(Duration::from_secs(90), || {
        let p = main_pid();
        p != 0 && p != old && show("ActiveState") == "active"
    });
    let restarts: u32 = show("NRestarts").parse().unwrap_or(0);
    cx.r.check(
        "crash-restarted",
        back && restarts == restarts_before + 1,
        format!(
            "SIGKILL of MainPID {old}: active again as {} after {} ms, NRestarts {restarts_before} → {restarts}",
            main_pid(),
            t0.elapsed().as_millis()
        ),
    );
    cx.wait_ready("ready-after-crash", 60);
    cx.emu.expire_lease(&id);
    let t = cx.finished(&id, 90);
    let published = results_for(cx, &aid);
    let ok = t
        .as_ref()
        .is_some_and(|t| t.status == TaskStatus::Completed && t.deliveries >= 2)
        && published == 1;
    let d = format!("{}; results published: {published}", Ctx::describe(&t));
    cx.r.check("crash-task-finished-once", ok, d);
    let old_parents = hier.parents(old);
    let left: Vec<&PathBuf> = old_parents.iter().filter(|p| p.exists()).collect();
    cx.r.check(
        "crash-cgroups-swept",
        left.is_empty(),
        format!("{old_parents:?}; still there: {left:?}"),
    );
}

/// `cs.results` messages published for `aid`.
fn results_for(cx: &Ctx, aid: &str) -> usize {
    cx.emu
        .tasks("cs.results")
        .into_iter()
        .filter_map(|t| t.payload_value())
        .filter(|p| p["body"]["activation_id"] == json!(aid))
        .count()
}

/// Stop while an activation runs: it is drained (finishes), the unit stops cleanly and no
/// cgroup is left below the unit. Then start. (`systemctl restart` is checked by
/// [`native_oom`], twice.)
fn stop_start(cx: &mut Ctx, hier: Hier) {
    let pid = main_pid();
    let parent = hier.parents(pid).remove(0);
    let slow = cx.enqueue("slow", json!({"ms": 3000}));
    let claimed = cx.wait_task(&slow, Duration::from_secs(60), |t| {
        t.status == TaskStatus::InProgress
    });
    std::thread::sleep(Duration::from_millis(300));
    // Watch the tree while systemd stops the unit: did the daemon remove its own cgroups while
    // it was still alive (rather than systemd cleaning up after it)?
    let stop_watch = {
        let parent = parent.clone();
        let own = hier.dirs_of(pid).into_iter().next();
        std::thread::spawn(move || {
            let Some(own) = own else { return false };
            let until = Instant::now() + Duration::from_secs(60);
            let me = pid.to_string();
            while Instant::now() < until {
                let alive_there =
                    read(own.join("cgroup.procs")).is_some_and(|p| p.lines().any(|l| l == me));
                if !parent.exists() {
                    return alive_there;
                }
                if !alive_there {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            false
        })
    };
    let t0 = Instant::now();
    let (ok, out) = sh("systemctl", &["stop", UNIT]);
    let stop_ms = t0.elapsed().as_millis();
    cx.r.check(
        "stop",
        ok,
        format!("systemctl stop returned after {stop_ms} ms {out}"),
    );
    let t = cx.finished(&slow, 10);
    let ok = claimed.is_some()
        && t.as_ref()
            .is_some_and(|t| t.status == TaskStatus::Completed);
    let d = Ctx::describe(&t);
    cx.r.check("stop-drains", ok, d);
    let (state, result, status) = (show("ActiveState"), show("Result"), show("ExecMainStatus"));
    cx.r.check(
        "stopped-cleanly",
        state == "inactive" && result == "success" && status == "0",
        format!("ActiveState={state} Result={result} ExecMainStatus={status}"),
    );
    let left: Vec<PathBuf> = hier.unit_dirs().iter().flat_map(|u| subdirs(u)).collect();
    cx.r.check(
        "no-cgroup-left",
        left.is_empty(),
        format!("below {:?}: {left:?}", hier.unit_dirs()),
    );
    let strays = procs_named("sandbox-child");
    cx.r.check(
        "no-child-left",
        strays.is_empty(),
        format!("sandbox-child processes: {strays:?}"),
    );
    match stop_watch.join() {
        Ok(true) => cx.r.pass(
            "daemon-removed-own-cgroups",
            format!(
                "{} was gone while the daemon was still in its cgroup",
                parent.display()
            ),
        ),
        _ => cx.r.info(
            "daemon-removed-own-cgroups",
            "not observed (the daemon exited within the watcher's 2 ms period, or systemd removed the tree)",
        ),
    }

    let (ok, out) = sh("systemctl", &["start", UNIT]);
    cx.r.check("start", ok, format!("systemctl start {out}"));
    if !cx.wait_ready("ready-after-start", 120) {
        return;
    }
    cx.hello("hello-after-start", "start");
}

/// Upgrade to the newer revision while tasks flow: a `count` task every second from before the
/// package manager starts until after it returns. Every task must finish exactly once (one
/// COMPLETED state, one cs.results message, one terminal activation record, one execution by
/// the function's own count), the operator's configuration must be kept, and the daemon must
/// come back. `false` when the daemon did not.
fn upgrade(cx: &mut Ctx, pkg: &Pkg, raw: &mut redis::Connection) -> bool {
    let shipped = std::fs::read_to_string(CONFIG).unwrap_or_default();
    let edited = shipped.replacen(CONFIG_SHIPPED, CONFIG_EDITED, 1);
    if !cx.r.check(
        "config-edited",
        edited != shipped && std::fs::write(CONFIG, &edited).is_ok(),
        format!("{CONFIG}: drain_seconds 25 → 24 (an operator's edit)"),
    ) {
        return false;
    }
    let env_before = std::fs::read(ENV_FILE).ok();
    let old_pid = main_pid();
    let old_version = pkg.version();
    let new_version = pkg.file_version(&pkg.newer);

    let mut ids: Vec<(String, String)> = Vec::new(); // (task id, activation id)
    let enqueue = |cx: &Ctx| {
        let (aid, p) = invocation("count", json!({"ms": 200}));
        let id = cx.emu.enqueue("cs.invoke", p, EnqueueOptions::default());
        (id, aid)
    };
    // Tasks already flowing, one of them running, before the package manager starts.
    for _ in 0..3 {
        ids.push(enqueue(cx));
        std::thread::sleep(Duration::from_millis(1000));
    }
    // Two long activations (4 and 6 s), running when the package manager starts: the stop in
    // prerm / %pre must drain them, so the old daemon finishes them and they are not
    // redelivered.
    let mut long = Vec::new();
    for ms in [4000, 6000] {
        let (aid, p) = invocation("count", json!({"ms": ms}));
        let id = cx.emu.enqueue("cs.invoke", p, EnqueueOptions::default());
        long.push((id.clone(), aid.clone()));
        ids.push((id, aid));
    }
    let long_running = wait_for(Duration::from_secs(30), || {
        long.iter().all(|(id, _)| {
            cx.emu
                .task(id)
                .is_some_and(|t| t.status == TaskStatus::InProgress)
        })
    });
    let running_at_start = ids
        .iter()
        .filter(|(id, _)| {
            cx.emu
                .task(id)
                .is_some_and(|t| t.status == TaskStatus::InProgress)
        })
        .count();
    let before = ids.len();
    let (tx, rx) = mpsc::channel();
    let newer = pkg.newer.clone();
    let kind = pkg.kind;
    let t0 = Instant::now();
    let installer = std::thread::spawn(move || {
        let r = install_file(kind, &newer, true);
        let _ = tx.send(());
        r
    });
    // Keep them flowing while the old daemon drains, the files change and the new one starts.
    while rx.recv_timeout(Duration::from_millis(1000)).is_err() {
        ids.push(enqueue(cx));
        if t0.elapsed() > Duration::from_secs(240) {
            break;
        }
    }
    let took = t0.elapsed();
    let during = ids.len() - before;
    let (ok, out) = installer
        .join()
        .unwrap_or((false, "the installer thread panicked".into()));
    let cmd = match pkg.kind {
        Kind::Deb => "dpkg -i",
        Kind::Rpm => "rpm -U --nodeps",
    };
    if !cx.r.check(
        "upgrade-installed",
        ok && pkg.version() == new_version,
        format!(
            "{cmd} {}: {old_version} → {} in {} ms",
            pkg.newer,
            pkg.version(),
            took.as_millis()
        ),
    ) {
        for l in out.lines() {
            cx.r.line("LOG", pkg.tool(), l);
        }
    }
    for _ in 0..3 {
        ids.push(enqueue(cx));
        std::thread::sleep(Duration::from_millis(1000));
    }
    let after = ids.len() - before - during;
    let back = cx.wait_ready("upgrade-daemon-back", 120);
    cx.r.check(
        "upgrade-new-daemon",
        back && main_pid() != old_pid && main_pid() != 0,
        format!(
            "MainPID {old_pid} → {}, is-enabled {}",
            main_pid(),
            sh("systemctl", &["is-enabled", UNIT]).1
        ),
    );
    let now = std::fs::read_to_string(CONFIG).unwrap_or_default();
    let leftovers: Vec<String> = std::fs::read_dir("/etc/cs-invoker-pool")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "config.yaml" && n != "environment")
        .collect();
    cx.r.check(
        "upgrade-config-kept",
        now == edited && leftovers.is_empty() && std::fs::read(ENV_FILE).ok() == env_before,
        format!(
            "{CONFIG} still has the operator's edit: {}; other files in /etc/cs-invoker-pool: {leftovers:?}",
            now.contains(CONFIG_EDITED.trim())
        ),
    );

    // Every task: finished exactly once.
    let all_done = wait_for(Duration::from_secs(180), || {
        ids.iter()
            .all(|(id, _)| cx.emu.task(id).is_some_and(|t| t.status.is_terminal()))
    });
    let results = cx.emu.tasks("cs.results");
    let mut completed = 0;
    let mut one_result = 0;
    let mut one_record = 0;
    let mut ran_once = 0;
    let mut redelivered = 0;
    let mut bad = Vec::new();
    for (id, aid) in &ids {
        let t = cx.emu.task(id);
        let done = t
            .as_ref()
            .is_some_and(|t| t.status == TaskStatus::Completed);
        if t.as_ref().is_some_and(|t| t.deliveries > 1) {
            redelivered += 1;
        }
        let published = results
            .iter()
            .filter_map(|t| t.payload_value())
            .filter(|p| p["body"]["activation_id"] == json!(aid))
            .count();
        let status: Option<String> = raw.get(format!("cs:act:{T}:{aid}:status")).ok();
        let meta: Option<String> = raw.get(format!("cs:act:{T}:{aid}:meta")).ok();
        let meta_status = meta
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .map(|m| m["status"].as_str().unwrap_or_default().to_string());
        let runs: Option<String> = raw.get(format!("cs:kv:{T}:runs:{aid}")).ok();
        let record =
            status.as_deref() == Some("success") && meta_status.as_deref() == Some("success");
        completed += done as usize;
        one_result += (published == 1) as usize;
        one_record += record as usize;
        ran_once += (runs.as_deref() == Some("1")) as usize;
        if !(done && published == 1 && record && runs.as_deref() == Some("1")) {
            bad.push(format!(
                "{aid}: {} results={published} status={status:?} meta={meta_status:?} runs={runs:?}",
                Ctx::describe(&t)
            ));
        }
    }
    let drained: Vec<String> = long
        .iter()
        .map(|(id, _)| Ctx::describe(&cx.emu.task(id)))
        .collect();
    cx.r.check(
        "upgrade-in-flight-drained",
        long_running
            && long.iter().all(|(id, _)| {
                cx.emu
                    .task(id)
                    .is_some_and(|t| t.status == TaskStatus::Completed && t.deliveries == 1)
            }),
        format!(
            "the 4 s and 6 s activations running when {cmd} started were finished by the \
             draining old daemon (one delivery each): {drained:?}"
        ),
    );
    let n = ids.len();
    cx.r.check(
        "upgrade-every-task-once",
        all_done && bad.is_empty(),
        format!(
            "{n} tasks ({before} before, {during} while {cmd} ran, {after} after; {running_at_start} \
             running when it started, {redelivered} redelivered): {completed} COMPLETED, {one_result} \
             with one cs.results message, {one_record} with one terminal record (status and meta \
             success), {ran_once} executed once; not so: {bad:?}"
        ),
    );
    back
}

/// Removal as documented: .deb `dpkg -r` keeps the configuration and `dpkg -P` removes it;
/// .rpm `rpm -e` removes the files and the package's directories, keeping a changed
/// configuration as config.yaml.rpmsave. The cs-sandbox user stays in every case.
fn remove(cx: &mut Ctx, pkg: &Pkg, hier: Hier, fragment: &str) {
    let _ = std::fs::remove_file(format!("{DROPIN_DIR}/vm-test.conf"));
    let _ = std::fs::remove_dir(DROPIN_DIR);
    let _ = std::fs::remove_file(ENV_FILE);
    let files = pkg.files();
    let gone = |files: &[String]| -> Vec<String> {
        files
            .iter()
            .filter(|f| Path::new(f).is_file() && !f.starts_with("/etc/"))
            .cloned()
            .collect()
    };
    let (ok, out) = match pkg.kind {
        Kind::Deb => sh("dpkg", &["-r", PKG]),
        Kind::Rpm => sh("rpm", &["-e", PKG]),
    };
    let name = match pkg.kind {
        Kind::Deb => "dpkg-remove",
        Kind::Rpm => "rpm-erase",
    };
    if !cx.r.check(
        name,
        ok,
        format!(
            "{} {PKG}",
            if pkg.kind == Kind::Deb {
                "dpkg -r"
            } else {
                "rpm -e"
            }
        ),
    ) {
        for l in out.lines() {
            cx.r.line("LOG", pkg.tool(), l);
        }
    }
    let load = show("LoadState");
    let active = show("ActiveState");
    let left = gone(&files);
    let unit_gone = fragment.is_empty() || !Path::new(fragment).exists();
    cx.r.check(
        "removed",
        // debhelper's postrm (cargo-deb uses its snippets) masks the unit on remove and
        // unmasks it on purge: "masked" with the unit file gone is removed too.
        left.is_empty()
            && unit_gone
            && (load == "not-found" || load == "masked")
            && active == "inactive",
        format!(
            "LoadState={load} ActiveState={active}; unit file {fragment} gone: {unit_gone}; \
             of {} packaged files outside /etc still there: {left:?}",
            files.len()
        ),
    );
    cx.r.check(
        "nothing-running-after-remove",
        procs_named("cs-invoker-pool").is_empty()
            && procs_named("sandbox-child").is_empty()
            && hier.unit_dirs().iter().all(|d| !d.exists()),
        format!("unit cgroups {:?} gone", hier.unit_dirs()),
    );
    match pkg.kind {
        Kind::Deb => {
            let kept = Path::new(CONFIG).is_file()
                && std::fs::read_to_string(CONFIG)
                    .unwrap_or_default()
                    .contains(CONFIG_EDITED.trim());
            let st = sh("dpkg-query", &["-W", "-f", "${Status}", PKG]).1;
            cx.r.check(
                "config-kept",
                kept,
                format!("{CONFIG} (with the operator's edit) kept by dpkg -r; dpkg status: {st}"),
            );
            let (ok, _) = sh("dpkg", &["-P", PKG]);
            cx.r.check(
                "dpkg-purge",
                ok && !Path::new(CONFIG).exists() && !Path::new("/etc/cs-invoker-pool").exists(),
                format!(
                    "dpkg -P; /etc/cs-invoker-pool exists={}",
                    Path::new("/etc/cs-invoker-pool").exists()
                ),
            );
        }
        Kind::Rpm => {
            let saved = Path::new("/etc/cs-invoker-pool/config.yaml.rpmsave");
            let names: Vec<String> = std::fs::read_dir("/etc/cs-invoker-pool")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            cx.r.check(
                "rpm-config-saved",
                saved.is_file()
                    && std::fs::read_to_string(saved).unwrap_or_default().contains(CONFIG_EDITED.trim())
                    && names == ["config.yaml.rpmsave"],
                format!(
                    "the changed config.yaml kept as config.yaml.rpmsave, the unchanged environment \
                     removed: /etc/cs-invoker-pool holds {names:?}"
                ),
            );
            let dirs = [
                "/usr/share/doc/cs-invoker-pool",
                "/usr/share/licenses/cs-invoker-pool",
            ];
            let still: Vec<&str> = dirs
                .iter()
                .copied()
                .filter(|d| Path::new(d).exists())
                .collect();
            cx.r.check(
                "rpm-owned-dirs-removed",
                still.is_empty() && Path::new("/etc/cs-invoker-pool").is_dir(),
                format!(
                    "{dirs:?} removed (owned by the package; still there: {still:?}); \
                     /etc/cs-invoker-pool kept only for the .rpmsave"
                ),
            );
            let _ = std::fs::remove_dir_all("/etc/cs-invoker-pool");
            let (_, q) = sh("rpm", &["-q", PKG]);
            cx.r.check(
                "rpm-not-installed",
                q.contains("is not installed"),
                format!("rpm -q {PKG} → {q}"),
            );
        }
    }
    let (user_left, _) = sh("getent", &["passwd", "cs-sandbox"]);
    cx.r.check(
        "user-kept",
        user_left,
        "cs-sandbox kept after removal, as documented (a freed uid could go to someone else)",
    );
}
