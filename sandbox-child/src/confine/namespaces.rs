//! Step `namespaces`: new mount, IPC, UTS, network and cgroup namespaces.
//!
//! - mount: lets the `root` step replace the filesystem view without touching the host's;
//! - IPC: no System V / POSIX message queues or semaphores shared with anyone;
//! - UTS: the hostname is set to `sandbox`, the host's name is not visible;
//! - network: only a loopback interface that is down, so no route anywhere;
//! - cgroup: the child's own cgroup looks like the root of the hierarchy.

use std::io;

/// Hostname inside the child's UTS namespace.
pub(super) const HOSTNAME: &str = "sandbox";

pub(super) fn unshare_all() -> Result<String, String> {
    let flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP;
    // SAFETY: unshare takes flags only; the process is single-threaded (checked in `threads`).
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(format!(
            "unshare(NEWNS|NEWIPC|NEWUTS|NEWNET|NEWCGROUP): {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: the pointer and length describe a live byte string.
    let rc = unsafe { libc::sethostname(HOSTNAME.as_ptr().cast(), HOSTNAME.len()) };
    if rc != 0 {
        return Err(format!("sethostname: {}", io::Error::last_os_error()));
    }
    Ok(format!(
        "new mount, IPC, UTS (hostname {HOSTNAME:?}), network and cgroup namespaces"
    ))
}
