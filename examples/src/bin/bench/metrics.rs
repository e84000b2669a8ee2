//! What the monitor costs: trivial jobs with the monitor on and scraped every second (its
//! `/metrics` and `/api/v1/status`, as Prometheus and the dashboard would), against the
//! same without a monitor, on a local pool of 2 workers and through one node of 2 workers
//! (where both the client's monitor and the node's are on, or neither).
//!
//! The runs without and with alternate, `rounds` of each, the order swapped every round,
//! so that the machine's drifts affect both alike; the best run of each is compared. The
//! scraper is a thread that starts with each monitored run and stops with it: its first
//! scrape is at the start, then one a second, each a plain HTTP/1.1 GET on a connection of
//! its own.

use crate::Row;
use crate::cluster::{BenchNode, client_with};
use crate::overhead::batch;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wasp::{ClusterSecret, Module, MonitorConfig, Server};

/// How often the scraper polls.
const INTERVAL: Duration = Duration::from_secs(1);

/// What it polls, on every monitor.
const PATHS: [&str; 2] = ["/metrics", "/api/v1/status"];

/// How long one scrape may take.
const TIMEOUT: Duration = Duration::from_secs(5);

const TARGET: &str = ">= 0.97 (at most 3 % cost)";

pub(crate) fn run(local_jobs: usize, node_jobs: usize, rounds: usize) -> anyhow::Result<Vec<Row>> {
    let module = Module::from_bytes(wasp_examples::TRIVIAL)?;
    let local = {
        let off = Server::builder().workers(2).no_disk_cache().build()?;
        let on = Server::builder()
            .workers(2)
            .no_disk_cache()
            .monitor(loopback())
            .build()?;
        let scraped: Vec<_> = on.monitor_address().into_iter().collect();
        anyhow::ensure!(scraped.len() == 1, "the server has a monitor");
        compare(&module, [&off, &on], &scraped, local_jobs, rounds)?
    };
    println!(
        "metrics, local pool (2 workers), {local_jobs} trivial jobs: {}",
        local.summary()
    );
    let node = {
        let secret = ClusterSecret::generate()?;
        let node_off = BenchNode::start_with("metrics-off", &secret, 2, None)?;
        let node_on = BenchNode::start_with("metrics-on", &secret, 2, Some(loopback()))?;
        let off = client_with(&secret, &[&node_off], None)?;
        let on = client_with(&secret, &[&node_on], Some(loopback()))?;
        let scraped: Vec<_> = on
            .monitor_address()
            .into_iter()
            .chain(node_on.monitor)
            .collect();
        anyhow::ensure!(scraped.len() == 2, "the client and the node have a monitor");
        compare(&module, [&off, &on], &scraped, node_jobs, rounds)?
    };
    println!(
        "metrics, 1 node (2 workers, loopback QUIC), {node_jobs} trivial jobs: {}",
        node.summary()
    );
    Ok(vec![
        Row {
            measure: format!(
                "{local_jobs} trivial jobs, 2 workers: monitor on and scraped every second vs \
                 none, throughput ratio (best of {rounds})"
            ),
            value: local.ratio(),
            target: TARGET,
        },
        Row {
            measure: format!(
                "{node_jobs} trivial jobs through 1 node: client's and node's monitors on and \
                 scraped every second vs none, throughput ratio (best of {rounds})"
            ),
            value: node.ratio(),
            target: TARGET,
        },
    ])
}

/// A monitor on loopback, on a port of its own.
fn loopback() -> MonitorConfig {
    MonitorConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// The runs without and with the monitor.
struct Comparison {
    jobs: usize,
    off: Vec<Duration>,
    on: Vec<Duration>,
    scrapes: Scrapes,
}

impl Comparison {
    fn rate(&self, elapsed: Duration) -> f64 {
        self.jobs as f64 / elapsed.as_secs_f64()
    }

    /// Jobs/s of the best run and of the median one.
    fn rates(&self, samples: &[Duration]) -> (f64, f64) {
        let best = samples.iter().min().copied().unwrap_or_default();
        let median = crate::median(samples.to_vec());
        (self.rate(best), self.rate(median))
    }

    fn ratio(&self) -> String {
        let ((off, off_median), (on, on_median)) = (self.rates(&self.off), self.rates(&self.on));
        format!(
            "{:.3} ({on:.0} jobs/s vs {off:.0} jobs/s; median runs {:.3}; {} scrapes)",
            on / off,
            on_median / off_median,
            self.scrapes.ok
        )
    }

    fn summary(&self) -> String {
        let ((off, off_median), (on, on_median)) = (self.rates(&self.off), self.rates(&self.on));
        let mut summary = format!(
            "none {off:.0} jobs/s (median {off_median:.0}), monitor {on:.0} jobs/s (median \
             {on_median:.0}), metrics on / off {:.3} (best), {:.3} (median); {} scrapes of {} \
             done, {} failed",
            on / off,
            on_median / off_median,
            self.scrapes.ok,
            PATHS.join(" and "),
            self.scrapes.failed
        );
        if let Some(error) = &self.scrapes.first_error {
            summary.push_str(&format!(" (first: {error})"));
        }
        summary
    }
}

/// Runs `jobs` trivial jobs `rounds` times on `off` and on `on` alternately, `on` scraped
/// at `scraped` while it runs.
fn compare(
    module: &Module,
    [off, on]: [&Server; 2],
    scraped: &[SocketAddr],
    jobs: usize,
    rounds: usize,
) -> anyhow::Result<Comparison> {
    // The module compiled, the workers (or the node's) started and warm.
    for server in [off, on] {
        batch(server, module, jobs / 10)?;
    }
    let mut comparison = Comparison {
        jobs,
        off: Vec::new(),
        on: Vec::new(),
        scrapes: Scrapes::default(),
    };
    for round in 0..rounds {
        let on_first = round % 2 == 1;
        for monitored in [on_first, !on_first] {
            if monitored {
                let scraper = Scraper::start(scraped.to_vec());
                let elapsed = batch(on, module, jobs);
                comparison.scrapes.add(scraper.stop());
                comparison.on.push(elapsed?);
            } else {
                comparison.off.push(batch(off, module, jobs)?);
            }
        }
    }
    Ok(comparison)
}

/// Scrapes done.
#[derive(Default)]
struct Scrapes {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
}

impl Scrapes {
    fn add(&mut self, other: Scrapes) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// A thread polling monitors until stopped.
struct Scraper {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Scrapes>,
}

impl Scraper {
    /// Scrapes every one of `monitors` now, then every [`INTERVAL`].
    fn start(monitors: Vec<SocketAddr>) -> Self {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut scrapes = Scrapes::default();
            let mut next = Instant::now();
            loop {
                for &monitor in &monitors {
                    for path in PATHS {
                        match get(monitor, path) {
                            Ok(()) => scrapes.ok += 1,
                            Err(error) => {
                                scrapes.failed += 1;
                                scrapes
                                    .first_error
                                    .get_or_insert_with(|| format!("{monitor}{path}: {error}"));
                            }
                        }
                    }
                }
                next += INTERVAL;
                let wait = next.saturating_duration_since(Instant::now());
                if stopped.recv_timeout(wait) != Err(mpsc::RecvTimeoutError::Timeout) {
                    return scrapes;
                }
            }
        });
        Scraper { stop, thread }
    }

    /// Stops it (at once, even between scrapes) and says what it did.
    fn stop(self) -> Scrapes {
        drop(self.stop);
        self.thread.join().unwrap_or_else(|_| Scrapes {
            failed: 1,
            first_error: Some("the scraper panicked".into()),
            ..Scrapes::default()
        })
    }
}

/// `GET path` with `Connection: close`, as a scraper on this machine sends it (the host
/// named by its address: a monitor without a token answers no other name): Ok if the
/// answer is a 200 with a body.
fn get(address: SocketAddr, path: &str) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no header block"))?;
    let status = head.lines().next().unwrap_or_default();
    anyhow::ensure!(status.split_whitespace().nth(1) == Some("200"), "{status}");
    anyhow::ensure!(!body.is_empty(), "an empty body");
    Ok(())
}
