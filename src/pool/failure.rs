//! [`ChildFailure`]: what can go wrong talking to a child over its pipes; [`ChildStartError`]: what
//! can go wrong starting one.
//!
//! Its own module because both sides of the pipe code need it: [`super::reply`] (the reading
//! half) produces it and [`super::child`] (the process, which owns a reply pipe) passes it on;
//! kept in either one, the other would import it back and the two would depend on each other.

use crate::cgroup::CgroupError;
use sandbox_proto::protocol::{FrameError, PROTOCOL_VERSION};

/// A failure talking to a child. The caller turns it into a `SandboxError` and kills the child.
/// `Display` is the text the `SandboxError` message quotes.
#[derive(Debug, thiserror::Error)]
pub enum ChildFailure {
    /// The child broke the protocol: oversized, malformed or out-of-order frame.
    #[error("protocol breach: {0}")]
    Breach(String),
    /// The pipe closed: the child exited or was killed.
    #[error("pipe closed")]
    Gone,
    #[error("pipe error: {0}")]
    Io(std::io::Error),
}

impl From<FrameError> for ChildFailure {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Closed => ChildFailure::Gone,
            FrameError::Io(e) => ChildFailure::Io(e),
            other => ChildFailure::Breach(other.to_string()),
        }
    }
}

/// A child could not be started (or did not complete its handshake). The invocation that
/// needed it gets a `SandboxError` quoting the `Display`; a stem refill logs it and backs off.
#[derive(Debug, thiserror::Error)]
pub enum ChildStartError {
    #[error("the pool is shut down")]
    ShutDown,
    #[error("cannot create the child's cgroup: {0}")]
    Cgroup(CgroupError),
    #[error("cannot start {bin}: {source}")]
    Exec { bin: String, source: std::io::Error },
    #[error("child pipes were not created")]
    NoPipes,
    #[error("cannot set up the child's request pipe: {0}")]
    RequestPipe(std::io::Error),
    #[error("cannot set up the child's stderr pipe: {0}")]
    StderrPipe(std::io::Error),
    #[error("cannot set up the child's reply pipe: {0}")]
    ReplyPipe(std::io::Error),
    #[error("cannot take the child's pipes: {0}")]
    TakePipes(std::io::Error),
    #[error("child {id} (pid {pid}) did not become ready within {ms} ms")]
    NotReady { id: u64, pid: u32, ms: u128 },
    #[error(
        "child {id} speaks protocol version {got}, this supervisor speaks {PROTOCOL_VERSION}: \
         install matching cs-invoker-pool and sandbox-child binaries"
    )]
    Version { id: u64, got: u32 },
    /// The child reported that a confinement (or other start-up) step failed.
    #[error("child {id} failed at start-up step `{step}`: {message}")]
    Fatal {
        id: u64,
        step: String,
        message: String,
    },
    #[error("child {id} sent {frame} before Ready")]
    Unexpected { id: u64, frame: &'static str },
    #[error("child {id} failed before Ready ({failure}); {status}")]
    Handshake {
        id: u64,
        failure: ChildFailure,
        status: String,
    },
}
