//! `wasp secret new`: make a cluster secret; `wasp secret token`: the monitor's token;
//! `wasp secret copy`: a private copy of a secret file (for containers, whose mounted
//! secrets other users' groups may read).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::io::Write as _;
use std::path::{Path, PathBuf};
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
    /// Copy a cluster secret to a file of your own that only you may read (mode 0400),
    /// checking it first: e.g. in an init container, from a Kubernetes Secret mounted
    /// readable by a group (`fsGroup`) to an in-memory volume. The copy replaces any
    /// earlier one.
    Copy {
        /// The secret to copy.
        #[arg(value_name = "FROM")]
        from: PathBuf,
        /// Where to write the private copy.
        #[arg(value_name = "TO")]
        to: PathBuf,
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
            SecretAction::Copy { from, to } => copy_private(&from, &to)?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Copies the secret at `from`, once it reads as a secret, to `to`, mode 0400: written to
/// a temporary name in `to`'s directory, then renamed into place.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = std::fs::read_to_string(from)
        .with_context(|| format!("could not read the secret file {}", from.display()))?;
    ClusterSecret::parse(&text).with_context(|| format!("in {}", from.display()))?;
    let temporary = to.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, to)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.with_context(|| format!("could not write the copy {}", to.display()))
}
