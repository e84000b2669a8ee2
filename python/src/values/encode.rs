//! A job's arguments as MessagePack.
//!
//! What crosses to a module's job: `None`, `bool`, `int` (from -2**63 to 2**64 - 1:
//! MessagePack's integers), `float`, `str`, `bytes` and `bytearray` (as binary), `list` and
//! `tuple` (as arrays), and `dict` with keys of those types. Anything else is a `TypeError`
//! that names where the value is (`args[1]['points'][3]`). (A Python function's call
//! travels pickled, inside these: see `wasp._ship`.)

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use std::fmt::Write as _;

/// How deeply values may nest, both ways: deeper is refused, not a stack overflow.
pub(crate) const MAX_DEPTH: usize = 128;

/// Where a value sits in the arguments, for error messages (rendered only then: a key's
/// `repr` is the caller's code, run neither on the hot path nor while a dict is iterated).
#[derive(Default)]
struct Path<'py>(Vec<Step<'py>>);

enum Step<'py> {
    Index(usize),
    Key(Bound<'py, PyAny>),
}

impl Path<'_> {
    fn render(&self) -> String {
        let mut text = String::from("args");
        for step in &self.0 {
            match step {
                Step::Index(index) => {
                    let _ = write!(text, "[{index}]");
                }
                Step::Key(key) => {
                    let shown = key
                        .repr()
                        .map(|repr| repr.to_string())
                        .unwrap_or_else(|_| "?".into());
                    let _ = write!(text, "[{shown}]");
                }
            }
        }
        text
    }
}

/// Encodes a job's arguments (a tuple or list of values) as a MessagePack array.
///
/// # Errors
/// `TypeError` naming the first value that cannot cross, and why.
pub(crate) fn encode_args(args: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let mut out = Vec::with_capacity(16);
    let mut path = Path::default();
    let items: Vec<Bound<'_, PyAny>> = if let Ok(tuple) = args.cast::<PyTuple>() {
        tuple.iter().collect()
    } else if let Ok(list) = args.cast::<PyList>() {
        list.iter().collect()
    } else {
        return Err(PyTypeError::new_err(
            "a job's arguments must be a tuple or a list",
        ));
    };
    write_len(&mut out, items.len(), Kind::Array)?;
    for (index, item) in items.iter().enumerate() {
        path.0.push(Step::Index(index));
        encode(item, &mut out, &mut path, 0)?;
        path.0.pop();
    }
    Ok(out)
}

enum Kind {
    Array,
    Map,
}

fn write_len(out: &mut Vec<u8>, len: usize, kind: Kind) -> PyResult<()> {
    let len = u32::try_from(len).map_err(|_| PyValueError::new_err("a collection too large"))?;
    let written = match kind {
        Kind::Array => rmp::encode::write_array_len(out, len),
        Kind::Map => rmp::encode::write_map_len(out, len),
    };
    written
        .map(|_| ())
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

fn refuse(value: &Bound<'_, PyAny>, path: &Path<'_>, why: &str) -> PyErr {
    let kind = value
        .get_type()
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("{} is {}: {why}", path.render(), article(&kind)))
}

fn article(kind: &str) -> String {
    let vowel = kind.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {kind}", if vowel { "an" } else { "a" })
}

/// What crosses, for error messages.
const SUPPORTED: &str = "a job's values are None, bool, int, float, str, bytes, list, tuple \
                         and dict (MessagePack)";

fn encode<'py>(
    value: &Bound<'py, PyAny>,
    out: &mut Vec<u8>,
    path: &mut Path<'py>,
    depth: usize,
) -> PyResult<()> {
    if depth > MAX_DEPTH {
        return Err(refuse(
            value,
            path,
            &format!("values nest at most {MAX_DEPTH} deep"),
        ));
    }
    let failed = |e: std::io::Error| PyValueError::new_err(e.to_string());
    if value.is_none() {
        rmp::encode::write_nil(out).map_err(failed)?;
    } else if let Ok(flag) = value.cast::<PyBool>() {
        rmp::encode::write_bool(out, flag.is_true()).map_err(failed)?;
    } else if value.is_instance_of::<PyInt>() {
        if let Ok(n) = value.extract::<i64>() {
            rmp::encode::write_sint(out, n).map_err(|e| PyValueError::new_err(e.to_string()))?;
        } else if let Ok(n) = value.extract::<u64>() {
            rmp::encode::write_uint(out, n).map_err(|e| PyValueError::new_err(e.to_string()))?;
        } else {
            return Err(refuse(
                value,
                path,
                "too large: ints cross as MessagePack integers, from -2**63 to 2**64 - 1 \
                 (pass larger ones as str or bytes)",
            ));
        }
    } else if let Ok(number) = value.cast::<PyFloat>() {
        rmp::encode::write_f64(out, number.value())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
    } else if let Ok(text) = value.cast::<PyString>() {
        let text = text
            .to_cow()
            .map_err(|_| refuse(value, path, "not valid Unicode (a lone surrogate)"))?;
        rmp::encode::write_str(out, &text).map_err(|e| PyValueError::new_err(e.to_string()))?;
    } else if let Ok(bytes) = value.cast::<PyBytes>() {
        rmp::encode::write_bin(out, bytes.as_bytes())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
    } else if let Ok(bytes) = value.cast::<PyByteArray>() {
        rmp::encode::write_bin(out, &bytes.to_vec())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
    } else if let Ok(list) = value.cast::<PyList>() {
        encode_items(list.iter(), list.len(), out, path, depth)?;
    } else if let Ok(tuple) = value.cast::<PyTuple>() {
        encode_items(tuple.iter(), tuple.len(), out, path, depth)?;
    } else if let Ok(dict) = value.cast::<PyDict>() {
        write_len(out, dict.len(), Kind::Map)?;
        for (key, item) in dict.iter() {
            path.0.push(Step::Key(key.clone()));
            encode(&key, out, path, depth + 1)?;
            encode(&item, out, path, depth + 1)?;
            path.0.pop();
        }
    } else {
        return Err(refuse(value, path, SUPPORTED));
    }
    Ok(())
}

fn encode_items<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    len: usize,
    out: &mut Vec<u8>,
    path: &mut Path<'py>,
    depth: usize,
) -> PyResult<()> {
    write_len(out, len, Kind::Array)?;
    for (index, item) in items.enumerate() {
        path.0.push(Step::Index(index));
        encode(&item, out, path, depth + 1)?;
        path.0.pop();
    }
    Ok(())
}
