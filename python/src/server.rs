//! `NativeServer`: a wasp server (local workers and nodes) for the Python package.

use crate::completions::Completions;
use crate::data::NativeRef;
use crate::errors::{config_error, secret_error};
use crate::job::{NativeJob, SIGNAL_CHECK, seconds};
use crate::module::NativeModule;
use crate::values::{encode_args, encode_value};
use pyo3::exceptions::{PyConnectionError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasp::{ClusterSecret, GroupProgress, JobOptions, MonitorConfig, Peer, Server, Stats};

/// How a server's secret was given.
#[derive(FromPyObject)]
pub(crate) enum SecretSource {
    /// 32 raw bytes.
    Raw(Vec<u8>),
    /// 64 hex digits (as `wasp secret new` writes), or a passphrase.
    Text(String),
}

/// A wasp server: local workers, and nodes if given.
#[pyclass(module = "wasp._wasp", name = "NativeServer", frozen)]
pub(crate) struct NativeServer {
    /// `None` once closed.
    server: Mutex<Option<Arc<Server>>>,
    completions: Arc<Completions>,
}

impl NativeServer {
    /// The server, or `RuntimeError` if it was closed.
    fn server(&self) -> PyResult<Arc<Server>> {
        self.server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| PyRuntimeError::new_err("the wasp server was closed (destroyed)"))
    }
}

/// The limits, group and result cache of one job (`cache`: `None` is the server's).
fn job_options(
    group: Option<&str>,
    timeout: Option<f64>,
    max_memory: Option<u64>,
    max_output: Option<u64>,
    fuel: Option<u64>,
    cache: Option<bool>,
) -> JobOptions {
    let mut options = JobOptions::new();
    if let Some(cache) = cache {
        options = options.cache(cache);
    }
    if let Some(group) = group {
        options = options.group(group);
    }
    if let Some(timeout) = timeout {
        options = options.timeout(seconds(timeout));
    }
    if let Some(bytes) = max_memory {
        options = options.max_memory(bytes);
    }
    if let Some(bytes) = max_output {
        options = options.max_output(bytes);
    }
    if let Some(fuel) = fuel {
        options = options.fuel(fuel);
    }
    options
}

#[pymethods]
impl NativeServer {
    /// Starts a server. See `wasp.Client` for each setting.
    #[new]
    #[pyo3(signature = (
        *, workers=None, peers=Vec::new(), secret=None, secret_file=None, insecure=false,
        cache_dir=None, no_cache=false, node_timeout=None, resolve_interval=None,
        max_retries=None, max_queued=None,
        timeout=None, max_memory=None, max_output=None, fuel=None, metrics=None,
        metrics_token=None, cache=false, shipped_code_dir=None, shipped_with=None
    ))]
    #[expect(
        clippy::too_many_arguments,
        reason = "keyword arguments of a Python constructor"
    )]
    fn new(
        py: Python<'_>,
        workers: Option<usize>,
        peers: Vec<String>,
        secret: Option<SecretSource>,
        secret_file: Option<std::path::PathBuf>,
        insecure: bool,
        cache_dir: Option<std::path::PathBuf>,
        no_cache: bool,
        node_timeout: Option<f64>,
        resolve_interval: Option<f64>,
        max_retries: Option<u32>,
        max_queued: Option<usize>,
        timeout: Option<f64>,
        max_memory: Option<u64>,
        max_output: Option<u64>,
        fuel: Option<u64>,
        metrics: Option<String>,
        metrics_token: Option<String>,
        cache: bool,
        shipped_code_dir: Option<std::path::PathBuf>,
        shipped_with: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
        let mut builder = Server::builder().cache(cache);
        if let Some(monitor) = monitor_config(metrics, metrics_token)? {
            builder = builder.monitor(monitor);
        }
        if let Some(workers) = workers {
            builder = builder.workers(workers);
        }
        let peers = peers
            .iter()
            .map(|peer| peer.parse::<Peer>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(config_error)?;
        builder = builder.peers(peers);
        let secret = match (secret, secret_file) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "give secret or secret_file, not both",
                ));
            }
            (Some(SecretSource::Raw(bytes)), None) => {
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    PyValueError::new_err("a raw secret is 32 bytes (or give 64 hex digits)")
                })?;
                Some(ClusterSecret::from_bytes(key))
            }
            (Some(SecretSource::Text(text)), None) => {
                Some(ClusterSecret::parse(&text).map_err(secret_error)?)
            }
            (None, Some(path)) => Some(ClusterSecret::from_file(path).map_err(secret_error)?),
            (None, None) => None,
        };
        if let Some(secret) = secret {
            builder = builder.secret(secret);
        }
        if insecure {
            builder = builder.insecure();
        }
        builder = match (cache_dir, no_cache) {
            (_, true) => builder.no_disk_cache(),
            (Some(dir), false) => builder.cache_dir(dir),
            (None, false) => builder,
        };
        if let Some(dir) = shipped_code_dir {
            builder = builder.shipped_code_dir(dir);
        }
        if let Some(program) = shipped_with {
            builder = builder.shipped_with(program);
        }
        if let Some(timeout) = node_timeout {
            builder = builder.node_timeout(seconds(timeout));
        }
        if let Some(interval) = resolve_interval {
            builder = builder.resolve_interval(seconds(interval));
        }
        if let Some(retries) = max_retries {
            builder = builder.max_retries(retries);
        }
        if let Some(jobs) = max_queued {
            builder = builder.max_queued(jobs);
        }
        if let Some(timeout) = timeout {
            builder = builder.timeout(seconds(timeout));
        }
        if let Some(bytes) = max_memory {
            builder = builder.max_memory(bytes);
        }
        if let Some(bytes) = max_output {
            builder = builder.max_output(bytes);
        }
        if let Some(fuel) = fuel {
            builder = builder.fuel(fuel);
        }
        // Building compiles nothing, but starts threads and may bind sockets.
        let server = py.detach(move || builder.build()).map_err(config_error)?;
        Ok(NativeServer {
            server: Mutex::new(Some(Arc::new(server))),
            completions: Arc::new(Completions::default()),
        })
    }

    /// Submits job `function` of `module` with `args` (a tuple or list of values). With
    /// `block`, waits for room in a bounded queue (Ctrl-C raises `KeyboardInterrupt`);
    /// without, returns `None` if the queue is full. With `reuse`, a component's job may
    /// run in an instance kept from an earlier job (`JobOptions::reuse_instance`).
    #[pyo3(signature = (
        module, function, args, group=None, timeout=None, max_memory=None,
        max_output=None, fuel=None, block=true, reuse=false, cache=None
    ))]
    #[expect(
        clippy::too_many_arguments,
        reason = "keyword arguments of a Python method"
    )]
    fn submit(
        &self,
        py: Python<'_>,
        module: &NativeModule,
        function: &str,
        args: &Bound<'_, PyAny>,
        group: Option<&str>,
        timeout: Option<f64>,
        max_memory: Option<u64>,
        max_output: Option<u64>,
        fuel: Option<u64>,
        block: bool,
        reuse: bool,
        cache: Option<bool>,
    ) -> PyResult<Option<NativeJob>> {
        let server = self.server()?;
        let args = encode_args(args)?;
        let options =
            job_options(group, timeout, max_memory, max_output, fuel, cache).reuse_instance(reuse);
        let module = &module.inner;
        if server.max_queued().is_none() {
            // Unbounded: a submission never waits.
            let job = py.detach(|| server.submit_raw(module, function, args, &options));
            return Ok(Some(NativeJob::new(job)));
        }
        // Bounded: room is taken in the same step as the job is queued, and waited for a
        // slice at a time, so that Ctrl-C is heard while the queue is full.
        loop {
            let attempt = args.clone();
            match py.detach(|| server.try_submit_raw(module, function, attempt, &options)) {
                Ok(job) => return Ok(Some(NativeJob::new(job))),
                Err(_) if !block => return Ok(None),
                Err(_) => {
                    py.detach(|| server.wait_for_room(SIGNAL_CHECK));
                    py.check_signals()?;
                }
            }
        }
    }

    /// Puts a value once: `data`, bytes that become one MessagePack `bin` (a pickle), or
    /// with `encode`, any value that crosses as MessagePack (for a module's jobs). The
    /// bytes are hashed with the GIL released.
    #[pyo3(signature = (data, encode=false))]
    fn put(&self, py: Python<'_>, data: &Bound<'_, PyAny>, encode: bool) -> PyResult<NativeRef> {
        let server = self.server()?;
        let bytes = if encode {
            encode_value(data)?
        } else {
            let raw = data
                .cast::<PyBytes>()
                .map_err(|_| pyo3::exceptions::PyTypeError::new_err("put's data must be bytes"))?;
            let raw = raw.as_bytes();
            let mut bytes = Vec::with_capacity(raw.len() + 5);
            rmp::encode::write_bin(&mut bytes, raw)
                .map_err(|error| PyValueError::new_err(error.to_string()))?;
            bytes
        };
        let inner = py
            .detach(|| server.put_raw(bytes))
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        Ok(NativeRef { inner })
    }

    /// Waits until the results the result cache keeps are written.
    fn flush_results(&self, py: Python<'_>) -> PyResult<()> {
        let server = self.server()?;
        py.detach(|| server.flush_results());
        Ok(())
    }

    /// Gives `handler` to the dispatcher (`next_completions`) when `job` finishes.
    fn watch(&self, job: &NativeJob, handler: Py<PyAny>) {
        job.notify(&self.completions, handler);
    }

    /// The handlers of the watched jobs that finished, waiting up to `timeout` seconds for
    /// the first (with the GIL released).
    fn next_completions(&self, py: Python<'_>, timeout: f64) -> Vec<Py<PyAny>> {
        let completions = self.completions.clone();
        py.detach(move || completions.take(seconds(timeout)))
    }

    /// How many watched jobs' handlers the dispatcher has not taken yet.
    fn watched(&self) -> usize {
        self.completions.watched()
    }

    /// Waits until `group` (every job for `None`) has nothing pending, at most `timeout`
    /// seconds (`None`: for ever); Ctrl-C raises `KeyboardInterrupt`. Returns `(submitted,
    /// finished, failed)`.
    #[pyo3(signature = (group=None, timeout=None))]
    fn wait_group(
        &self,
        py: Python<'_>,
        group: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<(u64, u64, u64)> {
        let server = self.server()?;
        let deadline = timeout.map(|t| Instant::now() + seconds(t));
        loop {
            let slice = deadline.map_or(SIGNAL_CHECK, |deadline| {
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(SIGNAL_CHECK)
            });
            let (waiting, name) = (server.clone(), group.clone());
            let summary = py.detach(move || match &name {
                Some(name) => waiting.wait_group_timeout(name, slice),
                None => waiting.wait_all_timeout(slice),
            });
            let done = summary.pending() == 0;
            let out_of_time = deadline.is_some_and(|deadline| Instant::now() >= deadline);
            if done || out_of_time {
                return Ok((summary.submitted, summary.finished, summary.failed));
            }
            py.check_signals()?;
        }
    }

    /// Compiles `module` for the local workers now (or loads it from the disk cache), with
    /// the GIL released; `RuntimeError` if it cannot be compiled.
    fn prepare(&self, py: Python<'_>, module: &NativeModule) -> PyResult<()> {
        let server = self.server()?;
        let module = module.inner.clone();
        py.detach(move || server.prepare(&module))
            .map_err(|error| PyRuntimeError::new_err(error.to_string()))
    }

    /// Cancels every job still queued (running ones go on); returns how many.
    fn cancel_queued(&self) -> PyResult<usize> {
        Ok(self.server()?.cancel_queued())
    }

    /// Cancels every unfinished job of `group`; returns how many.
    fn cancel_group(&self, group: &str) -> PyResult<usize> {
        Ok(self.server()?.cancel_group(group))
    }

    /// The configured number of local workers.
    fn workers(&self) -> PyResult<usize> {
        Ok(self.server()?.workers())
    }

    /// Grows or shrinks the local pool.
    fn set_workers(&self, py: Python<'_>, workers: usize) -> PyResult<()> {
        let server = self.server()?;
        py.detach(move || server.set_workers(workers))
            .map_err(config_error)
    }

    /// Local workers plus the workers of the connected nodes.
    fn capacity(&self) -> PyResult<usize> {
        Ok(self.server()?.capacity())
    }

    /// Waits until `count` nodes are connected, at most `timeout` seconds.
    fn wait_for_nodes(&self, py: Python<'_>, count: usize, timeout: f64) -> PyResult<usize> {
        let server = self.server()?;
        py.detach(move || server.wait_for_nodes(count, seconds(timeout)))
            .map_err(|error| PyConnectionError::new_err(error.to_string()))
    }

    /// The address (`host:port`) of the server's monitor, if it has one.
    fn monitor_address(&self) -> PyResult<Option<String>> {
        Ok(self
            .server()?
            .monitor_address()
            .map(|address| address.to_string()))
    }

    /// The progress of `group` as a dict, or `None` if it has no counters.
    fn progress<'py>(&self, py: Python<'py>, group: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        let progress = self.server()?.progress(group);
        progress
            .map(|progress| progress_dict(py, &progress))
            .transpose()
    }

    /// The progress of up to `limit` groups (pending ones first), as dicts.
    fn groups_progress<'py>(&self, py: Python<'py>, limit: usize) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for progress in self.server()?.groups_progress(limit) {
            list.append(progress_dict(py, &progress)?)?;
        }
        Ok(list)
    }

    /// The statistics, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.server()?.stats())
    }

    /// The statistics table, laid out as pp's `print_stats`.
    fn stats_table(&self) -> PyResult<String> {
        Ok(self.server()?.stats().to_string())
    }

    /// Stops the server now: queued jobs are cancelled, running ones stopped, connections
    /// to nodes closed, whatever other threads hold (a thread waiting for a job or for room
    /// sees its job cancelled). Later calls raise `RuntimeError`.
    fn close(&self, py: Python<'_>) {
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        // Shutting down joins threads that never need the GIL: release it meanwhile.
        py.detach(move || {
            if let Some(server) = server {
                server.shutdown();
            }
        });
    }

    /// Whether the server was closed.
    fn closed(&self) -> bool {
        self.server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }
}

/// The monitor asked for: loopback without a token, anywhere with one.
fn monitor_config(
    metrics: Option<String>,
    token: Option<String>,
) -> PyResult<Option<MonitorConfig>> {
    let Some(address) = metrics else {
        if token.is_some() {
            return Err(PyValueError::new_err(
                "metrics_token needs metrics (an address)",
            ));
        }
        return Ok(None);
    };
    let listen = address.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "metrics is an address and port, like \"127.0.0.1:9464\", not {address:?}"
        ))
    })?;
    Ok(Some(match token {
        Some(token) => MonitorConfig::public(listen, token),
        None => MonitorConfig::new(listen),
    }))
}

fn progress_dict<'py>(py: Python<'py>, progress: &GroupProgress) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("name", &progress.name)?;
    dict.set_item("submitted", progress.submitted)?;
    dict.set_item("finished", progress.finished)?;
    dict.set_item("failed", progress.failed)?;
    dict.set_item("running", progress.running)?;
    dict.set_item("queued", progress.queued)?;
    dict.set_item("total", progress.total)?;
    dict.set_item("elapsed_seconds", progress.elapsed.as_secs_f64())?;
    dict.set_item("rate_per_second", progress.rate)?;
    dict.set_item("eta_seconds", progress.eta.map(|eta| eta.as_secs_f64()))?;
    Ok(dict)
}

fn stats_dict<'py>(py: Python<'py>, stats: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("elapsed", stats.elapsed.as_secs_f64())?;
    dict.set_item("target_workers", stats.target_workers)?;
    dict.set_item("queued", stats.queued)?;
    dict.set_item("running", stats.running)?;
    dict.set_item("submitted", stats.submitted)?;
    dict.set_item("finished", stats.finished)?;
    dict.set_item("failed", stats.failed)?;
    let workers = PyList::empty(py);
    for worker in &stats.workers {
        let row = PyDict::new(py);
        row.set_item("name", &worker.name)?;
        row.set_item("jobs", worker.jobs)?;
        row.set_item("failed", worker.failed)?;
        row.set_item("busy", worker.busy.as_secs_f64())?;
        row.set_item("active", worker.active)?;
        workers.append(row)?;
    }
    dict.set_item("workers", workers)?;
    let nodes = PyList::empty(py);
    for node in &stats.nodes {
        let row = PyDict::new(py);
        row.set_item("address", &node.address)?;
        row.set_item("name", &node.name)?;
        row.set_item("id", &node.id)?;
        row.set_item("arch", &node.arch)?;
        row.set_item("workers", node.workers)?;
        row.set_item("connected", node.connected)?;
        row.set_item("draining", node.draining)?;
        row.set_item("connections", node.connections)?;
        row.set_item("jobs", node.jobs)?;
        row.set_item("failed", node.failed)?;
        row.set_item("busy", node.busy.as_secs_f64())?;
        row.set_item("retries", node.retries)?;
        row.set_item("module_transfers", node.module_transfers)?;
        row.set_item("data_transfers", node.data_transfers)?;
        row.set_item("data_bytes", node.data_bytes)?;
        row.set_item("bytes_sent", node.bytes_sent)?;
        row.set_item("preparing", node.preparing)?;
        row.set_item("last_error", &node.last_error)?;
        row.set_item("refused", node.refused)?;
        nodes.append(row)?;
    }
    dict.set_item("nodes", nodes)?;
    let cache = PyDict::new(py);
    cache.set_item("compiled", stats.cache.compiled)?;
    cache.set_item("loaded_from_disk", stats.cache.loaded_from_disk)?;
    cache.set_item("reused", stats.cache.reused)?;
    dict.set_item("cache", cache)?;
    let results = PyDict::new(py);
    results.set_item("hits", stats.results.hits)?;
    results.set_item("misses", stats.results.misses)?;
    results.set_item("stored", stats.results.stored)?;
    results.set_item("not_cacheable", stats.results.not_cacheable)?;
    dict.set_item("results", results)?;
    dict.set_item("held", stats.held)?;
    Ok(dict)
}
