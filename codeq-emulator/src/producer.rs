//! `producerpb.ProducerStream/Stream`: Hello handshake, then CreateTask / CreateTaskBatch,
//! each handled on its own task and acked by seq (contract §2).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::pb::producerpb::{
    self, producer_event::Event as In, producer_stream_server::ProducerStream,
    server_event::Event as Out, ProducerEvent, ServerEvent,
};
use crate::server::{stopped, Shared};
use crate::store::NewTask;

const SEND_BUFFER: usize = 256;

type Tx = mpsc::Sender<Result<ServerEvent, Status>>;

pub(crate) struct ProducerService {
    pub(crate) shared: Arc<Shared>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

async fn send(tx: &Tx, event: Out) {
    // The client went away: nothing to clean up, the tasks are created already.
    let _ = tx.send(Ok(ServerEvent { event: Some(event) })).await;
}

async fn send_error(tx: &Tx, code: &str, message: &str) {
    send(
        tx,
        Out::Error(producerpb::ServerError {
            code: code.to_string(),
            message: message.to_string(),
        }),
    )
    .await;
}

#[tonic::async_trait]
impl ProducerStream for ProducerService {
    type StreamStream = ReceiverStream<Result<ServerEvent, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<ProducerEvent>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound.message().await?;
        self.shared.note_message_in();
        let Some(ProducerEvent {
            event: Some(In::Hello(hello)),
        }) = first
        else {
            return Err(Status::failed_precondition("first event must be Hello"));
        };
        let token = hello.token.trim();
        if token.is_empty() {
            return Err(Status::unauthenticated("missing token"));
        }
        let config = &self.shared.config;
        let Some(grant) = config.producer_tokens.get(token).cloned() else {
            if config.denied_tokens.contains(token) || config.worker_tokens.contains_key(token) {
                return Err(Status::permission_denied("token lacks producer permission"));
            }
            return Err(Status::unauthenticated("auth failed: invalid token"));
        };
        let (tx, rx) = mpsc::channel(SEND_BUFFER);
        send(
            &tx,
            Out::HelloAck(producerpb::HelloAck {
                tenant_id: grant.tenant.clone(),
                subject: grant.subject.clone(),
            }),
        )
        .await;
        self.shared.note_producer_stream();
        tracing::info!(tenant = %grant.tenant, "producer stream open");

        let shared = Arc::clone(&self.shared);
        let mut shutdown = self.shutdown.clone();
        let tenant: Arc<str> = Arc::from(grant.tenant.as_str());
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = inbound.message() => next,
                    _ = stopped(&mut shutdown) => {
                        let _ = tx
                            .send(Err(Status::unavailable("codeq emulator shutting down")))
                            .await;
                        break;
                    }
                };
                let event = match next {
                    Ok(Some(event)) => {
                        shared.note_message_in();
                        event
                    }
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%status, "producer stream read error");
                        // grpc-go (codeQ) fails the RPC with RESOURCE_EXHAUSTED when a message
                        // exceeds its receive limit; so does the emulator.
                        if let Some(st) = crate::server::over_limit(&status) {
                            let _ = tx.send(Err(st)).await;
                        }
                        break;
                    }
                };
                let shared = Arc::clone(&shared);
                let tx = tx.clone();
                let tenant = Arc::clone(&tenant);
                tokio::spawn(async move {
                    match event.event {
                        Some(In::Hello(_)) => {
                            send_error(&tx, "FailedPrecondition", "already-authenticated").await
                        }
                        Some(In::Create(create)) => {
                            shared.jitter().await;
                            let ack = create_ack(&shared, &tenant, &create);
                            send(&tx, Out::CreateAck(ack)).await;
                        }
                        Some(In::CreateBatch(batch)) => {
                            if batch.tasks.is_empty() {
                                return;
                            }
                            shared.jitter().await;
                            let acks = batch
                                .tasks
                                .iter()
                                .map(|c| create_ack(&shared, &tenant, c))
                                .collect();
                            send(
                                &tx,
                                Out::CreateAckBatch(producerpb::CreateAckBatch { acks }),
                            )
                            .await;
                        }
                        None => send_error(&tx, "InvalidArgument", "unknown-event").await,
                    }
                });
            }
            tracing::info!("producer stream closed");
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Validates and applies one CreateTask.
fn create_ack(shared: &Shared, tenant: &str, c: &producerpb::CreateTask) -> producerpb::CreateAck {
    let reject = |message: &str| producerpb::CreateAck {
        seq: c.seq,
        ok: false,
        task_id: String::new(),
        error_message: message.to_string(),
    };
    let command = c.command.trim();
    if command.is_empty() {
        return reject("command is required");
    }
    if c.delay_seconds < 0 {
        return reject("delaySeconds must be >= 0");
    }
    if c.idempotency_key.contains('\0') {
        return reject("invalid 'idempotencyKey'");
    }
    let now = Instant::now();
    let wall = SystemTime::now();
    let second = shared.with_store(|s| s.second());
    let mut not_before = None;
    if c.delay_seconds > 0 {
        not_before = Some(now + second.saturating_mul(c.delay_seconds.unsigned_abs()));
    }
    if let Some(run_at) = c.run_at.as_ref() {
        let Some(at) = crate::time::from_timestamp(run_at) else {
            return reject("invalid run_at");
        };
        if let Ok(ahead) = at.duration_since(wall) {
            let at = now + ahead;
            not_before = Some(not_before.map_or(at, |nb: Instant| nb.max(at)));
        }
    }
    let new = NewTask {
        command: command.to_string(),
        payload: c.payload.clone(),
        priority: c.priority,
        webhook: c.webhook.clone(),
        max_attempts: c.max_attempts,
        idempotency_key: (!c.idempotency_key.is_empty()).then(|| c.idempotency_key.clone()),
        not_before,
        tenant_id: tenant.to_string(),
        trace_parent: c.trace_parent.clone(),
        trace_state: c.trace_state.clone(),
    };
    let (task_id, _created) = shared.requeue(|s| s.create(new, now, wall));
    producerpb::CreateAck {
        seq: c.seq,
        ok: true,
        task_id,
        error_message: String::new(),
    }
}
