//! Prometheus metrics (contract §8), rendered in the text exposition format 0.0.4.
//!
//! Hand-written rather than through a client library: the series are few and fixed, the format
//! is simple, and this keeps the exact names contract §8 fixes (a library would add or require
//! suffixes, and the OpenMetrics flavour is not what `text/plain; version=0.0.4` scrapers expect).
//!
//! # Series
//!
//! | name | type | labels |
//! |---|---|---|
//! | `cs_invocations_total` | counter | `tenant, namespace, function, version, trigger, status` |
//! | `cs_invocation_duration_ms` | histogram | `status` |
//! | `cs_invoker_inflight` | gauge | |
//! | `cs_invoker_queue_lag_ms` | histogram | `topic` |
//! | `cs_invoker_cache_items`, `cs_invoker_cache_bytes` | gauge | |
//! | `cs_invoker_cold_starts_total` | counter | `runtime` |
//! | `cs_invoker_pool_children` | gauge | `state` (stem, warm, busy) |
//! | `cs_invoker_pool_spawns_total`, `cs_invoker_pool_spawn_failures_total` | counter | |
//! | `cs_invoker_pool_kills_total` | counter | `reason` ([`crate::pool::KillReason`]) |
//! | `cs_invoker_tasks_total` | counter | `outcome` (completed, failed, nacked, abandoned) |
//! | `cs_cadence_heartbeat_total` | counter | |
//! | `cs_invoker_store_errors_total` | counter | `op` |
//! | `cs_invoker_codeq_errors_total` | counter | `stream` |
//! | `cs_invoker_metrics_overflow_total` | counter | |
//!
//! `cs_invoker_queue_lag_ms` is a histogram (time from enqueue to claim, per topic), not a gauge:
//! a gauge shows only the last task's lag, which hides a backlog between scrapes, while a
//! histogram gives rates and quantiles over any window.
//!
//! # Cardinality
//!
//! Every label is bounded. `trigger` and `status` come from fixed sets (anything else is
//! `other`); `runtime` and `topic` keep at most [`MAX_SMALL_LABELS`] distinct values (then
//! `other`); `op`, `stream` and `reason` are `&'static str` chosen by our code. The function
//! labels of `cs_invocations_total` are tenant-controlled, so at most [`MAX_FUNCTION_SERIES`]
//! label sets are kept; invocations of further functions are counted under
//! `tenant="_other",namespace="_other",function="_other",version="_other"` (same trigger and
//! status) and `cs_invoker_metrics_overflow_total` counts them, so totals stay right and a
//! tenant creating functions in a loop cannot exhaust memory or the Prometheus server. The
//! duration histogram has no function labels for the same reason (per-function latency belongs
//! in the activation records).

use crate::pool::PoolStats;
use crate::store::records::ActivationStatus;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Most distinct function label sets kept in `cs_invocations_total`.
pub const MAX_FUNCTION_SERIES: usize = 10_000;
/// Most distinct values of the `runtime` and `topic` labels.
pub const MAX_SMALL_LABELS: usize = 16;
/// Label values are cut to this many bytes (on a char boundary).
const MAX_LABEL_BYTES: usize = 128;
const OVERFLOW: &str = "_other";

/// The trigger types of `cs.invoke.v1`; anything else is counted as `other`.
const TRIGGERS: [&str; 4] = ["http", "schedule", "cadence", "api"];

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
    /// Answered FAILED: the function's `error` or `timeout` (`"{type}: {message}"`), or an
    /// invalid request sent to the dead-letter topic.
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

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), plus one for +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        // A NaN or negative value (clock step) would poison the sum; count it as 0.
        let v = if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            cum += self.counts[i];
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        cum += self.counts[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cum}");
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

#[derive(Debug, Default)]
struct Series {
    /// Rendered label text (`tenant="…",…,status="…"`) → count. The key is the label text so
    /// rendering needs no formatting and the output is sorted.
    invocations: BTreeMap<String, u64>,
    /// Distinct function label sets seen (tenant…version), to enforce the series bound.
    functions: std::collections::HashSet<String>,
    durations: BTreeMap<&'static str, Histogram>,
    queue_lag: BTreeMap<String, Histogram>,
    cold_starts: BTreeMap<String, u64>,
    pool: Option<PoolSnapshot>,
    store_errors: BTreeMap<&'static str, u64>,
    codeq_errors: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone)]
struct PoolSnapshot {
    stem: usize,
    warm: usize,
    busy: usize,
    spawns: u64,
    spawn_failures: u64,
    kills: Vec<(&'static str, u64)>,
}

#[derive(Debug, Default)]
struct Inner {
    series: Mutex<Series>,
    inflight: AtomicU64,
    cache_items: AtomicU64,
    cache_bytes: AtomicU64,
    tasks: [AtomicU64; 4],
    overflow: AtomicU64,
    heartbeats: AtomicU64,
}

/// The process's metrics. Cloning is cheap (one `Arc`); every clone records into the same set.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// A poisoned lock only means a panic elsewhere while recording; the counters are still
    /// usable, and metrics must never take the process down.
    fn series(&self) -> MutexGuard<'_, Series> {
        self.inner.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One finished invocation: counts it, observes its duration, and counts a cold start when
    /// the child had to load the bundle (`cold`).
    pub fn record_invocation(
        &self,
        labels: &InvocationLabels<'_>,
        status: ActivationStatus,
        duration_ms: f64,
        cold: bool,
    ) {
        let trigger = if TRIGGERS.contains(&labels.trigger) {
            labels.trigger
        } else {
            "other"
        };
        let mut function = String::new();
        for (name, value) in [
            ("tenant", labels.tenant),
            ("namespace", labels.namespace),
            ("function", labels.function),
            ("version", labels.version),
        ] {
            push_label(&mut function, name, value);
        }
        let mut s = self.series();
        if !s.functions.contains(&function) {
            if s.functions.len() < MAX_FUNCTION_SERIES {
                s.functions.insert(function.clone());
            } else {
                self.inner.overflow.fetch_add(1, Ordering::Relaxed);
                function.clear();
                for name in ["tenant", "namespace", "function", "version"] {
                    push_label(&mut function, name, OVERFLOW);
                }
            }
        }
        push_label(&mut function, "trigger", trigger);
        push_label(&mut function, "status", status.as_str());
        *s.invocations.entry(function).or_insert(0) += 1;
        s.durations
            .entry(status.as_str())
            .or_insert_with(|| Histogram::new(DURATION_BUCKETS_MS))
            .observe(duration_ms);
        if cold {
            let runtime = bounded_key(&s.cold_starts, labels.runtime);
            *s.cold_starts.entry(runtime).or_insert(0) += 1;
        }
    }

    /// Invocations currently holding an in-flight permit.
    pub fn set_inflight(&self, n: usize) {
        self.inner.inflight.store(n as u64, Ordering::Relaxed);
    }

    /// Time between a task's enqueue on `topic` and its claim here.
    pub fn observe_queue_lag(&self, topic: &str, ms: f64) {
        let mut s = self.series();
        let topic = bounded_key(&s.queue_lag, topic);
        s.queue_lag
            .entry(topic)
            .or_insert_with(|| Histogram::new(LAG_BUCKETS_MS))
            .observe(ms);
    }

    /// The bundle cache's current contents.
    pub fn set_cache(&self, items: usize, bytes: u64) {
        self.inner
            .cache_items
            .store(items as u64, Ordering::Relaxed);
        self.inner.cache_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The pool's state, from [`crate::pool::Pool::stats`]: children by state as gauges, and the
    /// pool's own cumulative spawn and kill counts as counters (call it before each render, or
    /// periodically).
    pub fn set_pool(&self, stats: &PoolStats) {
        self.series().pool = Some(PoolSnapshot {
            stem: stats.stem,
            warm: stats.warm,
            busy: stats.busy,
            spawns: stats.spawns,
            spawn_failures: stats.spawn_failures,
            kills: stats.kills.clone(),
        });
    }

    /// `cs.cadence.heartbeat()` calls accepted (of all activations).
    pub fn cadence_heartbeats(&self, n: u64) {
        self.inner.heartbeats.fetch_add(n, Ordering::Relaxed);
    }

    pub fn task_outcome(&self, outcome: TaskOutcome) {
        let i = TaskOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.inner.tasks[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A KVRocks command that failed for infrastructure reasons; `op` names the step
    /// (`get_meta`, `put_activation`, …).
    pub fn store_error(&self, op: &'static str) {
        *self.series().store_errors.entry(op).or_insert(0) += 1;
    }

    /// A codeQ stream error or reconnect; `stream` is `worker` or `producer`.
    pub fn codeq_error(&self, stream: &'static str) {
        *self.series().codeq_errors.entry(stream).or_insert(0) += 1;
    }

    /// The exposition text of every series.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let s = self.series();

        header(
            &mut out,
            "cs_invocations_total",
            "counter",
            "Invocations finished, by function and terminal status.",
        );
        for (labels, n) in &s.invocations {
            let _ = writeln!(out, "cs_invocations_total{{{labels}}} {n}");
        }

        header(
            &mut out,
            "cs_invocation_duration_ms",
            "histogram",
            "Invocation wall time in milliseconds, by terminal status.",
        );
        for (status, h) in &s.durations {
            let mut l = String::new();
            push_label(&mut l, "status", status);
            h.render(&mut out, "cs_invocation_duration_ms", &l);
        }

        gauge(
            &mut out,
            "cs_invoker_inflight",
            "Invocations holding an in-flight permit.",
            self.inner.inflight.load(Ordering::Relaxed),
        );

        header(
            &mut out,
            "cs_invoker_queue_lag_ms",
            "histogram",
            "Milliseconds from enqueue to claim, by topic.",
        );
        for (topic, h) in &s.queue_lag {
            let mut l = String::new();
            push_label(&mut l, "topic", topic);
            h.render(&mut out, "cs_invoker_queue_lag_ms", &l);
        }

        gauge(
            &mut out,
            "cs_invoker_cache_items",
            "Bundles in the bundle cache.",
            self.inner.cache_items.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "cs_invoker_cache_bytes",
            "Bytes of bundles in the bundle cache.",
            self.inner.cache_bytes.load(Ordering::Relaxed),
        );

        header(
            &mut out,
            "cs_invoker_cold_starts_total",
            "counter",
            "Invocations that had to load their bundle into a child first.",
        );
        for (runtime, n) in &s.cold_starts {
            let mut l = String::new();
            push_label(&mut l, "runtime", runtime);
            let _ = writeln!(out, "cs_invoker_cold_starts_total{{{l}}} {n}");
        }

        let pool = s.pool.clone().unwrap_or(PoolSnapshot {
            stem: 0,
            warm: 0,
            busy: 0,
            spawns: 0,
            spawn_failures: 0,
            kills: Vec::new(),
        });
        header(
            &mut out,
            "cs_invoker_pool_children",
            "gauge",
            "Live sandbox children by state.",
        );
        for (state, n) in [
            ("stem", pool.stem),
            ("warm", pool.warm),
            ("busy", pool.busy),
        ] {
            let _ = writeln!(out, "cs_invoker_pool_children{{state=\"{state}\"}} {n}");
        }
        counter(
            &mut out,
            "cs_invoker_pool_spawns_total",
            "Sandbox children started.",
            pool.spawns,
        );
        counter(
            &mut out,
            "cs_invoker_pool_spawn_failures_total",
            "Sandbox children that failed to start.",
            pool.spawn_failures,
        );
        header(
            &mut out,
            "cs_invoker_pool_kills_total",
            "counter",
            "Sandbox children stopped, by reason.",
        );
        let mut kills = pool.kills;
        kills.sort_unstable();
        for (reason, n) in kills {
            let mut l = String::new();
            push_label(&mut l, "reason", reason);
            let _ = writeln!(out, "cs_invoker_pool_kills_total{{{l}}} {n}");
        }

        header(
            &mut out,
            "cs_invoker_tasks_total",
            "counter",
            "Claimed codeQ tasks by how they were answered.",
        );
        for (i, o) in TaskOutcome::ALL.iter().enumerate() {
            let n = self.inner.tasks[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "cs_invoker_tasks_total{{outcome=\"{}\"}} {n}",
                o.as_str()
            );
        }

        header(
            &mut out,
            "cs_cadence_heartbeat_total",
            "counter",
            "cs.cadence.heartbeat() calls accepted; each extends its task's codeQ lease.",
        );
        let _ = writeln!(
            out,
            "cs_cadence_heartbeat_total {}",
            self.inner.heartbeats.load(Ordering::Relaxed)
        );

        header(
            &mut out,
            "cs_invoker_store_errors_total",
            "counter",
            "KVRocks commands that failed, by operation.",
        );
        for (op, n) in &s.store_errors {
            let mut l = String::new();
            push_label(&mut l, "op", op);
            let _ = writeln!(out, "cs_invoker_store_errors_total{{{l}}} {n}");
        }
        header(
            &mut out,
            "cs_invoker_codeq_errors_total",
            "counter",
            "codeQ stream errors, by stream.",
        );
        for (stream, n) in &s.codeq_errors {
            let mut l = String::new();
            push_label(&mut l, "stream", stream);
            let _ = writeln!(out, "cs_invoker_codeq_errors_total{{{l}}} {n}");
        }

        counter(
            &mut out,
            "cs_invoker_metrics_overflow_total",
            "Invocations counted under _other because the function series limit was reached.",
            self.inner.overflow.load(Ordering::Relaxed),
        );
        out
    }
}

/// `value` itself when it is already a key or there is room for one more, else `other`.
fn bounded_key<V>(map: &BTreeMap<String, V>, value: &str) -> String {
    let v = truncate(value);
    if map.contains_key(v) || map.len() < MAX_SMALL_LABELS {
        v.to_string()
    } else {
        "other".to_string()
    }
}

fn truncate(v: &str) -> &str {
    if v.len() <= MAX_LABEL_BYTES {
        return v;
    }
    let mut end = MAX_LABEL_BYTES;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

/// Appends `name="value"` (comma-separated), escaping as the exposition format requires.
fn push_label(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    for c in truncate(value).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {v}");
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {v}");
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

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn empty_render_has_every_family() {
        let text = Metrics::new().render();
        for name in [
            "cs_invocations_total",
            "cs_invocation_duration_ms",
            "cs_invoker_inflight",
            "cs_invoker_queue_lag_ms",
            "cs_invoker_cache_items",
            "cs_invoker_cache_bytes",
            "cs_invoker_cold_starts_total",
            "cs_invoker_pool_children",
            "cs_invoker_pool_spawns_total",
            "cs_invoker_pool_kills_total",
            "cs_invoker_tasks_total",
            "cs_invoker_store_errors_total",
            "cs_invoker_codeq_errors_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains("cs_invoker_inflight 0\n"));
        assert!(text.contains("cs_invoker_tasks_total{outcome=\"abandoned\"} 0\n"));
        assert!(text.contains("cs_invoker_pool_children{state=\"busy\"} 0\n"));
    }

    #[test]
    fn invocations_durations_and_cold_starts() {
        let m = Metrics::new();
        let other = m.clone();
        m.record_invocation(&labels("f", "http"), ActivationStatus::Success, 3.0, true);
        other.record_invocation(&labels("f", "http"), ActivationStatus::Success, 40.0, false);
        m.record_invocation(&labels("f", "cron"), ActivationStatus::Timeout, 1e9, false);
        let text = m.render();
        assert_eq!(
            line(&text, "cs_invocations_total{"),
            Some("cs_invocations_total{tenant=\"t1\",namespace=\"ns\",function=\"f\",version=\"3\",trigger=\"http\",status=\"success\"} 2")
        );
        assert!(
            text.contains("trigger=\"other\",status=\"timeout\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cs_invocation_duration_ms_bucket{status=\"success\",le=\"1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("cs_invocation_duration_ms_bucket{status=\"success\",le=\"5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cs_invocation_duration_ms_bucket{status=\"success\",le=\"50\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("cs_invocation_duration_ms_bucket{status=\"success\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("cs_invocation_duration_ms_sum{status=\"success\"} 43\n"),
            "{text}"
        );
        assert!(
            text.contains("cs_invocation_duration_ms_count{status=\"success\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("cs_invocation_duration_ms_bucket{status=\"timeout\",le=\"900000\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("cs_invocation_duration_ms_bucket{status=\"timeout\",le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cs_invoker_cold_starts_total{runtime=\"cs-js\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn gauges_pool_tasks_errors() {
        let m = Metrics::new();
        m.set_inflight(7);
        m.set_cache(3, 4096);
        m.observe_queue_lag("cs.invoke", 12.0);
        m.observe_queue_lag("cs.invoke", f64::NAN);
        m.set_pool(&PoolStats {
            stem: 2,
            warm: 1,
            busy: 4,
            spawns: 10,
            spawn_failures: 1,
            invocations: 99,
            kills: vec![("timeout", 2), ("idle", 5)],
        });
        m.task_outcome(TaskOutcome::Completed);
        m.task_outcome(TaskOutcome::Completed);
        m.task_outcome(TaskOutcome::Nacked);
        m.store_error("get_meta");
        m.codeq_error("worker");
        let text = m.render();
        for want in [
            "cs_invoker_inflight 7\n",
            "cs_invoker_cache_items 3\n",
            "cs_invoker_cache_bytes 4096\n",
            "cs_invoker_queue_lag_ms_bucket{topic=\"cs.invoke\",le=\"5\"} 1\n",
            "cs_invoker_queue_lag_ms_bucket{topic=\"cs.invoke\",le=\"25\"} 2\n",
            "cs_invoker_queue_lag_ms_count{topic=\"cs.invoke\"} 2\n",
            "cs_invoker_queue_lag_ms_sum{topic=\"cs.invoke\"} 12\n",
            "cs_invoker_pool_children{state=\"stem\"} 2\n",
            "cs_invoker_pool_children{state=\"warm\"} 1\n",
            "cs_invoker_pool_children{state=\"busy\"} 4\n",
            "cs_invoker_pool_spawns_total 10\n",
            "cs_invoker_pool_spawn_failures_total 1\n",
            "cs_invoker_pool_kills_total{reason=\"idle\"} 5\ncs_invoker_pool_kills_total{reason=\"timeout\"} 2\n",
            "cs_invoker_tasks_total{outcome=\"completed\"} 2\n",
            "cs_invoker_tasks_total{outcome=\"nacked\"} 1\n",
            "cs_invoker_tasks_total{outcome=\"failed\"} 0\n",
            "cs_invoker_store_errors_total{op=\"get_meta\"} 1\n",
            "cs_invoker_codeq_errors_total{stream=\"worker\"} 1\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
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
        m.record_invocation(&l, ActivationStatus::Error, 1.0, false);
        let text = m.render();
        assert!(text.contains("tenant=\"a\\\"b\\\\c\\nd\""), "{text}");
        let ns = format!("namespace=\"{}\"", "é".repeat(64));
        assert!(text.contains(&ns), "{text}");
        // Every sample line is one line: no raw newline escaped into the output.
        assert!(text
            .lines()
            .all(|l| l.starts_with('#') || l.starts_with("cs_")));
    }

    #[test]
    fn cardinality_is_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_FUNCTION_SERIES + 5 {
            let f = format!("f{i}");
            m.record_invocation(&labels(&f, "http"), ActivationStatus::Success, 1.0, false);
        }
        // A function seen before the limit still gets its own series.
        m.record_invocation(&labels("f0", "http"), ActivationStatus::Success, 1.0, false);
        for i in 0..MAX_SMALL_LABELS + 3 {
            m.observe_queue_lag(&format!("t{i}"), 1.0);
        }
        let text = m.render();
        assert!(text.contains("tenant=\"_other\",namespace=\"_other\",function=\"_other\",version=\"_other\",trigger=\"http\",status=\"success\"} 5\n"));
        assert!(
            text.contains("function=\"f0\",version=\"3\",trigger=\"http\",status=\"success\"} 2\n")
        );
        assert!(text.contains("cs_invoker_metrics_overflow_total 5\n"));
        let series = text
            .lines()
            .filter(|l| l.starts_with("cs_invocations_total{"))
            .count();
        assert_eq!(series, MAX_FUNCTION_SERIES + 1);
        assert!(text.contains("cs_invoker_queue_lag_ms_count{topic=\"other\"} 3\n"));
        let topics = text
            .lines()
            .filter(|l| l.starts_with("cs_invoker_queue_lag_ms_count{"))
            .count();
        assert_eq!(topics, MAX_SMALL_LABELS + 1);
    }
}
