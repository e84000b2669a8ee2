//! `wasp secret new`: make a cluster secret; `wasp secret token`: the monitor's token.

use clap::{Args, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use wasp::{ClusterSecret, MonitorConfig};

#[derive(Debug, Args)]
pub(crate) struct SecretCommand {
    #[command(subcommand)]
    action: SecretAction,
}

#[derive(Debug, Subcommand)]
enum SecretAction {
    /// Print a new random cluster secret (64 hex digits): `wasp secret new > cluster.key`.
    New,
    /// Print the monitor's bearer token derived from a cluster secret (what `--metrics
    /// --metrics-public` asks for when no --metrics-token-file is given).
    Token {
        /// The cluster secret.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
    },
}

impl SecretCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        match self.action {
            SecretAction::New => {
                let secret = ClusterSecret::generate()?;
                writeln!(std::io::stdout().lock(), "{}", secret.to_hex())?;
            }
            SecretAction::Token { secret_file } => {
                let secret = ClusterSecret::from_file(&secret_file)?;
                let token = MonitorConfig::token_from_secret(&secret);
                writeln!(std::io::stdout().lock(), "{token}")?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
