//! [`MemoryStore`]: the store of contract §4 in memory, with fault injection.

use crate::host::local::MemoryKv;
use crate::store::{
    chunk_logs, ActivationRecord, ActivationStatus, AliasRecord, RunningWrite, Store, StoreError,
    Terminal, UserKv, VersionMeta, LOG_CHUNK_BYTES,
};
use sandbox_proto::messages::InvocationResult;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The store's operations, to name the one a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    Ping,
    Alias,
    VersionMeta,
    Bundle,
    ActivationMeta,
    ActivationStatus,
    WriteRunning,
    WriteTerminal,
    WriteLogs,
    WriteResult,
    KvGet,
    KvSet,
    KvDel,
    Secrets,
}

/// What an injected fault does to the call it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails as an outage ([`StoreError::Unavailable`]) and changes nothing.
    Unavailable,
    /// The call is applied, then fails as an outage: the reply was lost (for a read, the same
    /// as [`Fault::Unavailable`]).
    LoseReply,
}

/// (tenant, namespace, function).
type Fn3 = (String, String, String);

#[derive(Default)]
struct Data {
    aliases: HashMap<(Fn3, String), AliasRecord>,
    metas: HashMap<(Fn3, u64), VersionMeta>,
    bundles: HashMap<(Fn3, u64), Vec<u8>>,
    /// (tenant, activation id) → (meta JSON, status).
    activations: HashMap<(String, String), (String, ActivationStatus)>,
    logs: HashMap<(String, String), Vec<String>>,
    /// (tenant, request id) → correlation value.
    results: HashMap<(String, String), InvocationResult>,
    /// (tenant, path) → a function's secret (`cs:secret:{tenant}:{path}`).
    secrets: HashMap<(String, String), String>,
    calls: HashMap<StoreOp, u32>,
    /// (operation, n-th call, fault).
    faults: Vec<(StoreOp, u32, Fault)>,
}

/// KVRocks as the pipeline sees it, in memory. The compare-and-set rules are those of the Lua
/// scripts in `store/redis.rs` (see [`crate::store`]): the running write never overwrites a
/// terminal status; the terminal write wins over an absent or running status, and a repeat of
/// exactly the winning write wins again.
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<Data>,
    kv: MemoryKv,
}

fn fn3(t: &str, ns: &str, f: &str) -> Fn3 {
    (t.to_string(), ns.to_string(), f.to_string())
}

fn outage(op: StoreOp) -> StoreError {
    StoreError::Unavailable(format!("injected fault in {op:?}"))
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the `n`-th call (1 = the first since the store was made) of `op` hit `fault`.
    pub fn fail_nth(&self, op: StoreOp, n: u32, fault: Fault) {
        self.lock().faults.push((op, n, fault));
    }

    /// Makes the next call of `op` hit `fault`.
    pub fn fail_next(&self, op: StoreOp, fault: Fault) {
        let mut d = self.lock();
        let n = d.calls.get(&op).copied().unwrap_or(0) + 1;
        d.faults.push((op, n, fault));
    }

    /// Calls of `op` so far (failed ones included).
    pub fn calls(&self, op: StoreOp) -> u32 {
        self.lock().calls.get(&op).copied().unwrap_or(0)
    }

    /// Counts one call of `op`; the fault it hits, if any.
    fn enter(&self, op: StoreOp) -> Option<Fault> {
        let mut d = self.lock();
        let n = d.calls.entry(op).or_insert(0);
        *n += 1;
        let n = *n;
        let i = d.faults.iter().position(|(o, k, _)| *o == op && *k == n)?;
        Some(d.faults.remove(i).2)
    }

    /// Publishes a version as the control plane does: bundle and meta (with the bundle's
    /// sha256 and `config`).
    pub fn put_version(
        &self,
        (t, ns, f): (&str, &str, &str),
        version: u64,
        bundle: Vec<u8>,
        config: serde_json::Value,
    ) {
        let meta = VersionMeta {
            version,
            sha256: sandbox_proto::bundle::sha256_hex(&bundle),
            config,
            published_at_ms: 1,
        };
        let mut d = self.lock();
        d.metas.insert((fn3(t, ns, f), version), meta);
        d.bundles.insert((fn3(t, ns, f), version), bundle);
    }

    /// Points `alias` of a function at `version`.
    /// Stores the secret `path` of `tenant`.
    pub fn put_secret(&self, tenant: &str, path: &str, value: &str) {
        self.lock()
            .secrets
            .insert((tenant.to_string(), path.to_string()), value.to_string());
    }

    pub fn put_alias(&self, (t, ns, f): (&str, &str, &str), alias: &str, version: u64) {
        let rec = AliasRecord {
            alias: alias.to_string(),
            version,
            updated_at_ms: 1,
        };
        self.lock()
            .aliases
            .insert((fn3(t, ns, f), alias.to_string()), rec);
    }

    /// The stored activation record and status.
    pub fn activation(
        &self,
        tenant: &str,
        aid: &str,
    ) -> Option<(ActivationRecord, ActivationStatus)> {
        let d = self.lock();
        let (json, status) = d.activations.get(&(tenant.to_string(), aid.to_string()))?;
        Some((serde_json::from_str(json).ok()?, *status))
    }

    /// The stored log lines (re-joined chunks) of an activation.
    pub fn logs(&self, tenant: &str, aid: &str) -> Option<Vec<String>> {
        self.lock()
            .logs
            .get(&(tenant.to_string(), aid.to_string()))
            .cloned()
    }

    /// The correlation value `cs:req:{tenant}:{request_id}:result`.
    pub fn correlation(&self, tenant: &str, request_id: &str) -> Option<InvocationResult> {
        self.lock()
            .results
            .get(&(tenant.to_string(), request_id.to_string()))
            .cloned()
    }
}

impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        match self.enter(StoreOp::Ping) {
            Some(_) => Err(outage(StoreOp::Ping)),
            None => Ok(()),
        }
    }

    async fn alias(
        &self,
        tenant: &str,
        namespace: &str,
        function: &str,
        alias: &str,
    ) -> Result<Option<AliasRecord>, StoreError> {
        if self.enter(StoreOp::Alias).is_some() {
            return Err(outage(StoreOp::Alias));
        }
        let key = (fn3(tenant, namespace, function), alias.to_string());
        Ok(self.lock().aliases.get(&key).cloned())
    }

    async fn secrets(
        &self,
        tenant: &str,
        paths: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        if self.enter(StoreOp::Secrets).is_some() {
            return Err(outage(StoreOp::Secrets));
        }
        let data = self.lock();
        Ok(paths
            .iter()
            .map(|p| data.secrets.get(&(tenant.to_string(), p.clone())).cloned())
            .collect())
    }

    async fn version_meta(
        &self,
        tenant: &str,
        namespace: &str,
        function: &str,
        version: u64,
    ) -> Result<Option<VersionMeta>, StoreError> {
        if self.enter(StoreOp::VersionMeta).is_some() {
            return Err(outage(StoreOp::VersionMeta));
        }
        let key = (fn3(tenant, namespace, function), version);
        Ok(self.lock().metas.get(&key).cloned())
    }

    async fn bundle(
        &self,
        tenant: &str,
        namespace: &str,
        function: &str,
        version: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if self.enter(StoreOp::Bundle).is_some() {
            return Err(outage(StoreOp::Bundle));
        }
        let key = (fn3(tenant, namespace, function), version);
        Ok(self.lock().bundles.get(&key).cloned())
    }

    async fn activation_meta(
        &self,
        tenant: &str,
        activation_id: &str,
    ) -> Result<Option<ActivationRecord>, StoreError> {
        if self.enter(StoreOp::ActivationMeta).is_some() {
            return Err(outage(StoreOp::ActivationMeta));
        }
        let key = (tenant.to_string(), activation_id.to_string());
        let d = self.lock();
        match d.activations.get(&key) {
            None => Ok(None),
            Some((json, _)) => {
                serde_json::from_str(json)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        key: format!("activation {activation_id}"),
                        why: e.to_string(),
                    })
            }
        }
    }

    async fn activation_status(
        &self,
        tenant: &str,
        activation_id: &str,
    ) -> Result<Option<ActivationStatus>, StoreError> {
        if self.enter(StoreOp::ActivationStatus).is_some() {
            return Err(outage(StoreOp::ActivationStatus));
        }
        let key = (tenant.to_string(), activation_id.to_string());
        Ok(self.lock().activations.get(&key).map(|(_, s)| *s))
    }

    async fn write_running(&self, record: &ActivationRecord) -> Result<RunningWrite, StoreError> {
        let fault = self.enter(StoreOp::WriteRunning);
        if fault == Some(Fault::Unavailable) {
            return Err(outage(StoreOp::WriteRunning));
        }
        let mut running = record.clone();
        running.status = ActivationStatus::Running;
        let json = serde_json::to_string(&running)
            .map_err(|e| StoreError::Invalid(format!("record does not serialise: {e}")))?;
        let key = (record.tenant.clone(), record.activation_id.clone());
        let written = {
            let mut d = self.lock();
            match d.activations.get(&key) {
                Some((_, s)) if s.is_terminal() => RunningWrite::AlreadyTerminal(*s),
                _ => {
                    d.activations.insert(key, (json, ActivationStatus::Running));
                    RunningWrite::Started
                }
            }
        };
        match fault {
            Some(_) => Err(outage(StoreOp::WriteRunning)),
            None => Ok(written),
        }
    }

    async fn write_terminal(&self, t: &Terminal<'_>) -> Result<bool, StoreError> {
        let fault = self.enter(StoreOp::WriteTerminal);
        if fault == Some(Fault::Unavailable) {
            return Err(outage(StoreOp::WriteTerminal));
        }
        let record = t.record;
        if !record.status.is_terminal() {
            return Err(StoreError::Invalid(format!(
                "terminal write of activation {} with status running",
                record.activation_id
            )));
        }
        let json = serde_json::to_string(record)
            .map_err(|e| StoreError::Invalid(format!("record does not serialise: {e}")))?;
        let key = (record.tenant.clone(), record.activation_id.clone());
        let won = {
            let mut d = self.lock();
            match d.activations.get(&key) {
                Some((stored, s)) if s.is_terminal() => *stored == json,
                _ => {
                    d.activations.insert(key.clone(), (json, record.status));
                    let chunks = chunk_logs(t.logs, LOG_CHUNK_BYTES);
                    if !chunks.is_empty() {
                        d.logs.insert(key, t.logs.to_vec());
                    }
                    d.results.insert(
                        (record.tenant.clone(), t.result.request_id.clone()),
                        t.result.clone(),
                    );
                    true
                }
            }
        };
        match fault {
            Some(_) => Err(outage(StoreOp::WriteTerminal)),
            None => Ok(won),
        }
    }

    async fn write_logs(
        &self,
        tenant: &str,
        activation_id: &str,
        lines: &[String],
    ) -> Result<usize, StoreError> {
        let fault = self.enter(StoreOp::WriteLogs);
        if fault == Some(Fault::Unavailable) {
            return Err(outage(StoreOp::WriteLogs));
        }
        let n = chunk_logs(lines, LOG_CHUNK_BYTES).len();
        if n > 0 {
            self.lock().logs.insert(
                (tenant.to_string(), activation_id.to_string()),
                lines.to_vec(),
            );
        }
        match fault {
            Some(_) => Err(outage(StoreOp::WriteLogs)),
            None => Ok(n),
        }
    }

    async fn write_result(
        &self,
        tenant: &str,
        result: &InvocationResult,
    ) -> Result<(), StoreError> {
        let fault = self.enter(StoreOp::WriteResult);
        if fault == Some(Fault::Unavailable) {
            return Err(outage(StoreOp::WriteResult));
        }
        self.lock().results.insert(
            (tenant.to_string(), result.request_id.clone()),
            result.clone(),
        );
        match fault {
            Some(_) => Err(outage(StoreOp::WriteResult)),
            None => Ok(()),
        }
    }
}

impl UserKv for MemoryStore {
    async fn kv_get(&self, tenant: &str, key: &str) -> Result<Option<String>, StoreError> {
        if self.enter(StoreOp::KvGet).is_some() {
            return Err(outage(StoreOp::KvGet));
        }
        self.kv.kv_get(tenant, key).await
    }

    async fn kv_set(
        &self,
        tenant: &str,
        key: &str,
        value_json: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        let fault = self.enter(StoreOp::KvSet);
        if fault == Some(Fault::Unavailable) {
            return Err(outage(StoreOp::KvSet));
        }
        self.kv.kv_set(tenant, key, value_json, ttl_seconds).await?;
        match fault {
            Some(_) => Err(outage(StoreOp::KvSet)),
            None => Ok(()),
        }
    }

    async fn kv_del(&self, tenant: &str, key: &str) -> Result<bool, StoreError> {
        let fault = self.enter(StoreOp::KvDel);
        if fault == Some(Fault::Unavailable) {
            return Err(outage(StoreOp::KvDel));
        }
        let existed = self.kv.kv_del(tenant, key).await?;
        match fault {
            Some(_) => Err(outage(StoreOp::KvDel)),
            None => Ok(existed),
        }
    }
}
