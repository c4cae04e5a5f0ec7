//! Test doubles of the pipeline's ports, for tests and benches only (cargo feature
//! `test-support`; the crate's own tests and benches turn it on through a dev-dependency on
//! the crate itself, so a release build never contains them).
//!
//! - [`MemoryPublisher`] records what is published and honours idempotency keys like codeQ;
//! - [`MemoryStore`] is the KVRocks layout of contract §4 in memory with the same
//!   compare-and-set rules as the Lua scripts of `store/redis.rs`, plus fault injection: the
//!   n-th call of an operation can fail as an outage ([`Fault::Unavailable`]) or apply its write
//!   and then lose the reply ([`Fault::LoseReply`], a store that stalled past our timeout);
//! - [`FakeExecutor`] answers for a sandbox child without starting one, can hold every
//!   execution until released, and records what it was given.
//!
//! They exist so that the pipeline's decisions (retry or not, who wins the terminal write, which
//! permit first, what the deadline is) are tested in milliseconds; that redis and real children
//! behave as these doubles say is what `tests/store.rs` and `tests/pipeline.rs` check.

mod executor;
mod store;

pub use executor::{ok_result, FakeExecutor, SeenJob};
pub use store::{Fault, MemoryStore, StoreOp};

use crate::publish::{PublishError, Publisher, TraceHeaders};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

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
    pub fail: AtomicBool,
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
        if self.fail.load(Ordering::SeqCst) {
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
