//! The KVRocks store (contract §4): function versions and aliases to read, activation records, log
//! chunks, the correlation key and the user KV of `cs.kv` to write.
//!
//! The pipeline and the host API are written against the [`Store`] and [`UserKv`] traits and
//! know no Redis types; [`RedisStore`] implements both over one multiplexed connection.
//!
//! # Traits
//! Methods return `impl Future<Output = …> + Send` (return-position `impl Trait` in traits,
//! as the pipeline's ports do): no boxing, and `Send`, so a task that awaits them can be
//! spawned on the multi-threaded runtime. The traits are therefore not object-safe; the pipeline
//! takes the store as a generic parameter.
//!
//! # Errors
//! [`StoreError::Unavailable`] is transient (connection refused, timeout, reset, `LOADING`,
//! authentication refused, any server error that is not about the data): the caller answers
//! "retry later" and writes nothing terminal. A missing key is not an error: reads return
//! `Ok(None)`. [`StoreError::Corrupt`] is a stored value that cannot be used (bad JSON, wrong
//! type, a bundle over 16 MiB): retrying will not help. [`StoreError::Invalid`] is a caller
//! error (a `:` in a tenant or name, an empty key, a terminal write of status `running`).
//!
//! # Activation writes
//! - [`Store::write_running`] sets meta and status (`running`) with the activation TTL **unless
//!   the status is already terminal**, in which case it writes nothing and returns
//!   [`RunningWrite::AlreadyTerminal`]. contract §4 describes this write as a MULTI of two SETs; it
//!   is one Lua script instead (EVALSHA, EVAL on `NOSCRIPT`) so that a delivery that read "no
//!   record" just before another delivery finished cannot put a terminal record back to
//!   `running` and win the compare-and-set a second time.
//! - [`Store::begin`] is steps 2, 3 and 6 in one store step when the version can be known
//!   before the reads: the status read, the alias read, and the running write, which is made
//!   only when the status is not terminal, the request names its version or the alias still
//!   holds exactly what it held when last read ([`AliasSeen`]), and the caller asked for it. It
//!   saves a sequential round trip per activation: on Redis it is one Lua script, so the running
//!   write cannot interleave with another delivery's terminal write between the read and the
//!   write, as in the running write's own script. The default implementation (for stores without
//!   scripts) makes the same calls one after the other.
//! - [`Store::write_terminal`] is the compare-and-set: one Lua script that writes status and
//!   meta — **and, in the same atomic step, the log chunks with their index and the correlation
//!   key** — only if the status is `running` **or absent**, and returns whether it won. One step,
//!   because a compare-and-set whose reply is lost (the store stalled past our timeout, then
//!   applied it) leaves the activation terminal: the redelivery only republishes, so logs
//!   written in a later step would be lost for good. Absent is
//!   accepted because the terminal errors found before execution (unknown alias or version, bad
//!   bundle, deadline passed before execution) have no running record, and because a running
//!   record can only be missing when it expired, which a terminal record may replace. A status
//!   that is already terminal loses, and nothing is changed — except that a repeat of exactly the
//!   winning write (same meta JSON, e.g. a retry after a lost reply) reports `true` again.
//! - [`Store::write_logs`] writes the chunks (see [`LOG_CHUNK_BYTES`], [`chunk_logs`]) and their
//!   index in one MULTI, replacing a previous index (tools and tests; the pipeline's logs go
//!   with the compare-and-set).
//! - [`Store::write_result`] sets the correlation key (TTL `correlation_ttl_seconds`).

pub mod keys;
pub mod records;
mod redis;

pub use self::redis::RedisStore;
pub use records::{
    chunk_logs, ActivationRecord, ActivationRef, ActivationStatus, ActivationTrigger, AliasRecord,
    HostCallsRecord, VersionMeta, LOG_CHUNK_BYTES, MAX_ENV_BYTES,
};
pub use sandbox_proto::bundle::MAX_BUNDLE_BYTES;

use crate::secret::Secret;
use sandbox_proto::messages::InvocationResult;
use std::future::Future;
use std::time::Duration;

/// What a store call can fail with. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Transient: the store cannot be reached or cannot answer now. Retry later.
    #[error("kvrocks unavailable: {0}")]
    Unavailable(String),
    /// For callers that need absence as an error; the store's reads return `Ok(None)` instead.
    #[error("not found")]
    NotFound,
    /// The stored value under `key` is unusable. Retrying will not help.
    #[error("corrupt value at {key}: {why}")]
    Corrupt { key: String, why: String },
    /// The call itself is wrong (a key component with `:`, an empty name, a running status
    /// given to a terminal write). Retrying will not help.
    #[error("invalid store call: {0}")]
    Invalid(String),
    /// A bounded store (the in-memory KV of a local run) has no room for the write.
    #[error("store full: {0}")]
    Full(String),
}

impl StoreError {
    /// Only [`StoreError::Unavailable`] is worth retrying.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// What [`Store::write_running`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunningWrite {
    /// Meta and status `running` are written (the status was absent or `running`).
    Started,
    /// The activation is already terminal with this status; nothing was written.
    AlreadyTerminal(ActivationStatus),
}

/// An alias record as read, with an opaque token of its exact stored content: a later
/// [`Store::begin`] writes the running record for this alias's version only while the alias
/// still holds the same content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasSeen {
    pub record: AliasRecord,
    pub token: Vec<u8>,
}

/// What [`Store::begin`] reads and may write.
#[derive(Debug, Clone, Copy)]
pub struct Begin<'a> {
    /// The running record, written when `write` is set and the conditions hold (see the module
    /// documentation); its `reference.version` is the version it is written for.
    pub record: &'a ActivationRecord,
    /// Write the running record (the caller knows the version it will run).
    pub write: bool,
    /// The alias to read (`ref.alias` when `ref.version` is absent), and what it held when the
    /// caller last read it: the running write needs the alias unchanged since then.
    pub alias: Option<(&'a str, Option<&'a AliasSeen>)>,
}

/// What [`Store::begin`] found and did.
#[derive(Debug, Clone)]
pub struct Begun {
    /// The activation's status before the call. A stored status that cannot be parsed is
    /// [`StoreError::Corrupt`] (and nothing was written).
    pub status: Result<Option<ActivationStatus>, StoreError>,
    /// The alias record, when one was asked for (an error is never transient here: an outage
    /// fails the whole call).
    pub alias: Option<Result<Option<AliasSeen>, StoreError>>,
    /// The running record was written.
    pub running: bool,
}

/// Connection and retention settings (contract §7: `plugins.persistence.kvrocks.addr`,
/// `.auth.password`, `cs_control.limits.activation_ttl_seconds`).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `host:port` (`[v6addr]:port` for IPv6).
    pub addr: String,
    pub password: Option<Secret>,
    /// Bound on one connection attempt (TCP connect + AUTH).
    pub connect_timeout: Duration,
    /// Bound on one command's reply.
    pub response_timeout: Duration,
    /// TTL of activation records and log chunks; default 604800 (7 days).
    pub activation_ttl_seconds: u64,
    /// TTL of the correlation key `cs:req:{t}:{request_id}:result`; default 600.
    pub correlation_ttl_seconds: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            addr: "127.0.0.1:6666".to_string(),
            password: None,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(3),
            activation_ttl_seconds: 604_800,
            correlation_ttl_seconds: 600,
        }
    }
}

/// The store as the pipeline sees it (contract §1, §4).
pub trait Store: Send + Sync + 'static {
    /// Readiness: `PING` answered.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `cs:fn:{t}:{ns}:{fn}:alias:{alias}`. `version` ≥ 1 or the record is corrupt.
    fn alias(
        &self,
        tenant: &str,
        namespace: &str,
        function: &str,
        alias: &str,
    ) -> impl Future<Output = Result<Option<AliasRecord>, StoreError>> + Send;

    /// `cs:fn:{t}:{ns}:{fn}:ver:{v}:meta`. Its `version` must be `version` and its `sha256` 64
    /// hex digits (returned lower-case), or the record is corrupt.
    fn version_meta(
        &self,
        tenant: &str,
        namespace: &str,
        function: &str,
        version: u64,
    ) -> impl Future<Output = Result<Option<VersionMeta>, StoreError>> + Send;

    /// `cs:fn:{t}:{ns}:{fn}:ver:{v}:bundle`. A bundle over [`MAX_BUNDLE_BYTES`] is refused as
    /// [`StoreError::Corrupt`] after a `STRLEN`, before its bytes are read.
    fn bundle(
        &self,
        tenant: &str,
        namespace: &str,
        function: &str,
        version: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// `cs:act:{t}:{aid}:meta`. A record whose tenant or activation id differ from the key's is
    /// corrupt.
    fn activation_meta(
        &self,
        tenant: &str,
        activation_id: &str,
    ) -> impl Future<Output = Result<Option<ActivationRecord>, StoreError>> + Send;

    /// `cs:act:{t}:{aid}:status`.
    fn activation_status(
        &self,
        tenant: &str,
        activation_id: &str,
    ) -> impl Future<Output = Result<Option<ActivationStatus>, StoreError>> + Send;

    /// Steps 2, 3 and 6 at once (see the module documentation). `Err` only for a transient
    /// failure (nothing may have been read; the running write may have been applied).
    fn begin(&self, b: &Begin<'_>) -> impl Future<Output = Result<Begun, StoreError>> + Send {
        async move {
            let r = b.record;
            let status = match self.activation_status(&r.tenant, &r.activation_id).await {
                Err(e) if e.is_transient() => return Err(e),
                other => other,
            };
            let alias = match b.alias {
                None => None,
                Some((name, _)) => {
                    match self.alias(&r.tenant, &r.namespace, &r.function, name).await {
                        Err(e) if e.is_transient() => return Err(e),
                        Err(e) => Some(Err(e)),
                        Ok(found) => Some(Ok(found.map(|record| AliasSeen {
                            token: serde_json::to_vec(&record).unwrap_or_default(),
                            record,
                        }))),
                    }
                }
            };
            let unchanged = match (&b.alias, &alias) {
                (None, _) => true,
                (Some((_, Some(seen))), Some(Ok(Some(now)))) => seen.token == now.token,
                _ => false,
            };
            let open = matches!(&status, Ok(s) if !s.is_some_and(|s| s.is_terminal()));
            let mut running = false;
            if b.write && unchanged && open && r.reference.version.is_some() {
                running = matches!(self.write_running(r).await?, RunningWrite::Started);
            }
            Ok(Begun {
                status,
                alias,
                running,
            })
        }
    }

    /// The running write (meta stored with `status: running` whatever `record.status` says).
    /// See the module documentation.
    fn write_running(
        &self,
        record: &ActivationRecord,
    ) -> impl Future<Output = Result<RunningWrite, StoreError>> + Send;

    /// The terminal compare-and-set, with the activation's log lines (as chunks and their
    /// index) and its correlation key written in the same atomic step; `Ok(true)` when this
    /// write won (nothing is written otherwise). `record.status` must be terminal. See the
    /// module documentation.
    fn write_terminal(
        &self,
        terminal: &Terminal<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Writes `lines` as log chunks of at most [`LOG_CHUNK_BYTES`] and their sorted-set index,
    /// TTL = activation TTL. Returns the number of chunks (0 for no lines: nothing is written).
    fn write_logs(
        &self,
        tenant: &str,
        activation_id: &str,
        lines: &[String],
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// The values of `cs:secret:{tenant}:{path}` for each of `paths`, in one round trip
    /// (`MGET`); `None` for a missing one. A value that is not UTF-8 is corrupt.
    fn secrets(
        &self,
        tenant: &str,
        paths: &[String],
    ) -> impl Future<Output = Result<Vec<Option<String>>, StoreError>> + Send;

    /// The correlation key `cs:req:{tenant}:{result.request_id}:result`.
    fn write_result(
        &self,
        tenant: &str,
        result: &InvocationResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Everything the terminal write of one activation stores at once.
#[derive(Debug, Clone, Copy)]
pub struct Terminal<'a> {
    pub record: &'a ActivationRecord,
    /// The log lines, chunked by the store.
    pub logs: &'a [String],
    /// The InvocationResult for the correlation key.
    pub result: &'a InvocationResult,
}

/// The user KV behind `cs.kv` (contract §4, §6), tenant-scoped under `cs:kv:{tenant}:{key}`. The
/// capability checks (ops, prefixes) are the host API's; values are JSON text.
pub trait UserKv: Send + Sync + 'static {
    /// The stored JSON text, or `None`.
    fn kv_get(
        &self,
        tenant: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Stores `value_json` (must parse as JSON, else [`StoreError::Invalid`]). `ttl_seconds`
    /// `Some(n)` with n > 0 expires the key after n seconds; `None` or 0 keeps it (and clears a
    /// previous TTL).
    fn kv_set(
        &self,
        tenant: &str,
        key: &str,
        value_json: &str,
        ttl_seconds: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the key; `Ok(true)` when it existed.
    fn kv_del(
        &self,
        tenant: &str,
        key: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
