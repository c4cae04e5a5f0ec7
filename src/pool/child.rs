//! One `sandbox-child` process as the supervisor sees it: the exec, the handshake, and framed
//! reads and writes over its pipes.
//!
//! Everything read from a child is untrusted. Frames are size-checked before any allocation
//! ([`protocol::body_len`]) and a child that breaks the protocol is killed by the caller; nothing
//! a child writes can make this module panic or block the supervisor beyond the caller's deadline.

use super::failure::{ChildFailure, ChildStartError};
use super::reply::ReplyPipe;
use super::spawn::{self, PidfdChild, SpawnError};
use crate::cgroup::ChildCgroup;
use sandbox_proto::protocol::{self, FromChild, Init, ToChild, PROTOCOL_VERSION};
use sandbox_proto::settings::ConfineSettings;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::Command;

/// The supervisor's end of a child's request pipe (fd 0 in the child).
pub type ChildStdin = pipe::Sender;

/// The process behind a [`ChildProcess`]: started by `Command` (with a `pre_exec` cgroup
/// attach), or by `clone3` straight into its cgroup v2 (see `pool::spawn`).
enum Proc {
    Command(tokio::process::Child),
    Pidfd(PidfdChild),
}

impl Proc {
    fn start_kill(&mut self) -> std::io::Result<()> {
        match self {
            Proc::Command(c) => c.start_kill(),
            Proc::Pidfd(c) => c.start_kill(),
        }
    }

    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match self {
            Proc::Command(c) => c.try_wait(),
            Proc::Pidfd(c) => c.try_wait(),
        }
    }

    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            Proc::Command(c) => c.wait().await,
            Proc::Pidfd(c) => c.wait().await,
        }
    }
}

/// Why a child stopped serving; also the `reason` label of the kill counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KillReason {
    Timeout,
    MemoryLimit,
    ProtocolBreach,
    Died,
    LoadFailed,
    Recycled,
    Idle,
    Evicted,
    Cancelled,
    Shutdown,
    /// The child attempted something its seccomp policy forbids.
    SandboxViolation,
}

impl KillReason {
    pub fn as_str(self) -> &'static str {
        match self {
            KillReason::Timeout => "timeout",
            KillReason::MemoryLimit => "memory_limit",
            KillReason::ProtocolBreach => "protocol_breach",
            KillReason::Died => "died",
            KillReason::LoadFailed => "load_failed",
            KillReason::Recycled => "recycled",
            KillReason::Idle => "idle",
            KillReason::Evicted => "evicted",
            KillReason::Cancelled => "cancelled",
            KillReason::Shutdown => "shutdown",
            KillReason::SandboxViolation => "sandbox_violation",
        }
    }

    pub const ALL: [KillReason; 11] = [
        KillReason::Timeout,
        KillReason::MemoryLimit,
        KillReason::ProtocolBreach,
        KillReason::Died,
        KillReason::LoadFailed,
        KillReason::Recycled,
        KillReason::Idle,
        KillReason::Evicted,
        KillReason::Cancelled,
        KillReason::Shutdown,
        KillReason::SandboxViolation,
    ];
}

pub struct ChildProcess {
    pub id: u64,
    pub pid: u32,
    /// The child's own cgroup, when the host has them; removed when the child is retired.
    pub cgroup: Option<Box<dyn ChildCgroup>>,
    proc: Proc,
    stdin: ChildStdin,
    stdout: ReplyPipe,
    /// Time from exec to the child's Ready frame.
    pub spawn_ready: Duration,
}

/// The nice value children run at (the supervisor's is 0).
const CHILD_NICE: libc::c_int = 10;

/// Most lines of child stderr forwarded to the supervisor's log, per child; the rest is drained.
const STDERR_LINES: usize = 200;
const STDERR_LINE_MAX: usize = 2000;

impl ChildProcess {
    /// Execs `bin pipe` inside `cgroup` (joined between fork and exec, so the child never runs
    /// a single instruction outside it), sends Init and waits for Ready (at most
    /// `ready_timeout`).
    pub async fn spawn(
        bin: &Path,
        id: u64,
        ready_timeout: Duration,
        confine: Option<ConfineSettings>,
        cgroup: Option<Box<dyn ChildCgroup>>,
    ) -> Result<Self, ChildStartError> {
        let started = Instant::now();
        let born_inside = match cgroup.as_ref().filter(|_| spawn::available()) {
            Some(cg) => cg.birth_dir().transpose().unwrap_or_else(|e| {
                tracing::debug!(error = %e, "cannot open the child's cgroup for clone3");
                None
            }),
            None => None,
        };
        let spawned = match born_inside {
            Some(dir) => match spawn::clone_into_cgroup(bin, &dir, CHILD_NICE) {
                Ok(s) => Some(s),
                Err(SpawnError::Unsupported(e)) => {
                    tracing::info!(
                        error = %e,
                        "children are attached to their cgroup after fork instead"
                    );
                    None
                }
                Err(SpawnError::Failed(source)) => {
                    return Err(ChildStartError::Exec {
                        bin: bin.display().to_string(),
                        source,
                    });
                }
            },
            None => None,
        };
        let (pid, proc, stdin, stdout, stderr) = match spawned {
            Some(s) => (s.pid, Proc::Pidfd(s.proc), s.stdin, s.stdout, s.stderr),
            None => Self::spawn_command(bin, cgroup.as_deref())?,
        };
        let stdin = pipe::Sender::from_owned_fd(stdin).map_err(ChildStartError::RequestPipe)?;
        let stderr = pipe::Receiver::from_owned_fd(stderr).map_err(ChildStartError::StderrPipe)?;
        tokio::spawn(forward_stderr(id, pid, stderr));
        let mut proc = proc;
        let stdout = match ReplyPipe::new(stdout) {
            Ok(s) => s,
            Err(e) => {
                let _ = proc.start_kill();
                return Err(ChildStartError::ReplyPipe(e));
            }
        };
        let mut child = ChildProcess {
            id,
            pid,
            cgroup,
            proc,
            stdin,
            stdout,

            spawn_ready: Duration::ZERO,
        };
        let handshake = async {
            child
                .send(&ToChild::Init(Init {
                    protocol_version: PROTOCOL_VERSION,
                    child_id: id,
                    confine,
                }))
                .await?;
            child.recv().await
        };
        let first = match tokio::time::timeout(ready_timeout, handshake).await {
            Err(_) => {
                child.kill();
                return Err(ChildStartError::NotReady {
                    id,
                    pid,
                    ms: ready_timeout.as_millis(),
                });
            }
            Ok(r) => r,
        };
        match first {
            Ok(FromChild::Ready(r)) if r.protocol_version == PROTOCOL_VERSION => {
                child.spawn_ready = started.elapsed();
                Ok(child)
            }
            Ok(FromChild::Ready(r)) => {
                child.kill();
                Err(ChildStartError::Version {
                    id,
                    got: r.protocol_version,
                })
            }
            Ok(FromChild::Fatal(f)) => {
                child.kill();
                Err(ChildStartError::Fatal {
                    id,
                    step: f.step,
                    message: f.message,
                })
            }
            Ok(other) => {
                child.kill();
                Err(ChildStartError::Unexpected {
                    id,
                    frame: frame_name(&other),
                })
            }
            Err(e) => {
                let status = child.exit_description(Duration::from_millis(200)).await;
                Err(ChildStartError::Handshake {
                    id,
                    failure: e,
                    status,
                })
            }
        }
    }

    /// The `Command` path: fork, join the cgroup in `pre_exec` (cgroup v1, or when clone3 is
    /// unavailable), exec.
    #[allow(clippy::type_complexity)]
    fn spawn_command(
        bin: &Path,
        cgroup: Option<&dyn ChildCgroup>,
    ) -> Result<(u32, Proc, OwnedFd, OwnedFd, OwnedFd), ChildStartError> {
        let mut cmd = Command::new(bin);
        cmd.arg("pipe")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let attach = cgroup.map(|cg| cg.pre_exec_attacher());
        // SAFETY: the closure runs in the forked child before exec; `attach_current` only
        // calls open/write/close on paths prepared before the fork (no allocation, no locks),
        // and setpriority is a plain syscall: both async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // Functions run below the supervisor's priority: a host full of busy children
                // must not delay the supervisor's deadlines, reads and answers. A failure only
                // leaves the default priority.
                libc::setpriority(libc::PRIO_PROCESS, 0, CHILD_NICE);
                match &attach {
                    Some(a) => a.attach_current(),
                    None => Ok(()),
                }
            });
        }
        let mut proc = cmd.spawn().map_err(|source| ChildStartError::Exec {
            bin: bin.display().to_string(),
            source,
        })?;
        let pid = proc.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (proc.stdin.take(), proc.stdout.take(), proc.stderr.take())
        else {
            return Err(ChildStartError::NoPipes);
        };
        let fds = (|| {
            Ok::<_, std::io::Error>((
                stdin.into_owned_fd()?,
                stdout.into_owned_fd()?,
                stderr.into_owned_fd()?,
            ))
        })()
        .map_err(ChildStartError::TakePipes)?;
        Ok((pid, Proc::Command(proc), fds.0, fds.1, fds.2))
    }

    pub async fn send(&mut self, msg: &ToChild) -> Result<(), ChildFailure> {
        send_on(&mut self.stdin, msg).await
    }

    /// Reads one frame; the length is checked against [`protocol::MAX_FRAME_FROM_CHILD`] before
    /// the body is allocated.
    pub async fn recv(&mut self) -> Result<FromChild, ChildFailure> {
        recv_on(&mut self.stdout).await
    }

    /// The two pipes apart, so that a conversation can read the child's next frame while it
    /// writes a reply (see `pool::conversation`).
    pub(super) fn pipes(&mut self) -> (&mut ChildStdin, &mut ReplyPipe) {
        (&mut self.stdin, &mut self.stdout)
    }

    /// Sends SIGKILL (idempotent; the process is reaped by [`Self::exit_description`] or by
    /// tokio's orphan reaper when dropped).
    pub fn kill(&mut self) {
        let _ = self.proc.start_kill();
    }

    /// `Some(status)` when the process has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.proc.try_wait().ok().flatten()
    }

    /// Waits up to `wait` for the process to exit and describes how it ended.
    pub async fn exit_description(&mut self, wait: Duration) -> String {
        match tokio::time::timeout(wait, self.proc.wait()).await {
            Ok(Ok(status)) => describe_status(status),
            Ok(Err(e)) => format!("exit status unknown: {e}"),
            Err(_) => "the process has not exited".into(),
        }
    }
}

/// Writes one frame to a child's request pipe.
pub(super) async fn send_on(stdin: &mut ChildStdin, msg: &ToChild) -> Result<(), ChildFailure> {
    let buf = protocol::encode(msg)?;
    write_frame_bytes(stdin, &buf).await
}

/// Writes an encoded frame to a child's request pipe.
pub(super) async fn write_frame_bytes(
    stdin: &mut ChildStdin,
    buf: &[u8],
) -> Result<(), ChildFailure> {
    stdin.write_all(buf).await.map_err(pipe_error)?;
    stdin.flush().await.map_err(pipe_error)?;
    Ok(())
}

/// Reads one frame from a child's reply pipe (see [`ReplyPipe`]).
pub(super) async fn recv_on(stdout: &mut ReplyPipe) -> Result<FromChild, ChildFailure> {
    stdout.recv().await
}

fn pipe_error(e: std::io::Error) -> ChildFailure {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe => ChildFailure::Gone,
        _ => ChildFailure::Io(e),
    }
}

/// `killed by signal 9 (SIGKILL)` / `exited with status 3`.
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        format!("killed by signal {sig} ({})", signal_name(sig))
    } else if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else {
        format!("ended: {status}")
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSYS => "SIGSYS",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}

pub fn frame_name(f: &FromChild) -> &'static str {
    match f {
        FromChild::Ready(_) => "Ready",
        FromChild::Loaded(_) => "Loaded",
        FromChild::HostCall(_) => "HostCall",
        FromChild::Log(_) => "Log",
        FromChild::Outcome(_) => "Outcome",
        FromChild::Fatal(_) => "Fatal",
        FromChild::HostCancel(_) => "HostCancel",
    }
}

/// Forwards a child's diagnostics to the supervisor's log, bounded in lines and line length so a
/// chatty or hostile child cannot flood it; the rest is read and dropped so the child never
/// blocks on a full stderr pipe.
async fn forward_stderr<R: AsyncRead + Unpin>(id: u64, pid: u32, stderr: R) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut forwarded = 0usize;
    loop {
        line.clear();
        match (&mut reader)
            .take(STDERR_LINE_MAX as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if forwarded < STDERR_LINES {
            forwarded += 1;
            let text = String::from_utf8_lossy(&line);
            tracing::warn!(child_id = id, pid, "sandbox-child: {}", text.trim_end());
            if forwarded == STDERR_LINES {
                tracing::warn!(
                    child_id = id,
                    pid,
                    "sandbox-child: further stderr output is dropped"
                );
            }
        }
    }
}
