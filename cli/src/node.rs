//! `wasp node`: serve jobs to clients over the network (Parallel Python's `ppserver`).

use crate::monitor::MonitorArgs;
use crate::options::parse_duration;
use crate::policy::PolicyArgs;
use crate::registry::RegistryArgs;
use crate::shipped::ShippedCode;
use anyhow::Context as _;
use clap::Args;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use wasp::{ClusterSecret, Node, NodeConfig};
use wasp_registry::NodePuller;

#[derive(Debug, Args)]
pub(crate) struct NodeCommand {
    /// The address to listen on (UDP), e.g. `0.0.0.0:7878`; port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The cluster secret: 64 hex digits from `wasp secret new`, or a passphrase.
    #[arg(long, value_name = "FILE", required_unless_present = "insecure")]
    secret_file: Option<PathBuf>,
    /// Accept clients without a secret. Allowed on loopback addresses only.
    #[arg(long, conflicts_with = "secret_file")]
    insecure: bool,
    /// Number of workers (default: one per available CPU).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// A settings file of `key = value` lines, read at start and again on SIGHUP: today
    /// `workers = N` (it overrides `--workers`), so a node can be resized while it runs.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the compiled-code cache (default: the user's cache dir, wasp/modules).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Where to look for components' code compiled ahead for this architecture (`wasp
    /// precompile`), after the compiled-code cache and before compiling; its files must
    /// be this user's or root's, writable by nobody else. Default: $WASP_SHIPPED_CODE_DIR
    /// if set (the container image sets /code, where it holds the Python runner's code),
    /// else the runner's code the wheel of this machine's architecture installs beside
    /// this `wasp` (`<prefix>/lib/python3.X/site-packages/wasp/runner/code` for
    /// `<prefix>/bin/wasp`), which may be as open as this program's file.
    #[arg(long, value_name = "DIR", conflicts_with = "no_shipped_code")]
    shipped_code_dir: Option<PathBuf>,
    /// Look for no shipped code: compile every component (once; then the cache has it).
    #[arg(long)]
    no_shipped_code: bool,
    /// Directory of the node's certificate and key (its identity, kept across restarts),
    /// locked while the node runs (default: one per listen address in the user's data
    /// dir, wasp/node/<ip>-<port>; with port 0, an identity for this run only).
    #[arg(long, value_name = "DIR")]
    identity_dir: Option<PathBuf>,
    /// At shutdown, how long running jobs may take to finish before they are handed back.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    drain_timeout: Duration,
    /// Announce the node on the LAN, signed with the cluster secret, so that clients with
    /// `--discover` find it (multicast to 239.255.87.65:7879 unless `--announce-to`).
    #[arg(long)]
    discoverable: bool,
    /// Where to send announcements: a multicast group, a broadcast address (e.g.
    /// 192.168.1.255:7879), or a client's host where multicast is blocked (repeatable).
    /// Implies `--discoverable`.
    #[arg(long, value_name = "ADDR")]
    announce_to: Vec<SocketAddr>,
    /// The address of the interface multicast announcements leave by (default: the one
    /// the routing table picks for the group).
    #[arg(long, value_name = "IP")]
    announce_interface: Option<Ipv4Addr>,
    /// How often to announce the node.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    announce_interval: Duration,
    /// How long a client may stay silent before it is dropped.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    client_timeout: Duration,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Write the node's address in this directory while it serves (a file named after
    /// its id, removed when it drains), for clients given `--peer dir:DIR`: on storage
    /// shared with them, this is how nodes started by a batch system (Slurm) are found.
    /// A node listening on 0.0.0.0 writes the address of the interface it reaches others
    /// by.
    #[arg(long, value_name = "DIR")]
    rendezvous: Option<PathBuf>,
    #[command(flatten)]
    monitor: MonitorArgs,
    /// A registry to pull modules from by digest, `host[:port]` or
    /// `host[:port]/repository-prefix` (repeatable): a client whose module comes from it
    /// tells the node where the module is instead of sending it. Credentials: the token of
    /// --registry-token-file or WASP_REGISTRY_TOKEN, else those of `docker login` or
    /// `podman login`.
    #[arg(long, value_name = "REGISTRY")]
    pull_from: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

impl NodeCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        let secret = match &self.secret_file {
            Some(path) => Some(ClusterSecret::from_file(path)?),
            None => None,
        };
        let monitor = self.monitor.config(secret.as_ref())?;
        let mut config = NodeConfig::new(self.listen, secret);
        config.monitor = monitor;
        config.rendezvous = self.rendezvous.clone();
        if !self.pull_from.is_empty() {
            let puller = NodePuller::new(self.pull_from.clone(), self.registry.token()?)?;
            config.puller = Some(Arc::new(puller));
        }
        if let Some(workers) = self.workers {
            config.workers = workers;
        }
        if let Some(workers) = self
            .config
            .as_deref()
            .map(read_workers)
            .transpose()?
            .flatten()
        {
            config.workers = workers;
        }
        config.cache_dir = self.cache_dir;
        if !self.no_shipped_code
            && let Some(shipped) = ShippedCode::find(self.shipped_code_dir)?
        {
            config.shipped_code_dir = Some(shipped.dir);
            config.shipped_with = shipped.program;
        }
        config.identity_dir = self.identity_dir;
        config.drain_timeout = self.drain_timeout;
        config.client_timeout = self.client_timeout;
        config.announce_interval = self.announce_interval;
        config.policy = self.policy.policy(config.workers)?;
        log_maxima(&config.policy, self.policy.memory_limit(), config.workers);
        // Within a memory limit, the pool may not grow beyond the workers that fit.
        let max_workers = self
            .policy
            .memory_limit()
            .map(|limit| config.policy.workers_within(limit));
        config.announce_to = self.announce_to;
        if config.announce_to.is_empty() && self.discoverable {
            let default = wasp::discovery::DEFAULT_DISCOVERY_ADDRESS.into();
            config.announce_to.push(default);
        }
        if let Some(interface) = self.announce_interface {
            config.announce_interface = interface;
        }
        // One thread moves all the bytes (jobs run on the pool's threads): no hand-offs
        // between runtime threads on the way from a job frame to its result.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("could not start the network runtime")?;
        runtime.block_on(async {
            let node = Node::bind(config)?;
            let address = node.local_addr()?;
            // One line on stdout, for scripts and tests that asked for port 0.
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "wasp node {} listening on {address}", node.id())?;
            if let Some(monitor) = node.monitor_address() {
                writeln!(stdout, "wasp node monitor on http://{monitor}/")?;
            }
            stdout.flush()?;
            drop(stdout);
            if let Some(path) = self.config.clone() {
                tokio::spawn(reload_on_hangup(path, node.workers_control(), max_workers));
            }
            node.run(shutdown_signal()).await;
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The `workers = N` setting of a settings file, if it has one.
fn read_workers(path: &Path) -> anyhow::Result<Option<usize>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the settings file {}", path.display()))?;
    let mut workers = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            anyhow::bail!("{}:{}: expected `key = value`", path.display(), number + 1);
        };
        match key.trim() {
            "workers" => {
                let count: usize = value.trim().parse().with_context(|| {
                    format!(
                        "{}:{}: workers must be a number",
                        path.display(),
                        number + 1
                    )
                })?;
                anyhow::ensure!(
                    count > 0,
                    "{}:{}: workers must be at least 1",
                    path.display(),
                    number + 1
                );
                workers = Some(count);
            }
            other => {
                tracing::warn!(file = %path.display(), key = other, "unknown setting, ignored")
            }
        }
    }
    Ok(workers)
}

/// Says at start what the node grants its clients' jobs at most, and within what.
fn log_maxima(policy: &wasp::NodePolicy, memory_limit: Option<u64>, workers: usize) {
    let limit = memory_limit.map_or_else(|| "none".to_string(), |limit| limit.to_string());
    tracing::info!(
        workers,
        max_memory = policy.max_memory,
        max_module_bytes = policy.max_module_bytes,
        max_data_bytes = policy.max_data_bytes,
        memory_limit = %limit,
        needed = policy.memory_needed(workers),
        "node maxima"
    );
}

/// Re-reads the settings file at each SIGHUP and applies the worker count, up to
/// `max_workers` if there is such a bound (a memory limit).
async fn reload_on_hangup(
    path: PathBuf,
    control: wasp::WorkersControl,
    max_workers: Option<usize>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the settings file is read only at start");
        return;
    };
    while hangups.recv().await.is_some() {
        match read_workers(&path) {
            Ok(Some(workers)) if max_workers.is_some_and(|max| workers > max) => {
                let max = max_workers.unwrap_or_default();
                tracing::warn!(
                    workers,
                    max,
                    "SIGHUP: not resized: only {max} workers fit in --memory-limit"
                );
            }
            Ok(Some(workers)) => {
                tracing::info!(workers, "SIGHUP: settings re-read");
                control.set(u32::try_from(workers).unwrap_or(u32::MAX));
            }
            Ok(None) => tracing::info!("SIGHUP: settings re-read; no worker count in them"),
            Err(error) => tracing::warn!(%error, "SIGHUP: the settings were not applied"),
        }
    }
}

/// Completes at the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
