//! Data put once, over two nodes: a large value (100 MiB) taken by `jobs` jobs, against the
//! same jobs taking a 1 KiB value.
//!
//! Each job is the sum of the primes below [`WORK`] (a tenth of a second, the job's own
//! work) and a probe of the value, read where it lies in the job's arguments. Two `wasp
//! node` processes of one worker each serve a client with no local workers, over loopback
//! QUIC (the scale benchmark's nodes: the `wasp` binary must be built). Measured:
//!
//! * the bytes the client sent to each node (QUIC's UDP payloads, counted by the client),
//!   less the jobs' own traffic (measured by the 1 KiB run, per job), against the value's
//!   size: each node should receive the value once (target: at most 1.05x);
//! * the jobs' rate with the large value against the small one (target: within 2x): what
//!   the value costs each job is its one copy into the job's memory.

use crate::Row;
use crate::scale::{NodeProcesses, wasp_binary};
use serde_bytes::ByteBuf;
use std::time::{Duration, Instant};
use wasp::{DataRef, Module, Server};

/// The job's own work: the sum of the primes below this (about 0.13 s on the 2-core build
/// machine). On that machine, a job's memory costs about 1 ms per MiB the first time it is
/// touched (page faults of a virtual machine): whoever writes 100 MiB into a job's memory,
/// the host copying a value or the job itself, pays about 0.1 s.
const WORK: u64 = 600_000;

pub(crate) fn run(jobs: usize, value_mib: usize) -> anyhow::Result<Vec<Row>> {
    let module = Module::from_bytes(wasp_examples::DATA)?;
    let nodes = NodeProcesses::start(&wasp_binary()?, 2)?;
    let server = Server::builder()
        .workers(0)
        .no_disk_cache()
        .insecure()
        .peers(
            nodes
                .addresses
                .iter()
                .map(|&address| wasp::Peer::Addr(address)),
        )
        .build()?;
    server.wait_for_nodes(2, Duration::from_secs(30))?;
    let warm = server.put(&ByteBuf::from(vec![1u8; 16]))?;
    batch(&server, &module, (&warm, 16), 8)?;
    let small = server.put(&ByteBuf::from(vec![7u8; 1024]))?;
    let small_run = batch(&server, &module, (&small, 1024), jobs)?;
    let large = server.put(&ByteBuf::from(pattern(value_mib << 20)))?;
    let large_run = batch(&server, &module, (&large, value_mib << 20), jobs)?;
    let own_per_job = small_run.own_per_job();
    let mut rows = Vec::new();
    for (node, (&sent, &node_jobs)) in large_run.sent.iter().zip(&large_run.jobs).enumerate() {
        let own = own_per_job * node_jobs as f64;
        let ratio = (sent as f64 - own) / large.len() as f64;
        println!(
            "data: node {node}: {sent} bytes sent for {node_jobs} jobs ({own:.0} of them the jobs' own); value {} bytes",
            large.len()
        );
        rows.push(Row {
            measure: format!(
                "a {value_mib} MiB value taken by {jobs} jobs over 2 nodes: bytes sent to node {}, less the jobs' own traffic, / the value",
                node + 1
            ),
            value: format!("{ratio:.3} ({node_jobs} jobs there)"),
            target: "<= 1.05",
        });
    }
    let (small_rate, large_rate) = (small_run.rate(jobs), large_run.rate(jobs));
    println!(
        "data: {small_rate:.1} jobs/s with a 1 KiB value, {large_rate:.1} with {value_mib} MiB"
    );
    rows.push(Row {
        measure: format!(
            "the same {jobs} jobs with the {value_mib} MiB value vs a 1 KiB value: jobs/s ratio"
        ),
        value: format!(
            "{:.3} ({large_rate:.1} vs {small_rate:.1} jobs/s)",
            large_rate / small_rate
        ),
        target: ">= 0.5",
    });
    Ok(rows)
}

/// `len` bytes of a pattern (not zeros, which a transport could compress).
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// What one batch did.
struct Batch {
    elapsed: Duration,
    /// Bytes sent to each node during the batch.
    sent: Vec<u64>,
    /// Jobs each node ran in the batch.
    jobs: Vec<u64>,
    /// Bytes of values sent to the nodes during the batch.
    data: u64,
}

impl Batch {
    fn rate(&self, jobs: usize) -> f64 {
        jobs as f64 / self.elapsed.as_secs_f64()
    }

    /// The bytes a job costs on the wire besides the value it takes.
    fn own_per_job(&self) -> f64 {
        let sent: u64 = self.sent.iter().sum();
        let jobs: u64 = self.jobs.iter().sum();
        sent.saturating_sub(self.data) as f64 / jobs as f64
    }
}

/// Runs `jobs` jobs taking `value` (of `len` bytes) and checks their results.
fn batch(
    server: &Server,
    module: &Module,
    (value, len): (&DataRef, usize),
    jobs: usize,
) -> anyhow::Result<Batch> {
    let before = server.stats().nodes;
    let start = Instant::now();
    let handles: Vec<_> = (0..jobs)
        .map(|_| server.submit::<(u64, u64, u64), _>(module, "sum_primes_with", (value, WORK)))
        .collect();
    let results = handles
        .iter()
        .map(|job| job.wait())
        .collect::<Result<Vec<_>, _>>()?;
    let elapsed = start.elapsed();
    let expected = data_guest::sum_primes(WORK);
    for (sum, got_len, _) in results {
        anyhow::ensure!(sum == expected && got_len == len as u64, "a wrong result");
    }
    // The links' byte counts are refreshed every second.
    server.wait_all();
    std::thread::sleep(Duration::from_millis(1_100));
    let after = server.stats().nodes;
    let delta = |field: fn(&wasp::NodeStats) -> u64| -> Vec<u64> {
        after
            .iter()
            .zip(&before)
            .map(|(after, before)| field(after) - field(before))
            .collect()
    };
    let data: u64 = delta(|node| node.data_bytes).iter().sum();
    Ok(Batch {
        elapsed,
        sent: delta(|node| node.bytes_sent),
        jobs: delta(|node| node.jobs),
        data,
    })
}
