//! A real network partition: two `wasp node` processes, each on a test host of its own (a
//! network namespace joined to this one by a veth pair), and a client here. In the middle
//! of a batch one host's link is cut, both ways, silently: every packet dropped, no FIN, no
//! RST, no ICMP (a `pfifo` queue of length 0 on each end of the pair). Its node is declared
//! lost when its heartbeats stop, its jobs run on the other node, and every result is right
//! and counted once. The link is restored, and the node is used again.
//!
//! The test hosts need root and iproute2 (`ip netns`, `tc`). Where they cannot be made the
//! test says why and passes, except under `CI=true`, where it fails: CI must run it.
//!
//! Every wait is bounded: a hung test is a failed test.

#[path = "cluster/node.rs"]
#[allow(dead_code, reason = "each test binary uses its own part")]
mod node;
#[path = "cluster/support.rs"]
mod support;

use node::{Auth, NodeProcess, Program, WASP};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use support::*;

/// A test host: a network namespace with a veth pair to this one, on a /24 of its own.
struct TestHost {
    namespace: String,
    /// This side's end of the pair.
    here: String,
    /// The host's end, inside its namespace.
    there: String,
    /// The host's address.
    address: Ipv4Addr,
}

/// Runs `ip`/`tc` arguments, in `namespace` if given; `Err` with what it printed if it
/// fails.
fn run(namespace: Option<&str>, args: &[&str]) -> Result<(), String> {
    let mut command = match namespace {
        Some(namespace) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", namespace]);
            command.arg(args[0]).args(&args[1..]);
            command
        }
        None => {
            let mut command = Command::new(args[0]);
            command.args(&args[1..]);
            command
        }
    };
    let output = command
        .output()
        .map_err(|error| format!("{}: {error}", args.join(" ")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

impl TestHost {
    /// Makes test host `index` of this process.
    fn create(index: u8) -> Result<TestHost, String> {
        let id = std::process::id() % 10_000;
        // A /24 per host, out of the way of usual networks; unique per process and host.
        let subnet = [10, 200 + (id % 50) as u8, index * 4 + (id / 50 % 4) as u8];
        let host = TestHost {
            namespace: format!("wasp-test-{id}-{index}"),
            here: format!("wt{id}h{index}"),
            there: format!("wt{id}n{index}"),
            address: Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 2),
        };
        let local = format!("{}.{}.{}.1/24", subnet[0], subnet[1], subnet[2]);
        let remote = format!("{}/24", host.address);
        let ns = host.namespace.as_str();
        run(None, &["ip", "netns", "add", ns])?;
        let steps: [(Option<&str>, Vec<&str>); 7] = [
            (
                None,
                vec![
                    "ip",
                    "link",
                    "add",
                    &host.here,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &host.there,
                ],
            ),
            (None, vec!["ip", "link", "set", &host.there, "netns", ns]),
            (None, vec!["ip", "addr", "add", &local, "dev", &host.here]),
            (None, vec!["ip", "link", "set", &host.here, "up"]),
            (
                Some(ns),
                vec!["ip", "addr", "add", &remote, "dev", &host.there],
            ),
            (Some(ns), vec!["ip", "link", "set", &host.there, "up"]),
            (Some(ns), vec!["ip", "link", "set", "lo", "up"]),
        ];
        for (namespace, args) in steps {
            run(namespace, &args)?;
        }
        Ok(host)
    }

    /// Cuts the link both ways: every packet dropped silently at either end.
    fn cut(&self) {
        let drop_all = |namespace: Option<&str>, device: &str| {
            run(
                namespace,
                &[
                    "tc", "qdisc", "add", "dev", device, "root", "pfifo", "limit", "0",
                ],
            )
            .expect("the link is cut");
        };
        drop_all(None, &self.here);
        drop_all(Some(&self.namespace), &self.there);
    }

    /// Restores the link.
    fn heal(&self) {
        let restore = |namespace: Option<&str>, device: &str| {
            run(namespace, &["tc", "qdisc", "del", "dev", device, "root"]).expect("the link heals");
        };
        restore(None, &self.here);
        restore(Some(&self.namespace), &self.there);
    }

    /// A one-worker `wasp node` on this host.
    fn node(&self, secret: &wasp::ClusterSecret) -> NodeProcess {
        let program = Program {
            command: ["ip", "netns", "exec", &self.namespace, WASP]
                .map(String::from)
                .to_vec(),
            ..Program::wasp_under_test()
        };
        let listen = SocketAddr::from((self.address, 0));
        NodeProcess::start_program_at(program, Auth::Secret(secret), 1, listen, &[])
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and so the pair.
        let _ = run(None, &["ip", "netns", "del", &self.namespace]);
        let _ = run(None, &["ip", "link", "del", &self.here]);
    }
}

/// Two test hosts, or why they cannot be made here.
fn test_hosts() -> Result<[TestHost; 2], String> {
    let first = TestHost::create(0)?;
    let second = TestHost::create(1)?;
    Ok([first, second])
}

#[test]
fn a_partitioned_node_loses_nothing_and_is_used_again_after_the_heal() {
    let hosts = match test_hosts() {
        Ok(hosts) => hosts,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the partition test must run in CI, and cannot make its test hosts: {why}"
            );
            eprintln!("skipped: cannot make test hosts (network namespaces) here: {why}");
            return;
        }
    };
    let secret = new_secret();
    let nodes = [hosts[0].node(&secret), hosts[1].node(&secret)];
    let server = client(Auth::Secret(&secret), &[&nodes[0], &nodes[1]]);
    connect(&server, 2);
    let sums = sums_of_primes_below(100_000);
    // About 7 ms each: long enough that the cut falls in the middle of the batch.
    let inputs: Vec<u64> = (0..300).map(|i| 50_000 + 100 * (i % 500)).collect();
    let batch = Batch::submit(&server, inputs);
    batch.wait_for(40);
    let before = server.stats();
    hosts[0].cut();

    // The cut node's jobs run on the other one once its heartbeats are missed.
    batch.check(&sums);
    let stats = settled_stats(&server);
    let cut = &stats.nodes[0];
    assert!(!cut.connected, "{stats}");
    assert!(
        cut.retries > 0,
        "the cut node held jobs, retried elsewhere:\n{stats}"
    );
    assert!(stats.nodes[1].jobs > before.nodes[1].jobs, "{stats}");
    assert_eq!(
        total_node_jobs(&stats),
        300,
        "a result counted twice?\n{stats}"
    );
    assert_eq!((stats.finished, stats.failed), (300, 0), "{stats}");

    // Healed: the client connects to it again, and it takes work.
    hosts[0].heal();
    wait_until("the healed node reconnects", TIMEOUT, || {
        server.stats().nodes[0].connected
    });
    let healed = server.stats().nodes[0].jobs;
    let again = Batch::submit(&server, (0..100).map(|i| 50_000 + 100 * i).collect());
    again.check(&sums);
    let stats = settled_stats(&server);
    assert!(
        stats.nodes[0].jobs > healed,
        "the healed node did no work:\n{stats}"
    );
    assert_eq!(stats.nodes[0].connections, 2, "{stats}");
    assert_eq!(total_node_jobs(&stats), 400, "{stats}");
}
