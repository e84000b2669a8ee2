//! Stopping work on real `wasp node` processes: a cancelled job, a client that goes away and
//! a `wasp map` interrupted with Ctrl-C each free the node's worker at once, not after the
//! node's client timeout (made far longer here than any bounded wait of these tests, so a
//! node that waited for it would fail them). And a node's maxima are the values of the
//! limits a client does not set.
//!
//! Every wait is bounded: a hung test is a failed test.

use crate::harness::node::{Auth, NodeProcess, Program, WASP, run_wasp, write_secret};
use crate::harness::support::*;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;
use wasp::{ClusterSecret, JobError, JobOptions, Server};

/// The node's client timeout: a node that kept a departed client's jobs until it timed
/// out would hold its worker past every wait of these tests.
const PATIENT: Duration = Duration::from_secs(120);

/// A job's length: far beyond the waits of these tests.
const LONG_MS: u64 = 600_000;

/// A one-worker node that waits [`PATIENT`] for silent clients.
fn patient_node(secret: &ClusterSecret, extra: &[&str]) -> NodeProcess {
    let program = Program {
        client_timeout: PATIENT,
        ..Program::wasp_under_test()
    };
    NodeProcess::start_program(program, Auth::Secret(secret), 1, extra)
}

/// Waits until `server` has handed a job to its node.
fn wait_until_sent(server: &Server) {
    wait_until("a job sent to the node", TIMEOUT, || {
        server.stats().running > 0
    });
}

/// Another client's job runs on `node`: its worker is free.
fn assert_worker_free(secret: &ClusterSecret, node: &NodeProcess) {
    let other = client(Auth::Secret(secret), &[node]);
    connect(&other, 1);
    let job = other.submit::<i64, _>(&testjobs(), "add_one", (1i64,));
    assert_eq!(result(&job), Ok(2), "the node's worker is still held");
}

#[test]
fn a_job_cancelled_on_a_node_frees_its_worker() {
    let secret = new_secret();
    let node = patient_node(&secret, &[]);
    let server = client(Auth::Secret(&secret), &[&node]);
    connect(&server, 1);
    let long = server.submit::<u64, _>(&testjobs(), "busy_ms", (LONG_MS,));
    wait_until_sent(&server);
    assert!(long.cancel());
    assert!(matches!(result(&long), Err(JobError::Cancelled(_))));
    assert_worker_free(&secret, &node);
    // Its own next job runs too, on the same connection.
    let next = server.submit::<i64, _>(&testjobs(), "add_one", (2i64,));
    assert_eq!(result(&next), Ok(3));
    assert_eq!(server.stats().nodes[0].connections, 1);
}

#[test]
fn a_cancelled_group_is_stopped_on_its_node() {
    let secret = new_secret();
    let node = patient_node(&secret, &[]);
    let server = client(Auth::Secret(&secret), &[&node]);
    connect(&server, 1);
    let options = JobOptions::new().group("batch");
    let jobs: Vec<_> = (0..20)
        .map(|_| server.submit_with::<u64, _>(&testjobs(), "busy_ms", (LONG_MS,), &options))
        .collect();
    wait_until_sent(&server);
    assert_eq!(server.cancel_group("batch"), 20);
    for job in &jobs {
        assert!(matches!(result(job), Err(JobError::Cancelled(_))));
    }
    assert_worker_free(&secret, &node);
}

/// A client that finishes closes its connection at once: the node stops its jobs then.
#[test]
fn a_client_that_goes_away_frees_the_nodes_workers_at_once() {
    let secret = new_secret();
    let node = patient_node(&secret, &[]);
    let server = client(Auth::Secret(&secret), &[&node]);
    connect(&server, 1);
    let _abandoned: Vec<_> = (0..3)
        .map(|_| server.submit::<u64, _>(&testjobs(), "busy_ms", (LONG_MS,)))
        .collect();
    wait_until_sent(&server);
    drop(server);
    assert_worker_free(&secret, &node);
}

/// `wasp map` interrupted by Ctrl-C (SIGINT) in the middle of long jobs: it exits at once
/// with 130, and the node's worker is free for the next client.
#[test]
fn an_interrupted_map_cancels_its_jobs_on_the_node() {
    let secret = new_secret();
    let node = patient_node(&secret, &[]);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("cluster.key");
    write_secret(&key, &secret);
    let input = dir.path().join("inputs.jsonl");
    let lines: String = (0..10).map(|_| format!("[{LONG_MS}]\n")).collect();
    std::fs::write(&input, lines).unwrap();
    let map = Command::new(WASP)
        .args([
            "map",
            wasp_fixtures::WASP_TESTJOBS,
            "busy_ms",
            "--workers",
            "0",
        ])
        .arg("--input")
        .arg(&input)
        .args(["--peer", &node.address().to_string(), "--secret-file"])
        .arg(&key)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wasp map starts");
    // Running once the node has its module (it asks for it with the first job).
    wait_until("the node receives the module", TIMEOUT, || {
        node.log().contains("module received")
    });
    let status = Command::new("kill")
        .args(["-INT", &map.id().to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success());
    let (exited, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(map.wait_with_output()));
    let output = output
        .recv_timeout(TIMEOUT)
        .expect("wasp map exits after Ctrl-C")
        .expect("its output is read");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_worker_free(&secret, &node);
}

/// The fault: a client sent its default limits as if asked for, and a node with smaller
/// maxima refused every job of a plain `wasp map --peer`. Limits not given take the
/// node's values; a limit given above a maximum is still refused.
#[test]
fn a_nodes_maxima_do_not_refuse_a_clients_defaults() {
    let secret = new_secret();
    let node = NodeProcess::start_with(Auth::Secret(&secret), 1, &["--max-memory", "64MiB"]);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("cluster.key");
    write_secret(&key, &secret);
    let input = dir.path().join("inputs.jsonl");
    let mut file = std::fs::File::create(&input).unwrap();
    for n in [10, 100, 1_000] {
        writeln!(file, "[{n}]").unwrap();
    }
    let (peer, key) = (node.address().to_string(), key.display().to_string());
    let map = |extra: &[&str]| {
        let args = [
            &["map", SUM_PRIMES, "sum_primes", "--workers", "0"][..],
            &[
                "--input",
                input.to_str().unwrap(),
                "--peer",
                &peer,
                "--secret-file",
                &key,
            ],
            extra,
        ]
        .concat();
        run_wasp(&args, TIMEOUT)
    };
    let plain = map(&[]);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "17\n1060\n76127\n");
    let greedy = map(&["--max-memory", "128MiB"]);
    assert_eq!(greedy.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&greedy.stderr);
    assert!(stderr.contains("refuses a memory limit"), "{stderr}");
}

/// Jobs cancelled one by one while they wait in the client's queue are never sent: the
/// node's only worker runs the next job at once, not the cancelled ones.
#[test]
fn jobs_cancelled_while_queued_are_not_sent_to_the_node() {
    let secret = new_secret();
    let node = patient_node(&secret, &[]);
    let server = client(Auth::Secret(&secret), &[&node]);
    connect(&server, 1);
    let jobs: Vec<_> = (0..20)
        .map(|_| server.submit::<u64, _>(&testjobs(), "busy_ms", (LONG_MS,)))
        .collect();
    wait_until_sent(&server);
    for job in &jobs {
        assert!(job.cancel());
    }
    let next = server.submit::<i64, _>(&testjobs(), "add_one", (1i64,));
    assert_eq!(
        result(&next),
        Ok(2),
        "a cancelled job held the node's worker"
    );
    wait_until("the cancelled jobs leave the queue", TIMEOUT, || {
        let stats = server.stats();
        stats.queued == 0 && stats.running == 0
    });
}
