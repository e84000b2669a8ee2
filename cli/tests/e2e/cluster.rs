//! The cluster end to end: real `wasp node` processes on 127.0.0.1 and clients with no
//! local workers, so that every job runs on a node. Nodes are killed, terminated and
//! restarted in the middle of batches; clients with the wrong secret are refused. Nodes
//! found while running (discovered, resolved, resized) are `membership.rs`'s.
//!
//! Every wait is bounded: a hung test is a failed test. When one fails, each node still
//! running prints its log (see `harness/node.rs`).

use crate::harness::node::{Auth, NodeProcess, run_wasp, write_secret};
use crate::harness::support::*;
use std::time::Duration;
use wasp::Server;

#[test]
fn the_reference_sums_are_right() {
    let sums = sums_of_primes_below(100_000);
    assert_eq!(sums[2], 0);
    assert_eq!(sums[3], 2);
    assert_eq!(sums[100], 1060);
    assert_eq!(sums[100_000], 454_396_537);
}

/// pp's example: the sums of primes below 100 000, 100 100, … 100 700, on two nodes.
#[test]
fn two_nodes_share_the_sum_primes_set() {
    let secret = new_secret();
    let nodes = [
        NodeProcess::start(Auth::Secret(&secret), 1),
        NodeProcess::start(Auth::Secret(&secret), 1),
    ];
    let server = client(Auth::Secret(&secret), &[&nodes[0], &nodes[1]]);
    connect(&server, 2);
    let module = sum_primes();
    let inputs: Vec<u64> = (0..8).map(|i| 100_000 + 100 * i).collect();
    let sums = sums_of_primes_below(100_700);
    let jobs: Vec<_> = inputs
        .iter()
        .map(|&n| server.submit::<u64, _>(&module, "sum_primes", (n,)))
        .collect();
    assert_eq!(result(&jobs[0]), Ok(454_396_537));
    for (&n, job) in inputs.iter().zip(&jobs) {
        assert_eq!(result(job), Ok(sums[n as usize]), "sum_primes({n})");
    }
    let stats = settled_stats(&server);
    assert_eq!(stats.nodes.len(), 2);
    for (node, process) in stats.nodes.iter().zip(&nodes) {
        assert_eq!(node.address, process.address().to_string());
        assert_eq!(node.id.as_deref(), Some(process.id()));
        assert!(node.connected, "{node:?}");
        assert_eq!(node.workers, 1, "{node:?}");
        assert!(node.jobs > 0, "{} did no work:\n{stats}", node.address);
        assert_eq!(node.failed, 0, "{node:?}");
    }
    assert_eq!(total_node_jobs(&stats), 8, "{stats}");
    assert_eq!((stats.finished, stats.failed), (8, 0));
}

/// A job run on a node is counted before anyone sees its result: once every result of a
/// batch is in, the client's totals, the group's progress and the node's row count the
/// whole batch, with nothing left queued or running. A thousand batches of eight.
#[test]
fn counts_through_a_node_add_up_as_soon_as_every_result_is_in() {
    const BATCHES: u64 = 1_000;
    const JOBS: i64 = 8;
    let secret = new_secret();
    let node = NodeProcess::start(Auth::Secret(&secret), 2);
    let server = client(Auth::Secret(&secret), &[&node]);
    connect(&server, 1);
    let module = testjobs();
    for batch in 0..BATCHES {
        let options = wasp::JobOptions::new().group("batch");
        let jobs: Vec<_> = (0..JOBS)
            .map(|x| server.submit_with::<i64, _>(&module, "add_one", (x,), &options))
            .collect();
        for (x, job) in (1..).zip(&jobs) {
            assert_eq!(result(job), Ok(x), "batch {batch}");
        }
        let done = (batch + 1) * JOBS as u64;
        let progress = server.progress("batch").expect("the group has counters");
        assert_eq!(
            (progress.finished, progress.queued, progress.running),
            (done, 0, 0),
            "batch {batch}: {progress:?}"
        );
        let stats = server.stats();
        assert_eq!(
            (
                stats.finished,
                stats.queued,
                stats.running,
                total_node_jobs(&stats)
            ),
            (done, 0, 0, done),
            "batch {batch}:\n{stats}"
        );
    }
}

/// 1,000 jobs of one module: each node gets the module once; a second client to the same
/// nodes sends it to none of them.
#[test]
fn a_module_is_sent_to_each_node_once_and_kept_for_later_clients() {
    let secret = new_secret();
    let nodes = [
        NodeProcess::start(Auth::Secret(&secret), 1),
        NodeProcess::start(Auth::Secret(&secret), 1),
    ];
    let module = testjobs();
    let first = client(Auth::Secret(&secret), &[&nodes[0], &nodes[1]]);
    connect(&first, 2);
    let jobs: Vec<_> = (0..1_000i64)
        .map(|x| first.submit::<i64, _>(&module, "add_one", (x,)))
        .collect();
    for (x, job) in (0..).zip(&jobs) {
        assert_eq!(result(job), Ok(x + 1), "add_one({x})");
    }
    let stats = settled_stats(&first);
    for node in &stats.nodes {
        assert!(node.jobs > 0, "{} did no work:\n{stats}", node.address);
        assert_eq!(node.module_transfers, 1, "{node:?}");
    }
    assert_eq!(total_node_jobs(&stats), 1_000, "{stats}");
    drop(first);

    let second = client(Auth::Secret(&secret), &[&nodes[0], &nodes[1]]);
    connect(&second, 2);
    let jobs: Vec<_> = (0..100i64)
        .map(|x| second.submit::<i64, _>(&module, "add_one", (x,)))
        .collect();
    for (x, job) in (0..).zip(&jobs) {
        assert_eq!(result(job), Ok(x + 1), "add_one({x})");
    }
    let stats = settled_stats(&second);
    for node in &stats.nodes {
        assert!(node.jobs > 0, "{} did no work:\n{stats}", node.address);
        assert_eq!(node.module_transfers, 0, "{node:?}");
    }
    assert_eq!(total_node_jobs(&stats), 100, "{stats}");
}

/// kill -9 one of three nodes when a quarter of a 500-job batch is done: its jobs run
/// elsewhere, and every job completes exactly once with the right result.
#[test]
fn a_node_killed_mid_batch_loses_no_job() {
    let secret = new_secret();
    let mut nodes: Vec<NodeProcess> = (0..3)
        .map(|_| NodeProcess::start(Auth::Secret(&secret), 1))
        .collect();
    let server = client(Auth::Secret(&secret), &nodes.iter().collect::<Vec<_>>());
    connect(&server, 3);
    // About 7 ms each: a few seconds in all on a small machine.
    let inputs: Vec<u64> = (0..500).map(|i| 50_000 + 100 * i).collect();
    let sums = sums_of_primes_below(100_000);
    let batch = Batch::submit(&server, inputs);
    batch.wait_for(125);
    let before = server.stats();
    let victim = (0..3)
        .max_by_key(|&index| before.nodes[index].jobs)
        .expect("three nodes");
    nodes[victim].kill9();

    batch.check(&sums);
    let stats = settled_stats(&server);
    let killed = &stats.nodes[victim];
    assert!(!killed.connected, "{killed:?}");
    assert!(
        killed.retries > 0,
        "the killed node had jobs in flight, which should have been retried:\n{stats}"
    );
    for (index, node) in stats.nodes.iter().enumerate() {
        if index != victim {
            assert!(node.connected, "{node:?}");
            assert_eq!(node.retries, 0, "{node:?}");
            assert!(node.jobs > before.nodes[index].jobs, "{stats}");
        }
    }
    assert_eq!(
        total_node_jobs(&stats),
        500,
        "a result counted twice?\n{stats}"
    );
    assert_eq!((stats.finished, stats.failed), (500, 0), "{stats}");
}

/// A node killed while idle, and started again on its port with its identity: the jobs
/// submitted meanwhile wait, and run once it is back.
#[test]
fn a_restarted_node_is_reconnected_and_used_again() {
    let secret = new_secret();
    let mut node = NodeProcess::start(Auth::Secret(&secret), 1);
    let server = client(Auth::Secret(&secret), &[&node]);
    connect(&server, 1);
    let module = testjobs();
    let jobs: Vec<_> = (0..10i64)
        .map(|x| server.submit::<i64, _>(&module, "add_one", (x,)))
        .collect();
    for (x, job) in (0..).zip(&jobs) {
        assert_eq!(result(job), Ok(x + 1));
    }
    let id = node.id().to_string();
    assert_eq!(server.stats().nodes[0].id.as_deref(), Some(id.as_str()));

    node.kill9();
    wait_until("the client notices the node is gone", TIMEOUT, || {
        !server.stats().nodes[0].connected
    });
    let jobs: Vec<_> = (100..120i64)
        .map(|x| server.submit::<i64, _>(&module, "add_one", (x,)))
        .collect();
    // No worker and no node: they wait in the queue.
    assert_eq!(server.stats().queued, 20);
    assert!(jobs.iter().all(|job| !job.is_finished()));

    node.restart();
    assert_eq!(
        node.id(),
        id,
        "the node's identity changed across a restart"
    );
    for (x, job) in (100..).zip(&jobs) {
        assert_eq!(result(job), Ok(x + 1));
    }
    let stats = settled_stats(&server);
    let seen = &stats.nodes[0];
    assert!(seen.connected, "{seen:?}");
    assert_eq!(seen.connections, 2, "{seen:?}");
    assert_eq!(seen.id.as_deref(), Some(id.as_str()));
    assert_eq!(seen.jobs, 30, "{seen:?}");
    assert_eq!(seen.retries, 0, "{seen:?}");
}

/// SIGTERM a node in the middle of a batch: it drains, hands back what it did not start,
/// and exits with status 0; every job completes once with the right result.
#[test]
fn a_node_terminated_mid_batch_drains_and_exits_cleanly() {
    let secret = new_secret();
    let mut nodes = [
        NodeProcess::start(Auth::Secret(&secret), 1),
        NodeProcess::start(Auth::Secret(&secret), 1),
    ];
    let server = client(Auth::Secret(&secret), &[&nodes[0], &nodes[1]]);
    connect(&server, 2);
    let inputs: Vec<u64> = (0..300).map(|i| 50_000 + 150 * i).collect();
    let sums = sums_of_primes_below(100_000);
    let batch = Batch::submit(&server, inputs);
    batch.wait_for(75);
    nodes[0].terminate();
    let Some(status) = nodes[0].wait_exit(Duration::from_secs(10)) else {
        panic!("the terminated node did not exit within 10 s");
    };
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        nodes[0].log().contains("node stopped"),
        "{}",
        nodes[0].log()
    );

    batch.check(&sums);
    let stats = settled_stats(&server);
    assert!(!stats.nodes[0].connected, "{:?}", stats.nodes[0]);
    assert!(stats.nodes[0].jobs > 0, "{stats}");
    for node in &stats.nodes {
        // Handed back in order, not lost: no retry was counted.
        assert_eq!(node.retries, 0, "{node:?}");
    }
    assert_eq!(total_node_jobs(&stats), 300, "{stats}");
    assert_eq!((stats.finished, stats.failed), (300, 0), "{stats}");
}

/// A wrong secret and no secret are both refused, saying why, on both sides; the node
/// keeps serving clients that know the secret.
#[test]
fn clients_without_the_secret_are_refused_and_the_node_keeps_serving() {
    let secret = new_secret();
    let node = NodeProcess::start(Auth::Secret(&secret), 1);
    let other = new_secret();
    let wrong = client(Auth::Secret(&other), &[&node]);
    let none = client(Auth::Insecure, &[&node]);
    let wait = |server: &Server| server.wait_for_nodes(1, Duration::from_secs(5));
    let (wrong_err, none_err) = std::thread::scope(|scope| {
        let wrong = scope.spawn(|| wait(&wrong));
        let none = scope.spawn(|| wait(&none));
        (wrong.join().unwrap(), none.join().unwrap())
    });
    let address = node.address().to_string();
    for (who, outcome, why) in [
        ("a wrong secret", wrong_err, "wrong cluster secret"),
        ("no secret", none_err, "requires the cluster secret"),
    ] {
        let err = outcome.expect_err(&format!("a client with {who} connected"));
        let message = err.to_string();
        assert_eq!(err.connected, 0, "{message}");
        assert!(message.contains(&address), "{message}");
        assert!(message.contains(why), "{who}: {message}");
    }
    drop((wrong, none));
    wait_until("the node logs both refusals", TIMEOUT, || {
        node.log().matches("refused a client").count() >= 2
    });

    let good = client(Auth::Secret(&secret), &[&node]);
    connect(&good, 1);
    let job = good.submit::<u32, _>(&testjobs(), "answer", ());
    assert_eq!(result(&job), Ok(42));
}

/// A node needs a secret, unless it is `--insecure` on loopback; an insecure node serves
/// insecure clients only.
#[test]
fn a_node_needs_a_secret_unless_insecure_on_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let identity = dir.path().join("identity");
    let cache = dir.path().join("cache");
    let dirs = [
        "--identity-dir",
        identity.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    let node = |args: &[&str]| run_wasp(&[&["node"][..], args, &dirs[..]].concat(), TIMEOUT);

    let out = node(&["--listen", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--secret-file"), "{stderr}");
    assert!(out.stdout.is_empty());

    let out = node(&["--listen", "0.0.0.0:0", "--insecure"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("loopback"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
    assert!(out.stdout.is_empty());

    let insecure = NodeProcess::start(Auth::Insecure, 1);
    let server = client(Auth::Insecure, &[&insecure]);
    connect(&server, 1);
    let job = server.submit::<i64, _>(&testjobs(), "add_one", (41i64,));
    assert_eq!(result(&job), Ok(42));

    // A client that has a secret does not trust a node that has none.
    let secret = new_secret();
    let careful = client(Auth::Secret(&secret), &[&insecure]);
    let err = careful
        .wait_for_nodes(1, Duration::from_secs(3))
        .expect_err("a client with a secret used an insecure node");
    assert!(err.to_string().contains("--insecure"), "{err}");
}

/// `wasp run --workers 0 --peer`: the job runs on the node; a wrong secret is a clear
/// error with status 2.
#[test]
fn wasp_run_sends_its_job_to_a_node() {
    let secret = new_secret();
    let node = NodeProcess::start(Auth::Secret(&secret), 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let right = dir.path().join("right.key");
    write_secret(&right, &secret);
    let wrong = dir.path().join("wrong.key");
    write_secret(&wrong, &new_secret());
    let address = node.address().to_string();
    // Given by name, the node is found through the system's resolver.
    let by_name = format!("localhost:{}", node.address().port());
    let run = |peer: &str, key: &std::path::Path| {
        let args = [
            "run",
            SUM_PRIMES,
            "sum_primes",
            "100000",
            "--workers",
            "0",
            "--peer",
            peer,
            "--resolve-interval",
            "1s",
            "--secret-file",
            key.to_str().unwrap(),
            "--no-cache",
        ];
        run_wasp(&args, TIMEOUT)
    };

    let out = run(&by_name, &right);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "454396537\n");

    let out = run(&address, &wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("wrong cluster secret"), "{stderr}");
    assert!(stderr.contains(&address), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_nodes_policy_refuses_what_it_forbids_with_a_clear_error() {
    let secret = new_secret();
    let allowed = sum_primes().hash().to_hex();
    let node = NodeProcess::start_with(
        Auth::Secret(&secret),
        1,
        &[
            "--max-memory",
            "64MiB",
            "--allow-module",
            &allowed,
            "--max-fuel",
            "1000000000",
        ],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("cluster.key");
    write_secret(&key, &secret);
    let address = node.address().to_string();
    let run = |module: &str, function: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            module,
            function,
            "--workers",
            "0",
            "--peer",
            &address,
            "--secret-file",
            key.to_str().expect("a UTF-8 path"),
            "--no-cache",
        ];
        args.extend_from_slice(extra);
        run_wasp(&args, TIMEOUT)
    };
    let out = run(
        SUM_PRIMES,
        "sum_primes",
        &["100000", "--max-memory", "128MiB"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("refuses a memory limit"), "{stderr}");
    let out = run(wasp_fixtures::WASP_TESTJOBS, "answer", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("not on the node's allow-list"), "{stderr}");
    let out = run(
        SUM_PRIMES,
        "sum_primes",
        &["100000", "--max-memory", "64MiB"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "454396537\n");
    // A job that asks for no fuel budget gets the node's maximum, and is told what it used.
    assert!(stderr.contains("the job used "), "{stderr}");
    let out = run(
        SUM_PRIMES,
        "sum_primes",
        &["100000", "--fuel", "2000000000"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refuses a fuel limit"), "{stderr}");
    let out = run(
        SUM_PRIMES,
        "sum_primes",
        &["100000", "--fuel", "1000", "--max-memory", "64MiB"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("ran out of fuel"), "{stderr}");
}
