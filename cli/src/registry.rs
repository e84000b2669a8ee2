//! `wasp push FILE REF` and `wasp pull REF FILE`: modules in OCI registries, and the
//! registry options the commands that load modules share.

use anyhow::Context as _;
use clap::Args;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use wasp::Module;
use wasp_registry::{Credentials, DEFAULT_MAX_MODULE_BYTES, Reference, Registry};

/// How to authenticate to registries.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// A file whose first line is a bearer token for the registry (default: the token in
    /// WASP_REGISTRY_TOKEN, else the credentials `docker login` or `podman login` saved).
    #[arg(long, value_name = "FILE")]
    registry_token_file: Option<PathBuf>,
}

impl RegistryArgs {
    /// The token given, if one was.
    pub(crate) fn token(&self) -> anyhow::Result<Option<Credentials>> {
        Ok(self
            .registry_token_file
            .as_deref()
            .map(Credentials::token_file)
            .transpose()?)
    }

    /// The credentials for `registry`: the token given, else those found for it.
    pub(crate) fn credentials(&self, registry: &str) -> anyhow::Result<Credentials> {
        match self.token()? {
            Some(token) => Ok(token),
            None => Ok(Credentials::for_registry(registry)?),
        }
    }

    /// Pulls the module `reference` names (checked by digest, then loaded).
    pub(crate) fn pull(&self, reference: &Reference) -> anyhow::Result<wasp_registry::Pulled> {
        let credentials = self.credentials(reference.registry())?;
        let registry = Registry::new([reference.registry()]);
        let started = Instant::now();
        let pulled = wasp_registry::block_on(registry.pull(
            reference,
            &credentials,
            DEFAULT_MAX_MODULE_BYTES,
        ))?;
        tracing::debug!(source = %pulled.source, elapsed = ?started.elapsed(), "module pulled");
        Ok(pulled)
    }
}

/// `wasp push FILE REF`.
#[derive(Debug, Args)]
pub(crate) struct PushCommand {
    /// The module: a .wasm file (a core module built with the wasp-guest SDK, or a
    /// component), checked before it is sent.
    file: PathBuf,
    /// Where to push it: `oci://host[:port]/repository[:tag]` (tag `latest` if none).
    reference: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

impl PushCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        let reference: Reference = self.reference.parse()?;
        let module = Module::from_file(&self.file)
            .with_context(|| format!("{} is not a module to push", self.file.display()))?;
        let title = self
            .file
            .file_name()
            .map_or_else(|| "module.wasm".into(), |name| name.to_string_lossy());
        let credentials = self.registry.credentials(reference.registry())?;
        let registry = Registry::new([reference.registry()]);
        let started = Instant::now();
        let pushed =
            wasp_registry::block_on(registry.push(&module, &reference, &title, &credentials))?;
        eprintln!(
            "wasp: pushed {} ({} bytes, blake3 {}) in {:.2} s",
            self.file.display(),
            module.bytes().len(),
            module.hash(),
            started.elapsed().as_secs_f64()
        );
        // The pinned reference alone on stdout, for scripts: it names these bytes for ever.
        writeln!(std::io::stdout().lock(), "{}", pushed.reference)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `wasp pull REF FILE`.
#[derive(Debug, Args)]
pub(crate) struct PullCommand {
    /// The module: `oci://host[:port]/repository[:tag]` or `...@sha256:<digest>`.
    reference: String,
    /// Where to write it.
    file: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

impl PullCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        let reference: Reference = self.reference.parse()?;
        let started = Instant::now();
        let pulled = self.registry.pull(&reference)?;
        write_atomically(&self.file, pulled.module.bytes())?;
        eprintln!(
            "wasp: pulled {} bytes (blake3 {}, jobs: {}) in {:.2} s",
            pulled.module.bytes().len(),
            pulled.module.hash(),
            pulled.module.jobs().join(", "),
            started.elapsed().as_secs_f64()
        );
        let pinned = Reference::from(&pulled.source);
        writeln!(std::io::stdout().lock(), "{pinned}")?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so that a
/// failed pull never leaves half a module there.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let temporary = dir.join(format!(".{}.part", name.to_string_lossy()));
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("could not write {}", path.display()))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
}
