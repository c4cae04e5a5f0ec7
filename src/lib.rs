//! cs-invoker-pool: the execution engine of Sous.
//!
//! The supervisor side: the [`pool`] of pre-started `sandbox-child` processes, the [`host`] API
//! that performs side effects on a child's behalf after capability checks, and the [`run`]
//! command that runs one function locally through the real pool. The child, the frame protocol
//! and the bundle format live in the `sandbox_child` crate.

pub mod cgroup;
pub mod config;
pub mod endpoints;
pub mod host;
pub mod metrics;
pub mod pipeline;
pub mod pool;
pub mod queue;
pub mod run;
pub mod sandbox;
pub mod serve;
pub mod store;
