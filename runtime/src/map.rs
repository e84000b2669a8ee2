//! [`MapResults`]: the in-order results of [`Server::map`](crate::Server::map).

use crate::error::JobError;
use crate::job::Job;
use crate::module::Module;
use crate::options::JobOptions;
use crate::scheduler::pool::Room;
use crate::submit::{Call, Submitter};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;

/// How many jobs per worker `map` keeps submitted ahead of the consumer: enough that a worker
/// never waits for the next job, few enough that a huge input is not queued all at once.
const AHEAD_PER_WORKER: usize = 8;

/// The minimum number of jobs `map` keeps in flight, whatever the number of workers.
const MIN_AHEAD: usize = 16;

/// The results of [`Server::map`](crate::Server::map), in input order.
#[must_use = "map submits its jobs only as its results are consumed"]
pub struct MapResults<'s, T, I> {
    submitter: &'s Submitter,
    module: Module,
    function: String,
    inputs: I,
    in_flight: VecDeque<Job<T>>,
}

impl<T, I> std::fmt::Debug for MapResults<'_, T, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapResults")
            .field("function", &self.function)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl<'s, T, A, I> MapResults<'s, T, I>
where
    T: DeserializeOwned,
    A: Serialize,
    I: Iterator<Item = A>,
{
    pub(crate) fn new(
        submitter: &'s Submitter,
        module: Module,
        function: String,
        inputs: I,
    ) -> Self {
        let mut results = MapResults {
            submitter,
            module,
            function,
            inputs,
            in_flight: VecDeque::new(),
        };
        results.fill();
        results
    }

    fn window(&self) -> usize {
        (self.submitter.capacity() * AHEAD_PER_WORKER).max(MIN_AHEAD)
    }

    fn fill(&mut self) {
        while self.in_flight.len() < self.window() {
            let Some(args) = self.inputs.next() else {
                break;
            };
            let call = Call {
                module: &self.module,
                function: &self.function,
                args: rmp_serde::to_vec_named(&args)
                    .map_err(|err| JobError::BadArguments(err.to_string())),
            };
            let slot = self
                .submitter
                .submit(call, &JobOptions::default(), Room::Wait)
                .expect("a submission that may wait always finds room");
            self.in_flight.push_back(Job::from_slot(slot));
        }
    }
}

impl<T, A, I> Iterator for MapResults<'_, T, I>
where
    T: DeserializeOwned,
    A: Serialize,
    I: Iterator<Item = A>,
{
    type Item = Result<T, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        let job = self.in_flight.pop_front()?;
        self.fill();
        Some(job.wait())
    }
}

impl<T, I> Drop for MapResults<'_, T, I> {
    /// The jobs submitted ahead and not consumed are no longer wanted: they are cancelled,
    /// so that a `map` abandoned half way (an error, a `break`, Ctrl-C) frees the workers.
    fn drop(&mut self) {
        for job in &self.in_flight {
            job.cancel();
        }
    }
}
