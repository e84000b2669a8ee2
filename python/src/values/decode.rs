//! A job's result as Python values.
//!
//! A result is untrusted data: it is decoded into the types below and nothing else (no
//! pickle, no evaluation). Plain MessagePack gives `None`, `bool`, `int`, `float`, `str`,
//! `bytes`, `list` and `dict` (a map key that Python cannot hash, an array, becomes a
//! tuple). The extension types that wasp's Python runner writes
//! (`python/wasp/runner/guest/wasp_runner_codec.py` has the table) give tuples, sets,
//! frozensets, ints of any size, complex, bytearray, `Fraction`, `Decimal`, the `datetime`
//! types with fixed-offset time zones, `OrderedDict`, `Counter`, `deque` and `defaultdict`
//! of a built-in factory, built here by their constructors; and instances of the caller's
//! own classes, built by a Python callable the package gives for jobs whose classes
//! travelled with them (it builds only those).

use super::encode::MAX_DEPTH;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyComplex, PyDict, PyFloat, PyFrozenSet, PyList, PySet, PyString,
    PyTuple,
};
use rmpv::Value;

/// The extension types of the runner's results.
mod ext {
    pub(super) const TUPLE: i8 = 1;
    pub(super) const SET: i8 = 2;
    pub(super) const FROZENSET: i8 = 3;
    pub(super) const INT: i8 = 4;
    pub(super) const COMPLEX: i8 = 5;
    pub(super) const BYTEARRAY: i8 = 6;
    pub(super) const FRACTION: i8 = 7;
    pub(super) const DECIMAL: i8 = 8;
    pub(super) const DATETIME: i8 = 9;
    pub(super) const INSTANCE: i8 = 10;
    pub(super) const COLLECTION: i8 = 11;
}

/// Why a result could not be made into Python values.
pub(crate) struct Undecodable(pub(crate) String);

impl From<PyErr> for Undecodable {
    fn from(error: PyErr) -> Self {
        Undecodable(error.to_string())
    }
}

/// A job's result as Python values; `instances` builds the caller's classes' instances
/// (`(module, qualname, kind, state) -> object`), if the job may return them.
///
/// # Errors
/// [`Undecodable`] for what cannot be made into those types (an unknown extension type, a
/// map key that is a map, text that is not UTF-8, nesting past the limit, an instance of a
/// class that did not travel with the job).
pub(crate) fn to_python<'py>(
    py: Python<'py>,
    value: &Value,
    depth: usize,
    instances: Option<&Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyAny>, Undecodable> {
    Decoder { py, instances }.value(value, depth)
}

struct Decoder<'a, 'py> {
    py: Python<'py>,
    instances: Option<&'a Bound<'py, PyAny>>,
}

impl<'py> Decoder<'_, 'py> {
    fn value(&self, value: &Value, depth: usize) -> Result<Bound<'py, PyAny>, Undecodable> {
        let py = self.py;
        if depth > MAX_DEPTH {
            return Err(Undecodable(format!("it nests deeper than {MAX_DEPTH}")));
        }
        let object = match value {
            Value::Nil => py.None().into_bound(py),
            Value::Boolean(flag) => PyBool::new(py, *flag).to_owned().into_any(),
            Value::Integer(n) => match (n.as_i64(), n.as_u64()) {
                (Some(n), _) => {
                    let Ok(n) = n.into_pyobject(py);
                    n.into_any()
                }
                (None, Some(n)) => {
                    let Ok(n) = n.into_pyobject(py);
                    n.into_any()
                }
                (None, None) => return Err(Undecodable("an integer out of range".into())),
            },
            Value::F32(x) => PyFloat::new(py, f64::from(*x)).into_any(),
            Value::F64(x) => PyFloat::new(py, *x).into_any(),
            Value::String(text) => match text.as_str() {
                Some(text) => PyString::new(py, text).into_any(),
                None => return Err(Undecodable("text that is not UTF-8".into())),
            },
            Value::Binary(bytes) => PyBytes::new(py, bytes).into_any(),
            Value::Array(items) => PyList::new(py, self.items(items, depth)?)?.into_any(),
            Value::Map(entries) => self.map(entries, depth)?.into_any(),
            Value::Ext(kind, payload) => self.ext(*kind, payload, depth)?,
        };
        Ok(object)
    }

    fn items(&self, items: &[Value], depth: usize) -> Result<Vec<Bound<'py, PyAny>>, Undecodable> {
        items
            .iter()
            .map(|item| self.value(item, depth + 1))
            .collect()
    }

    fn map(
        &self,
        entries: &[(Value, Value)],
        depth: usize,
    ) -> Result<Bound<'py, PyDict>, Undecodable> {
        let dict = PyDict::new(self.py);
        for (key, item) in entries {
            let key = self.key(key, depth + 1)?;
            dict.set_item(key, self.value(item, depth + 1)?)?;
        }
        Ok(dict)
    }

    /// A map key as a hashable Python value: arrays become tuples.
    fn key(&self, key: &Value, depth: usize) -> Result<Bound<'py, PyAny>, Undecodable> {
        if depth > MAX_DEPTH {
            return Err(Undecodable(format!("it nests deeper than {MAX_DEPTH}")));
        }
        match key {
            Value::Array(items) => {
                let items = items
                    .iter()
                    .map(|item| self.key(item, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(PyTuple::new(self.py, items)?.into_any())
            }
            Value::Map(_) => Err(Undecodable("a map whose key is a map".into())),
            key => self.value(key, depth),
        }
    }

    fn ext(
        &self,
        kind: i8,
        payload: &[u8],
        depth: usize,
    ) -> Result<Bound<'py, PyAny>, Undecodable> {
        let py = self.py;
        let object = match kind {
            ext::TUPLE => PyTuple::new(py, self.inner_items(payload, depth)?)?.into_any(),
            ext::SET => PySet::new(py, self.inner_items(payload, depth)?)?.into_any(),
            ext::FROZENSET => PyFrozenSet::new(py, self.inner_items(payload, depth)?)?.into_any(),
            ext::INT => big_int(py, payload)?,
            ext::COMPLEX => {
                let [real, imag] = two_doubles(payload)?;
                PyComplex::from_doubles(py, real, imag).into_any()
            }
            ext::BYTEARRAY => PyByteArray::new(py, payload).into_any(),
            ext::FRACTION => {
                let [numerator, denominator] = self.inner_fields::<2>(payload, depth)?;
                constructor(py, &FRACTION, "fractions", "Fraction")?
                    .call1((numerator, denominator))?
            }
            ext::DECIMAL => {
                let text = self.inner(payload, depth)?;
                if !text.is_instance_of::<PyString>() {
                    return Err(Undecodable("a Decimal that is not text".into()));
                }
                constructor(py, &DECIMAL, "decimal", "Decimal")?.call1((text,))?
            }
            ext::DATETIME => self.datetime(payload, depth)?,
            ext::COLLECTION => self.collection(payload, depth)?,
            ext::INSTANCE => self.instance(payload, depth)?,
            kind => {
                return Err(Undecodable(format!(
                    "a MessagePack extension value of type {kind}, which wasp does not know"
                )));
            }
        };
        Ok(object)
    }

    /// The MessagePack value an extension's payload holds, decoded.
    fn inner(&self, payload: &[u8], depth: usize) -> Result<Bound<'py, PyAny>, Undecodable> {
        self.value(&read(payload)?, depth + 1)
    }

    fn inner_items(
        &self,
        payload: &[u8],
        depth: usize,
    ) -> Result<Vec<Bound<'py, PyAny>>, Undecodable> {
        match read(payload)? {
            Value::Array(items) => self.items(&items, depth + 1),
            _ => Err(Undecodable("a collection that is not an array".into())),
        }
    }

    fn inner_fields<const N: usize>(
        &self,
        payload: &[u8],
        depth: usize,
    ) -> Result<[Bound<'py, PyAny>; N], Undecodable> {
        self.inner_items(payload, depth)?
            .try_into()
            .map_err(|_| Undecodable(format!("an extension value without its {N} fields")))
    }

    fn datetime(&self, payload: &[u8], depth: usize) -> Result<Bound<'py, PyAny>, Undecodable> {
        let py = self.py;
        let fields = self.inner_items(payload, depth)?;
        let (kind, fields) = fields
            .split_first()
            .ok_or_else(|| Undecodable("an empty date or time".into()))?;
        let kind: u8 = kind.extract()?;
        let module = py.import("datetime")?;
        let object = match (kind, fields) {
            (0, [year, month, day]) => module.getattr("date")?.call1((year, month, day))?,
            (1, [hour, minute, second, micro, fold, tz]) => {
                let tz = timezone(py, tz)?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("fold", fold)?;
                module
                    .getattr("time")?
                    .call((hour, minute, second, micro, tz), Some(&kwargs))?
            }
            (2, [year, month, day, hour, minute, second, micro, fold, tz]) => {
                let tz = timezone(py, tz)?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("fold", fold)?;
                module.getattr("datetime")?.call(
                    (year, month, day, hour, minute, second, micro, tz),
                    Some(&kwargs),
                )?
            }
            (3, [days, seconds, micro]) => {
                module.getattr("timedelta")?.call1((days, seconds, micro))?
            }
            _ => return Err(Undecodable("a date or time of an unknown shape".into())),
        };
        Ok(object)
    }

    fn collection(&self, payload: &[u8], depth: usize) -> Result<Bound<'py, PyAny>, Undecodable> {
        let py = self.py;
        let fields = self.inner_items(payload, depth)?;
        let (kind, fields) = fields
            .split_first()
            .ok_or_else(|| Undecodable("an empty collection".into()))?;
        let kind: u8 = kind.extract()?;
        let collections = py.import("collections")?;
        let object = match (kind, fields) {
            (0, [items]) => collections.getattr("OrderedDict")?.call1((items,))?,
            (1, [items]) => collections.getattr("Counter")?.call1((items,))?,
            (2, [items, maxlen]) => collections.getattr("deque")?.call1((items, maxlen))?,
            (3, [factory, items]) => {
                let factory = builtin_factory(py, factory)?;
                collections
                    .getattr("defaultdict")?
                    .call1((factory, items))?
            }
            _ => return Err(Undecodable("a collection of an unknown shape".into())),
        };
        Ok(object)
    }

    fn instance(&self, payload: &[u8], depth: usize) -> Result<Bound<'py, PyAny>, Undecodable> {
        let Some(build) = self.instances else {
            return Err(Undecodable(
                "an instance of a class, which only a Python function's result may hold".into(),
            ));
        };
        let [module, qualname, kind, state] = self.inner_fields::<4>(payload, depth)?;
        Ok(build.call1((module, qualname, kind, state))?)
    }
}

static FRACTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DECIMAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn constructor<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    cell.import(py, module, name).cloned()
}

fn read(payload: &[u8]) -> Result<Value, Undecodable> {
    let mut bytes = payload;
    let value = rmpv::decode::read_value_with_max_depth(&mut bytes, MAX_DEPTH)
        .map_err(|error| Undecodable(format!("a malformed extension value ({error})")))?;
    if !bytes.is_empty() {
        return Err(Undecodable("an extension value with bytes after it".into()));
    }
    Ok(value)
}

/// An int of any size from its big-endian two's complement bytes.
fn big_int<'py>(py: Python<'py>, payload: &[u8]) -> Result<Bound<'py, PyAny>, Undecodable> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("signed", true)?;
    let int = py.get_type::<pyo3::types::PyInt>();
    Ok(int.call_method(
        "from_bytes",
        (PyBytes::new(py, payload), "big"),
        Some(&kwargs),
    )?)
}

fn two_doubles(payload: &[u8]) -> Result<[f64; 2], Undecodable> {
    let bytes: [u8; 16] = payload
        .try_into()
        .map_err(|_| Undecodable("a complex that is not 16 bytes".into()))?;
    let (real, imag) = bytes.split_at(8);
    let real = f64::from_be_bytes(real.try_into().expect("8 bytes"));
    let imag = f64::from_be_bytes(imag.try_into().expect("8 bytes"));
    Ok([real, imag])
}

/// A fixed-offset `datetime.timezone`, or `None`.
fn timezone<'py>(
    py: Python<'py>,
    tz: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyAny>, Undecodable> {
    if tz.is_none() {
        return Ok(tz.clone());
    }
    let fields: Vec<Bound<'py, PyAny>> = tz.extract()?;
    let [days, seconds, micro, name] = <[Bound<'py, PyAny>; 4]>::try_from(fields)
        .map_err(|_| Undecodable("a time zone of an unknown shape".into()))?;
    let module = py.import("datetime")?;
    let offset = module.getattr("timedelta")?.call1((days, seconds, micro))?;
    let timezone = module.getattr("timezone")?;
    Ok(if name.is_none() {
        timezone.call1((offset,))?
    } else {
        timezone.call1((offset, name))?
    })
}

/// A defaultdict's factory: one of the built-in types, by name, or `None`.
fn builtin_factory<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyAny>, Undecodable> {
    if name.is_none() {
        return Ok(name.clone());
    }
    let name: String = name.extract()?;
    const FACTORIES: [&str; 9] = [
        "list",
        "dict",
        "set",
        "int",
        "float",
        "str",
        "tuple",
        "bytes",
        "frozenset",
    ];
    if !FACTORIES.contains(&name.as_str()) {
        return Err(Undecodable(format!(
            "a defaultdict whose factory {name:?} is not a built-in type"
        )));
    }
    Ok(py.import("builtins")?.getattr(name.as_str())?)
}
