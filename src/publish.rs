//! What the supervisor sends to codeQ, apart from how it gets there: the `cs.envelope.v1`
//! wrapper of every message (contract §3), the [`Publisher`] port that carries envelopes to a
//! topic, and [`unix_ms`], the clock of envelope timestamps.
//!
//! A module of its own, depending on nothing else in the crate but the trace context type, because three layers build
//! envelopes — the pipeline (`InvocationResult`, `InvalidInvocationRequest`), the host API
//! (`RuntimePublish` for `cs.codeq.publish`) and the codeQ producer that implements
//! [`Publisher`] — and none of them should have to import another to do it.

use serde::Serialize;
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

/// `schema` of every envelope (contract §3).
pub const ENVELOPE_SCHEMA: &str = "cs.envelope.v1";

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One outgoing `cs.envelope.v1`: a fresh `msg_` id, the time of its making, the tenant it
/// concerns, its `type` and its `body`.
///
/// The fields are declared in alphabetical order so that the JSON is byte for byte what the
/// `serde_json::json!` maps this replaces produced (their keys are sorted).
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a, B: Serialize> {
    pub body: B,
    pub id: String,
    pub schema: &'static str,
    pub tenant: &'a str,
    pub ts_ms: u64,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl<'a, B: Serialize> Envelope<'a, B> {
    /// An envelope of type `kind` about `tenant`, carrying `body`.
    pub fn new(tenant: &'a str, kind: &'static str, body: B) -> Self {
        Envelope {
            body,
            id: format!("msg_{}", uuid::Uuid::new_v4()),
            schema: ENVELOPE_SCHEMA,
            tenant,
            ts_ms: unix_ms(),
            kind,
        }
    }

    /// The envelope as JSON bytes, as a [`Publisher`] takes it.
    pub fn to_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// A failed publish. `transient` failures (the queue is unreachable) make the pipeline answer
/// "retry later"; others are reported as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    pub transient: bool,
    pub message: String,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Publishes envelopes to codeQ topics (the codeQ producer stream implements it).
pub trait Publisher: Send + Sync + 'static {
    /// Publishes `payload` (an envelope, as JSON bytes) to `topic`. A retry with the same
    /// `idempotency_key` must not publish twice.
    fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        idempotency_key: Option<String>,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// [`Publisher::publish`] with a trace context for the CreateTask. A publisher that has
    /// nowhere to put one (stderr in a local run) drops it.
    fn publish_traced(
        &self,
        topic: &str,
        payload: Vec<u8>,
        idempotency_key: Option<String>,
        trace: TraceHeaders,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        let _ = trace;
        self.publish(topic, payload, idempotency_key)
    }
}

/// The W3C trace context a CreateTask carries (codeQ producer fields 10 `trace_parent` and 11
/// `trace_state`): the activation's `cs.invoke` span as the parent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    pub trace_parent: String,
    pub trace_state: String,
}

impl TraceHeaders {
    pub fn of(trace: &crate::trace::TraceContext) -> TraceHeaders {
        TraceHeaders {
            trace_parent: trace.traceparent(),
            trace_state: trace.state.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_serialises_like_the_json_maps_it_replaces() {
        let env = Envelope::new(
            "t_acme01",
            "RuntimePublish",
            serde_json::json!({"z": 1, "a": 2}),
        );
        let old = serde_json::json!({
            "schema": "cs.envelope.v1",
            "id": env.id,
            "ts_ms": env.ts_ms,
            "tenant": "t_acme01",
            "type": "RuntimePublish",
            "body": {"z": 1, "a": 2},
        });
        assert_eq!(env.to_vec().unwrap(), serde_json::to_vec(&old).unwrap());
        assert!(env.id.starts_with("msg_") && env.id.len() == 4 + 36);
    }
}
