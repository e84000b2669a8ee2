//! The errors of the wasp API, one type per operation.

use std::path::PathBuf;
use std::time::Duration;

/// Why bytes could not be loaded as a wasp [`Module`](crate::Module).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// The file could not be read.
    #[error("could not read module {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The bytes do not start with the WebAssembly magic number.
    #[error("not a WebAssembly module (the bytes do not start with \\0asm)")]
    NotWasm,
    /// The module failed WebAssembly validation.
    #[error("invalid WebAssembly module: {0}")]
    Invalid(String),
    /// The module exports no `wasp_job_*` function, or lacks the memory or allocator.
    #[error(
        "not a wasp module: {0} (build it with the wasp-guest SDK, see the ABI in wasp_guest::abi)"
    )]
    NotWaspModule(String),
    /// An export has the name of a wasp ABI export but the wrong type.
    #[error("export `{export}` has type {found}, but the wasp ABI requires {expected}")]
    BadExportType {
        /// The export's name.
        export: String,
        /// What the ABI requires.
        expected: &'static str,
        /// What the module declares.
        found: String,
    },
    /// The module imports something the sandbox does not provide.
    #[error("module imports `{module}::{name}`, which the sandbox does not allow: {why}")]
    ForbiddenImport {
        /// The import's module name.
        module: String,
        /// The import's field name.
        name: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// The component imports an interface the sandbox does not provide.
    #[error("component imports `{interface}`, which the sandbox does not allow: {why}")]
    ForbiddenInterface {
        /// The imported interface, with its version (`wasi:sockets/tcp@0.2.9`).
        interface: String,
        /// Why it is refused.
        why: &'static str,
    },
}

/// The name of a WebAssembly trap, as reported in [`JobError::Trap`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrapKind {
    /// The wasm call stack was exhausted (unbounded recursion).
    StackOverflow,
    /// A load or store outside linear memory.
    MemoryOutOfBounds,
    /// An `unreachable` instruction (also how a Rust guest aborts).
    Unreachable,
    /// Integer division by zero.
    IntegerDivisionByZero,
    /// Integer overflow (e.g. `i32::MIN / -1`).
    IntegerOverflow,
    /// A float-to-integer conversion of a value out of range.
    BadConversionToInteger,
    /// An access outside a table.
    TableOutOfBounds,
    /// An indirect call through a null table entry.
    IndirectCallToNull,
    /// An indirect call with the wrong signature.
    BadSignature,
    /// Any other trap, by wasmtime's description.
    Other(String),
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            TrapKind::StackOverflow => "stack overflow",
            TrapKind::MemoryOutOfBounds => "out-of-bounds memory access",
            TrapKind::Unreachable => "unreachable instruction executed",
            TrapKind::IntegerDivisionByZero => "integer division by zero",
            TrapKind::IntegerOverflow => "integer overflow",
            TrapKind::BadConversionToInteger => "invalid conversion to integer",
            TrapKind::TableOutOfBounds => "out-of-bounds table access",
            TrapKind::IndirectCallToNull => "indirect call to null",
            TrapKind::BadSignature => "indirect call with a bad signature",
            TrapKind::Other(text) => text,
        };
        f.write_str(text)
    }
}

/// Why a job produced no result.
///
/// Errors raised by the job itself (`Failed`, `Panic`, `Trap`, limits…) are final; a caller
/// may retry the others. The captured output of a failed job is still available from
/// [`Job::wait_output`](crate::Job::wait_output).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The module exports no job of that name.
    #[error("module has no job `{function}` (it has: {})", available.join(", "))]
    UnknownFunction {
        /// The name asked for.
        function: String,
        /// The jobs the module does export.
        available: Vec<String>,
    },
    /// The arguments could not be encoded, or the guest could not decode them into the
    /// job's parameter types.
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The job returned an error (a Rust `Err(e)`); the message is `e.to_string()`.
    #[error("job failed: {0}")]
    Failed(String),
    /// The job panicked.
    #[error("job panicked: {0}")]
    Panic(String),
    /// The job trapped.
    #[error("job trapped: {kind}")]
    Trap {
        /// Which trap.
        kind: TrapKind,
    },
    /// The job ran past its wall-clock timeout and was stopped.
    #[error("job timed out after {}", humanize(*.0))]
    Timeout(Duration),
    /// The job tried to grow its linear memory past its cap.
    #[error("job exceeded its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The cap, in bytes.
        limit: u64,
    },
    /// The job wrote more to stdout or stderr than may be captured.
    #[error("job exceeded its output limit of {limit} bytes on {stream}")]
    OutputLimit {
        /// `"stdout"` or `"stderr"`.
        stream: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// The job tried something the sandbox forbids and was stopped at once (waiting: a
    /// sleeping job would hold its worker where no timeout reaches it).
    #[error("job stopped: it tried {0}, which the sandbox forbids")]
    Forbidden(String),
    /// The job's result and output are larger than a node can send back in one message
    /// (16 MiB). Return less, or run the job locally (up to 256 MiB).
    #[error(
        "the job's result and output ({size} bytes) are larger than a node can send back ({limit} bytes)"
    )]
    ResultTooLarge {
        /// The bytes of the result and the captured output.
        size: u64,
        /// The most a node sends back for one job.
        limit: u64,
    },
    /// The job used its whole fuel budget ([`Limits::fuel`](crate::Limits::fuel)).
    #[error("job ran out of fuel (its budget was {limit} units)")]
    FuelExhausted {
        /// The budget, in fuel units.
        limit: u64,
    },
    /// The job called WASI `proc_exit` instead of returning.
    #[error("job exited with status {0} instead of returning")]
    Exited(i32),
    /// The job broke the wasp ABI (a bad result buffer, a failing allocator…).
    #[error("job broke the wasp ABI: {0}")]
    Abi(String),
    /// The job's result could not be decoded into the type the caller asked for.
    #[error("result does not match the expected type: {0}")]
    BadResult(String),
    /// The module could not be compiled or instantiated by this engine.
    #[error("module could not be prepared: {0}")]
    Module(String),
    /// The job was cancelled before it finished: by its caller ([`Job::cancel`],
    /// [`Server::cancel_group`]), or because the server shut down.
    ///
    /// [`Job::cancel`]: crate::Job::cancel
    /// [`Server::cancel_group`]: crate::Server::cancel_group
    #[error("job cancelled: {0}")]
    Cancelled(String),
    /// The nodes running the job were lost (disconnected, killed, or silent past their
    /// heartbeat timeout) more times than the server's retry limit allows.
    #[error("job lost: the nodes running it were lost {attempts} times (last: {node})")]
    NodeLost {
        /// How many times a node running the job was lost.
        attempts: u32,
        /// The last node lost.
        node: String,
    },
    /// The node refused the job's limits: one is above the node's maximum (`wasp node
    /// --max-memory`, `--max-timeout`…). Ask for less, or run it elsewhere.
    #[error("the node refuses a {limit} limit of {asked}: its maximum is {allowed}")]
    LimitRefused {
        /// Which limit: `timeout`, `memory`, `output` or `table elements`.
        limit: String,
        /// What the job asked for.
        asked: String,
        /// The node's maximum.
        allowed: String,
    },
    /// The node refused the job's module (not on its allow-list).
    #[error("the node refuses the module: {0}")]
    ModuleRefused(String),
    /// A value the job takes by reference ([`DataRef`](crate::DataRef)) is larger than the
    /// node keeps (`wasp node --max-data-bytes`).
    #[error("the node keeps values of at most {limit} bytes; the job takes one of {size} bytes")]
    DataTooLarge {
        /// The value's size, in bytes.
        size: u64,
        /// The most the node keeps, in bytes.
        limit: u64,
    },
    /// A job whose result this job takes failed or was cancelled, so this one did not run.
    /// `failed` is the job that failed first (itself, or one it took, and so on) and
    /// `error` its error. Jobs are named by their ids' numbers (`JobId.0`).
    #[error("{}", describe_dependency(*dependency, *failed, error))]
    Dependency {
        /// The number of the job whose result this job takes.
        dependency: u64,
        /// The number of the job that failed first.
        failed: u64,
        /// Why it failed.
        error: Box<JobError>,
    },
    /// The host failed while running the job (a bug in wasp, reported rather than hidden).
    #[error("internal error while running the job: {0}")]
    Internal(String),
}

impl JobError {
    /// Every [`kind`](JobError::kind), in declaration order: the `outcome` label values of
    /// the `wasp_jobs_finished_total` metric (besides `ok`), a bounded set.
    pub const KINDS: [&'static str; 22] = [
        "unknown_function",
        "bad_arguments",
        "failed",
        "panicked",
        "trapped",
        "timeout",
        "memory_limit",
        "output_limit",
        "forbidden",
        "result_too_large",
        "fuel_exhausted",
        "exited",
        "abi",
        "bad_result",
        "module",
        "cancelled",
        "node_lost",
        "limit_refused",
        "module_refused",
        "internal",
        "data_too_large",
        "dependency",
    ];

    /// A short name for how the job ended (`timeout`, `panicked`, ...), one of
    /// [`JobError::KINDS`]: for metrics and logs, where the message is too varied.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// This error's index in [`JobError::KINDS`].
    pub(crate) fn kind_index(&self) -> usize {
        match self {
            JobError::UnknownFunction { .. } => 0,
            JobError::BadArguments(_) => 1,
            JobError::Failed(_) => 2,
            JobError::Panic(_) => 3,
            JobError::Trap { .. } => 4,
            JobError::Timeout(_) => 5,
            JobError::MemoryLimit { .. } => 6,
            JobError::OutputLimit { .. } => 7,
            JobError::Forbidden(_) => 8,
            JobError::ResultTooLarge { .. } => 9,
            JobError::FuelExhausted { .. } => 10,
            JobError::Exited(_) => 11,
            JobError::Abi(_) => 12,
            JobError::BadResult(_) => 13,
            JobError::Module(_) => 14,
            JobError::Cancelled(_) => 15,
            JobError::NodeLost { .. } => 16,
            JobError::LimitRefused { .. } => 17,
            JobError::ModuleRefused(_) => 18,
            JobError::Internal(_) => 19,
            JobError::DataTooLarge { .. } => 20,
            JobError::Dependency { .. } => 21,
        }
    }

    /// The error of a job that takes job `dependency`'s result, which failed with `error`:
    /// the first failure of a chain is named, not every link.
    pub(crate) fn dependency(dependency: u64, error: &JobError) -> JobError {
        match error {
            JobError::Dependency { failed, error, .. } => JobError::Dependency {
                dependency,
                failed: *failed,
                error: error.clone(),
            },
            error => JobError::Dependency {
                dependency,
                failed: dependency,
                error: Box::new(error.clone()),
            },
        }
    }
}

fn describe_dependency(dependency: u64, failed: u64, error: &JobError) -> String {
    if dependency == failed {
        format!("did not run: job#{dependency}, whose result it takes, failed: {error}")
    } else {
        format!(
            "did not run: job#{dependency}, whose result it takes, did not run because \
             job#{failed} failed: {error}"
        )
    }
}

fn humanize(duration: Duration) -> String {
    format!("{duration:?}")
}

/// Why a [`Server`](crate::Server) could not be built or reconfigured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting is out of its allowed range.
    #[error("invalid setting `{setting}`: {why}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// wasmtime refused the engine configuration.
    #[error("the WebAssembly engine could not be created: {0}")]
    Engine(String),
    /// A worker thread could not be started.
    #[error("could not start a worker thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The monitor ([`ServerBuilder::monitor`](crate::ServerBuilder::monitor)) could not
    /// start.
    #[error(transparent)]
    Monitor(#[from] MonitorError),
}

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// A monitor off loopback without a token would show the cluster to anyone.
    #[error(
        "the monitor would listen on {0}, which is not a loopback address: that needs a bearer token (MonitorConfig::public; `--metrics-public` on the command line)"
    )]
    TokenRequired(std::net::SocketAddr),
    /// The token is too short to resist guessing.
    #[error("the monitor's bearer token must be at least {min} characters")]
    WeakToken {
        /// The fewest characters a token may have.
        min: usize,
    },
    /// The address could not be bound.
    #[error("the monitor cannot listen on {address}: {error}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// Its thread could not start.
    #[error("could not start the monitor's thread: {0}")]
    Thread(std::io::Error),
}

/// Why a job could not be submitted without waiting: the queue is at its bound
/// ([`ServerBuilder::max_queued`](crate::ServerBuilder::max_queued)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue is full ({max} jobs waiting for a worker or a node)")]
#[non_exhaustive]
pub struct QueueFull {
    /// The bound.
    pub max: usize,
}

/// Why the nodes a [`Server`](crate::Server) was asked to wait for are not all there.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{connected} of the {wanted} nodes wanted are connected{}", describe_peers(.peers))]
#[non_exhaustive]
pub struct ClusterError {
    /// How many nodes were wanted.
    pub wanted: usize,
    /// How many are connected.
    pub connected: usize,
    /// Each peer that is not connected, with the last error seen connecting to it.
    pub peers: Vec<(String, String)>,
}

fn describe_peers(peers: &[(String, String)]) -> String {
    peers
        .iter()
        .map(|(peer, error)| format!("; {peer}: {error}"))
        .collect()
}
