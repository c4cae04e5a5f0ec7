//! The host API the pipeline gives a child: `cs.kv` against a [`UserKv`] (KVRocks in
//! production, memory in a local run), `cs.codeq.publish` through a [`Publisher`], and
//! `cs.http.fetch` through the [`HttpFetcher`] with its address policy.
//!
//! The capability checks happened before a call gets here (the pool runs
//! [`super::capabilities::check`] against the manifest the supervisor parsed), so this layer
//! only performs the call and turns infrastructure failures into errors the guest can catch:
//! a store or queue outage is `CS_RUNTIME_UNAVAILABLE: ...`, never a crash of the activation.

use super::http::HttpFetcher;
use super::{unavailable, HostApi, HostScope};
use crate::pipeline::ports::Publisher;
use crate::store::{StoreError, UserKv};
use sandbox_child::protocol::{HostError, HostOp, HostValue};
use std::sync::Arc;

/// `cs.kv`, `cs.codeq.publish` and `cs.http.fetch` backed by real services.
pub struct ServiceHost<K, P> {
    kv: Arc<K>,
    publisher: Arc<P>,
    http: Arc<HttpFetcher>,
}

impl<K, P> ServiceHost<K, P> {
    pub fn new(kv: Arc<K>, publisher: Arc<P>, http: Arc<HttpFetcher>) -> Self {
        ServiceHost {
            kv,
            publisher,
            http,
        }
    }
}

fn kv_error(op: &str, e: StoreError) -> HostError {
    match e {
        StoreError::Unavailable(why) => {
            unavailable(&format!("cs.kv.{op}: store unavailable ({why})"))
        }
        StoreError::Invalid(why) => HostError {
            message: format!("cs.kv.{op}: {why}"),
        },
        other => HostError {
            message: format!("cs.kv.{op}: {other}"),
        },
    }
}

impl<K: UserKv, P: Publisher> HostApi for ServiceHost<K, P> {
    async fn call(&self, scope: &HostScope, op: HostOp) -> Result<HostValue, HostError> {
        match op {
            HostOp::KvGet { key } => self
                .kv
                .kv_get(&scope.tenant, &key)
                .await
                .map(HostValue::Kv)
                .map_err(|e| kv_error("get", e)),
            HostOp::KvSet {
                key,
                value_json,
                ttl_seconds,
            } => self
                .kv
                .kv_set(&scope.tenant, &key, &value_json, ttl_seconds)
                .await
                .map(|()| HostValue::Done)
                .map_err(|e| kv_error("set", e)),
            HostOp::KvDel { key } => self
                .kv
                .kv_del(&scope.tenant, &key)
                .await
                .map(|_| HostValue::Done)
                .map_err(|e| kv_error("del", e)),
            HostOp::CodeqPublish {
                topic,
                payload_json,
            } => {
                let payload = serde_json::from_str(&payload_json).map_err(|e| HostError {
                    message: format!("cs.codeq.publish: payload is not JSON: {e}"),
                })?;
                let envelope = super::local::runtime_publish_envelope(scope, &topic, payload);
                let bytes = serde_json::to_vec(&envelope).map_err(|e| HostError {
                    message: format!("cs.codeq.publish: cannot encode the envelope: {e}"),
                })?;
                match self.publisher.publish(&topic, bytes, None).await {
                    Ok(()) => Ok(HostValue::Done),
                    Err(e) if e.transient => Err(unavailable(&format!(
                        "cs.codeq.publish: queue unavailable ({e})"
                    ))),
                    Err(e) => Err(HostError {
                        message: format!("cs.codeq.publish: {e}"),
                    }),
                }
            }
            op @ HostOp::HttpFetch { .. } => self.http.fetch_op(scope, op).await,
            HostOp::CadenceHeartbeat => {
                if let Some(h) = &scope.heartbeat {
                    h.beat();
                }
                Ok(HostValue::Done)
            }
        }
    }
}
