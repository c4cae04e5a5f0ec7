//! codeQ (contract §2): the worker stream that claims `cs.invoke` tasks ([`worker`]) and the
//! producer stream that publishes envelopes ([`producer`]). Both are one long-lived gRPC
//! bidirectional stream that reconnects with exponential backoff and jitter.
//!
//! The pipeline never sees these types: the worker hands each task's payload to a
//! [`worker::TaskHandler`] and turns its [`crate::pipeline::Answer`] into Result or Nack; the
//! producer implements [`crate::pipeline::ports::Publisher`].

pub mod producer;
pub mod worker;

/// The generated protobuf and gRPC client code (build.rs, from `proto/`).
pub mod pb {
    pub mod workerpb {
        tonic::include_proto!("workerpb");
    }
    pub mod producerpb {
        tonic::include_proto!("producerpb");
    }
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// The state of one stream that its handle and its background task share: open or not, the
/// last handshake refusal, and a wake-up for whoever waits for the first handshake.
#[derive(Default)]
pub(crate) struct StreamState {
    connected: AtomicBool,
    /// The last handshake refusal (bad token, permission), cleared by a successful handshake.
    refused: Mutex<Option<String>>,
    settled: Notify,
}

impl StreamState {
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// The handshake succeeded.
    pub(crate) fn set_open(&self) {
        self.connected.store(true, Ordering::SeqCst);
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.settled.notify_waiters();
    }

    /// The stream ended; `refused` when the server refused the handshake.
    pub(crate) fn set_down(&self, refused: Option<String>) {
        self.connected.store(false, Ordering::SeqCst);
        if let Some(why) = refused {
            *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        }
        self.settled.notify_waiters();
    }

    /// Waits up to `timeout` for the stream to open. [`WaitError::Refused`] is a configuration
    /// error (the handshake was refused, the address is not a valid target);
    /// [`WaitError::Unreachable`] says that `what` at `addr` did not answer in time.
    pub(crate) async fn wait_connected(
        &self,
        what: &str,
        addr: &str,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a change between the look and the wait is seen.
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.is_connected() {
                return Ok(());
            }
            if let Some(r) = self
                .refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                return Err(WaitError::Refused(r));
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return Err(WaitError::Unreachable(format!(
                    "{what} at {addr} not reachable within {} ms",
                    timeout.as_millis()
                )));
            }
        }
    }
}

/// Why a stream did not open in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// A configuration error that retrying cannot fix: the server refused the handshake (token,
    /// permission) or the address is not a valid target.
    #[error("{0}")]
    Refused(String),
    /// The server did not answer in time; it may come later.
    #[error("{0}")]
    Unreachable(String),
}

/// Reconnection delays: exponential from `min` to `max`, each with ±25 % jitter so a fleet of
/// invokers does not reconnect in lockstep after a codeQ restart.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The next delay; grows until [`Backoff::reset`].
    pub fn next_delay(&mut self) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        jitter(base)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// `d` ± 25 %, from the random bits of a v4 uuid (no extra RNG dependency for one number).
fn jitter(d: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0; // 0..1
    d.mul_f64(0.75 + r * 0.5)
}

/// `host:port` → the `http://host:port` URI tonic wants; a URI is kept as it is.
pub fn endpoint_uri(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else if let Some(port) = addr.strip_prefix(':') {
        format!("http://127.0.0.1:{port}")
    } else {
        format!("http://{addr}")
    }
}

/// Whether a gRPC status from the handshake means the configuration is wrong (token,
/// permission) rather than the server being away.
pub fn is_handshake_refusal(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied
            | tonic::Code::FailedPrecondition
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let d: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(75) && d[0] <= Duration::from_millis(125));
        assert!(d[7] >= Duration::from_millis(1500) && d[7] <= Duration::from_millis(2500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }

    #[test]
    fn addresses_become_uris() {
        assert_eq!(endpoint_uri("codeq:9091"), "http://codeq:9091");
        assert_eq!(endpoint_uri(":9091"), "http://127.0.0.1:9091");
        assert_eq!(endpoint_uri("http://x:1"), "http://x:1");
    }
}
