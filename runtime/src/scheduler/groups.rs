//! Job groups: counts per group name, and waiting for a group to drain.

use crate::waiting;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// The group a job belongs to when none is given (as in pp).
pub const DEFAULT_GROUP: &str = "default";

/// What a group has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupSummary {
    /// Jobs submitted in the group.
    pub submitted: u64,
    /// Jobs of the group that have finished, successfully or not.
    pub finished: u64,
    /// Jobs of the group that finished with an error.
    pub failed: u64,
}

impl GroupSummary {
    /// Jobs submitted but not finished yet.
    pub fn pending(&self) -> u64 {
        self.submitted - self.finished
    }
}

/// Counts for every group, plus the total over all groups.
#[derive(Default)]
pub(crate) struct Groups {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    groups: HashMap<String, GroupSummary>,
    total: GroupSummary,
    /// Threads blocked in `wait`, so that finishing a job notifies only when needed.
    waiters: usize,
}

impl Groups {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn submitted(&self, group: &str) {
        let mut state = self.lock();
        state.groups.entry(group.to_string()).or_default().submitted += 1;
        state.total.submitted += 1;
    }

    pub(crate) fn finished(&self, group: &str, failed: bool) {
        let waiters = {
            let mut state = self.lock();
            let state = &mut *state;
            for summary in [
                state.groups.entry(group.to_string()).or_default(),
                &mut state.total,
            ] {
                summary.finished += 1;
                summary.failed += u64::from(failed);
            }
            state.waiters
        };
        if waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// The summary of `group`, or of all jobs for `None`.
    pub(crate) fn summary(&self, group: Option<&str>) -> GroupSummary {
        let state = self.lock();
        summary_of(&state, group)
    }

    /// Blocks until `group` (all jobs for `None`) has no pending job, or `deadline` passes.
    pub(crate) fn wait(&self, group: Option<&str>, deadline: Option<Instant>) -> GroupSummary {
        let mut state = self.lock();
        loop {
            let summary = summary_of(&state, group);
            if summary.pending() == 0 {
                return summary;
            }
            state.waiters += 1;
            let slept = waiting::sleep(&self.changed, state, deadline);
            let timed_out = slept.is_err();
            state = slept.unwrap_or_else(|guard| guard);
            state.waiters -= 1;
            if timed_out {
                return summary_of(&state, group);
            }
        }
    }
}

fn summary_of(state: &State, group: Option<&str>) -> GroupSummary {
    match group {
        None => state.total,
        Some(name) => state.groups.get(name).copied().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_count_separately_and_in_the_total() {
        let groups = Groups::default();
        groups.submitted("a");
        groups.submitted("b");
        groups.finished("a", true);
        assert_eq!(
            groups.wait(Some("a"), None),
            GroupSummary {
                submitted: 1,
                finished: 1,
                failed: 1
            }
        );
        assert_eq!(groups.summary(Some("b")).pending(), 1);
        assert_eq!(
            groups.summary(None),
            GroupSummary {
                submitted: 2,
                finished: 1,
                failed: 1
            }
        );
        let waited = groups.wait(None, Some(Instant::now()));
        assert_eq!(
            waited.pending(),
            1,
            "a deadline in the past returns at once"
        );
    }
}
