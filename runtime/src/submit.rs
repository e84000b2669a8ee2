//! [`Submitter`]: turning a call into a task on the queue, shared by [`Server`] and the
//! iterator of [`Server::map`](crate::Server::map).
//!
//! The arguments are walked for references ([`wasp_proto::refs`]): values put on the
//! server are attached to the task (`data`), jobs taken make it wait for them
//! (`scheduler/deps.rs`), and a job asked to be cached is looked up in the result cache
//! before it is queued (`result_cache`).
//!
//! [`Server`]: crate::Server

use crate::data::{self, Args, Data, Registry, Resolved};
use crate::error::{JobError, QueueFull};
use crate::module::Module;
use crate::options::JobOptions;
use crate::result_cache::ResultCache;
use crate::sandbox::Asked;
use crate::scheduler::JobId;
use crate::scheduler::books::Group;
use crate::scheduler::deps::{self, Pending};
use crate::scheduler::lanes::Owner;
use crate::scheduler::pool::{Room, Shared};
use crate::scheduler::slot::{Callback, Finished, JobSlot};
use crate::scheduler::task::Task;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasp_proto::refs::{self, Found, Ref};

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
    /// The values put on the server.
    pub(crate) data: Registry,
    /// Whether jobs are cached unless their options say otherwise.
    pub(crate) cache_by_default: bool,
    next_id: AtomicU64,
}

/// A call whose arguments have been walked.
struct Walked<'a> {
    module: &'a Module,
    function: &'a str,
    bytes: Vec<u8>,
    found: Vec<Found>,
    /// The values of the data references (job references: `None`).
    values: Vec<Option<Data>>,
    /// The jobs taken.
    takes: Vec<Arc<JobSlot>>,
}

impl Submitter {
    pub(crate) fn new(
        shared: Arc<Shared>,
        asked: Asked,
        data: Registry,
        cache_by_default: bool,
    ) -> Self {
        Submitter {
            shared,
            asked,
            data,
            cache_by_default,
            next_id: AtomicU64::new(0),
        }
    }

    /// Submits `call` with `options`, waiting for room in a bounded queue as `room` allows.
    ///
    /// A call that cannot run (no such job, arguments that did not encode, a reference
    /// the server cannot resolve) is answered at once, with its error, and costs no room;
    /// so is one answered from the result cache. A job that takes other jobs is held
    /// until they finish, and takes no room either.
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
        let group = options.group_name();
        let walked = match self.walk(call) {
            Ok(walked) => walked,
            Err(error) => return Ok(self.failed(group, None, error)),
        };
        let cache = options
            .cached()
            .unwrap_or(self.cache_by_default)
            .then(|| self.shared.books.results.get().cloned())
            .flatten();
        if walked.takes.is_empty() && !self.shared.wait_for_room(room) {
            return Err(QueueFull {
                max: self.shared.max_queued(),
            });
        }
        let slot = self.new_slot(group, None);
        let mut task = Task::new(
            slot.clone(),
            walked.module.clone(),
            Arc::from(walked.function),
            Args::default(),
            asked,
            Owner::LOCAL,
        );
        if !walked.takes.is_empty() {
            task.args = Args::plain(walked.bytes);
            let pending = Pending {
                task,
                found: walked.found,
                values: walked.values,
                takes: walked.takes,
                cache,
            };
            deps::hold(&self.shared, pending);
            return Ok(slot);
        }
        let resolved = walked
            .values
            .into_iter()
            .map(|value| Resolved::Data(value.expect("no job references"), None))
            .collect();
        task.args = data::build(walked.bytes, &walked.found, resolved);
        if let Some(cache) = cache
            && let Some(hit) = crate::scheduler::cached::attach(&cache, &task)
        {
            self.shared.finish(task, hit);
            return Ok(slot);
        }
        // Room was there a moment ago; another submitter may have taken it since, so this
        // one waits (briefly) rather than break the bound.
        self.shared.enqueue(task);
        Ok(slot)
    }

    /// Checks the call and finds the references in its arguments, with what they name.
    fn walk<'a>(&self, call: Call<'a>) -> Result<Walked<'a>, JobError> {
        let bytes = call.args?;
        check_function(call.module, call.function)?;
        let found =
            refs::find(&bytes).map_err(|error| JobError::BadArguments(error.to_string()))?;
        let takes = self.shared.books.deps.resolve(&found)?;
        let values = found
            .iter()
            .map(|found| match found.what {
                Ref::Data { hash, .. } => self.data.get(&hash).map(Some).ok_or_else(|| {
                    JobError::BadArguments(format!(
                        "the value {} was not put on this server, or no DataRef holds it \
                         any more (keep the DataRef until the job is submitted)",
                        blake3::Hash::from_bytes(hash).to_hex()
                    ))
                }),
                Ref::Job { .. } => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        Ok(Walked {
            module: call.module,
            function: call.function,
            bytes,
            found,
            values,
            takes,
        })
    }

    /// Submits a node's client's job, its arguments resolved by the node and its limits
    /// decided, for `owner`, in `group` (the client's); `callback` gets its outcome.
    pub(crate) fn submit_owned(
        &self,
        module: &Module,
        function: &str,
        args: Result<Args, JobError>,
        (asked, owner, group): (Asked, Owner, &str),
        callback: Callback,
    ) -> Arc<JobSlot> {
        let args = args.and_then(|args| check_function(module, function).map(|()| args));
        let args = match args {
            Ok(args) => args,
            Err(error) => return self.failed(group, Some(callback), error),
        };
        let slot = self.new_slot(group, Some(callback));
        let task = Task::new(
            slot.clone(),
            module.clone(),
            Arc::from(function),
            args,
            asked,
            owner,
        );
        self.shared.enqueue(task);
        slot
    }

    /// A job answered at once with `error`.
    fn failed(&self, group: &str, callback: Option<Callback>, error: JobError) -> Arc<JobSlot> {
        let slot = self.new_slot(group, callback);
        slot.finish(Finished::failed(error), None);
        slot
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

    /// The server's result cache, if it has one.
    pub(crate) fn results(&self) -> Option<&Arc<ResultCache>> {
        self.shared.books.results.get()
    }
}

/// Whether `module` has job `function`.
fn check_function(module: &Module, function: &str) -> Result<(), JobError> {
    if module.has_job(function) {
        Ok(())
    } else {
        Err(JobError::UnknownFunction {
            function: function.to_string(),
            available: module.jobs().to_vec(),
        })
    }
}
