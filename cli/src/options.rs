//! Options shared by the commands that run jobs, and the server they configure.

use crate::json::Data;
use crate::monitor::MonitorArgs;
use crate::registry::RegistryArgs;
use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use wasp::{Module, Peer, Server, ServerBuilder};
use wasp_registry::Reference;

/// What to run: a module and one of its jobs, or a Python file and one of its functions.
#[derive(Debug, Args)]
pub(crate) struct JobTarget {
    /// The module: a .wasm file built with the wasp-guest SDK, a module in a registry
    /// (`oci://host[:port]/repository[:tag]` or `...@sha256:<digest>`), or a .py file whose
    /// functions run in wasp's Python runner.
    module: PathBuf,
    /// The job to call (for a .py file: a function defined at its top level).
    pub(crate) function: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// A loaded [`JobTarget`]: the module to run and how to call it.
pub(crate) struct Loaded {
    /// The module: the .wasm file's, or wasp's Python runner for a .py file.
    pub(crate) module: Module,
    /// The module's job to call.
    pub(crate) job: String,
    /// For a .py file: its source and the function to call, which the runner is given.
    python: Option<(String, String)>,
}

impl JobTarget {
    /// Loads and validates the module (for a .py file, the Python runner and the file).
    pub(crate) fn load(&self) -> anyhow::Result<Loaded> {
        if let Some(reference) = self.module.to_str().filter(|m| Reference::is_reference(m)) {
            let pulled = self.registry.pull(&reference.parse()?)?;
            return Ok(Loaded {
                module: pulled.module,
                job: self.function.clone(),
                python: None,
            });
        }
        if self.module.extension().is_some_and(|ext| ext == "py") {
            return self.load_python();
        }
        Ok(Loaded {
            module: Module::from_file(&self.module)?,
            job: self.function.clone(),
            python: None,
        })
    }

    fn load_python(&self) -> anyhow::Result<Loaded> {
        let source = std::fs::read_to_string(&self.module)
            .with_context(|| format!("could not read {}", self.module.display()))?;
        let defined = format!("def {}(", self.function);
        if !source.lines().any(|line| line.starts_with(&defined)) {
            anyhow::bail!(
                "{} defines no function `{}` at its top level",
                self.module.display(),
                self.function
            );
        }
        let runner = python_runner()?;
        let module = Module::from_file(&runner)
            .with_context(|| format!("wasp's Python runner ({})", runner.display()))?;
        Ok(Loaded {
            module,
            job: PYTHON_JOB.to_string(),
            python: Some((source, self.function.clone())),
        })
    }
}

/// The Python runner's job (see `runtime/wit/wasp.wit`).
const PYTHON_JOB: &str = "python";

/// The Python runner's `.wasm`: `WASP_PYTHON_RUNNER`, else what `python3 -m wasp.runner`
/// prints (the Python package builds the runner once per machine).
fn python_runner() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("WASP_PYTHON_RUNNER").filter(|path| !path.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let missing = || {
        format!(
            "a Python job needs wasp's Python runner: install the wasp Python package \
             (pip install ./python) so that `{} -m wasp.runner` finds it, or set \
             WASP_PYTHON_RUNNER to a built runner",
            python.to_string_lossy()
        )
    };
    let output = std::process::Command::new(&python)
        .args(["-m", "wasp.runner"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(missing)?;
    if !output.status.success() {
        anyhow::bail!("{}", missing());
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

impl Loaded {
    /// The job's arguments as the module takes them: MessagePack of `args`, or, for a
    /// Python function, of the runner's call `[source, function, args, modules]`; each
    /// `{"$data": NAME}` a reference to the value of `data` named so.
    pub(crate) fn encode(
        &self,
        args: Vec<serde_json::Value>,
        data: &Data,
    ) -> anyhow::Result<Vec<u8>> {
        match &self.python {
            None => crate::json::encode_args(&args, data),
            Some((source, function)) => crate::json::encode_args(
                &[
                    source.as_str().into(),
                    function.as_str().into(),
                    serde_json::Value::Array(args),
                    serde_json::Value::Array(Vec::new()),
                ],
                data,
            ),
        }
    }
}

/// The options of commands that run jobs on a pool.
#[derive(Debug, Args)]
pub(crate) struct PoolArgs {
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    monitor: MonitorArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Print the statistics table on stderr at the end.
    #[arg(long)]
    stats: bool,
}

/// Values put once and results cached.
#[derive(Debug, Args)]
struct DataArgs {
    /// Put FILE's bytes once as the value NAME, which jobs take where their JSON arguments
    /// say `{"$data": "NAME"}` (a Rust job receives a Vec<u8>); sent once to each node
    /// that runs such a job (repeatable).
    #[arg(long = "data", value_name = "NAME=FILE", value_parser = parse_data)]
    data: Vec<(String, PathBuf)>,
    /// Answer jobs from the result cache when it has their results, and keep the results
    /// of jobs that run and are deterministic (read no clock or random numbers, hit no
    /// limit), in the cache directory's `results` (default: the user's cache dir,
    /// wasp/results). Not the compiled-code cache of --cache-dir and --no-cache.
    #[arg(long)]
    cache: bool,
}

fn parse_data(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err("expected NAME=FILE".into()),
    }
}

impl PoolArgs {
    /// Builds the server, turning a configuration error into a readable message.
    pub(crate) fn build(&self, builder: ServerBuilder) -> anyhow::Result<Server> {
        let mut builder = self
            .cluster
            .apply(self.cache.apply(self.limits.apply(builder)))?
            .cache(self.data.cache);
        let secret = self.cluster.secret()?;
        if let Some(monitor) = self.monitor.config(secret.as_ref())? {
            builder = builder.monitor(monitor);
        }
        let server = builder.build().context("could not start the worker pool")?;
        crate::monitor::announce(server.monitor_address());
        if self.cluster.any_immediate() && server.workers() == 0 {
            // Remote only: without a node nothing would ever run, so say why now.
            server
                .wait_for_nodes(1, NODE_WAIT)
                .context("no node to run the jobs on")?;
        }
        Ok(server)
    }

    /// Checks that every value `args` refer to is given with `--data`.
    pub(crate) fn check_data(&self, args: &[serde_json::Value]) -> anyhow::Result<()> {
        for name in crate::json::data_names(args) {
            if !self.data.data.iter().any(|(given, _)| given == name) {
                anyhow::bail!(
                    "no value named `{name}`: give it with --data {name}=FILE ({{\"{}\": \"{name}\"}} refers to it)",
                    crate::json::DATA_KEY
                );
            }
        }
        Ok(())
    }

    /// Puts each `--data` file on `server`, by its name.
    pub(crate) fn put_data(&self, server: &Server) -> anyhow::Result<Data> {
        self.data
            .data
            .iter()
            .map(|(name, path)| {
                let value = server
                    .put_file(path)
                    .with_context(|| format!("--data {name}={}", path.display()))?;
                Ok((name.clone(), value))
            })
            .collect()
    }

    /// Prints the statistics table on stderr if `--stats` was given.
    pub(crate) fn print_stats(&self, server: &Server) {
        if self.stats {
            // Every job counted, and every result the cache keeps written.
            server.wait_all();
            server.flush_results();
            eprintln!("{}", server.stats());
        }
    }
}

/// How long a remote-only command waits for its first node.
const NODE_WAIT: Duration = Duration::from_secs(10);

/// Remote nodes to run jobs on.
#[derive(Debug, Args)]
struct ClusterArgs {
    /// A node to send jobs to, `host:port` (repeatable). A host name stands for every
    /// address it resolves to (e.g. a Kubernetes headless Service), resolved again every
    /// `--resolve-interval`. With `--workers 0`, jobs run on the nodes only.
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<Peer>,
    /// How often peer names are resolved again, for nodes added or removed behind them.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    resolve_interval: Option<Duration>,
    /// The cluster secret the nodes were started with (`wasp secret new > cluster.key`).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Connect to nodes started with `--insecure`, without a secret.
    #[arg(long, conflicts_with = "secret_file")]
    insecure: bool,
    /// Also use every node heard announcing itself with the cluster secret (`wasp node
    /// --discoverable`), on the default group unless `--discovery-address`.
    #[arg(long)]
    discover: bool,
    /// Where to listen for announcements (a multicast group, or this host's address and
    /// port where nodes send them). Implies `--discover`.
    #[arg(long, value_name = "ADDR")]
    discovery_address: Option<std::net::SocketAddr>,
    /// The address of the interface to hear multicast announcements on (default: the
    /// one the routing table picks for the group).
    #[arg(long, value_name = "IP")]
    discovery_interface: Option<std::net::Ipv4Addr>,
}

impl ClusterArgs {
    /// Whether nodes are given by address or name, which answer at once: not discovered
    /// or found in a rendezvous directory, which may take long (a batch system's queue).
    fn any_immediate(&self) -> bool {
        self.peers
            .iter()
            .any(|peer| matches!(peer, Peer::Addr(_) | Peer::Name { .. }))
    }

    /// Whether any node is to be used: listed or discovered.
    fn any(&self) -> bool {
        !self.peers.is_empty() || self.discover || self.discovery_address.is_some()
    }

    /// The cluster secret, if a file was given.
    fn secret(&self) -> anyhow::Result<Option<wasp::ClusterSecret>> {
        let secret = self
            .secret_file
            .as_ref()
            .map(wasp::ClusterSecret::from_file);
        Ok(secret.transpose()?)
    }

    fn apply(&self, mut builder: ServerBuilder) -> anyhow::Result<ServerBuilder> {
        if !self.any() {
            return Ok(builder);
        }
        builder = match self.discovery_address {
            Some(address) => builder.discovery(address),
            None if self.discover => builder.peers([Peer::Discover]),
            None => builder,
        };
        builder = builder.peers(self.peers.iter().cloned());
        if let Some(interval) = self.resolve_interval {
            builder = builder.resolve_interval(interval);
        }
        if let Some(interface) = self.discovery_interface {
            builder = builder.discovery_interface(interface);
        }
        match (&self.secret_file, self.insecure) {
            (Some(path), _) => {
                let secret = wasp::ClusterSecret::from_file(path)?;
                Ok(builder.secret(secret))
            }
            (None, true) => Ok(builder.insecure()),
            (None, false) => anyhow::bail!(
                "--peer needs --secret-file (the nodes' cluster secret), or --insecure for \
                 nodes started with --insecure"
            ),
        }
    }
}

/// Limits applied to each job.
#[derive(Debug, Args)]
struct LimitArgs {
    /// Wall-clock limit per job, e.g. `2s`, `500ms`, `1m` (default: none here; a node's
    /// maximum on a node).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Linear-memory limit per job, e.g. `64MiB`, `1GiB` (default: 256MiB here; a node's
    /// maximum on a node).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_memory: Option<u64>,
    /// Limit on each of a job's stdout and stderr, e.g. `64KiB` (default: 1MiB here; a
    /// node's maximum on a node).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_output: Option<u64>,
    /// Fuel budget per job: a CPU budget in WebAssembly instructions (about one unit
    /// each), the same on every run and every machine (default: none).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    fuel: Option<u64>,
}

/// Where compiled code is cached.
#[derive(Debug, Args)]
struct CacheArgs {
    /// Directory of the compiled-code cache (default: the user's cache dir, wasp/modules).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-code cache.
    #[arg(long)]
    no_cache: bool,
}

impl LimitArgs {
    /// Asks for the limits given, and only those: a node gives its own value for the rest.
    fn apply(&self, mut builder: ServerBuilder) -> ServerBuilder {
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(bytes) = self.max_memory {
            builder = builder.max_memory(bytes);
        }
        if let Some(bytes) = self.max_output {
            builder = builder.max_output(bytes);
        }
        if let Some(fuel) = self.fuel {
            builder = builder.fuel(fuel);
        }
        builder
    }
}

impl CacheArgs {
    fn apply(&self, builder: ServerBuilder) -> ServerBuilder {
        match (&self.cache_dir, self.no_cache) {
            (_, true) => builder.no_disk_cache(),
            (Some(dir), false) => builder.cache_dir(dir),
            (None, false) => builder,
        }
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration =
        humantime::parse_duration(text).map_err(|err| format!("{err} (try `2s` or `500ms`)"))?;
    if duration.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(duration)
}

pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    parse_size::parse_size(text).map_err(|err| format!("{err} (try `64MiB` or `1GiB`)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_in_human_units() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
    }
}
