//! Spinning briefly before sleeping.
//!
//! Putting a thread to sleep on a futex and waking it again costs tens of microseconds on a
//! virtual machine: more than a short job takes to run. A worker that has just finished a job
//! and a caller that has just submitted one therefore spin for a moment before they sleep.
//! The budget is small and fixed, so an idle pool goes to sleep at once in human terms.

use std::time::{Duration, Instant};

/// How long a thread spins before it sleeps.
pub(crate) const SPIN_BUDGET: Duration = Duration::from_micros(50);

/// Spins until `ready()` holds or the budget is spent; returns whether it held. Yields the
/// CPU between checks after the first few, so a spinning thread does not starve the thread
/// it waits for on a machine with few cores.
pub(crate) fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    for round in 0u32.. {
        if ready() {
            return true;
        }
        if round < 16 {
            std::hint::spin_loop();
            continue;
        }
        if start.elapsed() >= SPIN_BUDGET {
            return false;
        }
        std::thread::yield_now();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_at_once_when_ready_and_gives_up_after_the_budget() {
        assert!(spin_until(|| true));
        let start = Instant::now();
        assert!(!spin_until(|| false));
        assert!(start.elapsed() >= SPIN_BUDGET);
    }
}
