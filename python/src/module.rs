//! `Module`: a wasm module of jobs, loaded and checked.

use crate::errors::module_error;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;

/// A WebAssembly module of wasp jobs, checked when loaded (not compiled: that happens once
/// per server, on first use).
#[pyclass(module = "wasp._wasp", name = "NativeModule", frozen)]
pub(crate) struct NativeModule {
    pub(crate) inner: wasp::Module,
}

#[pymethods]
impl NativeModule {
    /// Loads a module from a path (`str` or `os.PathLike`) or from its bytes.
    #[new]
    fn new(source: &Bound<'_, PyAny>) -> PyResult<Self> {
        let inner = if let Ok(bytes) = source.cast::<PyBytes>() {
            wasp::Module::from_bytes(bytes.as_bytes().to_vec())
        } else if let Ok(path) = source.extract::<PathBuf>() {
            wasp::Module::from_file(path)
        } else {
            return Err(PyTypeError::new_err(
                "a module is a path (str or os.PathLike) or its bytes",
            ));
        }
        .map_err(module_error)?;
        Ok(NativeModule { inner })
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
