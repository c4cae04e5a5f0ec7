//! The host API of a local run (`cs-invoker-pool run`): `cs.kv` in memory, `cs.codeq.publish`
//! printed to stderr as one envelope per line. Production backs the same calls with KVRocks and
//! codeQ; the capability checks in front of both are the same.

use super::{unavailable, HostApi, HostScope};
use sandbox_child::protocol::{HostError, HostOp, HostValue};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Default)]
pub struct LocalHost {
    /// `cs:kv:{tenant}:{key}` → (value JSON, expiry).
    kv: Mutex<HashMap<String, (String, Option<Instant>)>>,
}

impl LocalHost {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(scope: &HostScope, key: &str) -> String {
        format!("cs:kv:{}:{}", scope.tenant, key)
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

impl HostApi for LocalHost {
    async fn call(&self, scope: &HostScope, op: HostOp) -> Result<HostValue, HostError> {
        match op {
            HostOp::KvGet { key } => {
                let k = Self::key(scope, &key);
                let mut kv = self.kv.lock().unwrap_or_else(|p| p.into_inner());
                let expired = matches!(kv.get(&k), Some((_, Some(exp))) if *exp <= Instant::now());
                if expired {
                    kv.remove(&k);
                }
                Ok(HostValue::Kv(kv.get(&k).map(|(v, _)| v.clone())))
            }
            HostOp::KvSet {
                key,
                value_json,
                ttl_seconds,
            } => {
                let exp = ttl_seconds
                    .filter(|s| *s > 0)
                    .map(|s| Instant::now() + Duration::from_secs(s));
                let k = Self::key(scope, &key);
                let mut kv = self.kv.lock().unwrap_or_else(|p| p.into_inner());
                kv.insert(k, (value_json, exp));
                Ok(HostValue::Done)
            }
            HostOp::KvDel { key } => {
                let k = Self::key(scope, &key);
                let mut kv = self.kv.lock().unwrap_or_else(|p| p.into_inner());
                kv.remove(&k);
                Ok(HostValue::Done)
            }
            HostOp::CodeqPublish {
                topic,
                payload_json,
            } => {
                let payload = serde_json::from_str(&payload_json).map_err(|e| HostError {
                    message: format!("cs.codeq.publish: payload is not JSON: {e}"),
                })?;
                let line = runtime_publish_envelope(scope, &topic, payload).to_string();
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
                Ok(HostValue::Done)
            }
            HostOp::HttpFetch { .. } => Err(unavailable(
                "cs.http.fetch is not available in this build of cs-invoker-pool yet",
            )),
        }
    }
}
