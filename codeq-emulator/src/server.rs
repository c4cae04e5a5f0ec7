//! The emulator handle: binds, serves both streams, runs the lease reaper, and gives tests a
//! window on the queue. Queue state lives in the handle, not in the server, so a shutdown and
//! restart on the same port behaves like a codeQ restart: connections drop, tasks and leases
//! stay.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::config::{EmulatorConfig, Listen};
use crate::pb::producerpb::producer_stream_server::ProducerStreamServer;
use crate::pb::workerpb::worker_stream_server::WorkerStreamServer;
use crate::producer::ProducerService;
use crate::store::{EnqueueOptions, NewTask, Store, TaskStatus, TaskView};
use crate::worker::WorkerService;

/// How long [`Emulator::shutdown`] waits for connections to wind down before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// State shared by the handle, the services and the reaper.
pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    store: Mutex<Store>,
    /// Woken on every queue change: the `wait_*` helpers wait on it.
    pub(crate) changed: Notify,
    /// Woken when a task may have become claimable: Ready long-polls wait on it, so results
    /// and heartbeats do not wake every waiting poll.
    pub(crate) claimable: Notify,
    ready_expired: AtomicU64,
    ready_waiting: AtomicUsize,
    worker_streams: AtomicU64,
    producer_streams: AtomicU64,
    /// Messages received from clients on worker and producer streams (handshakes included).
    messages_in: AtomicU64,
    rng: AtomicU64,
}

/// Decrements the waiting-Ready count when a long-poll ends, however it ends.
pub(crate) struct ReadyWaiting<'a>(&'a AtomicUsize);

impl Drop for ReadyWaiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    /// Runs `f` on the store. A panic in another holder does not poison the emulator for the
    /// rest of a test run: the store's operations leave it consistent between statements.
    pub(crate) fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut guard = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Like `with_store`, then wakes the `wait_*` helpers.
    pub(crate) fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let out = self.with_store(f);
        self.changed.notify_waiters();
        out
    }

    /// Like `mutate`, for changes that can make a task claimable (create, nack, abandon,
    /// reaping): also wakes the Ready long-polls.
    pub(crate) fn requeue<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let out = self.mutate(f);
        self.claimable.notify_waiters();
        out
    }

    pub(crate) fn note_ready_expired(&self) {
        self.ready_expired.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    pub(crate) fn ready_waiting(&self) -> ReadyWaiting<'_> {
        self.ready_waiting.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
        ReadyWaiting(&self.ready_waiting)
    }

    pub(crate) fn note_worker_stream(&self) {
        self.worker_streams.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    pub(crate) fn note_message_in(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_producer_stream(&self) {
        self.producer_streams.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Sleeps a random time below `handler_jitter` (xorshift; quality is irrelevant here).
    pub(crate) async fn jitter(&self) {
        let max = self.config.handler_jitter.as_nanos();
        if max == 0 {
            return;
        }
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        let nanos = u64::try_from(u128::from(x) % max).unwrap_or(0);
        tokio::time::sleep(Duration::from_nanos(nanos)).await;
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// A serving generation: what `shutdown` stops.
struct Running {
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    reaper: JoinHandle<()>,
}

/// A running codeQ emulator. Dropping it stops serving.
pub struct Emulator {
    shared: Arc<Shared>,
    worker_addr: SocketAddr,
    producer_addr: SocketAddr,
    shared_port: bool,
    running: Option<Running>,
}

impl Emulator {
    /// Binds the configured address(es) (`127.0.0.1:0` by default) and starts serving.
    pub async fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let listen = config.listen;
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            | 1;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(&config)),
            config,
            changed: Notify::new(),
            claimable: Notify::new(),
            ready_expired: AtomicU64::new(0),
            ready_waiting: AtomicUsize::new(0),
            worker_streams: AtomicU64::new(0),
            producer_streams: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
        });
        let (listeners, worker_addr, producer_addr, shared_port) = match listen {
            Listen::Shared(addr) => {
                let l = TcpListener::bind(addr).await?;
                let a = l.local_addr()?;
                (vec![l], a, a, true)
            }
            Listen::Split { worker, producer } => {
                let w = TcpListener::bind(worker).await?;
                let p = TcpListener::bind(producer).await?;
                let (wa, pa) = (w.local_addr()?, p.local_addr()?);
                (vec![w, p], wa, pa, false)
            }
        };
        let mut emulator = Emulator {
            shared,
            worker_addr,
            producer_addr,
            shared_port,
            running: None,
        };
        emulator.serve(listeners);
        Ok(emulator)
    }

    /// Serves on bound listeners: one (both services) or two (worker, producer).
    fn serve(&mut self, listeners: Vec<TcpListener>) {
        let (stop, stop_rx) = watch::channel(false);
        let worker = || {
            WorkerStreamServer::new(WorkerService {
                shared: Arc::clone(&self.shared),
                shutdown: stop_rx.clone(),
            })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
        };
        let producer = || {
            ProducerStreamServer::new(ProducerService {
                shared: Arc::clone(&self.shared),
                shutdown: stop_rx.clone(),
            })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
        };
        let mut servers = Vec::new();
        let mut listeners = listeners.into_iter();
        let spawn = |router: tonic::transport::server::Router, listener: TcpListener| {
            let mut rx = stop_rx.clone();
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            tokio::spawn(async move {
                let signal = async move { stopped(&mut rx).await };
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, signal).await {
                    tracing::error!(error = %e, "codeq emulator server failed");
                }
            })
        };
        if self.shared_port {
            if let Some(l) = listeners.next() {
                let router = Server::builder()
                    .add_service(worker())
                    .add_service(producer());
                servers.push(spawn(router, l));
            }
        } else {
            if let Some(l) = listeners.next() {
                servers.push(spawn(Server::builder().add_service(worker()), l));
            }
            if let Some(l) = listeners.next() {
                servers.push(spawn(Server::builder().add_service(producer()), l));
            }
        }
        let reaper = tokio::spawn(reap_loop(Arc::clone(&self.shared), stop_rx.clone()));
        tracing::info!(worker = %self.worker_addr, producer = %self.producer_addr, "codeq emulator listening");
        self.running = Some(Running {
            stop,
            servers,
            reaper,
        });
    }

    /// Stops serving: open streams end with status Unavailable, connections close, the reaper
    /// pauses. Tasks, leases and counters are kept for [`Emulator::restart`] and assertions.
    pub async fn shutdown(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let _ = running.stop.send(true);
        running.reaper.abort();
        for server in running.servers {
            let abort = server.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
                abort.abort();
            }
        }
        tracing::info!("codeq emulator stopped");
    }

    /// Serves again on the same address(es), with the same state. Lease deadlines kept running
    /// while it was down, so leases that ended meanwhile are reaped at once.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.shutdown().await;
        let mut addrs = vec![self.worker_addr];
        if !self.shared_port {
            addrs.push(self.producer_addr);
        }
        let mut listeners = Vec::new();
        for addr in addrs {
            listeners.push(bind_retrying(addr).await?);
        }
        self.serve(listeners);
        Ok(())
    }

    /// True between start/restart and shutdown.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The worker stream's address (also the producer's when they share a port).
    pub fn addr(&self) -> SocketAddr {
        self.worker_addr
    }

    /// The worker stream's address.
    pub fn worker_addr(&self) -> SocketAddr {
        self.worker_addr
    }

    /// The producer stream's address.
    pub fn producer_addr(&self) -> SocketAddr {
        self.producer_addr
    }

    /// `http://ADDR` of the worker stream, for `Endpoint::from_shared` / `connect`.
    pub fn worker_url(&self) -> String {
        format!("http://{}", self.worker_addr)
    }

    /// `http://ADDR` of the producer stream.
    pub fn producer_url(&self) -> String {
        format!("http://{}", self.producer_addr)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// Creates a task as a producer would; returns its id (the existing id when the idempotency
    /// key is known already).
    pub fn enqueue(
        &self,
        command: &str,
        payload: impl Into<Vec<u8>>,
        opts: EnqueueOptions,
    ) -> String {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut not_before = opts.delay.map(|d| now + d);
        if let Some(run_at) = opts.run_at {
            if let Ok(ahead) = run_at.duration_since(wall) {
                let at = now + ahead;
                not_before = Some(not_before.map_or(at, |nb| nb.max(at)));
            }
        }
        let new = NewTask {
            command: command.to_string(),
            payload: payload.into(),
            priority: opts.priority,
            webhook: opts.webhook.unwrap_or_default(),
            max_attempts: opts.max_attempts,
            idempotency_key: opts.idempotency_key,
            not_before,
            tenant_id: opts
                .tenant
                .unwrap_or_else(|| self.shared.config.default_tenant.clone()),
            trace_parent: String::new(),
            trace_state: String::new(),
        };
        self.shared.requeue(|s| s.create(new, now, wall)).0
    }

    /// A snapshot of one task.
    pub fn task(&self, id: &str) -> Option<TaskView> {
        self.shared.with_store(|s| s.view(id))
    }

    /// Snapshots of every task of `command`, oldest first.
    pub fn tasks(&self, command: &str) -> Vec<TaskView> {
        self.shared.with_store(|s| s.views(Some(command)))
    }

    /// Snapshots of every task, oldest first.
    pub fn all_tasks(&self) -> Vec<TaskView> {
        self.shared.with_store(|s| s.views(None))
    }

    /// Ends a task's lease now; the next reaper pass requeues or dead-letters it.
    pub fn expire_lease(&self, id: &str) -> bool {
        self.shared.mutate(|s| s.expire_lease(id, Instant::now()))
    }

    /// Ready long-polls that expired without a task (and so were answered with nothing).
    pub fn expired_ready_polls(&self) -> u64 {
        self.shared.ready_expired.load(Ordering::Relaxed)
    }

    /// Ready long-polls waiting right now.
    pub fn waiting_ready_polls(&self) -> usize {
        self.shared.ready_waiting.load(Ordering::Relaxed)
    }

    /// Worker streams that completed the handshake, since start.
    pub fn worker_streams_opened(&self) -> u64 {
        self.shared.worker_streams.load(Ordering::Relaxed)
    }

    /// Messages clients sent on worker and producer streams since start (what a benchmark
    /// divides by activations for codeQ messages per activation).
    pub fn messages_received(&self) -> u64 {
        self.shared.messages_in.load(Ordering::Relaxed)
    }

    /// Producer streams that completed the handshake, since start.
    pub fn producer_streams_opened(&self) -> u64 {
        self.shared.producer_streams.load(Ordering::Relaxed)
    }

    /// Waits until `cond` holds (checked on every queue change and every 10 ms); false on
    /// timeout. `cond` may look at the emulator: `emu.wait_until(t, || emu.tasks("x").len() == 3)`.
    pub async fn wait_until(&self, timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            let tick = (tokio::time::Instant::now() + Duration::from_millis(10)).min(deadline);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(tick) => {}
            }
        }
    }

    /// Waits until task `id` exists and satisfies `pred`; on timeout the error describes the
    /// last state seen.
    pub async fn wait_for_task(
        &self,
        id: &str,
        timeout: Duration,
        mut pred: impl FnMut(&TaskView) -> bool,
    ) -> Result<TaskView, String> {
        let mut found = None;
        let ok = self
            .wait_until(timeout, || match self.task(id) {
                Some(view) if pred(&view) => {
                    found = Some(view);
                    true
                }
                _ => false,
            })
            .await;
        match (ok, found) {
            (true, Some(view)) => Ok(view),
            _ => Err(format!(
                "task {id}: condition not met within {timeout:?}; last state: {:?}",
                self.task(id)
            )),
        }
    }

    /// Waits until task `id` has `status`.
    pub async fn wait_for_status(
        &self,
        id: &str,
        status: TaskStatus,
        timeout: Duration,
    ) -> Result<TaskView, String> {
        self.wait_for_task(id, timeout, |t| t.status == status)
            .await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(true);
            running.reaper.abort();
            for server in running.servers {
                server.abort();
            }
        }
    }
}

/// Binds `addr`, retrying briefly: the old listener's socket may still be closing.
async fn bind_retrying(addr: SocketAddr) -> io::Result<TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Requeues expired leases and surfaces due delayed tasks every `reap_interval`.
async fn reap_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let interval = shared.config.reap_interval.max(Duration::from_millis(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped(&mut stop) => return,
        }
        let changed = shared.with_store(|s| s.reap(Instant::now(), SystemTime::now()));
        if changed > 0 {
            tracing::debug!(changed, "leases expired or delayed tasks due");
            shared.changed.notify_waiters();
            shared.claimable.notify_waiters();
        }
    }
}

/// codeQ's gRPC message limit (grpc-go's default receive limit).
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// The status grpc-go ends an RPC with when a received message exceeds its limit
/// (`RESOURCE_EXHAUSTED: grpc: received message larger than max`), for a decode error of tonic
/// that says so; `None` for any other read error.
pub(crate) fn over_limit(status: &tonic::Status) -> Option<tonic::Status> {
    let m = status.message();
    (status.code() == tonic::Code::OutOfRange && m.contains("too large")).then(|| {
        tonic::Status::resource_exhausted(format!("grpc: received message larger than max ({m})"))
    })
}
