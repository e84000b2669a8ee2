//! The jobs that finished and that Python waits to hear of (for their futures and
//! callbacks): filled by the threads that finish jobs, emptied by the package's one
//! dispatcher thread, which runs the handlers with the GIL. Wasm workers never wait for
//! Python: they only move a handler into a queue (no reference count changes, so no GIL).

use pyo3::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Handlers of finished jobs, in the order the jobs finished.
#[derive(Default)]
pub(crate) struct Completions {
    handlers: Mutex<VecDeque<Py<PyAny>>>,
    ready: Condvar,
    /// Jobs watched whose handlers were not taken yet.
    watched: AtomicUsize,
}

impl Completions {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Py<PyAny>>> {
        self.handlers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A job is watched: its handler will come.
    pub(crate) fn expect(&self) {
        self.watched.fetch_add(1, Ordering::Relaxed);
    }

    /// The watched job of `handler` finished.
    pub(crate) fn push(&self, handler: Py<PyAny>) {
        self.lock().push_back(handler);
        self.ready.notify_one();
    }

    /// How many watched jobs' handlers were not taken yet.
    pub(crate) fn watched(&self) -> usize {
        self.watched.load(Ordering::Relaxed)
    }

    /// Every handler so far, waiting up to `timeout` for the first.
    pub(crate) fn take(&self, timeout: Duration) -> Vec<Py<PyAny>> {
        let deadline = Instant::now().checked_add(timeout);
        let mut handlers = self.lock();
        while handlers.is_empty() {
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                break;
            }
            handlers = self
                .ready
                .wait_timeout(handlers, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let taken: Vec<_> = handlers.drain(..).collect();
        self.watched.fetch_sub(taken.len(), Ordering::Relaxed);
        taken
    }
}
