//! Steps `threads`, `close-fds`, `environment` and `pdeathsig`.

use std::io;

/// Seccomp filters, `unshare(CLONE_NEWNS)` and the uid change only hold for the whole process
/// when it has a single thread; refuse to go on otherwise.
pub(super) fn check_single_threaded() -> Result<String, String> {
    let n = std::fs::read_dir("/proc/self/task")
        .map_err(|e| format!("cannot read /proc/self/task: {e}"))?
        .count();
    if n != 1 {
        return Err(format!(
            "the process has {n} threads; confinement needs exactly one"
        ));
    }
    Ok("single-threaded".to_string())
}

/// Closes every fd that is not in `keep`.
pub(super) fn close_fds(keep: &[u32]) -> Result<String, String> {
    let mut keep: Vec<u32> = keep.to_vec();
    keep.sort_unstable();
    keep.dedup();
    match close_ranges(&keep) {
        Ok(()) => Ok(format!("closed every fd but {keep:?} (close_range)")),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            let n = close_by_walking(&keep)?;
            Ok(format!(
                "closed {n} fds, kept {keep:?} (/proc/self/fd walk; no close_range)"
            ))
        }
        Err(e) => Err(format!("close_range: {e}")),
    }
}

/// `close_range` over the gaps between the (sorted) kept fds.
fn close_ranges(keep: &[u32]) -> io::Result<()> {
    let mut first: u32 = 0;
    for &k in keep {
        if k > first {
            close_range(first, k - 1)?;
        }
        first = k.saturating_add(1);
    }
    if keep.last() != Some(&u32::MAX) {
        close_range(first, u32::MAX)?;
    }
    Ok(())
}

fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers; closing fds we do not keep is the point, and no
    // Rust object of this (single-threaded) process relies on them past this step.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Fallback for kernels before 5.9.
fn close_by_walking(keep: &[u32]) -> Result<usize, String> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("cannot list /proc/self/fd: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect();
    // The directory's own fd was in the listing and is closed now; closing it again gives
    // EBADF, which is ignored below.
    let mut n = 0;
    for fd in fds {
        // Errors (EBADF for the listing's own fd) are harmless; no Rust object of this
        // single-threaded process relies on these fds past this step.
        if fd >= 0 && !keep.contains(&(fd as u32)) && nix::unistd::close(fd).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Removes every environment variable.
pub(super) fn clear_env() -> String {
    let keys: Vec<_> = std::env::vars_os().map(|(k, _)| k).collect();
    for k in &keys {
        std::env::remove_var(k);
    }
    format!("cleared {} environment variables", keys.len())
}

/// `PR_SET_PDEATHSIG(SIGKILL)`, then checks the parent is still `expected_parent`: if the
/// supervisor died before the prctl, the signal will never come and the child must not run on.
pub(super) fn set_pdeathsig(expected_parent: u32) -> Result<String, String> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("prctl(PR_SET_PDEATHSIG): {e}"))?;
    let now = nix::unistd::getppid().as_raw() as u32;
    if now != expected_parent {
        return Err(format!(
            "the supervisor (pid {expected_parent}) is gone: parent is now pid {now}"
        ));
    }
    Ok(format!(
        "SIGKILL when the supervisor (pid {expected_parent}) dies"
    ))
}
