//! What one invocation asks of the pool ([`Job`]) and what it gets back ([`Execution`]).

use crate::host::HostScope;
use sandbox_proto::bundle::Bundle;
/// The error types of contract §6 (the one list, in `sandbox-proto`).
pub use sandbox_proto::messages::ErrorType;
use sandbox_proto::messages::{ErrorBody, HttpResult, InvocationResult, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Receives each log line of an activation as the child produces it.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// A warm child is bound to exactly one (tenant, bundle sha256, `process.env`) and serves
/// nothing else: the environment is set before the module's top-level code runs, so two
/// versions of the same bundle with different `config.env` need different children.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    pub tenant: String,
    pub sha256: String,
    pub env: Env,
}

/// `process.env` of a job: the version's `config.env` (Sous `VersionConfig.env`), in order.
pub type Env = Arc<Vec<(String, String)>>;

pub struct Job {
    pub bundle: Arc<Bundle>,
    pub scope: HostScope,
    /// The event, as JSON text.
    pub event_json: String,
    /// The `ctx` object, as JSON text.
    pub ctx_json: String,
    /// The effective deadline (contract §1 step 7).
    pub deadline: Instant,
    pub log_sink: Option<LogSink>,
    /// `process.env` (empty when the version has no `config.env`).
    pub env: Env,
}

impl Job {
    pub fn binding(&self) -> Binding {
        Binding {
            tenant: self.scope.tenant.clone(),
            sha256: self.bundle.sha256.clone(),
            env: self.env.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecError {
    pub kind: ErrorType,
    pub message: String,
    pub stack: Option<String>,
}

impl ExecError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ExecError {
            kind,
            message: message.into(),
            stack: None,
        }
    }
}

/// How the child that ran the activation was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// A child already bound to this tenant and bundle: no load.
    Warm,
    /// A pre-started stem child, bound now: the module was compiled for this activation.
    Stem,
    /// No child was free: one was started for this activation.
    Spawned,
    /// No child ran (it could not be started, or the deadline passed first).
    None,
}

impl StartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StartKind::Warm => "warm",
            StartKind::Stem => "stem",
            StartKind::Spawned => "spawned",
            StartKind::None => "none",
        }
    }
    /// A child ran the activation.
    pub fn ran(self) -> bool {
        !matches!(self, StartKind::None)
    }

    /// A cold start compiled the bundle for this activation.
    pub fn is_cold(self) -> bool {
        matches!(self, StartKind::Stem | StartKind::Spawned)
    }
}

/// Host calls made by one activation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCallStats {
    pub count: u32,
    pub denied: u32,
    /// Bytes the guest sent (keys, values, payloads, request bodies).
    pub bytes_out: u64,
    /// Bytes returned to the guest.
    pub bytes_in: u64,
    pub time: Duration,
    /// `cs.cadence.heartbeat()` calls accepted.
    pub heartbeats: u32,
    /// Calls by kind (`kv.get`, …) and outcome (`ok`, `error`, `denied`), for the metrics.
    pub by_kind: Vec<(&'static str, &'static str, u32)>,
}

impl HostCallStats {
    /// Counts one call of `kind` that ended with `outcome`.
    pub fn tally(&mut self, kind: &'static str, outcome: &'static str) {
        match self
            .by_kind
            .iter_mut()
            .find(|(k, o, _)| *k == kind && *o == outcome)
        {
            Some((_, _, n)) => *n += 1,
            None => self.by_kind.push((kind, outcome, 1)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Execution {
    pub outcome: Result<HttpResult, ExecError>,
    pub logs: Vec<String>,
    pub log_bytes: usize,
    pub logs_truncated: bool,
    pub result_truncated: bool,
    pub start: StartKind,
    pub child_id: u64,
    pub child_pid: u32,
    /// Time spent getting a child (from the call to the pool until a child was in hand).
    pub wait: Duration,
    /// Time spent loading the bundle into a stem child (zero when warm).
    pub load: Duration,
    /// Time from sending Invoke to the outcome.
    pub exec: Duration,
    /// CPU time the child reported for the invocation (its event loop sleeps without using
    /// any while it waits for timers and fetches).
    pub cpu: Duration,
    pub memory_peak_bytes: u64,
    pub host_calls: HostCallStats,
    /// Secret values replaced by `[REDACTED:<name>]` in the logs and the error.
    pub redactions: u64,
}

impl Execution {
    pub(crate) fn empty() -> Self {
        Execution {
            outcome: Err(ExecError::new(ErrorType::SandboxError, "not run")),
            logs: Vec::new(),
            log_bytes: 0,
            logs_truncated: false,
            result_truncated: false,
            start: StartKind::None,
            child_id: 0,
            child_pid: 0,
            wait: Duration::ZERO,
            load: Duration::ZERO,
            exec: Duration::ZERO,
            cpu: Duration::ZERO,
            memory_peak_bytes: 0,
            host_calls: HostCallStats::default(),
            redactions: 0,
        }
    }

    /// `success`, `error` or `timeout` (contract §3): only a real deadline makes `timeout`.
    pub fn status(&self) -> Status {
        match &self.outcome {
            Ok(_) => Status::Success,
            Err(e) => Status::of_error(e.kind),
        }
    }

    pub fn to_invocation_result(
        &self,
        activation_id: &str,
        request_id: &str,
        duration_ms: u64,
    ) -> InvocationResult {
        let (result, error) = match &self.outcome {
            Ok(r) => (Some(r.clone()), None),
            Err(e) => (
                None,
                Some(ErrorBody {
                    kind: e.kind,
                    message: e.message.clone(),
                    stack: e.stack.clone(),
                }),
            ),
        };
        InvocationResult {
            activation_id: activation_id.to_string(),
            request_id: request_id.to_string(),
            status: self.status(),
            duration_ms,
            result,
            error,
        }
    }
}
