//! The pre-forked pool of `sandbox-child` processes.
//!
//! Children live in three states, as in OpenWhisk's invoker: **stem** (started, handshaken,
//! unspecialised), **warm** (bound to one tenant and one bundle sha256, module compiled, idle) and
//! **busy**. An invocation takes a warm child of its own binding first, then a stem child (which
//! it binds), then starts a child itself. A child is never rebound: it serves one tenant and one
//! bundle version for its whole life, then is killed. Stem children are refilled by a background
//! task, like Android's USAP pool, so starting processes is off the invocation path.
//!
//! Process count is bounded by a semaphore of `max_children` permits; each live child holds one
//! until it has been reaped. When all permits are held by idle warm children of other bindings,
//! the least recently used one is evicted.

pub mod child;
pub mod compiled;
mod conversation;
mod deadline;
mod execution;
mod executor;
mod failure;
mod invoke;
mod reply;
mod spawn;
mod spin;

pub use child::{describe_status, signal_name, KillReason};
pub use compiled::{CompiledKey, CompiledModules};
pub use execution::{
    Binding, Env, ErrorType, ExecError, Execution, HostCallStats, Job, LogSink, StartKind,
};
pub use executor::Executor;
pub use failure::ChildStartError;

use crate::cgroup::CgroupLimits;
use crate::sandbox::Sandbox;
use child::ChildProcess;
use sandbox_proto::protocol::OutputLimits;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Environment variable naming the `sandbox-child` binary, overriding the one beside us.
pub const CHILD_BIN_ENV: &str = "CS_SANDBOX_CHILD_BIN";

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The `sandbox-child` executable.
    pub child_bin: PathBuf,
    /// Stem children kept started and ready.
    pub prewarm: usize,
    /// Most child processes alive at once (stem, warm and busy).
    pub max_children: usize,
    /// A child is recycled after this many invocations.
    pub max_uses: u32,
    /// A warm child unused for this long is stopped.
    pub idle_timeout: Duration,
    /// The supervisor SIGKILLs a child this long after the deadline if the engine's own
    /// interrupt has not ended the run, and reports the Timeout itself. Short (0.5 ms): long
    /// native operations (JSON of huge values, `repeat`, BigInt, typed-array sort, `join`)
    /// poll the interrupt rarely or never, so the kill is what ends them; a child that did
    /// stop on its own in that time has nothing more to say (its logs are already
    /// here, and a timed-out engine is retired anyway).
    pub kill_grace: Duration,
    /// How long a new child may take to report Ready.
    pub ready_timeout: Duration,
    pub limits: OutputLimits,
    /// What confines the children on this host.
    pub sandbox: Arc<Sandbox>,
}

impl PoolConfig {
    /// The sizing defaults, also those of `cs_invoker_pool.pool` (the configuration reads them
    /// here rather than restating them).
    pub const DEFAULT_MAX_CHILDREN: usize = 256;
    pub const DEFAULT_MAX_USES: u32 = 10_000;
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

    /// Stem children kept ready by default: one per CPU.
    pub fn default_prewarm() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    pub fn new(child_bin: PathBuf, sandbox: Arc<Sandbox>) -> Self {
        PoolConfig {
            child_bin,
            prewarm: Self::default_prewarm(),
            max_children: Self::DEFAULT_MAX_CHILDREN,
            max_uses: Self::DEFAULT_MAX_USES,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            kill_grace: Duration::from_micros(500),
            ready_timeout: Duration::from_secs(5),
            limits: OutputLimits::default(),
            sandbox,
        }
    }
}

/// The largest `memoryMb` a manifest may ask for; a stem child's cgroup allows this much (plus
/// headroom) until it is bound to a bundle.
const MAX_MEMORY_BYTES: u64 = 4096 << 20;
/// Memory a child's cgroup allows beyond the bundle's `memoryMb`: the idle child itself (its
/// binary, libc, the engine's runtime) measured on the first child, plus slack for the engine's
/// own bookkeeping, so a JavaScript allocation meets the engine's counted limit (a clean
/// `MemoryLimit`) before the cgroup's OOM killer (the backstop for native allocations).
const MEMORY_SLACK_BYTES: u64 = 16 << 20;
/// Used until the first child has been measured.
const DEFAULT_BASELINE_BYTES: u64 = 8 << 20;

/// Why `sandbox-child` was not found ([`default_child_bin`]).
#[derive(Debug, thiserror::Error)]
pub enum ChildBinError {
    #[error("cannot locate the running executable: {0}")]
    NoExe(std::io::Error),
    #[error("{} has no parent directory", .0.display())]
    NoParent(PathBuf),
    #[error(
        "sandbox-child not found beside {} (looked for {}); install it there, \
         set {CHILD_BIN_ENV}, or pass --child-bin",
        .exe.display(),
        .candidate.display()
    )]
    NotFound { exe: PathBuf, candidate: PathBuf },
}

/// Finds `sandbox-child`: `$CS_SANDBOX_CHILD_BIN`, else beside the running executable.
pub fn default_child_bin() -> Result<PathBuf, ChildBinError> {
    if let Some(p) = std::env::var_os(CHILD_BIN_ENV) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(ChildBinError::NoExe)?;
    let Some(dir) = exe.parent() else {
        return Err(ChildBinError::NoParent(exe));
    };
    let candidate = dir.join("sandbox-child");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(ChildBinError::NotFound { exe, candidate })
    }
}

/// A [`PoolConfig`] the pool cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("sandbox-child binary {} does not exist", .0.display())]
    NoChildBin(PathBuf),
    #[error("pool: max_children must be at least 1")]
    NoChildren,
}

/// An idle child with its process permit.
struct Idle {
    child: ChildProcess,
    permit: OwnedSemaphorePermit,
    binding: Option<Binding>,
    uses: u32,
    last_used: Instant,
}

#[derive(Default)]
struct State {
    stems: VecDeque<Idle>,
    warm: HashMap<Binding, Vec<Idle>>,
    /// Stem children being started by the refill task.
    refilling: usize,
    /// Pids of the children running an invocation.
    busy: Vec<u32>,
}

/// Counters for `/metrics` and for tests.
#[derive(Default)]
struct Counters {
    spawns: AtomicU64,
    spawn_failures: AtomicU64,
    invocations: AtomicU64,
    kills: [AtomicU64; KillReason::ALL.len()],
    bytecode_hits: AtomicU64,
    bytecode_misses: AtomicU64,
    bytecode_rejected: AtomicU64,
}

/// A snapshot of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub stem: usize,
    pub warm: usize,
    pub busy: usize,
    pub spawns: u64,
    pub spawn_failures: u64,
    pub invocations: u64,
    pub kills: Vec<(&'static str, u64)>,
    /// Loads that read the compiled modules of an earlier child (nothing parsed).
    pub bytecode_hits: u64,
    /// Loads that compiled the source because no compiled modules were kept for the binding
    /// (only counted while a compiled-module store is attached).
    pub bytecode_misses: u64,
    /// Loads whose compiled modules the child refused (another build, damaged): it compiled
    /// the source, and its fresh bytecode replaced the entry. Each is a warn log line.
    pub bytecode_rejected: u64,
}

impl PoolStats {
    pub fn kills_for(&self, reason: KillReason) -> u64 {
        self.kills
            .iter()
            .find(|(r, _)| *r == reason.as_str())
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

struct Inner {
    cfg: PoolConfig,
    state: Mutex<State>,
    slots: Arc<Semaphore>,
    refill: Notify,
    /// Woken whenever a child becomes idle (back from a run, or a new stem), so that an
    /// invocation waiting for a child takes it at once instead of polling.
    returned: Notify,
    next_id: AtomicU64,
    counters: Counters,
    closed: AtomicBool,
    /// Memory of an idle child as its cgroup counts it, measured once (0 = not yet).
    baseline_bytes: AtomicU64,
    /// Kills children at their kill time (see [`deadline`]).
    deadlines: deadline::Deadlines,
    /// Where compiled modules are kept ([`compiled`]); none: children compile every time.
    compiled: RwLock<Option<Arc<dyn CompiledModules>>>,
}

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Starts the pool and its background task; stem children start in the background.
    /// Must be called inside a tokio runtime.
    pub fn start(cfg: PoolConfig) -> Result<Pool, StartError> {
        if !cfg.child_bin.is_file() {
            return Err(StartError::NoChildBin(cfg.child_bin.clone()));
        }
        if cfg.max_children == 0 {
            return Err(StartError::NoChildren);
        }
        let inner = Arc::new(Inner {
            slots: Arc::new(Semaphore::new(cfg.max_children)),
            cfg,
            state: Mutex::new(State::default()),
            refill: Notify::new(),
            returned: Notify::new(),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            baseline_bytes: AtomicU64::new(0),
            deadlines: deadline::Deadlines::start(),
            compiled: RwLock::new(None),
        });
        tokio::spawn(background(Arc::clone(&inner)));
        inner.refill.notify_one();
        Ok(Pool { inner })
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.cfg
    }

    pub fn stats(&self) -> PoolStats {
        let st = self.inner.lock();
        let c = &self.inner.counters;
        PoolStats {
            stem: st.stems.len(),
            warm: st.warm.values().map(Vec::len).sum(),
            busy: st.busy.len(),
            spawns: c.spawns.load(Ordering::Relaxed),
            spawn_failures: c.spawn_failures.load(Ordering::Relaxed),
            invocations: c.invocations.load(Ordering::Relaxed),
            kills: KillReason::ALL
                .iter()
                .enumerate()
                .map(|(i, r)| (r.as_str(), c.kills[i].load(Ordering::Relaxed)))
                .collect(),
            bytecode_hits: c.bytecode_hits.load(Ordering::Relaxed),
            bytecode_misses: c.bytecode_misses.load(Ordering::Relaxed),
            bytecode_rejected: c.bytecode_rejected.load(Ordering::Relaxed),
        }
    }

    /// Keeps the compiled modules children return in `store` (the pipeline attaches its
    /// bundle cache), and hands them to later children of the same tenant and bundle.
    /// Replaces an earlier store.
    pub fn attach_compiled_modules(&self, store: Arc<dyn CompiledModules>) {
        *self
            .inner
            .compiled
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(store);
    }

    /// Waits until `prewarm` stem children are ready, or `timeout` passes. Returns whether
    /// the pool is full.
    pub async fn wait_prewarmed(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if self.inner.lock().stems.len() >= self.inner.cfg.prewarm {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops every idle child and the refill task. Busy children are killed when their
    /// invocation ends.
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.refill.notify_one();
        let idle: Vec<Idle> = {
            let mut st = self.inner.lock();
            let mut all: Vec<Idle> = st.stems.drain(..).collect();
            for (_, v) in st.warm.drain() {
                all.extend(v);
            }
            all
        };
        for i in idle {
            self.inner.retire(i, KillReason::Shutdown);
        }
        // Every process slot comes back once its child is reaped and its cgroup removed: wait
        // for that (busy children first finish their invocation), so nothing outlives the pool.
        // Waiting for all the permits at once wakes the moment the last one returns; polling
        // here cost `run` a timer tick (5-7 ms) after its only child was already gone.
        let all = u32::try_from(self.inner.cfg.max_children).unwrap_or(u32::MAX);
        let back = self.inner.slots.acquire_many(all);
        if let Ok(Ok(permits)) = tokio::time::timeout(Duration::from_secs(10), back).await {
            // The pool is closed: no slot is handed out again, so give them straight back.
            drop(permits);
        }
    }

    /// The pids of children running an invocation (tests use them to kill one from outside).
    pub fn busy_pids(&self) -> Vec<u32> {
        self.inner.lock().busy.clone()
    }

    /// The pids of idle children (tests use them to kill a child from outside).
    pub fn idle_pids(&self) -> Vec<u32> {
        let st = self.inner.lock();
        st.stems
            .iter()
            .chain(st.warm.values().flatten())
            .map(|i| i.child.pid)
            .collect()
    }
}

impl State {
    fn unmark_busy(&mut self, pid: u32) {
        if let Some(i) = self.busy.iter().position(|p| *p == pid) {
            self.busy.swap_remove(i);
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a way that matters
        // more than losing the pool: keep going with what is there.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn compiled(&self) -> Option<Arc<dyn CompiledModules>> {
        self.compiled
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn count_kill(&self, reason: KillReason) {
        if let Some(i) = KillReason::ALL.iter().position(|r| *r == reason) {
            self.counters.kills[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Kills a child and reaps it in the background; its permit is released once the process
    /// is gone, so `max_children` bounds real processes.
    fn retire(&self, mut idle: Idle, reason: KillReason) {
        idle.child.kill();
        self.count_kill(reason);
        tracing::debug!(
            child_id = idle.child.id,
            pid = idle.child.pid,
            reason = reason.as_str(),
            "child retired"
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = idle.child.exit_description(Duration::from_secs(5)).await;
                if let Some(cg) = idle.child.cgroup.take() {
                    let removed = tokio::task::spawn_blocking(move || cg.remove()).await;
                    if let Ok(Err(e)) = removed {
                        tracing::warn!("cannot remove a child's cgroup: {e}");
                    }
                }
                drop(idle.permit);
            });
        }
        self.refill.notify_one();
    }

    /// Memory a child's cgroup allows beyond `memoryMb`.
    fn memory_headroom(&self) -> u64 {
        let measured = self.baseline_bytes.load(Ordering::Relaxed);
        let base = if measured == 0 {
            DEFAULT_BASELINE_BYTES
        } else {
            measured
        };
        base + MEMORY_SLACK_BYTES
    }

    /// The cgroup memory limit for a bundle's `memoryMb`.
    fn cgroup_memory_limit(&self, memory_mb: u64) -> u64 {
        memory_mb.saturating_mul(1 << 20) + self.memory_headroom()
    }

    async fn spawn_child(&self, permit: OwnedSemaphorePermit) -> Result<Idle, ChildStartError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sandbox = &self.cfg.sandbox;
        let cgroup = match &sandbox.cgroups {
            None => None,
            Some(m) => {
                let limits = CgroupLimits {
                    memory_bytes: Some(MAX_MEMORY_BYTES + self.memory_headroom()),
                    pids_max: Some(sandbox.pids_max),
                    cpu: None,
                };
                let name = format!("child-{id}");
                match m.create(&name, &limits) {
                    Ok(cg) => Some(cg),
                    Err(e) => {
                        self.counters.spawn_failures.fetch_add(1, Ordering::Relaxed);
                        return Err(ChildStartError::Cgroup(e));
                    }
                }
            }
        };
        let spawned = ChildProcess::spawn(
            &self.cfg.child_bin,
            id,
            self.cfg.ready_timeout,
            sandbox.confine.clone(),
            cgroup,
        )
        .await;
        match spawned {
            Ok(child) => {
                self.counters.spawns.fetch_add(1, Ordering::Relaxed);
                if self.baseline_bytes.load(Ordering::Relaxed) == 0 {
                    if let Some(current) = child.cgroup.as_ref().and_then(|c| c.memory_current()) {
                        self.baseline_bytes.store(current.max(1), Ordering::Relaxed);
                        tracing::debug!(bytes = current, "idle child memory baseline measured");
                    }
                }
                Ok(Idle {
                    child,
                    permit,
                    binding: None,
                    uses: 0,
                    last_used: Instant::now(),
                })
            }
            Err(e) => {
                self.counters.spawn_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Takes an idle child from the pool. No status check here (it was a `wait4` per
    /// call): a child that died while idle is found by the first write of its run, and the
    /// invocation takes another (`Stop::DeadIdle`); the background task notices the others.
    fn take_idle(&self, binding: &Binding) -> Option<(Idle, StartKind)> {
        let mut st = self.lock();
        if let Some(i) = st.warm.get_mut(binding).and_then(Vec::pop) {
            if st.warm.get(binding).is_some_and(Vec::is_empty) {
                st.warm.remove(binding);
            }
            st.busy.push(i.child.pid);
            Some((i, StartKind::Warm))
        } else if let Some(i) = st.stems.pop_front() {
            // The refill is started when this stem's first call has ended (see
            // `Pool::invoke`): a spawn running beside the cold call slows it.
            st.busy.push(i.child.pid);
            Some((i, StartKind::Stem))
        } else {
            None
        }
    }

    /// Kills the least recently used idle warm child, if any, to free a process slot.
    fn evict_one(&self) -> bool {
        let victim = {
            let mut st = self.lock();
            let oldest = st
                .warm
                .iter()
                .flat_map(|(b, v)| v.iter().enumerate().map(move |(i, idle)| (b, i, idle)))
                .min_by_key(|(_, _, idle)| idle.last_used)
                .map(|(b, i, _)| (b.clone(), i));
            oldest.and_then(|(b, i)| {
                let v = st.warm.get_mut(&b)?;
                let idle = v.remove(i);
                if v.is_empty() {
                    st.warm.remove(&b);
                }
                Some(idle)
            })
        };
        match victim {
            Some(v) => {
                self.retire(v, KillReason::Evicted);
                true
            }
            None => false,
        }
    }
}

/// The refill and maintenance task: keeps `prewarm` stem children, stops idle warm children,
/// and notices idle children that died on their own.
async fn background(inner: Arc<Inner>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = inner.refill.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        maintain(&inner);
        // Refill one child at a time, yielding between spawns, so invocations are not held up.
        loop {
            if inner.closed.load(Ordering::SeqCst) {
                return;
            }
            let permit = {
                let mut st = inner.lock();
                if st.stems.len() + st.refilling >= inner.cfg.prewarm {
                    break;
                }
                match Arc::clone(&inner.slots).try_acquire_owned() {
                    Ok(p) => {
                        st.refilling += 1;
                        p
                    }
                    Err(_) => break,
                }
            };
            let result = inner.spawn_child(permit).await;
            let failed = {
                let mut st = inner.lock();
                st.refilling -= 1;
                match result {
                    Ok(idle) if inner.closed.load(Ordering::SeqCst) => {
                        drop(st);
                        inner.retire(idle, KillReason::Shutdown);
                        return;
                    }
                    Ok(idle) => {
                        st.stems.push_back(idle);
                        inner.returned.notify_waiters();
                        None
                    }
                    Err(e) => Some(e),
                }
            };
            match failed {
                None => backoff = Duration::from_millis(100),
                Some(e) => {
                    tracing::error!("cannot start a stem sandbox child: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            tokio::task::yield_now().await;
        }
    }
}

fn maintain(inner: &Inner) {
    let now = Instant::now();
    let mut retired = Vec::new();
    {
        let mut st = inner.lock();
        let idle_timeout = inner.cfg.idle_timeout;
        for v in st.warm.values_mut() {
            let mut i = 0;
            while i < v.len() {
                if let Some(status) = v[i].child.exited() {
                    tracing::warn!(
                        child_id = v[i].child.id,
                        "idle sandbox child died on its own: {}",
                        describe_status(status)
                    );
                    retired.push((v.swap_remove(i), KillReason::Died));
                } else if now.duration_since(v[i].last_used) >= idle_timeout {
                    retired.push((v.swap_remove(i), KillReason::Idle));
                } else {
                    i += 1;
                }
            }
        }
        st.warm.retain(|_, v| !v.is_empty());
        let mut i = 0;
        while i < st.stems.len() {
            if let Some(status) = st.stems[i].child.exited() {
                tracing::warn!(
                    child_id = st.stems[i].child.id,
                    "stem sandbox child died on its own: {}",
                    describe_status(status)
                );
                if let Some(dead) = st.stems.remove(i) {
                    retired.push((dead, KillReason::Died));
                }
            } else {
                i += 1;
            }
        }
    }
    for (idle, reason) in retired {
        inner.retire(idle, reason);
    }
}
