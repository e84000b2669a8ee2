/*!
wasp runs jobs (calls of functions exported by WebAssembly modules) in parallel on every
core, each in a fresh sandbox with bounded time, memory and output. It is Parallel Python's
job server rebuilt around wasmtime.

```
use wasp::{Module, Server};

# let path = wasp_fixtures::SUM_PRIMES_GUEST;
// A module built with the wasp-guest SDK (`wasp build`), exporting `sum_primes(n: u64) -> u64`.
let module = Module::from_file(path)?;
let server = Server::builder().workers(2).build()?;

// Submit returns at once; each job runs on the next free worker.
let jobs: Vec<_> = [100_000u64, 100_100, 100_200]
    .iter()
    .map(|&n| server.submit::<u64, _>(&module, "sum_primes", (n,)))
    .collect();
assert_eq!(jobs[0].wait()?, 454_396_537);

// Or map over inputs, results in input order.
let sums: Vec<u64> = server.map(&module, "sum_primes", [(10u64,), (100,)]).collect::<Result<_, _>>()?;
assert_eq!(sums, [17, 1060]);
server.print_stats();
# Ok::<(), Box<dyn std::error::Error>>(())
```

# Core concepts

* [`Module`]: validated wasm bytes and their blake3 hash. Cheap to clone. Loading checks the
  wasp ABI and the imports, not the code: compilation happens on first use.
* [`Server`]: a pool of worker threads (one per available CPU by default, resizable with
  [`Server::set_workers`]) sharing one wasmtime engine (and a second, whose code counts
  fuel, for jobs with a fuel budget). Each module is compiled once per server and its code
  kept on disk, so the next process loads it in milliseconds.
* [`Job`]: the handle of a submitted job. Wait for it ([`Job::wait`]), `.await` it,
  attach a callback ([`Job::on_complete`]) or cancel it ([`Job::cancel`]). Every failure is
  a typed [`JobError`]. A job is answered exactly once, whatever happens to it (a node lost,
  a cancel racing its result, a bug that drops it: then [`JobError::Internal`]).
* Every job runs in a **fresh instance**: nothing leaks from one job to the next. It has no
  files, environment or network; its stdout and stderr are captured (bounded) and returned
  with its result ([`Job::wait_output`]); [`Limits`] bound its time, memory and output,
  and optionally its CPU with a fuel budget that is the same on every machine.
* **Backpressure**: [`ServerBuilder::max_queued`] bounds the queue; [`Server::submit`] then
  waits for room and [`Server::try_submit_with`] fails with [`QueueFull`].
* **Data put once** ([`Server::put`] → [`DataRef`]) and **jobs that take other jobs'
  results** (a [`Job`] passed as an argument): both are ordinary arguments, anywhere in
  them; the job receives the value (the result) itself. A job that takes others waits for
  them without its caller waiting.
* **A result cache** ([`JobOptions::cache`]): a deterministic job's result is kept on the
  caller's disk and found again before the job is queued.

# Layout

* `module`: [`Module`], [`ModuleHash`], and load-time validation.
* `sandbox`: the wasmtime engine, the per-job store and its limits, how a job's end is
  classified into a [`JobError`], and compiled code on disk.
* `cache`: compile-once per process.
* `scheduler`: tasks and their completion (exactly once, by construction), the queue
  (plain data, fair between a node's clients, bounded if asked), the worker pool (threads)
  and job groups.
* `submit`: a call made into a task, for [`Server`] and [`Server::map`]: references in its
  arguments resolved, the result cache consulted.
* `data`: values put once, and a job's arguments with the values they take by reference.
* [`result_cache`]: cached results on the caller's disk.
* `net`: QUIC (quinn, rustls) under the wire protocol (the `wasp-proto` crate): node
  identity, TLS, handshake drivers.
* `cluster`: the client side: one session per node address (a sans-IO state machine and its
  driver), pulling jobs from the server's queue.
* `node`: the daemon, [`Node`] (`wasp node`), one sans-IO state machine per client.
* [`discovery`]: finding nodes on the LAN: authenticated announcements, sent and heard.
* `job`, `map`, `options`, `builder`, `server`, `peer`, `stats`: the public API; `wire`: the
  mapping between its types and the protocol's.

# A cluster

A [`ServerBuilder::peers`] list and the [`ClusterSecret`] the nodes were started with spread
jobs over local workers and nodes alike; see the README's "A cluster" and ARCHITECTURE.md.
*/
#![deny(missing_docs)]

mod builder;
mod cache;
mod cluster;
mod data;
pub mod discovery;
mod error;
mod job;
#[cfg(test)]
mod layers;
mod map;
mod metrics;
mod module;
mod monitor;
mod net;
mod node;
mod options;
mod peer;
mod read;
pub mod rendezvous;
pub mod result_cache;
mod sandbox;
mod scheduler;
mod server;
mod stats;
mod submit;
mod waiting;
mod wire;

pub(crate) use wasp_proto::secret;

pub use builder::{ServerBuilder, default_workers};
pub use cache::{CacheStats, DEFAULT_MAX_PREPARED_MODULES};
pub use data::{DEFAULT_MAX_DATA_VALUE, DataError, DataRef};
pub use error::{ClusterError, ConfigError, JobError, ModuleError, QueueFull, TrapKind};
pub use job::{Job, JobId, JobOutput};
pub use map::MapResults;
pub use metrics::{FailedJob, Sample};
pub use module::{
    Bodies, Module, ModuleHash, ModuleKind, ModuleSource, SourceError, WIT, is_registry_scope,
};
pub use monitor::{MIN_TOKEN_LEN, MonitorConfig, MonitorError};
pub use node::{
    DEFAULT_DRAIN_TIMEOUT, MEMORY_RESERVE, MemoryBudgetError, ModulePuller, Node, NodeConfig,
    NodeError, NodePolicy, PullFuture, WorkersControl,
};
pub use options::JobOptions;
pub use peer::Peer;
pub use result_cache::ResultCacheStats;
pub use sandbox::disk::DEFAULT_MAX_CACHE_BYTES;
pub use sandbox::{
    BASELINE, DEFAULT_MAX_MEMORY, DEFAULT_MAX_OUTPUT, DEFAULT_MAX_TABLE_ELEMENTS, Limits,
    MAX_CONCURRENT_INSTANCES, PrecompileError, precompile_for_shipping,
};
pub use scheduler::groups::{DEFAULT_GROUP, GroupProgress, GroupSummary, MAX_FINISHED_GROUPS};
pub use server::Server;
pub use stats::{NodeStats, Stats, WorkerStats};
pub use wasp_proto::secret::{ClusterSecret, MIN_PASSPHRASE_LEN, Proof, Role, SecretError};
