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
use crate::publish::{Envelope, Publisher};
use crate::store::{StoreError, UserKv};
use sandbox_proto::protocol::{HostError, HostOp, HostValue};
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

/// The error a function sees for a failed `cs.kv` call. Infrastructure details (the store's
/// address, the server's own words) go to the operator's log, never to the function.
fn kv_error(scope: &HostScope, op: &str, e: StoreError) -> HostError {
    match e {
        StoreError::Invalid(why) => HostError::failed(format!("cs.kv.{op}: {why}")),
        StoreError::Full(why) => super::limit_exceeded(format!("cs.kv.{op}: {why}")),
        other => {
            tracing::warn!(
                tenant = %scope.tenant,
                activation_id = %scope.activation_id,
                error = %other,
                "cs.kv.{op} failed"
            );
            if other.is_transient() {
                unavailable(&format!(
                    "cs.kv.{op}: the store is unavailable; try again later"
                ))
            } else {
                HostError::failed(format!("cs.kv.{op}: the store could not serve the call"))
            }
        }
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
                .map_err(|e| kv_error(scope, "get", e)),
            HostOp::KvSet {
                key,
                value_json,
                ttl_seconds,
            } => self
                .kv
                .kv_set(&scope.tenant, &key, &value_json, ttl_seconds)
                .await
                .map(|()| HostValue::Done)
                .map_err(|e| kv_error(scope, "set", e)),
            HostOp::KvDel { key } => self
                .kv
                .kv_del(&scope.tenant, &key)
                .await
                .map(|_| HostValue::Done)
                .map_err(|e| kv_error(scope, "del", e)),
            HostOp::CodeqPublish {
                topic,
                payload_json,
            } => {
                let max = scope.policy.max_publish_bytes;
                if payload_json.len() > max {
                    return Err(super::limit_exceeded(format!(
                        "cs.codeq.publish: the payload takes {} bytes, over the limit of {max} \
                         bytes (codeQ's message limit less the envelope)",
                        payload_json.len()
                    )));
                }
                let payload = serde_json::from_str(&payload_json).map_err(|e| {
                    HostError::failed(format!("cs.codeq.publish: payload is not JSON: {e}"))
                })?;
                // Counted before anything is sent: the index names this publish in its
                // idempotency key, so a re-run of the activation (after a crash) publishes
                // each message once, and the cap holds even for calls that fail.
                let n = scope.calls.next_publish(scope.policy.max_publishes)?;
                let envelope = runtime_publish_envelope(scope, &topic, payload);
                let bytes = envelope.to_vec().map_err(|e| {
                    HostError::failed(format!("cs.codeq.publish: cannot encode the envelope: {e}"))
                })?;
                if bytes.len() > max {
                    return Err(super::limit_exceeded(format!(
                        "cs.codeq.publish: the message takes {} bytes with its envelope, over \
                         the limit of {max} bytes",
                        bytes.len()
                    )));
                }
                let key = publish_idempotency_key(&scope.activation_id, n);
                let trace = scope
                    .context
                    .trace
                    .as_ref()
                    .map(crate::publish::TraceHeaders::of)
                    .unwrap_or_default();
                match self
                    .publisher
                    .publish_traced(&topic, bytes, Some(key), trace)
                    .await
                {
                    Ok(()) => Ok(HostValue::Done),
                    Err(e) => {
                        tracing::warn!(
                            tenant = %scope.tenant,
                            activation_id = %scope.activation_id,
                            topic = %topic,
                            error = %e,
                            "cs.codeq.publish failed"
                        );
                        if e.transient {
                            Err(unavailable(
                                "cs.codeq.publish: the queue is unavailable; try again later",
                            ))
                        } else {
                            Err(HostError::failed(
                                "cs.codeq.publish: the queue refused the message",
                            ))
                        }
                    }
                }
            }
            op @ HostOp::HttpFetch { .. } => self.http.fetch_op(scope, op).await,
            HostOp::SecretGet { name } => scope.context.secrets.get(&name).map(HostValue::Text),
            HostOp::CadenceHeartbeat => {
                if let Some(h) = &scope.heartbeat {
                    h.beat();
                }
                Ok(HostValue::Done)
            }
        }
    }
}

/// The `RuntimePublish` envelope of contract §3 for one `cs.codeq.publish`.
pub fn runtime_publish_envelope<'a>(
    scope: &'a HostScope,
    topic: &str,
    payload: serde_json::Value,
) -> Envelope<'a, serde_json::Value> {
    let body = serde_json::json!({
        "topic": topic,
        "payload": payload,
        "activation_id": scope.activation_id,
        "namespace": scope.namespace,
        "function": scope.function,
        "version": scope.version,
    });
    Envelope::new(&scope.tenant, "RuntimePublish", body)
}

/// The idempotency key of an activation's `n`-th publish: the same for every run of the same
/// activation, so codeQ keeps one task per publish however many times the activation runs.
pub fn publish_idempotency_key(activation_id: &str, n: u32) -> String {
    format!("pub:{activation_id}:{n}")
}
