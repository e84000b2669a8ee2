//! [`Submitter`]: turning a call into a task on the queue, shared by [`Server`] and the
//! iterator of [`Server::map`](crate::Server::map).
//!
//! [`Server`]: crate::Server

use crate::error::{JobError, QueueFull};
use crate::job::JobId;
use crate::module::Module;
use crate::options::JobOptions;
use crate::sandbox::Asked;
use crate::scheduler::books::Group;
use crate::scheduler::lanes::Owner;
use crate::scheduler::pool::{Room, Shared};
use crate::scheduler::slot::{Callback, Finished, JobSlot};
use crate::scheduler::task::Task;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a job is, once its arguments are encoded.
pub(crate) struct Call<'a> {
    pub(crate) module: &'a Module,
    pub(crate) function: &'a str,
    /// The MessagePack-encoded arguments, or why they could not be encoded.
    pub(crate) args: Result<Vec<u8>, JobError>,
}

/// Submits jobs to a server's queue.
pub(crate) struct Submitter {
    pub(crate) shared: Arc<Shared>,
    /// The limits the server's caller set ([`ServerBuilder`](crate::ServerBuilder)).
    pub(crate) asked: Asked,
    next_id: AtomicU64,
}

impl Submitter {
    pub(crate) fn new(shared: Arc<Shared>, asked: Asked) -> Self {
        Submitter {
            shared,
            asked,
            next_id: AtomicU64::new(0),
        }
    }

    /// Submits `call` with `options`, waiting for room in a bounded queue as `room` allows.
    ///
    /// A call that cannot run (no such job, arguments that did not encode) is answered at
    /// once, with its error, and costs no room.
    ///
    /// # Errors
    /// [`QueueFull`] if the queue stayed full for as long as `room` allows; nothing was
    /// submitted.
    pub(crate) fn submit(
        &self,
        call: Call<'_>,
        options: &JobOptions,
        room: Room,
    ) -> Result<Arc<JobSlot>, QueueFull> {
        let asked = options.asked(self.asked);
        self.submit_as(
            call,
            options.group_name(),
            asked,
            (Owner::LOCAL, None),
            room,
        )
    }

    /// Submits `call` for `owner`, in `group`, with limits already decided (a node's
    /// client's job, in the client's group); `callback` gets its outcome.
    pub(crate) fn submit_owned(
        &self,
        call: Call<'_>,
        asked: Asked,
        (owner, group): (Owner, &str),
        callback: Callback,
    ) -> Arc<JobSlot> {
        self.submit_as(call, group, asked, (owner, Some(callback)), Room::Wait)
            .expect("a submission that may wait always finds room")
    }

    fn submit_as(
        &self,
        call: Call<'_>,
        group: &str,
        asked: Asked,
        (owner, callback): (Owner, Option<Callback>),
        room: Room,
    ) -> Result<Arc<JobSlot>, QueueFull> {
        let args = call.args.and_then(|args| {
            if call.module.has_job(call.function) {
                Ok(args)
            } else {
                Err(JobError::UnknownFunction {
                    function: call.function.to_string(),
                    available: call.module.jobs().to_vec(),
                })
            }
        });
        let args = match args {
            Ok(args) => args,
            Err(error) => {
                let slot = self.new_slot(group, callback);
                slot.finish(Finished::failed(error), None);
                return Ok(slot);
            }
        };
        if !self.shared.wait_for_room(room) {
            return Err(QueueFull {
                max: self.shared.max_queued(),
            });
        }
        let slot = self.new_slot(group, callback);
        let task = Task::new(
            slot.clone(),
            call.module.clone(),
            Arc::from(call.function),
            args,
            asked,
            owner,
        );
        // Room was there a moment ago; another submitter may have taken it since, so this
        // one waits (briefly) rather than break the bound.
        self.shared.enqueue(task);
        Ok(slot)
    }

    fn new_slot(&self, group: &str, callback: Option<Callback>) -> Arc<JobSlot> {
        let id = JobId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let slot = JobSlot::new(id, Group::from(group), self.shared.books.clone());
        if let Some(callback) = callback {
            slot.on_complete(callback);
        }
        slot
    }

    /// The local workers (the configured count) plus the workers of the connected nodes.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.target_workers() + self.shared.remote_workers.load(Ordering::Relaxed)
    }
}
