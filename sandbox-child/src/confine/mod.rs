//! Confinement of the child: everything it does to itself after the supervisor's (trusted)
//! `Init` frame and **before it reads a single untrusted byte**.
//!
//! [`confine`] applies, in this order, and stops at the first step that fails with a
//! [`ConfineError`] naming the step:
//!
//! | step           | what                                                                    |
//! |----------------|-------------------------------------------------------------------------|
//! | `threads`      | refuse to go on unless the process is single-threaded                   |
//! | `close-fds`    | close every fd but the kept ones (0, 1, 2)                              |
//! | `environment`  | clear the environment (cannot fail)                                     |
//! | `pdeathsig`    | `PR_SET_PDEATHSIG(SIGKILL)`; fail if the parent is already gone         |
//! | `namespaces`   | `unshare` mount, IPC, UTS, network and cgroup namespaces                |
//! | `root`         | private mounts; pivot into an empty read-only tmpfs; `chdir("/")`       |
//! | `capabilities` | drop the bounding set, clear the ambient set                            |
//! | `identity`     | `setgroups([])`, `setresgid`, `setresuid` to the unprivileged ids        |
//! | `capabilities` | `capset` all zero, verified with `capget`; not dumpable                 |
//! | `no-new-privs` | `PR_SET_NO_NEW_PRIVS`                                                   |
//! | `rlimits`      | address space, stack, nofile, fsize, core, nproc                        |
//! | `seccomp`      | SIGSYS reporter, then the build-time allowlist (`seccomp/<arch>.json`)  |
//!
//! The caller then sends `Ready`. A seccomp violation later kills the child with exit status
//! [`sigsys::EXIT_BLOCKED_SYSCALL`] after it wrote a `Fatal { step: "seccomp", message:
//! "blocked syscall <nr> (<name>)" }` frame to fd 1 (see [`sigsys`]).
//!
//! Nothing here panics on the confinement path: every failure becomes a [`ConfineError`].

mod fds;
mod identity;
mod namespaces;
mod rlimits;
mod root;
pub mod seccomp;
pub mod sigsys;
pub mod syscalls;

#[cfg(feature = "escape-tests")]
pub mod escape;

use std::fmt;
use std::time::Instant;

pub use rlimits::lower_address_space;
// The settings travel in the supervisor's `Init` frame, so they live with the protocol.
pub use sandbox_proto::settings::{
    default_identity, ConfineSettings, Rlimits, ADDRESS_SPACE_HEADROOM,
};

/// A confinement step that failed. `step` is one of `threads`, `close-fds`, `pdeathsig`,
/// `namespaces`, `root`, `identity`, `capabilities`, `no-new-privs`, `rlimits`, `seccomp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfineError {
    pub step: &'static str,
    pub message: String,
}

impl ConfineError {
    fn new(step: &'static str, message: impl Into<String>) -> Self {
        ConfineError {
            step,
            message: message.into(),
        }
    }

    /// The frame the child sends before exiting.
    pub fn to_fatal(&self) -> sandbox_proto::protocol::Fatal {
        sandbox_proto::protocol::Fatal {
            step: self.step.to_string(),
            message: self.message.clone(),
        }
    }
}

impl fmt::Display for ConfineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "confinement step {} failed: {}", self.step, self.message)
    }
}

impl std::error::Error for ConfineError {}

/// Whether a step was applied or deliberately not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Applied,
    Skipped,
}

/// One line of the [`Report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub step: &'static str,
    pub status: StepStatus,
    /// What was done, or why it was skipped.
    pub detail: String,
    /// Time the step took, in microseconds (0 for skipped steps).
    pub micros: u64,
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            StepStatus::Applied => write!(f, "{}: {} [{} µs]", self.step, self.detail, self.micros),
            StepStatus::Skipped => write!(f, "{}: skipped: {}", self.step, self.detail),
        }
    }
}

/// What [`confine`] applied and skipped, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub steps: Vec<StepReport>,
    /// Whole confinement, in microseconds.
    pub total_us: u64,
}

impl Report {
    /// The time of the applied step(s) named `step`, summed (a name may appear twice).
    pub fn micros(&self, step: &str) -> u64 {
        self.steps
            .iter()
            .filter(|s| s.step == step && s.status == StepStatus::Applied)
            .map(|s| s.micros)
            .sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        write!(f, "confined in {} µs", self.total_us)
    }
}

/// Records steps, tells `explain` about each as it lands, and times them.
struct Recorder<'a> {
    report: Report,
    explain: &'a mut dyn FnMut(&str),
}

impl Recorder<'_> {
    /// Runs `f` as step `step`; its `Ok` is the detail line.
    fn run(
        &mut self,
        step: &'static str,
        f: impl FnOnce() -> Result<String, String>,
    ) -> Result<(), ConfineError> {
        let t = Instant::now();
        let detail = f().map_err(|m| ConfineError::new(step, m))?;
        let micros = t.elapsed().as_micros() as u64;
        self.push(StepReport {
            step,
            status: StepStatus::Applied,
            detail,
            micros,
        });
        Ok(())
    }

    fn skip(&mut self, step: &'static str, why: impl Into<String>) {
        self.push(StepReport {
            step,
            status: StepStatus::Skipped,
            detail: why.into(),
            micros: 0,
        });
    }

    fn push(&mut self, s: StepReport) {
        (self.explain)(&s.to_string());
        self.report.steps.push(s);
    }
}

/// Confines the calling process. Call it once, single-threaded, after the trusted `Init`
/// frame and before anything untrusted is read; send `Ready` after it returns `Ok`.
///
/// `explain` receives one line per step as it is applied (or skipped). After the `seccomp`
/// step only the syscalls of `seccomp/<arch>.json` are allowed, so `explain` must only write
/// to an fd that is already open (stderr is fine).
pub fn confine(
    settings: &ConfineSettings,
    explain: &mut dyn FnMut(&str),
) -> Result<Report, ConfineError> {
    let start = Instant::now();
    let mut rec = Recorder {
        report: Report::default(),
        explain,
    };
    let parent_at_start = nix::unistd::getppid().as_raw() as u32;
    let expected_parent = match settings.parent_pid {
        0 => parent_at_start,
        p => p,
    };

    rec.run("threads", fds::check_single_threaded)?;
    rec.run("close-fds", || fds::close_fds(&settings.keep_fds))?;
    rec.run("environment", || Ok(fds::clear_env()))?;
    rec.run("pdeathsig", || fds::set_pdeathsig(expected_parent))?;

    if settings.namespaces {
        rec.run("namespaces", namespaces::unshare_all)?;
        rec.run("root", root::enter_empty_root)?;
    } else {
        rec.skip(
            "namespaces",
            "disabled by the settings: the host's mounts, network, IPC and hostname stay shared",
        );
        rec.skip(
            "root",
            "needs a private mount namespace: the host filesystem stays visible",
        );
    }
    rec.skip(
        "namespaces",
        "PID namespace not entered: unshare(CLONE_NEWPID) only affects children and the child \
         cannot create any (seccomp, nproc); spawn the child with CLONE_NEWPID to hide other pids",
    );
    rec.skip(
        "namespaces",
        "user namespace not used: the supervisor is root and the child drops to a real \
         unprivileged uid",
    );

    rec.run("capabilities", identity::drop_bounding_and_ambient)?;
    rec.run("identity", || identity::set_ids(settings.uid, settings.gid))?;
    // The kernel clears the parent-death signal when the credentials change, so it is set
    // again after the uid switch (the early call covers the window before it).
    rec.run("pdeathsig", || fds::set_pdeathsig(expected_parent))?;
    rec.run("capabilities", identity::clear_capabilities)?;
    rec.run("no-new-privs", identity::set_no_new_privs)?;
    rec.run("rlimits", || {
        rlimits::apply(&settings.rlimits, &settings.keep_fds)
    })?;

    if settings.seccomp {
        rec.run("seccomp", seccomp::install)?;
    } else {
        rec.skip(
            "seccomp",
            "disabled explicitly (--no-seccomp): every syscall is allowed",
        );
    }

    rec.report.total_us = start.elapsed().as_micros() as u64;
    Ok(rec.report)
}

/// What this host lacks for confinement ([`preflight`]): `Display` lists it, `; `-separated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Unconfinable(pub Vec<&'static str>);

/// Fast checks the supervisor can run before spawning children: are we privileged enough to
/// confine, and does the kernel have what we need. `Err` says exactly what is missing.
pub fn preflight() -> Result<(), Unconfinable> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("not running as root (needed for namespaces, the empty root and setuid)");
    }
    // SAFETY: PR_GET_SECCOMP takes no pointer arguments.
    if unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } < 0 {
        missing.push("the kernel has no seccomp support");
    }
    if seccomp::FILTER.is_empty() {
        missing.push("no seccomp policy for this architecture");
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        missing.push("the kernel has no network namespaces (or /proc is not mounted)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Unconfinable(missing))
    }
}
