//! Step `seccomp`: the allowlist of `seccomp/<arch>.json`, compiled to BPF by `build.rs`.
//!
//! Anything not on the list traps (SIGSYS), and [`super::sigsys`] reports it. The program
//! also refuses (kills the process for) any syscall made with another architecture's calling
//! convention, and the x32 ABI's numbers (`nr | 0x4000_0000`) match no rule, so they trap.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/seccomp_filter.rs"));
}

/// The syscalls the policy allows, in the order of the JSON file.
pub use generated::ALLOWED;
/// The compiled BPF program for the target architecture (empty when there is no policy).
pub use generated::FILTER;
/// The architecture `FILTER` was compiled for.
pub use generated::POLICY_ARCH;

/// Installs the SIGSYS reporter, then the filter (which also sets no_new_privs).
pub(super) fn install() -> Result<String, String> {
    if FILTER.is_empty() {
        return Err(format!(
            "no seccomp policy for {} (only x86_64 and aarch64 have one)",
            std::env::consts::ARCH
        ));
    }
    prewarm_timezone();
    super::sigsys::install().map_err(|e| format!("installing the SIGSYS handler: {e}"))?;
    seccompiler::apply_filter(FILTER).map_err(|e| format!("applying the filter: {e}"))?;
    Ok(format!(
        "{} allowlist applied ({} syscalls, {} BPF instructions); anything else: SIGSYS → \
         Fatal frame, exit {}",
        POLICY_ARCH,
        ALLOWED.len(),
        FILTER.len(),
        super::sigsys::EXIT_BLOCKED_SYSCALL
    ))
}

/// glibc reads the timezone file (`openat`) the first time local time is asked for, which
/// QuickJS's `Date` does. Do it now, while files may still be opened: with the environment
/// cleared and the root empty there is no `/etc/localtime`, so local time is UTC from here on.
fn prewarm_timezone() {
    let t: libc::time_t = 0;
    // SAFETY: an all-zero tm is valid storage for localtime_r to fill.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live values of the right types.
    unsafe { libc::localtime_r(&t, &mut tm) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confine::syscalls;

    // Classic BPF, as much of it as seccompiler emits.
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_ALU_AND_K: u16 = 0x54;
    const BPF_JMP_JA: u16 = 0x05;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_JMP_JGT_K: u16 = 0x25;
    const BPF_JMP_JGE_K: u16 = 0x35;
    const BPF_RET_K: u16 = 0x06;

    /// `struct seccomp_data` as the filter sees it.
    struct Data {
        nr: u32,
        arch: u32,
        args: [u64; 6],
    }

    impl Data {
        fn word(&self, off: u32) -> u32 {
            match off {
                0 => self.nr,
                4 => self.arch,
                8 | 12 => 0, // instruction pointer
                o if (16..64).contains(&o) => {
                    let a = self.args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                o => panic!("load from offset {o}"),
            }
        }
    }

    /// Runs the program over `data` and returns the action.
    fn run(prog: &[seccompiler::sock_filter], data: &Data) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = &prog[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => acc = data.word(i.k),
                BPF_ALU_AND_K => acc &= i.k,
                BPF_JMP_JA => pc += i.k as usize,
                BPF_JMP_JEQ_K | BPF_JMP_JGT_K | BPF_JMP_JGE_K => {
                    let t = match i.code {
                        BPF_JMP_JEQ_K => acc == i.k,
                        BPF_JMP_JGT_K => acc > i.k,
                        _ => acc >= i.k,
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
                BPF_RET_K => return i.k,
                c => panic!("unexpected BPF opcode {c:#x}"),
            }
        }
    }

    fn arch() -> u32 {
        if cfg!(target_arch = "x86_64") {
            62 | 0xC000_0000
        } else {
            183 | 0xC000_0000
        }
    }

    fn verdict(nr: i64, args: [u64; 6]) -> u32 {
        run(
            FILTER,
            &Data {
                nr: nr as u32,
                arch: arch(),
                args,
            },
        )
    }

    #[test]
    fn compiled_filter_matches_the_policy() {
        assert_eq!(POLICY_ARCH, std::env::consts::ARCH);
        assert!(!ALLOWED.is_empty());
        for name in ALLOWED {
            let nr = syscalls::number(name)
                .unwrap_or_else(|| panic!("{name} is allowed but missing from the name table"));
            assert_eq!(
                verdict(nr, [0; 6]),
                libc::SECCOMP_RET_ALLOW,
                "{name} should be allowed"
            );
        }
    }

    #[test]
    fn forbidden_syscalls_trap() {
        let forbidden = [
            "socket",
            "connect",
            "execve",
            "execveat",
            "clone",
            "clone3",
            "ptrace",
            "mount",
            "umount2",
            "unshare",
            "setns",
            "bpf",
            "keyctl",
            "add_key",
            "io_uring_setup",
            "kill",
            "tgkill",
            "setuid",
            "setgid",
            "openat",
            "openat2",
            "chroot",
            "pivot_root",
            "prctl",
            "seccomp",
            "rt_sigaction",
            "perf_event_open",
            "userfaultfd",
            "process_vm_writev",
            "memfd_create",
            "pkey_mprotect",
            #[cfg(target_arch = "x86_64")]
            "open",
            #[cfg(target_arch = "x86_64")]
            "creat",
            #[cfg(target_arch = "x86_64")]
            "fork",
            #[cfg(target_arch = "x86_64")]
            "vfork",
        ];
        for name in forbidden {
            let nr = syscalls::number(name).unwrap();
            assert_eq!(verdict(nr, [0; 6]), libc::SECCOMP_RET_TRAP, "{name}");
        }
        // Unknown numbers and the x32 ABI trap too.
        assert_eq!(verdict(999, [0; 6]), libc::SECCOMP_RET_TRAP);
        assert_eq!(
            verdict(libc::SYS_read | 0x4000_0000, [0; 6]),
            libc::SECCOMP_RET_TRAP
        );
    }

    #[test]
    fn executable_mappings_trap() {
        let prot_rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let prot_rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        for nr in [libc::SYS_mmap, libc::SYS_mprotect] {
            assert_eq!(
                verdict(nr, [0, 4096, prot_rw, 0, 0, 0]),
                libc::SECCOMP_RET_ALLOW
            );
            assert_eq!(
                verdict(nr, [0, 4096, prot_rx, 0, 0, 0]),
                libc::SECCOMP_RET_TRAP
            );
        }
    }

    #[test]
    fn another_architecture_is_killed() {
        let data = Data {
            nr: libc::SYS_read as u32,
            arch: 3 | 0x4000_0000, // i386
            args: [0; 6],
        };
        assert_eq!(run(FILTER, &data), libc::SECCOMP_RET_KILL_PROCESS);
    }
}
