//! A node's side of one client connection, as plain data: every job the client has on the
//! node from its frame to its answer, the jobs waiting for their module, cancellations and
//! draining. No sockets, no runtime: the driver (`mod.rs`) feeds it frames and finished
//! jobs, submits what it asks to the node's server, and sends its answers.
//!
//! Every job read is answered exactly once: with its result, as refused, as cancelled (when
//! the client asked), or as handed back (`Returned`: the node is draining). A job counts
//! against the client's limit until then.

use super::super::policy::NodePolicy;
use super::super::store::ModuleStore;
use crate::cache::Preparation;
use crate::error::JobError;
use crate::module::{Module, ModuleHash};
use crate::sandbox::Asked;
use crate::scheduler::slot::{Finished, JobSlot};
use crate::wire;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use wasp_proto::message::{JobDone, RunJob, ToClient, WireHash, WireJobId};

/// What the driver must do for the connection.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send this message; it answers jobs whose arguments (this many bytes) are freed.
    Send(ToClient, usize),
    /// Submit this job to the node's server with these limits, then
    /// [`attach`](ConnectionState::attach) its slot.
    Submit(Module, RunJob, Asked),
    /// Stop this job (cancel its slot): done outside the state's lock, since the job's
    /// callback answers through the state.
    Stop(Arc<JobSlot>),
}

/// A job the node holds for the client.
enum Held {
    /// Waiting for its module, with the limits it was admitted with.
    Parked(Box<RunJob>, Asked),
    /// Submitted to the node's server.
    Submitted {
        /// The job's slot, once the driver has attached it: to stop it.
        slot: Option<Arc<JobSlot>>,
        /// The client asked to stop it: its answer says "cancelled", not "handed back".
        cancelled: bool,
        /// Its arguments' size.
        args: usize,
    },
}

/// The node's side of one client connection.
#[derive(Default)]
pub(crate) struct ConnectionState {
    jobs: HashMap<WireJobId, Held>,
    /// Jobs waiting for their module, by module hash; a hash here has been asked for once.
    parked: HashMap<WireHash, Vec<WireJobId>>,
    /// The node is shutting down: jobs that arrive go back at once.
    draining: bool,
    /// The modules of the client's latest jobs, most recent last (at most
    /// [`RECENT_MODULES`]): their preparations are told to the client.
    recent_modules: VecDeque<WireHash>,
    actions: VecDeque<Action>,
}

/// How many of a client's modules it is told the preparation of.
const RECENT_MODULES: usize = 64;

impl ConnectionState {
    /// How many jobs the client has on the node.
    #[cfg(test)]
    pub(crate) fn jobs(&self) -> usize {
        self.jobs.len()
    }

    /// A job frame: the job runs now, waits for its module (asked for once), or is
    /// answered at once (refused by the policy, or handed back by a draining node). `held`
    /// is how many jobs the client has on the node with this one, counting those whose
    /// answers are not written yet (a client that does not read cannot pile them up).
    ///
    /// # Errors
    /// Why the client must be cut off: it sent a job id it already uses, or more jobs than
    /// it may have on the node.
    pub(crate) fn run(
        &mut self,
        job: RunJob,
        held: usize,
        policy: &NodePolicy,
        store: &ModuleStore,
    ) -> Result<(), String> {
        if self.jobs.contains_key(&job.job) {
            return Err(format!("sent job {} twice", job.job));
        }
        if held > policy.max_jobs_per_client {
            return Err(format!(
                "sent more than {} jobs at once",
                policy.max_jobs_per_client
            ));
        }
        let args = job.args.len();
        if self.draining {
            let back = ToClient::Returned {
                jobs: vec![job.job],
            };
            self.actions.push_back(Action::Send(back, args));
            return Ok(());
        }
        self.used(job.module);
        let hash = ModuleHash::from_bytes(job.module);
        let asked = wire::limits_from_wire(job.limits);
        let admitted = policy
            .admit_module(&hash)
            .and_then(|()| policy.admit_limits(asked));
        let limits = match admitted {
            Ok(limits) => limits,
            Err(refused) => {
                self.answer_now(job.job, args, refused);
                return Ok(());
            }
        };
        let asked = Asked {
            reuse: policy.admit_reuse(asked.reuse),
            ..Asked::all(&limits)
        };
        match store.get(&hash) {
            Some(module) => self.submit(module, job, asked),
            None => {
                let id = job.job;
                // Asked for once: the client sends it once (its waiting list may be empty
                // now, its jobs cancelled, and the module still on its way).
                if !self.parked.contains_key(&job.module) {
                    let ask = ToClient::NeedModule { hash: job.module };
                    self.actions.push_back(Action::Send(ask, 0));
                }
                self.parked.entry(job.module).or_default().push(id);
                self.jobs.insert(id, Held::Parked(Box::new(job), asked));
            }
        }
        Ok(())
    }

    fn submit(&mut self, module: Module, job: RunJob, asked: Asked) {
        let held = Held::Submitted {
            slot: None,
            cancelled: false,
            args: job.args.len(),
        };
        self.jobs.insert(job.job, held);
        self.actions.push_back(Action::Submit(module, job, asked));
    }

    /// Answers job `id` now with `error`; its arguments are freed.
    fn answer_now(&mut self, id: WireJobId, args: usize, error: JobError) {
        self.actions
            .push_back(Action::Send(failed(id, &error), args));
    }

    /// The slot of job `id`, just submitted (the job may have finished already).
    pub(crate) fn attach(&mut self, id: WireJobId, new: Arc<JobSlot>) {
        if let Some(Held::Submitted {
            slot, cancelled, ..
        }) = self.jobs.get_mut(&id)
        {
            if *cancelled {
                self.actions.push_back(Action::Stop(new.clone()));
            }
            *slot = Some(new);
        }
    }

    /// Whether module `hash` was asked of the client and not received yet.
    pub(crate) fn awaits(&self, hash: &WireHash) -> bool {
        self.parked.contains_key(hash)
    }

    /// The module the client sent, checked (`Ok`) or not loadable (`Err`): its waiting
    /// jobs run, or fail with the reason.
    ///
    /// # Errors
    /// Why the client must be cut off: the node did not ask for it.
    pub(crate) fn module_arrived(
        &mut self,
        hash: WireHash,
        module: Result<Module, String>,
    ) -> Result<(), String> {
        let waiting = self
            .parked
            .remove(&hash)
            .ok_or("sent a module the node did not ask for")?;
        for id in waiting {
            let Some(Held::Parked(job, asked)) = self.jobs.remove(&id) else {
                continue;
            };
            match &module {
                Ok(module) => self.submit(module.clone(), *job, asked),
                Err(why) => self.answer_now(id, job.args.len(), JobError::Module(why.clone())),
            }
        }
        Ok(())
    }

    /// The client asks to stop `ids`: a job waiting for its module is answered at once; a
    /// submitted one is stopped, and answered (as cancelled) when it ends. Ids the node
    /// does not hold (answered already) are ignored.
    pub(crate) fn cancel(&mut self, ids: &[WireJobId]) {
        for &id in ids {
            match self.jobs.get_mut(&id) {
                Some(Held::Parked(job, _)) => {
                    let (module, args) = (job.module, job.args.len());
                    self.jobs.remove(&id);
                    self.unpark(&module, id);
                    self.answer_now(
                        id,
                        args,
                        JobError::Cancelled("cancelled by its client".into()),
                    );
                }
                Some(Held::Submitted {
                    slot, cancelled, ..
                }) => {
                    *cancelled = true;
                    if let Some(slot) = slot {
                        self.actions.push_back(Action::Stop(slot.clone()));
                    }
                }
                None => {}
            }
        }
    }

    fn unpark(&mut self, module: &WireHash, id: WireJobId) {
        if let Some(waiting) = self.parked.get_mut(module) {
            waiting.retain(|&parked| parked != id);
            // Still awaited: the module was asked for, and the client will send it.
        }
    }

    /// The client is gone: every job it has on the node is stopped.
    pub(crate) fn cancel_all(&mut self) {
        let ids: Vec<_> = self.jobs.keys().copied().collect();
        self.cancel(&ids);
    }

    /// Job `id` ended on the node's server: its answer is queued (as an action), unless it
    /// was answered already; returns whether it was. A job stopped without the client
    /// asking (the node is shutting down) is handed back rather than reported cancelled, so
    /// that it runs elsewhere, and the client learns that the node drains first, even if
    /// the driver has not seen the node's shutdown yet.
    pub(crate) fn finished(&mut self, id: WireJobId, finished: &Finished) -> bool {
        let Some(Held::Submitted {
            cancelled, args, ..
        }) = self.jobs.remove(&id)
        else {
            return false;
        };
        let outcome = &finished.outcome;
        let answer = match &outcome.result {
            Err(JobError::Cancelled(_)) if !cancelled => {
                self.drain();
                ToClient::Returned { jobs: vec![id] }
            }
            result => ToClient::Done(JobDone {
                job: id,
                result: result
                    .clone()
                    .map(serde_bytes::ByteBuf::from)
                    .map_err(|error| wire::error_to_wire(&error)),
                stdout: outcome.stdout.clone(),
                stderr: outcome.stderr.clone(),
                duration_ns: u64::try_from(outcome.duration.as_nanos()).unwrap_or(u64::MAX),
                fuel_used: outcome.fuel_used,
            }),
        };
        self.actions.push_back(Action::Send(answer, args));
        true
    }

    /// The node is shutting down: the client is told to send nothing more, and the jobs
    /// waiting for their module are handed back at once (queued and running ones come back
    /// as the node's server gives them up).
    pub(crate) fn drain(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.actions.push_back(Action::Send(ToClient::Draining, 0));
        // The modules stay awaited: one on its way is still welcome, and ignored.
        let parked: Vec<WireJobId> = self
            .parked
            .values_mut()
            .flat_map(|ids| ids.drain(..))
            .collect();
        if parked.is_empty() {
            return;
        }
        let mut args = 0;
        for id in &parked {
            if let Some(Held::Parked(job, _)) = self.jobs.remove(id) {
                args += job.args.len();
            }
        }
        let back = ToClient::Returned { jobs: parked };
        self.actions.push_back(Action::Send(back, args));
    }

    /// Notes that a job of the client uses `module` (most jobs use the module of the one
    /// before: that case costs one comparison).
    fn used(&mut self, module: WireHash) {
        if self.recent_modules.back() == Some(&module) {
            return;
        }
        self.recent_modules.retain(|recent| *recent != module);
        if self.recent_modules.len() == RECENT_MODULES {
            self.recent_modules.pop_front();
        }
        self.recent_modules.push_back(module);
    }

    /// The node's server started or ended preparing `module`: the client is told if its
    /// jobs use it (they wait meanwhile: seconds, for a large module).
    pub(crate) fn preparation(&mut self, module: WireHash, what: Preparation) {
        if !self.recent_modules.contains(&module) {
            return;
        }
        let message = match what {
            Preparation::Started => ToClient::Preparing { hash: module },
            Preparation::Ended => ToClient::Prepared { hash: module },
        };
        self.actions.push_back(Action::Send(message, 0));
    }

    /// The next thing the driver must do, if any.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next message to send, if the next action is one: what a job's callback sends
    /// under the state's lock (it must not submit or stop jobs, which the reader does).
    pub(crate) fn poll_send(&mut self) -> Option<(ToClient, usize)> {
        match self.actions.pop_front()? {
            Action::Send(message, args) => Some((message, args)),
            other => {
                self.actions.push_front(other);
                None
            }
        }
    }
}

/// The answer of a job that fails without running.
pub(crate) fn failed(job: WireJobId, error: &JobError) -> ToClient {
    ToClient::Done(JobDone {
        job,
        result: Err(wire::error_to_wire(error)),
        stdout: Vec::new(),
        stderr: Vec::new(),
        duration_ns: 0,
        fuel_used: None,
    })
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
