//! Job groups: counts per group name, and waiting for a group to drain.
//!
//! A program that names a group per batch makes a new name per batch, so the counters of
//! groups that have finished are kept for a while only: the most recent
//! [`MAX_FINISHED_GROUPS`] are kept (their summaries stay readable), older ones are
//! forgotten (a group forgotten reads as empty, and waiting for it returns at once: it has
//! nothing pending). Groups with jobs pending are always kept.

use crate::waiting;
use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// The group a job belongs to when none is given (as in pp).
pub const DEFAULT_GROUP: &str = "default";

/// How many finished groups keep their counters.
pub const MAX_FINISHED_GROUPS: usize = 1024;

/// What a group has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupSummary {
    /// Jobs submitted in the group.
    pub submitted: u64,
    /// Jobs of the group that have finished, successfully or not (cancelled ones
    /// included).
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
    groups: HashMap<Box<str>, Entry>,
    /// Groups that had nothing pending when listed, oldest first; each listed once.
    finished: VecDeque<Box<str>>,
    total: GroupSummary,
    /// Threads blocked in `wait`, so that finishing a job notifies only when needed.
    waiters: usize,
}

/// A group's counters, and whether it is listed among the finished groups.
#[derive(Default)]
struct Entry {
    summary: GroupSummary,
    listed: bool,
}

impl Groups {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn submitted(&self, group: &str) {
        let mut state = self.lock();
        match state.groups.get_mut(group) {
            Some(entry) => entry.summary.submitted += 1,
            None => {
                let mut entry = Entry::default();
                entry.summary.submitted = 1;
                state.groups.insert(group.into(), entry);
            }
        }
        state.total.submitted += 1;
    }

    pub(crate) fn finished(&self, group: &str, failed: bool) {
        let waiters = {
            let mut state = self.lock();
            let state = &mut *state;
            for summary in [
                state.groups.get_mut(group).map(|entry| &mut entry.summary),
                Some(&mut state.total),
            ]
            .into_iter()
            .flatten()
            {
                summary.finished += 1;
                summary.failed += u64::from(failed);
            }
            list_if_finished(state, group);
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

    /// How many groups have counters now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().groups.len()
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

/// Lists `group` among the finished groups if it has nothing pending (the default group is
/// always kept), then forgets the oldest listed past [`MAX_FINISHED_GROUPS`] that still
/// have nothing pending.
fn list_if_finished(state: &mut State, group: &str) {
    let Some(entry) = state.groups.get_mut(group) else {
        return;
    };
    if entry.listed || entry.summary.pending() > 0 || group == DEFAULT_GROUP {
        return;
    }
    entry.listed = true;
    state.finished.push_back(group.into());
    while state.finished.len() > MAX_FINISHED_GROUPS {
        let Some(oldest) = state.finished.pop_front() else {
            return;
        };
        let idle = match state.groups.get_mut(&oldest) {
            Some(entry) => {
                entry.listed = false;
                entry.summary.pending() == 0
            }
            None => false,
        };
        if idle {
            state.groups.remove(&oldest);
        }
    }
}

fn summary_of(state: &State, group: Option<&str>) -> GroupSummary {
    match group {
        None => state.total,
        Some(name) => state
            .groups
            .get(name)
            .map(|entry| entry.summary)
            .unwrap_or_default(),
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

    /// A group per batch, forever: the counters stay bounded, the recent and the pending
    /// groups are kept, and the total counts everything.
    #[test]
    fn finished_groups_are_forgotten_oldest_first() {
        let groups = Groups::default();
        groups.submitted("long");
        for batch in 0..3 * MAX_FINISHED_GROUPS {
            let name = format!("batch-{batch}");
            groups.submitted(&name);
            groups.submitted(&name);
            groups.finished(&name, false);
            groups.finished(&name, batch % 2 == 0);
        }
        assert!(groups.len() <= MAX_FINISHED_GROUPS + 1, "{}", groups.len());
        assert_eq!(groups.summary(Some("long")).pending(), 1, "pending kept");
        let last = format!("batch-{}", 3 * MAX_FINISHED_GROUPS - 1);
        assert_eq!(groups.summary(Some(&last)).finished, 2, "recent kept");
        assert_eq!(groups.summary(Some("batch-0")), GroupSummary::default());
        assert_eq!(groups.wait(Some("batch-0"), None).pending(), 0);
        let total = groups.summary(None);
        assert_eq!(total.submitted, 6 * MAX_FINISHED_GROUPS as u64 + 1);
        assert_eq!(total.failed, 3 * MAX_FINISHED_GROUPS as u64 / 2);
    }
}
