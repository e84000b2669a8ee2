//! Data put once, jobs that take other jobs' results, and the result cache, on real nodes:
//! a value is sent to each node once, fetched again after the node evicted it, refused when
//! too large for the node; a node killed mid-graph loses nothing.

use crate::harness::node::{Auth, NodeProcess};
use crate::harness::support::*;
use serde_bytes::ByteBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use wasp::{Job, JobError, Server};

/// `len` bytes of a pattern, and the checksum job's answer for them.
fn pattern(len: usize, seed: u8) -> (ByteBuf, (u64, u64)) {
    let bytes: Vec<u8> = (0..len).map(|i| (i % 253) as u8 ^ seed).collect();
    let sum = bytes.iter().map(|&b| u64::from(b)).sum();
    (ByteBuf::from(bytes), (len as u64, sum))
}

/// One value taken by many jobs on two nodes: each node receives it once, whatever the
/// number of its jobs, and every job receives it whole.
#[test]
fn a_value_is_sent_to_each_node_once() {
    let secret = new_secret();
    let nodes = [
        NodeProcess::start(Auth::Secret(&secret), 1),
        NodeProcess::start(Auth::Secret(&secret), 1),
    ];
    let server = client(Auth::Secret(&secret), &[&nodes[0], &nodes[1]]);
    connect(&server, 2);
    let (bytes, answer) = pattern(3 << 20, 1);
    let value = server.put(&bytes).unwrap();
    let module = testjobs();
    let jobs: Vec<_> = (0..60)
        .map(|_| server.submit::<(u64, u64), _>(&module, "checksum", (&value,)))
        .collect();
    for job in &jobs {
        assert_eq!(result(job), Ok(answer));
    }
    let stats = settled_stats(&server);
    for node in &stats.nodes {
        assert!(node.jobs > 0, "{} did no work:\n{stats}", node.address);
        assert_eq!(node.data_transfers, 1, "{stats}");
        assert_eq!(node.data_bytes, value.len(), "{stats}");
        assert!(node.bytes_sent >= value.len(), "{stats}");
    }
}

/// A node whose store holds one of two values evicts the least recently used, and asks
/// again when a job needs it; nothing is ever evicted from under a job.
#[test]
fn a_node_asks_again_for_a_value_it_evicted() {
    let secret = new_secret();
    let node = NodeProcess::start_with(Auth::Secret(&secret), 2, &["--max-data-bytes", "5MB"]);
    let server = client(Auth::Secret(&secret), &[&node]);
    connect(&server, 1);
    let module = testjobs();
    let ((a, answer_a), (b, answer_b)) = (pattern(3 << 20, 1), pattern(3 << 20, 2));
    let (a, b) = (server.put(&a).unwrap(), server.put(&b).unwrap());
    for round in 0..3 {
        for (value, answer) in [(&a, answer_a), (&b, answer_b)] {
            let jobs: Vec<_> = (0..4)
                .map(|_| server.submit::<(u64, u64), _>(&module, "checksum", (value,)))
                .collect();
            for job in &jobs {
                assert_eq!(result(job), Ok(answer), "round {round}");
            }
        }
    }
    let stats = settled_stats(&server);
    assert_eq!(
        stats.nodes[0].data_transfers, 6,
        "sent again each time:\n{stats}"
    );
}

/// A value larger than the node keeps fails its jobs with a typed error.
#[test]
fn a_value_larger_than_the_node_keeps_is_refused_there() {
    let secret = new_secret();
    let node = NodeProcess::start_with(Auth::Secret(&secret), 1, &["--max-data-bytes", "1MB"]);
    let server = client(Auth::Secret(&secret), &[&node]);
    connect(&server, 1);
    let (bytes, _) = pattern(2 << 20, 3);
    let value = server.put(&bytes).unwrap();
    let job = server.submit::<(u64, u64), _>(&testjobs(), "checksum", (&value,));
    assert!(
        matches!(result(&job), Err(JobError::DataTooLarge { limit: 1_000_000, size }) if size == value.len()),
        "{:?}",
        result(&job)
    );
    let stats = settled_stats(&server);
    assert_eq!(stats.nodes[0].data_transfers, 0, "never sent");
}

/// kill -9 one of three nodes in the middle of a tree (leaves, a level of sums, a root),
/// with a value every leaf takes: the client still holds the value and the results taken,
/// so the jobs the node held run elsewhere and every result is right, delivered once.
#[test]
fn a_node_killed_mid_graph_loses_nothing() {
    let secret = new_secret();
    let mut nodes = [
        NodeProcess::start(Auth::Secret(&secret), 1),
        NodeProcess::start(Auth::Secret(&secret), 1),
        NodeProcess::start(Auth::Secret(&secret), 1),
    ];
    let server = client(Auth::Secret(&secret), &[&nodes[0], &nodes[1], &nodes[2]]);
    connect(&server, 3);
    let module = testjobs();
    let table: Vec<u64> = (0..5_000).map(|n| n * 7).collect();
    let table = server.put(&table).unwrap();
    let completions = Arc::new(AtomicU32::new(0));
    let counted = |job: Job<u64>| {
        let completions = completions.clone();
        job.on_complete(move |_| {
            completions.fetch_add(1, Ordering::SeqCst);
        });
        job
    };
    let leaves: Vec<Vec<Job<u64>>> = (0..20u64)
        .map(|group| {
            (0..20u64)
                .map(|i| counted(server.submit(&module, "nth", (&table, group * 20 + i))))
                .collect()
        })
        .collect();
    let sums: Vec<Job<u64>> = leaves
        .iter()
        .map(|group| counted(server.submit(&module, "sum_list", (group,))))
        .collect();
    let root = counted(server.submit(&module, "sum_list", (&sums,)));
    wait_until("a quarter of the jobs", TIMEOUT, || {
        completions.load(Ordering::SeqCst) >= 100
    });
    nodes[1].kill9();
    let expected: u64 = (0..400u64).map(|n| n * 7).sum();
    assert_eq!(result(&root), Ok(expected));
    for (group, sum) in sums.iter().enumerate() {
        let group = group as u64;
        let expected: u64 = (group * 20..group * 20 + 20).map(|n| n * 7).sum();
        assert_eq!(result(sum), Ok(expected));
    }
    let stats = settled_stats(&server);
    assert_eq!(
        completions.load(Ordering::SeqCst),
        421,
        "each job delivered once"
    );
    assert_eq!((stats.finished, stats.failed), (421, 0), "{stats}");
}

/// Results computed on nodes are cached like local ones: the next client finds them.
#[test]
fn results_computed_on_nodes_are_cached() {
    let secret = new_secret();
    let node = NodeProcess::start(Auth::Secret(&secret), 2);
    let dir = tempfile::tempdir().unwrap();
    let cached = |secret: &wasp::ClusterSecret| -> Server {
        Server::builder()
            .workers(0)
            .cache_dir(dir.path())
            .cache(true)
            .node_timeout(NODE_TIMEOUT)
            .peers([wasp::Peer::Addr(node.address())])
            .secret(secret.clone())
            .build()
            .unwrap()
    };
    let module = sum_primes();
    let sums = sums_of_primes_below(20_000);
    for hits in [0, 50] {
        let server = cached(&secret);
        connect(&server, 1);
        let jobs: Vec<_> = (0..50u64)
            .map(|n| server.submit::<u64, _>(&module, "sum_primes", (n * 400,)))
            .collect();
        for (n, job) in (0..).zip(&jobs) {
            assert_eq!(result(job), Ok(sums[n * 400]));
        }
        let stats = settled_stats(&server);
        assert_eq!(stats.results.hits, hits, "{stats}");
        let now = server.submit::<u64, _>(&testjobs(), "now_ms", ());
        result(&now).unwrap();
        assert_eq!(
            settled_stats(&server).results.not_cacheable,
            1,
            "a node records the clock too"
        );
    }
}
