//! `NativeJob`: a submitted job, waited for with the GIL released and Ctrl-C heard.

use crate::completions::Completions;
use crate::errors::job_error;
use crate::values::to_python;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use std::sync::Arc;
use std::time::Duration;
use wasp::{Job, JobError, JobOutput};

/// How long a wait holds off Python's signal handlers: Ctrl-C is heard within this.
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// A job submitted to a server.
#[pyclass(module = "wasp._wasp", name = "NativeJob", frozen)]
pub(crate) struct NativeJob {
    job: Job<rmpv::Value>,
}

impl NativeJob {
    pub(crate) fn new(job: Job<rmpv::Value>) -> Self {
        NativeJob { job }
    }

    /// The reference that stands for this job's result in another job's arguments.
    pub(crate) fn reference(&self) -> [u8; 18] {
        self.job.to_msgpack()
    }
}

#[pymethods]
impl NativeJob {
    /// The job's id within its server.
    #[getter]
    fn id(&self) -> u64 {
        self.job.id().0
    }

    /// Whether the job is running: taken by a worker or a node, and not finished.
    fn running(&self) -> bool {
        self.job.is_running()
    }

    /// Whether the job has finished.
    fn done(&self) -> bool {
        self.job.is_finished()
    }

    /// Waits until the job finishes, at most `timeout` seconds (`None`: for ever), with the
    /// GIL released; Ctrl-C raises `KeyboardInterrupt` within a fraction of a second (the
    /// job goes on: the caller decides whether to cancel it). Returns whether it finished.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.job.is_finished() {
            // Often so when results are collected after a batch: no handing the GIL to
            // another thread and back.
            return Ok(true);
        }
        let deadline = timeout.map(|t| std::time::Instant::now() + seconds(t));
        loop {
            let slice = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    left.min(SIGNAL_CHECK)
                }
                None => SIGNAL_CHECK,
            };
            let job = self.job.clone();
            if py.detach(move || job.wait_timeout(slice).is_some()) {
                return Ok(true);
            }
            py.check_signals()?;
            if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
                return Ok(false);
            }
        }
    }

    /// Cancels the job: it ends as cancelled now, and stops where it runs. Returns whether
    /// it was still unfinished.
    fn cancel(&self) -> bool {
        self.job.cancel()
    }

    /// How the job ended: `(ok, value_or_error, stdout, stderr, duration, worker,
    /// fuel_used)`, where an error is `(kind, message, fields)`. The job must have finished
    /// (see `wait`). `instances`, if given, builds the instances of the caller's classes a
    /// result holds: `(module, qualname, kind, state) -> object`.
    #[pyo3(signature = (instances=None))]
    fn outcome<'py>(
        &self,
        py: Python<'py>,
        instances: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let output: JobOutput<rmpv::Value> = if self.job.is_finished() {
            // The usual case (a future or callback being settled): no wait, so no handing
            // the GIL to another thread and back.
            self.job.wait_output()
        } else {
            let job = self.job.clone();
            py.detach(move || job.wait_output())
        };
        let (ok, payload) = match &output.result {
            Ok(value) => match to_python(py, value, 0, instances.as_ref()) {
                Ok(value) => (true, value),
                Err(why) => {
                    let error =
                        JobError::BadResult(format!("the result cannot be read: {}", why.0));
                    (false, error_tuple(py, &error)?)
                }
            },
            Err(error) => (false, error_tuple(py, error)?),
        };
        PyTuple::new(
            py,
            [
                ok.into_pyobject(py)?.to_owned().into_any(),
                payload,
                PyBytes::new(py, &output.stdout).into_any(),
                PyBytes::new(py, &output.stderr).into_any(),
                output.duration.as_secs_f64().into_pyobject(py)?.into_any(),
                output.worker.into_pyobject(py)?.into_any(),
                output.fuel_used.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

impl NativeJob {
    /// Gives `handler` to `completions` when the job finishes.
    pub(crate) fn notify(&self, completions: &Arc<Completions>, handler: Py<PyAny>) {
        completions.expect();
        let completions = completions.clone();
        self.job.on_finish(move || completions.push(handler));
    }
}

fn error_tuple<'py>(py: Python<'py>, error: &JobError) -> PyResult<Bound<'py, PyAny>> {
    let (kind, message, fields) = job_error(py, error)?;
    Ok(PyTuple::new(
        py,
        [
            kind.into_pyobject(py)?.into_any(),
            message.into_pyobject(py)?.into_any(),
            fields.into_any(),
        ],
    )?
    .into_any())
}

/// `t` seconds as a duration; negative or not finite is zero, huge is "for ever" enough.
pub(crate) fn seconds(t: f64) -> Duration {
    Duration::try_from_secs_f64(t.max(0.0)).unwrap_or(Duration::from_secs(u32::MAX.into()))
}
