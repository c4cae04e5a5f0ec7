//! The pool as the pipeline's [`Executor`]: the port is declared here, beside its one real
//! implementation, so that the pipeline depends on the pool and never the other way round.

use super::{Execution, Job, Pool};
use crate::host::HostApi;
use std::future::Future;

/// Runs one job in a sandbox child.
pub trait Executor: Send + Sync + 'static {
    fn execute<H: HostApi>(&self, job: &Job, host: &H) -> impl Future<Output = Execution> + Send;
}

impl Executor for Pool {
    async fn execute<H: HostApi>(&self, job: &Job, host: &H) -> Execution {
        self.invoke(job, host).await
    }
}
