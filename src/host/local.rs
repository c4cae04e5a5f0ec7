//! The host API of a local run (`cs-invoker-pool run`): the same [`ServiceHost`] as production,
//! with `cs.kv` in memory ([`MemoryKv`]) unless `--kv-url` names a real server, and
//! `cs.codeq.publish` printed to stderr as one envelope per line ([`StderrPublisher`]).
//! `cs.http.fetch` is the real fetcher with the production address policy, so a local run
//! behaves like production.

use super::http::{HttpConfig, HttpFetcher};
use super::service::ServiceHost;
use super::{HostApi, HostScope};
use crate::publish::{PublishError, Publisher};
use crate::store::{StoreError, UserKv};
use sandbox_proto::protocol::{HostError, HostOp, HostValue};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `cs:kv:{tenant}:{key}` in memory, with TTLs: the user KV of a local run. Bounded (see
/// [`MemoryKv::MAX_BYTES`]): a local run must not let one activation grow the supervisor
/// without limit.
#[derive(Default)]
pub struct MemoryKv {
    inner: Mutex<KvMap>,
}

#[derive(Default)]
struct KvMap {
    /// Keyed by (tenant, key): a typed pair, never a joined string.
    map: HashMap<(String, String), (String, Option<Instant>)>,
    /// Bytes of keys and values held.
    bytes: usize,
}

impl KvMap {
    fn remove(&mut self, k: &(String, String)) -> Option<(String, Option<Instant>)> {
        let old = self.map.remove(k)?;
        self.bytes -= k.1.len() + old.0.len();
        Some(old)
    }
}

impl MemoryKv {
    /// Keys and values one local run may hold: 64 MiB.
    pub const MAX_BYTES: usize = 64 << 20;

    fn lock(&self) -> std::sync::MutexGuard<'_, KvMap> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl UserKv for MemoryKv {
    async fn kv_get(&self, tenant: &str, key: &str) -> Result<Option<String>, StoreError> {
        let k = (tenant.to_string(), key.to_string());
        let mut m = self.lock();
        if matches!(m.map.get(&k), Some((_, Some(exp))) if *exp <= Instant::now()) {
            m.remove(&k);
        }
        Ok(m.map.get(&k).map(|(v, _)| v.clone()))
    }

    async fn kv_set(
        &self,
        tenant: &str,
        key: &str,
        value_json: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        if serde_json::from_str::<serde::de::IgnoredAny>(value_json).is_err() {
            return Err(StoreError::Invalid(format!(
                "the value for \"{key}\" is not JSON"
            )));
        }
        let exp = ttl_seconds
            .filter(|s| *s > 0)
            .map(|s| Instant::now() + Duration::from_secs(s));
        let k = (tenant.to_string(), key.to_string());
        let mut m = self.lock();
        let cost = key.len() + value_json.len();
        let replaced = m.map.get(&k).map_or(0, |(v, _)| key.len() + v.len());
        if m.bytes - replaced + cost > Self::MAX_BYTES {
            return Err(StoreError::Full(format!(
                "the in-memory store of a local run holds at most {} MiB (use --kv-url for a \
                 real one)",
                Self::MAX_BYTES >> 20
            )));
        }
        m.remove(&k);
        m.bytes += cost;
        m.map.insert(k, (value_json.to_string(), exp));
        Ok(())
    }

    async fn kv_del(&self, tenant: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .remove(&(tenant.to_string(), key.to_string()))
            .is_some())
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
