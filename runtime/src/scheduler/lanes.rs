//! Pending tasks in one lane per owner, served fairly: the next task comes from the lane
//! whose owner has the fewest tasks running, the least recently served first among equals.
//!
//! A node's clients are owners, so a client that queues thousands of long jobs gets its
//! share of the workers and no more: another client's job waits for a free worker, not
//! for the flood. With one owner (a server's own caller) this is a plain FIFO queue.

use super::task::Task;
use std::collections::{HashMap, VecDeque};

/// Who a task belongs to, for fairness: [`Owner::LOCAL`] for jobs submitted to a server
/// directly, one per client connection on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Owner(pub(crate) u64);

impl Owner {
    /// The server's own caller.
    pub(crate) const LOCAL: Owner = Owner(0);
}

/// Pending tasks by owner.
#[derive(Default)]
pub(crate) struct Lanes {
    lanes: HashMap<Owner, VecDeque<Box<Task>>>,
    /// The owners with pending tasks, least recently served first.
    order: VecDeque<Owner>,
    len: usize,
}

impl Lanes {
    /// Queues `task` last in its owner's lane.
    pub(crate) fn push_back(&mut self, task: Box<Task>) {
        self.lane(task.owner).push_back(task);
    }

    /// Queues `task` first in its owner's lane (a task handed back runs before the others).
    pub(crate) fn push_front(&mut self, task: Box<Task>) {
        self.lane(task.owner).push_front(task);
    }

    fn lane(&mut self, owner: Owner) -> &mut VecDeque<Box<Task>> {
        self.len += 1;
        let lane = self.lanes.entry(owner).or_default();
        if lane.is_empty() {
            self.order.push_back(owner);
        }
        lane
    }

    /// The next task: from the owner with the fewest tasks `running`, the least recently
    /// served among equals.
    pub(crate) fn pop(&mut self, running: impl Fn(Owner) -> usize) -> Option<Box<Task>> {
        let (at, _) = self
            .order
            .iter()
            .enumerate()
            .min_by_key(|&(at, &owner)| (running(owner), at))?;
        let owner = self.order.remove(at)?;
        let lane = self.lanes.get_mut(&owner)?;
        let task = lane.pop_front();
        if !lane.is_empty() {
            self.order.push_back(owner);
        } else if owner != Owner::LOCAL {
            // A departed client's lane goes; the server's own caller keeps its lane, so a
            // queue that keeps running dry costs no allocation per job.
            self.lanes.remove(&owner);
        }
        self.len -= usize::from(task.is_some());
        task
    }

    /// Takes out every pending task for which `select` is true, in queue order per owner.
    #[expect(
        clippy::vec_box,
        reason = "tasks stay boxed from submission to completion"
    )]
    pub(crate) fn take_where(&mut self, mut select: impl FnMut(&Task) -> bool) -> Vec<Box<Task>> {
        let mut taken = Vec::new();
        for lane in self.lanes.values_mut() {
            let (chosen, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(lane)
                .into_iter()
                .partition(|task| select(task));
            *lane = kept;
            taken.extend(chosen);
        }
        self.len -= taken.len();
        self.order
            .retain(|owner| self.lanes.get(owner).is_some_and(|lane| !lane.is_empty()));
        taken
    }

    /// How many tasks are pending.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Takes every pending task out.
    #[expect(
        clippy::vec_box,
        reason = "tasks stay boxed from submission to completion"
    )]
    pub(crate) fn drain(&mut self) -> Vec<Box<Task>> {
        self.len = 0;
        self.order.clear();
        self.lanes.drain().flat_map(|(_, lane)| lane).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::task::test_task as task_of;

    fn pop(lanes: &mut Lanes, running: &[(Owner, usize)]) -> Option<(u64, u64)> {
        let running = |owner| {
            running
                .iter()
                .find(|(of, _)| *of == owner)
                .map_or(0, |(_, count)| *count)
        };
        lanes.pop(running).map(|task| (task.owner.0, task.id().0))
    }

    #[test]
    fn one_owner_is_first_in_first_out() {
        let mut lanes = Lanes::default();
        for id in 0..3 {
            lanes.push_back(task_of(id, Owner::LOCAL));
        }
        lanes.push_front(task_of(9, Owner::LOCAL));
        let order: Vec<_> = std::iter::from_fn(|| pop(&mut lanes, &[])).collect();
        assert_eq!(order, [(0, 9), (0, 0), (0, 1), (0, 2)]);
        assert_eq!(lanes.len(), 0);
    }

    #[test]
    fn owners_take_turns() {
        let mut lanes = Lanes::default();
        for id in 0..4 {
            lanes.push_back(task_of(id, Owner(1)));
        }
        lanes.push_back(task_of(10, Owner(2)));
        lanes.push_back(task_of(11, Owner(2)));
        let order: Vec<_> = std::iter::from_fn(|| pop(&mut lanes, &[])).collect();
        assert_eq!(order, [(1, 0), (2, 10), (1, 1), (2, 11), (1, 2), (1, 3)]);
    }

    /// An owner holding workers with long jobs waits while another has none running: the
    /// other's job goes first, whoever queued first.
    #[test]
    fn the_owner_with_fewest_running_goes_first() {
        let mut lanes = Lanes::default();
        for id in 0..3 {
            lanes.push_back(task_of(id, Owner(1)));
        }
        lanes.push_back(task_of(10, Owner(2)));
        let flood_running = [(Owner(1), 2)];
        assert_eq!(pop(&mut lanes, &flood_running), Some((2, 10)));
        assert_eq!(pop(&mut lanes, &flood_running), Some((1, 0)));
        assert_eq!(lanes.len(), 2);
        assert_eq!(lanes.drain().len(), 2);
        assert_eq!(pop(&mut lanes, &[]), None);
    }

    #[test]
    fn selected_tasks_are_taken_out_and_the_rest_keep_their_turns() {
        let mut lanes = Lanes::default();
        for id in 0..4 {
            lanes.push_back(task_of(id, Owner(1)));
        }
        lanes.push_back(task_of(10, Owner(2)));
        let taken = lanes.take_where(|task| task.id().0 % 2 == 0 || task.id().0 == 10);
        let mut ids: Vec<_> = taken.iter().map(|task| task.id().0).collect();
        ids.sort_unstable();
        assert_eq!(ids, [0, 2, 10]);
        assert_eq!(lanes.len(), 2);
        let order: Vec<_> = std::iter::from_fn(|| pop(&mut lanes, &[])).collect();
        assert_eq!(order, [(1, 1), (1, 3)]);
        // Taken tasks are the caller's to answer.
        taken.into_iter().for_each(drop);
    }
}
