//! [`JobOptions`]: what one job asks for besides its arguments.

use crate::sandbox::Asked;
use crate::scheduler::groups::DEFAULT_GROUP;
use std::time::Duration;

/// Per-job settings for [`Server::submit_with`](crate::Server::submit_with); anything unset
/// uses the server's defaults.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct JobOptions {
    group: Option<String>,
    asked: Asked,
    cache: Option<bool>,
}

impl JobOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the job in `group`, for [`Server::wait_group`](crate::Server::wait_group) and
    /// [`Server::cancel_group`](crate::Server::cancel_group). Default: `"default"`.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The job's wall-clock timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.asked.timeout = Some(timeout);
        self
    }

    /// The job's memory cap, in bytes.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.asked.max_memory = Some(bytes);
        self
    }

    /// The cap on each of the job's captured stdout and stderr, in bytes.
    pub fn max_output(mut self, bytes: u64) -> Self {
        self.asked.max_output = Some(bytes);
        self
    }

    /// The job's fuel budget ([`Limits::fuel`](crate::Limits::fuel)): a CPU budget that is
    /// the same on every run and every machine.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.asked.fuel = Some(fuel);
        self
    }

    /// Lets the job run in an instance kept from an earlier job of the same component (and,
    /// on a node, of the same client), rather than a fresh one: for trusted code, whose
    /// jobs then share the instance's state (a Python runner's interpreter: its modules,
    /// globals and the functions it ran). It saves the instantiation, most of a short
    /// job's cost. An instance that trapped, ran out of time, memory or fuel, or was
    /// cancelled is not kept. Core modules always run in a fresh instance. Default: off.
    pub fn reuse_instance(mut self, reuse: bool) -> Self {
        self.asked.reuse = reuse;
        self
    }

    /// Answers the job from the result cache when it has the job's result, and keeps the
    /// result there when the job runs and its outcome is deterministic (it read no clock
    /// and no random numbers, and hit no limit); see the README's "A result cache that is
    /// never wrong". Default: the server's ([`ServerBuilder::cache`]), off unless set.
    ///
    /// [`ServerBuilder::cache`]: crate::ServerBuilder::cache
    pub fn cache(mut self, cache: bool) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Whether the job asks for the result cache, if it says.
    pub(crate) fn cached(&self) -> Option<bool> {
        self.cache
    }

    /// The job's group.
    pub(crate) fn group_name(&self) -> &str {
        self.group.as_deref().unwrap_or(DEFAULT_GROUP)
    }

    /// The limits this job asks for, the server's where it asks for none.
    pub(crate) fn asked(&self, server: Asked) -> Asked {
        self.asked.or(server)
    }
}
