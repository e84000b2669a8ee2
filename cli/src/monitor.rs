//! `--metrics`: the HTTP monitor of a node or a client (Prometheus metrics, probes, JSON
//! status, live dashboard), and its access rules.

use anyhow::Context as _;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use wasp::{ClusterSecret, MonitorConfig};

/// The monitor's options, shared by `node`, `run` and `map`.
#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// Serve Prometheus metrics (/metrics), health probes (/livez, /readyz), a JSON
    /// status (/api/v1/status) and a live dashboard (/) over HTTP on ADDR, e.g.
    /// 127.0.0.1:9464 (port 0 picks one). Loopback only, unless --metrics-public.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Let --metrics listen on an address other than loopback: then every request but
    /// the probes needs the bearer token (--metrics-token-file, or else the one derived
    /// from the cluster secret, which `wasp secret token` prints).
    #[arg(long, requires = "metrics")]
    metrics_public: bool,
    /// Read the monitor's bearer token from FILE (its first line; at least 16
    /// characters).
    #[arg(long, value_name = "FILE", requires = "metrics_public")]
    metrics_token_file: Option<PathBuf>,
}

impl MonitorArgs {
    /// The monitor asked for, if any; `secret` is the cluster secret, if there is one.
    pub(crate) fn config(
        &self,
        secret: Option<&ClusterSecret>,
    ) -> anyhow::Result<Option<MonitorConfig>> {
        let Some(listen) = self.metrics else {
            return Ok(None);
        };
        if !self.metrics_public {
            return Ok(Some(MonitorConfig::new(listen)));
        }
        let token = match (&self.metrics_token_file, secret) {
            (Some(path), _) => read_token(path)?,
            (None, Some(secret)) => MonitorConfig::token_from_secret(secret),
            (None, None) => anyhow::bail!(
                "--metrics-public needs a bearer token: --metrics-token-file, or a cluster \
                 secret (--secret-file) to derive it from"
            ),
        };
        Ok(Some(MonitorConfig::public(listen, token)))
    }
}

fn read_token(path: &PathBuf) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    Ok(token)
}

/// Says where the monitor listens, on stderr (stdout is for results).
pub(crate) fn announce(address: Option<SocketAddr>) {
    if let Some(address) = address {
        eprintln!("wasp: monitor on http://{address}/ (metrics at /metrics)");
    }
}
