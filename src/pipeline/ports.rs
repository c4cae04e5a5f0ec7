//! The small interfaces the pipeline drives: where results go ([`Publisher`]) and what runs a
//! function ([`Executor`]). The store's interface lives in [`crate::store`]. The pipeline knows
//! no gRPC, Redis or process types, so its tests drive it with real parts or simple doubles.

use crate::host::HostApi;
use crate::pool::{Execution, Job, Pool};
use std::future::Future;
use std::sync::Mutex;

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

/// Told when an activation waits for capacity of its own (its version's `maxConcurrency`) and
/// when it resumes: the codeQ worker gives the task's claim slot to other work meanwhile.
pub trait CapacityWait: Send + Sync {
    fn waiting(&self);
    fn resumed(&self);
}

/// For callers without claim slots (`run`, tests).
pub struct NoSlot;

impl CapacityWait for NoSlot {
    fn waiting(&self) {}
    fn resumed(&self) {}
}

/// Runs one job in a sandbox child.
pub trait Executor: Send + Sync + 'static {
    fn execute<H: HostApi>(&self, job: &Job, host: &H) -> impl Future<Output = Execution> + Send;
}

impl Executor for Pool {
    async fn execute<H: HostApi>(&self, job: &Job, host: &H) -> Execution {
        self.invoke(job, host).await
    }
}

/// One published message, as [`MemoryPublisher`] records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub topic: String,
    pub payload: serde_json::Value,
    pub idempotency_key: Option<String>,
    /// The trace context it was published with (empty when none).
    pub trace: TraceHeaders,
}

/// A publisher that keeps what it is given: for `run` and for tests of the pipeline, where the
/// queue is not what is under test. Honours idempotency keys like codeQ does.
#[derive(Default)]
pub struct MemoryPublisher {
    messages: Mutex<Vec<Published>>,
    /// When set, every publish fails as transient (a queue outage).
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryPublisher {
    pub fn messages(&self) -> Vec<Published> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn on_topic(&self, topic: &str) -> Vec<Published> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect()
    }
}

impl Publisher for MemoryPublisher {
    async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        idempotency_key: Option<String>,
    ) -> Result<(), PublishError> {
        self.publish_traced(topic, payload, idempotency_key, TraceHeaders::default())
            .await
    }

    async fn publish_traced(
        &self,
        topic: &str,
        payload: Vec<u8>,
        idempotency_key: Option<String>,
        trace: TraceHeaders,
    ) -> Result<(), PublishError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PublishError {
                transient: true,
                message: "publisher unavailable".into(),
            });
        }
        let payload = serde_json::from_slice(&payload).map_err(|e| PublishError {
            transient: false,
            message: format!("payload is not JSON: {e}"),
        })?;
        let mut m = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = &idempotency_key {
            if m.iter().any(|x| x.idempotency_key.as_ref() == Some(k)) {
                return Ok(());
            }
        }
        m.push(Published {
            topic: topic.to_string(),
            payload,
            idempotency_key,
            trace,
        });
        Ok(())
    }
}
