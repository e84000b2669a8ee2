//! The metrics, in Prometheus' conventions: a `wasp_` prefix, base units, `_total` on
//! counters, and labels from bounded sets only (an outcome, a reason, a node's address;
//! never a job). Read from the server at each scrape and encoded by `prometheus-client`.

use super::Sources;
use super::status::NodeStatus;
use super::view::Counters;
use crate::cluster::nodes::DEPARTED;
use crate::error::JobError;
use crate::metrics::histogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// A registry holding wasp's collector for `sources`.
pub(crate) fn registry(sources: Arc<Sources>) -> Registry {
    let mut registry = Registry::with_prefix("wasp");
    registry.register_collector(Box::new(WaspCollector(sources)));
    registry
}

/// The two text formats a scrape may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenMetrics 1.0 (`application/openmetrics-text`), what Prometheus asks for first.
    OpenMetrics,
    /// Prometheus' classic text format 0.0.4, for everyone else (`promtool`, curl, older
    /// scrapers).
    Classic,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub(crate) fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Classic,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The text exposition of `registry` in `format`.
pub(crate) fn encode(registry: &Registry, format: Format) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail, and the collector's own errors are fmt errors too.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    match format {
        Format::OpenMetrics => text,
        Format::Classic => classic(&text),
    }
}

/// OpenMetrics text made classic: a counter family is named with its `_total` suffix (as
/// its samples are), and `# UNIT` and `# EOF` lines, which the classic format lacks, go.
fn classic(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let described = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match described {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                text.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

struct WaspCollector(Arc<Sources>);

impl fmt::Debug for WaspCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WaspCollector")
    }
}

impl Collector for WaspCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let counters = self.0.view.counters();
        let node = self.0.node.as_ref().map(|status| status());
        let mut out = Out(&mut encoder);
        jobs(&mut out, &counters, node.as_ref())?;
        workers(&mut out, &counters)?;
        modules(&mut out, &counters)?;
        data(&mut out, &counters)?;
        nodes(&mut out, &counters)?;
        discovery(&mut out, &counters)?;
        if let Some(node) = &node {
            node_side(&mut out, node)?;
        }
        let role = if node.is_some() { "node" } else { "client" };
        let build = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("arch", std::env::consts::ARCH),
            ("role", role),
        ];
        out.gauges(
            "build_info",
            "wasp's version, the machine's architecture and the process's role (always 1)",
            None,
            [(build, 1)],
        )?;
        out.gauge(
            "uptime",
            "Time since the server started",
            Some(&Unit::Seconds),
            counters.stats.elapsed.as_secs_f64(),
        )
    }
}

/// Writes metric families with less ceremony.
struct Out<'a, 'b>(&'a mut DescriptorEncoder<'b>);

impl Out<'_, '_> {
    /// A counter without labels.
    fn counter<V: EncodeCounterValue>(
        &mut self,
        name: &str,
        help: &str,
        value: V,
    ) -> Result<(), fmt::Error> {
        self.0
            .encode_descriptor(name, help, None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)
    }

    /// A counter family: one sample per label set.
    fn counters<'l, const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = ([(&'l str, &'l str); N], u64)>,
    ) -> Result<(), fmt::Error> {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in samples {
            let labels = &labels[..];
            metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        Ok(())
    }

    /// A gauge without labels.
    fn gauge<V: EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: V,
    ) -> Result<(), fmt::Error> {
        self.0
            .encode_descriptor(name, help, unit, MetricType::Gauge)?
            .encode_gauge(&value)
    }

    /// A gauge family: one sample per label set.
    fn gauges<'l, const N: usize, V: EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        samples: impl IntoIterator<Item = ([(&'l str, &'l str); N], V)>,
    ) -> Result<(), fmt::Error> {
        let mut metric = self
            .0
            .encode_descriptor(name, help, unit, MetricType::Gauge)?;
        for (labels, value) in samples {
            let labels = &labels[..];
            metric.encode_family(&labels)?.encode_gauge(&value)?;
        }
        Ok(())
    }

    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        histogram: &Histogram,
    ) -> Result<(), fmt::Error> {
        let mut metric =
            self.0
                .encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
        metric.encode_histogram::<NoLabelSet>(
            histogram.sum(),
            histogram.count(),
            &histogram.buckets(),
            None,
        )
    }
}

fn jobs(out: &mut Out, counters: &Counters, node: Option<&NodeStatus>) -> Result<(), fmt::Error> {
    let queue = &counters.queue;
    let stats = &counters.stats;
    out.counter("jobs_submitted", "Jobs submitted", stats.submitted)?;
    out.counters(
        "jobs_started",
        "Jobs started, by where: a local worker, or sent to a node",
        [
            ([("where", "local")], queue.started_local),
            ([("where", "remote")], queue.started_remote),
        ],
    )?;
    let outcomes = std::iter::once("ok")
        .chain(JobError::KINDS)
        .zip(counters.outcomes)
        .map(|(outcome, count)| ([("outcome", outcome)], count));
    out.counters(
        "jobs_finished",
        "Jobs finished, by outcome: ok, or the kind of error",
        outcomes,
    )?;
    out.counter(
        "jobs_retried",
        "Jobs run again because the node running them was lost",
        queue.retried,
    )?;
    let handed_back = queue.handed_back + node.map_or(0, |node| node.jobs_handed_back);
    out.counter(
        "jobs_handed_back",
        "Jobs handed back by a draining node (on a node: that it handed back to its clients)",
        handed_back,
    )?;
    out.histogram(
        "job_duration",
        "Time jobs ran, where they ran",
        &queue.duration,
    )?;
    out.histogram(
        "job_queue_wait",
        "Time jobs waited in the queue for a worker or a node",
        &queue.wait,
    )?;
    out.gauge(
        "queue_jobs",
        "Jobs waiting for a worker or a node",
        None,
        stats.queued,
    )?;
    out.gauge(
        "jobs_running",
        "Jobs held by a local worker or a node",
        None,
        stats.running,
    )
}

fn workers(out: &mut Out, counters: &Counters) -> Result<(), fmt::Error> {
    out.gauge(
        "workers",
        "Local workers (the configured count)",
        None,
        counters.stats.target_workers,
    )?;
    out.gauge(
        "workers_busy",
        "Local workers running a job",
        None,
        counters.queue.running_local,
    )
}

fn modules(out: &mut Out, counters: &Counters) -> Result<(), fmt::Error> {
    let cache = &counters.stats.cache;
    out.counter(
        "modules_compiled",
        "Modules compiled by cranelift",
        cache.compiled,
    )?;
    out.counter(
        "module_compile_seconds",
        "Time spent compiling modules",
        cache.compile_time.as_secs_f64(),
    )?;
    out.counter(
        "module_load_seconds",
        "Time spent loading compiled code from the disk cache (or shipped with the program)",
        cache.load_time.as_secs_f64(),
    )?;
    out.counter(
        "disk_cache_hits",
        "Modules whose compiled code was loaded from the disk cache (or shipped with the program)",
        cache.loaded_from_disk,
    )?;
    out.counter(
        "disk_cache_misses",
        "Modules compiled for want of their code in the disk cache",
        cache.compiled,
    )?;
    out.gauge(
        "modules_preparing",
        "Modules being compiled or loaded from the disk cache now",
        None,
        cache.preparing,
    )
}

/// Jobs that wait for others, and the result cache.
fn data(out: &mut Out, counters: &Counters) -> Result<(), fmt::Error> {
    let stats = &counters.stats;
    out.gauge(
        "jobs_held",
        "Jobs waiting for the jobs whose results they take",
        None,
        stats.held,
    )?;
    let results = &stats.results;
    out.counters(
        "result_cache_lookups",
        "Jobs asked to be cached, by whether the cache had their result",
        [
            ([("found", "hit")], results.hits),
            ([("found", "miss")], results.misses),
        ],
    )?;
    out.counter(
        "result_cache_stored",
        "Results written to the result cache",
        results.stored,
    )?;
    out.counter(
        "result_cache_not_cacheable",
        "Jobs asked to be cached whose outcome could not be (they read a clock or random \
         numbers, hit a limit, or ran in a kept instance)",
        results.not_cacheable,
    )
}

fn nodes(out: &mut Out, counters: &Counters) -> Result<(), fmt::Error> {
    let nodes = &counters.stats.nodes;
    if nodes.is_empty() {
        return Ok(());
    }
    let each = |value: &dyn Fn(&crate::NodeStats) -> u64| {
        nodes
            .iter()
            .map(move |node| ([("node", label(node))], value(node)))
            .collect::<Vec<_>>()
    };
    out.gauges(
        "node_connected",
        "Whether the client is connected to the node (1) or not (0)",
        None,
        each(&|node| u64::from(node.connected)),
    )?;
    out.gauges(
        "node_workers",
        "The node's workers",
        None,
        each(&|node| node.workers.into()),
    )?;
    out.gauges(
        "node_jobs_in_flight",
        "Jobs sent to the node and not answered yet",
        None,
        each(&|node| node.in_flight.into()),
    )?;
    let round_trips: Vec<_> = nodes
        .iter()
        .filter_map(|node| {
            Some((
                [("node", node.address.as_str())],
                node.round_trip?.as_secs_f64(),
            ))
        })
        .collect();
    out.gauges(
        "node_round_trip_seconds",
        "The connection's smoothed round-trip time",
        None,
        round_trips,
    )?;
    out.counters(
        "node_jobs_finished",
        "Jobs the node finished (with an error or not)",
        each(&|node| node.jobs),
    )?;
    out.counters(
        "node_jobs_failed",
        "Jobs the node finished with an error",
        each(&|node| node.failed),
    )?;
    out.counters(
        "node_module_transfers",
        "Modules sent to the node",
        each(&|node| node.module_transfers),
    )?;
    out.counters(
        "node_data_transfers",
        "Values put once (or large results other jobs take) sent to the node",
        each(&|node| node.data_transfers),
    )?;
    out.counters(
        "node_data_sent_bytes",
        "Bytes of the values sent to the node",
        each(&|node| node.data_bytes),
    )?;
    out.counters(
        "node_sent_bytes",
        "Bytes sent to the node in all (QUIC's UDP payloads)",
        each(&|node| node.bytes_sent),
    )?;
    out.counters(
        "node_connections",
        "Connections established to the node",
        each(&|node| node.connections),
    )
}

/// A node's label: its address, or `departed` for the row of the nodes let go (whose
/// address counts them, and would make a new series at each departure).
fn label(node: &crate::NodeStats) -> &str {
    if node.address.ends_with(DEPARTED) {
        "departed"
    } else {
        &node.address
    }
}

fn discovery(out: &mut Out, counters: &Counters) -> Result<(), fmt::Error> {
    let Some(heard) = &counters.stats.discovery else {
        return Ok(());
    };
    out.counters(
        "discovery_announcements",
        "Node announcements heard on the LAN, by verdict",
        [
            ([("verdict", "accepted")], heard.accepted),
            ([("verdict", "forged")], heard.forged),
            ([("verdict", "stale")], heard.stale),
            ([("verdict", "replayed")], heard.replayed),
            ([("verdict", "malformed")], heard.malformed),
        ],
    )
}

fn node_side(out: &mut Out, node: &NodeStatus) -> Result<(), fmt::Error> {
    out.gauge(
        "clients_connected",
        "Clients connected to the node",
        None,
        node.clients,
    )?;
    out.counters(
        "clients_refused",
        "Connections the node refused, by reason",
        node.clients_refused
            .iter()
            .map(|(&reason, &count)| ([("reason", reason)], count)),
    )?;
    out.gauge(
        "modules_stored",
        "Modules in the node's store",
        None,
        node.modules_stored,
    )?;
    out.gauge(
        "module_store",
        "Bytes of the modules in the node's store",
        Some(&Unit::Bytes),
        node.module_store_bytes,
    )?;
    out.counter(
        "modules_received",
        "Modules received from clients",
        node.modules_received,
    )?;
    out.gauge(
        "data_stored",
        "Values (data put once) in the node's store",
        None,
        node.data_stored,
    )?;
    out.gauge(
        "data_store",
        "Bytes of the values in the node's store",
        Some(&Unit::Bytes),
        node.data_store_bytes,
    )?;
    out.counter(
        "data_received",
        "Values received from clients",
        node.data_received,
    )?;
    out.gauge(
        "draining",
        "Whether the node is draining (1: shutting down, not ready) or not (0)",
        None,
        u64::from(node.draining),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_their_suffix_and_drops_units() {
        let openmetrics = "# HELP wasp_jobs_submitted Jobs submitted\n\
            # TYPE wasp_jobs_submitted counter\n\
            wasp_jobs_submitted_total 3\n\
            # HELP wasp_uptime_seconds Time since\n\
            # TYPE wasp_uptime_seconds gauge\n\
            # UNIT wasp_uptime_seconds seconds\n\
            wasp_uptime_seconds 1.5\n\
            # EOF\n";
        assert_eq!(
            classic(openmetrics),
            "# HELP wasp_jobs_submitted_total Jobs submitted\n\
             # TYPE wasp_jobs_submitted_total counter\n\
             wasp_jobs_submitted_total 3\n\
             # HELP wasp_uptime_seconds Time since\n\
             # TYPE wasp_uptime_seconds gauge\n\
             wasp_uptime_seconds 1.5\n"
        );
    }

    #[test]
    fn the_departed_row_has_one_label_whatever_its_count() {
        let mut node = crate::NodeStats {
            address: format!("12 {DEPARTED}"),
            ..Default::default()
        };
        assert_eq!(label(&node), "departed");
        node.address = "10.0.0.2:7878".into();
        assert_eq!(label(&node), "10.0.0.2:7878");
    }

    #[test]
    fn prometheus_gets_openmetrics_and_others_the_classic_format() {
        let prometheus =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Classic);
        assert_eq!(Format::from_accept(None), Format::Classic);
    }
}
