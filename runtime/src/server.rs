//! [`Server`]: submit jobs, wait for them, resize the pool, read the statistics.

use crate::cache::disk::{DEFAULT_MAX_CACHE_BYTES, DiskCache};
use crate::cluster::{self, Cluster, ClusterConfig, DEFAULT_MAX_RETRIES};
use crate::error::{ClusterError, ConfigError, JobError};
use crate::job::{Callback, Finished, Job, JobId, JobSlot};
use crate::map::MapResults;
use crate::module::Module;
use crate::net::TransportSettings;
use crate::sandbox::{Cancel, Limits, MAX_CONCURRENT_INSTANCES, RawOutcome, Sandbox};
use crate::scheduler::groups::{DEFAULT_GROUP, GroupSummary};
use crate::scheduler::lanes::Owner;
use crate::scheduler::pool::{self, Shared};
use crate::scheduler::queue::Task;
use crate::secret::ClusterSecret;
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
    peers: Vec<String>,
    resolver: cluster::Resolver,
    resolve_interval: Duration,
    discovery: Option<std::net::SocketAddr>,
    discovery_interface: std::net::Ipv4Addr,
    secret: Option<ClusterSecret>,
    insecure: bool,
    transport: TransportSettings,
    max_retries: u32,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            workers: default_workers(),
            limits: Limits::default(),
            cache_dir: CacheDir::Default,
            cache_max_bytes: DEFAULT_MAX_CACHE_BYTES,
            peers: Vec::new(),
            resolver: cluster::Resolver::system(),
            resolve_interval: cluster::DEFAULT_RESOLVE_INTERVAL,
            discovery: None,
            discovery_interface: std::net::Ipv4Addr::UNSPECIFIED,
            secret: None,
            insecure: false,
            transport: TransportSettings::default(),
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

impl ServerBuilder {
    /// The number of local workers (threads running jobs). Default: [`default_workers`].
    /// `0` is allowed: jobs then run on the [`peers`](Self::peers) only, or wait until
    /// workers are added with [`Server::set_workers`].
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

    /// The default fuel budget of a job ([`Limits::fuel`]). Default: none.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.limits.fuel = Some(fuel);
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

    /// Remote nodes (`wasp node`) to spread jobs over, as `host:port`. Jobs go to local
    /// workers and nodes alike, from one queue. Nodes are connected in the background, and
    /// reconnected with backoff whenever they go away. Requires a [`secret`](Self::secret).
    ///
    /// A host given by name stands for every address it resolves to, each a node (as a
    /// Kubernetes headless Service's name stands for its pods), and is resolved again every
    /// [`resolve_interval`](Self::resolve_interval): nodes added behind the name get work,
    /// nodes removed are let go once they stop answering.
    ///
    /// `"*"` turns on discovery (as pp's `ppservers=("*",)`): every node heard announcing
    /// itself on [`DEFAULT_DISCOVERY_ADDRESS`](crate::discovery::DEFAULT_DISCOVERY_ADDRESS)
    /// with this cluster's secret is used too, including nodes that appear later.
    pub fn peers<I>(mut self, peers: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        for peer in peers {
            let peer = peer.into();
            if peer == cluster::DISCOVER {
                let default = crate::discovery::DEFAULT_DISCOVERY_ADDRESS.into();
                self.discovery.get_or_insert(default);
            } else {
                self.peers.push(peer);
            }
        }
        self
    }

    /// Turns on discovery, listening for announcements sent to `address` (a multicast
    /// group, a broadcast address's port, or this host's address where nodes are told to
    /// announce themselves).
    pub fn discovery(mut self, address: std::net::SocketAddr) -> Self {
        self.discovery = Some(address);
        self
    }

    /// Listens for multicast announcements on the interface whose address is `interface`
    /// (e.g. the LAN's, on a host with several; `127.0.0.1` for nodes on this host only).
    /// Default: the interface the routing table picks for the group.
    pub fn discovery_interface(mut self, interface: std::net::Ipv4Addr) -> Self {
        self.discovery_interface = interface;
        self
    }

    /// How often peers given by name are resolved again. Default: 5 s.
    pub fn resolve_interval(mut self, interval: Duration) -> Self {
        self.resolve_interval = interval;
        self
    }

    /// Replaces the system's resolver for peers given by name: `resolve` turns a peer's
    /// `host:port` into the addresses of its nodes, and may block (it runs off the network
    /// thread). For a service registry other than DNS, or a fixed answer in tests.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// let builder = wasp::Server::builder()
    ///     .peers(["workers:7878"])
    ///     .resolver(|_name: &str| -> std::io::Result<Vec<SocketAddr>> {
    ///         Ok(vec!["10.0.0.5:7878".parse().unwrap(), "10.0.0.6:7878".parse().unwrap()])
    ///     });
    /// # drop(builder);
    /// ```
    pub fn resolver<F>(mut self, resolve: F) -> Self
    where
        F: Fn(&str) -> std::io::Result<Vec<std::net::SocketAddr>> + Send + Sync + 'static,
    {
        self.resolver = cluster::Resolver::new(resolve);
        self
    }

    /// The cluster secret the nodes were started with: both sides prove they know it,
    /// bound to the TLS session, before any job is sent.
    pub fn secret(mut self, secret: ClusterSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Connects to nodes without a secret: only nodes started with `--insecure` (which
    /// listen on loopback only) accept that.
    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// How long a node may stay silent before it is declared lost and its jobs run
    /// elsewhere; heartbeats are sent four times as often. Default: 5 s.
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.transport.idle_timeout = timeout;
        self.transport.heartbeat = timeout / 4;
        self
    }

    /// How many times a job whose node was lost is put back in the queue before it fails
    /// with [`JobError::NodeLost`]. Errors of the job itself are never retried. Default: 3.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Builds the engine and starts the workers.
    ///
    /// # Errors
    /// [`ConfigError`] if a setting is out of range, the engine cannot be created, or a
    /// worker thread cannot be started.
    pub fn build(self) -> Result<Server, ConfigError> {
        check_workers(self.workers, MAX_CONCURRENT_INSTANCES)?;
        check_limits(&self.limits)?;
        let cluster = self.cluster_config()?;
        let root = match self.cache_dir {
            CacheDir::Default => DiskCache::default_root(),
            CacheDir::At(dir) => Some(dir),
            CacheDir::Disabled => None,
        };
        let disk = root.map(|root| DiskCache::new(root, self.cache_max_bytes));
        let sandbox = Sandbox::new(disk)?;
        // Where the address space is small, the pool may hold fewer instances.
        check_workers(self.workers, sandbox.slots())?;
        let shared = Shared::new(sandbox);
        // The cluster first: if it cannot start, no worker thread is left behind.
        let cluster = cluster
            .map(|config| Cluster::start(&shared, config))
            .transpose()?;
        pool::set_workers(&shared, self.workers)?;
        Ok(Server {
            shared,
            cluster,
            limits: self.limits,
            next_id: AtomicU64::new(0),
        })
    }

    fn cluster_config(&self) -> Result<Option<ClusterConfig>, ConfigError> {
        if self.peers.is_empty() && self.discovery.is_none() {
            return Ok(None);
        }
        if self.discovery.is_some() && self.secret.is_none() {
            return Err(ConfigError::Invalid {
                setting: "secret",
                why: "discovery needs the cluster secret, to check the nodes' announcements".into(),
            });
        }
        for peer in &self.peers {
            cluster::check_peer(peer)?;
        }
        if self.secret.is_none() && !self.insecure {
            return Err(ConfigError::Invalid {
                setting: "secret",
                why: "peers need the cluster secret (ServerBuilder::secret), or \
                      ServerBuilder::insecure for nodes started with --insecure"
                    .into(),
            });
        }
        if self.resolve_interval < Duration::from_millis(10) {
            return Err(ConfigError::Invalid {
                setting: "resolve_interval",
                why: "must be at least 10 ms".into(),
            });
        }
        if self.transport.idle_timeout < Duration::from_millis(100) {
            return Err(ConfigError::Invalid {
                setting: "node_timeout",
                why: "must be at least 100 ms".into(),
            });
        }
        Ok(Some(ClusterConfig {
            peers: self.peers.clone(),
            resolver: self.resolver.clone(),
            resolve_interval: self.resolve_interval,
            discovery: self.discovery,
            discovery_interface: self.discovery_interface,
            secret: self.secret.clone(),
            transport: self.transport.clone(),
            max_retries: self.max_retries,
        }))
    }
}

/// The instant `timeout` from now; `None` (wait forever) if that is past the clock's range.
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Refuses more workers than `slots`, the jobs the sandbox can run at once.
fn check_workers(workers: usize, slots: u32) -> Result<(), ConfigError> {
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
    if limits.fuel == Some(0) {
        return Err(ConfigError::Invalid {
            setting: "fuel",
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
    fuel: Option<u64>,
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

    /// The job's fuel budget ([`Limits::fuel`]): a CPU budget that is the same on every run
    /// and every machine.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    fn limits(&self, defaults: &Limits) -> Limits {
        Limits {
            timeout: self.timeout.or(defaults.timeout),
            max_memory: self.max_memory.unwrap_or(defaults.max_memory),
            max_output: self.max_output.unwrap_or(defaults.max_output),
            max_table_elements: defaults.max_table_elements,
            fuel: self.fuel.or(defaults.fuel),
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
    cluster: Option<Cluster>,
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
        let group = options
            .group
            .clone()
            .unwrap_or_else(|| DEFAULT_GROUP.to_string());
        let limits = options.limits(&self.limits);
        Job::from_slot(self.submit_slot(
            module,
            function,
            args,
            limits,
            group,
            (Owner::LOCAL, Cancel::default(), None),
        ))
    }

    /// Drops the prepared code of module `hash` from memory (a node evicting a module).
    pub(crate) fn forget_module(&self, hash: &crate::module::ModuleHash) {
        self.shared.modules.forget(hash);
    }

    /// Submits a job whose outcome goes, raw, to `callback` (as a node returns results to
    /// its clients). `limits` are checked here: out-of-range limits fail the job.
    /// `owner` (a node's client) shares the workers fairly with the other owners. `cancel`
    /// stops the job if it is queued or running (the client that sent it left).
    pub(crate) fn submit_with_callback(
        &self,
        module: &Module,
        function: &str,
        args: Vec<u8>,
        limits: Limits,
        (owner, cancel): (Owner, Cancel),
        callback: Callback,
    ) {
        let args = check_limits(&limits)
            .map(|()| args)
            .map_err(|err| JobError::BadArguments(err.to_string()));
        self.submit_slot(
            module,
            function,
            args,
            limits,
            DEFAULT_GROUP.to_string(),
            (owner, cancel, Some(callback)),
        );
    }

    /// Makes the job's slot, registers `callback`, and queues the job (or completes it at
    /// once with its error).
    fn submit_slot(
        &self,
        module: &Module,
        function: &str,
        args: Result<Vec<u8>, JobError>,
        limits: Limits,
        group: String,
        (owner, cancel, callback): (Owner, Cancel, Option<Callback>),
    ) -> Arc<JobSlot> {
        let id = JobId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let slot = JobSlot::new(id);
        if let Some(callback) = callback {
            slot.on_complete(callback);
        }
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
                limits,
                cancel,
                slot: slot.clone(),
                group,
                attempts: 0,
                handed_back: 0,
                owner,
            })),
            Err(err) => {
                slot.complete(Finished {
                    outcome: RawOutcome::failed(err),
                    worker: String::new(),
                });
                self.shared.groups.finished(&group, true);
            }
        }
        slot
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
        self.shared.groups.wait(Some(group), deadline(timeout))
    }

    /// Blocks until every job submitted so far has finished.
    pub fn wait_all(&self) -> GroupSummary {
        self.shared.groups.wait(None, None)
    }

    /// Like [`wait_all`](Self::wait_all) but gives up at `timeout`; the summary then shows
    /// jobs still pending.
    pub fn wait_all_timeout(&self, timeout: Duration) -> GroupSummary {
        self.shared
            .groups
            .wait(None, Some(Instant::now() + timeout))
    }

    /// Stops the pool now, as dropping the server does: queued jobs complete as
    /// cancelled, running ones are interrupted.
    pub(crate) fn shut_down(&self) {
        pool::shutdown(&self.shared);
    }

    /// What `group` has done so far, without waiting.
    pub fn group_summary(&self, group: &str) -> GroupSummary {
        self.shared.groups.summary(Some(group))
    }

    /// The configured number of workers.
    pub fn workers(&self) -> usize {
        self.shared.queue().target()
    }

    /// How many jobs can run at once right now: the local workers plus the workers of the
    /// connected nodes. What a caller should keep in flight to keep everyone busy.
    pub fn capacity(&self) -> usize {
        let nodes = self
            .cluster
            .as_ref()
            .map_or(0, |cluster| cluster.nodes.connected_workers());
        self.workers() + nodes
    }

    /// Grows or shrinks the pool to `workers` threads. New workers start at once; surplus
    /// workers finish their current job and exit. No queued job is lost.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] above [`MAX_CONCURRENT_INSTANCES`] (or fewer, where the
    /// address space cannot hold that many sandboxes); [`ConfigError::Thread`] if a thread
    /// cannot be started.
    pub fn set_workers(&self, workers: usize) -> Result<(), ConfigError> {
        check_workers(workers, self.shared.sandbox.slots())?;
        pool::set_workers(&self.shared, workers)
    }

    /// The default limits of this server's jobs.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A snapshot of the server's statistics. A job is counted an instant after its
    /// waiters are released: call [`wait_all`](Self::wait_all) (or
    /// [`wait_group`](Self::wait_group)) first for totals that include every job waited for.
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
            nodes: self
                .cluster
                .as_ref()
                .map(|cluster| cluster.nodes.snapshot())
                .unwrap_or_default(),
            discovery: self
                .cluster
                .as_ref()
                .and_then(|cluster| cluster.nodes.discovery()),
        }
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

    /// Prints the statistics table to stdout, as pp's `print_stats` does.
    pub fn print_stats(&self) {
        println!("{}", self.stats());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing the queue first makes the sessions' hand-back cancel what they hold.
        pool::shutdown(&self.shared);
        if let Some(cluster) = &mut self.cluster {
            cluster.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_capped_by_the_slots_of_the_sandbox() {
        assert!(check_workers(256, MAX_CONCURRENT_INSTANCES).is_ok());
        let err = check_workers(257, MAX_CONCURRENT_INSTANCES).unwrap_err();
        assert!(err.to_string().contains("maximum of 256"), "{err}");
        // A pool made smaller by a small address space (a 39-bit aarch64 kernel).
        assert!(check_workers(64, 64).is_ok());
        let err = check_workers(65, 64).unwrap_err();
        assert!(err.to_string().contains("64 sandbox slots"), "{err}");
    }
}
