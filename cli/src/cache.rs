//! `wasp cache stats` and `wasp cache clear`: the result cache on this machine (what
//! `run` and `map --cache` keep).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct CacheCommand {
    #[command(subcommand)]
    action: CacheAction,
    /// The cache directory given to `run` and `map` with --cache-dir: its results are in
    /// `DIR/results` (default: the user's cache dir, wasp/results).
    #[arg(long, value_name = "DIR", global = true)]
    cache_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum CacheAction {
    /// Print how many results the cache holds, and their size.
    Stats,
    /// Remove every cached result.
    Clear,
}

impl CacheCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        let dir = match &self.cache_dir {
            Some(dir) => dir.join("results"),
            None => wasp::result_cache::default_dir()
                .context("no cache directory: give one with --cache-dir")?,
        };
        match self.action {
            CacheAction::Stats => {
                let usage = wasp::result_cache::usage(&dir)
                    .with_context(|| format!("could not read {}", dir.display()))?;
                println!(
                    "results: {} entries, {} bytes in {} (at most {} bytes: the least recently used go first)",
                    usage.entries,
                    usage.bytes,
                    dir.display(),
                    wasp::result_cache::DEFAULT_MAX_RESULT_CACHE_BYTES
                );
            }
            CacheAction::Clear => {
                let removed = wasp::result_cache::clear(&dir)
                    .with_context(|| format!("could not clear {}", dir.display()))?;
                println!(
                    "removed {} entries ({} bytes) from {}",
                    removed.entries,
                    removed.bytes,
                    dir.display()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
