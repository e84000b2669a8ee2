//! `wasp node`'s policy flags: the most a client's jobs may ask for, which modules may run,
//! and how much one client may hold.

use crate::options::{parse_duration, parse_size};
use anyhow::Context as _;
use clap::Args;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasp::{ModuleHash, NodePolicy};

/// What the node allows its clients (each default in brackets).
#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    /// The longest timeout a job may ask for; jobs asking for none get it. `none`: jobs
    /// may run unbounded [10m].
    #[arg(long, value_name = "DURATION", value_parser = parse_max_timeout)]
    max_timeout: Option<MaxTimeout>,
    /// The most linear memory a job may ask for [1GiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_memory: Option<u64>,
    /// The most output a job may ask to have captured, per stream [4MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_output: Option<u64>,
    /// The most elements a job may ask for in each table [1000000].
    #[arg(long, value_name = "N")]
    max_table_elements: Option<u64>,
    /// The largest fuel budget (a CPU budget in WebAssembly instructions, the same on every
    /// machine) a job may ask for; jobs asking for none get it [no maximum].
    #[arg(long, value_name = "N")]
    max_fuel: Option<u64>,
    /// The largest module a client may send [64MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_module_size: Option<u64>,
    /// Run only modules with these blake3 hashes (64 hex digits, as `b3sum` prints them;
    /// repeatable). Jobs of other modules are refused.
    #[arg(long = "allow-module", value_name = "HASH", value_parser = parse_hash)]
    allowed: Vec<ModuleHash>,
    /// Run only modules whose hashes this file lists, one per line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    allowed_modules: Option<PathBuf>,
    /// How many clients may be connected at once [256].
    #[arg(long, value_name = "N")]
    max_clients: Option<usize>,
    /// How many jobs one client may have on the node at once; a client sending more is
    /// cut off [4096].
    #[arg(long, value_name = "N")]
    max_jobs_per_client: Option<usize>,
    /// How many bytes of arguments and unsent results one client may have on the node;
    /// past it, its jobs are not read until results drain [256MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_bytes_per_client: Option<u64>,
    /// How many modules the node keeps; the least recently used go first [1024].
    #[arg(long, value_name = "N")]
    max_modules: Option<usize>,
    /// How many bytes of modules the node keeps [1GiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_module_bytes: Option<u64>,
    /// How many bytes of values put once (data sent by clients for their jobs) the node
    /// keeps; the least recently used go first, never one a job may still use; a job
    /// taking a larger value fails with DataTooLarge [2GiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_data_bytes: Option<u64>,
    /// The memory the node may use in all (its container's limit, say). The maxima not
    /// given are lowered to fit in it: the module store to an eighth, each worker's jobs
    /// to an equal share of the rest (after 256MiB for the node itself); maxima given that
    /// do not fit are refused at start, and so is a resize beyond the workers that fit
    /// [no limit].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<u64>,
    /// Run every job in a fresh instance, even one whose client asks to reuse the
    /// instance kept from its previous job (`reuse_instances=True`): no two jobs share an
    /// interpreter on this node [reuse allowed].
    #[arg(long)]
    no_instance_reuse: bool,
}

/// `--max-timeout`: a duration, or `none`.
#[derive(Debug, Clone, Copy)]
struct MaxTimeout(Option<Duration>);

fn parse_max_timeout(text: &str) -> Result<MaxTimeout, String> {
    if text == "none" {
        return Ok(MaxTimeout(None));
    }
    parse_duration(text).map(|timeout| MaxTimeout(Some(timeout)))
}

fn parse_hash(text: &str) -> Result<ModuleHash, String> {
    ModuleHash::from_hex(text).ok_or_else(|| format!("`{text}` is not 64 hex digits"))
}

impl PolicyArgs {
    /// The memory the node may use in all, if it was given.
    pub(crate) fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// The policy these flags describe, over the defaults (fitted to `--memory-limit`, if
    /// it was given, for `workers` workers).
    pub(crate) fn policy(&self, workers: usize) -> anyhow::Result<NodePolicy> {
        let mut policy = match self.memory_limit {
            Some(limit) => NodePolicy::within_memory(limit, workers),
            None => NodePolicy::default(),
        };
        if let Some(MaxTimeout(timeout)) = self.max_timeout {
            policy.max_timeout = timeout;
        }
        if self.max_fuel.is_some() {
            policy.max_fuel = self.max_fuel;
        }
        set(&mut policy.max_memory, self.max_memory);
        set(&mut policy.max_output, self.max_output);
        set(&mut policy.max_table_elements, self.max_table_elements);
        set(&mut policy.max_module_size, self.max_module_size);
        set(&mut policy.max_clients, self.max_clients);
        set(&mut policy.max_jobs_per_client, self.max_jobs_per_client);
        set(&mut policy.max_bytes_per_client, self.max_bytes_per_client);
        set(&mut policy.max_modules, self.max_modules);
        set(&mut policy.max_module_bytes, self.max_module_bytes);
        set(&mut policy.max_data_bytes, self.max_data_bytes);
        policy.instance_reuse = !self.no_instance_reuse;
        let mut allowed: Option<HashSet<ModuleHash>> = None;
        if !self.allowed.is_empty() {
            allowed.get_or_insert_default().extend(&self.allowed);
        }
        if let Some(path) = &self.allowed_modules {
            allowed.get_or_insert_default().extend(read_hashes(path)?);
        }
        policy.allowed_modules = allowed;
        if let Some(limit) = self.memory_limit {
            policy.check_memory(limit, workers)?;
        }
        Ok(policy)
    }
}

fn set<T: Copy>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

/// The hashes listed in the file at `path`, one per line; blank lines and `#` comments
/// are skipped.
fn read_hashes(path: &Path) -> anyhow::Result<Vec<ModuleHash>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the allow-list {}", path.display()))?;
    parse_hashes(&text).with_context(|| format!("in the allow-list {}", path.display()))
}

fn parse_hashes(text: &str) -> anyhow::Result<Vec<ModuleHash>> {
    let mut hashes = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let hash = parse_hash(line).map_err(|why| anyhow::anyhow!("line {}: {why}", number + 1))?;
        hashes.push(hash);
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_skip_comments_and_name_bad_lines() {
        let a = ModuleHash::of(b"a");
        let b = ModuleHash::of(b"b");
        let text = format!("# jobs we trust\n{a}\n\n  {b}  # the second\n");
        assert_eq!(parse_hashes(&text).unwrap(), [a, b]);
        let error = parse_hashes(&format!("{a}\nnot a hash\n")).unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }

    #[test]
    fn max_timeout_takes_a_duration_or_none() {
        assert_eq!(
            parse_max_timeout("30s").unwrap().0,
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_max_timeout("none").unwrap().0, None);
        assert!(parse_max_timeout("forever").is_err());
    }
}
