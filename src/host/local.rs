//! The host API of a local run (`cs-invoker-pool run`): the same [`ServiceHost`] as production,
//! with `cs.kv` in memory ([`MemoryKv`]) unless `--kv-url` names a real server, and
//! `cs.codeq.publish` printed to stderr as one envelope per line ([`StderrPublisher`]).
//! `cs.http.fetch` is the real fetcher with the production address policy, so a local run
//! behaves like production.

use super::http::{HttpConfig, HttpFetcher};
use super::service::ServiceHost;
use super::{HostApi, HostScope};
use crate::pipeline::ports::{PublishError, Publisher};
use crate::store::{StoreError, UserKv};
use sandbox_child::protocol::{HostError, HostOp, HostValue};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `cs:kv:{tenant}:{key}` in memory, with TTLs: the user KV of a local run.
#[derive(Default)]
pub struct MemoryKv {
    map: Mutex<HashMap<String, (String, Option<Instant>)>>,
}

impl MemoryKv {
    fn key(tenant: &str, key: &str) -> String {
        format!("cs:kv:{tenant}:{key}")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Option<Instant>)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl UserKv for MemoryKv {
    async fn kv_get(&self, tenant: &str, key: &str) -> Result<Option<String>, StoreError> {
        let k = Self::key(tenant, key);
        let mut map = self.lock();
        if matches!(map.get(&k), Some((_, Some(exp))) if *exp <= Instant::now()) {
            map.remove(&k);
        }
        Ok(map.get(&k).map(|(v, _)| v.clone()))
    }

    async fn kv_set(
        &self,
        tenant: &str,
        key: &str,
        value_json: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        if serde_json::from_str::<serde_json::Value>(value_json).is_err() {
            return Err(StoreError::Invalid(format!(
                "the value for \"{key}\" is not JSON"
            )));
        }
        let exp = ttl_seconds
            .filter(|s| *s > 0)
            .map(|s| Instant::now() + Duration::from_secs(s));
        self.lock()
            .insert(Self::key(tenant, key), (value_json.to_string(), exp));
        Ok(())
    }

    async fn kv_del(&self, tenant: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.lock().remove(&Self::key(tenant, key)).is_some())
    }
}

/// Prints each publish as one JSON line on stderr: what a local run does instead of codeQ.
#[derive(Default)]
pub struct StderrPublisher;

impl Publisher for StderrPublisher {
    async fn publish(
        &self,
        _topic: &str,
        payload: Vec<u8>,
        _idempotency_key: Option<String>,
    ) -> Result<(), PublishError> {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&payload);
        let _ = err.write_all(b"\n");
        Ok(())
    }
}

/// The host of a local run with the in-memory KV.
pub struct LocalHost(ServiceHost<MemoryKv, StderrPublisher>);

impl Default for LocalHost {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalHost {
    pub fn new() -> Self {
        Self::with_http(HttpFetcher::new(HttpConfig::default()))
    }

    pub fn with_http(http: HttpFetcher) -> Self {
        LocalHost(ServiceHost::new(
            Arc::new(MemoryKv::default()),
            Arc::new(StderrPublisher),
            Arc::new(http),
        ))
    }
}

impl HostApi for LocalHost {
    async fn call(&self, scope: &HostScope, op: HostOp) -> Result<HostValue, HostError> {
        self.0.call(scope, op).await
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The `RuntimePublish` envelope of SPEC §3 for one `cs.codeq.publish`.
pub fn runtime_publish_envelope(
    scope: &HostScope,
    topic: &str,
    payload: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "schema": "cs.envelope.v1",
        "id": format!("msg_{}", uuid::Uuid::new_v4()),
        "ts_ms": unix_ms(),
        "tenant": scope.tenant,
        "type": "RuntimePublish",
        "body": {
            "topic": topic,
            "payload": payload,
            "activation_id": scope.activation_id,
            "namespace": scope.namespace,
            "function": scope.function,
            "version": scope.version,
        },
    })
}
