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
    /// Jobs the group has in all: those submitted, or, if more, the number its program
    /// said it would submit ([`Server::expect_jobs`](crate::Server::expect_jobs); `wasp
    /// map` says how many lines its input has). Progress and ETA count towards this.
    pub total: u64,
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
    /// Whether every job of the group (its [`total`](Self::total)) has finished.
    pub fn is_done(&self) -> bool {
        self.finished == self.total
    }

    /// The part of the group finished, from 0 to 1 (1 for an empty group).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.finished as f64 / self.total as f64
        }
    }

    fn new(name: &str, entry: &Entry, running: u64) -> Self {
        let summary = entry.summary;
        let total = entry.total();
        let remaining = total - summary.finished;
        let end = if remaining == 0 {
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
        let eta = match remaining {
            0 => Some(Duration::ZERO),
            remaining if rate > 0.0 => Duration::try_from_secs_f64(remaining as f64 / rate).ok(),
            _ => None,
        };
        GroupProgress {
            name: name.to_string(),
            submitted: summary.submitted,
            total,
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
    /// Jobs whose outcome was delivered (callbacks run, waiters released), over all groups.
    total_released: u64,
    /// How jobs ended, over all groups.
    outcomes: Outcomes,
    /// Threads blocked in `wait`, so that finishing a job notifies only when needed.
    waiters: usize,
}

/// A group's counters, and whether it is listed among the finished groups.
struct Entry {
    summary: GroupSummary,
    /// Jobs whose outcome was delivered: counted in `summary` first, released after.
    released: u64,
    /// The jobs its program said it would submit in all (0: it did not say).
    expected: u64,
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
            released: 0,
            expected: 0,
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
            total_released: 0,
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
        entry_of(&mut state, group).summary.submitted += 1;
        state.total.submitted += 1;
    }

    /// Records that `group` will have `total` jobs in all, so that its progress counts
    /// towards them from the start.
    pub(crate) fn expect(&self, group: &str, total: u64) {
        let mut state = self.lock();
        let entry = entry_of(&mut state, group);
        entry.expected = total;
        if entry.listed && entry.outstanding() > 0 {
            entry.listed = false; // not finished after all: listed again when it is
        }
    }

    /// Counts a finished job of `group`: `error` is the index of its error's kind in
    /// [`JobError::KINDS`](crate::JobError::KINDS), `None` if it succeeded. Called before
    /// the job's outcome is delivered to anyone, so that whoever has it sees it counted.
    pub(crate) fn finished(&self, group: &str, error: Option<usize>) {
        let failed = error.is_some();
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
    }

    /// Records that a job of `group`, counted by [`finished`](Self::finished), was
    /// delivered (its callbacks ran, its waiters were released): waiting for the group
    /// ends when all its jobs are.
    pub(crate) fn released(&self, group: &str) {
        let waiters = {
            let mut state = self.lock();
            state.total_released += 1;
            if let Some(entry) = state.groups.get_mut(group) {
                entry.released += 1;
            }
            list_if_finished(&mut state, group);
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
            .filter(|(_, entry)| entry.outstanding() > 0)
            .collect();
        active.sort_by_key(|(_, entry)| std::cmp::Reverse(entry.first_submitted));
        let finished = state.finished.iter().rev().filter_map(|name| {
            let entry = state.groups.get(name)?;
            (entry.outstanding() == 0).then_some((name, entry))
        });
        let default = state
            .groups
            .get_key_value(DEFAULT_GROUP)
            .filter(|(_, entry)| entry.outstanding() == 0);
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

    /// Blocks until every job of `group` (all jobs for `None`) has been delivered, or
    /// `deadline` passes.
    pub(crate) fn wait(&self, group: Option<&str>, deadline: Option<Instant>) -> GroupSummary {
        let mut state = self.lock();
        loop {
            if undelivered(&state, group) == 0 {
                return summary_of(&state, group);
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

impl Entry {
    /// Jobs submitted whose outcome has not been delivered yet.
    fn undelivered(&self) -> u64 {
        self.summary.submitted - self.released
    }

    /// The jobs the group has in all: submitted, or expected if more.
    fn total(&self) -> u64 {
        self.summary.submitted.max(self.expected)
    }

    /// Jobs of the group not delivered yet, counting those expected and not submitted.
    fn outstanding(&self) -> u64 {
        self.total() - self.released
    }
}

/// The entry of `group`, made if it has none.
fn entry_of<'a>(state: &'a mut State, group: &str) -> &'a mut Entry {
    if !state.groups.contains_key(group) {
        state.groups.insert(group.into(), Entry::new());
    }
    state.groups.get_mut(group).expect("inserted above")
}

/// Jobs of `group` (all jobs for `None`) whose outcome has not been delivered yet.
fn undelivered(state: &State, group: Option<&str>) -> u64 {
    match group {
        None => state.total.submitted - state.total_released,
        Some(name) => state.groups.get(name).map_or(0, Entry::undelivered),
    }
}

/// Lists `group` among the finished groups once every job of it was delivered (the
/// default group is always kept), then forgets the oldest listed past
/// [`MAX_FINISHED_GROUPS`] that still have nothing pending.
fn list_if_finished(state: &mut State, group: &str) {
    let Some(entry) = state.groups.get_mut(group) else {
        return;
    };
    if entry.listed || entry.outstanding() > 0 || group == DEFAULT_GROUP {
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
                entry.outstanding() == 0
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

    /// A job of `group` counted, then delivered, as a slot does.
    fn deliver(groups: &Groups, group: &str, error: Option<usize>) {
        groups.finished(group, error);
        groups.released(group);
    }

    #[test]
    fn groups_count_separately_and_in_the_total() {
        let groups = Groups::default();
        groups.submitted("a");
        groups.submitted("b");
        deliver(&groups, "a", Some(2));
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
            deliver(&groups, &name, None);
            deliver(&groups, &name, (batch % 2 == 0).then_some(2));
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

    /// A job is counted before it is delivered, and waiting for its group ends only once it
    /// is delivered: whoever waited finds its callbacks run.
    #[test]
    fn a_job_counts_at_once_and_ends_the_wait_once_delivered() {
        let groups = Groups::default();
        groups.submitted("g");
        groups.finished("g", None);
        assert_eq!(groups.summary(Some("g")).pending(), 0, "counted");
        let waited = groups.wait(Some("g"), Some(Instant::now()));
        assert_eq!(waited.finished, 1);
        assert_eq!(
            groups.recent(10),
            ["g"],
            "still pending delivery, not forgotten"
        );
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| groups.wait(Some("g"), None));
            std::thread::sleep(Duration::from_millis(20));
            assert!(
                !waiter.is_finished(),
                "the wait ends only once the job is delivered"
            );
            groups.released("g");
            assert_eq!(waiter.join().expect("the waiter returns").finished, 1);
        });
    }

    /// A group whose total is known from the start: its progress counts towards it, and it
    /// is not finished while jobs are still to come.
    #[test]
    fn an_expected_total_is_the_groups_progress_from_the_start() {
        let groups = Groups::default();
        groups.expect("map", 8);
        groups.submitted("map");
        groups.submitted("map");
        deliver(&groups, "map", None);
        let entry_progress = groups.progress("map", 1).expect("counters");
        assert_eq!(
            (
                entry_progress.submitted,
                entry_progress.total,
                entry_progress.finished
            ),
            (2, 8, 1)
        );
        assert_eq!(entry_progress.fraction(), 1.0 / 8.0);
        assert!(!entry_progress.is_done());
        deliver(&groups, "map", None);
        let progress = groups.progress("map", 0).expect("counters");
        assert!(!progress.is_done(), "6 jobs are still to come");
        assert_ne!(progress.eta, Some(Duration::ZERO));
        assert_eq!(groups.recent(5), ["map"], "still active");
        for _ in 0..6 {
            groups.submitted("map");
            deliver(&groups, "map", None);
        }
        let progress = groups.progress("map", 0).expect("counters");
        assert!(progress.is_done());
        assert_eq!(progress.eta, Some(Duration::ZERO));
    }
}
