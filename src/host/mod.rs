//! Side effects performed by the supervisor on a child's behalf (SPEC §6 `cs.kv`, `cs.codeq`,
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

use sandbox_child::manifest::Capabilities;
use sandbox_child::protocol::{HostError, HostOp, HostValue};
use std::future::Future;
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
    HostError {
        message: format!("CS_RUNTIME_UNAVAILABLE: {what}"),
    }
}
