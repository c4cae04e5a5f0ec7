//! Side effects performed by the supervisor on a child's behalf (contract §6 `cs.kv`, `cs.codeq`,
//! `cs.http`).
//!
//! A child can open nothing itself; it asks with a `HostCall` frame. The pool checks the call
//! against the *manifest the supervisor parsed* ([`capabilities::check`]) before any
//! [`HostApi`] implementation sees it, so a compromised child gains nothing by lying about its
//! capabilities.

pub mod capabilities;
pub mod http;
pub mod local;
pub mod service;

use sandbox_proto::manifest::Capabilities;
use sandbox_proto::protocol::{HostError, HostOp, HostValue};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Who is calling: the activation the call belongs to.
#[derive(Debug, Clone)]
pub struct HostScope {
    pub tenant: String,
    pub namespace: String,
    pub function: String,
    pub version: u64,
    pub activation_id: String,
    pub capabilities: Arc<Capabilities>,
    /// The activation's effective deadline; no host call may outlive it.
    pub deadline: Instant,
    /// `trigger.type` of the request (`http`, `schedule`, `cadence`, `api`):
    /// `cs.cadence.heartbeat` is allowed only for `cadence`.
    pub trigger: String,
    /// Extends the queue lease of the task this activation runs for; `None` when there is no
    /// queue (a local run), where a heartbeat is accepted and does nothing.
    pub heartbeat: Option<Heartbeat>,
    /// What the platform allows every function, whatever its manifest says.
    pub policy: Arc<HostPolicy>,
    /// What this activation has used so far.
    pub calls: Arc<CallCounters>,
    /// Its secrets and its trace context.
    pub context: Arc<ActivationContext>,
}

/// What an activation carries besides its identity and capabilities: the secrets its version
/// declares (values fetched for this activation only, `cs.secrets.get` and redaction) and the
/// trace context its effects propagate. Empty by default (tests, benches).
#[derive(Debug, Clone, Default)]
pub struct ActivationContext {
    pub secrets: crate::secrets::Secrets,
    pub trace: Option<crate::trace::TraceContext>,
}

/// `cs.cadence.heartbeat()`'s effect: a codeQ `Heartbeat` for the task running the activation.
/// The queue worker provides it; it rate-limits what reaches codeQ itself.
#[derive(Clone)]
pub struct Heartbeat(Arc<dyn Fn() + Send + Sync>);

impl Heartbeat {
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        Heartbeat(Arc::new(f))
    }

    pub fn beat(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Heartbeat")
    }
}

/// codeQ's message limit (grpc-go's and tonic's default): a gRPC message over it fails the
/// whole stream, so nothing the invoker sends may come near it.
pub const CODEQ_MAX_MESSAGE_BYTES: usize = 4 << 20;

/// Room left in a codeQ message for what wraps a function's publish: the `cs.envelope.v1`
/// (ids, timestamps, names) and the CreateTask fields (topic, idempotency key, trace context).
pub const ENVELOPE_RESERVE_BYTES: usize = 16 << 10;

/// Limits of the platform that no manifest can lift (the README's isolation section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    /// Topics no function may publish to, whatever its `publishTopics` say: the platform's
    /// own (`cs.invoke`, `cs.results`, the dead-letter topics, as configured). Every topic
    /// starting with [`RESERVED_TOPIC_PREFIX`] is reserved too.
    pub reserved_topics: Vec<String>,
    /// `cs.codeq.publish` calls one activation may make.
    pub max_publishes: u32,
    /// Largest `cs.codeq.publish` envelope, in bytes: codeQ's message limit minus the room
    /// its CreateTask needs.
    pub max_publish_bytes: usize,
}

/// Topics starting with this belong to the platform.
pub const RESERVED_TOPIC_PREFIX: &str = "cs.";

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            reserved_topics: ["cs.invoke", "cs.results", "cs.dlq.invoke", "cs.dlq.results"]
                .map(String::from)
                .to_vec(),
            max_publishes: 100,
            max_publish_bytes: CODEQ_MAX_MESSAGE_BYTES - ENVELOPE_RESERVE_BYTES,
        }
    }
}

impl HostPolicy {
    /// Whether `topic` belongs to the platform.
    pub fn is_reserved(&self, topic: &str) -> bool {
        topic.starts_with(RESERVED_TOPIC_PREFIX) || self.reserved_topics.iter().any(|t| t == topic)
    }
}

/// Per-activation use of the host API, shared by every call of the activation.
#[derive(Debug, Default)]
pub struct CallCounters {
    publishes: AtomicU32,
}

impl CallCounters {
    /// Counts one more publish; its index (1, 2, ...) within the activation, or the error
    /// thrown into the guest when the activation already made `max` of them. The index is
    /// what makes a re-run activation's publishes land once: it goes into their idempotency
    /// key.
    pub fn next_publish(&self, max: u32) -> Result<u32, HostError> {
        let n = self
            .publishes
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n > max {
            return Err(limit_exceeded(format!(
                "cs.codeq.publish: at most {max} publishes per activation"
            )));
        }
        Ok(n)
    }

    pub fn publishes(&self) -> u32 {
        self.publishes.load(Ordering::Relaxed)
    }
}

/// The error thrown into the guest for a call over a platform limit.
pub fn limit_exceeded(what: impl std::fmt::Display) -> HostError {
    HostError::limit_exceeded(what)
}

/// The implementation of host calls that passed the capability check.
pub trait HostApi: Send + Sync + 'static {
    fn call(
        &self,
        scope: &HostScope,
        op: HostOp,
    ) -> impl Future<Output = Result<HostValue, HostError>> + Send;
}

/// The error thrown into the guest for a call the supervisor cannot serve.
pub fn unavailable(what: &str) -> HostError {
    HostError::unavailable(what)
}
