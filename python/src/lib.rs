/*!
The native part of wasp's Python package (`wasp._wasp`): modules, a server, jobs, and the
conversion of Python values to and from MessagePack. The Python API (`wasp.Server`, pp's,
and `wasp.Client`, with futures) is written in Python on top of it (`python/wasp/`); see
`python/README.md`.

```python
import wasp
module = wasp.Module("sum_primes_guest.wasm")
with wasp.Client(workers=2) as client:
    print(client.submit(module.sum_primes, 100).result())   # 1060
```

# Layout

* `module`: `NativeModule`, a wasm module of jobs.
* `server`: `NativeServer`, submissions, waits with the GIL released and Ctrl-C heard,
  statistics.
* `job`: `NativeJob`, one job's wait, cancel and outcome.
* `completions`: finished jobs for the package's dispatcher thread (futures, callbacks).
* `values`: Python values to MessagePack and back.
* `errors`: Rust errors as Python exceptions, or as data for a job's exception.
*/

mod completions;
mod errors;
mod job;
mod module;
mod server;
mod values;

use pyo3::prelude::*;
use std::time::{Duration, Instant};

/// Runs `jobs` calls of `function` of `module` through the Rust API, on a server of
/// `workers` workers, all submitted at once, then `round_trips` calls one at a time: the
/// baseline of the Python API's benchmark. Returns `(jobs per second, mean round trip in
/// seconds)`. The arguments are one integer, `0..jobs`.
#[pyfunction]
fn _rust_api_baseline(
    py: Python<'_>,
    module: &module::NativeModule,
    function: &str,
    jobs: u64,
    round_trips: u64,
    workers: usize,
) -> PyResult<(f64, f64)> {
    let module = module.inner.clone();
    let function = function.to_owned();
    py.detach(move || {
        let server = wasp::Server::builder()
            .workers(workers)
            .no_disk_cache()
            .build()
            .map_err(errors::config_error)?;
        let failed =
            |error: wasp::JobError| pyo3::exceptions::PyRuntimeError::new_err(error.to_string());
        server
            .submit::<i64, _>(&module, &function, (0i64,))
            .wait()
            .map_err(failed)?;
        let start = Instant::now();
        let handles: Vec<_> = (0..jobs as i64)
            .map(|x| server.submit::<i64, _>(&module, &function, (x,)))
            .collect();
        for job in &handles {
            job.wait().map_err(failed)?;
        }
        let rate = jobs as f64 / start.elapsed().as_secs_f64();
        let mut total = Duration::ZERO;
        for x in 0..round_trips as i64 {
            let start = Instant::now();
            server
                .submit::<i64, _>(&module, &function, (x,))
                .wait()
                .map_err(failed)?;
            total += start.elapsed();
        }
        Ok((rate, total.as_secs_f64() / round_trips.max(1) as f64))
    })
}

/// Decodes MessagePack `data` as a job's result is decoded (see `values`): `instances`, if
/// given, builds the instances of the caller's classes it holds. Raises `ValueError` for
/// what cannot be decoded.
#[pyfunction]
#[pyo3(signature = (data, instances=None))]
fn decode_value<'py>(
    py: Python<'py>,
    data: &[u8],
    instances: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut bytes = data;
    let value = rmpv::decode::read_value_with_max_depth(&mut bytes, values::MAX_DEPTH)
        .map_err(|error| pyo3::exceptions::PyValueError::new_err(error.to_string()))?;
    values::to_python(py, &value, 0, instances.as_ref())
        .map_err(|why| pyo3::exceptions::PyValueError::new_err(why.0))
}

/// The native module of the `wasp` package.
#[pymodule]
fn _wasp(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<module::NativeModule>()?;
    module.add_class::<server::NativeServer>()?;
    module.add_class::<job::NativeJob>()?;
    module.add_function(wrap_pyfunction!(_rust_api_baseline, module)?)?;
    module.add_function(wrap_pyfunction!(decode_value, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("WIT", wasp::WIT)?;
    Ok(())
}
