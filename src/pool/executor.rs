//! The pool as the pipeline's [`Executor`]: the port is declared here, beside its one real
//! implementation, so that the pipeline depends on the pool and never the other way round.

use super::{CompiledModules, Execution, Job, Pool};
use crate::host::HostApi;
use std::future::Future;
use std::sync::Arc;

/// Runs one job in a sandbox child.
pub trait Executor: Send + Sync + 'static {
    fn execute<H: HostApi>(&self, job: &Job, host: &H) -> impl Future<Output = Execution> + Send;

    /// Where to keep the compiled modules of loaded bundles (the pipeline's bundle cache);
    /// an executor without children to hand them to ignores it.
    fn attach_compiled_modules(&self, store: Arc<dyn CompiledModules>) {
        let _ = store;
    }
}

impl Executor for Pool {
    async fn execute<H: HostApi>(&self, job: &Job, host: &H) -> Execution {
        self.invoke(job, host).await
    }

    fn attach_compiled_modules(&self, store: Arc<dyn CompiledModules>) {
        Pool::attach_compiled_modules(self, store);
    }
}
