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
use std::time::{Duration, Instant};

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

/// How far a group has got, from [`Server::progress`](crate::Server::progress): its
/// counts, the jobs running and queued, its rate so far and when it should be done.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct GroupProgress {
    /// The group's name.
    pub name: String,
    /// Jobs submitted in the group.
    pub submitted: u64,
    /// Jobs finished, successfully or not.
    pub finished: u64,
    /// Jobs finished with an error (cancelled ones included).
    pub failed: u64,
    /// Jobs held by a worker or a node now.
    pub running: u64,
    /// Jobs waiting for a worker or a node.
    pub queued: u64,
    /// Time from the group's first submission to its last finished job (to now, while
    /// jobs are pending).
    #[serde(rename = "elapsed_seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
    /// Jobs finished per second over `elapsed`.
    #[serde(rename = "rate_per_second")]
    pub rate: f64,
    /// When the pending jobs should be done at that rate; `None` before the first job
    /// finishes, zero when all are done.
    #[serde(rename = "eta_seconds", serialize_with = "optional_seconds")]
    pub eta: Option<Duration>,
}

impl GroupProgress {
    /// Whether every job submitted in the group has finished.
    pub fn is_done(&self) -> bool {
        self.finished == self.submitted
    }

    /// The part of the group finished, from 0 to 1 (1 for an empty group).
    pub fn fraction(&self) -> f64 {
        if self.submitted == 0 {
            1.0
        } else {
            self.finished as f64 / self.submitted as f64
        }
    }

    fn new(name: &str, entry: &Entry, running: u64) -> Self {
        let summary = entry.summary;
        let end = if summary.pending() == 0 {
            entry.last_finished
        } else {
            Instant::now()
        };
        let elapsed = end.saturating_duration_since(entry.first_submitted);
        let rate = if elapsed.is_zero() {
            0.0
        } else {
            summary.finished as f64 / elapsed.as_secs_f64()
        };
        let eta = match summary.pending() {
            0 => Some(Duration::ZERO),
            pending if rate > 0.0 => Duration::try_from_secs_f64(pending as f64 / rate).ok(),
            _ => None,
        };
        GroupProgress {
            name: name.to_string(),
            submitted: summary.submitted,
            finished: summary.finished,
            failed: summary.failed,
            running: running.min(summary.pending()),
            queued: summary.pending().saturating_sub(running),
            elapsed,
            rate,
            eta,
        }
    }
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

fn optional_seconds<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_f64(duration.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

/// How jobs ended, counted over all groups: index 0 is success, `1 + k` is the error of
/// kind `k` in [`JobError::KINDS`](crate::JobError::KINDS).
pub(crate) type Outcomes = [u64; 1 + crate::JobError::KINDS.len()];

/// Counts for every group, plus the total over all groups.
#[derive(Default)]
pub(crate) struct Groups {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    groups: HashMap<Box<str>, Entry>,
    /// Groups that had nothing pending when listed, oldest first; each listed once.
    finished: VecDeque<Box<str>>,
    total: GroupSummary,
    /// How jobs ended, over all groups.
    outcomes: Outcomes,
    /// Threads blocked in `wait`, so that finishing a job notifies only when needed.
    waiters: usize,
}

/// A group's counters, and whether it is listed among the finished groups.
struct Entry {
    summary: GroupSummary,
    listed: bool,
    /// When its first job was submitted.
    first_submitted: Instant,
    /// When its last job finished.
    last_finished: Instant,
}

impl Entry {
    fn new() -> Self {
        let now = Instant::now();
        Entry {
            summary: GroupSummary::default(),
            listed: false,
            first_submitted: now,
            last_finished: now,
        }
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            groups: HashMap::new(),
            finished: VecDeque::new(),
            total: GroupSummary::default(),
            outcomes: [0; 1 + crate::JobError::KINDS.len()],
            waiters: 0,
        }
    }
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
                let mut entry = Entry::new();
                entry.summary.submitted = 1;
                state.groups.insert(group.into(), entry);
            }
        }
        state.total.submitted += 1;
    }

    /// Counts a finished job of `group`: `error` is the index of its error's kind in
    /// [`JobError::KINDS`](crate::JobError::KINDS), `None` if it succeeded.
    pub(crate) fn finished(&self, group: &str, error: Option<usize>) {
        let failed = error.is_some();
        let waiters = {
            let mut state = self.lock();
            let state = &mut *state;
            state.outcomes[error.map_or(0, |kind| kind + 1)] += 1;
            if let Some(entry) = state.groups.get_mut(group) {
                entry.last_finished = Instant::now();
            }
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

    /// How jobs ended so far, over all groups.
    pub(crate) fn outcomes(&self) -> Outcomes {
        self.lock().outcomes
    }

    /// The progress of `group`, with `running` of its jobs held by workers or nodes;
    /// `None` if it has no counters (never used, or forgotten).
    pub(crate) fn progress(&self, group: &str, running: u64) -> Option<GroupProgress> {
        let state = self.lock();
        let entry = state.groups.get(group)?;
        Some(GroupProgress::new(group, entry, running))
    }

    /// The names of up to `limit` groups: those with jobs pending first, then those that
    /// finished most recently; the default group only if it was used.
    pub(crate) fn recent(&self, limit: usize) -> Vec<String> {
        let state = self.lock();
        let mut active: Vec<(&Box<str>, &Entry)> = state
            .groups
            .iter()
            .filter(|(_, entry)| entry.summary.pending() > 0)
            .collect();
        active.sort_by_key(|(_, entry)| std::cmp::Reverse(entry.first_submitted));
        let finished = state.finished.iter().rev().filter_map(|name| {
            let entry = state.groups.get(name)?;
            (entry.summary.pending() == 0).then_some((name, entry))
        });
        let default = state
            .groups
            .get_key_value(DEFAULT_GROUP)
            .filter(|(_, entry)| entry.summary.pending() == 0);
        active
            .into_iter()
            .chain(default)
            .chain(finished)
            .take(limit)
            .map(|(name, _)| name.to_string())
            .collect()
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
        groups.finished("a", Some(2));
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
            groups.finished(&name, None);
            groups.finished(&name, (batch % 2 == 0).then_some(2));
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
