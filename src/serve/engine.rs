//! The query engine's own runtime. DataFusion and the resolvers are CPU
//! work that polls for long stretches; on the runtime that serves HTTP they
//! would keep `/health`, `/ready` and cheap cached answers waiting behind
//! them. The guard runs every admitted operation here instead, so the
//! serving runtime stays responsive however busy the engine is.

use std::future::Future;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

pub struct Engine {
    runtime: Option<Runtime>,
}

impl Engine {
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("cip-engine")
            .enable_all()
            .build()?;
        Ok(Engine { runtime: Some(runtime) })
    }

    pub fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.as_ref().expect("engine runtime until drop").spawn(work)
    }
}

impl Drop for Engine {
    /// May run inside the serving runtime (tests drop servers there):
    /// shut down without blocking on the engine's tasks.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
