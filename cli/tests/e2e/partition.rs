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

use crate::harness::hosts::TestHost;
use crate::harness::node::Auth;
use crate::harness::support::*;

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
            wasp_fixtures::cannot_run_here(&format!(
                "cannot make test hosts (network namespaces) here: {why}"
            ));
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
