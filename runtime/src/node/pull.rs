//! Modules a node pulls from registries itself (`wasp node --pull-from`), instead of
//! receiving their bytes from clients.
//!
//! The library speaks no registry protocol: a [`ModulePuller`] does (`wasp-registry`
//! implements one for OCI registries). The node asks it only for sources within the scopes
//! it names, and whatever it returns is checked here like a module sent by a client: its
//! blake3 hash must be the one the jobs name, then it is validated. Only then is it kept,
//! and compiled (once, into the disk cache) when its jobs run.

use crate::module::{Module, ModuleHash, ModuleSource};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How long a pull may take, from the first request to the last byte, before its jobs fail.
pub(crate) const PULL_TIMEOUT: Duration = Duration::from_secs(300);

/// What a [`ModulePuller`] returns: the module's bytes, or why it could not get them.
pub type PullFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

/// Fetches modules from registries for a node: see [`NodeConfig::puller`].
///
/// [`NodeConfig::puller`]: crate::NodeConfig::puller
pub trait ModulePuller: Send + Sync + fmt::Debug {
    /// The registries the node pulls from, each `host[:port]` or `host[:port]/prefix`
    /// (see [`ModuleSource::is_within`]): clients are told, and send sources within them.
    fn scopes(&self) -> Vec<String>;

    /// Fetches the bytes of the module at `source`, refusing more than `max_bytes`. The
    /// digest must be checked as the bytes arrive; the node checks the module's hash after.
    /// The error is shown to the client as the reason its jobs failed: it must say what
    /// went wrong (not found, refused, tampered) and never hold a credential.
    fn pull(&self, source: &ModuleSource, max_bytes: u64) -> PullFuture;
}

/// Checks pulled `bytes` against the hash the jobs name, then loads them: the module, or
/// why its jobs fail.
pub(crate) fn check(
    hash: ModuleHash,
    source: &ModuleSource,
    bytes: Result<Vec<u8>, String>,
) -> Result<Module, String> {
    let bytes = bytes.map_err(|why| format!("could not pull the module from {source}: {why}"))?;
    let pulled = ModuleHash::of(&bytes);
    if pulled != hash {
        return Err(format!(
            "the module pulled from {source} is not the module the job names: its blake3 \
             hash is {pulled}, the job's {hash}"
        ));
    }
    Module::from_bytes(bytes)
        .map(|module| module.with_source(source.clone()))
        .map_err(|error| format!("the module pulled from {source} does not load: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> ModuleSource {
        let digest = format!("sha256:{}", "ab".repeat(32));
        ModuleSource::new("127.0.0.1:5000", "jobs", &digest).unwrap()
    }

    #[test]
    fn pulled_bytes_must_be_the_module_the_jobs_name() {
        let bytes = std::fs::read(wasp_fixtures::SUM_PRIMES_GUEST).unwrap();
        let hash = ModuleHash::of(&bytes);
        let module = check(hash, &source(), Ok(bytes.clone())).unwrap();
        assert_eq!(module.hash(), hash);
        assert_eq!(module.source(), Some(&source()));

        let other = ModuleHash::of(b"another module");
        let error = check(other, &source(), Ok(bytes)).unwrap_err();
        assert!(error.contains("is not the module the job names"), "{error}");

        let error = check(hash, &source(), Err("manifest unknown".into())).unwrap_err();
        assert_eq!(
            error,
            format!(
                "could not pull the module from {}: manifest unknown",
                source()
            )
        );

        let junk = b"not wasm".to_vec();
        let error = check(ModuleHash::of(&junk), &source(), Ok(junk)).unwrap_err();
        assert!(error.contains("does not load"), "{error}");
    }
}
