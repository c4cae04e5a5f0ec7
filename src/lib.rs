//! cs-invoker-pool: the execution engine of Sous.
//!
//! The supervisor side: the [`pipeline`] of contract §1 and the ports it drives — the KVRocks
//! [`store`], the codeQ clients in [`queue`], the [`pool`] of pre-started `sandbox-child`
//! processes (confined by [`sandbox`] and [`cgroup`]) — the [`host`] API that performs side
//! effects on a child's behalf after capability checks, and the two commands: [`run`] (one
//! function locally) and [`serve`] (the daemon, with [`config`], [`endpoints`], [`metrics`]),
//! whose command line is [`cli`].
//! The child, the frame protocol and the bundle format live in the `sandbox_child` crate.

pub mod cgroup;
pub mod cli;
pub mod config;
pub mod endpoints;
pub mod host;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod pool;
pub mod publish;
pub mod queue;
pub mod run;
pub mod sandbox;
pub mod secret;
pub mod secrets;
pub mod serve;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod trace;
pub mod tracing_otel;
