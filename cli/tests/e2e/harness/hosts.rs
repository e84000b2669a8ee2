//! Test hosts: network namespaces joined to this one by a veth pair, each on a /24 of its
//! own, made and removed by the tests that need them (root and iproute2: `ip netns`, `tc`).

use super::node::{Auth, NodeProcess, Program, WASP};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

/// A test host: a network namespace with a veth pair to this one, on a /24 of its own.
pub(crate) struct TestHost {
    pub(crate) namespace: String,
    /// This side's end of the pair.
    here: String,
    /// The host's end, inside its namespace.
    there: String,
    /// The host's address.
    pub(crate) address: Ipv4Addr,
}

/// Runs `ip`/`tc` arguments, in `namespace` if given; `Err` with what it printed if it
/// fails.
pub(crate) fn run(namespace: Option<&str>, args: &[&str]) -> Result<(), String> {
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
    pub(crate) fn create(index: u8) -> Result<TestHost, String> {
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
    pub(crate) fn cut(&self) {
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
    pub(crate) fn heal(&self) {
        let restore = |namespace: Option<&str>, device: &str| {
            run(namespace, &["tc", "qdisc", "del", "dev", device, "root"]).expect("the link heals");
        };
        restore(None, &self.here);
        restore(Some(&self.namespace), &self.there);
    }

    /// A one-worker `wasp node` on this host.
    pub(crate) fn node(&self, secret: &wasp::ClusterSecret) -> NodeProcess {
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
