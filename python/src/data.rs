//! `NativeRef`: a value put once on a server ([`wasp::DataRef`]), which jobs take as an
//! argument; in a job's arguments it is written as its reference (43 bytes), as a job
//! taken as an argument is (`NativeJob`, 18 bytes): see `values/encode.rs`.

use pyo3::prelude::*;
use wasp::DataRef;

/// A value put once on a server.
#[pyclass(module = "wasp._wasp", name = "NativeRef", frozen)]
pub(crate) struct NativeRef {
    pub(crate) inner: DataRef,
}

#[pymethods]
impl NativeRef {
    /// The blake3 hash of the value's bytes, in hex.
    #[getter]
    fn hash(&self) -> String {
        self.inner.hash()
    }

    /// The size of the value's bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.inner.len()
    }
}
