//! The SIGSYS reporter: turns a seccomp violation into an attributed death.
//!
//! The filter's default action is `SECCOMP_RET_TRAP`: the kernel does not run the syscall and
//! sends SIGSYS with the syscall number in `siginfo`. The handler here, using only
//! async-signal-safe code (no allocation, no locks, only `write`, `getpid` and `_exit`):
//!
//! 1. writes one complete protocol frame, `FromChild::Fatal(Fatal { step: "seccomp", message:
//!    "blocked syscall <nr> (<name>)" })`, to fd 1 in a single `write` (it is far below
//!    `PIPE_BUF`, so it cannot interleave with another write to the pipe);
//! 2. writes the same as a line to fd 2;
//! 3. `_exit(159)` ([`EXIT_BLOCKED_SYSCALL`]).
//!
//! One case is told apart: `tgkill(own pid, _, SIGABRT)` is what glibc's `abort()` does (Rust
//! aborts this way on a failed allocation, e.g. at the address-space limit). That is reported
//! as `Fatal { step: "abort", ... }` with exit status 134, not as an attack.
//!
//! The frame is encoded by hand (bincode 2, standard config: variant index and lengths as
//! varints, then the bytes; a big-endian `u32` length prefix); a unit test checks it decodes
//! with [`sandbox_proto::protocol::decode_body`].

use super::syscalls;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the handler writes the `Fatal` frame to fd 1. True under the supervisor, where fd 1
/// is the frame pipe; `sandbox-child run` turns it off because there fd 1 is the user's terminal
/// or file and the stderr line is the whole report.
static REPORT_FRAME: AtomicBool = AtomicBool::new(true);

/// Chooses whether a blocked syscall is also reported as a frame on fd 1 (see [`REPORT_FRAME`]).
pub fn set_report_frame(on: bool) {
    REPORT_FRAME.store(on, Ordering::Relaxed);
}

/// Exit status of a child killed for a blocked syscall.
pub const EXIT_BLOCKED_SYSCALL: i32 = 159;
/// Exit status of a child that called `abort()` under seccomp (128 + SIGABRT).
pub const EXIT_ABORT: i32 = 134;
/// Exit status of a child whose native (Rust) allocation failed: out of memory, reported as
/// `Fatal { step: "memory", ... }` first (see [`die_out_of_memory`]).
pub const EXIT_OUT_OF_MEMORY: i32 = 160;

/// Ends the process after a native allocation of `size` bytes failed (the address-space limit
/// or the kernel refused it): reports `Fatal { step: "memory", ... }` on fd 1 (under the
/// supervisor) and a line on fd 2, then `_exit(`[`EXIT_OUT_OF_MEMORY`]`)`. Allocates nothing:
/// it runs where the allocator just failed. The supervisor reports the activation as
/// `MemoryLimit`, where Rust's own handler would have aborted (an unattributed `SIGABRT`).
pub fn die_out_of_memory(size: usize) -> ! {
    let mut message = StackBuf::<96>::new();
    message.push(b"native allocation of ");
    message.push_decimal(libc::c_long::try_from(size).unwrap_or(libc::c_long::MAX));
    message.push(b" bytes failed");
    if REPORT_FRAME.load(Ordering::Relaxed) {
        if let Some(frame) = fatal_frame(b"memory", message.as_slice()) {
            let f = frame.as_slice();
            // SAFETY: writing a live stack buffer to fd 1 (the frame pipe).
            unsafe { libc::write(1, f.as_ptr().cast(), f.len()) };
        }
    }
    let mut line = StackBuf::<160>::new();
    line.push(b"sandbox-child: memory: ");
    line.push(message.as_slice());
    line.push(b"\n");
    let l = line.as_slice();
    // SAFETY: as above, to fd 2.
    unsafe { libc::write(2, l.as_ptr().cast(), l.len()) };
    // SAFETY: _exit ends the process without running any Rust code (nothing may allocate).
    unsafe { libc::_exit(EXIT_OUT_OF_MEMORY) }
}

/// Index of `FromChild::Fatal` among the variants of `FromChild`.
const FROM_CHILD_FATAL: u8 = 5;
/// `SYS_SECCOMP`, the `si_code` of a seccomp SIGSYS.
const SYS_SECCOMP: i32 = 1;
/// Big enough for the prefix, the step and the longest message (names are short).
const FRAME_CAP: usize = 192;

/// Installs the handler for SIGSYS and makes sure SIGSYS is not blocked.
pub fn install() -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid starting value (no handler, empty mask, no
    // flags); the fields are filled below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_sigsys as *const () as libc::sighandler_t;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: sa_mask is a live sigset_t inside `sa`; block every other signal while the
    // handler runs.
    unsafe { libc::sigfillset(&mut sa.sa_mask) };
    // SAFETY: `sa` is fully initialised and the handler is async-signal-safe (see on_sigsys).
    if unsafe { libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: an all-zero sigset_t is valid storage for sigemptyset to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live sigset_t; the calls only touch it and the signal mask.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGSYS);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A fixed-size byte buffer on the stack; writes past the end are dropped.
struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> StackBuf<N> {
    const fn new() -> Self {
        StackBuf {
            buf: [0; N],
            len: 0,
            overflowed: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len == N {
                self.overflowed = true;
                return;
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
    }

    fn push_decimal(&mut self, v: libc::c_long) {
        if v < 0 {
            self.push(b"-");
        }
        let mut v = v.unsigned_abs();
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    /// bincode 2 varint of a length (`usize` → u64).
    fn push_varint(&mut self, v: usize) {
        let v = v as u64;
        if v < 251 {
            self.push(&[v as u8]);
        } else if v <= u16::MAX as u64 {
            self.push(&[251]);
            self.push(&(v as u16).to_le_bytes());
        } else if v <= u32::MAX as u64 {
            self.push(&[252]);
            self.push(&(v as u32).to_le_bytes());
        } else {
            self.push(&[253]);
            self.push(&v.to_le_bytes());
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Encodes `FromChild::Fatal(Fatal { step, message })` as one frame (prefix + body) into a
/// stack buffer. Returns `None` if it does not fit (never for the handler's messages).
fn fatal_frame(step: &[u8], message: &[u8]) -> Option<StackBuf<FRAME_CAP>> {
    let mut body = StackBuf::<FRAME_CAP>::new();
    body.push(&[FROM_CHILD_FATAL]);
    body.push_varint(step.len());
    body.push(step);
    body.push_varint(message.len());
    body.push(message);
    if body.overflowed {
        return None;
    }
    let mut frame = StackBuf::<FRAME_CAP>::new();
    frame.push(&(body.len as u32).to_be_bytes());
    frame.push(body.as_slice());
    (!frame.overflowed).then_some(frame)
}

/// `blocked syscall <nr> (<name>)`.
fn blocked_message(nr: libc::c_long) -> StackBuf<96> {
    let mut m = StackBuf::<96>::new();
    m.push(b"blocked syscall ");
    m.push_decimal(nr);
    m.push(b" (");
    m.push(
        syscalls::name(nr as libc::c_long)
            .unwrap_or("unknown")
            .as_bytes(),
    );
    m.push(b")");
    m
}

/// The syscall number of a seccomp SIGSYS. In the kernel's `siginfo` the union starts after
/// three ints padded to 16 bytes on 64-bit targets, and `_sigsys` is `{ void *call_addr; int
/// syscall; unsigned arch; }`: the number is the int at byte 24 on x86_64 and aarch64 alike.
///
/// # Safety
/// `info` must point to the `siginfo_t` the kernel passed to an SA_SIGINFO handler.
#[cfg(target_pointer_width = "64")]
unsafe fn siginfo_syscall(info: *const libc::siginfo_t) -> Option<libc::c_long> {
    let base = info.cast::<u8>();
    // SAFETY: the caller guarantees a kernel siginfo (128 bytes); offsets 8 and 24 are in it.
    let (code, nr) = unsafe {
        (
            base.add(8).cast::<i32>().read_unaligned(),
            base.add(24).cast::<i32>().read_unaligned(),
        )
    };
    (code == SYS_SECCOMP).then_some(nr.into())
}

/// The first and third syscall arguments of the trapped call, from the saved registers.
///
/// # Safety
/// `ctx` must be the `ucontext_t` the kernel passed to an SA_SIGINFO handler.
unsafe fn trapped_args(ctx: *const libc::c_void) -> (libc::c_long, libc::c_long) {
    let uc = ctx.cast::<libc::ucontext_t>();
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the caller guarantees a kernel ucontext; gregs holds the syscall registers.
        let g = unsafe { &(*uc).uc_mcontext.gregs };
        (g[libc::REG_RDI as usize], g[libc::REG_RDX as usize])
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: the caller guarantees a kernel ucontext; regs[0..6] are the arguments.
        let r = unsafe { &(*uc).uc_mcontext.regs };
        (r[0] as libc::c_long, r[2] as libc::c_long)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = uc;
        (-1, -1)
    }
}

/// The SIGSYS handler. Async-signal-safe: stack buffers, `write`, `getpid`, `_exit`.
extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let nr = unsafe { siginfo_syscall(info) }.unwrap_or(-1);
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    let (arg0, arg2) = unsafe { trapped_args(ctx) };
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    let own_pid = libc::c_long::from(unsafe { libc::getpid() });

    let blocked = blocked_message(nr);
    let aborted =
        nr == libc::SYS_tgkill && arg0 == own_pid && arg2 == libc::c_long::from(libc::SIGABRT);
    let (step, status): (&[u8], i32) = if aborted {
        (b"abort", EXIT_ABORT)
    } else {
        (b"seccomp", EXIT_BLOCKED_SYSCALL)
    };
    let mut message = StackBuf::<128>::new();
    if aborted {
        message.push(b"the child called abort() (e.g. a failed allocation); ");
    }
    message.push(blocked.as_slice());

    // An atomic load is async-signal-safe.
    let frame = if REPORT_FRAME.load(Ordering::Relaxed) {
        fatal_frame(step, message.as_slice())
    } else {
        None
    };
    if let Some(frame) = frame {
        let f = frame.as_slice();
        // SAFETY: writing a live stack buffer; write is async-signal-safe.
        unsafe { libc::write(1, f.as_ptr().cast(), f.len()) };
    }
    let mut line = StackBuf::<192>::new();
    line.push(b"sandbox-child: ");
    line.push(step);
    line.push(b": ");
    line.push(message.as_slice());
    line.push(b"\n");
    let l = line.as_slice();
    // SAFETY: as above.
    unsafe { libc::write(2, l.as_ptr().cast(), l.len()) };
    // SAFETY: _exit is async-signal-safe and ends the process without running any Rust code.
    unsafe { libc::_exit(status) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_proto::protocol::{decode_body, Fatal, FromChild, PREFIX_LEN};

    fn decode(frame: &[u8]) -> FromChild {
        let len = u32::from_be_bytes(frame[..PREFIX_LEN].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - PREFIX_LEN);
        decode_body(&frame[PREFIX_LEN..]).unwrap()
    }

    #[test]
    fn hand_encoded_fatal_frame_decodes() {
        let msg = blocked_message(libc::SYS_socket);
        assert_eq!(
            std::str::from_utf8(msg.as_slice()).unwrap(),
            format!("blocked syscall {} (socket)", libc::SYS_socket)
        );
        let frame = fatal_frame(b"seccomp", msg.as_slice()).unwrap();
        assert_eq!(
            decode(frame.as_slice()),
            FromChild::Fatal(Fatal {
                step: "seccomp".into(),
                message: format!("blocked syscall {} (socket)", libc::SYS_socket),
            })
        );
        // The same bytes the real encoder produces.
        let real = sandbox_proto::protocol::encode(&FromChild::Fatal(Fatal {
            step: "seccomp".into(),
            message: format!("blocked syscall {} (socket)", libc::SYS_socket),
        }))
        .unwrap();
        assert_eq!(frame.as_slice(), &real[..]);
    }

    #[test]
    fn unknown_and_negative_numbers() {
        let m = blocked_message(99_999);
        assert_eq!(m.as_slice(), b"blocked syscall 99999 (unknown)");
        let m = blocked_message(-1);
        assert_eq!(m.as_slice(), b"blocked syscall -1 (unknown)");
        let m = blocked_message(0);
        assert!(m.as_slice().starts_with(b"blocked syscall 0 ("));
    }

    #[test]
    fn longest_messages_fit() {
        let mut message = StackBuf::<128>::new();
        message.push(b"the child called abort() (e.g. a failed allocation); ");
        message.push(blocked_message(libc::c_long::MIN + 1).as_slice());
        let frame = fatal_frame(b"abort", message.as_slice()).unwrap();
        match decode(frame.as_slice()) {
            FromChild::Fatal(f) => assert!(f.message.starts_with("the child called abort()")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn varints_match_bincode() {
        for n in [0usize, 1, 250, 251, 300, 65535, 65536, 1 << 33] {
            let mut b = StackBuf::<16>::new();
            b.push_varint(n);
            let real = bincode::encode_to_vec(n as u64, bincode::config::standard()).unwrap();
            assert_eq!(b.as_slice(), &real[..], "{n}");
        }
    }
}
