//! A node's side of one client connection, as plain data: every job the client has on the
//! node from its frame to its answer, the jobs waiting for their module, cancellations and
//! draining. No sockets, no runtime: the driver (`mod.rs`) feeds it frames and finished
//! jobs, submits what it asks to the node's server, and sends its answers.
//!
//! Every job read is answered exactly once: with its result, as refused, as cancelled (when
//! the client asked), or as handed back (`Returned`: the node is draining). A job counts
//! against the client's limit until then.

use super::super::data::DataStore;
use super::super::policy::NodePolicy;
use super::super::store::ModuleStore;
use crate::cache::Preparation;
use crate::data::{self, Args, Resolved};
use crate::error::JobError;
use crate::module::{Module, ModuleHash};
use crate::sandbox::Asked;
use crate::scheduler::slot::{Finished, JobSlot};
use crate::wire;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use wasp_proto::message::{JobDone, RunJob, ToClient, WireHash, WireJobId};
use wasp_proto::refs::{self, Found, Ref};

/// What the driver must do for the connection.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send this message; it answers jobs whose arguments (this many bytes) are freed.
    Send(ToClient, usize),
    /// Submit this job to the node's server, then [`attach`](ConnectionState::attach) its
    /// slot.
    Submit(Box<Submission>),
    /// Stop this job (cancel its slot): done outside the state's lock, since the job's
    /// callback answers through the state.
    Stop(Arc<JobSlot>),
}

/// A job ready to run: its module and its values are here (the values pinned).
#[derive(Debug)]
pub(crate) struct Submission {
    pub(crate) id: WireJobId,
    pub(crate) module: Module,
    pub(crate) function: String,
    pub(crate) args: Args,
    /// The limits it was admitted with.
    pub(crate) asked: Asked,
}

/// What a node keeps for all its clients.
#[derive(Clone, Copy)]
pub(crate) struct Stores<'a> {
    pub(crate) modules: &'a ModuleStore,
    pub(crate) data: &'a DataStore,
}

/// What a parked job waits for: a module, or a value (by hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Need {
    Module(WireHash),
    Data(WireHash),
}

/// A job the node holds for the client.
enum Held {
    /// Waiting for its module or values to arrive.
    Parked(Box<Parked>),
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

/// A job waiting for what it needs.
struct Parked {
    job: RunJob,
    /// The limits it was admitted with.
    asked: Asked,
    /// The data references in its arguments.
    found: Vec<Found>,
    /// What it waits for.
    needs: Vec<Need>,
}

/// The node's side of one client connection.
#[derive(Default)]
pub(crate) struct ConnectionState {
    jobs: HashMap<WireJobId, Held>,
    /// Jobs waiting, by what they wait for; a need here has been asked for once, and a
    /// value's expected length is kept with it.
    parked: HashMap<Need, (Vec<WireJobId>, u64)>,
    /// Values asked for whose jobs were all cancelled: still welcome if they come (with
    /// this length), but asked for again by a new job.
    abandoned: HashMap<WireHash, u64>,
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

    /// A job frame: the job runs now, waits for its module or values (each asked for
    /// once), or is answered at once (refused by the policy, or handed back by a draining
    /// node). `held` is how many jobs the client has on the node with this one, counting
    /// those whose answers are not written yet (a client that does not read cannot pile
    /// them up).
    ///
    /// # Errors
    /// Why the client must be cut off: it sent a job id it already uses, or more jobs than
    /// it may have on the node.
    pub(crate) fn run(
        &mut self,
        job: RunJob,
        held: usize,
        policy: &NodePolicy,
        stores: Stores<'_>,
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
            .and_then(|()| policy.admit_limits(asked))
            .and_then(|limits| Ok((limits, data_refs(&job.args, stores.data)?)));
        let (limits, found) = match admitted {
            Ok(admitted) => admitted,
            Err(refused) => {
                self.answer_now(job.job, args, refused);
                return Ok(());
            }
        };
        let asked = Asked {
            reuse: policy.admit_reuse(asked.reuse),
            ..Asked::all(&limits)
        };
        let parked = Parked {
            job,
            asked,
            found,
            needs: Vec::new(),
        };
        self.try_submit(parked, stores, None);
        Ok(())
    }

    /// Submits `parked` if its module (`module`, if it just arrived) and values are all
    /// here, else parks it until they arrive, asking for each missing one once.
    fn try_submit(&mut self, mut parked: Parked, stores: Stores<'_>, module: Option<&Module>) {
        let module = module.cloned().or_else(|| {
            stores
                .modules
                .get(&ModuleHash::from_bytes(parked.job.module))
        });
        let mut resolved = Vec::with_capacity(parked.found.len());
        let mut needs = Vec::new();
        if module.is_none() {
            needs.push((Need::Module(parked.job.module), 0));
        }
        for found in &parked.found {
            let Ref::Data { hash, len } = found.what else {
                continue;
            };
            match stores.data.get(&hash) {
                Some((data, pin)) => resolved.push(Resolved::Data(data, Some(Box::new(pin)))),
                None => needs.push((Need::Data(hash), len)),
            }
        }
        let id = parked.job.job;
        if let (Some(module), true) = (module, needs.is_empty()) {
            let job = parked.job;
            let submission = Submission {
                id,
                module,
                function: job.function,
                args: data::build(job.args, &parked.found, resolved),
                asked: parked.asked,
            };
            let held = Held::Submitted {
                slot: None,
                cancelled: false,
                args: submission.args.wire().len(),
            };
            self.jobs.insert(id, held);
            self.actions.push_back(Action::Submit(Box::new(submission)));
            return;
        }
        // Values found are let go while the job waits: a parked job pins nothing.
        drop(resolved);
        for (need, len) in needs {
            let (waiting, _) = self.parked.entry(need).or_insert_with(|| {
                let ask = match need {
                    Need::Module(hash) => ToClient::NeedModule { hash },
                    Need::Data(hash) => ToClient::NeedData { hash },
                };
                self.actions.push_back(Action::Send(ask, 0));
                (Vec::new(), len)
            });
            if !waiting.contains(&id) {
                waiting.push(id);
            }
            parked.needs.push(need);
        }
        self.jobs.insert(id, Held::Parked(Box::new(parked)));
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
        self.parked.contains_key(&Need::Module(*hash))
    }

    /// Checks that the value the client is about to send (`len` bytes) was asked for.
    ///
    /// # Errors
    /// Why the client must be cut off: the node did not ask for it, or it has another
    /// length than its references say.
    pub(crate) fn expects_data(&self, hash: &WireHash, len: u64) -> Result<(), String> {
        let expected = self
            .parked
            .get(&Need::Data(*hash))
            .map(|(_, len)| *len)
            .or_else(|| self.abandoned.get(hash).copied())
            .ok_or("sent a value the node did not ask for")?;
        if expected != len {
            return Err(format!(
                "sent a value of {len} bytes whose references say {expected}"
            ));
        }
        Ok(())
    }

    /// The module the client sent, checked (`Ok`) or not loadable (`Err`): its waiting
    /// jobs run (or wait for their values), or fail with the reason.
    ///
    /// # Errors
    /// Why the client must be cut off: the node did not ask for it.
    pub(crate) fn module_arrived(
        &mut self,
        hash: WireHash,
        module: Result<Module, String>,
        stores: Stores<'_>,
    ) -> Result<(), String> {
        let (waiting, _) = self
            .parked
            .remove(&Need::Module(hash))
            .ok_or("sent a module the node did not ask for")?;
        match module {
            Ok(module) => self.arrived(Need::Module(hash), waiting, stores, Some(&module)),
            Err(why) => {
                for id in waiting {
                    if let Some(parked) = self.unpark_job(id) {
                        let error = JobError::Module(why.clone());
                        self.answer_now(id, parked.job.args.len(), error);
                    }
                }
            }
        }
        Ok(())
    }

    /// A value the client sent arrived and is in the store: the jobs waiting for it run
    /// (or wait for the rest).
    pub(crate) fn data_arrived(&mut self, hash: WireHash, stores: Stores<'_>) {
        self.abandoned.remove(&hash);
        if let Some((waiting, _)) = self.parked.remove(&Need::Data(hash)) {
            self.arrived(Need::Data(hash), waiting, stores, None);
        }
    }

    /// `need` arrived (`module`, if it is a module): each job of `waiting` tries again (it
    /// may wait for more).
    fn arrived(
        &mut self,
        need: Need,
        waiting: Vec<WireJobId>,
        stores: Stores<'_>,
        module: Option<&Module>,
    ) {
        for id in waiting {
            let Some(Held::Parked(mut parked)) = self.jobs.remove(&id) else {
                continue;
            };
            parked.needs.retain(|waited| *waited != need);
            if parked.needs.is_empty() {
                self.try_submit(*parked, stores, module);
            } else {
                self.jobs.insert(id, Held::Parked(parked));
            }
        }
    }

    /// Takes parked job `id` out of the waiting lists; a value nobody waits for any more
    /// is abandoned (a module stays awaited: its client sends it once).
    fn unpark_job(&mut self, id: WireJobId) -> Option<Box<Parked>> {
        let Some(Held::Parked(parked)) = self.jobs.remove(&id) else {
            return None;
        };
        for need in &parked.needs {
            let Some((waiting, len)) = self.parked.get_mut(need) else {
                continue;
            };
            waiting.retain(|&parked| parked != id);
            if let (Need::Data(hash), true) = (need, waiting.is_empty()) {
                let len = *len;
                self.parked.remove(need);
                self.abandoned.insert(*hash, len);
            }
        }
        Some(parked)
    }

    /// The client asks to stop `ids`: a job waiting for its module or values is answered
    /// at once; a submitted one is stopped, and answered (as cancelled) when it ends. Ids
    /// the node does not hold (answered already) are ignored.
    pub(crate) fn cancel(&mut self, ids: &[WireJobId]) {
        for &id in ids {
            match self.jobs.get_mut(&id) {
                Some(Held::Parked(_)) => {
                    if let Some(parked) = self.unpark_job(id) {
                        self.answer_now(
                            id,
                            parked.job.args.len(),
                            JobError::Cancelled("cancelled by its client".into()),
                        );
                    }
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
                deterministic: outcome.deterministic,
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
        // What was asked for stays awaited: one on its way is still welcome, and ignored.
        let mut parked: Vec<WireJobId> = self
            .parked
            .values_mut()
            .flat_map(|(ids, _)| ids.drain(..))
            .collect();
        parked.sort_unstable();
        parked.dedup();
        if parked.is_empty() {
            return;
        }
        let mut args = 0;
        for id in &parked {
            if let Some(Held::Parked(job)) = self.jobs.remove(id) {
                args += job.job.args.len();
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
        deterministic: false,
    })
}

/// The data references in a job's arguments, each of a size the node keeps.
///
/// # Errors
/// [`JobError::DataTooLarge`] for a value larger than the store; [`JobError::BadArguments`]
/// for a job reference (a client resolves those before a job leaves it).
fn data_refs(args: &[u8], store: &DataStore) -> Result<Vec<Found>, JobError> {
    // Arguments that are not well-formed MessagePack hold no references: the job itself
    // says what is wrong with them.
    let found = refs::find(args).unwrap_or_default();
    for found in &found {
        match found.what {
            Ref::Data { len, .. } => {
                store
                    .admit(len)
                    .map_err(|too_large| JobError::DataTooLarge {
                        size: too_large.size,
                        limit: too_large.limit,
                    })?
            }
            Ref::Job { .. } => {
                return Err(JobError::BadArguments(
                    "a job reference reached a node (its client should have replaced it)".into(),
                ));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
