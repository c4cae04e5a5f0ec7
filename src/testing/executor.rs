//! [`FakeExecutor`]: an [`Executor`] that starts no child.

use crate::host::HostApi;
use crate::pool::{ExecError, Execution, Executor, Job, StartKind};
use sandbox_proto::messages::HttpResult;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What the executor was given for one job.
#[derive(Debug, Clone)]
pub struct SeenJob {
    pub activation_id: String,
    pub function: String,
    pub version: u64,
    /// The job's effective deadline.
    pub deadline: Instant,
    /// When the execution began.
    pub at: Instant,
}

type Script = dyn Fn(&Job) -> Result<HttpResult, ExecError> + Send + Sync;

/// Answers each job with what its script returns, as a warm child would. When made
/// [`FakeExecutor::gated`], every execution waits for a [`FakeExecutor::release`] first, so a
/// test can hold activations "in the child" while it looks at what the pipeline does around
/// them.
pub struct FakeExecutor {
    script: Box<Script>,
    gate: Option<Arc<Semaphore>>,
    logs: Vec<String>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    seen: Mutex<Vec<SeenJob>>,
}

/// A `200` with `body`.
pub fn ok_result(body: &str) -> HttpResult {
    HttpResult {
        status_code: 200,
        headers: BTreeMap::new(),
        body: body.to_string(),
        is_base64_encoded: false,
    }
}

impl FakeExecutor {
    /// Every job gets what `script` returns.
    pub fn new(
        script: impl Fn(&Job) -> Result<HttpResult, ExecError> + Send + Sync + 'static,
    ) -> Self {
        FakeExecutor {
            script: Box::new(script),
            gate: None,
            logs: Vec::new(),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Every job succeeds with a `200` whose body is `body`.
    pub fn returning(body: &str) -> Self {
        let body = body.to_string();
        Self::new(move |_| Ok(ok_result(&body)))
    }

    /// Executions wait for [`FakeExecutor::release`] before they answer.
    pub fn gated(mut self) -> Self {
        self.gate = Some(Arc::new(Semaphore::new(0)));
        self
    }

    /// Every execution reports these log lines.
    pub fn with_logs(mut self, logs: &[&str]) -> Self {
        self.logs = logs.iter().map(|l| l.to_string()).collect();
        self
    }

    /// Lets `n` held executions answer.
    pub fn release(&self, n: usize) {
        if let Some(g) = &self.gate {
            g.add_permits(n);
        }
    }

    /// The jobs executed so far, in the order they began.
    pub fn seen(&self) -> Vec<SeenJob> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Executions begun so far.
    pub fn started(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Most executions that were in progress at once.
    pub fn max_running(&self) -> usize {
        self.max_running.load(Ordering::SeqCst)
    }

    /// Waits (up to `within`) until `n` executions have begun; whether they did.
    pub async fn wait_started(&self, n: usize, within: Duration) -> bool {
        let end = Instant::now() + within;
        while self.started() < n {
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }
}

impl Executor for FakeExecutor {
    async fn execute<H: HostApi>(&self, job: &Job, _host: &H) -> Execution {
        let now_running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now_running, Ordering::SeqCst);
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SeenJob {
                activation_id: job.scope.activation_id.clone(),
                function: job.scope.function.clone(),
                version: job.scope.version,
                deadline: job.deadline,
                at: Instant::now(),
            });
        if let Some(g) = &self.gate {
            if let Ok(p) = g.acquire().await {
                p.forget();
            }
        }
        let mut ex = Execution::empty();
        ex.outcome = (self.script)(job);
        ex.logs = self.logs.clone();
        ex.log_bytes = self.logs.iter().map(String::len).sum();
        ex.start = StartKind::Warm;
        ex.child_id = 1;
        self.running.fetch_sub(1, Ordering::SeqCst);
        ex
    }
}
