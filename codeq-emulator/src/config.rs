//! Emulator configuration: tokens, addresses and the timings tests shrink.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

/// Worker token of [`EmulatorConfig::default`].
pub const DEFAULT_WORKER_TOKEN: &str = "worker-token";
/// Producer token of [`EmulatorConfig::default`].
pub const DEFAULT_PRODUCER_TOKEN: &str = "producer-token";
/// Tenant of the default tokens and of [`crate::Emulator::enqueue`] without a tenant.
pub const DEFAULT_TENANT: &str = "tenant-test";

/// What a worker token may do: claim within one tenant, optionally only some commands.
#[derive(Clone, Debug)]
pub struct WorkerGrant {
    /// Tenant whose tasks the worker claims (HelloAck.tenant_id).
    pub tenant: String,
    /// Worker id when Hello.worker_id is empty (codeQ uses the token's subject).
    pub subject: String,
    /// Commands the token may claim; `None` is codeQ's `*` (any command). A Ready naming a
    /// command outside the list gets a ServerError `PermissionDenied` / `event type not allowed`.
    pub commands: Option<Vec<String>>,
}

impl WorkerGrant {
    /// Any command, within `tenant`.
    pub fn any(tenant: impl Into<String>) -> Self {
        WorkerGrant {
            tenant: tenant.into(),
            subject: "worker-subject".into(),
            commands: None,
        }
    }

    /// Only `commands`, within `tenant`.
    pub fn only<I, S>(tenant: impl Into<String>, commands: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        WorkerGrant {
            tenant: tenant.into(),
            subject: "worker-subject".into(),
            commands: Some(commands.into_iter().map(Into::into).collect()),
        }
    }
}

/// What a producer token may do: create tasks in one tenant.
#[derive(Clone, Debug)]
pub struct ProducerGrant {
    /// Tenant the created tasks carry (HelloAck.tenant_id).
    pub tenant: String,
    /// HelloAck.subject.
    pub subject: String,
}

impl ProducerGrant {
    /// A producer of `tenant`.
    pub fn new(tenant: impl Into<String>) -> Self {
        ProducerGrant {
            tenant: tenant.into(),
            subject: "producer-subject".into(),
        }
    }
}

/// Where the two streams listen.
#[derive(Clone, Copy, Debug)]
pub enum Listen {
    /// Both services on one address (port 0 picks a free port).
    Shared(SocketAddr),
    /// The worker stream and the producer stream on separate addresses, as codeQ's defaults
    /// (:9091 and :9092) do.
    Split {
        /// WorkerStream address.
        worker: SocketAddr,
        /// ProducerStream address.
        producer: SocketAddr,
    },
}

/// Emulator settings. `Default` gives codeQ's timings, the default tokens and a shared
/// `127.0.0.1:0`; [`EmulatorConfig::fast`] shrinks the timings for tests.
///
/// Durations given in "wire seconds" (lease, heartbeat extend, nack and create delays, backoff)
/// are multiplied by [`EmulatorConfig::second`], so a test can make a 1-second lease last 100 ms
/// without the client knowing.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Listening address(es).
    pub listen: Listen,
    /// Worker tokens (raw, as in Hello.token).
    pub worker_tokens: HashMap<String, WorkerGrant>,
    /// Producer tokens.
    pub producer_tokens: HashMap<String, ProducerGrant>,
    /// Tokens that authenticate but may use neither stream: the handshake fails with
    /// PermissionDenied. (A producer-only token on the worker stream, or the reverse, also
    /// gets PermissionDenied; an unknown token gets Unauthenticated.)
    pub denied_tokens: HashSet<String>,
    /// Tenant of [`crate::Emulator::enqueue`] without an explicit tenant.
    pub default_tenant: String,
    /// How long a Ready waits for a task before it expires silently (codeQ: ~30 s).
    pub ready_expiry: Duration,
    /// How often expired leases are looked for.
    pub reap_interval: Duration,
    /// Lease when Ready.lease_seconds (or Heartbeat.extend_seconds) is ≤ 0, in wire seconds.
    pub default_lease_seconds: i32,
    /// max_attempts when a create leaves it ≤ 0 (codeQ: 5).
    pub default_max_attempts: i32,
    /// Server backoff after the n-th failed attempt: base · 2^(n−1) wire seconds (0: requeue
    /// immediately)…
    pub backoff_base_seconds: i32,
    /// …capped at this many wire seconds; also caps a nack's own delay (0: no cap).
    pub backoff_max_seconds: i32,
    /// Length of one wire second.
    pub second: Duration,
    /// Before handling each Result/Nack/Heartbeat/Abandon/Create, sleep a random time below
    /// this, so acks come back out of order as they can from codeQ. Zero: no sleep.
    pub handler_jitter: Duration,
    /// Largest number of tasks one TaskBatch carries, whatever Ready.count asks.
    pub max_batch: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let mut worker_tokens = HashMap::new();
        worker_tokens.insert(
            DEFAULT_WORKER_TOKEN.to_string(),
            WorkerGrant::any(DEFAULT_TENANT),
        );
        let mut producer_tokens = HashMap::new();
        producer_tokens.insert(
            DEFAULT_PRODUCER_TOKEN.to_string(),
            ProducerGrant::new(DEFAULT_TENANT),
        );
        EmulatorConfig {
            listen: Listen::Shared(SocketAddr::from(([127, 0, 0, 1], 0))),
            worker_tokens,
            producer_tokens,
            denied_tokens: HashSet::new(),
            default_tenant: DEFAULT_TENANT.to_string(),
            ready_expiry: Duration::from_secs(30),
            reap_interval: Duration::from_secs(1),
            default_lease_seconds: 30,
            default_max_attempts: 5,
            backoff_base_seconds: 5,
            backoff_max_seconds: 900,
            second: Duration::from_secs(1),
            handler_jitter: Duration::ZERO,
            max_batch: 1000,
        }
    }
}

impl EmulatorConfig {
    /// Test timings: Ready expires after 300 ms, leases are reaped every 20 ms, failed attempts
    /// requeue immediately. Wire seconds stay 1 s long.
    pub fn fast() -> Self {
        EmulatorConfig {
            ready_expiry: Duration::from_millis(300),
            reap_interval: Duration::from_millis(20),
            backoff_base_seconds: 0,
            ..EmulatorConfig::default()
        }
    }

    /// Adds (or replaces) a worker token.
    pub fn with_worker_token(mut self, token: impl Into<String>, grant: WorkerGrant) -> Self {
        self.worker_tokens.insert(token.into(), grant);
        self
    }

    /// Adds (or replaces) a producer token.
    pub fn with_producer_token(mut self, token: impl Into<String>, grant: ProducerGrant) -> Self {
        self.producer_tokens.insert(token.into(), grant);
        self
    }

    /// Adds a token that authenticates but may use neither stream.
    pub fn with_denied_token(mut self, token: impl Into<String>) -> Self {
        self.denied_tokens.insert(token.into());
        self
    }
}
