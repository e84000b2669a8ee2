//! Nodes found while running, end to end with real `wasp node` processes on 127.0.0.1:
//! discovered from their announcements (multicast on the loopback interface, broadcast
//! on the loopback network, or sent to the client's own port as where multicast is
//! blocked), resolved from a name that stands for several nodes, and resized at run time.
//! Nodes come and go in the middle of batches; no job is lost or run twice.
//!
//! Every wait is bounded: a hung test is a failed test. When one fails, each node still
//! running prints its log (see `harness/node.rs`).

use crate::harness::node::{Auth, NodeProcess};
use crate::harness::support::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasp::{ClusterSecret, Server, ServerBuilder, Stats};

/// How announcements travel from the nodes to the client, each test on a port of its own.
#[derive(Debug, Clone, Copy)]
enum Medium {
    /// To a multicast group, sent and heard on the loopback interface.
    Multicast(u16),
    /// To the loopback network's broadcast address, heard on any address.
    Broadcast(u16),
    /// To the client's host and port: what to do where multicast is blocked.
    Unicast(u16),
}

/// The multicast group of the tests: wasp's default group (on ports of their own).
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 87, 65);

impl Medium {
    fn multicast() -> Medium {
        Medium::Multicast(free_udp_port())
    }

    fn broadcast() -> Medium {
        Medium::Broadcast(free_udp_port())
    }

    fn unicast() -> Medium {
        Medium::Unicast(free_udp_port())
    }

    /// Where the nodes send their announcements (and a test its own datagrams).
    fn target(self) -> SocketAddr {
        match self {
            Medium::Multicast(port) => (GROUP, port).into(),
            Medium::Broadcast(port) => (Ipv4Addr::new(127, 255, 255, 255), port).into(),
            Medium::Unicast(port) => (Ipv4Addr::LOCALHOST, port).into(),
        }
    }

    /// `wasp node`'s arguments to announce itself this way, five times a second.
    fn node_args(self) -> Vec<String> {
        let mut args = vec![
            "--announce-to".to_string(),
            self.target().to_string(),
            "--announce-interval".to_string(),
            "200ms".to_string(),
        ];
        if let Medium::Multicast(_) = self {
            args.extend(["--announce-interface".to_string(), "127.0.0.1".to_string()]);
        }
        args
    }

    /// `builder` listening for announcements sent this way.
    fn listen(self, builder: ServerBuilder) -> ServerBuilder {
        match self {
            Medium::Multicast(_) => builder
                .discovery(self.target())
                .discovery_interface(Ipv4Addr::LOCALHOST),
            Medium::Broadcast(port) => builder.discovery((Ipv4Addr::UNSPECIFIED, port).into()),
            Medium::Unicast(_) => builder.discovery(self.target()),
        }
    }
}

/// A UDP port free on 127.0.0.1 (and so, most likely, on every address).
fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    socket.local_addr().expect("its address").port()
}

/// A discoverable node announcing itself by `medium`.
fn discoverable(secret: &ClusterSecret, workers: usize, medium: Medium) -> NodeProcess {
    let args = medium.node_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    NodeProcess::start_with(Auth::Secret(secret), workers, &args)
}

/// A client with no local workers that finds its nodes from announcements sent by
/// `medium`.
fn discovering_client(secret: &ClusterSecret, medium: Medium) -> Server {
    let builder = Server::builder()
        .workers(0)
        .no_disk_cache()
        .node_timeout(NODE_TIMEOUT)
        .secret(secret.clone());
    medium.listen(builder).build().expect("the client builds")
}

/// The statistics row of `process`, by its id.
fn row_of<'a>(stats: &'a Stats, process: &NodeProcess) -> &'a wasp::NodeStats {
    stats
        .nodes
        .iter()
        .find(|node| node.id.as_deref() == Some(process.id()))
        .unwrap_or_else(|| panic!("{} was never connected:\n{stats}", process.address()))
}

/// Whether `server` is connected to `process` now.
fn is_connected(server: &Server, process: &NodeProcess) -> bool {
    let stats = server.stats();
    let row = stats
        .nodes
        .iter()
        .find(|node| node.id.as_deref() == Some(process.id()));
    row.is_some_and(|node| node.connected)
}

/// How many jobs of `batch` have finished, which must leave most of it to run: what
/// happened (`event`) must have happened mid-batch, or what follows proves nothing.
fn under_way(batch: &Batch, event: &str) -> usize {
    let finished = batch.finished.load(std::sync::atomic::Ordering::SeqCst);
    let total = batch.jobs.len();
    assert!(
        finished < total * 5 / 6,
        "{finished} of {total} jobs had finished before {event}"
    );
    finished
}

/// Checks that each of `processes` ran some of the jobs.
fn all_did_work(stats: &Stats, processes: &[&NodeProcess]) {
    for process in processes {
        let node = row_of(stats, process);
        assert!(node.jobs > 0, "{} did no work:\n{stats}", node.address);
    }
}

/// sum_primes inputs heavy enough for a batch to outlast a node's start (about a second
/// of work for one worker, in all).
fn batch_inputs(count: u64) -> Vec<u64> {
    (0..count).map(|i| 100_000 + 97 * (i % 400)).collect()
}

/// The largest input of [`batch_inputs`].
const BATCH_MAX: u64 = 100_000 + 97 * 399;

#[test]
fn multicast_discovery_follows_nodes_that_join_leave_and_return() {
    let secret = new_secret();
    let medium = Medium::multicast();
    let mut first = discoverable(&secret, 1, medium);
    let second = discoverable(&secret, 1, medium);
    let server = discovering_client(&secret, medium);
    connect(&server, 2);
    let sums = sums_of_primes_below(BATCH_MAX);
    let batch = Batch::submit(&server, batch_inputs(600));
    // A third node appears once the batch is under way, and is given work at once.
    batch.wait_for(100);
    let third = discoverable(&secret, 1, medium);
    wait_until("the third node to be discovered", CONNECT_WAIT, || {
        is_connected(&server, &third)
    });
    let finished = under_way(&batch, "the third node came");
    // Then the first one dies: its jobs run elsewhere.
    batch.wait_for(finished + 50);
    first.kill9();
    batch.check(&sums);
    let stats = settled_stats(&server);
    all_did_work(&stats, &[&first, &second, &third]);
    assert_eq!(total_node_jobs(&stats), 600, "{stats}");
    let heard = stats.discovery.expect("discovery is on");
    assert!(heard.accepted >= 3, "{heard:?}");
    // Restarted, the dead node is heard again and reconnected.
    first.restart();
    wait_until("the restarted node to be found", CONNECT_WAIT, || {
        is_connected(&server, &first)
    });
    assert_eq!(row_of(&server.stats(), &first).connections, 2);
}

#[test]
fn broadcast_announcements_find_a_node() {
    let secret = new_secret();
    let medium = Medium::broadcast();
    let node = discoverable(&secret, 1, medium);
    let server = discovering_client(&secret, medium);
    connect(&server, 1);
    let sums = sums_of_primes_below(1_020);
    let batch = Batch::submit(&server, (1_000..1_020).collect());
    batch.check(&sums);
    let stats = settled_stats(&server);
    assert_eq!(row_of(&stats, &node).jobs, 20, "{stats}");
}

#[test]
fn forged_replayed_and_foreign_announcements_are_ignored() {
    use wasp::discovery::announce::{Announcement, seal};
    let secret = new_secret();
    let medium = Medium::unicast();
    let address = medium.target();
    // A node of another cluster announces itself to the same place.
    let stranger = discoverable(&new_secret(), 1, medium);
    let node = discoverable(&secret, 1, medium);
    let server = discovering_client(&secret, medium);
    connect(&server, 1);
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    // Garbage, and a genuine-looking announcement sealed with the right secret for an
    // address nobody listens on, sent twice: the second is a replay.
    sender
        .send_to(b"WASPA\x01 not an announcement", address)
        .unwrap();
    let lure = Announcement {
        id: "ee".repeat(32),
        address: "127.0.0.1:9".parse().unwrap(),
        arch: "x86_64".into(),
        workers: 64,
        sent_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
        nonce: [7; 16],
    };
    let sealed = seal(&lure, &secret).unwrap();
    sender.send_to(&sealed, address).unwrap();
    sender.send_to(&sealed, address).unwrap();
    // A forgery: the same announcement with another address and the old MAC.
    let mut forged = seal(
        &Announcement {
            nonce: [8; 16],
            ..lure.clone()
        },
        &secret,
    )
    .unwrap();
    let at = forged.len() - 40;
    forged[at] ^= 1;
    sender.send_to(&forged, address).unwrap();
    wait_until("the datagrams to be heard", TIMEOUT, || {
        server
            .stats()
            .discovery
            .is_some_and(|heard| heard.replayed >= 1 && heard.malformed >= 1 && heard.forged >= 2)
    });
    let module = sum_primes();
    let jobs: Vec<_> = (0..20u64)
        .map(|i| server.submit::<u64, _>(&module, "sum_primes", (1_000 + i,)))
        .collect();
    for job in &jobs {
        assert!(result(job).is_ok());
    }
    let stats = settled_stats(&server);
    assert!(
        stats
            .nodes
            .iter()
            .all(|n| n.id.as_deref() != Some(stranger.id())),
        "the other cluster's node was used:\n{stats}"
    );
    let lured = stats.nodes.iter().find(|n| n.address == "127.0.0.1:9");
    assert!(lured.is_none_or(|n| n.jobs == 0 && !n.connected), "{stats}");
    let genuine = stats
        .nodes
        .iter()
        .find(|n| n.id.as_deref() == Some(node.id()))
        .expect("the genuine node");
    assert_eq!(genuine.jobs, 20, "{stats}");
}

#[test]
fn a_node_resized_at_run_time_gets_a_matching_share_of_the_work() {
    let secret = new_secret();
    let settings = tempfile::tempdir().expect("temp dir");
    let file = settings.path().join("node.conf");
    std::fs::write(&file, "workers = 1\n").expect("settings written");
    let steady = NodeProcess::start(Auth::Secret(&secret), 1);
    let config = file.to_str().expect("a UTF-8 path");
    let mut resized = NodeProcess::start_with(Auth::Secret(&secret), 1, &["--config", config]);
    let server = client(Auth::Secret(&secret), &[&steady, &resized]);
    connect(&server, 2);
    std::fs::write(&file, "# three workers from now on\nworkers = 3\n").expect("settings written");
    resized.hangup();
    let workers_of = |server: &Server, id: &str| {
        let stats = server.stats();
        let node = stats.nodes.iter().find(|n| n.id.as_deref() == Some(id));
        node.map_or(0, |n| n.workers)
    };
    wait_until("the client to see 3 workers", TIMEOUT, || {
        workers_of(&server, resized.id()) == 3
    });
    // Jobs of 20 ms of wall-clock time each: a worker's share does not depend on how
    // much CPU a busy machine leaves it.
    let module = testjobs();
    let jobs: Vec<_> = (0..60)
        .map(|_| server.submit::<u64, _>(&module, "busy_ms", (20u64,)))
        .collect();
    for job in &jobs {
        assert_eq!(result(job), Ok(20));
    }
    let stats = settled_stats(&server);
    let jobs_of = |id: &str| {
        let node = stats.nodes.iter().find(|n| n.id.as_deref() == Some(id));
        node.map_or(0, |n| n.jobs)
    };
    assert!(
        jobs_of(resized.id()) > jobs_of(steady.id()),
        "the resized node should take the larger share:\n{stats}"
    );
    assert!(
        resized.log().contains("worker count changed"),
        "{}",
        resized.log()
    );
}

#[test]
fn wasp_run_discovers_a_node_by_multicast() {
    let secret = new_secret();
    let medium = Medium::multicast();
    let _node = discoverable(&secret, 1, medium);
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("cluster.key");
    crate::harness::node::write_secret(&key, &secret);
    let group = medium.target().to_string();
    let args = [
        "run",
        SUM_PRIMES,
        "sum_primes",
        "100000",
        "--workers",
        "0",
        "--discovery-address",
        &group,
        "--discovery-interface",
        "127.0.0.1",
        "--secret-file",
        key.to_str().expect("a UTF-8 path"),
        "--no-cache",
    ];
    let out = crate::harness::node::run_wasp(&args, TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "454396537\n");
}

// Peers given by name. The name below stands for whichever nodes the test's resolver
// says, as an orchestrator would change a headless Service's answer.

/// The name of the tests' "service".
const SERVICE: &str = "workers.wasp.test:7878";

/// A client of the nodes [`SERVICE`] resolves to: `answer`, read at each resolution (ten
/// times a second).
fn named_client(secret: &ClusterSecret, answer: &Arc<Mutex<Vec<SocketAddr>>>) -> Server {
    let answer = answer.clone();
    Server::builder()
        .workers(0)
        .no_disk_cache()
        .node_timeout(NODE_TIMEOUT)
        .secret(secret.clone())
        .peers([SERVICE.parse().expect("a name")])
        .resolve_interval(Duration::from_millis(100))
        .resolver(move |name| {
            assert_eq!(name, SERVICE);
            Ok(answer.lock().expect("the answer").clone())
        })
        .build()
        .expect("the client builds")
}

#[test]
fn a_name_stands_for_every_node_it_resolves_to_as_they_come_and_go() {
    let secret = new_secret();
    let mut first = NodeProcess::start(Auth::Secret(&secret), 1);
    let second = NodeProcess::start(Auth::Secret(&secret), 1);
    let third = NodeProcess::start(Auth::Secret(&secret), 1);
    let answer = Arc::new(Mutex::new(vec![first.address()]));
    let server = named_client(&secret, &answer);
    connect(&server, 1);
    let sums = sums_of_primes_below(BATCH_MAX);
    let batch = Batch::submit(&server, batch_inputs(600));
    batch.wait_for(100);
    // The orchestrator adds two nodes behind the name...
    *answer.lock().unwrap() = vec![first.address(), second.address(), third.address()];
    connect(&server, 3);
    let finished = under_way(&batch, "the nodes came");
    // ...and then removes the first one, which dies: its jobs run elsewhere.
    batch.wait_for(finished + 50);
    *answer.lock().unwrap() = vec![second.address(), third.address()];
    first.kill9();
    batch.check(&sums);
    wait_until("the removed node to be let go", TIMEOUT, || {
        let stats = server.stats();
        !stats
            .nodes
            .iter()
            .any(|node| node.id.as_deref() == Some(first.id()))
    });
    let stats = settled_stats(&server);
    all_did_work(&stats, &[&second, &third]);
    for process in [&second, &third] {
        let node = row_of(&stats, process);
        assert_eq!(node.address, process.address().to_string());
        assert_eq!(node.name.as_deref(), Some(SERVICE), "{stats}");
    }
    // The removed node's row folded into the departed row, with the work it did.
    let departed = stats.nodes.last().expect("rows");
    assert!(departed.address.ends_with("departed node(s)"), "{stats}");
    assert!(
        departed.jobs > 0,
        "the first node worked before it went:\n{stats}"
    );
    assert_eq!(
        stats.nodes.len(),
        3,
        "one row per node, the name's row reused:\n{stats}"
    );
    assert_eq!(total_node_jobs(&stats), 600, "{stats}");
}

#[test]
fn a_name_that_does_not_resolve_says_why() {
    let server = Server::builder()
        .workers(0)
        .secret(new_secret())
        .peers([SERVICE.parse().expect("a name")])
        .resolver(|_| Err(std::io::Error::other("no such service")))
        .build()
        .expect("the client builds");
    let error = server
        .wait_for_nodes(1, Duration::from_millis(500))
        .expect_err("no node behind the name");
    let message = error.to_string();
    assert!(message.contains("cannot resolve"), "{message}");
    assert!(message.contains("no such service"), "{message}");
    assert!(message.contains(SERVICE), "{message}");
}

/// A headless Service under churn: the name's answer changes 100 times during a batch, a
/// node that never answers coming and going each time. The two real nodes do the work, the
/// batch is right, and the node table stays small: nodes let go fold into one row.
#[test]
fn a_name_that_churns_a_hundred_times_keeps_the_node_table_bounded() {
    let secret = new_secret();
    let first = NodeProcess::start(Auth::Secret(&secret), 1);
    let second = NodeProcess::start(Auth::Secret(&secret), 1);
    let answer = Arc::new(Mutex::new(vec![first.address()]));
    let server = named_client(&secret, &answer);
    connect(&server, 1);
    let sums = sums_of_primes_below(BATCH_MAX);
    let batch = Batch::submit(&server, batch_inputs(600));
    let mut most_rows = 0;
    for cycle in 0..100 {
        // A port nothing listens on: a pod that was scheduled and never became a node.
        let ghost = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
        let real = if cycle % 2 == 0 {
            vec![first.address(), second.address()]
        } else {
            vec![second.address(), first.address()]
        };
        *answer.lock().unwrap() = [real, vec![ghost]].concat();
        // The client resolved this answer: its ghost has a row (so the test cannot pass
        // without the name having churned).
        let ghost = ghost.to_string();
        wait_until(
            &format!("cycle {cycle}'s ghost in the table"),
            TIMEOUT,
            || {
                let nodes = server.stats().nodes;
                most_rows = most_rows.max(nodes.len());
                nodes.iter().any(|node| node.address == ghost)
            },
        );
    }
    *answer.lock().unwrap() = vec![first.address(), second.address()];
    batch.check(&sums);
    let stats = settled_stats(&server);
    all_did_work(&stats, &[&first, &second]);
    assert_eq!(total_node_jobs(&stats), 600, "{stats}");
    assert!(
        most_rows <= 6,
        "100 ghosts came and went; the table held at most {most_rows} rows:\n{stats}"
    );
    wait_until("the ghosts to fold into one row", TIMEOUT, || {
        server.stats().nodes.len() <= 3
    });
    let stats = server.stats();
    let departed = stats
        .nodes
        .iter()
        .find_map(|node| node.address.strip_suffix(" departed node(s)"))
        .and_then(|count| count.parse::<u64>().ok());
    assert_eq!(departed, Some(100), "every ghost came and went:\n{stats}");
}

/// Nodes that write their address in a rendezvous directory (as a Slurm launcher starts
/// them) are found there: those that come get work, one that drains leaves the directory
/// and its jobs run elsewhere.
#[test]
fn nodes_are_found_in_a_rendezvous_directory_as_they_come_and_go() {
    let secret = new_secret();
    let dir = tempfile::tempdir().expect("a temp dir");
    let rendezvous = dir.path().to_str().expect("a UTF-8 path");
    let args = ["--rendezvous", rendezvous];
    let mut first = NodeProcess::start_with(Auth::Secret(&secret), 1, &args);
    let second = NodeProcess::start_with(Auth::Secret(&secret), 1, &args);
    let listed = wasp::rendezvous::addresses(dir.path()).expect("the directory reads");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&first.address()) && listed.contains(&second.address()));
    let server = Server::builder()
        .workers(0)
        .no_disk_cache()
        .node_timeout(NODE_TIMEOUT)
        .secret(secret.clone())
        .peers([format!("dir:{rendezvous}")
            .parse()
            .expect("a directory peer")])
        .resolve_interval(Duration::from_millis(100))
        .build()
        .expect("the client builds");
    connect(&server, 2);
    let sums = sums_of_primes_below(BATCH_MAX);
    let batch = Batch::submit(&server, batch_inputs(600));
    batch.wait_for(100);
    let third = NodeProcess::start_with(Auth::Secret(&secret), 1, &args);
    connect(&server, 3);
    let finished = under_way(&batch, "the third node came");
    batch.wait_for(finished + 50);
    // A drain (as `scancel` asks): the node leaves the directory, hands its jobs back.
    first.terminate();
    assert!(
        first.wait_exit(TIMEOUT).is_some(),
        "the node drained and exited"
    );
    let left = wasp::rendezvous::addresses(dir.path()).expect("the directory reads");
    assert!(!left.contains(&first.address()), "{left:?}");
    batch.check(&sums);
    let stats = settled_stats(&server);
    all_did_work(&stats, &[&second, &third]);
    assert_eq!(total_node_jobs(&stats), 600, "{stats}");
}
