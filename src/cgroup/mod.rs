//! Per-child cgroups: one cgroup per sandbox child, under one parent cgroup the daemon owns.
//!
//! In the style of youki's `libcgroups`: a [`CgroupManager`] trait with a cgroup v2 backend
//! ([`v2::V2Manager`], production hosts, systemd `Delegate=yes`) and a v1 backend
//! ([`v1::V1Manager`], hosts like the development machines where memory, pids and cpu are only
//! mounted as v1 hierarchies). Controller-specific file protocol lives in one module per
//! controller ([`memory`], [`pids`], [`cpu`]) so that both backends agree on values and parsing.
//!
//! # Why cgroups at all
//!
//! The engine's own memory limit is not a security boundary (an out-of-memory error can be caught
//! by guest code, and native code inside an exploited child ignores it). The cgroup is the hard
//! backstop: the kernel OOM-kills the child, `pids.max` stops fork bombs, and the cgroup's event
//! counters let the supervisor *attribute* a SIGKILL to the memory limit instead of reporting
//! "exited unexpectedly".
//!
//! # Layout
//!
//! ```text
//! v1 (per controller: memory, pids, optional cpu)     v2 (one unified tree)
//! <mnt>/<own path>/                                   <own>/            (delegated, e.g. the service)
//!     cs-invoker-pool.<pid>/   <- parent (ours)           supervisor/   <- the daemon moves itself here
//!         <child>/             <- one per child           cs-invoker-pool.<pid>/   <- parent (ours)
//!                                                             <child>/
//! ```
//!
//! The parent is named `<prefix>.<pid>`: the pid lets [`CgroupManager::sweep`] tell a crashed
//! daemon's leftovers (pid dead) from a concurrently running daemon's live tree (pid alive), and
//! the prefix keeps the sweep away from anything it did not create. **Nothing outside the
//! subtree we created is ever written**, with one deliberate v2 exception: on a delegated cgroup
//! the daemon's own cgroup *is* the delegation, and enabling controllers in its
//! `cgroup.subtree_control` (after moving the daemon into a leaf) is what delegation is for.
//!
//! # Wiring
//!
//! At start-up: [`detect`] (or [`detect_with`]) → [`CgroupManager::sweep`]. Per child:
//! [`CgroupManager::create`] → put the process in it, preferably *before* it runs anything, with
//! [`ChildCgroup::pre_exec_attacher`] in a `pre_exec` hook (or [`ChildCgroup::attach`] after
//! spawn) → on exit read [`ChildCgroup::oom_kills`] / [`ChildCgroup::memory_peak`] →
//! [`ChildCgroup::remove`]. The calls are blocking filesystem I/O in the tens of microseconds;
//! `remove()` may wait (bounded) for killed processes to leave, so call it from
//! `spawn_blocking` on an async runtime.

pub mod cpu;
mod detect;
mod files;
pub mod memory;
pub mod pids;
pub mod v1;
pub mod v2;

mod child;

pub use child::PreExecAttach;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which cgroup hierarchy a manager drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    V1,
    V2,
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        })
    }
}

/// What [`detect`] may choose. `Auto` prefers v2 and falls back to v1; an explicit version is
/// for configuration overrides (and makes detection fail rather than silently use the other).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    #[default]
    Auto,
    V1,
    V2,
}

/// A cgroup mode that is none of `auto`, `v1`, `v2`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cgroup mode {0:?} (expected auto, v1 or v2)")]
pub struct UnknownCgroupMode(pub String);

impl FromStr for CgroupMode {
    type Err = UnknownCgroupMode;
    fn from_str(s: &str) -> Result<Self, UnknownCgroupMode> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(CgroupMode::Auto),
            "v1" | "1" => Ok(CgroupMode::V1),
            "v2" | "2" => Ok(CgroupMode::V2),
            other => Err(UnknownCgroupMode(other.to_string())),
        }
    }
}

impl fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupMode::Auto => "auto",
            CgroupMode::V1 => "v1",
            CgroupMode::V2 => "v2",
        })
    }
}

/// The default parent-name prefix; the parent is `<prefix>.<daemon pid>`.
pub const DEFAULT_PREFIX: &str = "cs-invoker-pool";
/// The default name of the v2 leaf the daemon moves itself into.
pub const DEFAULT_LEAF: &str = "supervisor";

/// Everything detection and the backends need; every path the manager touches derives from it,
/// so tests point it at a temporary directory laid out like `/proc/self` and cgroupfs.
#[derive(Clone)]
pub struct CgroupConfig {
    pub mode: CgroupMode,
    /// Parent cgroup name prefix (`[A-Za-z0-9_-]+`); the parent is `<prefix>.<pid>`. One manager
    /// per prefix per process: two managers with one prefix would share (and fight over) a parent.
    pub prefix: String,
    /// v2 only: the leaf the daemon moves itself into (`[A-Za-z0-9_-]+`).
    pub leaf_name: String,
    /// Use the cpu controller when the host has it (v1: `cpu` hierarchy; v2: `cpu` in
    /// `cgroup.controllers`). Without it, a [`CgroupLimits::cpu`] limit is refused.
    pub cpu: bool,
    /// Where `cgroup` and `mountinfo` are read from; `/proc/self` unless testing.
    pub proc_self: PathBuf,
    /// How long [`ChildCgroup::remove`] waits for SIGKILLed processes to leave before failing.
    pub remove_timeout: Duration,
    /// mkdir/rmdir of cgroup directories (the seam that lets tests model cgroupfs).
    pub fs: Arc<dyn CgroupFs>,
}

impl CgroupConfig {
    pub fn new(mode: CgroupMode) -> Self {
        CgroupConfig {
            mode,
            prefix: DEFAULT_PREFIX.to_string(),
            leaf_name: DEFAULT_LEAF.to_string(),
            cpu: true,
            proc_self: PathBuf::from("/proc/self"),
            remove_timeout: Duration::from_secs(2),
            fs: Arc::new(RealFs),
        }
    }
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig::new(CgroupMode::Auto)
    }
}

impl fmt::Debug for CgroupConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CgroupConfig")
            .field("mode", &self.mode)
            .field("prefix", &self.prefix)
            .field("leaf_name", &self.leaf_name)
            .field("cpu", &self.cpu)
            .field("proc_self", &self.proc_self)
            .field("remove_timeout", &self.remove_timeout)
            .finish_non_exhaustive()
    }
}

/// Directory creation and removal in a cgroup filesystem.
///
/// On cgroupfs `mkdir` creates the interface files and `rmdir` removes a directory that still
/// "contains" them; a plain directory does neither. This seam is the only difference between the
/// kernel and a test's temporary directory: everything else (reads, writes) goes straight to the
/// files, so the file protocol under test is the production one.
pub trait CgroupFs: Send + Sync {
    fn mkdir(&self, dir: &Path) -> io::Result<()>;
    fn rmdir(&self, dir: &Path) -> io::Result<()>;
}

/// The real cgroup filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl CgroupFs for RealFs {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)
    }
    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }
}

/// Limits for one child cgroup. `None` leaves that limit unset (inherited from the parent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Memory limit in bytes. Swap is always limited to 0 alongside it (see [`memory`]): an
    /// untrusted child that could page out would turn a fast, attributable OOM kill into a slow
    /// thrash of the host.
    pub memory_bytes: Option<u64>,
    /// Most processes/threads in the cgroup (fork-bomb bound).
    pub pids_max: Option<u64>,
    /// CPU bandwidth.
    pub cpu: Option<CpuLimit>,
}

/// CPU bandwidth: `quota_us` of CPU time per `period_us` of wall time (so 50_000/100_000 is half
/// a core, 200_000/100_000 two cores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLimit {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuLimit {
    /// The kernel's default period is 100 ms; keep it unless there is a reason.
    pub const DEFAULT_PERIOD_US: u64 = 100_000;

    /// A limit of `cores` CPUs with the default period (at least the kernel's 1 ms minimum).
    pub fn cores(cores: f64) -> Self {
        let quota = (cores * Self::DEFAULT_PERIOD_US as f64).round();
        CpuLimit {
            quota_us: (quota as u64).max(1_000),
            period_us: Self::DEFAULT_PERIOD_US,
        }
    }
}

/// Cgroups cannot be used on this host, and exactly why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unavailable {
    pub reason: String,
}

impl Unavailable {
    pub fn new(reason: impl Into<String>) -> Self {
        Unavailable {
            reason: reason.into(),
        }
    }
}

/// A failed cgroup operation. Every variant names the file or directory involved; I/O errors
/// carry the OS error.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `op` is a phrase such as `write "33554432" to`, `read`, `create`, `remove`.
    #[error("{}cannot {op} {}: {err}", not_root_hint(err), path.display())]
    Io {
        op: String,
        path: PathBuf,
        err: io::Error,
    },
    /// A file held something we could not interpret, or a state we refuse to act on.
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
    #[error("invalid cgroup name {name:?}: {why}")]
    Name { name: String, why: &'static str },
    #[error("{} still holds processes {pids:?} after {waited:?} of SIGKILL", path.display())]
    Busy {
        path: PathBuf,
        pids: Vec<u32>,
        waited: Duration,
    },
    #[error("{what} is not available: {why}")]
    Unsupported { what: &'static str, why: String },
}

impl CgroupError {
    pub(crate) fn io(op: impl Into<String>, path: &Path, err: io::Error) -> Self {
        CgroupError::Io {
            op: op.into(),
            path: path.to_path_buf(),
            err,
        }
    }

    /// The OS error, if this is an I/O failure.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            CgroupError::Io { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }
}

/// A permission error from a non-root daemon is almost always "you are not root", so say so
/// first; the rest of the message still names the file and the OS error.
fn not_root_hint(err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::PermissionDenied {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return format!("not root (euid {euid}): ");
        }
    }
    String::new()
}

/// What [`CgroupManager::sweep`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Cgroup directories removed (deepest first).
    pub removed: Vec<PathBuf>,
    /// Processes SIGKILLed because they were still inside a leftover cgroup.
    pub killed: usize,
    /// `<prefix>.<pid>` parents left alone because that pid is alive (another daemon).
    pub skipped_live: Vec<PathBuf>,
}

/// Owns the daemon's parent cgroup and creates one child cgroup per sandbox child.
pub trait CgroupManager: Send + Sync + fmt::Debug {
    fn version(&self) -> CgroupVersion;

    /// Creates the parent cgroup (v2: after moving the daemon into its leaf and enabling the
    /// controllers). Idempotent; [`detect`] has already called it.
    fn prepare(&self) -> Result<(), CgroupError>;

    /// The parent cgroup directories (one per v1 controller hierarchy; one on v2).
    fn parent_paths(&self) -> Vec<PathBuf>;

    /// Whether [`CgroupLimits::cpu`] can be honoured.
    fn has_cpu(&self) -> bool;

    /// Creates child cgroup `name` (`[A-Za-z0-9_-]+`) with `limits`. A leftover directory of the
    /// same name from a crashed daemon (not one of our live children) is cleared first.
    fn create(
        &self,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<Box<dyn ChildCgroup>, CgroupError>;

    /// Start-up clean-up: removes `<prefix>.<pid>` parents whose pid is dead and every child of
    /// our own parent that is not a live [`ChildCgroup`] of this manager, SIGKILLing any process
    /// still inside. Only directories matching our prefix, only under our own cgroup.
    fn sweep(&self) -> Result<SweepReport, CgroupError>;

    /// Shutdown: kills every process in our subtree and removes it, parent included. Child
    /// handles still alive afterwards find their directories gone and their `remove()` succeeds.
    fn teardown(&self) -> Result<SweepReport, CgroupError>;

    /// One line for logs: version and directories.
    fn describe(&self) -> String;
}

/// One child's cgroup. Dropping it removes it (best effort); call [`ChildCgroup::remove`] to see
/// errors.
pub trait ChildCgroup: Send + Sync + fmt::Debug {
    fn name(&self) -> &str;

    /// The main directory (v2: the cgroup; v1: the memory controller's), for diagnostics.
    fn path(&self) -> &Path;

    /// Every directory of this child (v1: one per controller hierarchy).
    fn paths(&self) -> Vec<PathBuf>;

    /// Moves process `pid` (all its threads) into the cgroup, in every controller.
    fn attach(&self, pid: u32) -> Result<(), CgroupError>;

    /// An async-signal-safe "move the calling process here" for a `pre_exec` hook, so the child
    /// is confined before it executes a single instruction of the sandbox binary.
    fn pre_exec_attacher(&self) -> PreExecAttach;

    /// cgroup v2 only: an `O_PATH` descriptor of the cgroup's directory, for
    /// `clone3(CLONE_INTO_CGROUP)`, so the child is born inside it and never migrated (a
    /// migration waits for an RCU grace period; see `pool::spawn`). `None` on v1, where each
    /// hierarchy needs its own write.
    fn birth_dir(&self) -> Option<io::Result<OwnedFd>> {
        None
    }

    /// Process ids currently in the cgroup (union over controllers).
    fn procs(&self) -> Result<Vec<u32>, CgroupError>;

    /// How many processes the kernel OOM-killed in this cgroup (v2 `memory.events` `oom_kill`;
    /// v1 `memory.oom_control` `oom_kill`, kernel 4.13+).
    fn oom_kills(&self) -> Result<u64, CgroupError>;

    /// Peak memory use in bytes (v2 `memory.peak`, kernel 5.19+; v1 `memory.max_usage_in_bytes`).
    fn memory_peak(&self) -> Option<u64>;

    /// Current memory use in bytes (v2 `memory.current`; v1 `memory.usage_in_bytes`).
    fn memory_current(&self) -> Option<u64>;

    /// How often a fork failed on `pids.max` (`pids.events` `max`; v1 kernels before 4.x lack it).
    fn pids_max_hits(&self) -> Option<u64>;

    /// Changes the memory limit (a stem child is bound to a bundle after it started). Lowering
    /// below current use makes the kernel reclaim, then OOM-kill.
    fn set_memory_limit(&self, bytes: u64) -> Result<(), CgroupError>;

    /// SIGKILLs every process in the cgroup (v2 `cgroup.kill` when present, which also catches
    /// processes forked meanwhile; else each listed pid through a pidfd). Does not wait.
    fn kill_all(&self) -> Result<(), CgroupError>;

    /// Kills, waits (bounded by [`CgroupConfig::remove_timeout`]) until no process is left, and
    /// removes the directory in every controller. Idempotent.
    fn remove(&self) -> Result<(), CgroupError>;
}

/// Detects the cgroup version per `mode` with the default configuration and prepares the parent.
pub fn detect(mode: CgroupMode) -> Result<Arc<dyn CgroupManager>, Unavailable> {
    detect_with(&CgroupConfig::new(mode))
}

/// Detects per `cfg.mode` by reading `<proc_self>/cgroup` and `<proc_self>/mountinfo` (mount
/// points are never assumed), opens the backend and prepares the parent cgroup. `Auto` tries v2
/// first (when the daemon's v2 cgroup offers memory and pids) and falls back to v1; when both
/// fail the reason names both.
pub fn detect_with(cfg: &CgroupConfig) -> Result<Arc<dyn CgroupManager>, Unavailable> {
    validate_name(&cfg.prefix).map_err(|e| Unavailable::new(format!("bad prefix: {e}")))?;
    validate_name(&cfg.leaf_name).map_err(|e| Unavailable::new(format!("bad leaf name: {e}")))?;
    let v2 = || -> Result<Arc<dyn CgroupManager>, Unavailable> {
        let m = v2::V2Manager::open(cfg)?;
        m.prepare()
            .map_err(|e| Unavailable::new(format!("cgroup v2: {e}")))?;
        Ok(Arc::new(m))
    };
    let v1 = || -> Result<Arc<dyn CgroupManager>, Unavailable> {
        let m = v1::V1Manager::open(cfg)?;
        m.prepare()
            .map_err(|e| Unavailable::new(format!("cgroup v1: {e}")))?;
        Ok(Arc::new(m))
    };
    match cfg.mode {
        CgroupMode::V2 => v2(),
        CgroupMode::V1 => v1(),
        CgroupMode::Auto => match v2() {
            Ok(m) => Ok(m),
            Err(e2) => v1().map_err(|e1| Unavailable::new(format!("{e2}; and {e1}"))),
        },
    }
}

/// Cgroup names we create: `[A-Za-z0-9_-]{1,128}`. No dots (so `<prefix>.<pid>` parses
/// unambiguously and no name can collide with an interface file such as `memory.max`), no
/// slashes (so a name can never leave the parent).
pub(crate) fn validate_name(name: &str) -> Result<(), CgroupError> {
    let err = |why| {
        Err(CgroupError::Name {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return err("empty");
    }
    if name.len() > 128 {
        return err("longer than 128 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return err("only ASCII letters, digits, '_' and '-' are allowed");
    }
    Ok(())
}

/// Names of the live children of one manager, shared with the child handles so `sweep` never
/// touches a cgroup that is in use and `create` refuses duplicates.
pub(crate) type LiveSet = Arc<Mutex<HashSet<String>>>;

/// `<prefix>.<pid>` → pid.
pub(crate) fn parse_parent_name(prefix: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("child-42_a").is_ok());
        for bad in ["", "a/b", "..", ".", "memory.max", "a b", "ü"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"x".repeat(129)).is_err());
    }

    #[test]
    fn parent_names() {
        assert_eq!(
            parse_parent_name("cs-invoker-pool", "cs-invoker-pool.123"),
            Some(123)
        );
        assert_eq!(
            parse_parent_name("cs-invoker-pool", "cs-invoker-pool.12x"),
            None
        );
        assert_eq!(
            parse_parent_name("cs-invoker-pool", "cs-invoker-pool."),
            None
        );
        assert_eq!(
            parse_parent_name("cs-invoker-pool", "cs-invoker-pool-x.1"),
            None
        );
        assert_eq!(
            parse_parent_name("cs-invoker-pool", "cs-invoker-pool.1.2"),
            None
        );
        assert_eq!(parse_parent_name("cs", "other.1"), None);
    }

    #[test]
    fn modes_and_cpu() {
        assert_eq!("V2".parse::<CgroupMode>().unwrap(), CgroupMode::V2);
        assert_eq!("auto".parse::<CgroupMode>().unwrap(), CgroupMode::Auto);
        assert!("v3".parse::<CgroupMode>().is_err());
        assert_eq!(
            CpuLimit::cores(0.5),
            CpuLimit {
                quota_us: 50_000,
                period_us: 100_000
            }
        );
        assert_eq!(CpuLimit::cores(0.0).quota_us, 1_000);
    }
}
