//! Running one [`Job`] on a child: checkout, bind (load), invoke, serve host calls, collect
//! logs, enforce the deadline with SIGKILL, and decide the child's fate.

use super::child::KillReason;
use super::conversation::{converse, Stop, Until};
use super::execution::{ErrorType, ExecError, Execution, Job, StartKind};
use super::failure::{ChildFailure, ChildStartError};
use super::{CompiledKey, CompiledModules, Idle, Inner, Pool};
use crate::host::HostApi;
use sandbox_proto::messages::{truncate_result, truncate_utf8};
use sandbox_proto::protocol::{FromChild, GuestError, Invoke, LoadBundle, ToChild};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An idle child checked out for one invocation. If the invocation future is dropped midway
/// (the caller gave up), the child is in an unknown state: the guard kills it.
struct Lease<'a> {
    inner: &'a Inner,
    idle: Option<Idle>,
}

impl Lease<'_> {
    fn child(&mut self) -> &mut Idle {
        // The Option is only emptied by `finish`, which consumes the lease.
        self.idle
            .as_mut()
            .expect("lease holds a child until finish")
    }

    /// Returns the child to the pool, or retires it.
    fn finish(mut self, fate: Option<KillReason>) {
        let Some(mut idle) = self.idle.take() else {
            return;
        };
        self.inner.lock().unmark_busy(idle.child.pid);
        match fate {
            Some(reason) => self.inner.retire(idle, reason),
            None => {
                idle.uses += 1;
                idle.last_used = Instant::now();
                if idle.uses >= self.inner.cfg.max_uses || self.inner.closed.load(Ordering::SeqCst)
                {
                    self.inner.retire(idle, KillReason::Recycled);
                } else if let Some(b) = idle.binding.clone() {
                    self.inner.lock().warm.entry(b).or_default().push(idle);
                    self.inner.returned.notify_waiters();
                } else {
                    // Never bound (cannot happen after a run): keep it as a stem.
                    self.inner.lock().stems.push_back(idle);
                    self.inner.returned.notify_waiters();
                }
            }
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(idle) = self.idle.take() {
            self.inner.lock().unmark_busy(idle.child.pid);
            self.inner.retire(idle, KillReason::Cancelled);
        }
    }
}

impl Pool {
    /// Runs `job` on a child. Never fails: every failure is an [`Execution`] with an error
    /// type (contract §6); the child is replaced when it cannot be trusted to serve again.
    pub async fn invoke<H: HostApi>(&self, job: &Job, host: &H) -> Execution {
        let inner = &*self.inner;
        inner.counters.invocations.fetch_add(1, Ordering::Relaxed);
        let t0 = Instant::now();
        let mut ex = Execution::empty();
        let kill_at = job.deadline + inner.cfg.kill_grace;
        let binding = job.binding();

        // A child found dead when its run starts is replaced by another (at most this often):
        // an idle child's death is noticed by the first write to it rather than by asking the
        // kernel for its status on every call (a `wait4` per warm call).
        let limits = inner.cfg.limits;
        let mut dead_idle = 0;
        let (mut lease, stop) = loop {
            // 1. A child: warm, stem, or started now.
            let checkout = async {
                loop {
                    // Registered before looking, so a child returned between the look and the
                    // wait below is not missed.
                    let returned = inner.returned.notified();
                    tokio::pin!(returned);
                    returned.as_mut().enable();
                    if let Some(found) = inner.take_idle(&binding) {
                        return Ok(found);
                    }
                    let permit = match Arc::clone(&inner.slots).try_acquire_owned() {
                        Ok(p) => p,
                        Err(_) => {
                            if inner.evict_one() {
                                continue;
                            }
                            // Everything is busy: wait for a slot, or for a child to come back
                            // (woken at once; the timer is only a safety net).
                            tokio::select! {
                                p = Arc::clone(&inner.slots).acquire_owned() => match p {
                                    Ok(p) => p,
                                    Err(_) => return Err(ChildStartError::ShutDown),
                                },
                                _ = &mut returned => continue,
                                _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                            }
                        }
                    };
                    match inner.spawn_child(permit).await {
                        Ok(idle) => {
                            inner.lock().busy.push(idle.child.pid);
                            return Ok((idle, StartKind::Spawned));
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            let (idle, start) = tokio::select! {
                r = checkout => match r {
                    Ok(found) => found,
                    Err(e) => {
                        ex.wait = t0.elapsed();
                        ex.outcome = Err(ExecError::new(
                            ErrorType::SandboxError,
                            format!("cannot start a sandbox child: {e}"),
                        ));
                        return ex;
                    }
                },
                _ = tokio::time::sleep_until(job.deadline.into()) => {
                    ex.wait = t0.elapsed();
                    ex.outcome = Err(ExecError::new(
                        ErrorType::Timeout,
                        format!(
                            "deadline reached after {} ms while waiting for a free sandbox child",
                            ex.wait.as_millis()
                        ),
                    ));
                    return ex;
                }
            };
            ex.wait = t0.elapsed();
            ex.start = start;
            ex.child_id = idle.child.id;
            ex.child_pid = idle.child.pid;
            let mut lease = Lease {
                inner,
                idle: Some(idle),
            };

            // 2. Load (if stem) and invoke, under the deadline.
            let cgroup_limit = inner.cgroup_memory_limit(job.bundle.memory_mb());
            // The deadline thread kills the child at `kill_at` whatever this task is doing; the
            // timer below is the fallback, and what ends the wait if the kill came first.
            let armed = inner.deadlines.arm(kill_at, lease.child().child.pid);
            let run = drive(
                inner,
                lease.child(),
                job,
                host,
                &mut ex,
                limits,
                cgroup_limit,
            );
            let stop = tokio::select! {
                r = run => r,
                _ = armed.killed() => Err(Stop::Deadline),
                _ = tokio::time::sleep_until(kill_at.into()) => Err(Stop::Deadline),
            };
            // Disarmed before anything below can reap the child (pid reuse, see deadline.rs).
            let stop = match (armed.disarm(), stop) {
                // The outcome was complete before the kill: keep it, the child is gone anyway.
                (true, Ok(_)) => Ok(Some(KillReason::Timeout)),
                // Killed at the deadline: whatever the pipe says now is the kill's doing.
                (true, Err(_)) => Err(Stop::Deadline),
                (false, stop) => stop,
            };
            if matches!(stop, Err(Stop::DeadIdle)) && dead_idle < MAX_DEAD_IDLE_RETRIES {
                dead_idle += 1;
                tracing::warn!(
                    child_id = ex.child_id,
                    pid = ex.child_pid,
                    "idle sandbox child died on its own; taking another"
                );
                lease.finish(Some(KillReason::Died));
                continue;
            }
            break (lease, stop);
        };

        // 3. The outcome and the child's fate.
        let fate = match stop {
            Ok(fate) => fate,
            Err(Stop::DeadIdle) => {
                let child = &mut lease.child().child;
                let how = child.exit_description(Duration::from_millis(500)).await;
                ex.outcome = Err(ExecError::new(
                    ErrorType::SandboxError,
                    format!(
                        "{MAX_DEAD_IDLE_RETRIES} idle sandbox children in a row had died on their own \
                         (the last {how})"
                    ),
                ));
                Some(KillReason::Died)
            }
            Err(Stop::Deadline) => {
                let budget = job.deadline.saturating_duration_since(t0);
                ex.outcome = Err(ExecError::new(
                    ErrorType::Timeout,
                    format!(
                        "deadline of {} ms reached; the sandbox child was killed",
                        budget.as_millis()
                    ),
                ));
                Some(KillReason::Timeout)
            }
            Err(Stop::Fatal(f)) if f.step == "memory" => {
                // The child's own report of a failed native allocation (src/oom.rs of the
                // child): out of memory, at its address-space limit.
                let child = &mut lease.child().child;
                child.kill();
                let how = child.exit_description(Duration::from_millis(500)).await;
                ex.outcome = Err(ExecError::new(
                    ErrorType::MemoryLimit,
                    format!(
                        "memory limit of {} MiB reached: {} ({how})",
                        job.bundle.memory_mb(),
                        f.message
                    ),
                ));
                Some(KillReason::MemoryLimit)
            }
            Err(Stop::Fatal(f)) => {
                let child = &mut lease.child().child;
                child.kill();
                let how = child.exit_description(Duration::from_millis(500)).await;
                let msg = format!(
                    "sandbox child stopped by its sandbox: {}: {} ({how})",
                    f.step, f.message
                );
                tracing::warn!(
                    child_id = ex.child_id,
                    pid = ex.child_pid,
                    activation_id = %job.scope.activation_id,
                    "{msg}"
                );
                ex.outcome = Err(ExecError::new(ErrorType::SandboxError, msg));
                Some(KillReason::SandboxViolation)
            }
            Err(Stop::Failure(f)) => {
                let child = &mut lease.child().child;
                let (outcome, reason) = match &f {
                    ChildFailure::Gone | ChildFailure::Io(_) => {
                        let how = child.exit_description(Duration::from_millis(500)).await;
                        died(child, &how, job.bundle.memory_mb())
                    }
                    ChildFailure::Breach(_) => {
                        child.kill();
                        let how = child.exit_description(Duration::from_millis(500)).await;
                        (
                            ExecError::new(
                                ErrorType::SandboxError,
                                format!(
                                    "sandbox child broke the protocol ({}) and was killed: {how}",
                                    f
                                ),
                            ),
                            KillReason::ProtocolBreach,
                        )
                    }
                };
                tracing::warn!(
                    child_id = ex.child_id,
                    pid = ex.child_pid,
                    activation_id = %job.scope.activation_id,
                    error_type = outcome.kind.as_str(),
                    "{}",
                    outcome.message
                );
                if outcome.kind == ErrorType::MemoryLimit {
                    if let Some(peak) = child.cgroup.as_ref().and_then(|c| c.memory_peak()) {
                        ex.memory_peak_bytes = ex.memory_peak_bytes.max(peak);
                    }
                }
                ex.outcome = Err(outcome);
                Some(reason)
            }
        };
        if ex.logs_truncated {
            let notice = format!(
                "[warn] log output truncated at {} bytes",
                limits.max_log_bytes
            );
            if let Some(sink) = &job.log_sink {
                sink(&notice);
            }
            ex.logs.push(notice);
        }
        lease.finish(fate);
        let secrets = &job.scope.context.secrets;
        if !secrets.is_empty() {
            if let Err(e) = &mut ex.outcome {
                ex.redactions += secrets.redact(&mut e.message);
                truncate_utf8(&mut e.message, limits.max_error_bytes as usize);
                if let Some(stack) = &mut e.stack {
                    ex.redactions += secrets.redact(stack);
                    truncate_utf8(stack, limits.max_stack_bytes as usize);
                }
            }
        }
        if ex.start == StartKind::Stem {
            // Replaces the stem this call took, now that its cold call is over.
            inner.refill.notify_one();
        }
        ex
    }
}

/// Loads the bundle if the child is a stem, then invokes. Returns the child's fate (None = may
/// serve again).
async fn drive<H: HostApi>(
    inner: &Inner,
    idle: &mut Idle,
    job: &Job,
    host: &H,
    ex: &mut Execution,
    limits: sandbox_proto::protocol::OutputLimits,
    cgroup_limit: u64,
) -> Result<Option<KillReason>, Stop> {
    let fail = Stop::Failure;
    let loaded_now = idle.binding.is_none();
    if loaded_now {
        let t = Instant::now();
        if let Some(cg) = &idle.child.cgroup {
            cg.set_memory_limit(cgroup_limit).map_err(|e| {
                fail(ChildFailure::Breach(format!(
                    "cannot set the cgroup memory limit: {e}"
                )))
            })?;
        }
        let memory_limit_bytes = job.bundle.memory_mb().saturating_mul(1024 * 1024);
        // Compiled modules of this tenant's earlier compile of this very bundle, if kept:
        // the key is the typed (tenant, sha256), so no other binding's bytecode can come out.
        let store = inner.compiled();
        let key = CompiledKey {
            tenant: job.scope.tenant.clone(),
            sha256: job.bundle.sha256.clone(),
        };
        let cached = store.as_ref().and_then(|s| s.get_compiled(&key));
        idle.child
            .send(&ToChild::LoadBundle(LoadBundle {
                sha256: job.bundle.sha256.clone(),
                entry: job.bundle.entry().to_string(),
                files: job.bundle.files.clone(),
                memory_limit_bytes,
                limits,
                env: job.env.as_ref().clone(),
                bytecode: cached.as_deref().map(<[u8]>::to_vec),
                want_bytecode: store.as_ref().is_some_and(|s| s.keeps(&key)),
            }))
            .await
            .map_err(first_send)?;
        let loaded = match converse(&mut idle.child, job, host, ex, limits, Until::Loaded).await? {
            FromChild::Loaded(r) => r,
            _ => return Err(fail(ChildFailure::Breach("expected Loaded".into()))),
        };
        ex.load = t.elapsed();
        idle.binding = Some(job.binding());
        let loaded = match (loaded, store) {
            (Ok(mut l), Some(store)) => {
                keep_compiled(inner, &*store, &key, cached.is_some(), &mut l, ex)?;
                Ok(l)
            }
            (Ok(l), None) if l.from_bytecode => {
                return Err(fail(ChildFailure::Breach(
                    "the child claims to have read bytecode it was not sent".into(),
                )))
            }
            (Err(e), Some(store)) if cached.is_some() => {
                // Not the cache's fault as far as anyone can tell, but bytes that went with a
                // failed load are not worth keeping.
                store.remove_compiled(&key);
                Err(e)
            }
            (other, _) => other,
        };
        if let Err(e) = loaded {
            let reason = reason_for(&e);
            ex.outcome = Err(guest_error(e, limits));
            return Ok(Some(reason.unwrap_or(KillReason::LoadFailed)));
        }
    } else if idle.binding.as_ref() != Some(&job.binding()) {
        // take_idle only hands out children of this binding; refuse loudly if that breaks.
        return Err(fail(ChildFailure::Breach(
            "pool handed out a child bound to another tenant or bundle".into(),
        )));
    }

    let invocation_id = idle.uses as u64 + 1;
    let budget = job.deadline.saturating_duration_since(Instant::now());
    let t = Instant::now();
    idle.child
        .send(&ToChild::Invoke(Invoke {
            invocation_id,
            event_json: job.event_json.clone(),
            ctx_json: job.ctx_json.clone(),
            budget_us: budget.as_micros().min(u64::MAX as u128) as u64,
        }))
        .await
        .map_err(|e| if loaded_now { fail(e) } else { first_send(e) })?;
    let outcome = match converse(&mut idle.child, job, host, ex, limits, Until::Outcome).await? {
        FromChild::Outcome(o) => o,
        _ => return Err(fail(ChildFailure::Breach("expected Outcome".into()))),
    };
    ex.exec = t.elapsed();
    if outcome.invocation_id != invocation_id {
        return Err(fail(ChildFailure::Breach(format!(
            "outcome for invocation {} while {invocation_id} was running",
            outcome.invocation_id
        ))));
    }
    ex.memory_peak_bytes = outcome.memory_peak_bytes;
    ex.cpu = Duration::from_micros(outcome.cpu_us);
    ex.logs_truncated |= outcome.logs_truncated;
    ex.result_truncated |= outcome.result_truncated;
    match outcome.result {
        Ok(mut result) => {
            if !result.status_is_valid() {
                return Err(fail(ChildFailure::Breach(format!(
                    "the result has statusCode {}, which the child must refuse",
                    result.status_code
                ))));
            }
            ex.result_truncated |= truncate_result(&mut result, limits.max_result_bytes as usize);
            ex.outcome = Ok(result);
            Ok(None)
        }
        Err(e) => {
            let reason = reason_for(&e);
            ex.outcome = Err(guest_error(e, limits));
            Ok(reason)
        }
    }
}

/// Longest rejection reason of a child the operator's log repeats.
const MAX_REJECTION_BYTES: usize = 512;

/// Accounts for a successful load's compiled modules: a hit, a miss (the fresh bytecode kept),
/// or a rejection (warned, the entry replaced by the fresh bytecode).
fn keep_compiled(
    inner: &Inner,
    store: &dyn CompiledModules,
    key: &CompiledKey,
    sent: bool,
    loaded: &mut sandbox_proto::protocol::Loaded,
    ex: &Execution,
) -> Result<(), Stop> {
    let c = &inner.counters;
    if loaded.from_bytecode {
        if !sent {
            return Err(Stop::Failure(ChildFailure::Breach(
                "the child claims to have read bytecode it was not sent".into(),
            )));
        }
        c.bytecode_hits.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            child_id = ex.child_id,
            sha256 = %key.sha256,
            load_us = loaded.load_us,
            "bundle loaded from cached bytecode"
        );
        return Ok(());
    }
    if sent {
        c.bytecode_rejected.fetch_add(1, Ordering::Relaxed);
        store.remove_compiled(key);
        // The child's words, on one bounded line: it is not trusted to format our log.
        let mut why = sandbox_proto::messages::one_line(
            loaded
                .bytecode_rejected
                .as_deref()
                .unwrap_or("no reason given"),
        )
        .into_owned();
        truncate_utf8(&mut why, MAX_REJECTION_BYTES);
        tracing::warn!(
            child_id = ex.child_id,
            sha256 = %key.sha256,
            "the sandbox child refused the cached bytecode of this bundle and compiled the \
             source: {why}"
        );
    } else {
        c.bytecode_misses.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(bytes) = loaded.bytecode.take() {
        let len = bytes.len();
        if !store.put_compiled(key, bytes) {
            tracing::debug!(
                sha256 = %key.sha256,
                bytes = len,
                "compiled modules not kept (the bundle is not cached, or they do not fit)"
            );
        }
    }
    Ok(())
}

/// How many dead idle children one invocation replaces before it reports a SandboxError.
const MAX_DEAD_IDLE_RETRIES: u32 = 3;

/// The first frame of a run could not be written because the pipe is closed: the child died
/// while idle.
fn first_send(e: ChildFailure) -> Stop {
    match e {
        ChildFailure::Gone => Stop::DeadIdle,
        other => Stop::Failure(other),
    }
}

/// A child that hit its deadline or memory limit is not reused.
fn reason_for(e: &GuestError) -> Option<KillReason> {
    match ErrorType::from(e.kind) {
        ErrorType::Timeout => Some(KillReason::Timeout),
        ErrorType::MemoryLimit => Some(KillReason::MemoryLimit),
        ErrorType::SandboxError => Some(KillReason::ProtocolBreach),
        _ => None,
    }
}

fn guest_error(e: GuestError, limits: sandbox_proto::protocol::OutputLimits) -> ExecError {
    let mut message = e.message;
    truncate_utf8(&mut message, limits.max_error_bytes as usize);
    let stack = e.stack.map(|mut s| {
        truncate_utf8(&mut s, limits.max_stack_bytes as usize);
        s
    });
    ExecError {
        kind: e.kind.into(),
        message,
        stack,
    }
}

/// Exit status of a child that reported its own native allocation failure.
const EXIT_OUT_OF_MEMORY: &str = "exited with status 160";

/// Exit status of a child whose SIGSYS handler caught a seccomp violation.
const EXIT_BLOCKED_SYSCALL: &str = "exited with status 159";

/// Attributes the death of a child that was not killed by us: the cgroup's OOM counter makes it
/// a `MemoryLimit`, the seccomp reporter's exit status a sandbox violation; anything else is a
/// `SandboxError` with the signal or status.
fn died(child: &super::child::ChildProcess, how: &str, memory_mb: u64) -> (ExecError, KillReason) {
    let oom = child
        .cgroup
        .as_ref()
        .and_then(|c| c.oom_kills().ok())
        .unwrap_or(0);
    if oom > 0 {
        let peak = child
            .cgroup
            .as_ref()
            .and_then(|c| c.memory_peak())
            .map(|p| format!(", peak {p} bytes"))
            .unwrap_or_default();
        return (
            ExecError::new(
                ErrorType::MemoryLimit,
                format!(
                    "memory limit of {memory_mb} MiB reached: the kernel's OOM killer stopped \
                     the sandbox child ({how}{peak})"
                ),
            ),
            KillReason::MemoryLimit,
        );
    }
    if how == EXIT_OUT_OF_MEMORY {
        return (
            ExecError::new(
                ErrorType::MemoryLimit,
                format!(
                    "memory limit of {memory_mb} MiB reached: a native allocation failed \
                     (its report was lost)"
                ),
            ),
            KillReason::MemoryLimit,
        );
    }
    if how == EXIT_BLOCKED_SYSCALL {
        return (
            ExecError::new(
                ErrorType::SandboxError,
                "sandbox child was stopped by its seccomp policy (blocked syscall; \
                 its report was lost)",
            ),
            KillReason::SandboxViolation,
        );
    }
    (
        ExecError::new(
            ErrorType::SandboxError,
            format!("sandbox child died during the activation: {how}"),
        ),
        KillReason::Died,
    )
}
