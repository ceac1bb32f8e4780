//! A jam thread that runs until whatever owns it is dropped: the link, the beacon, discovery.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// The thread; dropping it asks the thread to stop and waits for it.
#[derive(Debug)]
pub(crate) struct Worker {
    stop: Stop,
    thread: Option<JoinHandle<()>>,
}

/// What the thread checks, between waits no longer than it can afford to be late stopping.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Whether the owner is gone.
    pub(crate) fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Worker {
    /// Starts `run` on a thread named `name`.
    pub(crate) fn spawn(name: &str, run: impl FnOnce(Stop) + Send + 'static) -> io::Result<Worker> {
        let stop = Stop::default();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || run(stopping))?;
        Ok(Worker { stop, thread: Some(thread) })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.0.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
