//! Names of syscalls, for reports of blocked syscalls (`blocked syscall 41 (socket)`).
//!
//! A static table built from `libc::SYS_*`, so the numbers are those of the target
//! architecture. It covers every syscall the allowlist names (a test checks that) and what an
//! exploit would try; anything else is reported by number alone.

macro_rules! table {
    ($($name:ident)*) => { &[$((libc::$name, strip(stringify!($name)))),*] };
}

/// `"SYS_read"` → `"read"`, at compile time.
const fn strip(s: &'static str) -> &'static str {
    match s.as_bytes() {
        [b'S', b'Y', b'S', b'_', rest @ ..] => match std::str::from_utf8(rest) {
            Ok(r) => r,
            Err(_) => s,
        },
        _ => s,
    }
}

/// Syscalls of every supported architecture.
static COMMON: &[(libc::c_long, &str)] = table! {
    SYS_read SYS_write SYS_readv SYS_writev SYS_pread64 SYS_pwrite64 SYS_close SYS_brk SYS_mmap
    SYS_munmap SYS_mremap SYS_madvise SYS_mprotect SYS_pkey_mprotect SYS_futex SYS_clock_gettime
    SYS_clock_getres SYS_clock_nanosleep SYS_nanosleep SYS_gettimeofday SYS_getrandom SYS_getpid
    SYS_gettid SYS_getppid SYS_rt_sigreturn SYS_rt_sigprocmask SYS_rt_sigaction
    SYS_rt_sigsuspend SYS_sigaltstack SYS_restart_syscall SYS_exit SYS_exit_group SYS_socket
    SYS_socketpair SYS_connect SYS_bind SYS_listen SYS_accept SYS_accept4 SYS_sendto
    SYS_recvfrom SYS_sendmsg SYS_recvmsg SYS_shutdown SYS_execve SYS_execveat SYS_clone
    SYS_clone3 SYS_ptrace SYS_mount SYS_umount2 SYS_unshare SYS_setns SYS_bpf SYS_keyctl
    SYS_add_key SYS_request_key SYS_io_uring_setup SYS_io_uring_enter SYS_io_uring_register
    SYS_kill SYS_tkill SYS_tgkill SYS_setuid SYS_setgid SYS_setreuid SYS_setregid SYS_setresuid
    SYS_setresgid SYS_setgroups SYS_setfsuid SYS_setfsgid SYS_getuid SYS_geteuid SYS_getgid
    SYS_getegid SYS_capget SYS_capset SYS_prctl SYS_seccomp SYS_personality SYS_openat
    SYS_openat2 SYS_open_by_handle_at SYS_name_to_handle_at SYS_chroot SYS_pivot_root SYS_chdir
    SYS_fchdir SYS_getcwd SYS_mknodat SYS_mkdirat SYS_unlinkat SYS_renameat2 SYS_symlinkat
    SYS_linkat SYS_fchmodat SYS_fchownat SYS_faccessat SYS_readlinkat SYS_newfstatat SYS_statx
    SYS_fstat SYS_lseek SYS_ioctl SYS_fcntl SYS_dup SYS_dup3 SYS_pipe2 SYS_memfd_create
    SYS_eventfd2 SYS_signalfd4 SYS_truncate SYS_ftruncate SYS_fsync SYS_getdents64 SYS_ppoll
    SYS_pselect6 SYS_epoll_create1 SYS_epoll_ctl SYS_epoll_pwait SYS_wait4 SYS_waitid
    SYS_pidfd_open SYS_pidfd_send_signal SYS_pidfd_getfd SYS_process_vm_readv
    SYS_process_vm_writev SYS_perf_event_open SYS_userfaultfd SYS_kexec_load SYS_init_module
    SYS_finit_module SYS_delete_module SYS_reboot SYS_sethostname SYS_setdomainname SYS_uname
    SYS_sched_yield SYS_sched_setaffinity SYS_sched_getaffinity SYS_mincore SYS_membarrier
    SYS_rseq SYS_set_robust_list SYS_set_tid_address SYS_fanotify_init SYS_inotify_init1
    SYS_move_mount SYS_fsopen SYS_fsmount SYS_fspick SYS_open_tree SYS_quotactl SYS_acct
    SYS_swapon SYS_swapoff SYS_syslog SYS_vmsplice SYS_splice SYS_tee SYS_mbind
    SYS_migrate_pages SYS_move_pages SYS_kcmp SYS_setsid SYS_setpgid SYS_umask SYS_prlimit64
    SYS_getrusage SYS_sysinfo SYS_times SYS_landlock_create_ruleset SYS_landlock_add_rule
    SYS_landlock_restrict_self SYS_memfd_secret
};

/// Syscalls only x86_64 has (aarch64 has just the `*at` and `clone` forms).
#[cfg(target_arch = "x86_64")]
static ARCH_ONLY: &[(libc::c_long, &str)] = table! {
    SYS_open SYS_creat SYS_fork SYS_vfork SYS_access SYS_stat SYS_lstat SYS_poll SYS_select
    SYS_pipe SYS_dup2 SYS_mkdir SYS_rmdir SYS_unlink SYS_rename SYS_link SYS_symlink
    SYS_readlink SYS_chmod SYS_chown SYS_lchown SYS_time SYS_arch_prctl SYS_iopl SYS_ioperm
    SYS_modify_ldt SYS_uselib SYS_epoll_create SYS_epoll_wait SYS_eventfd SYS_signalfd
    SYS_inotify_init SYS_getdents SYS_alarm SYS_pause SYS_getpgrp SYS_utime SYS_utimes SYS_mknod
};
#[cfg(not(target_arch = "x86_64"))]
static ARCH_ONLY: &[(libc::c_long, &str)] = &[];

/// The name of syscall `nr`, if the table has it. Async-signal-safe (no allocation, no locks):
/// the SIGSYS handler calls it.
pub fn name(nr: libc::c_long) -> Option<&'static str> {
    let mut i = 0;
    while i < COMMON.len() {
        if COMMON[i].0 == nr {
            return Some(COMMON[i].1);
        }
        i += 1;
    }
    let mut i = 0;
    while i < ARCH_ONLY.len() {
        if ARCH_ONLY[i].0 == nr {
            return Some(ARCH_ONLY[i].1);
        }
        i += 1;
    }
    None
}

/// The number of syscall `name` on this architecture, if the table has it.
pub fn number(name: &str) -> Option<libc::c_long> {
    COMMON
        .iter()
        .chain(ARCH_ONLY.iter())
        .find(|(_, n)| *n == name)
        .map(|(nr, _)| *nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(name(libc::SYS_socket), Some("socket"));
        assert_eq!(name(libc::SYS_execve), Some("execve"));
        assert_eq!(number("io_uring_setup"), Some(libc::SYS_io_uring_setup));
        assert_eq!(name(100_000), None);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(name(2), Some("open"));
    }

    #[test]
    fn the_table_has_no_duplicate_numbers() {
        let mut all: Vec<_> = COMMON.iter().chain(ARCH_ONLY.iter()).collect();
        all.sort();
        for w in all.windows(2) {
            assert_ne!(w[0].0, w[1].0, "{} and {} share a number", w[0].1, w[1].1);
        }
    }
}
