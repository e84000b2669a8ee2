//! Waiting: spinning briefly before sleeping, and sleeping with an optional deadline.
//!
//! Putting a thread to sleep on a futex and waking it again costs tens of microseconds on a
//! virtual machine: more than a short job takes to run. A worker that has just finished a job
//! and a caller that has just submitted one therefore spin for a moment before they sleep.
//! The budget is small and fixed, so an idle pool goes to sleep at once in human terms.

use std::sync::{Condvar, MutexGuard};
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

/// The instant `timeout` from now; `None` (wait for ever) if that is past the clock's range,
/// so that a huge timeout (`Duration::MAX`) means "no deadline" instead of a panic.
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Sleeps on `condvar` until notified or `deadline`; returns the guard, or `None` if the
/// deadline had already passed (the caller re-checks its condition either way).
pub(crate) fn sleep<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> Result<MutexGuard<'a, T>, MutexGuard<'a, T>> {
    match deadline {
        None => Ok(condvar.wait(guard).unwrap_or_else(|p| p.into_inner())),
        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
            None => Err(guard),
            Some(left) => Ok(condvar
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_at_once_when_ready_and_gives_up_after_spinning() {
        let mut checks = 0;
        assert!(spin_until(|| {
            checks += 1;
            true
        }));
        assert_eq!(checks, 1);
        let mut checks = 0;
        assert!(!spin_until(|| {
            checks += 1;
            false
        }));
        assert!(
            checks > 16,
            "it spins, then yields, before giving up: {checks}"
        );
    }

    #[test]
    fn a_huge_timeout_is_no_deadline_not_a_panic() {
        assert_eq!(deadline(Duration::MAX), None);
        assert!(deadline(Duration::from_secs(1)).is_some());
    }
}
