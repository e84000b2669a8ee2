//! `wasp secret new`: make a cluster secret.

use clap::{Args, Subcommand};
use std::io::Write as _;
use std::process::ExitCode;
use wasp::ClusterSecret;

#[derive(Debug, Args)]
pub(crate) struct SecretCommand {
    #[command(subcommand)]
    action: SecretAction,
}

#[derive(Debug, Subcommand)]
enum SecretAction {
    /// Print a new random cluster secret (64 hex digits): `wasp secret new > cluster.key`.
    New,
}

impl SecretCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        match self.action {
            SecretAction::New => {
                let secret = ClusterSecret::generate()?;
                writeln!(std::io::stdout().lock(), "{}", secret.to_hex())?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
