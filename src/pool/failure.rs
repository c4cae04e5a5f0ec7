//! [`ChildFailure`]: what can go wrong talking to a child over its pipes.
//!
//! Its own module because both sides of the pipe code need it: [`super::reply`] (the reading
//! half) produces it and [`super::child`] (the process, which owns a reply pipe) passes it on;
//! kept in either one, the other would import it back and the two would depend on each other.

use sandbox_proto::protocol::FrameError;

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
