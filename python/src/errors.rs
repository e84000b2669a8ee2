//! Rust errors as the Python package sees them.
//!
//! A job's error crosses as data: a kind (`"timeout"`, `"panic"`, ...), a message and its
//! fields; `wasp/errors.py` raises the matching exception, with the job's output attached.
//! Configuration errors are raised here: `ValueError` for a bad setting, `OSError` for a
//! file that cannot be read, with the Rust message.

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use wasp::{JobError, ModuleError, SecretError};

/// `error` as (kind, message, fields).
pub(crate) fn job_error<'py>(
    py: Python<'py>,
    error: &JobError,
) -> PyResult<(&'static str, String, Bound<'py, PyDict>)> {
    let fields = PyDict::new(py);
    let kind = match error {
        JobError::UnknownFunction {
            function,
            available,
        } => {
            fields.set_item("function", function)?;
            fields.set_item("available", available.clone())?;
            "unknown_function"
        }
        JobError::BadArguments(_) => "bad_arguments",
        JobError::Failed(_) => "failed",
        JobError::Panic(_) => "panic",
        JobError::Trap { kind } => {
            fields.set_item("trap", kind.to_string())?;
            "trap"
        }
        JobError::Timeout(timeout) => {
            fields.set_item("timeout", timeout.as_secs_f64())?;
            "timeout"
        }
        JobError::MemoryLimit { limit } => {
            fields.set_item("limit", limit)?;
            "memory_limit"
        }
        JobError::OutputLimit { stream, limit } => {
            fields.set_item("stream", stream)?;
            fields.set_item("limit", limit)?;
            "output_limit"
        }
        JobError::Forbidden(_) => "forbidden",
        JobError::ResultTooLarge { size, limit } => {
            fields.set_item("size", size)?;
            fields.set_item("limit", limit)?;
            "result_too_large"
        }
        JobError::FuelExhausted { limit } => {
            fields.set_item("limit", limit)?;
            "fuel_exhausted"
        }
        JobError::Exited(status) => {
            fields.set_item("status", status)?;
            "exited"
        }
        JobError::Abi(_) => "abi",
        JobError::BadResult(_) => "bad_result",
        JobError::Module(_) => "module",
        JobError::Cancelled(_) => "cancelled",
        JobError::NodeLost { attempts, node } => {
            fields.set_item("attempts", attempts)?;
            fields.set_item("node", node)?;
            "node_lost"
        }
        JobError::LimitRefused {
            limit,
            asked,
            allowed,
        } => {
            fields.set_item("limit", limit)?;
            fields.set_item("asked", asked)?;
            fields.set_item("allowed", allowed)?;
            "limit_refused"
        }
        JobError::ModuleRefused(_) => "module_refused",
        JobError::DataTooLarge { size, limit } => {
            fields.set_item("size", size)?;
            fields.set_item("limit", limit)?;
            "data_too_large"
        }
        JobError::Dependency {
            dependency,
            failed,
            error,
        } => {
            fields.set_item("dependency", dependency)?;
            fields.set_item("failed", failed)?;
            // The first failure of the chain, as (kind, message, fields) in turn.
            fields.set_item("error", job_error(py, error)?)?;
            "dependency"
        }
        _ => "internal",
    };
    Ok((kind, error.to_string(), fields))
}

/// A module that could not be loaded: `OSError` (its subclass for a missing or forbidden
/// file) if it could not be read, `ValueError` if it is not a wasp module.
pub(crate) fn module_error(error: ModuleError) -> PyErr {
    match &error {
        ModuleError::Read { error: io, .. } => os_error(io.kind(), error.to_string()),
        _ => PyValueError::new_err(error.to_string()),
    }
}

/// A secret that could not be loaded.
pub(crate) fn secret_error(error: SecretError) -> PyErr {
    match &error {
        SecretError::Read { error: io, .. } => os_error(io.kind(), error.to_string()),
        _ => PyValueError::new_err(error.to_string()),
    }
}

fn os_error(kind: std::io::ErrorKind, message: String) -> PyErr {
    match kind {
        std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
        _ => PyOSError::new_err(message),
    }
}

/// A setting out of range (`ValueError`), or a server that cannot start (`OSError`).
pub(crate) fn config_error(error: wasp::ConfigError) -> PyErr {
    match error {
        wasp::ConfigError::Thread(_)
        | wasp::ConfigError::Monitor(
            wasp::MonitorError::Bind { .. } | wasp::MonitorError::Thread(_),
        ) => PyOSError::new_err(error.to_string()),
        error => PyValueError::new_err(error.to_string()),
    }
}
