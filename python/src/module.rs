//! `Module`: a wasm module of jobs, loaded and checked.

use crate::errors::module_error;
use pyo3::exceptions::{
    PyConnectionError, PyFileNotFoundError, PyOSError, PyPermissionError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;
use wasp_registry::{Credentials, Reference, Registry, RegistryError};

/// A WebAssembly module of wasp jobs, checked when loaded (not compiled: that happens once
/// per server, on first use).
#[pyclass(module = "wasp._wasp", name = "NativeModule", frozen)]
pub(crate) struct NativeModule {
    pub(crate) inner: wasp::Module,
}

#[pymethods]
impl NativeModule {
    /// Loads a module from a path (`str` or `os.PathLike`) or from its bytes, the GIL
    /// released meanwhile (tens of milliseconds for a large module). With
    /// `bodies_at_compile`, its function bodies are validated when it is compiled, not now
    /// (`wasp::Bodies::AtCompile`: for wasp's own runner).
    #[new]
    #[pyo3(signature = (source, bodies_at_compile=false))]
    fn new(source: &Bound<'_, PyAny>, bodies_at_compile: bool) -> PyResult<Self> {
        let py = source.py();
        let bodies = if bodies_at_compile {
            wasp::Bodies::AtCompile
        } else {
            wasp::Bodies::AtLoad
        };
        let inner = if let Ok(bytes) = source.cast::<PyBytes>() {
            let bytes = bytes.as_bytes().to_vec();
            py.detach(move || wasp::Module::from_bytes_with(bytes, bodies))
        } else if let Ok(path) = source.extract::<PathBuf>() {
            py.detach(move || wasp::Module::from_file_with(path, bodies))
        } else {
            return Err(PyTypeError::new_err(
                "a module is a path (str or os.PathLike) or its bytes",
            ));
        }
        .map_err(module_error)?;
        Ok(NativeModule { inner })
    }

    /// Pulls a module from an OCI registry: `oci://host[:port]/repository[:tag]` or
    /// `...@sha256:<digest>`, with the token given, or the credentials found for the
    /// registry (`WASP_REGISTRY_TOKEN`, `docker login`, `podman login`). The GIL is
    /// released meanwhile.
    #[staticmethod]
    #[pyo3(signature = (reference, token=None))]
    fn pull(py: Python<'_>, reference: &str, token: Option<String>) -> PyResult<Self> {
        let reference: Reference = reference.parse().map_err(registry_error)?;
        let pulled = py
            .detach(move || {
                let credentials = match token {
                    Some(token) => Credentials::token(&token, "the token given"),
                    None => Credentials::for_registry(reference.registry())?,
                };
                let registry = Registry::new([reference.registry()]);
                wasp_registry::block_on(registry.pull(
                    &reference,
                    &credentials,
                    wasp_registry::DEFAULT_MAX_MODULE_BYTES,
                ))
            })
            .map_err(registry_error)?;
        Ok(NativeModule {
            inner: pulled.module,
        })
    }

    /// Where the module was pulled from, pinned by digest
    /// (`host[:port]/repository@sha256:...`), or None.
    #[getter]
    fn source(&self) -> Option<String> {
        self.inner.source().map(ToString::to_string)
    }

    /// The jobs the module exports, sorted.
    #[getter]
    fn jobs(&self) -> Vec<String> {
        self.inner.jobs().to_vec()
    }

    /// The module's identity: the blake3 hash of its bytes, in hex.
    #[getter]
    fn hash(&self) -> String {
        self.inner.hash().to_hex()
    }

    /// The module's size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.inner.bytes().len()
    }
}

/// A registry's error as the Python exception that says it best.
fn registry_error(error: RegistryError) -> PyErr {
    let message = error.to_string();
    match error {
        RegistryError::NotFound { .. } => PyFileNotFoundError::new_err(message),
        RegistryError::Unauthorized { .. } => PyPermissionError::new_err(message),
        RegistryError::Unreachable { .. } => PyConnectionError::new_err(message),
        RegistryError::Reference(_)
        | RegistryError::NotWasm { .. }
        | RegistryError::TooLarge { .. }
        | RegistryError::Tampered { .. }
        | RegistryError::Module { .. } => PyValueError::new_err(message),
        _ => PyOSError::new_err(message),
    }
}
