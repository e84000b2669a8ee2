//! Node identities, end to end: two `wasp node` processes started on one host by one user
//! are two nodes (each its own identity, locked while it runs), and a client never merges
//! two nodes at two addresses into one, even when they present one identity.
//!
//! Every wait is bounded: a hung test is a failed test.

use crate::harness::node::{WASP, run_wasp, write_secret};
use crate::harness::support::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use wasp::{ClusterSecret, Peer, Server, ServerBuilder};

/// A `wasp node` on `127.0.0.1:port` with the secret in `data/cluster.key`, the user's
/// data directory at `data` (where nodes keep their identities by default), and `extra`
/// arguments.
struct Node {
    child: Child,
    id: String,
    address: SocketAddr,
}

/// The cluster secret of a test's nodes, written in `data/cluster.key` once.
fn secret(data: &Path) -> ClusterSecret {
    let path = data.join("cluster.key");
    if !path.exists() {
        write_secret(&path, &ClusterSecret::from_bytes([7; 32]));
    }
    ClusterSecret::from_file(&path).expect("the secret file reads")
}

impl Node {
    fn start(data: &Path, port: u16, extra: &[&str]) -> Node {
        secret(data);
        let mut child = Command::new(WASP)
            .args(["node", "--workers", "1"])
            .arg("--secret-file")
            .arg(data.join("cluster.key"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--cache-dir", &data.join("cache").display().to_string()])
            .args(extra)
            .env("XDG_DATA_HOME", data)
            .env("HOME", data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("wasp node starts");
        let stdout = child.stdout.take().expect("piped");
        let (line, first) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut text = String::new();
            let _ = line.send(reader.read_line(&mut text).map(|_| text));
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = first
            .recv_timeout(TIMEOUT)
            .expect("the node prints its address")
            .expect("its stdout is readable");
        // `wasp node <id> listening on <addr>`
        let words: Vec<&str> = line.split_whitespace().collect();
        let [_, _, id, _, _, address] = words[..] else {
            panic!("unexpected first line {line:?}")
        };
        Node {
            child,
            id: id.to_string(),
            address: address.parse().expect("an address"),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    socket.local_addr().expect("its address").port()
}

/// A client with no local workers, of the nodes of `data`'s secret.
fn client(data: &Path) -> ServerBuilder {
    Server::builder()
        .workers(0)
        .no_disk_cache()
        .node_timeout(NODE_TIMEOUT)
        .secret(secret(data))
}

/// `server`, a client of `nodes`, runs a batch: every node is a row of its own, connected
/// once, and did some of the work.
fn check_two_rows(server: Server, nodes: &[&Node]) {
    connect(&server, nodes.len());
    let batch = Batch::submit(&server, (0..40).map(|i| 20_000 + 100 * i).collect());
    batch.check(&sums_of_primes_below(24_000));
    let stats = settled_stats(&server);
    assert_eq!(stats.nodes.len(), nodes.len(), "{stats}");
    for node in nodes {
        let row = stats
            .nodes
            .iter()
            .find(|row| row.address == node.address.to_string())
            .unwrap_or_else(|| panic!("no row for {}:\n{stats}", node.address));
        assert_eq!(row.id.as_deref(), Some(node.id.as_str()));
        assert!(row.connected, "{row:?}");
        assert_eq!(row.connections, 1, "no flapping between nodes: {row:?}");
        assert!(row.jobs > 0, "{} did no work:\n{stats}", row.address);
    }
}

/// The fault: without `--identity-dir`, every node of a user shared one identity, and a
/// client merged them into one row, flapping between them.
#[test]
fn two_nodes_started_on_one_host_are_two_nodes() {
    let data = tempfile::tempdir().unwrap();
    let (first_port, second_port) = (free_port(), free_port());
    let first = Node::start(data.path(), first_port, &[]);
    let second = Node::start(data.path(), second_port, &[]);
    assert_ne!(first.id, second.id, "each node has an identity of its own");
    let listed = [first.address, second.address].map(Peer::Addr);
    let server = client(data.path()).peers(listed).build().unwrap();
    check_two_rows(server, &[&first, &second]);
    // Each identity is kept per listen address: restarted there, a node is the same node.
    let first_id = first.id.clone();
    drop(first);
    let again = Node::start(data.path(), first_port, &[]);
    assert_eq!(again.id, first_id);
}

/// A second node given a running node's identity directory is refused, saying why.
#[test]
fn an_identity_directory_in_use_is_refused_clearly() {
    let data = tempfile::tempdir().unwrap();
    let identity = data.path().join("identity").display().to_string();
    let _running = Node::start(data.path(), free_port(), &["--identity-dir", &identity]);
    let key = data.path().join("cluster.key").display().to_string();
    let refused = run_wasp(
        &[
            "node",
            "--secret-file",
            &key,
            "--listen",
            "127.0.0.1:0",
            "--identity-dir",
            &identity,
        ],
        TIMEOUT,
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("another wasp node uses the identity") && stderr.contains("--identity-dir"),
        "{stderr}"
    );
}

/// Two nodes sharing one identity on purpose (its files copied), discovered by their
/// announcements (which name that identity): the client still keeps them apart by address,
/// one connection each, both working. It used to key discovered nodes by identity, and
/// flapped between the two addresses.
#[test]
fn a_client_never_merges_two_addresses_into_one_node() {
    let data = tempfile::tempdir().unwrap();
    let hearing = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let announce = [
        "--announce-to",
        &hearing.to_string(),
        "--announce-interval",
        "200ms",
    ];
    let original = data.path().join("first");
    let copy = data.path().join("second");
    let first = Node::start(
        data.path(),
        free_port(),
        &[
            &["--identity-dir", &original.display().to_string()][..],
            &announce,
        ]
        .concat(),
    );
    std::fs::create_dir_all(&copy).unwrap();
    for file in ["node-cert.der", "node-key.der"] {
        std::fs::copy(original.join(file), copy.join(file)).unwrap();
    }
    let second = Node::start(
        data.path(),
        free_port(),
        &[
            &["--identity-dir", &copy.display().to_string()][..],
            &announce,
        ]
        .concat(),
    );
    assert_eq!(first.id, second.id, "one identity, on purpose");
    let server = client(data.path()).discovery(hearing).build().unwrap();
    check_two_rows(server, &[&first, &second]);
}
