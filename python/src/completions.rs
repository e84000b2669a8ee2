//! The jobs that finished and that Python waits to hear of (for their futures and
//! callbacks): filled by the threads that finish jobs, emptied by the package's one
//! dispatcher thread, which runs the callbacks with the GIL. Wasm workers never wait for
//! Python.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Tokens of finished jobs, in the order they finished.
#[derive(Default)]
pub(crate) struct Completions {
    tokens: Mutex<VecDeque<u64>>,
    ready: Condvar,
}

impl Completions {
    fn lock(&self) -> MutexGuard<'_, VecDeque<u64>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The job of `token` finished.
    pub(crate) fn push(&self, token: u64) {
        self.lock().push_back(token);
        self.ready.notify_one();
    }

    /// Every token so far, waiting up to `timeout` for the first.
    pub(crate) fn take(&self, timeout: Duration) -> Vec<u64> {
        let deadline = Instant::now().checked_add(timeout);
        let mut tokens = self.lock();
        while tokens.is_empty() {
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                break;
            }
            tokens = self
                .ready
                .wait_timeout(tokens, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        tokens.drain(..).collect()
    }
}
