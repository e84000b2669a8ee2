//! Code compiled ahead for a whole architecture and shipped with the program (the Python
//! wheel ships its runner's), so that the first job on a fresh machine compiles nothing.
//!
//! [`precompile_for_shipping`] compiles a component on an engine configured exactly as the
//! one components run on, but for a baseline of the architecture rather than this CPU
//! ([`BASELINE`]), and writes it as `<dir>/<blake3 of the module>.cwasm` in the disk cache's
//! format (magic, checksum, code). [`Shipped::load`] reads it back. wasmtime checks that the
//! code comes from this version and configuration, and that this CPU has every feature it
//! was compiled for. Anything else (a missing, untrusted, corrupt or incompatible file) is a
//! miss: the module is compiled here, as without shipped code.
//!
//! What a file holds runs as native code, so it is trusted only as far as the program it
//! ships with: the directory and the file must belong to this user or to root (a package
//! installed by root) and be writable by nobody else; or, given the program's own file
//! (the Python package's extension module), be no more open than it (`Trust::AsProgram`:
//! a package installed under `umask 002` is writable by its owner's group, program and
//! code alike). The file must not be a symbolic link; it is checked through the open
//! descriptor and read from it. The directory is followed, as the user gave it.

use super::disk::{self, Code, Distrust, Trust};
use crate::module::{Module, ModuleHash, ModuleKind};
use std::fs;
use std::path::{Path, PathBuf};
use tracing::{debug, warn};
use wasmtime::Engine;

/// The CPU features shipped code is compiled for, by architecture: cranelift's preset (and
/// flags) and who has them. A CPU without them compiles the code itself, as before.
///
/// x86-64-v3 (AVX2, BMI1/2, FMA, LZCNT: Intel since Haswell, 2013; AMD since Excavator,
/// 2015) rather than the first x86-64: CPython's interpreter uses `lzcnt`/`tzcnt` and
/// wide moves, and every server of the last ten years has them. On aarch64, Armv8.0.
pub const BASELINE: &[(&str, &[&str])] = &[("x86_64", &["x86-64-v3", "has_avx"]), ("aarch64", &[])];

/// Why code could not be compiled for shipping.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrecompileError {
    /// Only components (wasp's Python runner) are shipped compiled: a core module compiles
    /// in milliseconds.
    #[error("only components are compiled for shipping; this is a core module")]
    NotComponent,
    /// This architecture has no baseline in [`BASELINE`].
    #[error("no baseline for shipped code on {0} (wasp ships code for x86_64 and aarch64)")]
    Architecture(&'static str),
    /// wasmtime refused the engine, or the module.
    #[error("compiling for shipping failed: {0}")]
    Compile(String),
    /// The file could not be written.
    #[error("could not write {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// Compiles `module` (a component) for this architecture's [`BASELINE`] and writes it into
/// `dir` (created if missing) as `<blake3 of the module>.cwasm`, readable by everyone; the
/// file's path.
pub fn precompile_for_shipping(module: &Module, dir: &Path) -> Result<PathBuf, PrecompileError> {
    if module.kind() != ModuleKind::Component {
        return Err(PrecompileError::NotComponent);
    }
    let engine = baseline_engine()?;
    // Compiled and serialized only: nothing is loaded or run here, so this CPU need not
    // have the baseline's features.
    let payload = engine
        .precompile_component(module.bytes())
        .map_err(|err| PrecompileError::Compile(format!("{err:#}")))?;
    let path = path_of(dir, module.hash());
    fs::create_dir_all(dir)
        .and_then(|()| disk::write_code(&path, &payload, 0o644))
        .map_err(|err| PrecompileError::Write(path.clone(), err))?;
    Ok(path)
}

/// The engine components run on (see `component_config_restoring`), without fuel, for
/// this architecture's baseline rather than this CPU.
#[allow(
    unsafe_code,
    reason = "setting cranelift's CPU features is unsafe by wasmtime's contract"
)]
fn baseline_engine() -> Result<Engine, PrecompileError> {
    let arch = std::env::consts::ARCH;
    let (_, flags) = BASELINE
        .iter()
        .find(|(name, _)| *name == arch)
        .ok_or(PrecompileError::Architecture(arch))?;
    let failed = |err: wasmtime::Error| PrecompileError::Compile(format!("{err:#}"));
    let mut config = super::component_config_restoring(false);
    // An explicit target: wasmtime infers no feature from this CPU, only `flags` are on.
    config
        .target(&format!("{arch}-unknown-linux-gnu"))
        .map_err(failed)?;
    for flag in *flags {
        // SAFETY: code compiled for features a CPU lacks would fault there. This engine
        // only compiles, never runs; the engine that loads the code checks each feature
        // against its own CPU and refuses the code where one is missing.
        unsafe {
            config.cranelift_flag_enable(flag);
        }
    }
    Engine::new(&config).map_err(failed)
}

/// A directory of shipped code (`<blake3 of the module>.cwasm` files).
#[derive(Debug, Clone)]
pub(crate) struct Shipped {
    dir: PathBuf,
    /// The program the code ships with, whose file says how open the code may be.
    program: Option<PathBuf>,
}

impl Shipped {
    /// The shipped code in `dir`, shipped with the program of file `program` if given.
    pub(crate) fn new(dir: PathBuf, program: Option<PathBuf>) -> Self {
        Shipped { dir, program }
    }

    /// How open the directory and its files may be: no more than the program's file, or
    /// else as anything installed.
    fn trust(&self) -> Trust {
        use std::os::unix::fs::MetadataExt as _;
        match self.program.as_deref().map(fs::metadata) {
            Some(Ok(program)) => Trust::AsProgram {
                uid: program.uid(),
                gid: program.gid(),
                mode: program.mode(),
            },
            Some(Err(err)) => {
                debug!(%err, "shipped code: the program's file is unreadable; trusted as installed");
                Trust::Installed
            }
            None => Trust::Installed,
        }
    }

    /// The shipped code of `hash` for `engine`, if there is a trusted file of it that
    /// `engine` accepts.
    pub(crate) fn load<C: Code>(&self, engine: &Engine, hash: ModuleHash) -> Option<C> {
        let path = path_of(&self.dir, hash);
        if !path.exists() {
            return None; // most modules: nothing to distrust, nothing to say
        }
        let trust = self.trust();
        let read = disk::trusted_dir(&self.dir, true, &trust)
            .and_then(|()| disk::read_trusted_file(&path, &trust));
        let bytes = match read {
            Ok((bytes, ..)) => bytes,
            Err(Distrust::Missing) => return None,
            Err(distrust) => {
                warn!(%distrust, "shipped code: not loaded, compiling");
                return None;
            }
        };
        let Some(payload) = disk::checked_payload(&bytes) else {
            warn!(path = %path.display(), "shipped code: corrupt file, compiling");
            return None;
        };
        match deserialize::<C>(engine, payload) {
            Ok(code) => {
                debug!(module = %hash, "shipped code: loaded");
                Some(code)
            }
            Err(err) => {
                // Another wasmtime, or a CPU without the baseline's features: not an error.
                debug!(path = %path.display(), err = %format!("{err:#}"), "shipped code: not for this engine, compiling");
                None
            }
        }
    }
}

#[allow(
    unsafe_code,
    reason = "deserializing compiled code is unsafe by wasmtime's contract"
)]
fn deserialize<C: Code>(engine: &Engine, payload: &[u8]) -> wasmtime::Result<C> {
    // SAFETY: `deserialize_code` requires bytes produced by `serialize_code` (anything else
    // could be arbitrary machine code). That rests on who could have written the file: it
    // is installed with the program, in a directory and a file that only those who could
    // change the program itself may write (this user, root, or as open as the program's
    // own file and no more), so whoever wrote them could run their code anyway. The blake3
    // checksum (not keyed) detects corruption, not tampering. Only the engine for
    // components reads these files, and wasmtime itself rejects (safely) code from another
    // version, configuration or CPU, and a core module's code where a component's is
    // expected.
    unsafe { C::deserialize_code(engine, payload) }
}

fn path_of(dir: &Path, hash: ModuleHash) -> PathBuf {
    dir.join(format!("{}.cwasm", hash.to_hex()))
}
