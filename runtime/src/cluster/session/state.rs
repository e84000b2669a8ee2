//! The client side of one connection to a node, as plain data: what is in flight, what the
//! node may take, and what each message from the node means. No sockets, no runtime, no
//! clock of its own: the driver (`driver.rs`) feeds it the node's messages and the jobs it takes from
//! the queue, writes the frames it encodes, and carries out the [`Action`]s it asks for.
//!
//! Shaped like quinn-proto's connection: inputs are method calls (`send`, `handle`,
//! `check_cancels`, `expire`, `module_sent`, `end`), outputs are frames appended to a buffer
//! and actions taken with [`SessionState::poll_action`]. The time, where it matters, is an
//! argument.

use super::super::window::{self, Window};
use crate::data::Data;
use crate::error::JobError;
use crate::module::{Module, ModuleSource};
use crate::sandbox::RawOutcome;
use crate::scheduler::queue::Requeue;
use crate::scheduler::slot::Finished;
use crate::scheduler::task::Task;
use crate::wire;
use bytes::BytesMut;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use wasp_proto::codec::{self, MAX_FRAME_LEN};
use wasp_proto::message::{JobDone, NodeInfo, RunJob, ToClient, ToNode, WireHash, WireJobId};

/// How many times in a row a job may be handed back by nodes without it counting as an
/// attempt: a draining node does it once; a node that keeps doing it (draining again and
/// again, or hostile) must not bounce a job for ever.
pub(crate) const FREE_HAND_BACKS: u32 = 8;

/// How much longer than its time limit a node may take to answer a job, beyond the limit
/// itself (the job may wait for a worker there): past it, the client takes the job back.
pub(crate) const ANSWER_GRACE: Duration = Duration::from_secs(30);

/// How long a node may hold a job whose time limit is `timeout` before the client takes it
/// back: twice the limit, plus [`ANSWER_GRACE`].
pub(crate) fn answer_deadline(timeout: Duration) -> Duration {
    timeout.saturating_mul(2).saturating_add(ANSWER_GRACE)
}

/// What the driver must do for the session.
pub(crate) enum Action {
    /// Answer this job (through `Shared::finish`).
    Finish(Box<Task>, Finished),
    /// Put this job back at the head of the queue (through `Shared::requeue`), for this
    /// reason.
    Requeue(Box<Task>, Requeue),
    /// Send this module to the node on a stream of its own, then call
    /// [`SessionState::module_sent`].
    Ship(WireHash, Module),
    /// Send this value to the node on a stream of its own, then call
    /// [`SessionState::data_sent`].
    ShipData(Data),
    /// Tell the node where to pull this module from (a `Pull` frame on the job stream): it
    /// pulls from the module's registry itself.
    Refer(WireHash, ModuleSource),
}

/// How a session ended, as far as the jobs it holds are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The client is stopping: its jobs go back to its (closed) queue.
    Stopped,
    /// The node shut down in order (it said so): its jobs go back for free, up to
    /// [`FREE_HAND_BACKS`] times in a row.
    Drained,
    /// The node was lost (killed, silent, closed, or it broke the protocol): each job it
    /// held counts an attempt.
    Lost,
}

/// The node broke the protocol: the session must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the node broke the protocol: {0}")]
pub(crate) struct Violation(pub(crate) String);

/// What the session has seen since the driver last looked: applied to the node's row.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Delta {
    pub(crate) jobs: u64,
    pub(crate) failed: u64,
    pub(crate) busy: Duration,
    pub(crate) retries: u64,
    pub(crate) module_transfers: u64,
    /// Values put once sent to the node, and their bytes.
    pub(crate) data_transfers: u64,
    pub(crate) data_bytes: u64,
    /// Bytes sent to the node in all (UDP payloads, as QUIC counts them).
    pub(crate) bytes_sent: u64,
    /// The node's new worker count, if it changed.
    pub(crate) workers: Option<u32>,
    /// How many of this session's modules the node is preparing now, if that changed.
    pub(crate) preparing: Option<u32>,
    /// The node said it is draining.
    pub(crate) draining: bool,
}

/// A job sent to the node and not answered by it yet.
enum Flight {
    /// Running there; its task is here, to answer or hand back. A job with a time limit
    /// has a deadline for its answer.
    Running(Box<Task>, Option<Instant>),
    /// Cancelled by the client and answered already; the node's answer is still due (and
    /// counts in the window until it arrives).
    Cancelled,
}

/// The client's side of one connection.
pub(crate) struct SessionState {
    /// How jobs run here are named in their output and in errors.
    node: String,
    window: Window,
    in_flight: HashMap<WireJobId, Flight>,
    /// The modules of the jobs sent in this session, by hash: what the node may ask for.
    modules: HashMap<WireHash, Module>,
    /// Modules on their way to the node: asked again meanwhile, they are not sent twice.
    shipping: HashSet<WireHash>,
    /// Values on their way to the node, likewise.
    shipping_data: HashSet<WireHash>,
    /// Modules the node is preparing (compiling) for this session's jobs.
    preparing: HashSet<WireHash>,
    /// The registries the node pulls modules from itself (`wasp node --pull-from`).
    pulls_from: Vec<String>,
    next_id: WireJobId,
    /// The node said it is shutting down: send it nothing more.
    draining: bool,
    /// How many times a job may lose its node before it fails.
    max_retries: u32,
    /// The largest module the node accepts (and a frame can carry).
    max_module_size: usize,
    /// Jobs answered by the node in this session (results, not hand-backs).
    answered: u64,
    actions: VecDeque<Action>,
    delta: Delta,
}

/// Room in a module frame for everything but the module's bytes.
const MODULE_FRAME_OVERHEAD: usize = 1024;

impl SessionState {
    /// A session with the node that welcomed the client with `info`; `node` names it.
    pub(crate) fn new(node: String, info: &NodeInfo, max_retries: u32) -> Self {
        SessionState {
            node,
            window: Window::new(info.workers),
            in_flight: HashMap::new(),
            modules: HashMap::new(),
            shipping: HashSet::new(),
            shipping_data: HashSet::new(),
            preparing: HashSet::new(),
            pulls_from: info.pulls_from.clone(),
            next_id: 0,
            draining: false,
            max_retries,
            max_module_size: usize::try_from(info.max_module_size)
                .unwrap_or(usize::MAX)
                .min(codec::MAX_MODULE_FRAME_LEN - MODULE_FRAME_OVERHEAD),
            answered: 0,
            actions: VecDeque::new(),
            delta: Delta::default(),
        }
    }

    /// How many more jobs the node may be sent now, given the connection's round trip.
    pub(crate) fn room(&self, rtt: Duration) -> usize {
        if self.draining {
            return 0;
        }
        self.window.size(rtt).saturating_sub(self.in_flight.len())
    }

    /// How many jobs `pending` queued ones the node may take, if the others (local workers
    /// and other nodes) have `others` workers: its share, within `room`.
    pub(crate) fn share(&self, room: usize, pending: usize, others: usize) -> usize {
        room.min(window::fair_share(pending, self.window.workers(), others))
    }

    /// Whether the node said it is shutting down.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining
    }

    /// The node's worker count, as last announced.
    pub(crate) fn workers(&self) -> usize {
        self.window.workers()
    }

    /// How many jobs the node holds for this client.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Jobs the node answered in this session.
    pub(crate) fn answered(&self) -> u64 {
        self.answered
    }

    /// Sends `task` to the node at `now`: appends its `Run` frame to `out`. A job no node
    /// could take (its module too large for this node, its arguments too large for a frame)
    /// is answered with its error instead.
    pub(crate) fn send(&mut self, task: Box<Task>, out: &mut BytesMut, now: Instant) {
        if task.module.bytes().len() > self.max_module_size {
            let error = JobError::ModuleRefused(format!(
                "the module ({} bytes) is larger than {} accepts ({} bytes)",
                task.module.bytes().len(),
                self.node,
                self.max_module_size
            ));
            self.actions
                .push_back(Action::Finish(task, Finished::failed(error)));
            return;
        }
        let id = self.next_id;
        let hash = *task.module.hash().as_bytes();
        let run = ToNode::Run(RunJob {
            job: id,
            module: hash,
            function: task.function.to_string(),
            args: task.args.wire().to_vec(),
            limits: wire::limits_to_wire(&task.asked),
        });
        if let Err(error) = codec::encode(&run, MAX_FRAME_LEN, out) {
            // Only a job too large for a frame gets here: no node could take it.
            let error = JobError::BadArguments(format!("cannot send the job to a node: {error}"));
            self.actions
                .push_back(Action::Finish(task, Finished::failed(error)));
            return;
        }
        self.next_id += 1;
        self.modules
            .entry(hash)
            .or_insert_with(|| task.module.clone());
        let deadline = task
            .asked
            .timeout
            .map(|timeout| now + answer_deadline(timeout));
        self.in_flight.insert(id, Flight::Running(task, deadline));
    }

    /// Takes back the jobs the node has held past their deadline at `now` (it keeps the
    /// connection alive but does not answer them): each goes back to the queue at the cost
    /// of an attempt, and one `Cancel` frame appended to `out` tells the node. While the
    /// node prepares a module for this session (compiling takes seconds), no deadline
    /// passes. Returns how many jobs were taken back.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut BytesMut) -> usize {
        if !self.preparing.is_empty() {
            for flight in self.in_flight.values_mut() {
                if let Flight::Running(task, Some(deadline)) = flight
                    && let Some(timeout) = task.asked.timeout
                {
                    *deadline = (*deadline).max(now + answer_deadline(timeout));
                }
            }
            return 0;
        }
        let expired: Vec<WireJobId> = self
            .in_flight
            .iter()
            .filter(|(_, flight)| matches!(flight, Flight::Running(_, Some(deadline)) if *deadline <= now))
            .map(|(&id, _)| id)
            .collect();
        for &id in &expired {
            if let Some(Flight::Running(task, _)) = self.in_flight.insert(id, Flight::Cancelled) {
                self.hand_back(task, Ending::Lost);
            }
        }
        if !expired.is_empty() {
            let cancel = ToNode::Cancel {
                jobs: expired.clone(),
            };
            // A frame of ids is far below the maximum: encoding cannot fail.
            let _ = codec::encode(&cancel, MAX_FRAME_LEN, out);
        }
        expired.len()
    }

    /// Looks for jobs in flight that their callers have cancelled (answered already): they
    /// leave the queue's books, and one `Cancel` frame appended to `out` asks the node to
    /// stop them. Returns how many were found.
    pub(crate) fn check_cancels(&mut self, out: &mut BytesMut) -> usize {
        let cancelled: Vec<WireJobId> = self
            .in_flight
            .iter()
            .filter(|(_, flight)| matches!(flight, Flight::Running(task, _) if task.is_answered()))
            .map(|(&id, _)| id)
            .collect();
        for &id in &cancelled {
            if let Some(Flight::Running(task, _)) = self.in_flight.insert(id, Flight::Cancelled) {
                let answer = Finished::failed(JobError::Cancelled("cancelled".into()));
                self.actions.push_back(Action::Finish(task, answer));
            }
        }
        if !cancelled.is_empty() {
            let cancel = ToNode::Cancel {
                jobs: cancelled.clone(),
            };
            // A frame of ids is far below the maximum: encoding cannot fail.
            let _ = codec::encode(&cancel, MAX_FRAME_LEN, out);
        }
        cancelled.len()
    }

    /// Takes in a message from the node.
    ///
    /// # Errors
    /// [`Violation`] if the node broke the protocol; the session must then end (as lost).
    pub(crate) fn handle(&mut self, message: ToClient) -> Result<(), Violation> {
        match message {
            ToClient::Done(done) => self.done(done),
            ToClient::Returned { jobs } => {
                for id in jobs {
                    if let Flight::Running(task, _) = self.take(id)? {
                        self.hand_back(task, Ending::Drained);
                    }
                }
                Ok(())
            }
            ToClient::NeedModule { hash } => {
                let module = self.modules.get(&hash).cloned().ok_or_else(|| {
                    Violation("it asked for a module no job of this session uses".into())
                })?;
                if let Some(source) = self.pullable(&module) {
                    // A few bytes instead of the module: the node pulls it by digest.
                    self.actions.push_back(Action::Refer(hash, source));
                    return Ok(());
                }
                // Asked again while on its way (a node that evicted it, or a hostile one):
                // one transfer at a time per module, so asking cannot multiply copies.
                if self.shipping.insert(hash) {
                    self.actions.push_back(Action::Ship(hash, module));
                }
                Ok(())
            }
            ToClient::NeedData { hash } => {
                // A value only a job still in flight here can give: one the node asked for
                // a job since cancelled is not needed any more (the node asks again for a
                // new job that takes it).
                let data = self.in_flight.values().find_map(|flight| match flight {
                    Flight::Running(task, _) => task.args.values().find(|data| data.hash == hash),
                    Flight::Cancelled => None,
                });
                if let Some(data) = data
                    && self.shipping_data.insert(hash)
                {
                    self.actions.push_back(Action::ShipData(data.clone()));
                }
                Ok(())
            }
            ToClient::Draining => {
                self.draining = true;
                self.delta.draining = true;
                Ok(())
            }
            ToClient::Workers { workers } => {
                self.window.set_workers(workers);
                self.delta.workers = Some(workers);
                Ok(())
            }
            ToClient::Preparing { hash } => {
                // Only this session's modules: a node cannot grow the set.
                if self.modules.contains_key(&hash) && self.preparing.insert(hash) {
                    self.delta.preparing = Some(self.preparing.len() as u32);
                }
                Ok(())
            }
            ToClient::Prepared { hash } => {
                if self.preparing.remove(&hash) {
                    self.delta.preparing = Some(self.preparing.len() as u32);
                }
                Ok(())
            }
            ToClient::Welcome(_) => Err(Violation("a second welcome".into())),
        }
    }

    /// Where the node can pull `module` from itself, if it came from a registry the node
    /// pulls from.
    fn pullable(&self, module: &Module) -> Option<ModuleSource> {
        let source = module.source()?;
        self.pulls_from
            .iter()
            .any(|scope| source.is_within(scope))
            .then(|| source.clone())
    }

    fn take(&mut self, id: WireJobId) -> Result<Flight, Violation> {
        self.in_flight
            .remove(&id)
            .ok_or_else(|| Violation(format!("an answer for job {id}, which it does not have")))
    }

    fn done(&mut self, done: JobDone) -> Result<(), Violation> {
        let Flight::Running(task, _) = self.take(done.job)? else {
            // The answer to a job cancelled here: already answered, counted once.
            return Ok(());
        };
        let duration = Duration::from_nanos(done.duration_ns);
        let failed = done.result.is_err();
        if !failed {
            // A job that failed at once says nothing about how long jobs take.
            self.window.record(duration);
        }
        self.answered += 1;
        self.delta.jobs += 1;
        self.delta.failed += u64::from(failed);
        self.delta.busy += duration;
        let outcome = RawOutcome {
            result: done
                .result
                .map(serde_bytes::ByteBuf::into_vec)
                .map_err(wire::error_from_wire),
            stdout: done.stdout,
            stderr: done.stderr,
            duration,
            fuel_used: done.fuel_used,
            deterministic: done.deterministic,
        };
        let finished = Finished {
            outcome,
            worker: self.node.clone(),
        };
        self.actions.push_back(Action::Finish(task, finished));
        Ok(())
    }

    /// A module transfer asked for by [`Action::Ship`] has ended; `sent` tells whether the
    /// module reached the node (if not, the driver ends the session).
    pub(crate) fn module_sent(&mut self, hash: WireHash, sent: bool) {
        self.shipping.remove(&hash);
        self.delta.module_transfers += u64::from(sent);
    }

    /// A value transfer asked for by [`Action::ShipData`] has ended; `sent` tells whether
    /// the value reached the node (if not, the driver ends the session).
    pub(crate) fn data_sent(&mut self, hash: WireHash, len: u64, sent: bool) {
        self.shipping_data.remove(&hash);
        if sent {
            self.delta.data_transfers += 1;
            self.delta.data_bytes += len;
        }
    }

    /// Counts `bytes` more sent to the node.
    pub(crate) fn sent_bytes(&mut self, bytes: u64) {
        self.delta.bytes_sent += bytes;
    }

    /// The session is over: every job still in flight goes back to the queue, counting an
    /// attempt as `how` says.
    pub(crate) fn end(&mut self, how: Ending) {
        let mut jobs: Vec<_> = self.in_flight.drain().collect();
        // Requeued at the head one by one: last first, so they keep their order.
        jobs.sort_unstable_by_key(|(id, _)| std::cmp::Reverse(*id));
        for (_, flight) in jobs {
            if let Flight::Running(task, _) = flight {
                self.hand_back(task, how);
            }
        }
    }

    /// Puts back a job the node did not finish. A lost node costs the job an attempt; a
    /// drained one costs nothing, up to [`FREE_HAND_BACKS`] times in a row, then attempts
    /// too. Past the retry limit the job fails with [`JobError::NodeLost`].
    fn hand_back(&mut self, mut task: Box<Task>, how: Ending) {
        let counted = match how {
            Ending::Stopped => false,
            Ending::Lost => true,
            Ending::Drained => {
                task.handed_back += 1;
                task.handed_back > FREE_HAND_BACKS
            }
        };
        if !counted {
            let why = match how {
                Ending::Stopped => Requeue::Withdrawn,
                Ending::Lost | Ending::Drained => Requeue::HandedBack,
            };
            self.actions.push_back(Action::Requeue(task, why));
            return;
        }
        task.handed_back = 0;
        task.attempts += 1;
        if task.attempts > self.max_retries {
            let error = JobError::NodeLost {
                attempts: task.attempts,
                node: self.node.clone(),
            };
            self.actions
                .push_back(Action::Finish(task, Finished::failed(error)));
            return;
        }
        self.delta.retries += 1;
        self.actions.push_back(Action::Requeue(task, Requeue::Lost));
    }

    /// The next thing the driver must do, if any.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// What happened since the last call, for the node's row of statistics.
    pub(crate) fn take_delta(&mut self) -> Delta {
        std::mem::take(&mut self.delta)
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
