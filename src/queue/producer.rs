//! The codeQ producer stream (`/producerpb.ProducerStream/Stream`): publishes envelopes to
//! `cs.results`, the dead-letter topics and user topics as `CreateTask`s.
//!
//! One background task owns the stream. Each publish gets a `seq`; the `CreateAck` with that
//! `seq` answers it (acks arrive in any order). Every publish carries an idempotency key — the
//! caller's (`result:{activation_id}` for results) or a fresh one — so that re-sending the
//! unacknowledged creates after a reconnection never creates a task twice.
//!
//! # Batches
//! Creates that are queued at the same moment (concurrent activations finishing together) go
//! out as one `CreateTaskBatch` instead of one `CreateTask` each: the stream task takes what is
//! ready in its queue without waiting for more, so a lone create is sent at once, alone (as a
//! plain `CreateTask`). A batch holds at most [`MAX_BATCH`] creates and its encoded size stays
//! under `max_message_bytes` (codeQ's 4 MiB): creates that would push it over start the next
//! batch. codeQ answers a batch with one `CreateAckBatch`; the acks are still matched by
//! `seq`, never by position, so a batch's acks may come in any order, split or interleaved with
//! other acks, and a refused create in a batch fails only its own publish.

use super::pb::producerpb::{
    self, producer_event, producer_stream_client::ProducerStreamClient, server_event, ProducerEvent,
};
use super::{endpoint_uri, is_handshake_refusal, Backoff, StreamState};
use crate::pipeline::ports::{PublishError, Publisher, TraceHeaders};
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `host:port` of the producer stream (contract §7 `producer_stream_addr`).
    pub addr: String,
    pub token: Secret,
    /// How long a publish waits for its ack before it reports a transient failure (the create
    /// stays queued and is re-sent, harmlessly, under its idempotency key).
    pub ack_timeout: Duration,
    pub connect_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Creates waiting for an ack (sent or not) beyond which new publishes fail at once.
    pub max_pending: usize,
    /// codeQ's gRPC message limit: a CreateTask over it is refused before it is sent (codeQ
    /// would fail the whole stream, for everyone's publishes).
    pub max_message_bytes: usize,
}

impl ProducerConfig {
    pub fn new(addr: impl Into<String>, token: impl Into<Secret>) -> Self {
        ProducerConfig {
            addr: addr.into(),
            token: token.into(),
            ack_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            max_pending: 10_000,
            max_message_bytes: crate::host::CODEQ_MAX_MESSAGE_BYTES,
        }
    }
}

struct Create {
    command: String,
    payload: Vec<u8>,
    idempotency_key: String,
    trace: TraceHeaders,
    reply: Option<oneshot::Sender<Result<String, PublishError>>>,
    /// Sent on the current stream and not acknowledged yet.
    in_flight: bool,
}

impl Create {
    /// Field bytes plus the protobuf framing (tags, length varints, seq): an upper bound on the
    /// encoded message, computed without copying the payload.
    fn encoded_bound(&self) -> usize {
        self.payload.len()
            + self.command.len()
            + self.idempotency_key.len()
            + self.trace.trace_parent.len()
            + self.trace.trace_state.len()
            + FRAMING_BYTES
    }
}

/// Protobuf framing of a CreateTask inside a ProducerEvent beyond its fields' bytes: tags,
/// length varints (at most 5 bytes each), the seq varint, the oneof wrapper.
const FRAMING_BYTES: usize = 64;

/// Most creates in one `CreateTaskBatch`.
pub const MAX_BATCH: usize = 256;

/// Protobuf framing a CreateTask adds inside a CreateTaskBatch (tag and length varint), and the
/// batch's own wrapper in the ProducerEvent.
const BATCH_ENTRY_BYTES: usize = 8;
const BATCH_FRAMING_BYTES: usize = 16;

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct ProducerCounters {
    /// Creates refused before sending because they exceed the message limit.
    pub too_large: std::sync::atomic::AtomicU64,
    /// Creates given up after codeQ failed the stream over their content.
    pub poisoned: std::sync::atomic::AtomicU64,
}

/// A handle to the producer stream; cheap to share behind an `Arc`.
pub struct ProducerClient {
    tx: mpsc::Sender<Create>,
    state: Arc<StreamState>,
    cfg: ProducerConfig,
    counters: Arc<ProducerCounters>,
}

impl ProducerClient {
    /// Starts the background connection. Use [`ProducerClient::wait_connected`] to learn whether
    /// the first handshake worked.
    pub fn start(cfg: ProducerConfig) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let state = Arc::new(StreamState::default());
        let counters = Arc::new(ProducerCounters::default());
        tokio::spawn(run(cfg.clone(), rx, state.clone(), counters.clone()));
        ProducerClient {
            tx,
            state,
            cfg,
            counters,
        }
    }

    pub fn counters(&self) -> &ProducerCounters {
        &self.counters
    }

    pub fn is_connected(&self) -> bool {
        self.state.is_connected()
    }

    /// Waits up to `timeout` for the stream to be open. `Err` names a handshake refusal (bad
    /// token or permission: a configuration error) or says the server was not reachable.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), super::WaitError> {
        self.state
            .wait_connected("codeQ producer stream", &self.cfg.addr, timeout)
            .await
    }

    /// Creates one task; returns its id.
    pub async fn create(
        &self,
        command: &str,
        payload: Vec<u8>,
        idempotency_key: Option<String>,
    ) -> Result<String, PublishError> {
        self.create_traced(command, payload, idempotency_key, TraceHeaders::default())
            .await
    }

    /// [`ProducerClient::create`] with a W3C trace context in CreateTask fields 10 and 11.
    pub async fn create_traced(
        &self,
        command: &str,
        payload: Vec<u8>,
        idempotency_key: Option<String>,
        trace: TraceHeaders,
    ) -> Result<String, PublishError> {
        let (reply, answer) = oneshot::channel();
        let create = Create {
            command: command.to_string(),
            payload,
            idempotency_key: idempotency_key
                .unwrap_or_else(|| format!("pub:{}", uuid::Uuid::new_v4())),
            trace,
            reply: Some(reply),
            in_flight: false,
        };
        let size = create.encoded_bound();
        if size > self.cfg.max_message_bytes {
            self.counters.too_large.fetch_add(1, Ordering::Relaxed);
            return Err(PublishError {
                transient: false,
                message: format!(
                    "a create on {command} of {size} bytes exceeds codeQ's message limit of {} \
                     bytes",
                    self.cfg.max_message_bytes
                ),
            });
        }
        let transient = |message: String| PublishError {
            transient: true,
            message,
        };
        self.tx
            .try_send(create)
            .map_err(|_| transient("codeQ producer queue is full or closed".into()))?;
        match tokio::time::timeout(self.cfg.ack_timeout, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(transient("codeQ producer stopped".into())),
            Err(_) => Err(transient(format!(
                "no ack from codeQ for a create on {command} within {} ms",
                self.cfg.ack_timeout.as_millis()
            ))),
        }
    }
}

impl Publisher for ProducerClient {
    async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        idempotency_key: Option<String>,
    ) -> Result<(), PublishError> {
        self.create(topic, payload, idempotency_key)
            .await
            .map(|_| ())
    }

    async fn publish_traced(
        &self,
        topic: &str,
        payload: Vec<u8>,
        idempotency_key: Option<String>,
        trace: TraceHeaders,
    ) -> Result<(), PublishError> {
        self.create_traced(topic, payload, idempotency_key, trace)
            .await
            .map(|_| ())
    }
}

/// Why a session ended.
enum End {
    /// Every handle was dropped: stop.
    Closed,
    Refused(String),
    Broken(String),
    /// codeQ failed the stream over the content of a message it received (its size, its
    /// encoding): re-sending that message would fail the next stream too.
    Rejected(String),
}

/// Whether a stream status means the server refused a message we sent for what it is — the
/// same message would fail every stream it is sent on.
fn is_content_rejection(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::ResourceExhausted | tonic::Code::InvalidArgument | tonic::Code::OutOfRange
    )
}

/// After a content rejection: the largest create that was in flight on the failed stream is
/// the one codeQ refused (the size limit is what it enforces); it is given up — its caller gets
/// a permanent error, the operator a log line and a count — so the outbox cannot poison every
/// following stream with it.
fn give_up_poison(pending: &mut BTreeMap<u64, Create>, why: &str, counters: &ProducerCounters) {
    let suspect = pending
        .iter()
        .filter(|(_, c)| c.in_flight)
        .max_by_key(|(s, c)| (c.payload.len(), std::cmp::Reverse(**s)))
        .map(|(s, _)| *s);
    let Some(seq) = suspect else { return };
    let Some(mut c) = pending.remove(&seq) else {
        return;
    };
    counters.poisoned.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        command = %c.command,
        idempotency_key = %c.idempotency_key,
        bytes = c.payload.len(),
        error = %why,
        "codeQ failed the producer stream over a message; that message is given up"
    );
    if let Some(reply) = c.reply.take() {
        let _ = reply.send(Err(PublishError {
            transient: false,
            message: format!("codeQ refused a create on {}: {why}", c.command),
        }));
    }
}

async fn run(
    cfg: ProducerConfig,
    mut rx: mpsc::Receiver<Create>,
    state: Arc<StreamState>,
    counters: Arc<ProducerCounters>,
) {
    let mut pending: BTreeMap<u64, Create> = BTreeMap::new();
    let mut seq: u64 = 0;
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    loop {
        let end = session(&cfg, &mut rx, &mut pending, &mut seq, &state, &mut backoff).await;
        if let End::Rejected(why) = &end {
            give_up_poison(&mut pending, why, &counters);
        }
        for c in pending.values_mut() {
            c.in_flight = false;
        }
        match end {
            End::Closed => {
                state.set_down(None);
                return;
            }
            End::Refused(why) => {
                tracing::error!(addr = %cfg.addr, error = %why, "codeQ producer handshake refused");
                state.set_down(Some(why));
            }
            End::Broken(why) | End::Rejected(why) => {
                tracing::warn!(addr = %cfg.addr, error = %why, pending = pending.len(), "codeQ producer stream down; reconnecting");
                state.set_down(None);
            }
        }
        // Fail what is waiting beyond the bound rather than hold callers forever.
        while pending.len() > cfg.max_pending {
            if let Some((_, mut c)) = pending.pop_first() {
                if let Some(r) = c.reply.take() {
                    let _ = r.send(Err(PublishError {
                        transient: true,
                        message: "codeQ producer backlog full".into(),
                    }));
                }
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            // Keep accepting creates while away; they are sent after the reconnection.
            c = rx.recv() => match c {
                Some(c) => { seq += 1; pending.insert(seq, c); }
                None => return,
            }
        }
    }
}

fn create_task(seq: u64, c: &Create) -> producerpb::CreateTask {
    producerpb::CreateTask {
        seq,
        command: c.command.clone(),
        payload: c.payload.clone(),
        idempotency_key: c.idempotency_key.clone(),
        trace_parent: c.trace.trace_parent.clone(),
        trace_state: c.trace.trace_state.clone(),
        ..Default::default()
    }
}

/// Splits `seqs` (creates in `pending`, in order) into the events that carry them: runs of at
/// most [`MAX_BATCH`] creates whose encoded size stays within `max_bytes`, a run of one as a
/// plain `CreateTask`. Marks each create in flight.
fn batch_events(
    pending: &mut BTreeMap<u64, Create>,
    seqs: &[u64],
    max_bytes: usize,
) -> Vec<ProducerEvent> {
    let mut events = Vec::new();
    let mut run: Vec<producerpb::CreateTask> = Vec::new();
    let mut run_bytes = BATCH_FRAMING_BYTES;
    let flush = |run: &mut Vec<producerpb::CreateTask>, events: &mut Vec<ProducerEvent>| {
        let event = match run.len() {
            0 => return,
            1 => producer_event::Event::Create(run.remove(0)),
            _ => producer_event::Event::CreateBatch(producerpb::CreateTaskBatch {
                tasks: std::mem::take(run),
            }),
        };
        events.push(ProducerEvent { event: Some(event) });
    };
    for seq in seqs {
        let Some(c) = pending.get_mut(seq) else {
            continue;
        };
        c.in_flight = true;
        let bytes = c.encoded_bound() + BATCH_ENTRY_BYTES;
        if !run.is_empty() && (run.len() >= MAX_BATCH || run_bytes + bytes > max_bytes) {
            flush(&mut run, &mut events);
            run_bytes = BATCH_FRAMING_BYTES;
        }
        run_bytes += bytes;
        run.push(create_task(*seq, c));
    }
    flush(&mut run, &mut events);
    events
}

async fn session(
    cfg: &ProducerConfig,
    rx: &mut mpsc::Receiver<Create>,
    pending: &mut BTreeMap<u64, Create>,
    seq: &mut u64,
    state: &StreamState,
    backoff: &mut Backoff,
) -> End {
    let endpoint = match tonic::transport::Endpoint::from_shared(endpoint_uri(&cfg.addr)) {
        Ok(e) => e.connect_timeout(cfg.connect_timeout),
        Err(e) => return End::Refused(format!("bad producer address {:?}: {e}", cfg.addr)),
    };
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => return End::Broken(format!("connect {}: {e}", cfg.addr)),
    };
    let (out, out_rx) = mpsc::channel::<ProducerEvent>(1024);
    let hello = ProducerEvent {
        event: Some(producer_event::Event::Hello(producerpb::Hello {
            token: cfg.token.expose().to_string(),
        })),
    };
    if out.send(hello).await.is_err() {
        return End::Broken("stream closed before hello".into());
    }
    // The encode limit is the configured message limit (creates are checked against it
    // before they are queued); acks are small.
    let mut client = ProducerStreamClient::new(channel)
        .max_encoding_message_size(cfg.max_message_bytes.max(1 << 20))
        .max_decoding_message_size(4 << 20);
    let mut inbound = match tokio::time::timeout(
        cfg.connect_timeout,
        client.stream(ReceiverStream::new(out_rx)),
    )
    .await
    {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(s)) if is_handshake_refusal(&s) => return End::Refused(refusal(&s)),
        Ok(Err(s)) => return End::Broken(format!("open stream: {s}")),
        Err(_) => return End::Broken("open stream: timed out".into()),
    };
    match tokio::time::timeout(cfg.connect_timeout, inbound.next()).await {
        Ok(Some(Ok(ev))) => match ev.event {
            Some(server_event::Event::HelloAck(_)) => {}
            other => return End::Broken(format!("expected HelloAck, got {other:?}")),
        },
        Ok(Some(Err(s))) if is_handshake_refusal(&s) => return End::Refused(refusal(&s)),
        Ok(Some(Err(s))) => return End::Broken(format!("handshake: {s}")),
        Ok(None) => return End::Broken("stream ended during the handshake".into()),
        Err(_) => return End::Broken("no HelloAck in time".into()),
    }
    state.set_open();
    backoff.reset();
    tracing::info!(addr = %cfg.addr, resend = pending.len(), "codeQ producer stream open");

    // What was not acknowledged on the previous stream goes again, same keys.
    let again: Vec<u64> = pending.keys().copied().collect();
    for ev in batch_events(pending, &again, cfg.max_message_bytes) {
        if out.send(ev).await.is_err() {
            return End::Broken("stream closed while re-sending".into());
        }
    }
    let mut ready: Vec<u64> = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            c = rx.recv() => {
                let Some(c) = c else { return End::Closed };
                // One pass of the scheduler, so that activations finishing at this moment queue
                // their creates too (returns at once when nothing else is runnable), then this
                // create and whatever else is queued, without waiting for more.
                tokio::task::yield_now().await;
                ready.clear();
                let mut next = Some(c);
                while let Some(c) = next.take() {
                    *seq += 1;
                    pending.insert(*seq, c);
                    ready.push(*seq);
                    if ready.len() < 4 * MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                for ev in batch_events(pending, &ready, cfg.max_message_bytes) {
                    if out.send(ev).await.is_err() {
                        return End::Broken("stream closed".into());
                    }
                }
            }
            msg = inbound.next() => match msg {
                Some(Ok(ev)) => match ev.event {
                    Some(server_event::Event::CreateAck(a)) => ack(pending, a),
                    Some(server_event::Event::CreateAckBatch(b)) => {
                        for a in b.acks { ack(pending, a) }
                    }
                    Some(server_event::Event::Error(e)) => {
                        tracing::warn!(code = %e.code, message = %e.message, "codeQ producer server error");
                    }
                    Some(server_event::Event::HelloAck(_)) | None => {}
                },
                Some(Err(s)) if is_content_rejection(&s) => {
                    return End::Rejected(format!("stream: {s}"))
                }
                Some(Err(s)) => return End::Broken(format!("stream: {s}")),
                None => return End::Broken("server closed the stream".into()),
            }
        }
    }
}

fn ack(pending: &mut BTreeMap<u64, Create>, a: producerpb::CreateAck) {
    let Some(mut c) = pending.remove(&a.seq) else {
        return; // an ack for a create answered on an earlier stream
    };
    let r = if a.ok {
        Ok(a.task_id)
    } else {
        Err(PublishError {
            transient: false,
            message: format!(
                "codeQ refused a create on {}: {}",
                c.command, a.error_message
            ),
        })
    };
    if let Some(reply) = c.reply.take() {
        let _ = reply.send(r);
    }
}

fn refusal(s: &tonic::Status) -> String {
    format!(
        "codeQ refused the producer handshake ({:?}): {} — check plugins.messaging.codeq.producer_token",
        s.code(),
        s.message()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(bytes: usize) -> Create {
        Create {
            command: "cs.results".into(),
            payload: vec![b'x'; bytes],
            idempotency_key: "k".into(),
            trace: TraceHeaders::default(),
            reply: None,
            in_flight: false,
        }
    }

    fn sizes(events: &[ProducerEvent]) -> Vec<usize> {
        events
            .iter()
            .map(|e| match &e.event {
                Some(producer_event::Event::CreateBatch(b)) => b.tasks.len(),
                Some(producer_event::Event::Create(_)) => 1,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn creates_split_at_the_count_and_the_byte_bound() {
        let limit = crate::host::CODEQ_MAX_MESSAGE_BYTES;
        let mut pending: BTreeMap<u64, Create> = (1..=(MAX_BATCH as u64 + 10))
            .map(|s| (s, create(10)))
            .collect();
        let seqs: Vec<u64> = pending.keys().copied().collect();
        let events = batch_events(&mut pending, &seqs, limit);
        assert_eq!(sizes(&events), vec![MAX_BATCH, 10]);
        assert!(pending.values().all(|c| c.in_flight));
        // Seqs travel with their creates, in order.
        let got: Vec<u64> = events
            .iter()
            .flat_map(|e| match &e.event {
                Some(producer_event::Event::CreateBatch(b)) => {
                    b.tasks.iter().map(|t| t.seq).collect()
                }
                Some(producer_event::Event::Create(t)) => vec![t.seq],
                _ => vec![],
            })
            .collect();
        assert_eq!(got, seqs);

        // 1.5 MiB creates: two per 4 MiB message, each encoded message within the limit.
        let mut pending: BTreeMap<u64, Create> = (1..=5).map(|s| (s, create(3 << 19))).collect();
        let seqs: Vec<u64> = pending.keys().copied().collect();
        let events = batch_events(&mut pending, &seqs, limit);
        assert_eq!(sizes(&events), vec![2, 2, 1]);
        for e in &events {
            assert!(prost::Message::encoded_len(e) <= limit);
        }
        // A lone create is a plain CreateTask.
        let mut one: BTreeMap<u64, Create> = [(9, create(1))].into_iter().collect();
        let events = batch_events(&mut one, &[9], limit);
        assert!(matches!(
            events[0].event,
            Some(producer_event::Event::Create(ref t)) if t.seq == 9
        ));
    }
}
