//! Prometheus metrics (Sous docs 14, contract §8), exposed with the `prometheus-client` crate in
//! the OpenMetrics text format (which Prometheus scrapes natively).
//!
//! # Series
//!
//! | name | type | labels |
//! |---|---|---|
//! | `cs_invocations_total` | counter | `tenant, namespace, function, version, trigger, status` |
//! | `cs_invocation_duration_ms` | histogram | `tenant, namespace, function, version, trigger` |
//! | `cs_invoker_inflight` | gauge | `tenant, namespace, function, version` |
//! | `cs_invoker_queue_lag_ms` | histogram | `topic` |
//! | `cs_invoker_cache_items`, `cs_invoker_cache_bytes` | gauge | |
//! | `cs_invoker_cache_hits_total`, `cs_invoker_cache_misses_total` | counter | |
//! | `cs_invoker_cache_bytecode_items`, `cs_invoker_cache_bytecode_bytes` | gauge | |
//! | `cs_invoker_bytecode_hits_total`, `cs_invoker_bytecode_misses_total`, `cs_invoker_bytecode_rejected_total` | counter | |
//! | `cs_invoker_cold_starts_total` | counter | `runtime` |
//! | `cs_invoker_pool_children` | gauge | `state` (stem, warm, busy) |
//! | `cs_invoker_pool_spawns_total`, `cs_invoker_pool_spawn_failures_total` | counter | |
//! | `cs_invoker_pool_kills_total` | counter | `reason` ([`crate::pool::KillReason`]) |
//! | `cs_invoker_tasks_total` | counter | `outcome` (completed, failed, nacked, abandoned) |
//! | `cs_invoker_host_calls_total` | counter | `kind` (kv.get, …), `outcome` (ok, error, denied) |
//! | `cs_invoker_capability_denied_total` | counter | `kind` |
//! | `cs_cadence_heartbeat_total` | counter | |
//! | `cs_invoker_store_errors_total` | counter | `op` |
//! | `cs_invoker_codeq_errors_total` | counter | `stream` |
//! | `cs_invoker_secret_redactions_total` | counter | |
//! | `cs_invoker_traceparent_malformed_total` | counter | |
//! | `cs_invoker_trace_spans_dropped_total` | counter | |
//! | `cs_invoker_metrics_overflow_total` | counter | |
//!
//! `cs_invoker_queue_lag_ms` is a histogram (enqueue to claim), not a gauge: a gauge shows only
//! the last task's lag, which hides a backlog between scrapes. `cs_invoker_inflight` is the
//! number of activations holding their version's `maxConcurrency` permit, read from the
//! pipeline at each scrape; `sum(cs_invoker_inflight)` is the replica's total.
//!
//! # Cardinality
//!
//! Every label is bounded. `trigger` and `status` come from fixed sets (anything else is
//! `other`); `runtime` and `topic` keep at most [`MAX_SMALL_LABELS`] values (then `other`);
//! `kind`, `outcome`, `op`, `stream`, `reason` are chosen by our code. The function labels
//! (tenant, namespace, function, version) are tenant-controlled: at most
//! `cs_invoker_pool.metrics.max_function_series` distinct sets get their own series; every
//! further one is folded into `tenant="other",namespace="other",function="other",
//! version="other"` (same trigger and status), and `cs_invoker_metrics_overflow_total` counts
//! the folded observations, so totals stay right and a tenant with 100,000 functions cannot
//! blow up the scrape. `version="other"` can never be a real version (versions are integers),
//! so the folded series cannot be mistaken for a function's own.

use crate::pipeline::cache::CacheStats;
use crate::pool::PoolStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sandbox_proto::messages::{Status, Trigger};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Distinct function label sets kept by default (`cs_invoker_pool.metrics.max_function_series`).
pub const DEFAULT_MAX_FUNCTION_SERIES: usize = 1000;
/// Most distinct values of the `runtime` and `topic` labels.
pub const MAX_SMALL_LABELS: usize = 16;
/// Label values are cut to this many bytes (on a char boundary).
const MAX_LABEL_BYTES: usize = 128;
/// The value of every function label of the folded series.
pub const OVERFLOW: &str = "other";

/// The host call kinds ([`sandbox_proto::protocol::HostOp::name`]), whose series exist from
/// the start.
const HOST_CALL_KINDS: [&str; 7] = [
    "kv.get",
    "kv.set",
    "kv.del",
    "codeq.publish",
    "http.fetch",
    "cadence.heartbeat",
    "secrets.get",
];
/// [`crate::pool::KillReason`]'s names, whose series exist from the start.
const KILL_REASONS: [&str; 11] = [
    "timeout",
    "memory_limit",
    "protocol_breach",
    "died",
    "load_failed",
    "recycled",
    "idle",
    "evicted",
    "cancelled",
    "shutdown",
    "sandbox_violation",
];

/// Invocation durations, from a warm sub-millisecond call to the 900 s maximum timeout.
const DURATION_BUCKETS_MS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 900000.0,
];
/// Queue lag, from an idle queue (milliseconds) to a backlog of an hour.
const LAG_BUCKETS_MS: &[f64] = &[
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0,
    300000.0, 900000.0, 3600000.0,
];

/// The function labels of one invocation, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct InvocationLabels<'a> {
    pub tenant: &'a str,
    pub namespace: &'a str,
    pub function: &'a str,
    pub version: &'a str,
    /// `trigger.type` of the request.
    pub trigger: &'a str,
    /// The manifest's runtime (`cs-js`), for `cs_invoker_cold_starts_total`.
    pub runtime: &'a str,
}

/// What became of a claimed codeQ task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Answered COMPLETED: the function succeeded (contract §2 mapping).
    Completed,
    /// Answered FAILED: the function's `error` or `timeout`, or an invalid request sent to the
    /// dead-letter topic.
    Failed,
    /// Nacked for a retry (infrastructure failure).
    Nacked,
    /// Left unanswered (shutdown drain expired, stream lost); codeQ re-leases it.
    Abandoned,
}

impl TaskOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskOutcome::Completed => "completed",
            TaskOutcome::Failed => "failed",
            TaskOutcome::Nacked => "nacked",
            TaskOutcome::Abandoned => "abandoned",
        }
    }

    const ALL: [TaskOutcome; 4] = [
        TaskOutcome::Completed,
        TaskOutcome::Failed,
        TaskOutcome::Nacked,
        TaskOutcome::Abandoned,
    ];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    tenant: String,
    namespace: String,
    function: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvocationSeries {
    tenant: String,
    namespace: String,
    function: String,
    version: String,
    trigger: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationSeries {
    tenant: String,
    namespace: String,
    function: String,
    version: String,
    trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Topic {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Runtime {
    runtime: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostCall {
    kind: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Op {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Stream {
    stream: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS_MS.iter().copied())
}

fn lag_histogram() -> Histogram {
    Histogram::new(LAG_BUCKETS_MS.iter().copied())
}

struct Inner {
    registry: Registry,
    max_function_series: usize,
    /// Function label sets that have their own series.
    functions: Mutex<HashSet<FunctionLabels>>,
    invocations: Family<InvocationSeries, Counter>,
    durations: HistogramFamily<DurationSeries>,
    inflight: Family<FunctionLabels, Gauge>,
    queue_lag: HistogramFamily<Topic>,
    cache_items: Gauge,
    cache_bytes: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_bytecode_items: Gauge,
    cache_bytecode_bytes: Gauge,
    bytecode_hits: Counter,
    bytecode_misses: Counter,
    bytecode_rejected: Counter,
    cold_starts: Family<Runtime, Counter>,
    pool_children: Family<State, Gauge>,
    pool_spawns: Counter,
    pool_spawn_failures: Counter,
    pool_kills: Family<Reason, Counter>,
    tasks: Family<Outcome, Counter>,
    host_calls: Family<HostCall, Counter>,
    denied: Family<Kind, Counter>,
    heartbeats: Counter,
    store_errors: Family<Op, Counter>,
    codeq_errors: Family<Stream, Counter>,
    redactions: Counter,
    traceparent_malformed: Counter,
    spans_dropped: Counter,
    overflow: Counter,
    /// Distinct `runtime` / `topic` / `kind` values seen, for their bounds.
    small: Mutex<Vec<(&'static str, String)>>,
}

/// The process's metrics. Cloning is cheap (one `Arc`); every clone records into the same set.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::with_max_function_series(DEFAULT_MAX_FUNCTION_SERIES)
    }

    /// With at most `max` distinct function label sets (then the `other` series).
    pub fn with_max_function_series(max: usize) -> Metrics {
        let mut r = Registry::default();
        let invocations = Family::<InvocationSeries, Counter>::default();
        r.register(
            "cs_invocations",
            "Invocations finished, by function, trigger and terminal status",
            invocations.clone(),
        );
        let durations: HistogramFamily<DurationSeries> =
            Family::new_with_constructor(duration_histogram);
        r.register(
            "cs_invocation_duration_ms",
            "Invocation wall time in milliseconds, by function and trigger",
            durations.clone(),
        );
        let inflight = Family::<FunctionLabels, Gauge>::default();
        r.register(
            "cs_invoker_inflight",
            "Activations holding their version's maxConcurrency permit",
            inflight.clone(),
        );
        let queue_lag: HistogramFamily<Topic> = Family::new_with_constructor(lag_histogram);
        r.register(
            "cs_invoker_queue_lag_ms",
            "Milliseconds from enqueue (envelope ts_ms) to claim, by topic",
            queue_lag.clone(),
        );
        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let cache_items = gauge(
            &mut r,
            "cs_invoker_cache_items",
            "Bundles in the bundle cache",
        );
        let cache_bytes = gauge(
            &mut r,
            "cs_invoker_cache_bytes",
            "Bytes of bundles in the bundle cache",
        );
        let cache_hits = counter(
            &mut r,
            "cs_invoker_cache_hits",
            "Bundle cache lookups that found the bundle",
        );
        let cache_misses = counter(
            &mut r,
            "cs_invoker_cache_misses",
            "Bundle cache lookups that had to read the store",
        );
        let cache_bytecode_items = gauge(
            &mut r,
            "cs_invoker_cache_bytecode_items",
            "Compiled-module blobs (one per tenant and bundle) in the bundle cache",
        );
        let cache_bytecode_bytes = gauge(
            &mut r,
            "cs_invoker_cache_bytecode_bytes",
            "Bytes of compiled modules in the bundle cache (part of cs_invoker_cache_bytes)",
        );
        let bytecode_hits = counter(
            &mut r,
            "cs_invoker_bytecode_hits",
            "Bundle loads that read the compiled modules of an earlier child of the same tenant and bundle",
        );
        let bytecode_misses = counter(
            &mut r,
            "cs_invoker_bytecode_misses",
            "Bundle loads that compiled the source: no compiled modules were kept for the tenant and bundle",
        );
        let bytecode_rejected = counter(
            &mut r,
            "cs_invoker_bytecode_rejected",
            "Bundle loads whose cached compiled modules the child refused (another build, damaged); it compiled the source",
        );
        let cold_starts = Family::<Runtime, Counter>::default();
        r.register(
            "cs_invoker_cold_starts",
            "Invocations that had to load their bundle into a child first",
            cold_starts.clone(),
        );
        let pool_children = Family::<State, Gauge>::default();
        r.register(
            "cs_invoker_pool_children",
            "Live sandbox children by state",
            pool_children.clone(),
        );
        let pool_spawns = counter(&mut r, "cs_invoker_pool_spawns", "Sandbox children started");
        let pool_spawn_failures = counter(
            &mut r,
            "cs_invoker_pool_spawn_failures",
            "Sandbox children that failed to start",
        );
        let pool_kills = Family::<Reason, Counter>::default();
        r.register(
            "cs_invoker_pool_kills",
            "Sandbox children stopped, by reason",
            pool_kills.clone(),
        );
        let tasks = Family::<Outcome, Counter>::default();
        r.register(
            "cs_invoker_tasks",
            "Claimed codeQ tasks by how they were answered",
            tasks.clone(),
        );
        let host_calls = Family::<HostCall, Counter>::default();
        r.register(
            "cs_invoker_host_calls",
            "Host calls of functions, by kind and outcome (ok, error, denied)",
            host_calls.clone(),
        );
        let denied = Family::<Kind, Counter>::default();
        r.register(
            "cs_invoker_capability_denied",
            "Host calls refused by the manifest's capabilities or the platform's policy",
            denied.clone(),
        );
        let heartbeats = counter(
            &mut r,
            "cs_cadence_heartbeat",
            "cs.cadence.heartbeat() calls accepted; each extends its task's codeQ lease",
        );
        let store_errors = Family::<Op, Counter>::default();
        r.register(
            "cs_invoker_store_errors",
            "KVRocks failures, by operation",
            store_errors.clone(),
        );
        let codeq_errors = Family::<Stream, Counter>::default();
        r.register(
            "cs_invoker_codeq_errors",
            "codeQ stream errors, by stream",
            codeq_errors.clone(),
        );
        let redactions = counter(
            &mut r,
            "cs_invoker_secret_redactions",
            "Secret values replaced by [REDACTED:name] in functions' logs and errors",
        );
        let traceparent_malformed = counter(
            &mut r,
            "cs_invoker_traceparent_malformed",
            "Requests whose trigger.source.traceparent was not W3C (ignored: a new trace)",
        );
        let spans_dropped = counter(
            &mut r,
            "cs_invoker_trace_spans_dropped",
            "Spans not exported because the export queue was full or the collector failed",
        );
        let overflow = counter(
            &mut r,
            "cs_invoker_metrics_overflow",
            "Observations folded into the 'other' function series (the series cap was reached)",
        );
        let m = Metrics {
            inner: Arc::new(Inner {
                registry: r,
                max_function_series: max,
                functions: Mutex::new(HashSet::new()),
                invocations,
                durations,
                inflight,
                queue_lag,
                cache_items,
                cache_bytes,
                cache_hits,
                cache_misses,
                cache_bytecode_items,
                cache_bytecode_bytes,
                bytecode_hits,
                bytecode_misses,
                bytecode_rejected,
                cold_starts,
                pool_children,
                pool_spawns,
                pool_spawn_failures,
                pool_kills,
                tasks,
                host_calls,
                denied,
                heartbeats,
                store_errors,
                codeq_errors,
                redactions,
                traceparent_malformed,
                spans_dropped,
                overflow,
                small: Mutex::new(Vec::new()),
            }),
        };
        // The fixed label sets exist from the start, so a dashboard shows 0 rather than
        // "no data".
        for o in TaskOutcome::ALL {
            let _ = m.inner.tasks.get_or_create(&Outcome {
                outcome: o.as_str(),
            });
        }
        for state in ["stem", "warm", "busy"] {
            let _ = m.inner.pool_children.get_or_create(&State { state });
        }
        for kind in HOST_CALL_KINDS {
            let kind = m.small("kind", kind);
            for outcome in ["ok", "error", "denied"] {
                let _ = m.inner.host_calls.get_or_create(&HostCall {
                    kind: kind.clone(),
                    outcome,
                });
            }
            let _ = m.inner.denied.get_or_create(&Kind { kind });
        }
        for reason in KILL_REASONS {
            let _ = m.inner.pool_kills.get_or_create(&Reason {
                reason: reason.to_string(),
            });
        }
        let _ = m.inner.store_errors.get_or_create(&Op { op: "pipeline" });
        m
    }

    /// The series' own labels for `(tenant, namespace, function, version)`, or the `other`
    /// ones (counted) when the cap is reached.
    fn bounded(&self, t: &str, ns: &str, f: &str, v: &str) -> FunctionLabels {
        let l = FunctionLabels {
            tenant: cut(t).to_string(),
            namespace: cut(ns).to_string(),
            function: cut(f).to_string(),
            version: cut(v).to_string(),
        };
        let mut known = self
            .inner
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if known.contains(&l) {
            return l;
        }
        if known.len() < self.inner.max_function_series {
            known.insert(l.clone());
            return l;
        }
        self.inner.overflow.inc();
        FunctionLabels {
            tenant: OVERFLOW.into(),
            namespace: OVERFLOW.into(),
            function: OVERFLOW.into(),
            version: OVERFLOW.into(),
        }
    }

    /// `value` when already seen for `label` or when there is room, else `other`.
    fn small(&self, label: &'static str, value: &str) -> String {
        let v = cut(value);
        let mut seen = self.inner.small.lock().unwrap_or_else(|p| p.into_inner());
        if seen.iter().any(|(l, s)| *l == label && s == v) {
            return v.to_string();
        }
        if seen.iter().filter(|(l, _)| *l == label).count() < MAX_SMALL_LABELS {
            seen.push((label, v.to_string()));
            return v.to_string();
        }
        "other".to_string()
    }

    /// One finished invocation: counts it, observes its duration, and counts a cold start when
    /// the child had to load the bundle (`cold`).
    pub fn record_invocation(
        &self,
        labels: &InvocationLabels<'_>,
        status: Status,
        duration_ms: f64,
        cold: bool,
    ) {
        // The trigger types of `cs.invoke.v1`; anything else is counted as `other`.
        let trigger = if labels.trigger.parse::<Trigger>().is_ok() {
            labels.trigger
        } else {
            "other"
        };
        let f = self.bounded(
            labels.tenant,
            labels.namespace,
            labels.function,
            labels.version,
        );
        self.inner
            .invocations
            .get_or_create(&InvocationSeries {
                tenant: f.tenant.clone(),
                namespace: f.namespace.clone(),
                function: f.function.clone(),
                version: f.version.clone(),
                trigger: trigger.to_string(),
                status: status.as_str().to_string(),
            })
            .inc();
        let v = if duration_ms.is_finite() && duration_ms > 0.0 {
            duration_ms
        } else {
            0.0
        };
        self.inner
            .durations
            .get_or_create(&DurationSeries {
                tenant: f.tenant,
                namespace: f.namespace,
                function: f.function,
                version: f.version,
                trigger: trigger.to_string(),
            })
            .observe(v);
        if cold {
            let runtime = self.small("runtime", labels.runtime);
            self.inner
                .cold_starts
                .get_or_create(&Runtime { runtime })
                .inc();
        }
    }

    /// Activations holding a version's permit now: `(tenant, namespace, function, version,
    /// count)` for every version with one or more (the gauge is rebuilt from this).
    pub fn set_inflight<'a>(
        &self,
        by_version: impl IntoIterator<Item = (&'a str, &'a str, &'a str, u64, usize)>,
    ) {
        let mut sums: Vec<(FunctionLabels, i64)> = Vec::new();
        for (t, ns, f, v, n) in by_version {
            if n == 0 {
                continue;
            }
            let l = self.bounded_quiet(t, ns, f, &v.to_string());
            match sums.iter_mut().find(|(x, _)| *x == l) {
                Some((_, s)) => *s += n as i64,
                None => sums.push((l, n as i64)),
            }
        }
        self.inner.inflight.clear();
        for (l, n) in sums {
            self.inner.inflight.get_or_create(&l).set(n);
        }
    }

    /// [`Metrics::bounded`] without counting an overflow: a gauge read at every scrape is not
    /// an observation.
    fn bounded_quiet(&self, t: &str, ns: &str, f: &str, v: &str) -> FunctionLabels {
        let l = FunctionLabels {
            tenant: cut(t).to_string(),
            namespace: cut(ns).to_string(),
            function: cut(f).to_string(),
            version: cut(v).to_string(),
        };
        let mut known = self
            .inner
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if known.contains(&l) {
            return l;
        }
        if known.len() < self.inner.max_function_series {
            known.insert(l.clone());
            return l;
        }
        FunctionLabels {
            tenant: OVERFLOW.into(),
            namespace: OVERFLOW.into(),
            function: OVERFLOW.into(),
            version: OVERFLOW.into(),
        }
    }

    /// Time between a task's enqueue on `topic` and its claim here.
    pub fn observe_queue_lag(&self, topic: &str, ms: f64) {
        let topic = self.small("topic", topic);
        let ms = if ms.is_finite() && ms > 0.0 { ms } else { 0.0 };
        self.inner
            .queue_lag
            .get_or_create(&Topic { topic })
            .observe(ms);
    }

    /// The bundle cache's contents and its cumulative hits and misses.
    pub fn set_cache(&self, c: &CacheStats) {
        self.inner.cache_items.set(c.items as i64);
        self.inner.cache_bytes.set(c.bytes as i64);
        sync(&self.inner.cache_hits, c.hits);
        sync(&self.inner.cache_misses, c.misses);
        self.inner.cache_bytecode_items.set(c.bytecode_items as i64);
        self.inner.cache_bytecode_bytes.set(c.bytecode_bytes as i64);
    }

    /// The pool's state, from [`crate::pool::Pool::stats`]: children by state as gauges, and
    /// the pool's own cumulative spawn and kill counts as counters (called before each render).
    pub fn set_pool(&self, stats: &PoolStats) {
        for (state, n) in [
            ("stem", stats.stem),
            ("warm", stats.warm),
            ("busy", stats.busy),
        ] {
            self.inner
                .pool_children
                .get_or_create(&State { state })
                .set(n as i64);
        }
        sync(&self.inner.pool_spawns, stats.spawns);
        sync(&self.inner.pool_spawn_failures, stats.spawn_failures);
        sync(&self.inner.bytecode_hits, stats.bytecode_hits);
        sync(&self.inner.bytecode_misses, stats.bytecode_misses);
        sync(&self.inner.bytecode_rejected, stats.bytecode_rejected);
        for (reason, n) in &stats.kills {
            let c = self.inner.pool_kills.get_or_create(&Reason {
                reason: reason.to_string(),
            });
            sync(&c, *n);
        }
    }

    /// `cs.cadence.heartbeat()` calls accepted (of all activations).
    pub fn cadence_heartbeats(&self, n: u64) {
        self.inner.heartbeats.inc_by(n);
    }

    pub fn task_outcome(&self, outcome: TaskOutcome) {
        self.inner
            .tasks
            .get_or_create(&Outcome {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// `n` host calls of `kind` (`kv.get`, `http.fetch`, …) that ended with `outcome`
    /// (`ok`, `error`, `denied`).
    pub fn host_calls(&self, kind: &str, outcome: &'static str, n: u64) {
        let kind = self.small("kind", kind);
        if outcome == "denied" {
            self.inner
                .denied
                .get_or_create(&Kind { kind: kind.clone() })
                .inc_by(n);
        }
        self.inner
            .host_calls
            .get_or_create(&HostCall { kind, outcome })
            .inc_by(n);
    }

    /// A KVRocks command that failed for infrastructure reasons; `op` names the step.
    pub fn store_error(&self, op: &'static str) {
        self.inner.store_errors.get_or_create(&Op { op }).inc();
    }

    /// A codeQ stream error or reconnect; `stream` is `worker` or `producer`.
    pub fn codeq_error(&self, stream: &'static str) {
        self.inner
            .codeq_errors
            .get_or_create(&Stream { stream })
            .inc();
    }

    /// Secret values replaced in one activation's logs and error.
    pub fn redactions(&self, n: u64) {
        self.inner.redactions.inc_by(n);
    }

    pub fn traceparent_malformed(&self) {
        self.inner.traceparent_malformed.inc();
    }

    /// The exporter's cumulative count of spans it dropped.
    pub fn set_spans_dropped(&self, total: u64) {
        sync(&self.inner.spans_dropped, total);
    }

    /// The exposition text of every series (OpenMetrics, ending in `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.inner.registry).is_err() {
            out.clear();
            out.push_str("# EOF\n");
        }
        out
    }
}

/// Raises `c` to a cumulative `total` kept elsewhere (counters only go up).
fn sync(c: &Counter, total: u64) {
    let cur = c.get();
    if total > cur {
        c.inc_by(total - cur);
    }
}

fn cut(v: &str) -> &str {
    if v.len() <= MAX_LABEL_BYTES {
        return v;
    }
    let mut end = MAX_LABEL_BYTES;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(function: &'a str, trigger: &'a str) -> InvocationLabels<'a> {
        InvocationLabels {
            tenant: "t1",
            namespace: "ns",
            function,
            version: "3",
            trigger,
            runtime: "cs-js",
        }
    }

    #[test]
    fn names_labels_and_values() {
        let m = Metrics::new();
        m.record_invocation(&labels("f", "http"), Status::Success, 3.0, true);
        m.record_invocation(&labels("f", "http"), Status::Success, 40.0, false);
        m.record_invocation(&labels("f", "cron"), Status::Timeout, 1e9, false);
        m.set_inflight([("t1", "ns", "f", 3, 2), ("t1", "ns", "g", 1, 0)]);
        m.observe_queue_lag("cs.invoke", 12.0);
        m.set_pool(&PoolStats {
            stem: 2,
            warm: 1,
            busy: 4,
            spawns: 10,
            spawn_failures: 1,
            invocations: 99,
            kills: vec![("timeout", 2), ("idle", 5)],
            bytecode_hits: 7,
            bytecode_misses: 3,
            bytecode_rejected: 1,
        });
        m.host_calls("kv.get", "ok", 2);
        m.host_calls("kv.set", "denied", 1);
        m.task_outcome(TaskOutcome::Completed);
        m.redactions(3);
        let text = m.render();
        let fl = r#"tenant="t1",namespace="ns",function="f",version="3""#;
        for want in [
            format!("cs_invocations_total{{{fl},trigger=\"http\",status=\"success\"}} 2\n"),
            format!("cs_invocations_total{{{fl},trigger=\"other\",status=\"timeout\"}} 1\n"),
            format!("cs_invocation_duration_ms_bucket{{le=\"5.0\",{fl},trigger=\"http\"}} 1\n"),
            format!("cs_invocation_duration_ms_count{{{fl},trigger=\"http\"}} 2\n"),
            format!("cs_invocation_duration_ms_sum{{{fl},trigger=\"http\"}} 43.0\n"),
            format!("cs_invoker_inflight{{{fl}}} 2\n"),
            "cs_invoker_queue_lag_ms_count{topic=\"cs.invoke\"} 1\n".into(),
            "cs_invoker_cold_starts_total{runtime=\"cs-js\"} 1\n".into(),
            "cs_invoker_pool_children{state=\"busy\"} 4\n".into(),
            "cs_invoker_pool_spawns_total 10\n".into(),
            "cs_invoker_bytecode_hits_total 7\n".into(),
            "cs_invoker_bytecode_misses_total 3\n".into(),
            "cs_invoker_bytecode_rejected_total 1\n".into(),
            "cs_invoker_pool_kills_total{reason=\"idle\"} 5\n".into(),
            "cs_invoker_host_calls_total{kind=\"kv.get\",outcome=\"ok\"} 2\n".into(),
            "cs_invoker_capability_denied_total{kind=\"kv.set\"} 1\n".into(),
            "cs_invoker_tasks_total{outcome=\"completed\"} 1\n".into(),
            "cs_invoker_tasks_total{outcome=\"abandoned\"} 0\n".into(),
            "cs_invoker_secret_redactions_total 3\n".into(),
        ] {
            assert!(text.contains(&want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains("function=\"g\""), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn cardinality_is_bounded() {
        let m = Metrics::with_max_function_series(10);
        for i in 0..15 {
            let f = format!("f{i}");
            m.record_invocation(&labels(&f, "http"), Status::Success, 1.0, false);
        }
        // A function seen before the limit still gets its own series.
        m.record_invocation(&labels("f0", "http"), Status::Success, 1.0, false);
        for i in 0..MAX_SMALL_LABELS + 3 {
            m.observe_queue_lag(&format!("t{i}"), 1.0);
        }
        let text = m.render();
        assert!(text.contains(
            "cs_invocations_total{tenant=\"other\",namespace=\"other\",function=\"other\",version=\"other\",trigger=\"http\",status=\"success\"} 5\n"
        ), "{text}");
        assert!(
            text.contains("function=\"f0\",version=\"3\",trigger=\"http\",status=\"success\"} 2\n")
        );
        assert!(text.contains("cs_invoker_metrics_overflow_total 5\n"));
        let series = text
            .lines()
            .filter(|l| l.starts_with("cs_invocations_total{"))
            .count();
        assert_eq!(series, 11);
        assert!(text.contains("cs_invoker_queue_lag_ms_count{topic=\"other\"} 3\n"));
    }

    #[test]
    fn label_values_are_escaped_and_cut() {
        let m = Metrics::new();
        let long = "é".repeat(200);
        let l = InvocationLabels {
            tenant: "a\"b\\c\nd",
            namespace: &long,
            ..labels("f", "api")
        };
        m.record_invocation(&l, Status::Error, 1.0, false);
        let text = m.render();
        assert!(text.contains("tenant=\"a\\\"b\\\\c\\nd\""), "{text}");
        assert!(
            text.contains(&format!("namespace=\"{}\"", "é".repeat(64))),
            "{text}"
        );
        assert!(text
            .lines()
            .all(|l| l.starts_with('#') || l.starts_with("cs_")));
    }
}
