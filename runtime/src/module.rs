//! [`Module`]: a validated wasp guest module and its content hash.

mod component;
mod parallel;
mod source;
mod validate;

pub use source::{ModuleSource, SourceError, is_registry_scope};

pub(crate) use component::COMPONENT_FEATURES;
pub(crate) use validate::{FEATURES, MAX_TABLES};

use crate::error::ModuleError;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The identity of a module: the blake3 hash of its bytes.
///
/// Two modules with the same bytes are the same module everywhere: in the compile cache, on
/// disk, and (later) on remote nodes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleHash([u8; 32]);

impl ModuleHash {
    /// A hash from its 32 bytes (as received from a peer).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ModuleHash(bytes)
    }

    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ModuleHash(*blake3::hash(bytes).as_bytes())
    }

    /// The 32 raw bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash from 64 hex digits (as `to_hex` writes it, or `b3sum` prints it); `None`
    /// if `text` is not that.
    pub fn from_hex(text: &str) -> Option<Self> {
        blake3::Hash::from_hex(text.trim())
            .ok()
            .map(|hash| ModuleHash(*hash.as_bytes()))
    }

    /// The hash as 64 lowercase hex digits (its `Display` form).
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModuleHash({})", &self.to_hex()[..16])
    }
}

/// When a module's function bodies are validated.
///
/// Either way nothing invalid runs: wasmtime validates all it compiles, and the disk cache
/// holds only code compiled from bytes of the same hash. What differs is when a malformed
/// body is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Bodies {
    /// When the module is loaded, with everything else (the default): a malformed body is
    /// a load error.
    #[default]
    AtLoad,
    /// When the module is compiled: a malformed body fails the module's first job. Loading
    /// then skips most of its work for a large module whose bodies are known good (wasp's
    /// own Python runner: about 40 of its 70 ms on one core).
    AtCompile,
}

/// What kind of WebAssembly a [`Module`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModuleKind {
    /// A core module built with the wasp-guest SDK for `wasm32-wasip1` (the ABI is
    /// `wasp_guest::abi`).
    Core,
    /// A component of the WebAssembly component model, whose exported functions are jobs
    /// (the contract is [`WIT`]): wasp's Python runner is one.
    Component,
}

/// The WIT that wasp's components follow: the shape of a job function, the WASI interfaces
/// a component may import, and the world of wasp's Python runner.
pub const WIT: &str = include_str!("../wit/wasp.wit");

/// A wasp guest module: WebAssembly bytes that passed validation, with their hash and the
/// names of the jobs they export.
///
/// Loading checks everything that can be checked without compiling: that the bytes are a
/// valid core module exporting the wasp ABI (see `wasp_guest::abi`) and importing nothing
/// but the allowed WASI functions, or a component exporting jobs and importing nothing but
/// WASI 0.2 (see [`WIT`]). Compilation happens later, once per [`Server`](crate::Server), on
/// a worker thread.
///
/// A `Module` is cheap to clone (the bytes are shared).
#[derive(Clone)]
pub struct Module {
    inner: Arc<Inner>,
}

struct Inner {
    bytes: Arc<[u8]>,
    hash: ModuleHash,
    kind: ModuleKind,
    jobs: Vec<String>,
    /// Where the same bytes can be pulled from by digest, if the module came from a
    /// registry.
    source: Option<ModuleSource>,
}

impl Module {
    /// Loads a module from its bytes.
    ///
    /// # Errors
    /// A [`ModuleError`] saying why the bytes are not a usable wasp module.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, ModuleError> {
        Self::from_bytes_with(bytes, Bodies::AtLoad)
    }

    /// Loads a module from its bytes, validating its function bodies when `bodies` says.
    ///
    /// # Errors
    /// As [`from_bytes`](Self::from_bytes), but with [`Bodies::AtCompile`] a malformed
    /// function body is not among them: it fails the module's first job instead.
    pub fn from_bytes_with(bytes: impl Into<Vec<u8>>, bodies: Bodies) -> Result<Self, ModuleError> {
        let bytes: Vec<u8> = bytes.into();
        let (kind, jobs) = validate::validate(&bytes, bodies)?;
        let hash = ModuleHash::of(&bytes);
        Ok(Module {
            inner: Arc::new(Inner {
                bytes: bytes.into(),
                hash,
                kind,
                jobs,
                source: None,
            }),
        })
    }

    /// The same module, noting that its bytes can be pulled from `source` by digest (it was
    /// pulled from there): nodes that pull from that registry themselves are told where it
    /// is rather than sent its bytes.
    pub fn with_source(&self, source: ModuleSource) -> Module {
        let inner = &self.inner;
        Module {
            inner: Arc::new(Inner {
                bytes: inner.bytes.clone(),
                hash: inner.hash,
                kind: inner.kind,
                jobs: inner.jobs.clone(),
                source: Some(source),
            }),
        }
    }

    /// Where the module's bytes can be pulled from by digest, if it came from a registry.
    pub fn source(&self) -> Option<&ModuleSource> {
        self.inner.source.as_ref()
    }

    /// Loads a module from a `.wasm` file.
    ///
    /// # Errors
    /// [`ModuleError::Read`] if the file cannot be read, or any error of
    /// [`from_bytes`](Self::from_bytes).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ModuleError> {
        Self::from_file_with(path, Bodies::AtLoad)
    }

    /// Loads a module from a `.wasm` file, validating its function bodies when `bodies`
    /// says.
    ///
    /// # Errors
    /// [`ModuleError::Read`] if the file cannot be read, or any error of
    /// [`from_bytes_with`](Self::from_bytes_with).
    pub fn from_file_with(path: impl AsRef<Path>, bodies: Bodies) -> Result<Self, ModuleError> {
        let path = path.as_ref();
        let read = || {
            let mut file = std::fs::File::open(path)?;
            let size = file.metadata()?.len();
            crate::read::whole(&mut file, size)
        };
        let bytes = read().map_err(|error| ModuleError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_bytes_with(bytes, bodies)
    }

    /// The module's identity: the blake3 hash of its bytes.
    pub fn hash(&self) -> ModuleHash {
        self.inner.hash
    }

    /// Whether the module is a core module or a component.
    pub fn kind(&self) -> ModuleKind {
        self.inner.kind
    }

    /// The module's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.inner.bytes
    }

    /// The module's bytes as a [`bytes::Bytes`] sharing them (no copy), for sending.
    pub(crate) fn shared_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self.inner.bytes.clone())
    }

    /// The names of the jobs the module exports, sorted.
    pub fn jobs(&self) -> &[String] {
        &self.inner.jobs
    }

    /// Whether the module exports a job called `name`.
    pub fn has_job(&self, name: &str) -> bool {
        self.inner
            .jobs
            .binary_search_by(|job| job.as_str().cmp(name))
            .is_ok()
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("hash", &self.inner.hash)
            .field("kind", &self.inner.kind)
            .field("len", &self.inner.bytes.len())
            .field("jobs", &self.inner.jobs)
            .field("source", &self.inner.source)
            .finish()
    }
}

/// A module with one job `f` and no code, for tests of the data structures around modules.
#[cfg(test)]
pub(crate) fn test_module() -> Module {
    Module {
        inner: Arc::new(Inner {
            bytes: Arc::from(&b""[..]),
            hash: ModuleHash::of(b""),
            kind: ModuleKind::Core,
            jobs: vec!["f".into()],
            source: None,
        }),
    }
}

/// A module with the one job `name`, whose bytes (not wasm) are its name, so that modules
/// of different names differ in hash and have the same size.
#[cfg(test)]
pub(crate) fn test_module_with_job(name: &str) -> Module {
    Module {
        inner: Arc::new(Inner {
            bytes: Arc::from(name.as_bytes()),
            hash: ModuleHash::of(name.as_bytes()),
            kind: ModuleKind::Core,
            jobs: vec![name.into()],
            source: None,
        }),
    }
}
