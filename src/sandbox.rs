//! What the supervisor can confine on this host, decided once at start-up and said out loud.
//!
//! Two independent parts: what each child does to itself before it reads an untrusted byte
//! ([`ConfineSettings`], applied by `sandbox-child`: namespaces, empty root, unprivileged ids,
//! no capabilities, rlimits, seccomp) and the per-child cgroup the supervisor puts it in
//! ([`CgroupManager`]). Either can be missing on a given host (not root, no memory controller);
//! [`Sandbox::prepare`] then records exactly what is missing. A local `run` proceeds with an
//! `unconfined: <reason>` note per missing part; with `CS_REQUIRE_SANDBOX=1` (and for a server,
//! unless its configuration explicitly allows it) nothing runs unconfined.

use crate::cgroup::{self, CgroupConfig, CgroupManager, CgroupMode};
use sandbox_proto::settings::{self, ConfineSettings};
use std::sync::Arc;

/// Set to `1` to refuse running anything unconfined.
pub const REQUIRE_ENV: &str = "CS_REQUIRE_SANDBOX";

/// `CS_REQUIRE_SANDBOX=1` is set.
pub fn required_by_env() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

#[derive(Debug, Clone)]
pub struct SandboxPolicy {
    /// Refuse to start when any part of the sandbox is unavailable.
    pub require: bool,
    pub cgroup_mode: CgroupMode,
    /// Name prefix of the parent cgroup (`<prefix>.<pid>`). One sandbox per prefix per process:
    /// the start-up sweep removes child cgroups under its parent that it does not own.
    pub cgroup_prefix: String,
    /// Most processes in a child's cgroup. The child itself needs one.
    pub pids_max: u64,
    /// Per-child cgroups; `false` only when the operator configured `cgroup: none`, which
    /// counts as a missing sandbox part.
    pub use_cgroups: bool,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        SandboxPolicy {
            require: required_by_env(),
            cgroup_mode: CgroupMode::Auto,
            cgroup_prefix: cgroup::DEFAULT_PREFIX.to_string(),
            pids_max: 4,
            use_cgroups: true,
        }
    }
}

pub struct Sandbox {
    /// Sent to every child in `Init`; `None` when the children cannot confine themselves here.
    pub confine: Option<ConfineSettings>,
    pub cgroups: Option<Arc<dyn CgroupManager>>,
    pub pids_max: u64,
    /// One line per missing part, for the `unconfined:` notes.
    pub unconfined: Vec<String>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("confine", &self.confine)
            .field("cgroups", &self.cgroups.as_ref().map(|c| c.describe()))
            .field("unconfined", &self.unconfined)
            .finish()
    }
}

/// The sandbox is required but this host cannot give it: every missing part, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the sandbox is required ({REQUIRE_ENV}=1 or cs_invoker_pool.sandbox.require) \
     but incomplete on this host: {}. Run as root on a kernel with seccomp, \
     namespaces and a cgroup memory controller",
    missing.join("; ")
)]
pub struct SandboxIncomplete {
    /// What is missing, one entry per part (`children cannot confine themselves: ...`).
    pub missing: Vec<String>,
}

impl Sandbox {
    /// Probes the host. `Err` when `policy.require` is set and something is missing; the
    /// message lists every missing part and what to do.
    pub fn prepare(policy: &SandboxPolicy) -> Result<Sandbox, SandboxIncomplete> {
        let mut unconfined = Vec::new();
        let confine = match preflight() {
            Ok(()) => {
                let (uid, gid) = settings::default_identity();
                let mut s = ConfineSettings::new(uid, gid);
                s.parent_pid = std::process::id();
                Some(s)
            }
            Err(why) => {
                unconfined.push(format!("children cannot confine themselves: {why}"));
                None
            }
        };
        let mut cg = CgroupConfig::new(policy.cgroup_mode);
        cg.prefix = policy.cgroup_prefix.clone();
        let detected = if policy.use_cgroups {
            cgroup::detect_with(&cg)
        } else {
            Err(cgroup::Unavailable {
                reason: "disabled by the configuration (cgroup: none)".into(),
            })
        };
        let cgroups = match detected {
            Ok(m) => {
                match m.sweep() {
                    Ok(r) if !r.removed.is_empty() => tracing::warn!(
                        removed = r.removed.len(),
                        killed = r.killed,
                        "removed cgroups left by an earlier run"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("cgroup start-up sweep failed: {e}"),
                }
                Some(m)
            }
            Err(u) => {
                unconfined.push(format!("no per-child cgroups: {}", u.reason));
                None
            }
        };
        if policy.require && !unconfined.is_empty() {
            return Err(SandboxIncomplete {
                missing: unconfined,
            });
        }
        Ok(Sandbox {
            confine,
            cgroups,
            pids_max: policy.pids_max,
            unconfined,
        })
    }

    /// No confinement at all, for tests of the pool's own logic with fake children.
    pub fn unconfined(reason: &str) -> Sandbox {
        Sandbox {
            confine: None,
            cgroups: None,
            pids_max: 4,
            unconfined: vec![reason.to_string()],
        }
    }

    pub fn is_confined(&self) -> bool {
        self.unconfined.is_empty()
    }
}

/// Whether children started from here can confine themselves, decided before any is spawned:
/// `Err` lists everything missing. The child checks again as it confines (and also refuses when
/// its binary carries no seccomp policy for this architecture, which only it can know).
fn preflight() -> Result<(), String> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("not running as root (needed for namespaces, the empty root and setuid)");
    }
    // The kernel shows a `Seccomp:` line in /proc/PID/status exactly when it has seccomp.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !status.lines().any(|l| l.starts_with("Seccomp:")) {
        missing.push("the kernel has no seccomp support (or /proc is not mounted)");
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        missing.push("the kernel has no network namespaces (or /proc is not mounted)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    }
}
