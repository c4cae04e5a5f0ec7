//! The emulator's queue: tasks, their states and every transition the codeQ wire contract
//! (contract §2) names. Synchronous and lock-free of its own: the server wraps one `Store` in a
//! mutex, so each operation is atomic the way one codeQ batch commit is.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use crate::config::EmulatorConfig;

/// Where a task is in its life. `Dlq` is a dead-lettered task (codeQ stores it as FAILED in its
/// DLQ set; the emulator keeps the two apart so tests can tell a nack-out from a FAILED result).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Waiting to be claimed (possibly not yet visible: see [`TaskView::visible_at`]).
    Pending,
    /// Leased to a worker.
    InProgress,
    /// A worker sent Result COMPLETED.
    Completed,
    /// A worker sent Result FAILED (terminal, never retried).
    Failed,
    /// Dead-lettered after `max_attempts` nacks or lease expiries.
    Dlq,
}

impl TaskStatus {
    /// The status string: `PENDING`, `IN_PROGRESS`, `COMPLETED`, `FAILED` or `DLQ`. The first
    /// four are also what codeQ puts in `Task.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::InProgress => "IN_PROGRESS",
            TaskStatus::Completed => "COMPLETED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Dlq => "DLQ",
        }
    }

    /// True once the task will never be delivered again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Dlq
        )
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of one task, for test assertions.
#[derive(Clone, Debug)]
pub struct TaskView {
    /// Task id (a UUID).
    pub id: String,
    /// The command (queue name), e.g. `cs.invoke`.
    pub command: String,
    /// Tenant of the producer token (or of [`EnqueueOptions::tenant`]).
    pub tenant_id: String,
    /// Payload bytes as enqueued (`null` when the producer sent none, as codeQ does).
    pub payload: Vec<u8>,
    /// Priority, clamped to 0..=9; higher is claimed first.
    pub priority: i32,
    /// Webhook as given by the producer ("" when none).
    pub webhook: String,
    /// Nacks plus lease expiries allowed before dead-lettering.
    pub max_attempts: i32,
    /// Current status.
    pub status: TaskStatus,
    /// Nacks plus lease expiries so far (see the crate docs on how this differs from codeQ).
    pub attempts: i32,
    /// The worker that holds (or last held, for COMPLETED/FAILED) the lease.
    pub worker_id: Option<String>,
    /// Result COMPLETED's `result_json`, as sent.
    pub result_json: Option<Vec<u8>>,
    /// Result FAILED's error, or the dead-letter reason.
    pub error: Option<String>,
    /// When the current lease ends (IN_PROGRESS only).
    pub lease_until: Option<Instant>,
    /// The same lease end as sent on the wire (RFC 3339, whole seconds, UTC).
    pub lease_until_rfc3339: Option<String>,
    /// A pending task is not claimable before this instant (delay, run_at, nack backoff).
    pub visible_at: Option<Instant>,
    /// How many times the task was handed to a worker.
    pub deliveries: u32,
    /// Reasons of the nacks received, in order.
    pub nack_reasons: Vec<String>,
    /// Idempotency key given at creation.
    pub idempotency_key: Option<String>,
    /// W3C trace context given at creation ("" when none).
    pub trace_parent: String,
    /// W3C trace state given at creation ("" when none).
    pub trace_state: String,
    /// Creation time.
    pub created_at: SystemTime,
    /// Last change.
    pub updated_at: SystemTime,
}

impl TaskView {
    /// The result JSON parsed, when the task was completed.
    pub fn result_value(&self) -> Option<serde_json::Value> {
        self.result_json
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
    }

    /// The payload parsed as JSON, when it is JSON.
    pub fn payload_value(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.payload).ok()
    }
}

/// Options of [`crate::Emulator::enqueue`], mirroring the fields of `producerpb.CreateTask`.
#[derive(Clone, Debug, Default)]
pub struct EnqueueOptions {
    /// Priority 0..=9 (clamped); higher first.
    pub priority: i32,
    /// 0 or less: the configured default (`EmulatorConfig::default_max_attempts`).
    pub max_attempts: i32,
    /// Not claimable before now + delay.
    pub delay: Option<Duration>,
    /// Not claimable before this wall-clock time.
    pub run_at: Option<SystemTime>,
    /// Global idempotency key: a repeat returns the existing task id and creates nothing.
    pub idempotency_key: Option<String>,
    /// Tenant; default `EmulatorConfig::default_tenant`.
    pub tenant: Option<String>,
    /// Webhook, stored and echoed only.
    pub webhook: Option<String>,
}

/// A create request after the wire/helper specifics are resolved.
pub(crate) struct NewTask {
    pub command: String,
    pub payload: Vec<u8>,
    pub priority: i32,
    pub webhook: String,
    pub max_attempts: i32,
    pub idempotency_key: Option<String>,
    pub not_before: Option<Instant>,
    pub tenant_id: String,
    pub trace_parent: String,
    pub trace_state: String,
}

/// Which commands a claim may take from.
pub(crate) enum CommandFilter<'a> {
    /// Any command of the tenant (a wildcard grant with an empty Ready.commands).
    Any,
    /// Exactly these.
    Only(&'a [String]),
}

/// Who claims what (Ready after authentication and defaults).
#[derive(Clone, Copy)]
pub(crate) struct ClaimRequest<'a> {
    pub tenant: &'a str,
    pub commands: &'a CommandFilter<'a>,
    pub worker_id: &'a str,
    /// Wire seconds.
    pub lease_seconds: i32,
    pub max: usize,
}

/// Outcome of a nack: the delay applied (wire seconds) and whether it dead-lettered.
pub(crate) struct NackOutcome {
    pub applied_delay_seconds: i32,
    pub dlq: bool,
}

/// Key of a pending task inside its queue: priority (highest first), then FIFO by sequence.
type QueueKey = (Reverse<i32>, u64);

struct TaskRec {
    id: String,
    command: String,
    tenant_id: String,
    payload: Vec<u8>,
    priority: i32,
    webhook: String,
    max_attempts: i32,
    status: TaskStatus,
    attempts: i32,
    worker_id: Option<String>,
    lease_until: Option<Instant>,
    lease_until_wall: Option<SystemTime>,
    result_json: Option<Vec<u8>>,
    error: Option<String>,
    visible_at: Option<Instant>,
    /// Position in its pending queue, when queued and visible.
    queued_at: Option<QueueKey>,
    /// Position in the delayed set, when pending but not yet visible.
    delayed_at: Option<(Instant, u64)>,
    deliveries: u32,
    nack_reasons: Vec<String>,
    idempotency_key: Option<String>,
    trace_parent: String,
    trace_state: String,
    created_at: SystemTime,
    updated_at: SystemTime,
}

impl TaskRec {
    fn view(&self) -> TaskView {
        TaskView {
            id: self.id.clone(),
            command: self.command.clone(),
            tenant_id: self.tenant_id.clone(),
            payload: self.payload.clone(),
            priority: self.priority,
            webhook: self.webhook.clone(),
            max_attempts: self.max_attempts,
            status: self.status,
            attempts: self.attempts,
            worker_id: self.worker_id.clone(),
            result_json: self.result_json.clone(),
            error: self.error.clone(),
            lease_until: self.lease_until,
            lease_until_rfc3339: self.lease_until_wall.map(crate::time::rfc3339),
            visible_at: self.visible_at,
            deliveries: self.deliveries,
            nack_reasons: self.nack_reasons.clone(),
            idempotency_key: self.idempotency_key.clone(),
            trace_parent: self.trace_parent.clone(),
            trace_state: self.trace_state.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// All tasks and the indexes over them.
pub(crate) struct Store {
    tasks: HashMap<String, TaskRec>,
    /// (tenant, command) → visible pending tasks in claim order.
    queues: HashMap<(String, String), BTreeMap<QueueKey, String>>,
    /// Pending tasks not yet visible, by the instant they become visible.
    delayed: BTreeMap<(Instant, u64), String>,
    idempotency: HashMap<String, String>,
    next_seq: u64,
    second: Duration,
    default_lease_seconds: i32,
    default_max_attempts: i32,
    backoff_base_seconds: i32,
    backoff_max_seconds: i32,
}

/// Converts wire seconds into emulator time (one wire second is `second` long).
fn wire(second: Duration, secs: i32) -> Duration {
    second.saturating_mul(secs.max(0).unsigned_abs())
}

/// `SystemTime` for an `Instant` in the future (or now), for lease strings.
fn wall_of(now: Instant, wall_now: SystemTime, at: Instant) -> SystemTime {
    wall_now + at.saturating_duration_since(now)
}

impl Store {
    pub(crate) fn new(config: &EmulatorConfig) -> Self {
        Store {
            tasks: HashMap::new(),
            queues: HashMap::new(),
            delayed: BTreeMap::new(),
            idempotency: HashMap::new(),
            next_seq: 0,
            second: config.second,
            default_lease_seconds: config.default_lease_seconds.max(1),
            default_max_attempts: config.default_max_attempts.max(1),
            backoff_base_seconds: config.backoff_base_seconds.max(0),
            backoff_max_seconds: config.backoff_max_seconds.max(0),
        }
    }

    /// Length of one wire second.
    pub(crate) fn second(&self) -> Duration {
        self.second
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Creates a task, or returns the id an idempotency key already maps to. The bool is true
    /// when a task was created.
    pub(crate) fn create(
        &mut self,
        new: NewTask,
        now: Instant,
        wall: SystemTime,
    ) -> (String, bool) {
        if let Some(key) = new.idempotency_key.as_deref() {
            if let Some(existing) = self.idempotency.get(key) {
                if self.tasks.contains_key(existing) {
                    return (existing.clone(), false);
                }
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let max_attempts = if new.max_attempts <= 0 {
            self.default_max_attempts
        } else {
            new.max_attempts
        };
        let rec = TaskRec {
            id: id.clone(),
            command: new.command,
            tenant_id: new.tenant_id,
            payload: if new.payload.is_empty() {
                b"null".to_vec()
            } else {
                new.payload
            },
            priority: new.priority.clamp(0, 9),
            webhook: new.webhook,
            max_attempts,
            status: TaskStatus::Pending,
            attempts: 0,
            worker_id: None,
            lease_until: None,
            lease_until_wall: None,
            result_json: None,
            error: None,
            visible_at: None,
            queued_at: None,
            delayed_at: None,
            deliveries: 0,
            nack_reasons: Vec::new(),
            idempotency_key: new.idempotency_key.clone(),
            trace_parent: new.trace_parent,
            trace_state: new.trace_state,
            created_at: wall,
            updated_at: wall,
        };
        self.tasks.insert(id.clone(), rec);
        if let Some(key) = new.idempotency_key {
            self.idempotency.insert(key, id.clone());
        }
        self.make_pending(&id, new.not_before.filter(|at| *at > now));
        (id, true)
    }

    /// Puts a task (already marked or about to be marked PENDING) at the back of its queue, or
    /// into the delayed set until `not_before`.
    fn make_pending(&mut self, id: &str, not_before: Option<Instant>) {
        let seq = self.seq();
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        task.status = TaskStatus::Pending;
        task.worker_id = None;
        task.lease_until = None;
        task.lease_until_wall = None;
        match not_before {
            Some(at) => {
                task.visible_at = Some(at);
                task.delayed_at = Some((at, seq));
                task.queued_at = None;
                self.delayed.insert((at, seq), id.to_string());
            }
            None => {
                task.visible_at = None;
                task.delayed_at = None;
                let key = (Reverse(task.priority), seq);
                task.queued_at = Some(key);
                self.queues
                    .entry((task.tenant_id.clone(), task.command.clone()))
                    .or_default()
                    .insert(key, id.to_string());
            }
        }
    }

    /// Moves delayed tasks whose time has come into their queues (keeping their delay order);
    /// returns how many.
    pub(crate) fn promote_due(&mut self, now: Instant) -> usize {
        let mut moved = 0;
        while let Some((&(at, seq), _)) = self.delayed.first_key_value() {
            if at > now {
                break;
            }
            let Some(id) = self.delayed.remove(&(at, seq)) else {
                break;
            };
            if let Some(task) = self.tasks.get(&id) {
                if task.status == TaskStatus::Pending && task.delayed_at == Some((at, seq)) {
                    self.make_pending(&id, None);
                    moved += 1;
                }
            }
        }
        moved
    }

    /// The earliest instant a delayed task becomes visible.
    pub(crate) fn next_visible(&self) -> Option<Instant> {
        self.delayed.first_key_value().map(|(&(at, _), _)| at)
    }

    /// Leases up to `req.max` visible pending tasks of the tenant to the worker, highest
    /// priority first, FIFO within a priority, across all the commands the filter allows.
    pub(crate) fn claim(
        &mut self,
        req: &ClaimRequest<'_>,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<TaskView> {
        let ClaimRequest {
            tenant,
            commands,
            worker_id,
            lease_seconds,
            max,
        } = *req;
        self.promote_due(now);
        let lease = wire(self.second, lease_seconds);
        let mut out = Vec::new();
        while out.len() < max {
            // The best head among the allowed queues.
            let mut best: Option<(QueueKey, (String, String))> = None;
            for (qkey, queue) in &self.queues {
                if qkey.0 != tenant {
                    continue;
                }
                let allowed = match commands {
                    CommandFilter::Any => true,
                    CommandFilter::Only(list) => list.contains(&qkey.1),
                };
                if !allowed {
                    continue;
                }
                if let Some((&head, _)) = queue.first_key_value() {
                    if best.as_ref().is_none_or(|(b, _)| head < *b) {
                        best = Some((head, qkey.clone()));
                    }
                }
            }
            let Some((head, qkey)) = best else {
                break;
            };
            let Some(id) = self.queues.get_mut(&qkey).and_then(|q| q.remove(&head)) else {
                break;
            };
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            task.queued_at = None;
            task.status = TaskStatus::InProgress;
            task.worker_id = Some(worker_id.to_string());
            let until = now + lease;
            task.lease_until = Some(until);
            task.lease_until_wall = Some(wall_of(now, wall, until));
            task.deliveries += 1;
            task.updated_at = wall;
            out.push(task.view());
        }
        out
    }

    /// Result COMPLETED / FAILED, with codeQ's checks in codeQ's order. `result` is the parsed
    /// result_json: `None` when it was empty or JSON `null`.
    pub(crate) fn submit_result(
        &mut self,
        task_id: &str,
        worker_id: &str,
        completed: bool,
        result_json: Option<Vec<u8>>,
        error: &str,
        wall: SystemTime,
    ) -> Result<(), String> {
        let task = self
            .tasks
            .get_mut(task_id)
            .ok_or_else(|| "task not found".to_string())?;
        if let Some(owner) = task.worker_id.as_deref() {
            if owner != worker_id {
                return Err("not-owner".into());
            }
        }
        if task.status != TaskStatus::InProgress {
            return Err("not-in-progress".into());
        }
        if completed {
            let Some(result) = result_json else {
                return Err("result required when status=COMPLETED".into());
            };
            task.status = TaskStatus::Completed;
            task.result_json = Some(result);
        } else {
            if error.trim().is_empty() {
                return Err("error required when status=FAILED".into());
            }
            task.status = TaskStatus::Failed;
            task.error = Some(error.to_string());
        }
        task.lease_until = None;
        task.lease_until_wall = None;
        task.updated_at = wall;
        Ok(())
    }

    /// Looks up a task the worker must own and hold in progress (heartbeat, nack, abandon).
    fn owned(&mut self, task_id: &str, worker_id: &str) -> Result<&mut TaskRec, String> {
        let task = self
            .tasks
            .get_mut(task_id)
            .ok_or_else(|| "not-found".to_string())?;
        if task.worker_id.as_deref() != Some(worker_id) {
            return Err("not-owner".into());
        }
        if task.status != TaskStatus::InProgress {
            return Err("not-in-progress".into());
        }
        Ok(task)
    }

    /// Heartbeat: the lease becomes now + extend (not lease + extend).
    pub(crate) fn heartbeat(
        &mut self,
        task_id: &str,
        worker_id: &str,
        extend_seconds: i32,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), String> {
        let extend = if extend_seconds <= 0 {
            self.default_lease_seconds
        } else {
            extend_seconds
        };
        let until = now + wire(self.second, extend);
        let task = self.owned(task_id, worker_id)?;
        task.lease_until = Some(until);
        task.lease_until_wall = Some(wall_of(now, wall, until));
        task.updated_at = wall;
        Ok(())
    }

    /// Server-computed backoff in wire seconds for a task that has failed `attempts` times:
    /// base · 2^(attempts−1), capped. Deterministic (codeQ adds jitter) so tests can assert it.
    fn backoff_seconds(&self, attempts: i32) -> i32 {
        let exp = attempts.saturating_sub(1).clamp(0, 30) as u32;
        let raw = i64::from(self.backoff_base_seconds).saturating_mul(1i64 << exp);
        raw.min(i64::from(self.backoff_max_seconds)) as i32
    }

    /// Counts a failed attempt; dead-letters at max_attempts, else requeues after `delay`
    /// (wire seconds; ≤ 0 → server backoff). Shared by Nack and lease expiry.
    fn fail_attempt(
        &mut self,
        task_id: &str,
        delay_seconds: i32,
        reason: &str,
        default_reason: &str,
        now: Instant,
        wall: SystemTime,
    ) -> NackOutcome {
        let (attempts, max_attempts) = match self.tasks.get_mut(task_id) {
            Some(task) => {
                task.attempts += 1;
                task.updated_at = wall;
                if !reason.is_empty() {
                    task.nack_reasons.push(reason.to_string());
                }
                (task.attempts, task.max_attempts)
            }
            None => {
                return NackOutcome {
                    applied_delay_seconds: 0,
                    dlq: false,
                }
            }
        };
        if attempts >= max_attempts {
            if let Some(task) = self.tasks.get_mut(task_id) {
                task.status = TaskStatus::Dlq;
                task.lease_until = None;
                task.lease_until_wall = None;
                task.worker_id = None;
                task.error = Some(if reason.is_empty() {
                    default_reason.to_string()
                } else {
                    reason.to_string()
                });
            }
            return NackOutcome {
                applied_delay_seconds: 0,
                dlq: true,
            };
        }
        let delay = if delay_seconds <= 0 {
            self.backoff_seconds(attempts)
        } else {
            // codeQ caps a client delay at the backoff maximum; a zero maximum means no cap.
            match self.backoff_max_seconds {
                0 => delay_seconds,
                max => delay_seconds.min(max),
            }
        };
        let not_before = (delay > 0).then(|| now + wire(self.second, delay));
        self.make_pending(task_id, not_before);
        NackOutcome {
            applied_delay_seconds: delay,
            dlq: false,
        }
    }

    /// Nack from the owning worker.
    pub(crate) fn nack(
        &mut self,
        task_id: &str,
        worker_id: &str,
        delay_seconds: i32,
        reason: &str,
        now: Instant,
        wall: SystemTime,
    ) -> Result<NackOutcome, String> {
        self.owned(task_id, worker_id)?;
        Ok(self.fail_attempt(task_id, delay_seconds, reason, "MAX_ATTEMPTS", now, wall))
    }

    /// Abandon: straight back to pending, not counted as an attempt.
    pub(crate) fn abandon(
        &mut self,
        task_id: &str,
        worker_id: &str,
        wall: SystemTime,
    ) -> Result<(), String> {
        let task = self.owned(task_id, worker_id)?;
        task.updated_at = wall;
        self.make_pending(task_id, None);
        Ok(())
    }

    /// Requeues (or dead-letters) every task whose lease has ended and surfaces due delayed
    /// tasks; returns how many tasks changed.
    pub(crate) fn reap(&mut self, now: Instant, wall: SystemTime) -> usize {
        let expired: Vec<String> = self
            .tasks
            .values()
            .filter(|t| {
                t.status == TaskStatus::InProgress && t.lease_until.is_some_and(|u| u <= now)
            })
            .map(|t| t.id.clone())
            .collect();
        for id in &expired {
            self.fail_attempt(id, 0, "", "LEASE_EXPIRED", now, wall);
        }
        expired.len() + self.promote_due(now)
    }

    /// Ends a task's lease now, so the next reaper pass takes it (tests).
    pub(crate) fn expire_lease(&mut self, task_id: &str, now: Instant) -> bool {
        match self.tasks.get_mut(task_id) {
            Some(task) if task.status == TaskStatus::InProgress => {
                task.lease_until = Some(now);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn view(&self, id: &str) -> Option<TaskView> {
        self.tasks.get(id).map(TaskRec::view)
    }

    /// Views, oldest first, optionally of one command only.
    pub(crate) fn views(&self, command: Option<&str>) -> Vec<TaskView> {
        let mut out: Vec<TaskView> = self
            .tasks
            .values()
            .filter(|t| command.is_none_or(|c| t.command == c))
            .map(TaskRec::view)
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(&EmulatorConfig {
            backoff_base_seconds: 2,
            backoff_max_seconds: 5,
            ..EmulatorConfig::default()
        })
    }

    fn new_task(command: &str, priority: i32) -> NewTask {
        NewTask {
            command: command.into(),
            payload: b"{}".to_vec(),
            priority,
            webhook: String::new(),
            max_attempts: 3,
            idempotency_key: None,
            not_before: None,
            tenant_id: "t".into(),
            trace_parent: String::new(),
            trace_state: String::new(),
        }
    }

    fn request<'a>(tenant: &'a str, commands: &'a CommandFilter<'a>) -> ClaimRequest<'a> {
        ClaimRequest {
            tenant,
            commands,
            worker_id: "w",
            lease_seconds: 10,
            max: 10,
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let s = store();
        assert_eq!(s.backoff_seconds(1), 2);
        assert_eq!(s.backoff_seconds(2), 4);
        assert_eq!(s.backoff_seconds(3), 5);
        assert_eq!(s.backoff_seconds(100), 5);
    }

    #[test]
    fn priority_then_fifo_across_commands() {
        let mut s = store();
        let now = Instant::now();
        let wall = SystemTime::now();
        let (a, _) = s.create(new_task("x", 1), now, wall);
        let (b, _) = s.create(new_task("y", 5), now, wall);
        let (c, _) = s.create(new_task("x", 5), now, wall);
        let cmds = vec!["x".to_string(), "y".to_string()];
        let got: Vec<String> = s
            .claim(&request("t", &CommandFilter::Only(&cmds)), now, wall)
            .into_iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(got, vec![b, c, a]);
    }

    #[test]
    fn other_tenant_is_invisible() {
        let mut s = store();
        let now = Instant::now();
        let wall = SystemTime::now();
        s.create(new_task("x", 1), now, wall);
        assert!(s
            .claim(&request("other", &CommandFilter::Any), now, wall)
            .is_empty());
    }
}
