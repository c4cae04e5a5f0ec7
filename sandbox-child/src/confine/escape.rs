//! Escape attempts for the test build of the child (`--features escape-tests`), in the spirit
//! of flatpak's `try-syscall`: after [`super::confine`], each op calls one forbidden syscall
//! natively, with arguments chosen so that it would do no harm if it were allowed.
//!
//! - With seccomp the process dies in the SIGSYS reporter: the supervisor reads
//!   `Fatal { step: "seccomp", message: "blocked syscall <nr> (<name>)" }` and exit status 159;
//!   [`EscapeOp::syscall`] is the name expected there.
//! - Without seccomp (namespaces, empty root, identity, capabilities and rlimits only) the op
//!   must still fail; [`try_forbidden`] reports the errno, and [`EscapeOp::errnos`] lists the
//!   acceptable ones. An empty list marks an op that only seccomp stops (see the op's note).
//!
//! Never compiled into release artefacts.

use std::ffi::CStr;
use std::io;

/// One escape attempt.
#[derive(Debug, Clone, Copy)]
pub struct EscapeOp {
    /// The argument of [`try_forbidden`].
    pub op: &'static str,
    /// The syscall a seccomp kill must name.
    pub syscall: &'static str,
    /// Errnos that count as "blocked" without seccomp; empty: only seccomp blocks it.
    pub errnos: &'static [i32],
    /// What blocks it without seccomp.
    pub note: &'static str,
}

const NO_FD: &str = "nofile = 3: no new fd can be created; empty root besides";

#[cfg(target_arch = "x86_64")]
const OPEN: &str = "open";
#[cfg(not(target_arch = "x86_64"))]
const OPEN: &str = "openat";
#[cfg(target_arch = "x86_64")]
const CREAT: &str = "creat";
#[cfg(not(target_arch = "x86_64"))]
const CREAT: &str = "openat";
#[cfg(target_arch = "x86_64")]
const FORK: &str = "fork";
#[cfg(not(target_arch = "x86_64"))]
const FORK: &str = "clone";

/// Every op [`try_forbidden`] knows, but `alloc:<MiB>` (`kill:<pid>` takes a pid).
pub const ESCAPE_OPS: &[EscapeOp] = &[
    EscapeOp {
        op: "open",
        syscall: OPEN,
        errnos: &[libc::EMFILE, libc::ENOENT],
        note: NO_FD,
    },
    EscapeOp {
        op: "openat",
        syscall: "openat",
        errnos: &[libc::EMFILE, libc::ENOENT],
        note: NO_FD,
    },
    EscapeOp {
        op: "creat",
        syscall: CREAT,
        errnos: &[libc::EMFILE, libc::EROFS, libc::EACCES],
        note: NO_FD,
    },
    EscapeOp {
        op: "stat",
        syscall: "newfstatat",
        errnos: &[libc::ENOENT],
        note: "empty root: /etc/passwd does not exist",
    },
    EscapeOp {
        op: "socket",
        syscall: "socket",
        errnos: &[libc::EMFILE, libc::ENETUNREACH],
        note: "nofile = 3; a new network namespace with no interface up",
    },
    EscapeOp {
        op: "execve",
        syscall: "execve",
        errnos: &[libc::ENOENT],
        note: "empty root: /bin/sh does not exist",
    },
    EscapeOp {
        op: "fork",
        syscall: FORK,
        errnos: &[libc::EAGAIN],
        note: "nproc = 1",
    },
    EscapeOp {
        op: "clone",
        syscall: "clone",
        errnos: &[libc::EAGAIN],
        note: "nproc = 1",
    },
    EscapeOp {
        op: "clone3",
        syscall: "clone3",
        errnos: &[libc::EAGAIN],
        note: "nproc = 1",
    },
    EscapeOp {
        op: "ptrace",
        syscall: "ptrace",
        errnos: &[libc::EPERM],
        note: "no CAP_SYS_PTRACE; pid 1 is another uid",
    },
    EscapeOp {
        op: "mount",
        syscall: "mount",
        errnos: &[libc::EPERM],
        note: "no CAP_SYS_ADMIN",
    },
    EscapeOp {
        op: "umount",
        syscall: "umount2",
        errnos: &[libc::EPERM],
        note: "no CAP_SYS_ADMIN",
    },
    EscapeOp {
        op: "unshare",
        syscall: "unshare",
        errnos: &[libc::EPERM],
        note: "no CAP_SYS_ADMIN",
    },
    EscapeOp {
        op: "userns",
        syscall: "unshare",
        errnos: &[],
        note: "unprivileged user namespaces depend on the host's sysctls: only seccomp stops them",
    },
    EscapeOp {
        op: "setns",
        syscall: "setns",
        errnos: &[libc::EMFILE, libc::ENOENT],
        note: "no namespace fd can be opened: nofile = 3, no /proc",
    },
    EscapeOp {
        op: "chroot",
        syscall: "chroot",
        errnos: &[libc::EPERM],
        note: "no CAP_SYS_CHROOT",
    },
    EscapeOp {
        op: "pivot_root",
        syscall: "pivot_root",
        errnos: &[libc::EPERM],
        note: "no CAP_SYS_ADMIN",
    },
    EscapeOp {
        op: "bpf",
        syscall: "bpf",
        errnos: &[libc::EPERM, libc::EMFILE],
        note: "no CAP_BPF; kernel.unprivileged_bpf_disabled",
    },
    EscapeOp {
        op: "keyctl",
        syscall: "keyctl",
        errnos: &[],
        note: "keyrings are per uid, not namespaced: only seccomp stops them",
    },
    EscapeOp {
        op: "add_key",
        syscall: "add_key",
        errnos: &[],
        note: "keyrings are per uid, not namespaced: only seccomp stops them",
    },
    EscapeOp {
        op: "io_uring_setup",
        syscall: "io_uring_setup",
        errnos: &[libc::EMFILE, libc::EPERM],
        note: NO_FD,
    },
    EscapeOp {
        op: "kill",
        syscall: "kill",
        errnos: &[libc::EPERM],
        note: "pid 1 belongs to another uid",
    },
    EscapeOp {
        op: "kill:<pid>",
        syscall: "kill",
        errnos: &[libc::EPERM],
        note: "another uid's process (e.g. the supervisor)",
    },
    EscapeOp {
        op: "prlimit-other",
        syscall: "prlimit64",
        errnos: &[libc::EPERM],
        note: "pid 1 belongs to another uid; seccomp allows prlimit64 on pid 0 only",
    },
    EscapeOp {
        op: "setuid",
        syscall: "setuid",
        errnos: &[libc::EPERM],
        note: "no CAP_SETUID",
    },
    EscapeOp {
        op: "setgid",
        syscall: "setgid",
        errnos: &[libc::EPERM],
        note: "no CAP_SETGID",
    },
    EscapeOp {
        op: "mprotect-exec",
        syscall: "mprotect",
        errnos: &[],
        note: "W^X is a seccomp argument rule only",
    },
];

/// The op's entry in [`ESCAPE_OPS`].
pub fn escape_op(op: &str) -> Option<&'static EscapeOp> {
    ESCAPE_OPS.iter().find(|e| e.op == op)
}

/// What an attempt came to without being killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The syscall failed with this errno.
    Failed(i32),
    /// The syscall succeeded; the string says what happened.
    Succeeded(String),
}

/// Attempts `op` natively and describes the result in one line: `<op>: blocked: <errno name>
/// (<n>)` or `<op>: ALLOWED: <what>`. With seccomp on, a forbidden op does not return.
///
/// `alloc:<MiB>` maps and touches that many MiB page by page (the cgroup OOM test);
/// `rust-alloc:<MiB>` allocates that much through Rust's allocator, untouched (the
/// address-space limit test);
/// `kill:<pid>` checks whether `pid` may be signalled (signal 0).
pub fn try_forbidden(op: &str) -> String {
    match attempt(op) {
        Ok(Attempt::Failed(e)) => format!("{op}: blocked: {} ({e})", errno_name(e)),
        Ok(Attempt::Succeeded(what)) => format!("{op}: ALLOWED: {what}"),
        Err(m) => format!("{op}: error: {m}"),
    }
}

/// An op [`attempt`] does not know, or whose argument does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadOp {
    #[error("bad pid in {0:?}")]
    Pid(String),
    #[error("bad size in {0:?}")]
    Size(String),
    #[error("unknown op {0:?}")]
    Unknown(String),
}

/// [`try_forbidden`], structured. `Err` for an unknown op.
pub fn attempt(op: &str) -> Result<Attempt, BadOp> {
    if let Some(pid) = op.strip_prefix("kill:") {
        let pid: libc::pid_t = pid.parse().map_err(|_| BadOp::Pid(op.to_string()))?;
        // SAFETY: signal 0 only checks permission.
        let r = unsafe { libc::kill(pid, 0) };
        return Ok(result(r as i64, &format!("may signal pid {pid}")));
    }
    if let Some(mib) = op.strip_prefix("alloc:") {
        let mib: usize = mib.parse().map_err(|_| BadOp::Size(op.to_string()))?;
        return Ok(alloc_touch(mib));
    }
    if let Some(mib) = op.strip_prefix("rust-alloc:") {
        // A native (Rust) allocation, not touched: only the address-space limit can refuse
        // it, and then the child's global allocator reports out of memory and exits.
        let mib: usize = mib.parse().map_err(|_| BadOp::Size(op.to_string()))?;
        let v: Vec<u8> = vec![0; mib << 20];
        return Ok(Attempt::Succeeded(format!(
            "allocated {} MiB",
            v.len() >> 20
        )));
    }
    let r = match op {
        "open" => open_path(c"/etc/passwd", libc::O_RDONLY, true),
        "openat" => open_path(c"/proc/1/environ", libc::O_RDONLY, false),
        "creat" => creat(),
        "stat" => stat_passwd(),
        "socket" => socket_connect(),
        "execve" => execve_sh(),
        "fork" => fork_raw(),
        "clone" => {
            // SAFETY: a fork-like clone without a new stack: the child returns 0 here and
            // leaves at once through _exit (see child_exit).
            let r = unsafe {
                libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0)
            };
            child_exit(r, "clone")
        }
        "clone3" => clone3(),
        "ptrace" => {
            // SAFETY: PTRACE_ATTACH takes a pid; the address and data arguments are unused.
            let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, 1, 0, 0) };
            result(r as i64, "attached to pid 1")
        }
        "mount" => {
            // SAFETY: valid NUL-terminated strings and a null data pointer.
            let r = unsafe {
                libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            result(r as i64, "mounted a tmpfs on /")
        }
        "umount" => {
            // SAFETY: a valid NUL-terminated path.
            let r = unsafe { libc::umount2(c"/".as_ptr(), libc::MNT_DETACH) };
            result(r as i64, "unmounted /")
        }
        "unshare" => {
            // SAFETY: flags only.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNS) };
            result(r as i64, "entered a new mount namespace")
        }
        "userns" => {
            // SAFETY: flags only.
            let r = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
            result(r as i64, "entered a new user namespace")
        }
        "setns" => setns(),
        "chroot" => {
            // SAFETY: a valid NUL-terminated path.
            let r = unsafe { libc::chroot(c"/".as_ptr()) };
            result(r as i64, "chroot succeeded")
        }
        "pivot_root" => {
            // SAFETY: valid NUL-terminated paths.
            let r = unsafe { libc::syscall(libc::SYS_pivot_root, c"/".as_ptr(), c"/".as_ptr()) };
            result(r, "pivot_root succeeded")
        }
        "bpf" => {
            // BPF_MAP_CREATE (0) of a one-entry array map (type 2, 4-byte key and value).
            let mut attr = [0u32; 32];
            attr[..4].copy_from_slice(&[2, 4, 4, 1]);
            // SAFETY: the pointer and size describe a live buffer.
            let r = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), 4 * attr.len()) };
            result(r, "bpf(BPF_MAP_CREATE) returned an fd")
        }
        "keyctl" => {
            // KEYCTL_GET_KEYRING_ID (0) of the session keyring (-3), creating it (1).
            // SAFETY: integer arguments only.
            let r = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 1) };
            result(r, "got the session keyring id")
        }
        "add_key" => {
            let payload = b"x";
            // KEY_SPEC_PROCESS_KEYRING is -2.
            // SAFETY: valid NUL-terminated strings and a live payload buffer.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_add_key,
                    c"user".as_ptr(),
                    c"cs-escape".as_ptr(),
                    payload.as_ptr(),
                    payload.len(),
                    -2i64,
                )
            };
            result(r, "added a key")
        }
        "io_uring_setup" => {
            let params = [0u8; 120];
            // SAFETY: io_uring_params is 120 bytes; the kernel reads and writes only those.
            let r = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_ptr()) };
            result(r, "created an io_uring")
        }
        "kill" => {
            // SAFETY: signal 0 only checks permission.
            let r = unsafe { libc::kill(1, 0) };
            result(r as i64, "may signal pid 1")
        }
        "prlimit-other" => {
            // Another process's limits: pid 1 (another uid, and a pid other than 0 for the
            // seccomp rule). Only reads them (no new value).
            let mut old = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: a null new limit and a live out-parameter.
            let r = unsafe { libc::prlimit(1, libc::RLIMIT_AS, std::ptr::null(), &mut old) };
            result(r as i64, "read pid 1's limits")
        }
        "setuid" => {
            // SAFETY: integer argument; the raw syscall affects only this thread, the only one.
            let r = unsafe { libc::syscall(libc::SYS_setuid, 0) };
            result(r, "became uid 0")
        }
        "setgid" => {
            // SAFETY: as above.
            let r = unsafe { libc::syscall(libc::SYS_setgid, 0) };
            result(r, "became gid 0")
        }
        "mprotect-exec" => mprotect_exec(),
        _ => return Err(BadOp::Unknown(op.to_string())),
    };
    Ok(r)
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A syscall's return value: -1 → `Failed(errno)`, anything else → `Succeeded`.
fn result(r: i64, what: &str) -> Attempt {
    if r == -1 {
        Attempt::Failed(last_errno())
    } else {
        Attempt::Succeeded(format!("{what} (returned {r})"))
    }
}

/// After a fork-like call: the child leaves at once, the parent reaps it.
fn child_exit(r: i64, what: &str) -> Attempt {
    match r {
        -1 => Attempt::Failed(last_errno()),
        0 => {
            // SAFETY: leaving the forked child without running any destructor.
            unsafe { libc::_exit(0) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: `status` is a live int; pid is our child.
            unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
            Attempt::Succeeded(format!("{what} created pid {pid}"))
        }
    }
}

fn open_path(path: &CStr, flags: i32, legacy: bool) -> Attempt {
    let r = if legacy {
        open_legacy(path, flags)
    } else {
        // SAFETY: a valid NUL-terminated path; an fd on success is closed below.
        unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags, 0) }
    };
    if r >= 0 {
        // SAFETY: closing the fd just opened.
        unsafe { libc::close(r as i32) };
    }
    result(r, &format!("opened {}", path.to_string_lossy()))
}

/// `open(2)` where the architecture has it, else `openat`.
fn open_legacy(path: &CStr, flags: i32) -> i64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::syscall(libc::SYS_open, path.as_ptr(), flags, 0) };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags, 0) };
    r
}

fn creat() -> Attempt {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::syscall(libc::SYS_creat, c"/cs-escape".as_ptr(), 0o600) };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/cs-escape".as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
            0o600,
        )
    };
    result(r, "created /cs-escape")
}

fn stat_passwd() -> Attempt {
    // SAFETY: an all-zero stat is valid storage for the kernel to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid path and a live stat buffer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_newfstatat,
            libc::AT_FDCWD,
            c"/etc/passwd".as_ptr(),
            &mut st as *mut libc::stat,
            0,
        )
    };
    result(r, "/etc/passwd exists")
}

fn socket_connect() -> Attempt {
    // SAFETY: integer arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return Attempt::Failed(last_errno());
    }
    // SAFETY: an all-zero sockaddr_in is valid; the fields are set below.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = 80u16.to_be();
    addr.sin_addr.s_addr = u32::from_be_bytes([1, 1, 1, 1]).to_be();
    // SAFETY: `addr` is a live sockaddr_in of the size given.
    let r = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let e = last_errno();
    // SAFETY: closing the socket just created.
    unsafe { libc::close(fd) };
    if r == 0 {
        Attempt::Succeeded("connected to 1.1.1.1:80".into())
    } else {
        Attempt::Failed(e)
    }
}

fn execve_sh() -> Attempt {
    let argv = [
        c"/bin/sh".as_ptr(),
        c"-c".as_ptr(),
        c"id".as_ptr(),
        std::ptr::null(),
    ];
    let envp = [std::ptr::null()];
    // SAFETY: NUL-terminated arrays of valid NUL-terminated strings.
    let r = unsafe { libc::execve(argv[0], argv.as_ptr(), envp.as_ptr()) };
    result(r as i64, "execve returned")
}

fn fork_raw() -> Attempt {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a raw fork; the child leaves at once through _exit (see child_exit).
    let r = unsafe { libc::syscall(libc::SYS_fork) };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above, in clone form.
    let r = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) };
    child_exit(r, "fork")
}

fn clone3() -> Attempt {
    // struct clone_args (size 88): flags 0, exit_signal SIGCHLD, everything else 0.
    let mut args = [0u64; 11];
    args[4] = libc::SIGCHLD as u64;
    // SAFETY: a live clone_args of the size given; fork-like (no new stack), and the child
    // leaves at once through _exit.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_mut_ptr(),
            std::mem::size_of_val(&args),
        )
    };
    child_exit(r, "clone3")
}

fn setns() -> Attempt {
    // stdin is not a namespace fd: this fails even when allowed (EINVAL).
    // SAFETY: integer arguments.
    let r = unsafe { libc::setns(0, libc::CLONE_NEWNET) };
    if r == 0 {
        return Attempt::Succeeded("setns(stdin) succeeded".into());
    }
    // What would be needed is a namespace fd, and none can be had.
    open_path(c"/proc/1/ns/net", libc::O_RDONLY, false)
}

fn mprotect_exec() -> Attempt {
    // SAFETY: an anonymous private mapping, no fd, no fixed address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Attempt::Failed(last_errno());
    }
    // SAFETY: `p` is the page just mapped, owned by nobody else.
    let r = unsafe { libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC) };
    let e = last_errno();
    // SAFETY: unmapping the page mapped above.
    unsafe { libc::munmap(p, 4096) };
    if r == 0 {
        Attempt::Succeeded("made a page executable".into())
    } else {
        Attempt::Failed(e)
    }
}

/// Maps `mib` MiB and writes one byte per page, so every page is really allocated.
fn alloc_touch(mib: usize) -> Attempt {
    let len = mib << 20;
    // SAFETY: an anonymous private mapping, no fd, no fixed address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Attempt::Failed(last_errno());
    }
    let base = p.cast::<u8>();
    let mut off = 0;
    while off < len {
        // SAFETY: `off < len`, inside the writable mapping made above.
        unsafe { base.add(off).write_volatile(1) };
        off += 4096;
    }
    // SAFETY: unmapping the mapping made above.
    unsafe { libc::munmap(p, len) };
    Attempt::Succeeded(format!("allocated and touched {mib} MiB"))
}

/// `EPERM`, `ENOENT`, ... for the errnos the escape tests meet.
pub fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBADF => "EBADF",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::ENOSYS => "ENOSYS",
        libc::EROFS => "EROFS",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => "errno",
    }
}
