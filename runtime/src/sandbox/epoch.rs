//! The epoch ticker: one thread per engine that advances its epoch every tick while jobs
//! run, so that each running job's deadline callback gets a chance to stop it. After a
//! while with no job running it sleeps, so an idle server costs no wake-ups; the grace period
//! spares a stream of short jobs the cost of waking it for each one.

use crate::error::ConfigError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::Engine;

/// Stops and joins the ticker thread when dropped.
pub(super) struct Ticker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    /// Jobs running now.
    running: AtomicUsize,
    /// Whether the ticker is (about to be) asleep until the next job: only then must a
    /// starting job wake it.
    sleeping: AtomicBool,
}

/// Idle ticks before the ticker goes to sleep.
const IDLE_TICKS: u32 = 100;

/// Counts one running job for as long as it lives.
pub(super) struct Running<'a> {
    ticker: &'a Ticker,
}

impl Ticker {
    pub(super) fn start(engine: Engine, tick: Duration) -> Result<Self, ConfigError> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            sleeping: AtomicBool::new(false),
        });
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wasp-epoch".into())
            .spawn(move || state.run(&engine, tick))?;
        Ok(Ticker {
            shared,
            thread: Some(thread),
        })
    }

    /// Records that a job starts running; ticking goes on until the guard is dropped.
    pub(super) fn job_running(&self) -> Running<'_> {
        // SeqCst on both sides (here and in `Shared::run`): either this sees the ticker
        // asleep and wakes it, or the ticker sees this job and stays awake.
        self.shared.running.fetch_add(1, Ordering::SeqCst);
        if self.shared.sleeping.load(Ordering::SeqCst)
            && let Some(thread) = &self.thread
        {
            thread.thread().unpark();
        }
        Running { ticker: self }
    }
}

#[cfg(test)]
impl Ticker {
    /// Whether the ticker sleeps until the next job.
    pub(super) fn is_asleep(&self) -> bool {
        self.shared.sleeping.load(Ordering::SeqCst)
    }
}

impl Shared {
    fn run(&self, engine: &Engine, tick: Duration) {
        let mut idle = 0;
        while !self.stop.load(Ordering::Acquire) {
            std::thread::park_timeout(tick);
            engine.increment_epoch();
            if self.running.load(Ordering::SeqCst) > 0 {
                idle = 0;
                continue;
            }
            idle += 1;
            if idle < IDLE_TICKS {
                continue;
            }
            self.sleeping.store(true, Ordering::SeqCst);
            if self.running.load(Ordering::SeqCst) == 0 && !self.stop.load(Ordering::Acquire) {
                // A wake-up sent between the store above and this park is not lost: park
                // returns at once on its token.
                std::thread::park();
            }
            self.sleeping.store(false, Ordering::SeqCst);
            idle = 0;
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.ticker.shared.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
