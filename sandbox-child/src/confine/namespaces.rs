//! Step `namespaces`: new mount, IPC, UTS, network and cgroup namespaces.
//!
//! - mount: lets the `root` step replace the filesystem view without touching the host's;
//! - IPC: no System V / POSIX message queues or semaphores shared with anyone;
//! - UTS: the hostname is set to `sandbox`, the host's name is not visible;
//! - network: only a loopback interface that is down, so no route anywhere;
//! - cgroup: the child's own cgroup looks like the root of the hierarchy.

use nix::sched::{unshare, CloneFlags};
use nix::unistd::sethostname;

/// Hostname inside the child's UTS namespace.
pub(super) const HOSTNAME: &str = "sandbox";

pub(super) fn unshare_all() -> Result<String, String> {
    // The process is single-threaded (checked in `threads`), as unshare of these needs.
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP;
    unshare(flags).map_err(|e| format!("unshare(NEWNS|NEWIPC|NEWUTS|NEWNET|NEWCGROUP): {e}"))?;
    sethostname(HOSTNAME).map_err(|e| format!("sethostname: {e}"))?;
    Ok(format!(
        "new mount, IPC, UTS (hostname {HOSTNAME:?}), network and cgroup namespaces"
    ))
}
