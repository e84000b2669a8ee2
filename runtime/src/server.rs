//! [`Server`]: submit jobs, wait for them, resize the pool, read the statistics.

use crate::cache::disk::{DEFAULT_MAX_CACHE_BYTES, DiskCache};
use crate::error::{ConfigError, JobError};
use crate::job::{Finished, Job, JobId, JobSlot};
use crate::map::MapResults;
use crate::module::Module;
use crate::sandbox::{Cancel, Limits, MAX_CONCURRENT_INSTANCES, Sandbox};
use crate::scheduler::groups::{DEFAULT_GROUP, GroupSummary};
use crate::scheduler::pool::{self, Shared, failed_outcome};
use crate::scheduler::queue::Task;
use crate::stats::Stats;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The number of workers a server starts with by default: the parallelism available to this
/// process, which honours CPU affinity and cgroup quotas.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Where a server keeps compiled code across processes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CacheDir {
    /// The user's cache directory (`~/.cache/wasp/modules` on Linux).
    Default,
    /// This directory.
    At(PathBuf),
    /// No disk cache: every process compiles every module.
    Disabled,
}

/// Configures and builds a [`Server`]. Every setting has a default; see each method.
#[derive(Debug, Clone)]
#[must_use]
pub struct ServerBuilder {
    workers: usize,
    limits: Limits,
    cache_dir: CacheDir,
    cache_max_bytes: u64,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            workers: default_workers(),
            limits: Limits::default(),
            cache_dir: CacheDir::Default,
            cache_max_bytes: DEFAULT_MAX_CACHE_BYTES,
        }
    }
}

impl ServerBuilder {
    /// The number of local workers (threads running jobs). Default: [`default_workers`].
    /// `0` is allowed: jobs then wait until workers are added with
    /// [`Server::set_workers`].
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// The limits applied to every job unless a job's [`JobOptions`] override them.
    /// Default: [`Limits::default`] (no timeout, 256 MiB of memory, 1 MiB of output).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The default wall-clock timeout of a job. Default: none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = Some(timeout);
        self
    }

    /// The default memory cap of a job, in bytes. Default: 256 MiB.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.limits.max_memory = bytes;
        self
    }

    /// Keeps compiled code in `dir` (created if missing, private to the user).
    /// Default: the user's cache directory, `wasp/modules` inside it.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = CacheDir::At(dir.into());
        self
    }

    /// Disables the disk cache: modules are compiled once per process.
    pub fn no_disk_cache(mut self) -> Self {
        self.cache_dir = CacheDir::Disabled;
        self
    }

    /// Bounds the disk cache; the least recently used files are evicted past it.
    /// Default: 1 GiB.
    pub fn cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// Builds the engine and starts the workers.
    ///
    /// # Errors
    /// [`ConfigError`] if a setting is out of range, the engine cannot be created, or a
    /// worker thread cannot be started.
    pub fn build(self) -> Result<Server, ConfigError> {
        check_workers(self.workers)?;
        check_limits(&self.limits)?;
        let root = match self.cache_dir {
            CacheDir::Default => DiskCache::default_root(),
            CacheDir::At(dir) => Some(dir),
            CacheDir::Disabled => None,
        };
        let disk = root.map(|root| DiskCache::new(root, self.cache_max_bytes));
        let shared = Shared::new(Sandbox::new(disk)?);
        pool::set_workers(&shared, self.workers)?;
        Ok(Server {
            shared,
            limits: self.limits,
            next_id: AtomicU64::new(0),
        })
    }
}

fn check_workers(workers: usize) -> Result<(), ConfigError> {
    if workers > MAX_CONCURRENT_INSTANCES as usize {
        return Err(ConfigError::Invalid {
            setting: "workers",
            why: format!("{workers} is more than the maximum of {MAX_CONCURRENT_INSTANCES}"),
        });
    }
    Ok(())
}

fn check_limits(limits: &Limits) -> Result<(), ConfigError> {
    if limits.max_memory == 0 || limits.max_memory > 4 << 30 {
        return Err(ConfigError::Invalid {
            setting: "max_memory",
            why: "must be between 1 byte and 4 GiB (the wasm32 address space)".into(),
        });
    }
    if limits.timeout == Some(Duration::ZERO) {
        return Err(ConfigError::Invalid {
            setting: "timeout",
            why: "must be more than zero".into(),
        });
    }
    Ok(())
}

/// Per-job settings for [`Server::submit_with`]; anything unset uses the server's defaults.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct JobOptions {
    group: Option<String>,
    timeout: Option<Duration>,
    max_memory: Option<u64>,
    max_output: Option<u64>,
}

impl JobOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the job in `group`, for [`Server::wait_group`]. Default: `"default"`.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The job's wall-clock timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The job's memory cap, in bytes.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// The cap on each of the job's captured stdout and stderr, in bytes.
    pub fn max_output(mut self, bytes: u64) -> Self {
        self.max_output = Some(bytes);
        self
    }

    fn limits(&self, defaults: &Limits) -> Limits {
        Limits {
            timeout: self.timeout.or(defaults.timeout),
            max_memory: self.max_memory.unwrap_or(defaults.max_memory),
            max_output: self.max_output.unwrap_or(defaults.max_output),
            max_table_elements: defaults.max_table_elements,
        }
    }
}

/// A pool of sandboxed workers that run jobs: calls of functions exported by wasm modules.
///
/// This is Parallel Python's `Server` for WebAssembly. Dropping it cancels the jobs still
/// queued, interrupts the running ones, and joins the workers; call
/// [`wait_all`](Self::wait_all) first to let them finish.
pub struct Server {
    shared: Arc<Shared>,
    limits: Limits,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("workers", &self.workers())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with the default settings (one worker per available CPU).
    ///
    /// # Errors
    /// See [`ServerBuilder::build`].
    pub fn new() -> Result<Self, ConfigError> {
        Self::builder().build()
    }

    /// A builder to configure a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Submits a call of job `function` of `module` with `args` (a tuple: `(n,)` for one
    /// argument, `(a, b)` for two). Returns at once; the job runs on the next free worker.
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
        let args =
            rmp_serde::to_vec_named(&args).map_err(|err| JobError::BadArguments(err.to_string()));
        self.submit_encoded(module, function, args, options)
    }

    /// Submits a job whose arguments are already a MessagePack array (as the CLI builds
    /// them from JSON).
    pub fn submit_raw<T: DeserializeOwned>(
        &self,
        module: &Module,
        function: &str,
        args: Vec<u8>,
        options: &JobOptions,
    ) -> Job<T> {
        self.submit_encoded(module, function, Ok(args), options)
    }

    fn submit_encoded<T: DeserializeOwned>(
        &self,
        module: &Module,
        function: &str,
        args: Result<Vec<u8>, JobError>,
        options: &JobOptions,
    ) -> Job<T> {
        let id = JobId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let slot = JobSlot::new(id);
        let group = options
            .group
            .clone()
            .unwrap_or_else(|| DEFAULT_GROUP.to_string());
        self.shared.groups.submitted(&group);
        let args = if module.has_job(function) {
            args
        } else {
            Err(JobError::UnknownFunction {
                function: function.to_string(),
                available: module.jobs().to_vec(),
            })
        };
        match args {
            Ok(args) => self.shared.enqueue(Box::new(Task {
                id,
                module: module.clone(),
                function: function.to_string(),
                args,
                limits: options.limits(&self.limits),
                cancel: Cancel::default(),
                slot: slot.clone(),
                group,
            })),
            Err(err) => {
                slot.complete(Finished {
                    outcome: failed_outcome(err),
                    worker: String::new(),
                });
                self.shared.groups.finished(&group, true);
            }
        }
        Job::from_slot(slot)
    }

    /// Runs `function` once per item of `inputs` (each item a tuple of arguments) and
    /// returns the results **in input order**, as an iterator that yields each result as soon
    /// as it and all before it are done. Jobs are submitted ahead of consumption, a bounded
    /// window at a time, so that every worker stays busy without queueing all of `inputs`.
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
            self,
            module.clone(),
            function.to_string(),
            inputs.into_iter(),
        )
    }

    /// Blocks until every job submitted in `group` so far has finished.
    pub fn wait_group(&self, group: &str) -> GroupSummary {
        self.shared.groups.wait(Some(group), None)
    }

    /// Like [`wait_group`](Self::wait_group) but gives up at `timeout`; the summary then
    /// shows jobs still pending.
    pub fn wait_group_timeout(&self, group: &str, timeout: Duration) -> GroupSummary {
        self.shared
            .groups
            .wait(Some(group), Some(Instant::now() + timeout))
    }

    /// Blocks until every job submitted so far has finished.
    pub fn wait_all(&self) -> GroupSummary {
        self.shared.groups.wait(None, None)
    }

    /// What `group` has done so far, without waiting.
    pub fn group_summary(&self, group: &str) -> GroupSummary {
        self.shared.groups.summary(Some(group))
    }

    /// The configured number of workers.
    pub fn workers(&self) -> usize {
        self.shared.queue().target()
    }

    /// Grows or shrinks the pool to `workers` threads. New workers start at once; surplus
    /// workers finish their current job and exit. No queued job is lost.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] above [`MAX_CONCURRENT_INSTANCES`]; [`ConfigError::Thread`]
    /// if a thread cannot be started.
    pub fn set_workers(&self, workers: usize) -> Result<(), ConfigError> {
        check_workers(workers)?;
        pool::set_workers(&self.shared, workers)
    }

    /// The default limits of this server's jobs.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A snapshot of the server's statistics.
    pub fn stats(&self) -> Stats {
        let (target_workers, queued, running) = {
            let queue = self.shared.queue();
            (queue.target(), queue.pending(), queue.running())
        };
        let totals = self.shared.groups.summary(None);
        Stats {
            elapsed: self.shared.started.elapsed(),
            workers: self.shared.worker_stats(),
            target_workers,
            queued,
            running,
            submitted: totals.submitted,
            finished: totals.finished,
            failed: totals.failed,
            cache: self.shared.modules.stats(),
        }
    }

    /// Prints the statistics table to stdout, as pp's `print_stats` does.
    pub fn print_stats(&self) {
        println!("{}", self.stats());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        pool::shutdown(&self.shared);
    }
}
