//! The small interfaces the pipeline drives: where results go ([`Publisher`], in the neutral
//! [`crate::publish`]), what runs a function ([`Executor`], beside the pool that implements
//! it, so that the pool never imports the pipeline), who serves the function's host calls
//! ([`HostApi`]) and who is told when an activation waits ([`CapacityWait`]). The store's
//! interface lives in [`crate::store`]. The pipeline knows no gRPC, Redis or process types, so
//! its tests drive it with real parts or the doubles of [`crate::testing`].

pub use crate::host::HostApi;
pub use crate::pool::Executor;
pub use crate::publish::TraceHeaders;
pub use crate::publish::{PublishError, Publisher};

/// Told when an activation waits for capacity of its own (its version's `maxConcurrency`) and
/// when it resumes: the codeQ worker gives the task's claim slot to other work meanwhile.
pub trait CapacityWait: Send + Sync {
    fn waiting(&self);
    fn resumed(&self);
}

/// For callers without claim slots (`run`, tests).
pub struct NoSlot;

impl CapacityWait for NoSlot {
    fn waiting(&self) {}
    fn resumed(&self) {}
}
