//! Step `rlimits`: hard and soft limits set to the same value, so the child cannot raise them.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{signal, SigHandler, Signal};
use sandbox_proto::settings::{Rlimits, ADDRESS_SPACE_HEADROOM};
use std::io;

/// Lowers this process's `RLIMIT_AS` (soft and hard) to `memory_limit_bytes` plus
/// [`ADDRESS_SPACE_HEADROOM`], once the bundle (and so the memory limit) is known: a native
/// allocation then fails at a size in proportion to the function's limit, not at the stem's
/// limit for the largest `memoryMb`. A limit is only ever lowered here (an unprivileged
/// process cannot raise its hard limit). The seccomp policy allows `prlimit64` on pid 0 only.
pub fn lower_address_space(memory_limit_bytes: u64) -> io::Result<()> {
    let want = memory_limit_bytes.saturating_add(ADDRESS_SPACE_HEADROOM);
    // getrlimit/setrlimit are glibc's prlimit64 on pid 0.
    let (_, hard) = getrlimit(Resource::RLIMIT_AS)?;
    let want = want.min(hard);
    setrlimit(Resource::RLIMIT_AS, want, want)?;
    Ok(())
}

pub(super) fn apply(limits: &Rlimits, keep_fds: &[u32]) -> Result<String, String> {
    let table = [
        (Resource::RLIMIT_AS, "as", limits.address_space_bytes),
        (Resource::RLIMIT_STACK, "stack", limits.stack_bytes),
        (Resource::RLIMIT_NOFILE, "nofile", limits.nofile),
        (Resource::RLIMIT_FSIZE, "fsize", limits.fsize_bytes),
        (Resource::RLIMIT_CORE, "core", limits.core_bytes),
        (Resource::RLIMIT_NPROC, "nproc", limits.nproc),
    ];
    for (resource, name, value) in table {
        setrlimit(resource, value, value)
            .map_err(|e| format!("setrlimit({name}, {value}): {e}"))?;
    }

    // With fsize 0 a write to a regular file raises SIGXFSZ, which would kill the child if its
    // stderr were redirected to a file: ignore it, so such writes fail with EFBIG instead.
    // SAFETY: SIG_IGN installs no handler code, so nothing can run in a signal context.
    unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) }
        .map_err(|e| format!("ignoring SIGXFSZ: {e}"))?;
    let files: Vec<u32> = keep_fds
        .iter()
        .copied()
        .filter(|&fd| is_regular_file(fd))
        .collect();
    let note = if files.is_empty() || limits.fsize_bytes > 0 {
        String::new()
    } else {
        format!("; fds {files:?} are regular files: writes to them now fail with EFBIG")
    };
    Ok(format!(
        "as {} MiB, stack {} MiB, nofile {}, fsize {}, core {}, nproc {}; SIGXFSZ ignored{note}",
        limits.address_space_bytes >> 20,
        limits.stack_bytes >> 20,
        limits.nofile,
        limits.fsize_bytes,
        limits.core_bytes,
        limits.nproc
    ))
}

fn is_regular_file(fd: u32) -> bool {
    let Ok(fd) = i32::try_from(fd) else {
        return false;
    };
    // SAFETY: `fd` is only looked at (fstat), never closed or owned; if it is not open,
    // fstat fails and the answer is "no".
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    nix::sys::stat::fstat(borrowed)
        .map(|st| (st.st_mode & libc::S_IFMT) == libc::S_IFREG)
        .unwrap_or(false)
}
