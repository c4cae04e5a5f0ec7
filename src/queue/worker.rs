//! The codeQ worker stream (`/workerpb.WorkerStream/Stream`): claims `cs.invoke` tasks, hands
//! each to a [`TaskHandler`], answers it (Result COMPLETED / FAILED, or Nack), heartbeats long
//! activations, and reconnects without losing an answer.
//!
//! # Capacity
//! The server answers each `Ready` with one delivery (a TaskAssignment, or a TaskBatch of
//! 1..count) and handles events concurrently, so a delivery cannot be matched to one of several
//! outstanding Readys. The client therefore keeps at most one Ready outstanding, for
//! `slots − running` tasks, and sends the next when it is answered or when the server will have
//! forgotten it (`ready_expiry`). A `Ready` that expires is
//! silent on the server's side; the client forgets it at its own estimate and asks again. If a
//! task arrives anyway with no free slot (the estimate was short), it is Abandoned at once,
//! which returns it to the queue immediately: the worker never runs more than `slots` tasks.
//!
//! # Nothing lost
//! Every Result, Nack and Abandon stays in an outbox until its ack arrives, and the outbox is
//! sent again on a new stream. Leases belong to the worker id, which does not change across
//! reconnections, so the answers of tasks claimed on an earlier stream are still accepted.
//! A `not-owner` or `task not found` ack means the lease was lost (it expired and the task went
//! to another worker): the answer is dropped and logged; the activation's terminal
//! compare-and-set already made sure only one result exists.
//!
//! # Result batches
//! Results that are ready at the same moment (concurrent activations finishing together) go
//! out as one `ResultBatch`: the loop takes every message its tasks have queued right now,
//! without waiting for more, so a lone result is sent at once, alone (as a plain `Result`). A
//! batch holds at most [`MAX_RESULT_BATCH`] results and stays under codeQ's 4 MiB message limit
//! ([`MAX_RESULT_BATCH_BYTES`]); the rest starts the next batch. Acks are matched by task id,
//! never by position: a `ResultAckBatch` may answer a batch in any order, and a refused result
//! in it only drops its own answer.
//!
//! # Shutdown
//! [`Worker::shutdown`] stops asking for work, lets running tasks finish until the drain
//! deadline, then Abandons the rest (they return to the queue for another replica) and waits
//! briefly for the acks.

use super::pb::workerpb::{
    self, server_event, worker_event, worker_stream_client::WorkerStreamClient, WorkerEvent,
};
use super::{endpoint_uri, is_handshake_refusal, Backoff, StreamState};
use crate::host::Heartbeat;
use crate::pipeline::Answer;
use crate::secret::Secret;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

/// A claimed task, as the handler sees it.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    pub id: String,
    pub command: String,
    pub payload: Vec<u8>,
    /// Attempts so far, as codeQ counts them.
    pub attempts: i32,
    pub max_attempts: i32,
    pub tenant_id: String,
    /// Sends a Heartbeat for this task now (`cs.cadence.heartbeat()`), at most one per
    /// [`MIN_EXTRA_HEARTBEAT_GAP`]; more calls in that gap are absorbed, so a function calling
    /// it in a loop cannot flood codeQ.
    pub heartbeat: Heartbeat,
    /// The task's claim slot: the handler says when the task waits for capacity of its own
    /// (its function's `maxConcurrency`), so that the slot is given to other work meanwhile.
    pub slot: Slot,
}

/// Shortest gap between two Heartbeats a function asks for (the periodic ones aside).
pub const MIN_EXTRA_HEARTBEAT_GAP: Duration = Duration::from_secs(1);

/// A task's claim slot. While the task is [`Slot::waiting`] it does not count against the
/// worker's `slots` when it asks codeQ for work: a task that waits for its own function's
/// capacity never holds a slot another function's task could use.
#[derive(Debug, Clone)]
pub struct Slot {
    id: String,
    tx: mpsc::UnboundedSender<FromTask>,
}

impl Slot {
    /// The task waits for its own capacity; its slot may be reused.
    pub fn waiting(&self) {
        let _ = self.tx.send(FromTask::Waiting(self.id.clone(), true));
    }

    /// The task runs again (it holds a slot).
    pub fn resumed(&self) {
        let _ = self.tx.send(FromTask::Waiting(self.id.clone(), false));
    }
}

impl crate::pipeline::ports::CapacityWait for Slot {
    fn waiting(&self) {
        Slot::waiting(self)
    }
    fn resumed(&self) {
        Slot::resumed(self)
    }
}

/// Largest message accepted on the worker stream. Above codeQ's 4 MiB on purpose: a task whose
/// payload is too large to run (`max_task_bytes`) must still be received, so it can be answered
/// (FAILED, dead-lettered) instead of failing the whole stream and staying IN_PROGRESS.
pub const MAX_DECODE_BYTES: usize = 64 << 20;

/// Most results in one `ResultBatch`.
pub const MAX_RESULT_BATCH: usize = 256;

/// Bound on a `ResultBatch`'s encoded size, below codeQ's 4 MiB message limit (a single result
/// is bounded below it by the result limits, and is always sent, alone if need be).
pub const MAX_RESULT_BATCH_BYTES: usize = 3 << 20;

/// Protobuf framing of one Result beyond its fields' bytes (tags, length varints, the entry in
/// the batch), an upper bound.
const RESULT_FRAMING_BYTES: usize = 32;

/// What runs a claimed task. The pipeline, wrapped with logs and metrics, in `serve`.
pub trait TaskHandler: Send + Sync + 'static {
    fn handle(&self, task: TaskInfo) -> impl Future<Output = Answer> + Send;
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `host:port` of the worker stream (contract §7 `worker_stream_addr`).
    pub addr: String,
    pub token: Secret,
    /// Stable across reconnections and restarts of this replica: leases belong to it.
    pub worker_id: String,
    /// The command claimed (`cs.invoke`).
    pub command: String,
    /// Lease asked in Ready; heartbeats extend by the same.
    pub lease_seconds: u32,
    /// Tasks run at once (`workers.max_inflight`).
    pub slots: usize,
    /// How long the server holds a Ready before forgetting it silently (codeQ: ~30 s). Err on
    /// the long side: too short risks a second Ready while the first is still held (the extra
    /// task is Abandoned back), too long only delays the next ask of an idle worker.
    pub ready_expiry: Duration,
    /// Heartbeat period for a running task (default: a third of the lease).
    pub heartbeat_every: Duration,
    pub connect_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Longest Nack delay; the delay doubles with the task's attempts up to this.
    pub max_nack_delay_seconds: i32,
}

impl WorkerConfig {
    /// The lease asked for when nothing else is configured (`cs_invoker_pool.codeq.lease_seconds`
    /// defaults to it).
    pub const DEFAULT_LEASE_SECONDS: u32 = 60;

    pub fn new(
        addr: impl Into<String>,
        token: impl Into<Secret>,
        worker_id: impl Into<String>,
    ) -> Self {
        let lease_seconds = Self::DEFAULT_LEASE_SECONDS;
        WorkerConfig {
            addr: addr.into(),
            token: token.into(),
            worker_id: worker_id.into(),
            command: "cs.invoke".into(),
            lease_seconds,
            slots: 64,
            ready_expiry: Duration::from_secs(31),
            heartbeat_every: Duration::from_secs(u64::from(lease_seconds) / 3),
            connect_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            max_nack_delay_seconds: 60,
        }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub claimed: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub nacked: AtomicU64,
    pub abandoned: AtomicU64,
    /// Ready events sent.
    pub readies: AtomicU64,
    /// Streams opened (1 + reconnections).
    pub sessions: AtomicU64,
    /// Answers the server refused (lease lost, task gone).
    pub answers_refused: AtomicU64,
    /// Events that carried finished tasks' answers (a `ResultBatch` counts once).
    pub answer_events: AtomicU64,
}

#[derive(Default)]
struct Shared {
    stream: StreamState,
    running: AtomicUsize,
    counters: WorkerCounters,
}

/// The worker's handle.
pub struct Worker {
    shared: Arc<Shared>,
    drain: watch::Sender<Option<Duration>>,
    join: Mutex<Option<JoinHandle<()>>>,
    addr: String,
}

impl Worker {
    pub fn start<H: TaskHandler>(cfg: WorkerConfig, handler: Arc<H>) -> Worker {
        let shared = Arc::new(Shared::default());
        let (drain, drain_rx) = watch::channel(None);
        let addr = cfg.addr.clone();
        let join = tokio::spawn(Loop::new(cfg, handler, shared.clone(), drain_rx).run());
        Worker {
            shared,
            drain,
            join: Mutex::new(Some(join)),
            addr,
        }
    }

    /// The stream is open (for `/readyz`).
    pub fn is_connected(&self) -> bool {
        self.shared.stream.is_connected()
    }

    /// Tasks being handled now.
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::SeqCst)
    }

    pub fn counters(&self) -> &WorkerCounters {
        &self.shared.counters
    }

    /// Waits for the first handshake. `Err` names a refusal (token, permission) or says the
    /// server could not be reached in time.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), super::WaitError> {
        self.shared
            .stream
            .wait_connected("codeQ worker stream", &self.addr, timeout)
            .await
    }

    /// Stops claiming; running tasks get `drain` to finish, the rest is Abandoned.
    pub fn shutdown(&self, drain: Duration) {
        let _ = self.drain.send(Some(drain));
    }

    /// Waits for the worker to end (after [`Worker::shutdown`]).
    pub async fn join(&self) {
        let join = self.join.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(j) = join {
            let _ = j.await;
        }
    }
}

/// An answer waiting for its ack.
#[derive(Clone)]
enum Pending {
    Result(workerpb::Result),
    Nack(workerpb::Nack),
    Abandon(String),
}

impl Pending {
    /// The events that carry `pending` (in order): runs of Results as `ResultBatch`es within
    /// [`MAX_RESULT_BATCH`] and [`MAX_RESULT_BATCH_BYTES`] (a run of one as a plain `Result`),
    /// every other answer as its own event.
    fn events<'a>(pending: impl IntoIterator<Item = &'a Pending>) -> Vec<WorkerEvent> {
        fn flush(run: &mut Vec<workerpb::Result>, events: &mut Vec<WorkerEvent>) {
            let e = match run.len() {
                0 => return,
                1 => worker_event::Event::Result(run.remove(0)),
                _ => worker_event::Event::ResultBatch(workerpb::ResultBatch {
                    results: std::mem::take(run),
                }),
            };
            events.push(WorkerEvent { event: Some(e) });
        }
        let mut events = Vec::new();
        let mut run: Vec<workerpb::Result> = Vec::new();
        let mut run_bytes = 0;
        for p in pending {
            let Pending::Result(r) = p else {
                flush(&mut run, &mut events);
                run_bytes = 0;
                events.push(p.event());
                continue;
            };
            let bytes = r.task_id.len()
                + r.status.len()
                + r.result_json.len()
                + r.error.len()
                + RESULT_FRAMING_BYTES;
            if !run.is_empty()
                && (run.len() >= MAX_RESULT_BATCH || run_bytes + bytes > MAX_RESULT_BATCH_BYTES)
            {
                flush(&mut run, &mut events);
                run_bytes = 0;
            }
            run_bytes += bytes;
            run.push(r.clone());
        }
        flush(&mut run, &mut events);
        events
    }

    fn event(&self) -> WorkerEvent {
        let e = match self {
            Pending::Result(r) => worker_event::Event::Result(r.clone()),
            Pending::Nack(n) => worker_event::Event::Nack(n.clone()),
            Pending::Abandon(id) => worker_event::Event::Abandon(workerpb::Abandon {
                task_id: id.clone(),
            }),
        };
        WorkerEvent { event: Some(e) }
    }
}

#[derive(Debug)]
enum FromTask {
    Done(String, i32, Box<Answer>),
    Heartbeat(String),
    /// The task waits for (true) or resumed after (false) its own capacity.
    Waiting(String, bool),
}

struct Loop<H> {
    cfg: WorkerConfig,
    handler: Arc<H>,
    shared: Arc<Shared>,
    drain_rx: watch::Receiver<Option<Duration>>,
    /// Running tasks.
    running: HashMap<String, JoinHandle<()>>,
    /// Running tasks that wait for their own capacity: they hold no slot.
    waiting: HashSet<String>,
    outbox: BTreeMap<String, Pending>,
    /// Outstanding Ready counts and when the server will have forgotten each.
    asks: VecDeque<(usize, Instant)>,
    from_tasks_tx: mpsc::UnboundedSender<FromTask>,
    from_tasks: mpsc::UnboundedReceiver<FromTask>,
    drain_deadline: Option<Instant>,
    backoff: Backoff,
}

enum End {
    Refused(String),
    Broken(String),
    Finished,
}

impl<H: TaskHandler> Loop<H> {
    fn new(
        cfg: WorkerConfig,
        handler: Arc<H>,
        shared: Arc<Shared>,
        drain_rx: watch::Receiver<Option<Duration>>,
    ) -> Self {
        let (from_tasks_tx, from_tasks) = mpsc::unbounded_channel();
        let backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        Loop {
            cfg,
            handler,
            shared,
            drain_rx,
            running: HashMap::new(),
            waiting: HashSet::new(),
            outbox: BTreeMap::new(),
            asks: VecDeque::new(),
            from_tasks_tx,
            from_tasks,
            drain_deadline: None,
            backoff,
        }
    }

    fn draining(&self) -> bool {
        self.drain_deadline.is_some()
    }

    /// Slots taken: running tasks that are not waiting for their own capacity.
    fn occupied(&self) -> usize {
        self.running.len().saturating_sub(self.waiting.len())
    }

    fn finished(&self) -> bool {
        self.draining() && self.running.is_empty() && self.outbox.is_empty()
    }

    async fn run(mut self) {
        loop {
            if self.finished() {
                return;
            }
            let end = self.session().await;
            match end {
                End::Finished => {
                    self.shared.stream.set_down(None);
                    return;
                }
                End::Refused(why) => {
                    tracing::error!(addr = %self.cfg.addr, error = %why, "codeQ worker handshake refused");
                    self.shared.stream.set_down(Some(why));
                }
                End::Broken(why) => {
                    tracing::warn!(addr = %self.cfg.addr, error = %why, running = self.running.len(), unacked = self.outbox.len(), "codeQ worker stream down; reconnecting");
                    self.shared.stream.set_down(None);
                }
            }
            // While away: keep collecting answers into the outbox, honour the drain.
            let wake = Instant::now() + self.backoff.next_delay();
            loop {
                if self.drain_passed() {
                    // Nobody can be told any more; what runs is abandoned by lease expiry.
                    self.abort_running();
                    if self.outbox.is_empty() || Instant::now() >= self.give_up_at() {
                        return;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => break,
                    m = self.from_tasks.recv() => if let Some(m) = m { self.on_task_message(m, None).await; },
                    _ = self.drain_rx.changed() => self.on_drain_signal(),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }

    fn on_drain_signal(&mut self) {
        if let Some(d) = *self.drain_rx.borrow() {
            if self.drain_deadline.is_none() {
                tracing::info!(
                    drain_ms = d.as_millis() as u64,
                    running = self.running.len(),
                    "worker draining: no more claims"
                );
                self.drain_deadline = Some(Instant::now() + d);
            }
        }
    }

    fn drain_passed(&self) -> bool {
        matches!(self.drain_deadline, Some(d) if Instant::now() >= d)
    }

    /// After the drain deadline, acks for the abandons are awaited this much longer.
    fn give_up_at(&self) -> Instant {
        self.drain_deadline.unwrap_or_else(Instant::now) + Duration::from_secs(3)
    }

    fn abort_running(&mut self) {
        self.waiting.clear();
        for (id, h) in self.running.drain() {
            h.abort();
            self.shared
                .counters
                .abandoned
                .fetch_add(1, Ordering::Relaxed);
            self.outbox.insert(id.clone(), Pending::Abandon(id));
        }
        self.shared.running.store(0, Ordering::SeqCst);
    }

    async fn session(&mut self) -> End {
        let endpoint = match tonic::transport::Endpoint::from_shared(endpoint_uri(&self.cfg.addr)) {
            Ok(e) => e.connect_timeout(self.cfg.connect_timeout),
            Err(e) => return End::Refused(format!("bad worker address {:?}: {e}", self.cfg.addr)),
        };
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => return End::Broken(format!("connect {}: {e}", self.cfg.addr)),
        };
        let (out, out_rx) = mpsc::channel::<WorkerEvent>(4096);
        let hello = WorkerEvent {
            event: Some(worker_event::Event::Hello(workerpb::Hello {
                token: self.cfg.token.expose().to_string(),
                worker_id: self.cfg.worker_id.clone(),
            })),
        };
        if out.send(hello).await.is_err() {
            return End::Broken("stream closed before hello".into());
        }
        // Explicit limits: answers are bounded far below codeQ's 4 MiB (the result limits);
        // deliveries may be larger than what we run, see MAX_DECODE_BYTES.
        let mut client = WorkerStreamClient::new(channel)
            .max_decoding_message_size(MAX_DECODE_BYTES)
            .max_encoding_message_size(4 << 20);
        let timeout = self.cfg.connect_timeout;
        let mut inbound =
            match tokio::time::timeout(timeout, client.stream(ReceiverStream::new(out_rx))).await {
                Ok(Ok(r)) => r.into_inner(),
                Ok(Err(s)) if is_handshake_refusal(&s) => return End::Refused(refusal(&s)),
                Ok(Err(s)) => return End::Broken(format!("open stream: {s}")),
                Err(_) => return End::Broken("open stream: timed out".into()),
            };
        match tokio::time::timeout(timeout, inbound.next()).await {
            Ok(Some(Ok(ev))) => match ev.event {
                Some(server_event::Event::HelloAck(_)) => {}
                other => return End::Broken(format!("expected HelloAck, got {other:?}")),
            },
            Ok(Some(Err(s))) if is_handshake_refusal(&s) => return End::Refused(refusal(&s)),
            Ok(Some(Err(s))) => return End::Broken(format!("handshake: {s}")),
            Ok(None) => return End::Broken("stream ended during the handshake".into()),
            Err(_) => return End::Broken("no HelloAck in time".into()),
        }
        self.shared.stream.set_open();
        self.shared
            .counters
            .sessions
            .fetch_add(1, Ordering::Relaxed);
        self.backoff.reset();
        // Readys die with the stream they were sent on.
        self.asks.clear();
        tracing::info!(addr = %self.cfg.addr, worker_id = %self.cfg.worker_id, resend = self.outbox.len(), running = self.running.len(), "codeQ worker stream open");
        for ev in Pending::events(self.outbox.values()) {
            if out.send(ev).await.is_err() {
                return End::Broken("stream closed while re-sending".into());
            }
        }

        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.finished() {
                return self.close_cleanly(out, &mut inbound).await;
            }
            if self.drain_passed() {
                self.abort_running();
                for p in self.outbox.values() {
                    let _ = out.send(p.event()).await;
                }
                if Instant::now() >= self.give_up_at() {
                    return End::Finished;
                }
            }
            if let Err(e) = self.ask_for_work(&out).await {
                return End::Broken(e);
            }
            tokio::select! {
                msg = inbound.next() => match msg {
                    Some(Ok(ev)) => if let Err(e) = self.on_server_event(ev, &out).await { return End::Broken(e) },
                    Some(Err(s)) => return End::Broken(format!("stream: {s}")),
                    None => return End::Broken("server closed the stream".into()),
                },
                m = self.from_tasks.recv() => if let Some(m) = m { self.on_task_messages(m, &out).await },
                _ = self.drain_rx.changed() => self.on_drain_signal(),
                _ = tick.tick() => {}
            }
        }
    }

    /// `first` and every other message the tasks queued by now (never waiting for more); the
    /// Results among them go out together, in batches (see the module documentation).
    async fn on_task_messages(&mut self, first: FromTask, out: &mpsc::Sender<WorkerEvent>) {
        // One pass of the scheduler first: tasks that are finishing at this moment (woken by
        // the same store or codeQ reply) queue their answers too. With nothing else runnable
        // this returns at once, so a lone result is not held back.
        tokio::task::yield_now().await;
        let mut done: Vec<String> = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                FromTask::Done(..) => {
                    if let Some(id) = self.on_task_message(m, None).await {
                        done.push(id);
                    }
                }
                m => {
                    self.on_task_message(m, Some(out)).await;
                }
            }
            if done.len() < 4 * MAX_RESULT_BATCH {
                next = self.from_tasks.try_recv().ok();
            }
        }
        let answers = done.iter().filter_map(|id| self.outbox.get(id));
        for ev in Pending::events(answers) {
            self.shared
                .counters
                .answer_events
                .fetch_add(1, Ordering::Relaxed);
            if out.send(ev).await.is_err() {
                return; // the session notices the closed stream; the outbox keeps them
            }
        }
    }

    /// The end of a drain: nothing runs, every answer is acknowledged. Resetting the stream now
    /// would drop whatever codeQ is delivering for the Ready still outstanding (those tasks
    /// would wait for their lease to expire, and lose an attempt). Instead: half-close our
    /// side, read until the server ends the stream (or forgets the Ready), and Abandon every
    /// task delivered meanwhile — on a new stream, since this one is closed for sending; the
    /// lease belongs to the worker id, so the Abandon is accepted there.
    async fn close_cleanly(
        &mut self,
        out: mpsc::Sender<WorkerEvent>,
        inbound: &mut tonic::Streaming<workerpb::ServerEvent>,
    ) -> End {
        drop(out);
        let now = Instant::now();
        let ready_gone = self
            .asks
            .iter()
            .map(|(_, exp)| *exp)
            .max()
            .unwrap_or(now + Duration::from_millis(500));
        let until = ready_gone
            .max(now + Duration::from_millis(200))
            .min(self.give_up_at().max(now + Duration::from_millis(200)));
        loop {
            let msg = tokio::select! {
                m = inbound.next() => m,
                _ = tokio::time::sleep_until(until) => break,
            };
            use server_event::Event as E;
            match msg {
                Some(Ok(ev)) => match ev.event {
                    Some(E::Task(a)) => {
                        if let Some(t) = a.task {
                            self.abandon_late(t.id);
                        }
                    }
                    Some(E::TaskBatch(b)) => {
                        for t in b.tasks {
                            self.abandon_late(t.id);
                        }
                    }
                    Some(E::ResultAck(a)) => {
                        self.on_ack(&a.task_id, a.ok, &a.error_message, "result")
                    }
                    Some(E::NackAck(a)) => self.on_ack(&a.task_id, a.ok, &a.error_message, "nack"),
                    Some(E::AbandonAck(a)) => {
                        self.on_ack(&a.task_id, a.ok, &a.error_message, "abandon")
                    }
                    _ => {}
                },
                Some(Err(_)) | None => break,
            }
        }
        if self.outbox.is_empty() {
            End::Finished
        } else {
            End::Broken("tasks delivered during the drain are abandoned on a new stream".into())
        }
    }

    /// A task delivered after the stream was half-closed: abandoned on the next stream.
    fn abandon_late(&mut self, id: String) {
        tracing::info!(task_id = %id, "task delivered during the drain; abandoning it");
        self.shared
            .counters
            .abandoned
            .fetch_add(1, Ordering::Relaxed);
        self.outbox.insert(id.clone(), Pending::Abandon(id));
    }

    /// Sends Ready for the free, not yet asked-for slots.
    async fn ask_for_work(&mut self, out: &mpsc::Sender<WorkerEvent>) -> Result<(), String> {
        let now = Instant::now();
        while matches!(self.asks.front(), Some((_, exp)) if *exp <= now) {
            self.asks.pop_front();
        }
        // One Ready at a time: deliveries do not say which Ready they answer, and codeQ
        // handles events concurrently, so with several outstanding the client could not tell
        // which one is spent. The next one goes out when this one is answered or expires.
        if self.draining() || !self.asks.is_empty() {
            return Ok(());
        }
        let asked: usize = self.asks.iter().map(|(n, _)| n).sum();
        let free = self
            .cfg
            .slots
            .saturating_sub(self.occupied())
            .saturating_sub(asked);
        if free == 0 {
            return Ok(());
        }
        let count = i32::try_from(free).unwrap_or(i32::MAX);
        let ready = WorkerEvent {
            event: Some(worker_event::Event::Ready(workerpb::Ready {
                commands: vec![self.cfg.command.clone()],
                lease_seconds: i32::try_from(self.cfg.lease_seconds).unwrap_or(i32::MAX),
                count,
            })),
        };
        out.send(ready)
            .await
            .map_err(|_| "stream closed".to_string())?;
        self.shared.counters.readies.fetch_add(1, Ordering::Relaxed);
        self.asks.push_back((free, now + self.cfg.ready_expiry));
        Ok(())
    }

    async fn on_server_event(
        &mut self,
        ev: workerpb::ServerEvent,
        out: &mpsc::Sender<WorkerEvent>,
    ) -> Result<(), String> {
        use server_event::Event as E;
        match ev.event {
            Some(E::Task(a)) => {
                if let Some(t) = a.task {
                    self.on_tasks(vec![t], out).await?;
                }
            }
            Some(E::TaskBatch(b)) => self.on_tasks(b.tasks, out).await?,
            Some(E::ResultAck(a)) => self.on_ack(&a.task_id, a.ok, &a.error_message, "result"),
            Some(E::ResultAckBatch(b)) => {
                for a in b.acks {
                    self.on_ack(&a.task_id, a.ok, &a.error_message, "result");
                }
            }
            Some(E::NackAck(a)) => {
                if a.dlq {
                    tracing::warn!(task_id = %a.task_id, "task dead-lettered by codeQ after its last attempt");
                }
                self.on_ack(&a.task_id, a.ok, &a.error_message, "nack");
            }
            Some(E::AbandonAck(a)) => self.on_ack(&a.task_id, a.ok, &a.error_message, "abandon"),
            Some(E::HeartbeatAck(a)) => {
                if !a.ok {
                    tracing::warn!(task_id = %a.task_id, error = %a.error_message, "heartbeat refused: the lease may be lost");
                }
            }
            Some(E::Error(e)) => {
                tracing::warn!(code = %e.code, message = %e.message, "codeQ worker server error");
            }
            Some(E::HelloAck(_)) | None => {}
        }
        Ok(())
    }

    fn on_ack(&mut self, task_id: &str, ok: bool, error: &str, what: &str) {
        if self.outbox.remove(task_id).is_none() {
            return;
        }
        if !ok {
            self.shared
                .counters
                .answers_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                task_id,
                error,
                what,
                "codeQ refused the answer (lease lost or task gone); dropped"
            );
        }
    }

    async fn on_tasks(
        &mut self,
        tasks: Vec<workerpb::Task>,
        out: &mpsc::Sender<WorkerEvent>,
    ) -> Result<(), String> {
        // One delivery (a TaskAssignment or a TaskBatch of 1..count) answers one Ready, the
        // oldest outstanding one, however many tasks it carries: the rest of that Ready's count
        // is not owed any more.
        self.asks.pop_front();
        for t in tasks {
            if self.draining()
                || self.occupied() >= self.cfg.slots
                || self.running.contains_key(&t.id)
            {
                // No slot (or already running it): give it straight back.
                tracing::warn!(task_id = %t.id, running = self.running.len(), "no free slot; abandoning an extra task");
                let p = Pending::Abandon(t.id.clone());
                out.send(p.event())
                    .await
                    .map_err(|_| "stream closed".to_string())?;
                self.outbox.insert(t.id, p);
                continue;
            }
            self.shared.counters.claimed.fetch_add(1, Ordering::Relaxed);
            let heartbeat = {
                let (tx, id) = (self.from_tasks_tx.clone(), t.id.clone());
                let last: Mutex<Option<Instant>> = Mutex::new(None);
                Heartbeat::new(move || {
                    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                    if last.is_some_and(|at| at.elapsed() < MIN_EXTRA_HEARTBEAT_GAP) {
                        return;
                    }
                    *last = Some(Instant::now());
                    let _ = tx.send(FromTask::Heartbeat(id.clone()));
                })
            };
            let info = TaskInfo {
                id: t.id.clone(),
                command: t.command,
                payload: t.payload,
                attempts: t.attempts,
                max_attempts: t.max_attempts,
                tenant_id: t.tenant_id,
                heartbeat,
                slot: Slot {
                    id: t.id.clone(),
                    tx: self.from_tasks_tx.clone(),
                },
            };
            let handler = self.handler.clone();
            let tx = self.from_tasks_tx.clone();
            let every = self.cfg.heartbeat_every.max(Duration::from_millis(200));
            let id = t.id.clone();
            let attempts = t.attempts;
            let handle = tokio::spawn(async move {
                let work = handler.handle(info);
                tokio::pin!(work);
                let mut beat = tokio::time::interval_at(Instant::now() + every, every);
                loop {
                    tokio::select! {
                        answer = &mut work => {
                            let _ = tx.send(FromTask::Done(id, attempts, Box::new(answer)));
                            return;
                        }
                        _ = beat.tick() => { let _ = tx.send(FromTask::Heartbeat(id.clone())); }
                    }
                }
            });
            self.running.insert(t.id, handle);
        }
        self.shared
            .running
            .store(self.running.len(), Ordering::SeqCst);
        Ok(())
    }

    /// Handles one message; a finished task's answer goes into the outbox, and is sent on
    /// `out` when given. Returns the task id of an answer put in the outbox.
    async fn on_task_message(
        &mut self,
        m: FromTask,
        out: Option<&mpsc::Sender<WorkerEvent>>,
    ) -> Option<String> {
        match m {
            FromTask::Waiting(id, true) => {
                if self.running.contains_key(&id) {
                    self.waiting.insert(id);
                }
            }
            FromTask::Waiting(id, false) => {
                self.waiting.remove(&id);
            }
            FromTask::Heartbeat(id) => {
                if let (Some(out), true) = (out, self.running.contains_key(&id)) {
                    let hb = WorkerEvent {
                        event: Some(worker_event::Event::Heartbeat(workerpb::Heartbeat {
                            task_id: id,
                            extend_seconds: i32::try_from(self.cfg.lease_seconds)
                                .unwrap_or(i32::MAX),
                        })),
                    };
                    let _ = out.send(hb).await;
                }
            }
            FromTask::Done(id, attempts, answer) => {
                self.waiting.remove(&id);
                // None: aborted at the drain deadline and already abandoned.
                self.running.remove(&id)?;
                self.shared
                    .running
                    .store(self.running.len(), Ordering::SeqCst);
                let c = &self.shared.counters;
                let pending = match *answer {
                    Answer::Completed(result) => {
                        c.completed.fetch_add(1, Ordering::Relaxed);
                        let json = serde_json::to_vec(&result).unwrap_or_else(|_| b"{}".to_vec());
                        Pending::Result(workerpb::Result {
                            task_id: id.clone(),
                            status: "COMPLETED".into(),
                            result_json: json,
                            error: String::new(),
                        })
                    }
                    Answer::Failed { error } => {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                        let error = if error.is_empty() {
                            "failed".to_string()
                        } else {
                            error
                        };
                        Pending::Result(workerpb::Result {
                            task_id: id.clone(),
                            status: "FAILED".into(),
                            result_json: Vec::new(),
                            error,
                        })
                    }
                    Answer::RetryLater { reason, .. } => {
                        c.nacked.fetch_add(1, Ordering::Relaxed);
                        Pending::Nack(workerpb::Nack {
                            task_id: id.clone(),
                            delay_seconds: self.nack_delay(attempts),
                            reason,
                        })
                    }
                };
                if let Some(out) = out {
                    let _ = out.send(pending.event()).await;
                }
                self.outbox.insert(id.clone(), pending);
                return Some(id);
            }
        }
        None
    }

    /// 1 s, doubling with the task's attempts, capped at `max_nack_delay_seconds`: a store
    /// outage should not spin a task through the queue, nor park it for long once it is over.
    fn nack_delay(&self, attempts: i32) -> i32 {
        let doubled = 1i64 << attempts.clamp(0, 16);
        i32::try_from(doubled)
            .unwrap_or(i32::MAX)
            .min(self.cfg.max_nack_delay_seconds.max(1))
    }
}

fn refusal(s: &tonic::Status) -> String {
    format!(
        "codeQ refused the worker handshake ({:?}): {} — check plugins.messaging.codeq.worker_token \
         (or CS_CODEQ_WORKER_TOKEN)",
        s.code(),
        s.message()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: usize, json_bytes: usize) -> Pending {
        Pending::Result(workerpb::Result {
            task_id: format!("t{id}"),
            status: "COMPLETED".into(),
            result_json: vec![b' '; json_bytes],
            error: String::new(),
        })
    }

    fn shape(events: &[WorkerEvent]) -> Vec<(char, usize)> {
        events
            .iter()
            .map(|e| match &e.event {
                Some(worker_event::Event::ResultBatch(b)) => ('B', b.results.len()),
                Some(worker_event::Event::Result(_)) => ('R', 1),
                Some(worker_event::Event::Nack(_)) => ('N', 1),
                _ => ('?', 0),
            })
            .collect()
    }

    #[test]
    fn results_split_at_the_count_and_the_byte_bound() {
        let many: Vec<Pending> = (0..MAX_RESULT_BATCH + 44).map(|i| result(i, 10)).collect();
        assert_eq!(
            shape(&Pending::events(&many)),
            vec![('B', MAX_RESULT_BATCH), ('B', 44)]
        );
        // 1 MiB results: at most two fit under the 3 MiB bound; the last goes alone.
        let big: Vec<Pending> = (0..5).map(|i| result(i, 1 << 20)).collect();
        let events = Pending::events(&big);
        assert_eq!(shape(&events), vec![('B', 2), ('B', 2), ('R', 1)]);
        for e in &events {
            assert!(prost::Message::encoded_len(e) < MAX_RESULT_BATCH_BYTES);
        }
        // The results keep their order and ids.
        let ids: Vec<String> = events
            .iter()
            .flat_map(|e| match &e.event {
                Some(worker_event::Event::ResultBatch(b)) => {
                    b.results.iter().map(|r| r.task_id.clone()).collect()
                }
                Some(worker_event::Event::Result(r)) => vec![r.task_id.clone()],
                _ => vec![],
            })
            .collect();
        assert_eq!(ids, ["t0", "t1", "t2", "t3", "t4"]);
        // One result larger than the bound still goes, alone.
        let huge = [
            result(0, 10),
            result(1, MAX_RESULT_BATCH_BYTES),
            result(2, 10),
        ];
        assert_eq!(
            shape(&Pending::events(&huge)),
            vec![('R', 1), ('R', 1), ('R', 1)]
        );
        // A lone result is a plain Result; a Nack is its own event between runs.
        assert_eq!(shape(&Pending::events(&[result(0, 1)])), vec![('R', 1)]);
        let nack = Pending::Nack(workerpb::Nack {
            task_id: "n".into(),
            delay_seconds: 1,
            reason: "r".into(),
        });
        let mixed = [result(0, 1), result(1, 1), nack, result(2, 1)];
        assert_eq!(
            shape(&Pending::events(&mixed)),
            vec![('B', 2), ('N', 1), ('R', 1)]
        );
    }
}
