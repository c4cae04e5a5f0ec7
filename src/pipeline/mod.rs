//! The pipeline: contract §1 for one `cs.invoke` task, from the payload bytes to the answer for
//! codeQ. Each step is a method named after it, in the order of the contract (docs/contract.md §1):
//!
//! 1. [`request::decode`] — invalid → [`Pipeline::dead_letter`], task FAILED, never retried;
//! 2. [`Pipeline::idempotency`] — terminal → [`Pipeline::republish`], no code runs;
//! 3. [`Pipeline::resolution`] — unknown alias or version → terminal `ValidationError`;
//! 4. [`Pipeline::load_bundle`] — cache by sha256, verify, parse → `BundleError` / `ManifestError`;
//! 5. [`Pipeline::acquire_permits`] — replica in-flight and per-version `maxConcurrency`;
//! 6. the running write ([`Store::write_running`]);
//! 7. [`Pipeline::execute`] — in a child, with the effective deadline;
//! 8. logs come back with the execution;
//! 9. [`Pipeline::finish`] — terminal compare-and-set, log chunks, correlation key;
//! 10. the InvocationResult to `cs.results`, and the [`Answer`] for the task.
//!
//! Steps 2, 3 and 6 share one store round trip ([`Store::begin`]) when the version is known
//! before the reads (`ref.version`, or the alias as last read, which the store checks is
//! unchanged); the running write is made again after step 5 when a store read or a wait for
//! capacity came in between. A warm activation so costs two sequential store round trips: the
//! begin script and the terminal compare-and-set.
//!
//! Infrastructure failures (the store or the queue unreachable) are not function outcomes: the
//! answer is [`Answer::RetryLater`] and nothing terminal is written, so a later delivery of the
//! same task finds the activation absent or `running` and runs it again.
//!
//! The pipeline knows no gRPC, Redis or process types: it drives a [`Store`], a [`Publisher`],
//! an [`Executor`] and the [`HostApi`] its functions call (see [`ports`]), all given to
//! [`Pipeline::new`]. Its unit tests (`tests.rs`) drive it with the in-memory doubles of
//! [`crate::testing`], faults injected; `tests/pipeline.rs` with redis and real children.

pub mod cache;
#[cfg(test)]
mod memory_tests;
pub mod ports;
pub mod request;

use crate::host::{ActivationContext, Heartbeat, HostApi, HostPolicy, HostScope};
use crate::pool::{Env, ErrorType, ExecError, Execution, Job};
use crate::publish::{self, unix_ms, TraceHeaders};
use crate::secrets::{SecretRef, Secrets};
use crate::store::{
    ActivationRecord, ActivationRef, ActivationStatus, ActivationTrigger, AliasSeen, Begin,
    HostCallsRecord, RunningWrite, Store, StoreError, Terminal,
};
use crate::trace::{Incoming, TraceContext};
use crate::tracing_otel::{ActivationTrace, InvokeAttributes, SpanSink};
use cache::{BundleCache, CacheStats};
use ports::{CapacityWait, Executor, NoSlot, PublishError, Publisher};
use request::{Envelope, InvocationRequest};
use sandbox_proto::bundle::{self, Bundle};
use sandbox_proto::messages::{
    truncate_utf8, CtxPrincipal, CtxRef, CtxTrigger, ErrorBody, InvocationCtx, InvocationResult,
    Status,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tracing::Instrument;

/// codeQ commands the pipeline publishes to (contract §7 `plugins.messaging.codeq.topics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub invoke: String,
    pub results: String,
    pub dlq_invoke: String,
    pub dlq_results: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            invoke: "cs.invoke".into(),
            results: "cs.results".into(),
            dlq_invoke: "cs.dlq.invoke".into(),
            dlq_results: "cs.dlq.results".into(),
        }
    }
}

/// What the pipeline is configured with (contract §7).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// `workers.max_inflight`: activations executing at once on this replica.
    pub max_inflight: usize,
    /// `cache.bundles_max`.
    pub cache_bundles_max: usize,
    /// `cache.bytes_max`.
    pub cache_bytes_max: usize,
    /// `limits.max_error_bytes`, for the errors the pipeline itself writes.
    pub max_error_bytes: usize,
    pub topics: Topics,
    /// `cs.codeq.publish` calls one activation may make.
    pub max_publishes: u32,
    /// codeQ's message limit: no message the pipeline or a function publishes may be larger.
    pub max_message_bytes: usize,
    /// Largest task payload run; a larger one is dead-lettered (`codeq.max_task_bytes`).
    pub max_task_bytes: usize,
    /// Activations that may wait at once for their own version's `maxConcurrency`
    /// (`workers.max_waiting`); a waiting activation holds no shared capacity.
    pub max_waiting: usize,
    /// Activations of one version that may wait at once (`workers.max_waiting_per_version`);
    /// past it the task is handed back to codeQ with a delay.
    pub max_waiting_per_version: usize,
}

impl PipelineConfig {
    /// The platform's limits for function host calls: the configured topics are reserved, the
    /// publish cap and codeQ's message limit apply.
    pub fn host_policy(&self) -> HostPolicy {
        let t = &self.topics;
        HostPolicy {
            reserved_topics: vec![
                t.invoke.clone(),
                t.results.clone(),
                t.dlq_invoke.clone(),
                t.dlq_results.clone(),
            ],
            max_publishes: self.max_publishes,
            max_publish_bytes: self
                .max_message_bytes
                .saturating_sub(crate::host::ENVELOPE_RESERVE_BYTES),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_inflight: 2048,
            cache_bundles_max: 1000,
            cache_bytes_max: 512 << 20,
            max_error_bytes: 64 * 1024,
            topics: Topics::default(),
            max_publishes: 100,
            max_message_bytes: crate::host::CODEQ_MAX_MESSAGE_BYTES,
            max_task_bytes: crate::host::CODEQ_MAX_MESSAGE_BYTES,
            max_waiting: 2048,
            max_waiting_per_version: 64,
        }
    }
}

/// How the codeQ task is to be answered (contract §2 "Invoker ↔ codeQ mapping").
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `success`: Result COMPLETED with `result_json` = this InvocationResult.
    Completed(InvocationResult),
    /// `error` / `timeout` (`"{type}: {message}"`) or an invalid request
    /// (`validation failed: ...`): Result FAILED, not retried.
    Failed { error: String },
    /// A transient infrastructure failure, or no room to wait: Nack with backoff. Nothing
    /// terminal was written.
    RetryLater { cause: RetryCause, reason: String },
}

/// Why a task is handed back to codeQ ([`Answer::RetryLater`]): what operators count it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryCause {
    /// KVRocks could not be reached or answered inconsistently.
    Store,
    /// codeQ refused or did not acknowledge a publish (`cs.results`, the dead-letter topic).
    Queue,
    /// Too many activations already wait for the version's `maxConcurrency` here.
    Capacity,
    /// A failure inside the supervisor (a closed semaphore, a failed blocking task, an
    /// unencodable result).
    Internal,
}

impl RetryCause {
    pub fn as_str(self) -> &'static str {
        match self {
            RetryCause::Store => "store",
            RetryCause::Queue => "queue",
            RetryCause::Capacity => "capacity",
            RetryCause::Internal => "internal",
        }
    }
}

impl Answer {
    /// [`Answer::RetryLater`] for a store failure.
    fn store_retry(reason: impl Into<String>) -> Answer {
        Answer::RetryLater {
            cause: RetryCause::Store,
            reason: reason.into(),
        }
    }
}

impl Answer {
    fn for_result(r: &InvocationResult) -> Answer {
        match &r.error {
            None if r.status == Status::Success => Answer::Completed(r.clone()),
            Some(e) => Answer::Failed {
                error: format!("{}: {}", e.kind, e.message),
            },
            None => Answer::Failed {
                error: format!("{}: no error recorded", r.status),
            },
        }
    }
}

/// What happened to one task, for logs and metrics.
#[derive(Debug, Clone)]
pub struct Processed {
    pub answer: Answer,
    /// Known once the request decoded.
    pub activation: Option<ActivationSummary>,
}

/// The facts of one activation that logs and metrics need.
#[derive(Debug, Clone, Default)]
pub struct ActivationSummary {
    pub activation_id: String,
    pub request_id: String,
    pub tenant: String,
    pub namespace: String,
    pub function: String,
    /// The resolved version, once known.
    pub version: Option<u64>,
    pub trigger: String,
    /// `success`, `error` or `timeout`, once terminal.
    pub status: Option<Status>,
    pub duration_ms: u64,
    /// Code ran in a child for this delivery.
    pub executed: bool,
    pub cold_start: bool,
    /// The stored result was republished instead of running (step 2).
    pub republished: bool,
    /// This delivery lost the terminal compare-and-set to another one.
    pub lost_race: bool,
    /// `now - envelope.ts_ms`, when the envelope had a timestamp.
    pub queue_lag_ms: Option<u64>,
    /// `cs.cadence.heartbeat()` calls the function made.
    pub heartbeats: u64,
    /// The trace id of the activation's `cs.invoke` span.
    pub trace_id: Option<String>,
    /// `trigger.source.traceparent` was present but not a W3C traceparent (ignored).
    pub traceparent_malformed: bool,
    /// Secret values replaced in the function's logs and error.
    pub redactions: u64,
    /// Host calls by kind and outcome (`ok`, `error`, `denied`).
    pub host_calls: Vec<(&'static str, &'static str, u32)>,
}

/// Why a step stopped the pipeline early.
enum Stop {
    /// A terminal outcome decided before execution (step 3, 4 or 7): recorded and published.
    Terminal(ExecError),
    /// Infrastructure or capacity: retry later, write nothing terminal.
    Retry(RetryCause, String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Retry(RetryCause::Store, e.to_string())
    }
}

/// The version a request resolved to.
struct Resolved {
    version: u64,
}

/// Permits held while an activation executes (step 5). Dropped after the terminal write.
struct Permits {
    _inflight: OwnedSemaphorePermit,
    _version: OwnedSemaphorePermit,
    /// The activation had to wait for one of them.
    waited: bool,
}

/// One version's `maxConcurrency`, and how many activations wait for it.
struct VersionGate {
    permits: Arc<Semaphore>,
    max: usize,
    waiting: AtomicUsize,
}

/// One activation counted as waiting (for its version and in the total) until dropped.
struct Waiting<'a> {
    gate: &'a VersionGate,
    total: &'a AtomicUsize,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.gate.waiting.fetch_sub(1, Ordering::SeqCst);
        self.total.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One InvocationRequest's journey; see the module documentation.
pub struct Pipeline<S, P, E, H> {
    cfg: PipelineConfig,
    store: Arc<S>,
    publisher: Arc<P>,
    executor: Arc<E>,
    host: Arc<H>,
    /// Shared with the executor, which keeps children's compiled modules in it.
    cache: Arc<BundleCache>,
    policy: Arc<HostPolicy>,
    inflight: Arc<Semaphore>,
    /// Per-version gates, sized by the manifest's `maxConcurrency` the first time the version
    /// is seen.
    versions: Mutex<HashMap<VersionKey, Arc<VersionGate>>>,
    /// Activations waiting for their version's capacity, all versions together.
    waiting: Arc<AtomicUsize>,
    /// Where spans go when export is on.
    spans: Option<Arc<SpanSink>>,
    /// Version → (sha256, `config.env` and `config.secrets` of its meta, when read).
    metas: Mutex<HashMap<VersionKey, (String, Env, SecretRefs, Instant)>>,
    /// Each alias as last read: the next activation of it writes its running record in the
    /// same store step as the reads, for this version, if the alias still holds the same.
    aliases: Mutex<HashMap<AliasKey, AliasSeen>>,
}

/// One alias of one tenant's function: a typed tuple, like [`VersionKey`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AliasKey {
    tenant: String,
    namespace: String,
    function: String,
    alias: String,
}

impl AliasKey {
    fn of(req: &InvocationRequest) -> Self {
        AliasKey {
            tenant: req.tenant.clone(),
            namespace: req.namespace.clone(),
            function: req.reference.function.clone(),
            alias: req.reference.alias.clone().unwrap_or_default(),
        }
    }
}

/// Aliases remembered at most (the map is emptied when full: it only saves round trips).
const ALIAS_CACHE_MAX: usize = 16_384;

/// What the queue knows about the task an activation runs for.
#[derive(Debug, Clone, Default)]
pub struct TaskContext {
    /// Extends the task's lease (`cs.cadence.heartbeat()`); `None` without a queue.
    pub heartbeat: Option<Heartbeat>,
}

/// One published version of one tenant's function: the key of every per-version map. A typed
/// tuple, never a joined string, so no spelling of one (tenant, namespace, function) can meet
/// another's entry, whatever characters the names hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionKey {
    pub tenant: String,
    pub namespace: String,
    pub function: String,
    pub version: u64,
}

impl VersionKey {
    fn of(req: &InvocationRequest, version: u64) -> Self {
        VersionKey {
            tenant: req.tenant.clone(),
            namespace: req.namespace.clone(),
            function: req.reference.function.clone(),
            version,
        }
    }
}

/// The secrets a version declares (`config.secrets`), shared by every activation of it.
pub type SecretRefs = Arc<[SecretRef]>;

/// How long a version's meta (its sha256) is trusted without reading it again.
const META_TTL: Duration = Duration::from_secs(30);
/// Version metas remembered at most.
const META_CACHE_MAX: usize = 16_384;

/// Per-version semaphores kept before idle ones are pruned.
const VERSION_SEMAPHORES_SOFT_MAX: usize = 4096;

impl<S, P, E, H> Pipeline<S, P, E, H>
where
    S: Store,
    P: Publisher,
    E: Executor,
    H: HostApi,
{
    /// `host` serves the functions' host calls (in production a
    /// [`crate::host::service::ServiceHost`] over the same store and publisher).
    pub fn new(
        cfg: PipelineConfig,
        store: Arc<S>,
        publisher: Arc<P>,
        executor: Arc<E>,
        host: Arc<H>,
    ) -> Self {
        let cache = Arc::new(BundleCache::new(cfg.cache_bundles_max, cfg.cache_bytes_max));
        executor.attach_compiled_modules(cache.clone());
        Pipeline {
            cache,
            policy: Arc::new(cfg.host_policy()),
            inflight: Arc::new(Semaphore::new(cfg.max_inflight.max(1))),
            versions: Mutex::new(HashMap::new()),
            waiting: Arc::new(AtomicUsize::new(0)),
            metas: Mutex::new(HashMap::new()),
            aliases: Mutex::new(HashMap::new()),
            spans: None,
            cfg,
            store,
            publisher,
            executor,
            host,
        }
    }

    /// Exports each activation's spans to `sink` (OTLP export on).
    pub fn with_spans(mut self, sink: Arc<SpanSink>) -> Self {
        self.spans = Some(sink);
        self
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Activations holding each version's `maxConcurrency` permit now, for
    /// `cs_invoker_inflight`: only versions with one or more.
    pub fn inflight_by_version(&self) -> Vec<(VersionKey, usize)> {
        let map = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter_map(|(k, g)| {
                let n = g.max.saturating_sub(g.permits.available_permits());
                (n > 0).then(|| (k.clone(), n))
            })
            .collect()
    }

    /// Activations holding the replica permit now (executing or about to).
    pub fn inflight(&self) -> usize {
        self.cfg
            .max_inflight
            .max(1)
            .saturating_sub(self.inflight.available_permits())
    }

    /// Runs contract §1 for one task payload (the envelope bytes).
    pub async fn process(&self, payload: &[u8]) -> Processed {
        self.process_task(payload, &NoSlot, &TaskContext::default())
            .await
    }

    /// [`Pipeline::process`] for a task that holds a claim slot: `slot` is told when the
    /// activation waits for its own version's capacity, so the slot can serve other work.
    pub async fn process_in_slot(&self, payload: &[u8], slot: &dyn CapacityWait) -> Processed {
        self.process_task(payload, slot, &TaskContext::default())
            .await
    }

    /// [`Pipeline::process_in_slot`] for a task of the queue, whose lease the function may
    /// extend (`task`).
    pub async fn process_task(
        &self,
        payload: &[u8],
        slot: &dyn CapacityWait,
        task: &TaskContext,
    ) -> Processed {
        let arrived = Instant::now();
        let arrived_ms = unix_ms();

        // 1. Decode and validate.
        if payload.len() > self.cfg.max_task_bytes {
            let reason = format!(
                "payload of {} bytes exceeds the limit of {} bytes (codeq.max_task_bytes)",
                payload.len(),
                self.cfg.max_task_bytes
            );
            return self.dead_letter(payload, &reason).await;
        }
        let (envelope, req) = match request::decode(payload) {
            Ok(v) => v,
            Err(reason) => return self.dead_letter(payload, reason.message()).await,
        };
        let mut summary = ActivationSummary {
            activation_id: req.activation_id.clone(),
            request_id: req.request_id.clone(),
            tenant: req.tenant.clone(),
            namespace: req.namespace.clone(),
            function: req.reference.function.clone(),
            version: req.reference.version,
            trigger: req.trigger.kind.clone(),
            queue_lag_ms: (envelope.ts_ms > 0).then(|| arrived_ms.saturating_sub(envelope.ts_ms)),
            ..ActivationSummary::default()
        };
        let (ctx, incoming) = TraceContext::from_source(&req.trigger.source);
        let trace = ActivationTrace::new(ctx);
        summary.trace_id = Some(trace.trace_id_hex());
        summary.traceparent_malformed = incoming == Incoming::Malformed;
        // Every line logged while the activation runs names it (src/logging.rs).
        let span = tracing::info_span!(
            "cs.invoke",
            request_id = %req.request_id,
            tenant = %req.tenant,
            namespace = %req.namespace,
            function = %req.reference.function,
            activation_id = %req.activation_id,
            trace_id = %trace.trace_id_hex(),
        );
        let answer = self
            .activation(
                &envelope,
                &trace,
                &req,
                arrived,
                arrived_ms,
                &mut summary,
                slot,
                task,
            )
            .instrument(span)
            .await;
        if let Some(sink) = &self.spans {
            sink.submit(
                &trace,
                &InvokeAttributes {
                    activation_id: summary.activation_id.clone(),
                    tenant: summary.tenant.clone(),
                    namespace: summary.namespace.clone(),
                    function: summary.function.clone(),
                    version: summary.version,
                    trigger: summary.trigger.clone(),
                    status: match &answer {
                        Answer::RetryLater { .. } => "retry".into(),
                        _ => summary
                            .status
                            .map(Status::as_str)
                            .unwrap_or_default()
                            .into(),
                    },
                    cold_start: summary.cold_start,
                },
            );
        }
        Processed {
            answer,
            activation: Some(summary),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn activation(
        &self,
        _envelope: &Envelope,
        trace: &ActivationTrace,
        req: &InvocationRequest,
        arrived: Instant,
        arrived_ms: u64,
        summary: &mut ActivationSummary,
        slot: &dyn CapacityWait,
        task: &TaskContext,
    ) -> Answer {
        // 2, 3 and 6 in one store step ([`Store::begin`]): the status and alias reads, and the
        // running write when the version is known before them — the request names it, or the
        // alias is expected to hold what it held when last read (the store writes only if it
        // still does). Otherwise the running write is its own step after the permits, as it
        // is when something could have finished the activation in between (see step 6).
        let alias_key = req.reference.version.is_none().then(|| AliasKey::of(req));
        let seen = alias_key.as_ref().and_then(|k| self.seen_alias(k));
        let expected_version = req
            .reference
            .version
            .or(seen.as_ref().map(|s| s.record.version));
        // The running write goes with the reads only when nothing can stop the activation
        // between them and the execution for a reason that leaves it to another delivery (a
        // store read, a wait for capacity): the version's meta and bundle are cached, it
        // declares no secrets, and its permits are free — taken now, without waiting.
        let mut early = expected_version.and_then(|v| self.warm_permits(req, v));
        let expected_version = expected_version.filter(|_| early.is_some());
        let mut record = ActivationRecord {
            activation_id: req.activation_id.clone(),
            request_id: req.request_id.clone(),
            tenant: req.tenant.clone(),
            namespace: req.namespace.clone(),
            function: req.reference.function.clone(),
            reference: ActivationRef {
                function: req.reference.function.clone(),
                alias: req.reference.alias.clone(),
                version: expected_version,
            },
            trigger: ActivationTrigger {
                kind: req.trigger.kind.clone(),
                source: Some(req.trigger.source.clone()),
            },
            status: ActivationStatus::Running,
            start_ms: arrived_ms,
            end_ms: None,
            duration_ms: None,
            result_truncated: false,
            result: None,
            error: None,
            cold_start: false,
            start_kind: None,
            wait_ms: None,
            child_id: None,
            memory_peak_bytes: None,
            cpu_ms: None,
            host_calls: None,
            trace_id: Some(trace.trace_id_hex()),
        };
        record.start_ms = unix_ms();
        let write_started = SystemTime::now();
        let alias_name = req.reference.alias.as_deref().unwrap_or_default();
        let begun = self
            .store
            .begin(&Begin {
                record: &record,
                write: expected_version.is_some(),
                alias: alias_key.as_ref().map(|_| (alias_name, seen.as_ref())),
            })
            .await;
        let begun = match begun {
            Ok(b) => b,
            Err(e) => return Answer::store_retry(e.to_string()),
        };
        if begun.running {
            trace.step("cs.store.write_running", write_started);
        }
        match self.idempotency(req, begun.status).await {
            Ok(Some(stored)) => return self.republish(stored, summary, trace).await,
            Ok(None) => {}
            Err(e) => return Answer::store_retry(e.to_string()),
        }
        let resolution = self.resolution(req, alias_key, begun.alias);

        // 3 and 4: version and bundle.
        let load_started = SystemTime::now();
        let mut went_to_store = false;
        let prepared = async {
            let resolved = resolution?;
            record.reference.version = Some(resolved.version);
            summary.version = Some(resolved.version);
            let (bundle, env, refs, read) = self.load_bundle(req, resolved.version).await?;
            went_to_store = read || !refs.is_empty();
            let secrets = self.fetch_secrets(req, &refs).await?;
            Ok::<_, Stop>((resolved, (bundle, env, secrets)))
        }
        .await;
        trace.step("cs.load_bundle", load_started);
        let (resolved, (bundle, env, secrets)) = match prepared {
            Ok(v) => v,
            Err(Stop::Retry(cause, reason)) => return Answer::RetryLater { cause, reason },
            Err(Stop::Terminal(err)) => {
                return self
                    .finish_without_running(record, err, arrived, summary, trace)
                    .await
            }
        };

        // 5. Permits. The deadline is checked before waiting and again after.
        if let Some(err) = deadline_passed(req.deadline_ms) {
            return self
                .finish_without_running(record, err, arrived, summary, trace)
                .await;
        }
        let early = early
            .take()
            .filter(|_| record.reference.version == expected_version && begun.running);
        let permits = match early {
            Some(p) => Ok(p),
            None => self.acquire_permits(req, &resolved, &bundle, slot).await,
        };
        let permits = match permits {
            Ok(p) => p,
            Err(Stop::Retry(cause, reason)) => return Answer::RetryLater { cause, reason },
            Err(Stop::Terminal(err)) => {
                return self
                    .finish_without_running(record, err, arrived, summary, trace)
                    .await
            }
        };
        let deadline = effective_deadline(req.deadline_ms, bundle.timeout_ms());
        let Some((deadline, deadline_ms)) = deadline else {
            drop(permits);
            let err = ExecError::new(ErrorType::Timeout, "deadline passed before execution");
            return self
                .finish_without_running(record, err, arrived, summary, trace)
                .await;
        };

        // 6. The running write, unless begin made it and nothing was awaited since that another
        // delivery could have finished the activation meanwhile (a store read, a wait for
        // capacity): then it is made again, and finds the terminal status if there is one.
        let running = if begun.running && !went_to_store && !permits.waited {
            Ok(RunningWrite::Started)
        } else {
            record.start_ms = unix_ms();
            let write_started = SystemTime::now();
            let running = self.store.write_running(&record).await;
            trace.step("cs.store.write_running", write_started);
            running
        };
        match running {
            Ok(RunningWrite::Started) => {}
            Ok(RunningWrite::AlreadyTerminal(_)) => {
                // Another delivery finished between step 2 and now.
                drop(permits);
                return match self.stored_result(&req.tenant, &req.activation_id).await {
                    Ok(Some(stored)) => self.republish(stored, summary, trace).await,
                    Ok(None) => Answer::store_retry(
                        "the activation turned terminal but its record is missing",
                    ),
                    Err(e) => Answer::store_retry(e.to_string()),
                };
            }
            Err(e) => return Answer::store_retry(e.to_string()),
        }

        // 7 and 8: execute; logs come back with the execution.
        let started = Instant::now();
        let started_at = SystemTime::now();
        let waited = started.duration_since(arrived);
        let ex = self
            .execute(
                req,
                resolved.version,
                bundle,
                env,
                deadline,
                deadline_ms,
                task,
                Arc::new(ActivationContext {
                    secrets,
                    trace: Some(trace.ctx.clone()),
                }),
            )
            .await;
        let duration_ms = started.elapsed().as_millis() as u64;
        summary.redactions = ex.redactions;
        let child_at = started_at + ex.wait;
        trace.step_between("cs.wait_for_child", started_at, child_at);
        trace.step("cs.execute", child_at);
        drop(permits);

        summary.executed = true;
        summary.heartbeats = u64::from(ex.host_calls.heartbeats);
        summary.host_calls = ex.host_calls.by_kind.clone();
        summary.cold_start = ex.start.is_cold();
        record.cold_start = ex.start.is_cold();
        record.start_kind = Some(ex.start.as_str().to_string());
        record.wait_ms = Some((waited + ex.wait).as_millis() as u64);
        record.child_id = (ex.child_id != 0).then_some(ex.child_id);
        record.memory_peak_bytes = (ex.memory_peak_bytes != 0).then_some(ex.memory_peak_bytes);
        record.cpu_ms = ex.start.ran().then_some(ex.cpu.as_millis() as u64);
        record.host_calls = Some(HostCallsRecord {
            count: u64::from(ex.host_calls.count),
            denied: u64::from(ex.host_calls.denied),
            bytes_in: ex.host_calls.bytes_in,
            bytes_out: ex.host_calls.bytes_out,
            time_ms: ex.host_calls.time.as_millis() as u64,
            heartbeats: u64::from(ex.host_calls.heartbeats),
        });
        record.result_truncated = ex.result_truncated || ex.logs_truncated;
        let result = ex.to_invocation_result(&req.activation_id, &req.request_id, duration_ms);

        // 9 and 10.
        self.finish(record, result, &ex.logs, summary, trace).await
    }

    /// Step 1's failure path: the raw request to `cs.dlq.invoke`, the task FAILED. The
    /// dead-letter message is an envelope of type `InvalidInvocationRequest` whose body holds the
    /// reason and the request exactly as it came (as JSON when it was JSON, else as text).
    async fn dead_letter(&self, payload: &[u8], reason: &str) -> Processed {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
        let tenant = parsed
            .as_ref()
            .and_then(|v| v.get("tenant"))
            .and_then(|t| t.as_str())
            .filter(|t| t.len() <= 64)
            .unwrap_or("")
            .to_string();
        // Keyed so that a replica dying between this publish and the FAILED answer does not
        // dead-letter the request twice: by its activation id when it has a well-formed one,
        // else by the payload's sha256.
        let key = match parsed
            .as_ref()
            .and_then(|v| v.pointer("/body/activation_id"))
            .and_then(|a| a.as_str())
            .filter(|a| uuid::Uuid::parse_str(a).is_ok() && a.len() == 36)
        {
            Some(aid) => format!("dlq:{aid}"),
            None => format!("dlq:sha256:{}", bundle::sha256_hex(payload)),
        };
        let reason_text = format!("validation failed: {reason}");
        let mut body = serde_json::json!({
            "reason": reason_text,
            "request": match parsed {
                Some(v) => v,
                None => serde_json::Value::String(String::from_utf8_lossy(payload).into_owned()),
            },
        });
        let mut msg = self.dlq_envelope(&tenant, &body);
        // The request as it came, unless that would not fit in one codeQ message: then its
        // first bytes, its size and its sha256, so the producer can still find it.
        if msg.len() > self.cfg.max_message_bytes - crate::host::ENVELOPE_RESERVE_BYTES {
            let mut prefix =
                String::from_utf8_lossy(&payload[..payload.len().min(64 << 10)]).into_owned();
            truncate_utf8(&mut prefix, 64 << 10);
            body = serde_json::json!({
                "reason": reason_text,
                "request_truncated": true,
                "request_bytes": payload.len(),
                "request_sha256": bundle::sha256_hex(payload),
                "request": prefix,
            });
            msg = self.dlq_envelope(&tenant, &body);
        }
        let answer = match self
            .publisher
            .publish(&self.cfg.topics.dlq_invoke, msg, Some(key))
            .await
        {
            Ok(()) => Answer::Failed { error: reason_text },
            Err(e) => publish_failed(&self.cfg.topics.dlq_invoke, e),
        };
        tracing::warn!(reason, "invalid invocation request dead-lettered");
        Processed {
            answer,
            activation: None,
        }
    }

    /// The `cs.envelope.v1` of type `InvalidInvocationRequest` carrying `body`, as bytes.
    fn dlq_envelope(&self, tenant: &str, body: &serde_json::Value) -> Vec<u8> {
        publish::Envelope::new(tenant, "InvalidInvocationRequest", body)
            .to_vec()
            .unwrap_or_default()
    }

    /// Step 2: a terminal record means the activation already ran; its stored result is
    /// returned for republishing. `running` or absent → run.
    async fn idempotency(
        &self,
        req: &InvocationRequest,
        status: Result<Option<ActivationStatus>, StoreError>,
    ) -> Result<Option<InvocationResult>, StoreError> {
        match status {
            Ok(Some(s)) if s.is_terminal() => {
                self.stored_result(&req.tenant, &req.activation_id).await
            }
            Ok(_) => Ok(None),
            Err(e) if e.is_transient() => Err(e),
            // A corrupt status is treated as absent: the terminal CAS accepts neither, so a
            // rerun cannot produce two terminal records.
            Err(e) => {
                tracing::warn!(activation_id = %req.activation_id, error = %e, "unreadable activation status; running again");
                Ok(None)
            }
        }
    }

    /// The InvocationResult of a terminal activation, from its stored record.
    async fn stored_result(
        &self,
        tenant: &str,
        activation_id: &str,
    ) -> Result<Option<InvocationResult>, StoreError> {
        let meta = self.store.activation_meta(tenant, activation_id).await?;
        Ok(meta.and_then(|m| {
            Some(InvocationResult {
                status: m.status.terminal()?,
                activation_id: m.activation_id,
                request_id: m.request_id,
                duration_ms: m.duration_ms.unwrap_or(0),
                result: m.result,
                error: m.error,
            })
        }))
    }

    /// Step 2's terminal path: correlation key and `cs.results` again (the idempotency key
    /// makes the second publish a no-op when the first one landed), no code runs.
    async fn republish(
        &self,
        stored: InvocationResult,
        summary: &mut ActivationSummary,
        trace: &ActivationTrace,
    ) -> Answer {
        summary.republished = true;
        summary.status = Some(stored.status);
        summary.duration_ms = stored.duration_ms;
        if let Err(e) = self.store.write_result(&summary.tenant, &stored).await {
            return Answer::store_retry(e.to_string());
        }
        if let Err(answer) = self.publish_result(&summary.tenant, &stored, trace).await {
            return answer;
        }
        Answer::for_result(&stored)
    }

    /// The alias as last read, if remembered.
    fn seen_alias(&self, key: &AliasKey) -> Option<AliasSeen> {
        let aliases = self.aliases.lock().unwrap_or_else(|p| p.into_inner());
        aliases.get(key).cloned()
    }

    fn remember_alias(&self, key: AliasKey, seen: Option<AliasSeen>) {
        let mut aliases = self.aliases.lock().unwrap_or_else(|p| p.into_inner());
        match seen {
            None => {
                aliases.remove(&key);
            }
            Some(seen) => {
                if aliases.len() >= ALIAS_CACHE_MAX && !aliases.contains_key(&key) {
                    aliases.clear();
                }
                aliases.insert(key, seen);
            }
        }
    }

    /// Step 3: `ref.version`, else the alias record (read by [`Store::begin`]).
    fn resolution(
        &self,
        req: &InvocationRequest,
        key: Option<AliasKey>,
        read: Option<Result<Option<AliasSeen>, StoreError>>,
    ) -> Result<Resolved, Stop> {
        if let Some(version) = req.reference.version {
            return Ok(Resolved { version });
        }
        let alias = req.reference.alias.as_deref().unwrap_or_default();
        let read = read.unwrap_or(Ok(None));
        if let Some(key) = key {
            self.remember_alias(key, read.as_ref().ok().cloned().flatten());
        }
        match read {
            Ok(Some(a)) => Ok(Resolved {
                version: a.record.version,
            }),
            Ok(None) => Err(Stop::Terminal(ExecError::new(
                ErrorType::ValidationError,
                format!(
                    "unknown alias \"{alias}\" of function \"{}\" in namespace \"{}\"",
                    req.reference.function, req.namespace
                ),
            ))),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => Err(Stop::Terminal(ExecError::new(
                ErrorType::ValidationError,
                format!("cannot resolve alias \"{alias}\": {e}"),
            ))),
        }
    }

    /// Step 4: version meta → sha256 → cache, else bytes from the store, verified and parsed;
    /// with the meta's `config.env` (`process.env`).
    async fn load_bundle(
        &self,
        req: &InvocationRequest,
        version: u64,
    ) -> Result<(Arc<Bundle>, Env, SecretRefs, bool), Stop> {
        let (t, ns, f) = (&req.tenant, &req.namespace, &req.reference.function);
        let meta_key = VersionKey::of(req, version);
        if let Some((b, env, secrets)) = self
            .recent_meta(&meta_key)
            .and_then(|(sha, env, s)| self.cache.get(&sha).map(|b| (b, env, s)))
        {
            return Ok((b, env, secrets, false));
        }
        let meta = match self.store.version_meta(t, ns, f, version).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                return Err(Stop::Terminal(ExecError::new(
                    ErrorType::ValidationError,
                    format!("unknown version {version} of function \"{f}\" in namespace \"{ns}\""),
                )))
            }
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                return Err(Stop::Terminal(ExecError::new(
                    ErrorType::BundleError,
                    format!("version {version} of \"{f}\" has unusable metadata: {e}"),
                )))
            }
        };
        let env: Env = match meta.env() {
            Ok(env) => Arc::new(env),
            Err(e) => {
                return Err(Stop::Terminal(ExecError::new(
                    ErrorType::BundleError,
                    format!("version {version} of \"{f}\" has unusable metadata: {e}"),
                )))
            }
        };
        let secrets: SecretRefs = match crate::secrets::declared(&meta.config) {
            Ok(s) => s.into(),
            Err(e) => {
                return Err(Stop::Terminal(ExecError::new(
                    ErrorType::ManifestError,
                    format!("version {version} of \"{f}\": {e}"),
                )))
            }
        };
        self.remember_meta(meta_key, &meta.sha256, env.clone(), secrets.clone());
        if let Some(b) = self.cache.get(&meta.sha256) {
            return Ok((b, env, secrets, true));
        }
        let bytes = match self.store.bundle(t, ns, f, version).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(Stop::Terminal(ExecError::new(
                    ErrorType::BundleError,
                    format!("the bundle of version {version} of \"{f}\" is missing from the store"),
                )))
            }
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                return Err(Stop::Terminal(ExecError::new(
                    ErrorType::BundleError,
                    format!("the bundle of version {version} of \"{f}\" is unusable: {e}"),
                )))
            }
        };
        let actual = bundle::sha256_hex(&bytes);
        if actual != meta.sha256 {
            return Err(Stop::Terminal(ExecError::new(
                ErrorType::BundleError,
                format!(
                    "sha256 mismatch for version {version} of \"{f}\": the meta says {}, the \
                     bundle's {} bytes hash to {actual}",
                    meta.sha256,
                    bytes.len()
                ),
            )));
        }
        // Parsing a 16 MiB tar is CPU work: keep it off the async workers.
        let parsed = tokio::task::spawn_blocking(move || bundle::parse_tar(&bytes))
            .await
            .map_err(|e| {
                Stop::Retry(
                    RetryCause::Internal,
                    format!("bundle parse task failed: {e}"),
                )
            })?;
        match parsed {
            Ok(b) => {
                let b = Arc::new(b);
                self.cache.insert(b.clone());
                Ok((b, env, secrets, true))
            }
            Err(e) => {
                let kind = match e {
                    bundle::BundleError::Manifest(_) => ErrorType::ManifestError,
                    _ => ErrorType::BundleError,
                };
                Err(Stop::Terminal(ExecError::new(kind, e.message())))
            }
        }
    }

    /// The sha256 of a version's meta read less than [`META_TTL`] ago. Published versions are
    /// immutable in Sous, so this only saves a round trip; the TTL bounds how long a version
    /// deleted and published again under the same number could run its old bundle.
    fn recent_meta(&self, key: &VersionKey) -> Option<(String, Env, SecretRefs)> {
        let metas = self.metas.lock().unwrap_or_else(|p| p.into_inner());
        metas
            .get(key)
            .filter(|(_, _, _, at)| at.elapsed() < META_TTL)
            .map(|(sha, env, secrets, _)| (sha.clone(), env.clone(), secrets.clone()))
    }

    fn remember_meta(&self, key: VersionKey, sha: &str, env: Env, secrets: SecretRefs) {
        let mut metas = self.metas.lock().unwrap_or_else(|p| p.into_inner());
        if metas.len() >= META_CACHE_MAX {
            metas.retain(|_, (_, _, _, at)| at.elapsed() < META_TTL);
            if metas.len() >= META_CACHE_MAX {
                metas.clear();
            }
        }
        metas.insert(key, (sha.to_string(), env, secrets, Instant::now()));
    }

    /// The values of the secrets `refs` names, for one activation of `req`'s tenant: one
    /// round trip, none when the version declares none. A missing secret is a terminal
    /// `ManifestError` naming it (never another's value); an outage is retried.
    async fn fetch_secrets(
        &self,
        req: &InvocationRequest,
        refs: &[SecretRef],
    ) -> Result<Secrets, Stop> {
        if refs.is_empty() {
            return Ok(Secrets::default());
        }
        let paths: Vec<String> = refs.iter().map(|r| r.path.clone()).collect();
        let values = match self.store.secrets(&req.tenant, &paths).await {
            Ok(v) => v,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(tenant = %req.tenant, activation_id = %req.activation_id,
                    error = %e, "unreadable secret");
                return Err(Stop::Terminal(ExecError::new(
                    ErrorType::ManifestError,
                    "a secret in config.secrets could not be read",
                )));
            }
        };
        let mut pairs = Vec::with_capacity(refs.len());
        for (r, v) in refs.iter().zip(values) {
            match v {
                Some(v) if v.len() <= crate::secrets::MAX_VALUE_BYTES => {
                    pairs.push((r.declared.clone(), r.short().to_string(), v))
                }
                Some(v) => {
                    return Err(Stop::Terminal(ExecError::new(
                        ErrorType::ManifestError,
                        format!(
                            "secret \"{}\" holds {} bytes, over the limit of {}",
                            r.declared,
                            v.len(),
                            crate::secrets::MAX_VALUE_BYTES
                        ),
                    )))
                }
                None => {
                    return Err(Stop::Terminal(ExecError::new(
                        ErrorType::ManifestError,
                        format!(
                            "secret \"{}\" declared in config.secrets is not set",
                            r.declared
                        ),
                    )))
                }
            }
        }
        Ok(Secrets::new(pairs))
    }

    /// Step 5: the version's `maxConcurrency` permit first, then the replica's in-flight
    /// permit — in that order, so that an activation waiting for its own version never holds a
    /// permit another version needs. While it waits, its claim `slot` is released (the codeQ
    /// worker asks for other work meanwhile); the wait is bounded by the request's deadline
    /// (then: a terminal `Timeout`) and by how many may wait (then: retry later, the task goes
    /// back to codeQ with a delay). A closed semaphore fails closed: retry later.
    async fn acquire_permits(
        &self,
        req: &InvocationRequest,
        resolved: &Resolved,
        bundle: &Bundle,
        slot: &dyn CapacityWait,
    ) -> Result<Permits, Stop> {
        let key = VersionKey::of(req, resolved.version);
        let max = bundle.manifest.limits.max_concurrency.max(1) as usize;
        let gate = {
            let mut map = self.versions.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > VERSION_SEMAPHORES_SOFT_MAX {
                // Nobody holds or waits on a gate only the map references.
                map.retain(|_, g| Arc::strong_count(g) > 1);
            }
            map.entry(key)
                .or_insert_with(|| {
                    Arc::new(VersionGate {
                        permits: Arc::new(Semaphore::new(max)),
                        max,
                        waiting: AtomicUsize::new(0),
                    })
                })
                .clone()
        };
        let deadline = deadline_instant(req.deadline_ms);
        let closed = || {
            Stop::Retry(
                RetryCause::Internal,
                "internal error: a capacity semaphore is closed".into(),
            )
        };
        let mut waited = false;
        let version = match gate.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Err(closed()),
            Err(TryAcquireError::NoPermits) => {
                waited = true;
                let _counted = self.start_waiting(&gate, req, resolved.version)?;
                slot.waiting();
                let got =
                    tokio::time::timeout_at(deadline.into(), gate.permits.clone().acquire_owned())
                        .await;
                slot.resumed();
                match got {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return Err(closed()),
                    Err(_) => {
                        return Err(Stop::Terminal(ExecError::new(
                            ErrorType::Timeout,
                            format!(
                                "deadline reached while waiting for capacity: version {} of \
                                 \"{}\" runs at most {} at a time (maxConcurrency)",
                                resolved.version, req.reference.function, gate.max
                            ),
                        )))
                    }
                }
            }
        };
        let inflight = match self.inflight.clone().try_acquire_owned() {
            Ok(p) => Ok(Ok(p)),
            Err(_) => {
                waited = true;
                tokio::time::timeout_at(deadline.into(), self.inflight.clone().acquire_owned())
                    .await
            }
        };
        let inflight = match inflight {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(closed()),
            Err(_) => {
                return Err(Stop::Terminal(ExecError::new(
                    ErrorType::Timeout,
                    "deadline reached while waiting for a free execution slot",
                )))
            }
        };
        Ok(Permits {
            _inflight: inflight,
            _version: version,
            waited,
        })
    }

    /// Both permits of a warm version (its meta and bundle cached, no secrets declared, its
    /// gate made by an earlier activation), if they are free right now; never waits.
    fn warm_permits(&self, req: &InvocationRequest, version: u64) -> Option<Permits> {
        let key = VersionKey::of(req, version);
        let (sha, _, secrets) = self.recent_meta(&key)?;
        if !secrets.is_empty() || !self.cache.contains(&sha) {
            return None;
        }
        let gate = {
            let map = self.versions.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&key)?.clone()
        };
        let version = gate.permits.clone().try_acquire_owned().ok()?;
        let inflight = self.inflight.clone().try_acquire_owned().ok()?;
        Some(Permits {
            _inflight: inflight,
            _version: version,
            waited: false,
        })
    }

    /// Counts one more activation waiting for `gate`, or refuses when this version or the
    /// replica has as many waiting as allowed: then the task is retried later (a Nack with
    /// backoff), it does not wait here holding memory and a lease.
    fn start_waiting<'a>(
        &'a self,
        gate: &'a VersionGate,
        req: &InvocationRequest,
        version: u64,
    ) -> Result<Waiting<'a>, Stop> {
        let per_version = gate.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        let total = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        let counted = Waiting {
            gate,
            total: &self.waiting,
        };
        if per_version > self.cfg.max_waiting_per_version || total > self.cfg.max_waiting {
            drop(counted);
            return Err(Stop::Retry(
                RetryCause::Capacity,
                format!(
                    "version {version} of \"{}\" is saturated: {} activations already wait for \
                 its capacity (maxConcurrency {}); retried later",
                    req.reference.function,
                    per_version - 1,
                    gate.max
                ),
            ));
        }
        Ok(counted)
    }

    /// Step 7: one run in a sandbox child.
    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        req: &InvocationRequest,
        version: u64,
        bundle: Arc<Bundle>,
        env: Env,
        deadline: Instant,
        deadline_ms: u64,
        task: &TaskContext,
        context: Arc<ActivationContext>,
    ) -> Execution {
        let ctx = InvocationCtx {
            activation_id: req.activation_id.clone(),
            request_id: req.request_id.clone(),
            deadline_ms,
            tenant: req.tenant.clone(),
            namespace: req.namespace.clone(),
            function: req.reference.function.clone(),
            version,
            reference: CtxRef {
                alias: req.reference.alias.clone(),
                version,
            },
            trigger: CtxTrigger {
                kind: req.trigger.kind.clone(),
            },
            principal: CtxPrincipal {
                sub: req.principal.sub.clone(),
                roles: req.principal.roles.clone(),
            },
            traceparent: context.trace.as_ref().map(TraceContext::traceparent),
        };
        let job = Job {
            scope: HostScope {
                tenant: req.tenant.clone(),
                namespace: req.namespace.clone(),
                function: req.reference.function.clone(),
                version,
                activation_id: req.activation_id.clone(),
                capabilities: Arc::new(bundle.manifest.capabilities.clone()),
                deadline,
                trigger: req.trigger.kind.clone(),
                heartbeat: task.heartbeat.clone(),
                policy: self.policy.clone(),
                calls: Default::default(),
                context,
            },
            bundle,
            event_json: req.event.get().to_string(),
            ctx_json: serde_json::to_string(&ctx).unwrap_or_else(|_| "{}".into()),
            deadline,
            log_sink: None,
            env,
        };
        self.executor.execute(&job, &*self.host).await
    }

    /// A terminal outcome decided before any code ran (steps 3, 4, 7): recorded and published
    /// like any other result.
    async fn finish_without_running(
        &self,
        mut record: ActivationRecord,
        mut err: ExecError,
        arrived: Instant,
        summary: &mut ActivationSummary,
        trace: &ActivationTrace,
    ) -> Answer {
        truncate_utf8(&mut err.message, self.cfg.max_error_bytes);
        let duration_ms = arrived.elapsed().as_millis() as u64;
        record.start_kind = Some("none".into());
        let result = InvocationResult {
            activation_id: record.activation_id.clone(),
            request_id: record.request_id.clone(),
            status: Status::of_error(err.kind),
            duration_ms,
            result: None,
            error: Some(ErrorBody {
                kind: err.kind,
                message: err.message,
                stack: None,
            }),
        };
        self.finish(record, result, &[], summary, trace).await
    }

    /// Steps 9 and 10: the terminal compare-and-set, which writes the log chunks and the
    /// correlation key in the same atomic step; the winner publishes. A loser answers with the winner's stored result, and
    /// republishes it (same idempotency key, so at most one message lands) in case the winner
    /// died between its write and its publish.
    async fn finish(
        &self,
        mut record: ActivationRecord,
        result: InvocationResult,
        logs: &[String],
        summary: &mut ActivationSummary,
        trace: &ActivationTrace,
    ) -> Answer {
        let end_ms = unix_ms();
        record.status = result.status.into();
        record.end_ms = Some(end_ms.max(record.start_ms));
        record.duration_ms = Some(result.duration_ms);
        record.result = result.result.clone();
        record.error = result.error.clone();
        summary.status = Some(result.status);
        summary.duration_ms = result.duration_ms;

        let terminal = Terminal {
            record: &record,
            logs,
            result: &result,
        };
        let write_started = SystemTime::now();
        let written = self.store.write_terminal(&terminal).await;
        trace.step("cs.store.write_terminal", write_started);
        match written {
            Ok(true) => {}
            Ok(false) => {
                summary.lost_race = true;
                return match self
                    .stored_result(&record.tenant, &record.activation_id)
                    .await
                {
                    Ok(Some(stored)) => {
                        summary.status = Some(stored.status);
                        self.republish(stored, summary, trace).await
                    }
                    Ok(None) => Answer::store_retry(
                        "lost the terminal write but the winner's record is missing",
                    ),
                    Err(e) => Answer::store_retry(e.to_string()),
                };
            }
            Err(e) => return Answer::store_retry(e.to_string()),
        }
        // The record, its logs and the correlation key were written together: whatever
        // happens from here, a redelivery finds them all and only republishes (step 2).
        if let Err(answer) = self.publish_result(&record.tenant, &result, trace).await {
            return answer;
        }
        Answer::for_result(&result)
    }

    /// Step 10: the InvocationResult, in a `cs.envelope.v1` of type `InvocationResult`, to
    /// `cs.results` with idempotency key `result:{activation_id}`.
    async fn publish_result(
        &self,
        tenant: &str,
        result: &InvocationResult,
        trace: &ActivationTrace,
    ) -> Result<(), Answer> {
        let env = result_envelope(tenant, result);
        let bytes = env.to_vec().map_err(|e| Answer::RetryLater {
            cause: RetryCause::Internal,
            reason: format!("cannot encode the result: {e}"),
        })?;
        let publish_started = SystemTime::now();
        let published = self
            .publisher
            .publish_traced(
                &self.cfg.topics.results,
                bytes,
                Some(format!("result:{}", result.activation_id)),
                TraceHeaders::of(trace),
            )
            .await;
        trace.step("cs.publish", publish_started);
        published.map_err(|e| publish_failed(&self.cfg.topics.results, e))
    }
}

/// The `cs.envelope.v1` that carries an InvocationResult on `cs.results`.
pub fn result_envelope<'a, 'r>(
    tenant: &'a str,
    result: &'r InvocationResult,
) -> publish::Envelope<'a, &'r InvocationResult> {
    publish::Envelope::new(tenant, "InvocationResult", result)
}

fn publish_failed(topic: &str, e: PublishError) -> Answer {
    // Even a permanent refusal is not the function's outcome: leave the task to codeQ's retries
    // and dead-letter set rather than lose the result.
    Answer::RetryLater {
        cause: RetryCause::Queue,
        reason: format!("publish to {topic} failed: {e}"),
    }
}

/// `deadline_ms` (Unix ms) as an `Instant`; now when it has passed.
fn deadline_instant(deadline_ms: u64) -> Instant {
    let now = Instant::now();
    let left = Duration::from_millis(deadline_ms.saturating_sub(unix_ms()));
    // A deadline centuries away (a producer's u64::MAX) is as good as a year.
    now.checked_add(left.min(Duration::from_secs(365 * 86_400)))
        .unwrap_or(now)
}

/// `Some(Timeout error)` when `deadline_ms` (Unix ms) is already behind us.
fn deadline_passed(deadline_ms: u64) -> Option<ExecError> {
    (deadline_ms != 0 && deadline_ms <= unix_ms())
        .then(|| ExecError::new(ErrorType::Timeout, "deadline passed before execution"))
}

/// contract §1 step 7: `min(deadline_ms, now + timeoutMs)`, `now + timeoutMs` when `deadline_ms` is
/// 0; `None` when the deadline has passed. Returns the deadline as an `Instant` and in Unix ms.
fn effective_deadline(deadline_ms: u64, timeout_ms: u64) -> Option<(Instant, u64)> {
    let now = Instant::now();
    let now_ms = unix_ms();
    let by_timeout = now_ms.saturating_add(timeout_ms);
    let effective_ms = if deadline_ms == 0 {
        by_timeout
    } else {
        deadline_ms.min(by_timeout)
    };
    if effective_ms <= now_ms {
        return None;
    }
    Some((
        now + Duration::from_millis(effective_ms - now_ms),
        effective_ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_the_earlier_of_the_request_and_the_timeout() {
        let now = unix_ms();
        let (_, ms) = effective_deadline(now + 60_000, 1_000).unwrap();
        assert!(ms <= now + 1_000 + 50 && ms >= now + 1_000);
        let (_, ms) = effective_deadline(now + 500, 10_000).unwrap();
        assert_eq!(ms, now + 500);
        let (_, ms) = effective_deadline(0, 2_000).unwrap();
        assert!(ms >= now + 2_000);
        assert!(effective_deadline(now.saturating_sub(1), 10_000).is_none());
        assert!(deadline_passed(now.saturating_sub(1)).is_some());
        assert!(deadline_passed(now + 10_000).is_none());
    }

    #[test]
    fn answers_follow_the_codeq_mapping() {
        let ok = InvocationResult {
            activation_id: "a".into(),
            request_id: "r".into(),
            status: Status::Success,
            duration_ms: 1,
            result: None,
            error: None,
        };
        assert!(matches!(Answer::for_result(&ok), Answer::Completed(_)));
        let failed = InvocationResult {
            status: Status::Timeout,
            error: Some(ErrorBody {
                kind: ErrorType::Timeout,
                message: "deadline reached".into(),
                stack: None,
            }),
            ..ok
        };
        assert_eq!(
            Answer::for_result(&failed),
            Answer::Failed {
                error: "Timeout: deadline reached".into()
            }
        );
    }
}
