//! Span export over OTLP (Sous docs 14): the `cs.invoke` span of each activation and its child
//! spans (bundle load, wait for a child, execute, store writes, publish), sent to a collector
//! over gRPC or HTTP/protobuf with the OpenTelemetry crates. Off by default
//! (`cs_invoker_pool.tracing.enabled`).
//!
//! The ids are the invoker's own ([`crate::trace`]): propagation does not depend on export.
//! The pipeline records the steps' times in an [`ActivationTrace`]; at the end of the
//! activation the spans are built as the SDK's `SpanData` and put on a bounded queue with
//! `try_send` — an activation never waits for, nor fails because of, the collector. One task
//! drains the queue in batches into the OTLP exporter; a full queue or a failed export drops
//! spans, counted ([`SpanSink::dropped`], `cs_invoker_trace_spans_dropped_total`). Not the
//! SDK's `BatchSpanProcessor`: it drops silently, and not `tracing-opentelemetry`, whose span
//! ids exist only when a subscriber exports.

use crate::trace::TraceContext;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// `cs_invoker_pool.tracing`.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    pub enabled: bool,
    /// The collector; `None` leaves it to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, else the OTLP default for the protocol.
    pub endpoint: Option<String>,
    pub protocol: Protocol,
    /// Share of traces exported, 0.0..=1.0 (by trace id, so every replica keeps the same ones);
    /// a trace the producer marked not sampled is never exported.
    pub sampling_ratio: f64,
    pub service_name: String,
    /// Spans waiting for export at most; beyond, new spans are dropped (counted).
    pub queue_size: usize,
}

impl Default for TracingSettings {
    fn default() -> Self {
        TracingSettings {
            enabled: false,
            endpoint: None,
            protocol: Protocol::Grpc,
            sampling_ratio: 1.0,
            service_name: crate::logging::SERVICE.to_string(),
            queue_size: 4096,
        }
    }
}

/// One timed step of an activation: a child span of `cs.invoke`.
#[derive(Debug, Clone)]
struct Step {
    name: &'static str,
    start: SystemTime,
    end: SystemTime,
}

/// The trace context of one activation plus the times of its steps.
#[derive(Debug)]
pub struct ActivationTrace {
    pub ctx: TraceContext,
    pub start: SystemTime,
    steps: Mutex<Vec<Step>>,
}

impl std::ops::Deref for ActivationTrace {
    type Target = TraceContext;
    fn deref(&self) -> &TraceContext {
        &self.ctx
    }
}

impl ActivationTrace {
    pub fn new(ctx: TraceContext) -> ActivationTrace {
        ActivationTrace {
            ctx,
            start: SystemTime::now(),
            steps: Mutex::new(Vec::new()),
        }
    }

    /// Records a step that ran from `start` until now.
    pub fn step(&self, name: &'static str, start: SystemTime) {
        self.step_between(name, start, SystemTime::now());
    }

    pub fn step_between(&self, name: &'static str, start: SystemTime, end: SystemTime) {
        let mut s = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: an activation has a handful of steps; a republish loop cannot grow this.
        if s.len() < 32 {
            s.push(Step { name, start, end });
        }
    }
}

/// What the `cs.invoke` span says about the activation.
#[derive(Debug, Clone, Default)]
pub struct InvokeAttributes {
    pub activation_id: String,
    pub tenant: String,
    pub namespace: String,
    pub function: String,
    pub version: Option<u64>,
    pub trigger: String,
    /// `success`, `error`, `timeout`, or `retry` (not terminal).
    pub status: String,
    pub cold_start: bool,
}

/// The export side: a bounded queue and the task that drains it.
pub struct SpanSink {
    tx: mpsc::Sender<SpanData>,
    dropped: Arc<AtomicU64>,
    exported: Arc<AtomicU64>,
    ratio: f64,
}

impl std::fmt::Debug for SpanSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpanSink")
    }
}

/// Spans per export call at most.
const BATCH: usize = 512;
/// How long spans wait for a fuller batch.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// An export that takes longer is given up (its spans counted as dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP exporter could not be built from `cs_invoker_pool.tracing` (e.g. a bad endpoint).
#[derive(Debug, thiserror::Error)]
#[error("cs_invoker_pool.tracing: cannot build the OTLP exporter: {0}")]
pub struct ExporterError(#[source] opentelemetry_otlp::ExporterBuildError);

impl SpanSink {
    /// Starts the exporter (in the current tokio runtime). `Err` names what is wrong with the
    /// settings.
    pub fn start(s: &TracingSettings) -> Result<SpanSink, ExporterError> {
        let mut exporter = match s.protocol {
            Protocol::Grpc => {
                let mut b = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_timeout(EXPORT_TIMEOUT);
                if let Some(e) = &s.endpoint {
                    b = b.with_endpoint(e.clone());
                }
                b.build()
            }
            Protocol::HttpProtobuf => {
                let mut b = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(EXPORT_TIMEOUT);
                if let Some(e) = &s.endpoint {
                    b = b.with_endpoint(e.clone());
                }
                b.build()
            }
        }
        .map_err(ExporterError)?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(s.service_name.clone())
                .build(),
        );
        let (tx, mut rx) = mpsc::channel::<SpanData>(s.queue_size.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let exported = Arc::new(AtomicU64::new(0));
        let (d, x) = (dropped.clone(), exported.clone());
        tokio::spawn(async move {
            let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
            loop {
                let first = match rx.recv().await {
                    Some(span) => span,
                    None => return,
                };
                batch.push(first);
                let until = tokio::time::Instant::now() + FLUSH_EVERY;
                while batch.len() < BATCH {
                    match tokio::time::timeout_at(until, rx.recv()).await {
                        Ok(Some(span)) => batch.push(span),
                        Ok(None) | Err(_) => break,
                    }
                }
                let n = batch.len() as u64;
                let spans = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(spans)).await {
                    Ok(Ok(())) => {
                        x.fetch_add(n, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => {
                        d.fetch_add(n, Ordering::Relaxed);
                        tracing::warn!(error = %e, spans = n, "span export failed; spans dropped");
                    }
                    Err(_) => {
                        d.fetch_add(n, Ordering::Relaxed);
                        tracing::warn!(spans = n, "span export timed out; spans dropped");
                    }
                }
            }
        });
        Ok(SpanSink {
            tx,
            dropped,
            exported,
            ratio: s.sampling_ratio.clamp(0.0, 1.0),
        })
    }

    /// Spans dropped so far (queue full, export failed or timed out).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Spans the collector accepted so far.
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Whether the trace is exported: the producer's sampled flag, then the ratio over the
    /// trace id's low 8 bytes (the OpenTelemetry `TraceIdRatioBased` rule).
    fn sampled(&self, t: &TraceContext) -> bool {
        if !t.sampled() || self.ratio <= 0.0 {
            return false;
        }
        if self.ratio >= 1.0 {
            return true;
        }
        let mut low = [0u8; 8];
        low.copy_from_slice(&t.trace_id[8..]);
        let x = u64::from_be_bytes(low) >> 1;
        (x as f64) < self.ratio * (1u64 << 63) as f64
    }

    /// Queues the activation's spans; never waits.
    pub fn submit(&self, trace: &ActivationTrace, attrs: &InvokeAttributes) {
        if !self.sampled(trace) {
            return;
        }
        let end = SystemTime::now();
        let trace_id = TraceId::from_bytes(trace.trace_id);
        let root_id = SpanId::from_bytes(trace.span_id);
        let state =
            TraceState::from_key_value(std::iter::empty::<(&str, &str)>()).unwrap_or_default();
        let flags = TraceFlags::new(trace.flags);
        let scope = InstrumentationScope::builder("cs-invoker-pool").build();
        let span =
            |id: SpanId, parent: SpanId, remote: bool, name, start, end, kv, status| SpanData {
                span_context: SpanContext::new(trace_id, id, flags, false, state.clone()),
                parent_span_id: parent,
                parent_span_is_remote: remote,
                span_kind: SpanKind::Internal,
                name: Cow::Borrowed(name),
                start_time: start,
                end_time: end,
                attributes: kv,
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status,
                instrumentation_scope: scope.clone(),
            };
        let mut kv = vec![
            KeyValue::new("activation_id", attrs.activation_id.clone()),
            KeyValue::new("function", attrs.function.clone()),
            KeyValue::new("trigger.type", attrs.trigger.clone()),
            KeyValue::new("tenant", attrs.tenant.clone()),
            KeyValue::new("namespace", attrs.namespace.clone()),
            KeyValue::new("status", attrs.status.clone()),
            KeyValue::new("cold_start", attrs.cold_start),
        ];
        if let Some(v) = attrs.version {
            kv.push(KeyValue::new("version", v as i64));
        }
        let status = match attrs.status.as_str() {
            "success" => Status::Ok,
            "" => Status::Unset,
            other => Status::error(other.to_string()),
        };
        let parent = trace
            .parent_span_id
            .map(SpanId::from_bytes)
            .unwrap_or(SpanId::INVALID);
        let mut spans = vec![span(
            root_id,
            parent,
            trace.parent_span_id.is_some(),
            "cs.invoke",
            trace.start,
            end,
            kv,
            status,
        )];
        let steps = trace
            .steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for s in steps {
            let id = SpanId::from_bytes(crate::trace::new_span_id());
            spans.push(span(
                id,
                root_id,
                false,
                s.name,
                s.start,
                s.end,
                Vec::new(),
                Status::Unset,
            ));
        }
        for s in spans {
            if self.tx.try_send(s).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
