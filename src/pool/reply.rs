//! The child's reply pipe (its stdout) as the supervisor reads it: a buffer of our own over the
//! non-blocking fd, read directly with `read(2)` while a frame is expected soon, and through
//! tokio's reactor (`AsyncFd`) once it is not.
//!
//! Why not tokio's `ChildStdout`: once a read there found the pipe empty, the next attempt
//! waits for the reactor to report the fd readable, i.e. an `epoll_wait` on some runtime thread
//! and a wake-up of the task, often on another thread — two futex calls and a context switch
//! per warm call, plus an idle vCPU's wake-up on these VMs. Here, a read that finds the pipe
//! empty first polls it for the [`Spin`] budget (yielding the CPU between attempts so that a
//! runnable child on the same CPU runs), and only then waits on the reactor. A warm call whose
//! answer comes within the budget is two syscalls on the supervisor's side (`write`, `read`)
//! on one thread. Sparse traffic makes the budget zero (see [`Spin`]): an idle pool spins not
//! at all.
//!
//! Everything read is untrusted: the length prefix is checked against
//! [`protocol::MAX_FRAME_FROM_CHILD`] before the buffer grows to hold the frame.

use super::failure::ChildFailure;
use super::spin::Spin;
use sandbox_proto::protocol::{self, FromChild};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;
use tokio::io::unix::AsyncFd;

/// Bytes read per `read(2)` at least (the buffer grows for larger frames, up to the limit).
const CHUNK: usize = 64 * 1024;

pub(crate) struct ReplyPipe {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
    /// `buf[start..end]` holds bytes read and not yet consumed.
    start: usize,
    end: usize,
    spin: Spin,
}

impl ReplyPipe {
    /// Takes over the read end of a child's stdout pipe (made non-blocking here: tokio hands
    /// `Command` pipes back blocking).
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(&fd)?;
        // SAFETY: `fd` is an open pipe fd that the AsyncFd owns from here on (an `OwnedFd`
        // is never closed or replaced behind its owner's back), so it stays the same open
        // description for the AsyncFd's whole life, as `register_with_interest` requires.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(ReplyPipe {
            fd,
            buf: vec![0u8; CHUNK],
            start: 0,
            end: 0,
            spin: Spin::new(),
        })
    }

    /// Reads one frame. Cancel-safe: bytes read stay in the buffer for the next call.
    pub(crate) async fn recv(&mut self) -> Result<FromChild, ChildFailure> {
        loop {
            if let Some(frame) = self.take_frame()? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// A whole frame from the buffer, if one is there.
    fn take_frame(&mut self) -> Result<Option<FromChild>, ChildFailure> {
        let have = self.end - self.start;
        if have < protocol::PREFIX_LEN {
            return Ok(None);
        }
        let mut prefix = [0u8; protocol::PREFIX_LEN];
        prefix.copy_from_slice(&self.buf[self.start..self.start + protocol::PREFIX_LEN]);
        // Checked before the buffer grows for the body.
        let len = protocol::body_len(prefix, protocol::MAX_FRAME_FROM_CHILD)?;
        let whole = protocol::PREFIX_LEN + len;
        if have < whole {
            if self.buf.len() - self.start < whole {
                // Move what we have to the front, and grow to hold the whole frame.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.buf.len() < whole {
                    self.buf.resize(whole, 0);
                }
            }
            return Ok(None);
        }
        let body = &self.buf[self.start + protocol::PREFIX_LEN..self.start + whole];
        let frame = protocol::decode_body(body)?;
        self.start += whole;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > CHUNK {
                // A large frame passed: do not keep its buffer for the child's whole life.
                self.buf.truncate(CHUNK);
                self.buf.shrink_to_fit();
            }
        }
        Ok(Some(frame))
    }

    /// Reads more bytes: spinning for the budget, then through the reactor.
    async fn fill(&mut self) -> Result<(), ChildFailure> {
        if self.end == self.buf.len() {
            // The frame in progress is already known to fit (take_frame grew the buffer), so
            // only consumed bytes are at the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let started = Instant::now();
        let budget = self.spin.budget();
        loop {
            match read_into(self.fd.get_ref(), &mut self.buf[self.end..]) {
                Ok(n) => return self.got(n, started),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ChildFailure::Io(e)),
            }
            if started.elapsed() >= budget {
                break;
            }
            // Lets a runnable child on this CPU run rather than spinning against it.
            std::thread::yield_now();
        }
        loop {
            let mut guard = self.fd.readable().await.map_err(ChildFailure::Io)?;
            let buf = &mut self.buf[self.end..];
            match guard.try_io(|fd| read_into(fd.get_ref(), buf)) {
                Ok(Ok(n)) => return self.got(n, started),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(ChildFailure::Io(e)),
                Err(_would_block) => continue,
            }
        }
    }

    fn got(&mut self, n: usize, started: Instant) -> Result<(), ChildFailure> {
        self.spin.record(started.elapsed());
        if n == 0 {
            return Err(ChildFailure::Gone);
        }
        self.end += n;
        Ok(())
    }
}

fn read_into(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable region of `buf.len()` bytes, and `fd` an open fd we
    // own for the duration of the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an fd we own; no pointers involved.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
