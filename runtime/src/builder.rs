//! [`ServerBuilder`]: every setting of a [`Server`], with its default.

use crate::cache::DEFAULT_MAX_PREPARED_MODULES;
use crate::cluster::{self, ClusterConfig, DEFAULT_MAX_RETRIES};
use crate::data::{DEFAULT_MAX_DATA_VALUE, Registry};
use crate::error::ConfigError;
use crate::monitor::MonitorConfig;
use crate::net::TransportSettings;
use crate::peer::Peer;
use crate::result_cache::{self, DEFAULT_MAX_RESULT_CACHE_BYTES, ResultCache};
use crate::sandbox::disk::{DEFAULT_MAX_CACHE_BYTES, DiskCache};
use crate::sandbox::{Asked, Limits, MAX_CONCURRENT_INSTANCES, Sandbox, Shipped};
use crate::scheduler::pool::Shared;
use crate::secret::ClusterSecret;
use crate::server::{Server, check_workers};
use crate::submit::Submitter;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

impl Server {
    /// A builder to configure a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

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
    /// The limits set here: a node gives its own value for the others.
    asked: Asked,
    cache_dir: CacheDir,
    cache_max_bytes: u64,
    shipped_code_dir: Option<PathBuf>,
    shipped_with: Option<PathBuf>,
    max_prepared_modules: usize,
    max_queued: Option<usize>,
    peers: Vec<Peer>,
    resolver: cluster::Resolver,
    resolve_interval: Duration,
    discovery: Option<SocketAddr>,
    discovery_interface: Ipv4Addr,
    secret: Option<ClusterSecret>,
    insecure: bool,
    transport: TransportSettings,
    max_retries: u32,
    monitor: Option<MonitorConfig>,
    max_data_value: u64,
    cache_results: bool,
    result_cache_dir: Option<PathBuf>,
    result_cache_max_bytes: u64,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            workers: default_workers(),
            asked: Asked::default(),
            cache_dir: CacheDir::Default,
            cache_max_bytes: DEFAULT_MAX_CACHE_BYTES,
            shipped_code_dir: None,
            shipped_with: None,
            max_prepared_modules: DEFAULT_MAX_PREPARED_MODULES,
            max_queued: None,
            peers: Vec::new(),
            resolver: cluster::Resolver::system(),
            resolve_interval: cluster::DEFAULT_RESOLVE_INTERVAL,
            discovery: None,
            discovery_interface: Ipv4Addr::UNSPECIFIED,
            secret: None,
            monitor: None,
            insecure: false,
            transport: TransportSettings::default(),
            max_retries: DEFAULT_MAX_RETRIES,
            max_data_value: DEFAULT_MAX_DATA_VALUE,
            cache_results: false,
            result_cache_dir: None,
            result_cache_max_bytes: DEFAULT_MAX_RESULT_CACHE_BYTES,
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

    /// Asks for every limit of `limits` for every job (unless a job's
    /// [`JobOptions`](crate::JobOptions) override them). Prefer the setters of single limits
    /// ([`timeout`](Self::timeout), [`max_memory`](Self::max_memory), ...): a limit set here
    /// is asked of nodes too, which refuse one above their maximum, while a limit left unset
    /// takes a node's own value. Default: [`Limits::default`] locally, each node's own on
    /// nodes.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.asked = Asked::all(&limits);
        self
    }

    /// The default wall-clock timeout of a job. Default: none (a node gives its maximum).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.asked.timeout = Some(timeout);
        self
    }

    /// The default memory cap of a job, in bytes. Default: 256 MiB (a node gives its
    /// maximum).
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.asked.max_memory = Some(bytes);
        self
    }

    /// The default cap on each of a job's captured stdout and stderr, in bytes. Default:
    /// 1 MiB (a node gives its maximum).
    pub fn max_output(mut self, bytes: u64) -> Self {
        self.asked.max_output = Some(bytes);
        self
    }

    /// The default fuel budget of a job ([`Limits::fuel`]). Default: none.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.asked.fuel = Some(fuel);
        self
    }

    /// Bounds the queue to `jobs` jobs waiting for a worker or a node: past it,
    /// [`Server::submit`] waits for room and [`Server::try_submit_with`] fails with
    /// [`QueueFull`](crate::QueueFull), so that a producer of millions of jobs does not
    /// exhaust memory (a queued job costs a few hundred bytes plus its arguments; see the
    /// README). Default: no bound.
    pub fn max_queued(mut self, jobs: usize) -> Self {
        self.max_queued = Some(jobs);
        self
    }

    /// Serves the server's metrics (Prometheus), health probes, JSON status and live
    /// dashboard over HTTP, as `config` says (see [`MonitorConfig`]). Default: none.
    pub fn monitor(mut self, config: MonitorConfig) -> Self {
        self.monitor = Some(config);
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

    /// Looks for a component's compiled code in `dir` too, after the disk cache and before
    /// compiling it (for jobs without a fuel budget): code shipped with the program (the
    /// Python wheel ships its runner's), written by
    /// [`precompile_for_shipping`](crate::precompile_for_shipping) for the architecture's
    /// [`BASELINE`](crate::BASELINE). Code this CPU cannot run, or from another wasmtime
    /// version or engine configuration, is ignored, and the module compiled. `dir` and its
    /// files must belong to this user or root and be writable by nobody else, or be no
    /// more open than the program's own file (see [`shipped_with`](Self::shipped_with)).
    /// Default: none.
    pub fn shipped_code_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.shipped_code_dir = Some(dir.into());
        self
    }

    /// The file of the program the [shipped code](Self::shipped_code_dir) comes with (the
    /// Python package's extension module): the code may be as open as it, and no more
    /// (owned by its owner, writable by its group if it is: a package installed under
    /// `umask 002`), since whoever may write it may change the program too. Never writable
    /// by all. Default: none (the code must be this user's or root's, and nobody else's to
    /// write).
    pub fn shipped_with(mut self, program: impl Into<PathBuf>) -> Self {
        self.shipped_with = Some(program.into());
        self
    }

    /// How many modules stay compiled and ready in memory; past it the least recently used
    /// is dropped, and its next job loads it from the disk cache. Default: 256.
    pub fn max_prepared_modules(mut self, modules: usize) -> Self {
        self.max_prepared_modules = modules;
        self
    }

    /// Where to find remote nodes (`wasp node`): addresses, names, or discovery (see
    /// [`Peer`]). Jobs go to local workers and nodes alike, from one queue. Nodes are
    /// connected in the background, and reconnected with backoff whenever they go away.
    /// Requires a [`secret`](Self::secret).
    ///
    /// ```
    /// use wasp::{Peer, Server};
    /// let builder = Server::builder().peers([
    ///     "10.0.0.5:7878".parse::<Peer>()?,   // one node
    ///     "workers:7878".parse()?,            // every node the name resolves to
    ///     Peer::Discover,                     // every node heard on the LAN
    /// ]);
    /// # drop(builder);
    /// # Ok::<(), wasp::ConfigError>(())
    /// ```
    pub fn peers(mut self, peers: impl IntoIterator<Item = Peer>) -> Self {
        for peer in peers {
            match peer {
                Peer::Discover => {
                    let default = crate::discovery::DEFAULT_DISCOVERY_ADDRESS.into();
                    self.discovery.get_or_insert(default);
                }
                peer => self.peers.push(peer),
            }
        }
        self
    }

    /// Turns on discovery, listening for announcements sent to `address` (a multicast
    /// group, a broadcast address's port, or this host's address where nodes are told to
    /// announce themselves).
    pub fn discovery(mut self, address: SocketAddr) -> Self {
        self.discovery = Some(address);
        self
    }

    /// Listens for multicast announcements on the interface whose address is `interface`
    /// (e.g. the LAN's, on a host with several; `127.0.0.1` for nodes on this host only).
    /// Default: the interface the routing table picks for the group.
    pub fn discovery_interface(mut self, interface: Ipv4Addr) -> Self {
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
    ///     .peers(["workers:7878".parse().unwrap()])
    ///     .resolver(|_name: &str| -> std::io::Result<Vec<SocketAddr>> {
    ///         Ok(vec!["10.0.0.5:7878".parse().unwrap(), "10.0.0.6:7878".parse().unwrap()])
    ///     });
    /// # drop(builder);
    /// ```
    pub fn resolver<F>(mut self, resolve: F) -> Self
    where
        F: Fn(&str) -> std::io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
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
    /// with [`JobError::NodeLost`](crate::JobError::NodeLost). Errors of the job itself are
    /// never retried. Default: 3.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The largest value [`Server::put`] takes, in bytes (a larger one is refused with
    /// [`DataError::TooLarge`](crate::DataError::TooLarge)). Default: 1 GiB.
    pub fn max_data_value(mut self, bytes: u64) -> Self {
        self.max_data_value = bytes;
        self
    }

    /// Uses the result cache for every job, unless its
    /// [`JobOptions::cache`](crate::JobOptions::cache) says otherwise. Default: off.
    pub fn cache(mut self, cache: bool) -> Self {
        self.cache_results = cache;
        self
    }

    /// Keeps cached results in `dir` (created if missing, private to the user). Default:
    /// `results` in the [`cache_dir`](Self::cache_dir) if one is given, else the user's
    /// cache directory, `wasp/results` inside it.
    pub fn result_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.result_cache_dir = Some(dir.into());
        self
    }

    /// Bounds the result cache; the least recently used results are removed past it.
    /// Default: 1 GiB.
    pub fn result_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.result_cache_max_bytes = bytes;
        self
    }

    /// Builds the engine and starts the workers.
    ///
    /// # Errors
    /// [`ConfigError`] if a setting is out of range, the engine cannot be created, or a
    /// worker thread cannot be started.
    pub fn build(self) -> Result<Server, ConfigError> {
        check_workers(self.workers, MAX_CONCURRENT_INSTANCES)?;
        check_limits(&self.asked.resolve())?;
        if self.max_queued == Some(0) {
            return Err(ConfigError::Invalid {
                setting: "max_queued",
                why: "must be at least 1".into(),
            });
        }
        let cluster = self.cluster_config()?;
        let results_dir = self
            .result_cache_dir
            .clone()
            .or_else(|| match &self.cache_dir {
                CacheDir::At(dir) => Some(dir.join("results")),
                CacheDir::Default | CacheDir::Disabled => result_cache::default_dir(),
            });
        let root = match self.cache_dir {
            CacheDir::Default => DiskCache::default_root(),
            CacheDir::At(dir) => Some(dir),
            CacheDir::Disabled => None,
        };
        let disk = root.map(|root| DiskCache::new(root, self.cache_max_bytes));
        let shipped =
            (self.shipped_code_dir.clone()).map(|dir| Shipped::new(dir, self.shipped_with.clone()));
        let sandbox = Sandbox::new(disk, shipped)?;
        // Where the address space is small, the pool may hold fewer instances.
        check_workers(self.workers, sandbox.slots())?;
        let max_queued = self.max_queued.unwrap_or(usize::MAX);
        let shared = Shared::new(sandbox, max_queued, self.max_prepared_modules);
        if let Some(dir) = results_dir {
            let engine = shared.sandbox.engine_key();
            let cache = ResultCache::new(dir, self.result_cache_max_bytes, &engine);
            let _ = shared.books.results.set(Arc::new(cache));
        }
        let submitter = Submitter::new(
            shared,
            self.asked,
            Registry::new(self.max_data_value),
            self.cache_results,
        );
        Server::start(submitter, self.workers, cluster, self.monitor.as_ref())
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

/// Refuses limits no job could run with.
pub(crate) fn check_limits(limits: &Limits) -> Result<(), ConfigError> {
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
