//! The part of a run where guest code executes (a module loading, or an invocation): the child
//! sends log lines, host calls and host-call cancellations until its `Loaded` or `Outcome`
//! frame, and the supervisor serves them **concurrently** — reading the child's next frame
//! while host calls are being performed and while a reply is being written — because a child
//! runs an event loop: it may log, start more calls or cancel one (an `AbortSignal`) while a
//! `fetch` is in flight.
//!
//! Bounds, so that a hostile child cannot make the supervisor queue unbounded work: calls being
//! performed plus replies not yet written never exceed [`MAX_HOST_CALLS_IN_FLIGHT`] (one more
//! call is a protocol breach; a well-behaved child never has more open, and queues the excess
//! itself), and each call is bounded by the activation's deadline like before. A
//! cancelled call's future is dropped (for a fetch, its connection closes) and the child gets
//! an error reply at once. The end frame is accepted only when every call has been answered and
//! delivered: a child that ends with calls open broke the protocol.
//!
//! Why the writes are concurrent with the reads: a child busy in JavaScript (logging, say)
//! does not read its request pipe; a large fetch reply written then would fill the pipe, and a
//! supervisor blocked on that write would stop reading the child's log lines, which would fill
//! the other pipe and block the child — a deadlock until the deadline.

use super::child::ChildStdin;
use super::child::{recv_on, write_frame_bytes, ChildProcess};
use super::execution::{Execution, Job};
use super::failure::ChildFailure;
use crate::host::{capabilities, HostApi};
use sandbox_proto::messages::one_line;
use sandbox_proto::protocol::{
    self, Fatal, FromChild, HostError, HostErrorKind, HostOp, HostReply, HostValue, LogLine,
    OutputLimits, ToChild, MAX_HOST_CALLS_IN_FLIGHT,
};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

/// Why a run on a child ended without an outcome frame.
/// (Declared here, where conversations end, so that `invoke` uses `conversation` and not
/// the other way round as well.)
pub(super) enum Stop {
    Failure(ChildFailure),
    /// The child's request pipe was closed before the first frame of this run could be written:
    /// it died while idle (nothing of this activation ran); another child is taken.
    DeadIdle,
    /// The child reported that it is dying (a seccomp violation caught by its SIGSYS handler).
    Fatal(Fatal),
    Deadline,
}

/// The frame that ends a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    Loaded,
    Outcome,
}

type HostFuture<'a> = Pin<Box<dyn Future<Output = Result<HostValue, HostError>> + Send + 'a>>;
type WriteFuture<'a> =
    Pin<Box<dyn Future<Output = (&'a mut ChildStdin, Result<(), ChildFailure>)> + Send + 'a>>;

struct InFlight<'a> {
    id: u64,
    started: Instant,
    heartbeat: bool,
    kind: &'static str,
    fut: HostFuture<'a>,
}

fn breach(msg: String) -> Stop {
    Stop::Failure(ChildFailure::Breach(msg))
}

/// Serves `child` until the frame `until` names; returns it.
pub(super) async fn converse<'a, H: HostApi>(
    child: &'a mut ChildProcess,
    job: &'a Job,
    host: &'a H,
    ex: &mut Execution,
    limits: OutputLimits,
    until: Until,
) -> Result<FromChild, Stop> {
    let (stdin, stdout) = child.pipes();
    let mut stdin_slot: Option<&'a mut ChildStdin> = Some(stdin);
    let mut writing: Option<WriteFuture<'a>> = None;
    let mut outbox: VecDeque<Vec<u8>> = VecDeque::new();
    let mut calls: Vec<InFlight<'a>> = Vec::new();

    loop {
        let frame = {
            let mut recv = std::pin::pin!(recv_on(stdout));
            loop {
                // The pipe is ours again when no write is under way (`stdin_slot` is `Some`).
                if !outbox.is_empty() {
                    if let Some(s) = stdin_slot.take() {
                        let buf = outbox.pop_front().unwrap_or_default();
                        writing = Some(Box::pin(async move {
                            let r = write_frame_bytes(s, &buf).await;
                            (s, r)
                        }));
                    }
                }
                let write_done = poll_fn(|cx| match writing.as_mut() {
                    Some(w) => match w.as_mut().poll(cx) {
                        Poll::Ready(out) => {
                            writing = None;
                            Poll::Ready(out)
                        }
                        Poll::Pending => Poll::Pending,
                    },
                    None => Poll::Pending,
                });
                let call_done = poll_fn(|cx| {
                    for i in 0..calls.len() {
                        if let Poll::Ready(r) = calls[i].fut.as_mut().poll(cx) {
                            let c = calls.swap_remove(i);
                            return Poll::Ready((c.id, c.started, c.heartbeat, c.kind, r));
                        }
                    }
                    Poll::Pending
                });
                tokio::select! {
                    biased;
                    done = write_done => {
                        let (s, r) = done;
                        stdin_slot = Some(s);
                        r.map_err(Stop::Failure)?;
                    }
                    (id, started, heartbeat, kind, result) = call_done => {
                        ex.host_calls.time += started.elapsed();
                        // A host that refuses by the activation's own grants (an undeclared
                        // secret) is a denial like the manifest's.
                        let outcome = match &result {
                            Ok(_) => "ok",
                            Err(e) if e.kind == HostErrorKind::Denied => {
                                ex.host_calls.denied += 1;
                                "denied"
                            }
                            Err(_) => "error",
                        };
                        ex.host_calls.tally(kind, outcome);
                        if let Ok(v) = &result {
                            ex.host_calls.bytes_in += value_bytes(v) as u64;
                            if heartbeat {
                                ex.host_calls.heartbeats += 1;
                            }
                        }
                        outbox.push_back(encode_reply(id, result)?);
                    }
                    f = &mut recv => break f,
                }
            }
        }
        .map_err(Stop::Failure)?;

        match frame {
            FromChild::Log(line) => {
                let mut line = record_line(line);
                // Before it is counted, printed or kept: no secret value leaves the supervisor.
                if !job.scope.context.secrets.is_empty() {
                    ex.redactions += job.scope.context.secrets.redact(&mut line.line);
                }
                let cost = line.line.len() + 1;
                if ex.logs_truncated || ex.log_bytes + cost > limits.max_log_bytes as usize {
                    ex.logs_truncated = true;
                } else {
                    ex.log_bytes += cost;
                    if let Some(sink) = &job.log_sink {
                        sink(&line.line);
                    }
                    ex.logs.push(line.line);
                }
            }
            FromChild::HostCall(call) => {
                // Calls being performed plus replies not yet written: what the child has open
                // and this side holds. A child that stops reading its pipe cannot make replies
                // pile up either.
                let held = calls.len() + outbox.len() + usize::from(writing.is_some());
                if held >= MAX_HOST_CALLS_IN_FLIGHT {
                    return Err(breach(format!(
                        "more than {MAX_HOST_CALLS_IN_FLIGHT} host calls in flight"
                    )));
                }
                if calls.iter().any(|c| c.id == call.id) {
                    return Err(breach(format!("host call id {} reused", call.id)));
                }
                ex.host_calls.count += 1;
                ex.host_calls.bytes_out += op_bytes(&call.op) as u64;
                match capabilities::check_for(
                    &call.op,
                    &job.scope.capabilities,
                    &job.scope.policy,
                    &job.scope.trigger,
                ) {
                    Err(denied) => {
                        ex.host_calls.denied += 1;
                        ex.host_calls.tally(call.op.name(), "denied");
                        outbox.push_back(encode_reply(call.id, Err(denied))?);
                    }
                    Ok(()) => {
                        let heartbeat = matches!(call.op, HostOp::CadenceHeartbeat);
                        calls.push(InFlight {
                            id: call.id,
                            started: Instant::now(),
                            heartbeat,
                            kind: call.op.name(),
                            fut: Box::pin(host.call(&job.scope, call.op)),
                        });
                    }
                }
            }
            FromChild::HostCancel(c) => {
                if let Some(i) = calls.iter().position(|x| x.id == c.id) {
                    let dropped = calls.swap_remove(i);
                    ex.host_calls.time += dropped.started.elapsed();
                    let aborted = Err(HostError::failed("cancelled by the function"));
                    outbox.push_back(encode_reply(c.id, aborted)?);
                }
                // Otherwise the reply is already written or on its way: nothing to cancel.
            }
            FromChild::Fatal(f) => return Err(Stop::Fatal(f)),
            end @ (FromChild::Loaded(_) | FromChild::Outcome(_)) => {
                let wanted = match until {
                    Until::Loaded => matches!(end, FromChild::Loaded(_)),
                    Until::Outcome => matches!(end, FromChild::Outcome(_)),
                };
                if !wanted {
                    return Err(breach(format!(
                        "unexpected {} frame",
                        super::child::frame_name(&end)
                    )));
                }
                let open = calls.len() + outbox.len() + usize::from(writing.is_some());
                if open > 0 {
                    return Err(breach(format!(
                        "{} frame with {open} host call(s) not yet answered",
                        super::child::frame_name(&end)
                    )));
                }
                return Ok(end);
            }
            other => {
                return Err(breach(format!(
                    "unexpected {} frame",
                    super::child::frame_name(&other)
                )))
            }
        }
    }
}

/// A child's log line as the supervisor records it: one line (no line break inside, see
/// [`one_line`]) that starts with its own level. The child does this already; a child that
/// does not cannot forge a record of another level or a second record.
fn record_line(mut line: LogLine) -> LogLine {
    let prefix = format!("[{}] ", line.level.as_str());
    let text = line.line.strip_prefix(&prefix).unwrap_or(&line.line);
    let text = one_line(text);
    if text.len() + prefix.len() != line.line.len() || !line.line.starts_with(&prefix) {
        line.line = format!("{prefix}{text}");
    }
    line
}

fn encode_reply(id: u64, result: Result<HostValue, HostError>) -> Result<Vec<u8>, Stop> {
    protocol::encode(&ToChild::HostReply(HostReply { id, result }))
        .map_err(|e| Stop::Failure(ChildFailure::Breach(format!("cannot encode a reply: {e}"))))
}

fn op_bytes(op: &HostOp) -> usize {
    match op {
        HostOp::KvGet { key } | HostOp::KvDel { key } => key.len(),
        HostOp::KvSet {
            key, value_json, ..
        } => key.len() + value_json.len(),
        HostOp::CodeqPublish {
            topic,
            payload_json,
        } => topic.len() + payload_json.len(),
        HostOp::HttpFetch {
            url, headers, body, ..
        } => {
            url.len()
                + headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
                + body.as_ref().map_or(0, Vec::len)
        }
        HostOp::CadenceHeartbeat => 0,
        HostOp::SecretGet { name } => name.len(),
    }
}

fn value_bytes(v: &HostValue) -> usize {
    match v {
        HostValue::Kv(v) => v.as_ref().map_or(0, String::len),
        HostValue::Done => 0,
        HostValue::Text(t) => t.len(),
        HostValue::Http { headers, body, .. } => {
            headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
                + body.len()
        }
    }
}
