//! Starting a child *inside* its cgroup v2 with `clone3(CLONE_INTO_CGROUP)` (Linux 5.7+).
//!
//! Why not `Command` plus a `pre_exec` write to `cgroup.procs`: that write *migrates* the new
//! process, and every migration takes the kernel's global `cgroup_threadgroup_rwsem` for
//! writing, which waits for an RCU grace period unless the host mounted a hierarchy with
//! `favordynmods`. Measured on this project's machines: 6.6–15 ms per isolated attach (v1
//! memory, pids and cpu alike), 0.02 ms when attaches follow each other closely, 0.25 ms with
//! `favordynmods`. A process born in its cgroup is never migrated, so it pays none of that: this
//! is what makes `cs-invoker-pool run` (one fresh child) and a pool's refill spawns cheap on v2.
//!
//! cgroup v1 has no such flag (each hierarchy needs its own write), so v1 keeps the `pre_exec`
//! attach; docs/capacity.md gives the v1 answer (`favordynmods`, kernel 6.0+).
//!
//! Between `clone3` and `execve` the new process is a copy of a multi-threaded supervisor, so it
//! makes only async-signal-safe system calls on memory prepared before the clone (no allocation,
//! no locks) — the same rule `std::process::Command` follows for `pre_exec`.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::unix::AsyncFd;

/// Set once `clone3` proved unavailable (an old kernel, or a container runtime whose seccomp
/// profile answers ENOSYS/EPERM for it), so later spawns go straight to the `pre_exec` path.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Whether to try `clone3` at all.
pub(super) fn available() -> bool {
    !UNAVAILABLE.load(Ordering::Relaxed)
}

/// A child started by [`clone_into_cgroup`]: its pid, a pidfd for signals and exit, and the
/// parent's ends of its three pipes.
pub(super) struct Spawned {
    pub pid: u32,
    pub proc: PidfdChild,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Why [`clone_into_cgroup`] did not start a child.
#[derive(Debug, thiserror::Error)]
pub(super) enum SpawnError {
    /// The kernel or the runtime refuses `clone3`/`CLONE_INTO_CGROUP`: use the `pre_exec` path.
    #[error("clone3 with CLONE_INTO_CGROUP is not available: {0}")]
    Unsupported(io::Error),
    /// The clone or the exec failed for another reason (the error names it).
    #[error("{0}")]
    Failed(io::Error),
}

/// The kernel's `struct clone_args` (include/uapi/linux/sched.h), up to `cgroup`
/// (`CLONE_ARGS_SIZE_VER2`, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Execs `bin pipe` (empty environment, nice `nice`) as a new process born inside the cgroup
/// whose directory `cgroup` (an `O_PATH` descriptor) names.
pub(super) fn clone_into_cgroup(
    bin: &Path,
    cgroup: &OwnedFd,
    nice: libc::c_int,
) -> Result<Spawned, SpawnError> {
    let failed = SpawnError::Failed;
    let path = CString::new(bin.as_os_str().as_bytes()).map_err(|_| {
        failed(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} holds a NUL byte", bin.display()),
        ))
    })?;
    let arg1 = c"pipe";
    let argv: [*const libc::c_char; 3] = [path.as_ptr(), arg1.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];

    let (in_r, in_w) = std::io::pipe().map_err(failed)?;
    let (out_r, out_w) = std::io::pipe().map_err(failed)?;
    let (err_r, err_w) = std::io::pipe().map_err(failed)?;
    let (mut exec_r, exec_w) = std::io::pipe().map_err(failed)?;
    let (in_r, out_w, err_w): (OwnedFd, OwnedFd, OwnedFd) =
        (in_r.into(), out_w.into(), err_w.into());
    let exec_w: OwnedFd = exec_w.into();
    // dup2 onto 0/1/2 clears close-on-exec only when the fds differ; a supervisor started with
    // a closed stdin could be handed fd 0 for a pipe, which the simpler path handles.
    if [&in_r, &out_w, &err_w, &exec_w]
        .iter()
        .any(|fd| fd.as_raw_fd() < 3)
    {
        return Err(SpawnError::Unsupported(io::Error::other(
            "a pipe was given a standard descriptor",
        )));
    }
    let fds = ChildFds {
        stdin: in_r.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        exec: exec_w.as_raw_fd(),
    };

    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP | CLONE_PIDFD | CLONE_CLEAR_SIGHAND,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid, fully initialised `clone_args` of the size passed, and it and
    // `pidfd` outlive the call. Without CLONE_VM the child gets its own copy of memory; in it
    // only `exec_child` runs, which makes async-signal-safe system calls on data prepared above.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        // SAFETY: we are the new process; `exec_child` never returns.
        unsafe { exec_child(&fds, &path, &argv, &envp, nice) }
    }
    if ret < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOSYS | libc::EINVAL | libc::E2BIG | libc::EPERM | libc::EOPNOTSUPP) => {
                UNAVAILABLE.store(true, Ordering::Relaxed);
                SpawnError::Unsupported(e)
            }
            _ => SpawnError::Failed(e),
        });
    }
    let pid = ret as libc::pid_t;
    // SAFETY: CLONE_PIDFD stored a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // The child's ends close here, so the parent sees EOF when the child exits.
    drop((in_r, out_w, err_w, exec_w));
    let proc = PidfdChild::new(pid, pidfd).map_err(failed)?;
    // The exec pipe is close-on-exec: EOF means the exec happened, 4 bytes are its errno.
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < errno.len() {
        match exec_r.read(&mut errno[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(e)),
        }
    }
    if got > 0 {
        let mut proc = proc;
        let _ = proc.reap_blocking();
        let code = i32::from_ne_bytes(errno);
        return Err(failed(io::Error::from_raw_os_error(code)));
    }
    Ok(Spawned {
        pid: pid as u32,
        proc,
        stdin: in_w.into(),
        stdout: out_r.into(),
        stderr: err_r.into(),
    })
}

struct ChildFds {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    exec: RawFd,
}

/// The new process's whole life before `execve`.
///
/// # Safety
/// Only in the child of `clone3`, with every pointer valid (prepared by the parent before the
/// clone, so they are valid in the copy).
unsafe fn exec_child(
    fds: &ChildFds,
    path: &CString,
    argv: &[*const libc::c_char; 3],
    envp: &[*const libc::c_char; 1],
    nice: libc::c_int,
) -> ! {
    // SAFETY: plain system calls on descriptors and memory this process owns; all of them are
    // async-signal-safe. dup2 onto 0/1/2 clears close-on-exec there (the sources are >= 3).
    unsafe {
        let mut ok = libc::dup2(fds.stdin, 0) >= 0
            && libc::dup2(fds.stdout, 1) >= 0
            && libc::dup2(fds.stderr, 2) >= 0;
        // The clone copied the calling thread's signal mask; SIGPIPE was ignored by the Rust
        // runtime (ignored dispositions survive CLONE_CLEAR_SIGHAND). Both back to defaults, as
        // `Command` does.
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        ok = ok && libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) == 0;
        ok = ok && libc::signal(libc::SIGPIPE, libc::SIG_DFL) != libc::SIG_ERR;
        // Functions run below the supervisor's priority; a failure only leaves the default.
        libc::setpriority(libc::PRIO_PROCESS, 0, nice);
        if ok {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        }
        let errno = *libc::__errno_location();
        let bytes = errno.to_ne_bytes();
        libc::write(fds.exec, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

/// A child known by a pidfd: signals go to that very process (no pid reuse race) and its exit
/// is awaited through the pidfd becoming readable, not through SIGCHLD.
pub(super) struct PidfdChild {
    pid: libc::pid_t,
    fd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
}

impl PidfdChild {
    fn new(pid: libc::pid_t, fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: `fd` is the pidfd this handle owns from here on (an `OwnedFd` is never
        // closed or replaced behind its owner's back), so it stays the same open description
        // for the AsyncFd's whole life, as `register_with_interest` requires.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(PidfdChild {
            pid,
            fd,
            status: None,
        })
    }

    /// Sends SIGKILL (idempotent; nothing once the process was reaped).
    pub fn start_kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // SAFETY: pidfd_send_signal with a pidfd we own, a valid signal, no siginfo, no flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.get_ref().as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // ESRCH: it already exited (a zombie awaiting us).
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// `Some(status)` once the process has exited (and is then reaped).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.waitpid(libc::WNOHANG)
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(s);
            }
            let mut ready = self.fd.readable().await?;
            ready.clear_ready();
        }
    }

    fn reap_blocking(&mut self) -> io::Result<Option<ExitStatus>> {
        self.waitpid(0)
    }

    fn waitpid(&mut self, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let mut raw: libc::c_int = 0;
        // SAFETY: waitpid on our own child with a valid out-pointer. Only this handle reaps it:
        // tokio's SIGCHLD reaper waits for its own children by pid, never for -1.
        let r = unsafe { libc::waitpid(self.pid, &mut raw, flags) };
        match r {
            0 => Ok(None),
            r if r == self.pid => {
                let s = ExitStatus::from_raw(raw);
                self.status = Some(s);
                Ok(Some(s))
            }
            _ => Err(io::Error::last_os_error()),
        }
    }
}

impl Drop for PidfdChild {
    /// Like `kill_on_drop`: a dropped child is killed, and reaped so no zombie is left (in the
    /// background when it has not exited yet).
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let _ = self.start_kill();
        if let Ok(Some(_)) = self.try_wait() {
            return;
        }
        let pid = self.pid;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn_blocking(move || {
                let mut raw = 0;
                // SAFETY: a blocking waitpid on our own, already killed child.
                unsafe { libc::waitpid(pid, &mut raw, 0) };
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    /// A cgroup2 mount of our own with one cgroup in it, removed on drop. On a v1 host the
    /// unified hierarchy still exists (without controllers), which is all CLONE_INTO_CGROUP
    /// needs.
    struct Cgroup2 {
        mount: PathBuf,
        dir: PathBuf,
    }

    impl Cgroup2 {
        fn new(tag: &str) -> Option<Cgroup2> {
            let mount = std::env::temp_dir().join(format!("cs-spawn-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&mount).ok()?;
            let ok = std::process::Command::new("mount")
                .args(["-t", "cgroup2", "none"])
                .arg(&mount)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = std::fs::remove_dir(&mount);
                if std::env::var_os("CS_REQUIRE_SANDBOX").is_some_and(|v| v == "1") {
                    panic!("CS_REQUIRE_SANDBOX=1 but cgroup2 cannot be mounted here");
                }
                eprintln!("skipping: cannot mount cgroup2 (not root?)");
                return None;
            }
            let dir = mount.join(format!("cs-spawn-{tag}"));
            std::fs::create_dir(&dir).expect("mkdir in our cgroup2 mount");
            Some(Cgroup2 { mount, dir })
        }

        fn fd(&self) -> OwnedFd {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(&self.dir)
                .expect("open the cgroup directory")
                .into()
        }
    }

    impl Drop for Cgroup2 {
        fn drop(&mut self) {
            // A reaped child leaves its cgroup a moment after its exit: retry briefly.
            for _ in 0..100 {
                if std::fs::remove_dir(&self.dir).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mount)
                .status();
            let _ = std::fs::remove_dir(&self.mount);
        }
    }

    /// A stand-in child: prints its first argument and its own cgroup, then echoes stdin.
    fn script(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("cs-spawn-{tag}-{}.sh", std::process::id()));
        std::fs::write(
            &p,
            "#!/bin/sh\necho \"$1\"\ncat /proc/self/cgroup\nexec cat\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[tokio::test]
    async fn the_child_is_born_in_its_cgroup_and_talks_over_its_pipes() {
        let Some(cg) = Cgroup2::new("born") else {
            return;
        };
        let bin = script("born");
        let s = clone_into_cgroup(&bin, &cg.fd(), 10).expect("clone3 into the cgroup");
        let mut proc = s.proc;
        let mut stdin = std::fs::File::from(s.stdin);
        stdin.write_all(b"hello\n").unwrap();
        drop(stdin);
        let mut out = String::new();
        std::fs::File::from(s.stdout)
            .read_to_string(&mut out)
            .unwrap();
        let status = proc.wait().await.unwrap();
        assert!(status.success(), "{status:?}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"pipe"), "{out}");
        assert!(
            lines.contains(&"0::/cs-spawn-born"),
            "not born in its cgroup: {out}"
        );
        assert_eq!(lines.last(), Some(&"hello"), "{out}");
        let _ = std::fs::remove_file(bin);
    }

    #[tokio::test]
    async fn a_killed_child_reports_sigkill_and_a_missing_binary_its_errno() {
        let Some(cg) = Cgroup2::new("kill") else {
            return;
        };
        let bin = script("kill");
        let s = clone_into_cgroup(&bin, &cg.fd(), 10).expect("clone3 into the cgroup");
        let mut proc = s.proc;
        assert!(proc.try_wait().unwrap().is_none(), "cat waits for stdin");
        let mut stdout = std::fs::File::from(s.stdout);
        let mut first = [0u8; 5];
        stdout.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"pipe\n");
        // SAFETY: SIGKILL to the child this test started, by pid, as an operator would.
        assert_eq!(unsafe { libc::kill(s.pid as i32, libc::SIGKILL) }, 0);
        // Its stdout reaches EOF: no other process holds the pipe's write end.
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        proc.start_kill().unwrap();
        let status = proc.wait().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        proc.start_kill()
            .expect("killing a reaped child is a no-op");
        let _ = std::fs::remove_file(bin);

        match clone_into_cgroup(Path::new("/nonexistent/sandbox-child"), &cg.fd(), 10) {
            Err(SpawnError::Failed(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            Err(e) => panic!("expected ENOENT, got {e}"),
            Ok(_) => panic!("a missing binary started"),
        }
    }
}
