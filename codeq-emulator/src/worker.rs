//! `workerpb.WorkerStream/Stream`: Hello handshake, then every event handled on its own task
//! so acks come back in completion order, not arrival order (contract §2).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::config::WorkerGrant;
use crate::pb::workerpb::{
    self, server_event::Event as Out, worker_event::Event as In,
    worker_stream_server::WorkerStream, ServerEvent, WorkerEvent,
};
use crate::server::{stopped, Shared};
use crate::store::{ClaimRequest, CommandFilter, TaskView};

/// Outbound queue per stream. Bounded so a client that stops reading stalls its own handlers
/// instead of growing the emulator's memory.
const SEND_BUFFER: usize = 256;

type Tx = mpsc::Sender<Result<ServerEvent, Status>>;

pub(crate) struct WorkerService {
    pub(crate) shared: Arc<Shared>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// One authenticated stream.
struct Session {
    worker_id: String,
    tenant: String,
    grant: WorkerGrant,
    tx: Tx,
}

impl Session {
    async fn send(&self, event: Out) {
        // A failed send means the client went away; codeQ does no cleanup either (leases
        // simply run out), so the event is dropped.
        let _ = self.tx.send(Ok(ServerEvent { event: Some(event) })).await;
    }

    async fn send_error(&self, code: &str, message: &str) {
        self.send(Out::Error(workerpb::ServerError {
            message: message.to_string(),
            code: code.to_string(),
        }))
        .await;
    }
}

#[tonic::async_trait]
impl WorkerStream for WorkerService {
    type StreamStream = ReceiverStream<Result<ServerEvent, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<WorkerEvent>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound.message().await?;
        self.shared.note_message_in();
        let Some(WorkerEvent {
            event: Some(In::Hello(hello)),
        }) = first
        else {
            return Err(Status::failed_precondition("first event must be Hello"));
        };
        let token = hello.token.trim();
        if token.is_empty() {
            return Err(Status::unauthenticated("auth failed: missing token"));
        }
        let config = &self.shared.config;
        let Some(grant) = config.worker_tokens.get(token).cloned() else {
            if config.denied_tokens.contains(token) || config.producer_tokens.contains_key(token) {
                return Err(Status::permission_denied("token lacks worker permission"));
            }
            return Err(Status::unauthenticated("auth failed: invalid token"));
        };
        let worker_id = match hello.worker_id.trim() {
            "" => grant.subject.clone(),
            id => id.to_string(),
        };
        let (tx, rx) = mpsc::channel(SEND_BUFFER);
        let session = Arc::new(Session {
            worker_id,
            tenant: grant.tenant.clone(),
            grant,
            tx,
        });
        session
            .send(Out::HelloAck(workerpb::HelloAck {
                worker_id: session.worker_id.clone(),
                tenant_id: session.tenant.clone(),
            }))
            .await;
        self.shared.note_worker_stream();
        tracing::info!(worker_id = %session.worker_id, tenant = %session.tenant, "worker stream open");

        let shared = Arc::clone(&self.shared);
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = inbound.message() => next,
                    _ = stopped(&mut shutdown) => {
                        let _ = session
                            .tx
                            .send(Err(Status::unavailable("codeq emulator shutting down")))
                            .await;
                        break;
                    }
                };
                match next {
                    Ok(Some(event)) => {
                        shared.note_message_in();
                        dispatch(&shared, &session, &shutdown, event)
                    }
                    // Half-close: handlers in flight still answer; the response ends when the
                    // last of them drops its sender.
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(worker_id = %session.worker_id, %status, "worker stream read error");
                        if let Some(st) = crate::server::over_limit(&status) {
                            let _ = session.tx.send(Err(st)).await;
                        }
                        break;
                    }
                }
            }
            tracing::info!(worker_id = %session.worker_id, "worker stream closed");
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Starts the handler of one event on its own task.
fn dispatch(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    shutdown: &watch::Receiver<bool>,
    event: WorkerEvent,
) {
    let shared = Arc::clone(shared);
    let session = Arc::clone(session);
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        match event.event {
            Some(In::Hello(_)) => {
                session
                    .send_error("FailedPrecondition", "already-authenticated")
                    .await
            }
            Some(In::Ready(ready)) => ready_poll(&shared, &session, ready, shutdown).await,
            Some(In::Result(result)) => {
                shared.jitter().await;
                let ack = result_ack(&shared, &session.worker_id, &result);
                session.send(Out::ResultAck(ack)).await;
            }
            Some(In::ResultBatch(batch)) => {
                if batch.results.is_empty() {
                    return;
                }
                shared.jitter().await;
                let acks = batch
                    .results
                    .iter()
                    .map(|r| result_ack(&shared, &session.worker_id, r))
                    .collect();
                session
                    .send(Out::ResultAckBatch(workerpb::ResultAckBatch { acks }))
                    .await;
            }
            Some(In::Nack(nack)) => {
                shared.jitter().await;
                let outcome = shared.requeue(|s| {
                    s.nack(
                        &nack.task_id,
                        &session.worker_id,
                        nack.delay_seconds,
                        &nack.reason,
                        Instant::now(),
                        SystemTime::now(),
                    )
                });
                let ack = match outcome {
                    Ok(o) => workerpb::NackAck {
                        task_id: nack.task_id,
                        ok: true,
                        error_message: String::new(),
                        applied_delay_seconds: o.applied_delay_seconds,
                        dlq: o.dlq,
                    },
                    Err(e) => workerpb::NackAck {
                        task_id: nack.task_id,
                        ok: false,
                        error_message: e,
                        applied_delay_seconds: 0,
                        dlq: false,
                    },
                };
                session.send(Out::NackAck(ack)).await;
            }
            Some(In::Heartbeat(hb)) => {
                shared.jitter().await;
                let outcome = shared.mutate(|s| {
                    s.heartbeat(
                        &hb.task_id,
                        &session.worker_id,
                        hb.extend_seconds,
                        Instant::now(),
                        SystemTime::now(),
                    )
                });
                let (ok, error_message) = split(outcome);
                session
                    .send(Out::HeartbeatAck(workerpb::HeartbeatAck {
                        task_id: hb.task_id,
                        ok,
                        error_message,
                    }))
                    .await;
            }
            Some(In::Abandon(ab)) => {
                shared.jitter().await;
                let outcome = shared
                    .requeue(|s| s.abandon(&ab.task_id, &session.worker_id, SystemTime::now()));
                let (ok, error_message) = split(outcome);
                session
                    .send(Out::AbandonAck(workerpb::AbandonAck {
                        task_id: ab.task_id,
                        ok,
                        error_message,
                    }))
                    .await;
            }
            None => session.send_error("InvalidArgument", "unknown-event").await,
        }
    });
}

fn split(outcome: Result<(), String>) -> (bool, String) {
    match outcome {
        Ok(()) => (true, String::new()),
        Err(e) => (false, e),
    }
}

/// Checks and applies one Result, codeQ's order: status, result_json shape, then the task.
fn result_ack(shared: &Shared, worker_id: &str, r: &workerpb::Result) -> workerpb::ResultAck {
    let reject = |message: String| workerpb::ResultAck {
        task_id: r.task_id.clone(),
        ok: false,
        error_message: message,
    };
    let completed = match r.status.as_str() {
        "COMPLETED" => true,
        "FAILED" => false,
        other => {
            return reject(format!(
                "invalid status (must be COMPLETED or FAILED): {other:?}"
            ))
        }
    };
    // codeQ decodes result_json into a map: an object passes, `null` counts as absent,
    // anything else (array, scalar, bad JSON) is invalid.
    let result_json = if r.result_json.is_empty() {
        None
    } else {
        match serde_json::from_slice::<serde_json::Value>(&r.result_json) {
            Ok(serde_json::Value::Object(_)) => Some(r.result_json.clone()),
            Ok(serde_json::Value::Null) => None,
            _ => return reject("invalid result_json".into()),
        }
    };
    let outcome = shared.mutate(|s| {
        s.submit_result(
            &r.task_id,
            worker_id,
            completed,
            result_json,
            &r.error,
            SystemTime::now(),
        )
    });
    match outcome {
        Ok(()) => workerpb::ResultAck {
            task_id: r.task_id.clone(),
            ok: true,
            error_message: String::new(),
        },
        Err(e) => reject(e),
    }
}

/// Which commands a Ready may claim, or `None` when it names one the grant does not allow.
fn resolve_commands(grant: &WorkerGrant, requested: &[String]) -> Option<Vec<String>> {
    let requested: Vec<String> = requested
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    match &grant.commands {
        // Wildcard: an empty list means any command (returned as an empty Vec).
        None => Some(requested),
        Some(allowed) if requested.is_empty() => (!allowed.is_empty()).then(|| allowed.clone()),
        Some(allowed) => requested
            .iter()
            .all(|c| allowed.contains(c))
            .then_some(requested),
    }
}

/// The bounded long-poll: claim as soon as something is claimable; on expiry, send nothing.
async fn ready_poll(
    shared: &Arc<Shared>,
    session: &Session,
    ready: workerpb::Ready,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(commands) = resolve_commands(&session.grant, &ready.commands) else {
        session
            .send_error("PermissionDenied", "event type not allowed")
            .await;
        return;
    };
    let filter = if commands.is_empty() {
        CommandFilter::Any
    } else {
        CommandFilter::Only(&commands)
    };
    let lease_seconds = if ready.lease_seconds <= 0 {
        shared.config.default_lease_seconds
    } else {
        ready.lease_seconds
    };
    let batch = ready.count > 1;
    let max = if batch {
        usize::try_from(ready.count)
            .unwrap_or(1)
            .min(shared.config.max_batch.max(1))
    } else {
        1
    };
    let request = ClaimRequest {
        tenant: &session.tenant,
        commands: &filter,
        worker_id: &session.worker_id,
        lease_seconds,
        max,
    };
    let _waiting = shared.ready_waiting();
    let deadline = Instant::now() + shared.config.ready_expiry;
    loop {
        let notified = shared.claimable.notified();
        tokio::pin!(notified);
        // Registered before looking, so a task enqueued between the look and the wait wakes us.
        notified.as_mut().enable();
        let now = Instant::now();
        let (claimed, next_visible) = shared.with_store(|s| {
            let claimed = s.claim(&request, now, SystemTime::now());
            (claimed, s.next_visible())
        });
        if !claimed.is_empty() {
            shared.changed.notify_waiters();
            tracing::debug!(worker_id = %session.worker_id, n = claimed.len(), "tasks assigned");
            let event = if batch {
                Out::TaskBatch(workerpb::TaskBatch {
                    tasks: claimed.iter().map(task_proto).collect(),
                })
            } else {
                Out::Task(workerpb::TaskAssignment {
                    task: claimed.first().map(task_proto),
                })
            };
            session.send(event).await;
            return;
        }
        if now >= deadline {
            shared.note_ready_expired();
            return;
        }
        let wake = next_visible.map_or(deadline, |v| v.min(deadline));
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            _ = session.tx.closed() => return,
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// The wire form of a task.
pub(crate) fn task_proto(v: &TaskView) -> workerpb::Task {
    workerpb::Task {
        id: v.id.clone(),
        command: v.command.clone(),
        payload: v.payload.clone(),
        priority: v.priority,
        webhook: v.webhook.clone(),
        max_attempts: v.max_attempts,
        status: v.status.as_str().to_string(),
        worker_id: v.worker_id.clone().unwrap_or_default(),
        lease_until: v.lease_until_rfc3339.clone().unwrap_or_default(),
        attempts: v.attempts,
        tenant_id: v.tenant_id.clone(),
        created_at: Some(crate::time::timestamp(v.created_at)),
        updated_at: Some(crate::time::timestamp(v.updated_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_resolve_against_grants() {
        let any = WorkerGrant::any("t");
        assert_eq!(resolve_commands(&any, &[]), Some(vec![]));
        assert_eq!(
            resolve_commands(&any, &["a".into(), " ".into()]),
            Some(vec!["a".to_string()])
        );
        let only = WorkerGrant::only("t", ["a", "b"]);
        assert_eq!(
            resolve_commands(&only, &["b".into()]),
            Some(vec!["b".into()])
        );
        assert_eq!(resolve_commands(&only, &["c".into()]), None);
        assert_eq!(
            resolve_commands(&only, &[]),
            Some(vec!["a".to_string(), "b".to_string()])
        );
    }
}
