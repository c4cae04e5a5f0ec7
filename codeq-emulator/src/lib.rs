//! An in-process emulator of the codeQ gRPC streams (contract §2), for cs-invoker-pool's tests and
//! benchmarks. It speaks `workerpb.WorkerStream/Stream` and `producerpb.ProducerStream/Stream`
//! over real HTTP/2 with the behaviour a client must cope with: Hello first (gRPC status on
//! failure), a silent Ready expiry, TaskAssignment vs TaskBatch by `count`, acks out of order,
//! codeQ's exact ack error strings, leases with heartbeat / nack / abandon / expiry,
//! dead-lettering at `max_attempts`, a global idempotency key, priority-then-FIFO claims.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use codeq_emulator::{Emulator, EmulatorConfig, EnqueueOptions, TaskStatus};
//! let emu = Emulator::start(EmulatorConfig::fast()).await?;
//! let id = emu.enqueue("cs.invoke", br#"{"x":1}"#.to_vec(), EnqueueOptions::default());
//! // ... point a client at emu.worker_url() with token codeq_emulator::DEFAULT_WORKER_TOKEN ...
//! let done = emu
//!     .wait_for_status(&id, TaskStatus::Completed, std::time::Duration::from_secs(5))
//!     .await;
//! # let _ = done; Ok(()) }
//! ```
//!
//! Where the emulator knowingly differs from codeQ (each choice keeps tests deterministic, or
//! follows contract §2 where the codeQ source does something else):
//! - `attempts` counts failed attempts only (nacks and lease expiries); codeQ also counts each
//!   claim. A delivered task therefore shows how many earlier attempts failed, and it is
//!   dead-lettered when that count reaches `max_attempts`.
//! - The server backoff is `base · 2^(attempts−1)` without jitter.
//! - A dead-lettered task reports status `DLQ` ([`TaskStatus::Dlq`]); codeQ keeps it as FAILED
//!   in a DLQ set. Dead-lettered tasks are never delivered, so no client sees the difference.
//! - Heartbeat also answers `not-in-progress` for a task that is no longer in progress (codeQ
//!   only checks ownership there).
//! - Claims take the best task across all commands of a Ready (codeQ drains the commands in
//!   the order given).
//! - The idempotency key is global across tenants (codeQ refuses a key of another tenant).
//!
//! Error strings are codeQ's: Result acks use `task not found`; Heartbeat, Nack and Abandon
//! acks use `not-found` for an unknown task; all use `not-owner` and `not-in-progress`.

mod config;
mod producer;
mod server;
mod store;
mod time;
mod worker;

/// Code generated from `proto/workerpb.proto` and `proto/producerpb.proto`: messages, clients
/// (`worker_stream_client::WorkerStreamClient`, `producer_stream_client::ProducerStreamClient`)
/// and servers.
pub mod pb {
    /// Package `workerpb`.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod workerpb {
        tonic::include_proto!("workerpb");
    }
    /// Package `producerpb`.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod producerpb {
        tonic::include_proto!("producerpb");
    }
}

pub use config::{
    EmulatorConfig, Listen, ProducerGrant, WorkerGrant, DEFAULT_PRODUCER_TOKEN, DEFAULT_TENANT,
    DEFAULT_WORKER_TOKEN,
};
pub use server::Emulator;
pub use store::{EnqueueOptions, TaskStatus, TaskView};
