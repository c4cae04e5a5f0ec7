//! `cs-invoker-pool serve`: the production daemon. Wires the concrete parts together — the
//! sandbox and pool, the KVRocks store, the codeQ producer and worker streams, the pipeline,
//! and the health and metrics endpoints — and runs until SIGTERM or SIGINT.
//!
//! Start-up is strict about configuration and lenient about dependencies: a bad key, a refused
//! codeQ token or a sandbox that cannot confine (unless explicitly allowed) stops the daemon
//! with a message naming the problem; KVRocks or codeQ being away only makes `/readyz` answer
//! 503 until they are back.
//!
//! Shutdown: stop claiming, let in-flight activations finish within `drain_seconds`, Abandon
//! the rest to codeQ, stop the children, exit 0.

use crate::config::Config;
use crate::endpoints::{self, EndpointState, FnReadiness, ReadyReport};
use crate::host::http::HttpFetcher;
use crate::host::service::ServiceHost;
use crate::metrics::{InvocationLabels, Metrics, TaskOutcome};
use crate::pipeline::{Answer, Pipeline, PipelineConfig, Processed, RetryCause, TaskContext};
use crate::pool::Pool;
use crate::queue::producer::{ProducerClient, ProducerConfig};
use crate::queue::worker::{TaskHandler, TaskInfo, Worker, WorkerConfig};
use crate::queue::WaitError;
use crate::sandbox::{required_by_env, Sandbox};
use crate::store::{RedisStore, Store};
use sandbox_proto::messages::Status;
use std::sync::Arc;
use std::time::Duration;

/// How long start-up waits for each codeQ stream before going on not-ready.
const STARTUP_CONNECT_WAIT: Duration = Duration::from_secs(5);

type ServePipeline =
    Pipeline<RedisStore, ProducerClient, Pool, ServiceHost<RedisStore, ProducerClient>>;

/// The task handler of `serve`: the pipeline plus one structured log line and the metrics of
/// each activation.
struct Handler {
    pipeline: Arc<ServePipeline>,
    metrics: Metrics,
    invoke_topic: String,
}

impl TaskHandler for Handler {
    async fn handle(&self, task: TaskInfo) -> Answer {
        let ctx = TaskContext {
            heartbeat: Some(task.heartbeat.clone()),
        };
        let p = self
            .pipeline
            .process_task(&task.payload, &task.slot, &ctx)
            .await;
        self.record(&task, &p);
        p.answer
    }
}

impl Handler {
    fn record(&self, task: &TaskInfo, p: &Processed) {
        let outcome = match &p.answer {
            Answer::Completed(_) => TaskOutcome::Completed,
            Answer::Failed { .. } => TaskOutcome::Failed,
            Answer::RetryLater { .. } => TaskOutcome::Nacked,
        };
        self.metrics.task_outcome(outcome);
        let Some(a) = &p.activation else {
            if let Answer::Failed { error } = &p.answer {
                tracing::warn!(task_id = %task.id, error = %error, "invalid request dead-lettered");
            }
            return;
        };
        if a.heartbeats > 0 {
            self.metrics.cadence_heartbeats(a.heartbeats);
        }
        if a.redactions > 0 {
            self.metrics.redactions(a.redactions);
        }
        if a.traceparent_malformed {
            self.metrics.traceparent_malformed();
        }
        for (kind, outcome, n) in &a.host_calls {
            self.metrics.host_calls(kind, outcome, u64::from(*n));
        }
        if let Some(lag) = a.queue_lag_ms {
            self.metrics
                .observe_queue_lag(&self.invoke_topic, lag as f64);
        }
        let version = a.version.map(|v| v.to_string()).unwrap_or_default();
        if let (Some(status), false) = (a.status, a.republished || a.lost_race) {
            self.metrics.record_invocation(
                &InvocationLabels {
                    tenant: &a.tenant,
                    namespace: &a.namespace,
                    function: &a.function,
                    version: &version,
                    trigger: &a.trigger,
                    runtime: "cs-js",
                },
                status,
                a.duration_ms as f64,
                a.cold_start,
            );
        }
        match &p.answer {
            Answer::RetryLater { cause, reason } => {
                // Counted by what failed: a codeQ outage is not a store error, and a version
                // with too many waiting (capacity) is no error at all (tasks_total{nacked}).
                match cause {
                    RetryCause::Store => self.metrics.store_error("pipeline"),
                    RetryCause::Queue => self.metrics.codeq_error("producer"),
                    RetryCause::Capacity | RetryCause::Internal => {}
                }
                tracing::warn!(
                    task_id = %task.id, attempts = task.attempts,
                    request_id = %a.request_id, tenant = %a.tenant, namespace = %a.namespace,
                    function = %a.function, activation_id = %a.activation_id,
                    trace_id = a.trace_id.as_deref().unwrap_or(""), cause = cause.as_str(), reason = %reason, "activation deferred: retry later"
                );
            }
            _ => tracing::info!(
                task_id = %task.id,
                request_id = %a.request_id, tenant = %a.tenant, namespace = %a.namespace,
                function = %a.function, version = %version, activation_id = %a.activation_id,
                trace_id = a.trace_id.as_deref().unwrap_or(""),
                status = a.status.map(Status::as_str).unwrap_or(""), duration_ms = a.duration_ms,
                cold_start = a.cold_start, republished = a.republished, executed = a.executed,
                "activation finished"
            ),
        }
    }
}

/// Why the daemon could not start (printed, exit 1). Each says which setting to look at.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "{0}\n(cs_invoker_pool.sandbox.allow_unconfined: true lets the server run \
         unconfined; never do that for untrusted code)"
    )]
    Sandbox(crate::sandbox::SandboxIncomplete),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot start the pool: {0}")]
    Pool(#[from] crate::pool::StartError),
    #[error("plugins.persistence.kvrocks: {0}")]
    Store(crate::store::StoreError),
    /// codeQ refused the handshake (token, permission) or the address is no valid target:
    /// retrying cannot fix it.
    #[error("{0}")]
    CodeqRefused(String),
    #[error("{0}")]
    Tracing(#[from] crate::tracing_otel::ExporterError),
    #[error("cs_invoker_pool.http.addr {addr}: cannot listen: {source}")]
    Listen {
        addr: crate::config::ListenAddr,
        source: std::io::Error,
    },
}

/// Runs the daemon; `Err` is a start-up failure to print (exit 1).
pub async fn serve(cfg: Config) -> Result<(), ServeError> {
    tracing::info!(config = %cfg.summary().replace('\n', "; "), "starting cs-invoker-pool serve");
    for note in &cfg.notes {
        tracing::warn!(note = %note, "configuration note");
    }

    // The sandbox: CS_REQUIRE_SANDBOX=1 is never weakened by the configuration.
    let mut policy = cfg.sandbox_policy();
    policy.require = policy.require || required_by_env();
    let sandbox = Sandbox::prepare(&policy).map_err(ServeError::Sandbox)?;
    for reason in &sandbox.unconfined {
        tracing::warn!(reason = %reason, "running UNCONFINED (cs_invoker_pool.sandbox.allow_unconfined is true)");
    }
    let pool = Arc::new(Pool::start(cfg.pool_config(Arc::new(sandbox))?)?);

    let store = Arc::new(RedisStore::new(cfg.store_config()).map_err(ServeError::Store)?);
    if let Err(e) = store.ping().await {
        tracing::warn!(addr = %cfg.kvrocks.addr, error = %e, "KVRocks not reachable yet; not ready until it is");
    }

    let mut pcfg = ProducerConfig::new(
        cfg.codeq.producer_stream_addr.clone(),
        cfg.codeq.producer_token.clone(),
    );
    pcfg.max_message_bytes = cfg.codeq.max_message_bytes;
    let producer = Arc::new(ProducerClient::start(pcfg));
    match producer.wait_connected(STARTUP_CONNECT_WAIT).await {
        Ok(()) => {}
        Err(WaitError::Refused(e)) => return Err(ServeError::CodeqRefused(e)),
        Err(e) => {
            tracing::warn!(error = %e, "codeQ producer stream not open yet; retrying in the background")
        }
    }

    let http = cfg.http_config();
    if http.allow_private_networks {
        tracing::warn!("cs.http.fetch may reach private networks (cs_invoker_pool.http_fetch.allow_private_networks)");
    }
    let spans = if cfg.tracing.enabled {
        let sink = crate::tracing_otel::SpanSink::start(&cfg.tracing)?;
        tracing::info!(
            endpoint = cfg
                .tracing
                .endpoint
                .as_deref()
                .unwrap_or("(from OTEL_EXPORTER_OTLP_*)"),
            protocol = cfg.tracing.protocol.as_str(),
            "exporting spans over OTLP"
        );
        Some(Arc::new(sink))
    } else {
        None
    };
    let mut pipeline = Pipeline::new(
        PipelineConfig {
            max_inflight: cfg.workers.max_inflight,
            cache_bundles_max: cfg.cache.bundles_max,
            cache_bytes_max: usize::try_from(cfg.cache.bytes_max).unwrap_or(usize::MAX),
            max_error_bytes: cfg.limits.max_error_bytes as usize,
            topics: cfg.codeq.topics.clone(),
            max_publishes: cfg.limits.max_publishes,
            max_message_bytes: cfg.codeq.max_message_bytes,
            max_task_bytes: cfg.codeq.max_task_bytes,
            max_waiting: cfg.workers.max_waiting,
            max_waiting_per_version: cfg.workers.max_waiting_per_version,
        },
        store.clone(),
        producer.clone(),
        pool.clone(),
        Arc::new(ServiceHost::new(
            store.clone(),
            producer.clone(),
            Arc::new(HttpFetcher::new(http)),
        )),
    );
    if let Some(sink) = &spans {
        pipeline = pipeline.with_spans(sink.clone());
    }
    let pipeline = Arc::new(pipeline);

    let metrics = Metrics::with_max_function_series(cfg.metrics.max_function_series);
    let mut wcfg = WorkerConfig::new(
        cfg.codeq.worker_stream_addr.clone(),
        cfg.codeq.worker_token.clone(),
        cfg.codeq.worker_id.clone(),
    );
    wcfg.command = cfg.codeq.topics.invoke.clone();
    wcfg.lease_seconds = u32::try_from(cfg.codeq.lease.as_secs().max(1)).unwrap_or(u32::MAX);
    wcfg.heartbeat_every = (cfg.codeq.lease / 3).max(Duration::from_millis(500));
    wcfg.slots = cfg.workers.max_inflight;
    if let Some(expiry) = cfg.codeq.ready_expiry {
        // codeQ's long-poll is ~30 s; tests run an emulator with a shorter one.
        wcfg.ready_expiry = expiry;
    }
    let worker = Arc::new(Worker::start(
        wcfg,
        Arc::new(Handler {
            pipeline: pipeline.clone(),
            metrics: metrics.clone(),
            invoke_topic: cfg.codeq.topics.invoke.clone(),
        }),
    ));
    match worker.wait_connected(STARTUP_CONNECT_WAIT).await {
        Ok(()) => {}
        Err(WaitError::Refused(e)) => return Err(ServeError::CodeqRefused(e)),
        Err(e) => {
            tracing::warn!(error = %e, "codeQ worker stream not open yet; retrying in the background")
        }
    }

    // Endpoints.
    let readiness = {
        let (store, worker) = (store.clone(), worker.clone());
        FnReadiness(move || {
            let (store, worker) = (store.clone(), worker.clone());
            async move {
                ReadyReport {
                    store: store.ping().await.map_err(|e| e.to_string()),
                    worker_stream: if worker.is_connected() {
                        Ok(())
                    } else {
                        Err("codeQ worker stream not open".into())
                    },
                }
            }
        })
    };
    let scrape = {
        let (pool, pipeline) = (pool.clone(), pipeline.clone());
        Arc::new(move |m: &Metrics| {
            if let Some(sink) = &spans {
                m.set_spans_dropped(sink.dropped());
            }
            m.set_pool(&pool.stats());
            m.set_cache(&pipeline.cache_stats());
            let by_version = pipeline.inflight_by_version();
            m.set_inflight(by_version.iter().map(|(k, n)| {
                (
                    k.tenant.as_str(),
                    k.namespace.as_str(),
                    k.function.as_str(),
                    k.version,
                    *n,
                )
            }));
        })
    };
    let state = EndpointState::new(metrics.clone(), Arc::new(readiness)).with_scrape_hook(scrape);
    let listener = endpoints::bind(&cfg.http_addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: cfg.http_addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(endpoints::serve(listener, state.clone(), async move {
        let _ = http_stopped.await;
    }));
    tracing::info!(http = %local, worker_id = %cfg.codeq.worker_id, "cs-invoker-pool serving");
    notify_systemd("READY=1");

    wait_for_signal().await;
    tracing::info!(
        drain_s = cfg.drain.as_secs(),
        running = worker.running(),
        "stopping: draining in-flight work"
    );
    notify_systemd("STOPPING=1");
    state.set_draining();
    worker.shutdown(cfg.drain);
    worker.join().await;
    pool.shutdown().await;
    let _ = stop_http.send(());
    let _ = http_task.await;
    tracing::info!("cs-invoker-pool stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            // Without signal handlers the daemon cannot stop gracefully; ctrl_c is the fallback.
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Sends `state` to systemd's notification socket when `NOTIFY_SOCKET` is set (Type=notify).
/// An abstract socket is written `@name`.
pub fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create the systemd notification socket");
            return;
        }
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, state, "systemd notification failed");
    }
}
