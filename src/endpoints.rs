//! The operational HTTP endpoints (contract §8): `/healthz`, `/readyz` and `/metrics`.
//!
//! - `/healthz` answers 200 `ok` as long as the process serves HTTP at all: it is the liveness
//!   probe, and must not depend on KVRocks or codeQ, or an outage of those would get every
//!   replica restarted for nothing.
//! - `/readyz` answers 200 only when the [`Readiness`] check says KVRocks answered PING and the
//!   codeQ worker stream is open, and 503 with a JSON body naming what is not ready otherwise
//!   (and while draining at shutdown, see [`EndpointState::set_draining`]). The check is bounded
//!   by a timeout so a hung store makes the probe fail rather than hang.
//! - `/metrics` is [`Metrics::render`], the OpenMetrics text format.
//!
//! Readiness is a trait object rather than a fixed set of handles so this module does not
//! depend on how the store and the codeQ client are built; the daemon implements it over its
//! own handles (or wraps a closure in [`FnReadiness`]).

use crate::config::ListenAddr;
use crate::metrics::{self, Metrics};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long `/readyz` waits for [`Readiness::check`] by default: under the usual probe timeout
/// (Kubernetes: 1 s default, commonly raised) plus margin would be ideal, but a PING to a
/// healthy KVRocks takes well under a millisecond, so 2 s only trips on a real problem.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The result of one readiness check: each dependency is `Ok` or says why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyReport {
    /// KVRocks answered PING.
    pub store: Result<(), String>,
    /// The codeQ worker stream is open.
    pub worker_stream: Result<(), String>,
}

impl ReadyReport {
    pub fn ready() -> ReadyReport {
        ReadyReport {
            store: Ok(()),
            worker_stream: Ok(()),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.store.is_ok() && self.worker_stream.is_ok()
    }

    fn to_json(&self, draining: bool) -> serde_json::Value {
        let check = |r: &Result<(), String>| match r {
            Ok(()) => serde_json::json!({ "ok": true }),
            Err(e) => serde_json::json!({ "ok": false, "error": e }),
        };
        let mut not_ready = Vec::new();
        if draining {
            not_ready.push("draining");
        }
        if self.store.is_err() {
            not_ready.push("store");
        }
        if self.worker_stream.is_err() {
            not_ready.push("worker_stream");
        }
        serde_json::json!({
            "ready": not_ready.is_empty(),
            "not_ready": not_ready,
            "draining": draining,
            "checks": { "store": check(&self.store), "worker_stream": check(&self.worker_stream) },
        })
    }
}

/// The future of [`Readiness::check`].
pub type ReadyFuture<'a> = Pin<Box<dyn Future<Output = ReadyReport> + Send + 'a>>;

/// Tells `/readyz` whether this replica can do work. Called once per probe; it should PING the
/// store itself (cheap) and read the worker stream's state from a flag the stream task keeps.
pub trait Readiness: Send + Sync + 'static {
    fn check(&self) -> ReadyFuture<'_>;
}

/// A [`Readiness`] from an async closure: `FnReadiness(move || async move { … })`.
pub struct FnReadiness<F>(pub F);

impl<F, Fut> Readiness for FnReadiness<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ReadyReport> + Send + 'static,
{
    fn check(&self) -> ReadyFuture<'_> {
        Box::pin((self.0)())
    }
}

/// A function run before each `/metrics` render, to pull values that are cheaper to read on
/// scrape than to push on every change (the pool's stats, the cache's size).
pub type ScrapeHook = Arc<dyn Fn(&Metrics) + Send + Sync>;

/// What the endpoints serve. Cheap to clone.
#[derive(Clone)]
pub struct EndpointState {
    metrics: Metrics,
    readiness: Arc<dyn Readiness>,
    draining: Arc<AtomicBool>,
    ready_timeout: Duration,
    on_scrape: Option<ScrapeHook>,
}

impl EndpointState {
    pub fn new(metrics: Metrics, readiness: Arc<dyn Readiness>) -> EndpointState {
        EndpointState {
            metrics,
            readiness,
            draining: Arc::new(AtomicBool::new(false)),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            on_scrape: None,
        }
    }

    pub fn with_ready_timeout(mut self, t: Duration) -> EndpointState {
        self.ready_timeout = t;
        self
    }

    pub fn with_scrape_hook(mut self, hook: ScrapeHook) -> EndpointState {
        self.on_scrape = Some(hook);
        self
    }

    /// From now on `/readyz` answers 503 (`"draining"`), so a load balancer or orchestrator
    /// stops counting this replica while in-flight work finishes; `/healthz` and `/metrics`
    /// keep answering. Shared by all clones.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// The routes, for embedding or tests; [`serve`] is the usual entry point.
pub fn router(state: EndpointState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(state)
}

/// Serves the endpoints on `listener` until `shutdown` completes, then finishes the requests
/// in progress and returns.
pub async fn serve(
    listener: TcpListener,
    state: EndpointState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `cs_invoker_pool.http.addr` (Go style: `:8082` is all interfaces). The error names the
/// address and the key, since "address in use" alone does not say which setting to change.
pub async fn bind(addr: &ListenAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr.bind_target()).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {addr} (cs_invoker_pool.http.addr or CS_INVOKER_HTTP_ADDR): {e}"
            ),
        )
    })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(st): State<EndpointState>) -> Response {
    let draining = st.is_draining();
    let report = match tokio::time::timeout(st.ready_timeout, st.readiness.check()).await {
        Ok(r) => r,
        Err(_) => {
            let msg = format!(
                "readiness check did not finish within {} ms",
                st.ready_timeout.as_millis()
            );
            ReadyReport {
                store: Err(msg.clone()),
                worker_stream: Err(msg),
            }
        }
    };
    let code = if report.is_ready() && !draining {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = report.to_json(draining).to_string();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics_handler(State(st): State<EndpointState>) -> Response {
    if let Some(hook) = &st.on_scrape {
        hook(&st.metrics);
    }
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        st.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    struct Fake(Mutex<ReadyReport>);

    impl Readiness for Fake {
        fn check(&self) -> ReadyFuture<'_> {
            let r = self.0.lock().unwrap().clone();
            Box::pin(async move { r })
        }
    }

    struct Running {
        addr: std::net::SocketAddr,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    async fn start(state: EndpointState) -> Running {
        let l = bind(&ListenAddr::parse("127.0.0.1:0").unwrap())
            .await
            .unwrap();
        let addr = l.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(l, state, async move {
            let _ = rx.await;
        }));
        Running { addr, stop, task }
    }

    /// A plain HTTP/1.1 request over TCP; returns (status, headers lower-cased, body).
    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
            .await
            .expect("response in time")
            .unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    #[tokio::test]
    async fn health_ready_metrics() {
        let fake = Arc::new(Fake(Mutex::new(ReadyReport::ready())));
        let metrics = Metrics::new();
        metrics.set_inflight([("t1", "ns", "f", 2, 3)]);
        let scrapes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = scrapes.clone();
        let state = EndpointState::new(metrics, fake.clone()).with_scrape_hook(Arc::new(
            move |m: &Metrics| {
                counted.fetch_add(1, Ordering::SeqCst);
                m.set_cache(&crate::pipeline::cache::CacheStats {
                    items: 9,
                    bytes: 99,
                    hits: 1,
                    misses: 2,
                    ..Default::default()
                });
            },
        ));
        let handle = state.clone();
        let srv = start(state).await;

        let (code, _, body) = get(srv.addr, "/healthz").await;
        assert_eq!((code, body.as_str()), (200, "ok"));

        let (code, head, body) = get(srv.addr, "/readyz").await;
        assert_eq!(code, 200, "{body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ready"], true);

        *fake.0.lock().unwrap() = ReadyReport {
            store: Err("PING: connection refused".into()),
            worker_stream: Ok(()),
        };
        let (code, _, body) = get(srv.addr, "/readyz").await;
        assert_eq!(code, 503);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ready"], false);
        assert_eq!(v["not_ready"], serde_json::json!(["store"]));
        assert_eq!(v["checks"]["store"]["error"], "PING: connection refused");
        assert_eq!(v["checks"]["worker_stream"]["ok"], true);

        *fake.0.lock().unwrap() = ReadyReport {
            store: Ok(()),
            worker_stream: Err("not connected".into()),
        };
        let (code, _, body) = get(srv.addr, "/readyz").await;
        assert_eq!(code, 503);
        assert!(body.contains("\"not_ready\":[\"worker_stream\"]"), "{body}");

        let (code, head, body) = get(srv.addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(
            head.contains("content-type: application/openmetrics-text; version=1.0.0"),
            "{head}"
        );
        assert!(
            body.contains(
                "cs_invoker_inflight{tenant=\"t1\",namespace=\"ns\",function=\"f\",version=\"2\"} 3\n"
            ),
            "{body}"
        );
        assert!(body.contains("cs_invoker_cache_misses_total 2\n"), "{body}");
        assert!(body.contains("cs_invoker_cache_items 9\n"), "{body}");
        assert_eq!(scrapes.load(Ordering::SeqCst), 1);

        // Draining: not ready even though every dependency is fine; health unaffected.
        *fake.0.lock().unwrap() = ReadyReport::ready();
        handle.set_draining();
        let (code, _, body) = get(srv.addr, "/readyz").await;
        assert_eq!(code, 503);
        assert!(body.contains("\"not_ready\":[\"draining\"]"), "{body}");
        assert_eq!(get(srv.addr, "/healthz").await.0, 200);

        assert_eq!(get(srv.addr, "/nope").await.0, 404);

        srv.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), srv.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
        assert!(tokio::net::TcpStream::connect(srv.addr).await.is_err());
    }

    #[tokio::test]
    async fn hung_readiness_times_out() {
        let slow = FnReadiness(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            ReadyReport::ready()
        });
        let state = EndpointState::new(Metrics::new(), Arc::new(slow))
            .with_ready_timeout(Duration::from_millis(50));
        let srv = start(state).await;
        let (code, _, body) = get(srv.addr, "/readyz").await;
        assert_eq!(code, 503);
        assert!(body.contains("did not finish within 50 ms"), "{body}");
        assert!(
            body.contains("\"not_ready\":[\"store\",\"worker_stream\"]"),
            "{body}"
        );
        let _ = srv.stop.send(());
    }

    #[tokio::test]
    async fn bind_errors_name_the_key() {
        let first = bind(&ListenAddr::parse("127.0.0.1:0").unwrap())
            .await
            .unwrap();
        let port = first.local_addr().unwrap().port();
        let taken = ListenAddr::parse(&format!("127.0.0.1:{port}")).unwrap();
        let e = bind(&taken).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains("cs_invoker_pool.http.addr"), "{e}");
        // Go style ":0" binds all interfaces.
        let all = bind(&ListenAddr::parse(":0").unwrap()).await.unwrap();
        assert!(all.local_addr().unwrap().ip().is_unspecified());
    }
}
