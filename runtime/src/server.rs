//! [`Server`]: submit jobs, wait for them, cancel them, resize the pool, read the statistics.

use crate::cluster::{Cluster, ClusterConfig};
use crate::data::{DataError, DataRef};
use crate::error::{ClusterError, ConfigError, JobError, QueueFull};
use crate::job::Job;
use crate::map::MapResults;
use crate::metrics::FailedJob;
use crate::module::Module;
use crate::monitor::view::ServerView;
use crate::monitor::{Monitor, MonitorConfig, Sources};
use crate::options::JobOptions;
use crate::sandbox::{Asked, MAX_CONCURRENT_INSTANCES};
use crate::scheduler::groups::{GroupProgress, GroupSummary};
use crate::scheduler::pool::{self, Room, Shared};
use crate::stats::Stats;
use crate::submit::{Call, Submitter};
use crate::waiting::deadline;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A pool of sandboxed workers that run jobs: calls of functions exported by wasm modules.
///
/// This is Parallel Python's `Server` for WebAssembly. Dropping it cancels the jobs still
/// queued, interrupts the running ones, closes its connections to nodes (which stop its
/// jobs at once), and joins the workers; call [`wait_all`](Self::wait_all) first to let
/// them finish.
pub struct Server {
    submitter: Submitter,
    cluster: Option<Cluster>,
    /// The HTTP monitor, if asked for ([`ServerBuilder::monitor`](crate::ServerBuilder::monitor)).
    monitor: Option<Monitor>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("workers", &self.workers())
            .field("limits", &self.submitter.asked)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with the default settings (one worker per available CPU).
    ///
    /// # Errors
    /// See [`ServerBuilder::build`](crate::ServerBuilder::build).
    pub fn new() -> Result<Self, ConfigError> {
        Self::builder().build()
    }

    /// Starts the cluster (if any) and the workers of a built server.
    pub(crate) fn start(
        submitter: Submitter,
        workers: usize,
        cluster: Option<ClusterConfig>,
        monitor: Option<&MonitorConfig>,
    ) -> Result<Self, ConfigError> {
        let shared = submitter.shared.clone();
        // The cluster first: if it cannot start, no worker thread is left behind.
        let cluster = cluster
            .map(|config| Cluster::start(&shared, config))
            .transpose()?;
        let view = ServerView {
            shared: shared.clone(),
            nodes: cluster.as_ref().map(|cluster| cluster.nodes.clone()),
        };
        let monitor = monitor
            .map(|config| Monitor::start(config, Sources { view, node: None }))
            .transpose()?;
        pool::set_workers(&shared, workers)?;
        Ok(Server {
            submitter,
            cluster,
            monitor,
        })
    }

    /// What the monitor reads of this server.
    pub(crate) fn view(&self) -> ServerView {
        ServerView {
            shared: self.shared().clone(),
            nodes: self.cluster.as_ref().map(|cluster| cluster.nodes.clone()),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.submitter.shared
    }

    /// Submits a call of job `function` of `module` with `args` (a tuple: `(n,)` for one
    /// argument, `(a, b)` for two). Returns at once, unless the queue is at its
    /// [`max_queued`](crate::ServerBuilder::max_queued) bound: then it waits for room. The job runs
    /// on the next free worker or node.
    ///
    /// Errors (an unknown function, arguments that cannot be encoded, anything the job does
    /// wrong) are reported by the returned [`Job`], never by a panic.
    pub fn submit<T, A>(&self, module: &Module, function: &str, args: A) -> Job<T>
    where
        T: DeserializeOwned,
        A: Serialize,
    {
        self.submit_with(module, function, args, &JobOptions::default())
    }

    /// Like [`submit`](Self::submit), with per-job [`JobOptions`].
    pub fn submit_with<T, A>(
        &self,
        module: &Module,
        function: &str,
        args: A,
        options: &JobOptions,
    ) -> Job<T>
    where
        T: DeserializeOwned,
        A: Serialize,
    {
        let call = Call {
            module,
            function,
            args: encode(&args),
        };
        self.submit_call(call, options, Room::Wait)
            .expect("a submission that may wait always finds room")
    }

    /// Puts `value` on the server once, for any number of jobs to take as an argument: the
    /// [`DataRef`] stands for it (alone, or inside a tuple, vector, map or struct), and each
    /// job receives the value itself, as if it had been passed directly. The value is
    /// encoded now, once; each node that runs a job taking it receives it once.
    ///
    /// # Errors
    /// [`DataError::TooLarge`] past [`ServerBuilder::max_data_value`];
    /// [`DataError::Encode`] if the value does not encode.
    pub fn put<T: Serialize + ?Sized>(&self, value: &T) -> Result<DataRef, DataError> {
        let bytes =
            rmp_serde::to_vec_named(value).map_err(|err| DataError::Encode(err.to_string()))?;
        self.put_raw(bytes)
    }

    /// Like [`put`](Self::put), for a value already encoded: `msgpack` must be exactly one
    /// MessagePack value, without references in it (as the Python binding, which encodes
    /// values itself, puts them).
    ///
    /// # Errors
    /// [`DataError::TooLarge`]; [`DataError::NotAValue`] if the bytes are not one value, or
    /// hold a reference.
    pub fn put_raw(&self, msgpack: Vec<u8>) -> Result<DataRef, DataError> {
        self.submitter.data.put(bytes::Bytes::from(msgpack))
    }

    /// Puts the bytes of the file at `path` as one value (a MessagePack `bin`): a Rust job
    /// takes it as a `Vec<u8>` or `serde_bytes::ByteBuf`.
    ///
    /// # Errors
    /// [`DataError::Read`] if the file cannot be read; [`DataError::TooLarge`].
    pub fn put_file(&self, path: impl AsRef<std::path::Path>) -> Result<DataRef, DataError> {
        let path = path.as_ref();
        let read = |error| DataError::Read {
            path: path.to_path_buf(),
            error,
        };
        let mut file = std::fs::File::open(path).map_err(read)?;
        let len = file.metadata().map_err(read)?.len();
        let limit = self.submitter.data.max_value();
        if len > limit {
            return Err(DataError::TooLarge { size: len, limit });
        }
        let len = u32::try_from(len).map_err(|_| DataError::TooLarge { size: len, limit })?;
        // A `bin 32` header, then the bytes read straight after it: no second copy.
        let mut bytes = Vec::with_capacity(5 + len as usize);
        bytes.push(0xc6);
        bytes.extend_from_slice(&len.to_be_bytes());
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(read)?;
        if bytes.len() != 5 + len as usize {
            let changed = std::io::Error::other("the file changed while it was read");
            return Err(read(changed));
        }
        self.put_raw(bytes)
    }

    /// Submits a job whose arguments are already a MessagePack array (as the CLI builds
    /// them from JSON). They may hold references, as MessagePack extension values: a value
    /// put on this server ([`DataRef::to_msgpack`]) and another job of this server
    /// ([`Job::to_msgpack`]), whose result the job then waits for and takes in its place.
    pub fn submit_raw<T: DeserializeOwned>(
        &self,
        module: &Module,
        function: &str,
        args: Vec<u8>,
        options: &JobOptions,
    ) -> Job<T> {
        let call = Call {
            module,
            function,
            args: Ok(args),
        };
        self.submit_call(call, options, Room::Wait)
            .expect("a submission that may wait always finds room")
    }

    /// Like [`submit_with`](Self::submit_with), but fails at once instead of waiting if the
    /// queue is at its [`max_queued`](crate::ServerBuilder::max_queued) bound.
    ///
    /// # Errors
    /// [`QueueFull`]: nothing was submitted; try again once jobs have been taken (see
    /// [`wait_for_room`](Self::wait_for_room)).
    pub fn try_submit_with<T, A>(
        &self,
        module: &Module,
        function: &str,
        args: A,
        options: &JobOptions,
    ) -> Result<Job<T>, QueueFull>
    where
        T: DeserializeOwned,
        A: Serialize,
    {
        let call = Call {
            module,
            function,
            args: encode(&args),
        };
        self.submit_call(call, options, Room::Refuse)
    }

    /// Like [`submit_raw`](Self::submit_raw), but fails at once instead of waiting if the
    /// queue is full.
    ///
    /// # Errors
    /// [`QueueFull`]: nothing was submitted.
    pub fn try_submit_raw<T: DeserializeOwned>(
        &self,
        module: &Module,
        function: &str,
        args: Vec<u8>,
        options: &JobOptions,
    ) -> Result<Job<T>, QueueFull> {
        let call = Call {
            module,
            function,
            args: Ok(args),
        };
        self.submit_call(call, options, Room::Refuse)
    }

    fn submit_call<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        options: &JobOptions,
        room: Room,
    ) -> Result<Job<T>, QueueFull> {
        self.submitter
            .submit(call, options, room)
            .map(Job::from_slot)
    }

    /// Waits until the queue has room for a job (at once if it is not bounded), or until
    /// `timeout`; returns whether it has. For a producer that must stay responsive (to
    /// Ctrl-C, say) while the queue is full.
    pub fn wait_for_room(&self, timeout: Duration) -> bool {
        let room = deadline(timeout).map_or(Room::Wait, Room::Until);
        self.shared().wait_for_room(room)
    }

    /// Runs `function` once per item of `inputs` (each item a tuple of arguments) and
    /// returns the results **in input order**, as an iterator that yields each result as soon
    /// as it and all before it are done. Jobs are submitted ahead of consumption, a bounded
    /// window at a time, so that every worker stays busy without queueing all of `inputs`.
    /// Dropping the iterator cancels the jobs it submitted that have not finished.
    pub fn map<T, A, I>(
        &self,
        module: &Module,
        function: &str,
        inputs: I,
    ) -> MapResults<'_, T, I::IntoIter>
    where
        T: DeserializeOwned,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        MapResults::new(
            &self.submitter,
            module.clone(),
            function.to_string(),
            inputs.into_iter(),
        )
    }

    /// Cancels every job still waiting in the queue (of every group); running jobs go on.
    /// Returns how many were cancelled.
    pub fn cancel_queued(&self) -> usize {
        self.shared().cancel_pending("cancelled while still queued")
    }

    /// Cancels every job of `group` that has not finished: each completes now with
    /// [`JobError::Cancelled`], queued ones never run, running ones are stopped (on nodes
    /// too). Returns how many were cancelled.
    pub fn cancel_group(&self, group: &str) -> usize {
        self.shared().cancel_group(group)
    }

    /// Blocks until every job submitted in `group` so far has finished.
    pub fn wait_group(&self, group: &str) -> GroupSummary {
        self.shared().books.groups.wait(Some(group), None)
    }

    /// Like [`wait_group`](Self::wait_group) but gives up at `timeout`; the summary then
    /// shows jobs still pending.
    pub fn wait_group_timeout(&self, group: &str, timeout: Duration) -> GroupSummary {
        self.shared()
            .books
            .groups
            .wait(Some(group), deadline(timeout))
    }

    /// Blocks until every job submitted so far has finished.
    pub fn wait_all(&self) -> GroupSummary {
        self.shared().books.groups.wait(None, None)
    }

    /// Like [`wait_all`](Self::wait_all) but gives up at `timeout`; the summary then shows
    /// jobs still pending.
    pub fn wait_all_timeout(&self, timeout: Duration) -> GroupSummary {
        self.shared().books.groups.wait(None, deadline(timeout))
    }

    /// Says that `group` will have `total` jobs in all, before they are all submitted (a
    /// program that submits through a bounded window, as `wasp map` does): its
    /// [`progress`](Self::progress) and the monitor's ETA then count towards `total` from
    /// the start, not towards the jobs submitted so far. Waiting for the group still waits
    /// for the jobs submitted.
    pub fn expect_jobs(&self, group: &str, total: u64) {
        self.shared().books.groups.expect(group, total);
    }

    /// What `group` has done so far, without waiting. The counters of a group are kept
    /// while it has jobs pending, and for the most recent
    /// [`MAX_FINISHED_GROUPS`](crate::MAX_FINISHED_GROUPS) groups after that.
    pub fn group_summary(&self, group: &str) -> GroupSummary {
        self.shared().books.groups.summary(Some(group))
    }

    /// The configured number of workers.
    pub fn workers(&self) -> usize {
        self.shared().target_workers()
    }

    /// How many jobs can run at once right now: the local workers plus the workers of the
    /// connected nodes. What a caller should keep in flight to keep everyone busy.
    pub fn capacity(&self) -> usize {
        self.submitter.capacity()
    }

    /// Grows or shrinks the pool to `workers` threads. New workers start at once; surplus
    /// workers finish their current job and exit. No queued job is lost.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] above [`MAX_CONCURRENT_INSTANCES`](crate::MAX_CONCURRENT_INSTANCES)
    /// (or fewer, where the address space cannot hold that many sandboxes);
    /// [`ConfigError::Thread`] if a thread cannot be started.
    pub fn set_workers(&self, workers: usize) -> Result<(), ConfigError> {
        check_workers(workers, self.shared().sandbox.slots())?;
        pool::set_workers(self.shared(), workers)
    }

    /// Calls `observer` when this server starts and ends preparing (compiling or loading) a
    /// module; set once.
    pub(crate) fn observe_preparations(&self, observer: crate::cache::Observer) {
        self.shared().modules.observe(observer);
    }

    /// The default limits of this server's jobs.
    pub fn limits(&self) -> crate::Limits {
        self.submitter.asked.resolve()
    }

    /// A snapshot of the server's statistics. A job is counted an instant after its
    /// waiters are released: call [`wait_all`](Self::wait_all) (or
    /// [`wait_group`](Self::wait_group)) first for totals that include every job waited for.
    pub fn stats(&self) -> Stats {
        self.view().stats()
    }

    /// The progress of `group` (done, failed, running, queued, rate, ETA), or `None` if
    /// it has no counters (never used, or forgotten: see [`MAX_FINISHED_GROUPS`]).
    ///
    /// [`MAX_FINISHED_GROUPS`]: crate::MAX_FINISHED_GROUPS
    pub fn progress(&self, group: &str) -> Option<GroupProgress> {
        self.view().progress(group)
    }

    /// The progress of up to `limit` groups: those with jobs pending (the most recent
    /// first), then those that finished most recently.
    pub fn groups_progress(&self, limit: usize) -> Vec<GroupProgress> {
        self.view().groups(limit)
    }

    /// The most recent failed jobs (at most 20; cancelled jobs are not listed), newest
    /// first, with their error and the end of their output.
    pub fn recent_failures(&self) -> Vec<FailedJob> {
        self.view().failures()
    }

    /// The address the monitor listens on, if the server has one
    /// ([`ServerBuilder::monitor`](crate::ServerBuilder::monitor); with the port chosen, if 0 was asked).
    pub fn monitor_address(&self) -> Option<SocketAddr> {
        self.monitor.as_ref().map(Monitor::address)
    }

    /// Blocks until at least `count` of the server's nodes are connected, or `timeout` has
    /// passed. Jobs do not need this (they wait in the queue for a node or a worker); it
    /// tells a program early that its nodes are unreachable or refuse it, and why.
    ///
    /// # Errors
    /// [`ClusterError`], with each missing node's last error (e.g. a wrong secret).
    pub fn wait_for_nodes(&self, count: usize, timeout: Duration) -> Result<usize, ClusterError> {
        match &self.cluster {
            Some(cluster) => cluster.nodes.wait_connected(count, timeout),
            None if count == 0 => Ok(0),
            None => Err(ClusterError {
                wanted: count,
                connected: 0,
                peers: Vec::new(),
            }),
        }
    }

    /// Waits until the results of the jobs finished so far that the result cache keeps are
    /// written ([`JobOptions::cache`]): entries are written by a thread of their own, and
    /// the server does this when it is dropped.
    pub fn flush_results(&self) {
        if let Some(results) = self.submitter.results() {
            results.flush();
        }
    }

    /// Prints the statistics table to stdout, as pp's `print_stats` does.
    pub fn print_stats(&self) {
        println!("{}", self.stats());
    }

    /// Drops the prepared code of module `hash` from memory (a node evicting a module).
    pub(crate) fn forget_module(&self, hash: &crate::module::ModuleHash) {
        self.shared().modules.forget(hash);
    }

    /// Submits a node's client's job, its arguments resolved and its limits decided; its
    /// outcome goes, raw, to `callback`. Returns the job's slot, to cancel it.
    pub(crate) fn submit_owned(
        &self,
        (module, function): (&Module, &str),
        args: Result<crate::data::Args, JobError>,
        owned: (Asked, crate::scheduler::lanes::Owner, &str),
        callback: crate::scheduler::slot::Callback,
    ) -> Arc<crate::scheduler::slot::JobSlot> {
        self.submitter
            .submit_owned(module, function, args, owned, callback)
    }

    /// Names `owner` (a node's client) in the failure log and the log of failed jobs, until
    /// [`forget_owner`](Self::forget_owner).
    pub(crate) fn name_owner(&self, owner: crate::scheduler::lanes::Owner, name: Arc<str>) {
        self.shared().books.name_owner(owner, name);
    }

    /// Forgets `owner` (a node's client that left, whose jobs have all been answered): its
    /// name, and the instances kept for its jobs; returns how many instances there were.
    pub(crate) fn forget_owner(&self, owner: crate::scheduler::lanes::Owner) -> usize {
        self.shared().books.forget_owner(owner);
        self.shared().sandbox.forget_owner(owner.0)
    }

    /// Answers every queued job as cancelled (a draining node hands them back); running
    /// jobs go on.
    pub(crate) fn cancel_pending(&self, why: &str) {
        let _ = self.shared().cancel_pending(why);
    }

    /// Stops the pool now, as dropping the server does: queued jobs complete as
    /// cancelled, running ones are interrupted, and later submissions complete as
    /// cancelled. For a server shared by several threads (or a binding), whoever else holds
    /// it sees its jobs end; the connections to nodes close when the last handle drops.
    pub fn shutdown(&self) {
        pool::shutdown(self.shared());
    }

    /// Prepares `module` for this server's local workers now (compiles it, or loads its
    /// compiled code from the disk cache), so that its first job does not wait for that:
    /// blocks for as long as it takes (seconds for a large component).
    ///
    /// # Errors
    /// [`JobError::Module`] if the module cannot be compiled.
    pub fn prepare(&self, module: &Module) -> Result<(), JobError> {
        let shared = self.shared();
        shared
            .modules
            .get(&shared.sandbox, module, false)
            .map(|_| ())
    }

    /// The bound of the queue ([`ServerBuilder::max_queued`]), if it has one.
    pub fn max_queued(&self) -> Option<usize> {
        let bound = self.shared().max_queued;
        (bound != usize::MAX).then_some(bound)
    }
}

fn encode<A: Serialize>(args: &A) -> Result<Vec<u8>, JobError> {
    rmp_serde::to_vec_named(args).map_err(|err| JobError::BadArguments(err.to_string()))
}

impl Drop for Server {
    fn drop(&mut self) {
        self.monitor = None;
        // Closing the queue first makes the sessions' hand-back cancel what they hold.
        pool::shutdown(self.shared());
        if let Some(cluster) = &mut self.cluster {
            cluster.shutdown();
        }
        // Results still on their way to the disk are kept: the next run finds them.
        self.flush_results();
    }
}

/// Refuses more workers than `slots`, the jobs the sandbox can run at once.
pub(crate) fn check_workers(workers: usize, slots: u32) -> Result<(), ConfigError> {
    if workers > slots as usize {
        let why = if slots < MAX_CONCURRENT_INSTANCES {
            format!(
                "{workers} is more than the {slots} sandbox slots this process's address space holds"
            )
        } else {
            format!("{workers} is more than the maximum of {slots}")
        };
        return Err(ConfigError::Invalid {
            setting: "workers",
            why,
        });
    }
    Ok(())
}
