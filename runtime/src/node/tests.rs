//! A node in-process on localhost against hostile clients, on real sockets: each must be
//! refused or closed with a clear code and reason, and the node must go on serving the
//! clients that follow the protocol. Then what well-behaved clients rely on (modules asked
//! for once and shared between clients, typed job errors) and the graceful shutdown.
//!
//! The raw client here speaks the protocol by hand, so that it can break it anywhere; the
//! real client ([`Server`] with the node as a peer) checks that the node still serves.

mod policy;
mod pull;

use super::{Node, NodeConfig, NodePolicy};
use crate::error::JobError;
use crate::module::Module;
use crate::net::{self, FramedRecv, TransportSettings};
use crate::sandbox::Limits;
use crate::secret::ClusterSecret;
use crate::server::Server;
use bytes::BytesMut;
use quinn::{Connection, ConnectionError, Endpoint, SendStream};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasp_proto::codec::{self, MAX_FRAME_LEN, MAX_MODULE_FRAME_LEN};
use wasp_proto::error::WireError;
use wasp_proto::handshake::{BINDING_LEN, EXPORTER_LABEL, HELLO_LEN, Hello, Status, client_hello};
use wasp_proto::message::{NodeInfo, RunJob, ToClient, ToNode, WireHash, WireJobId, WireLimits};
use wasp_proto::{CloseCode, PROTOCOL_VERSION};

/// The bound on every step of a test: a node that hangs is a failure, not a stuck run.
const STEP: Duration = Duration::from_secs(5);

/// The node's drain timeout, and how long it lets a client stay silent.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// What `sum_primes(100)` returns.
const SUM_PRIMES_100: u64 = 1060;

/// An argument of `sum_primes` for which a job takes about a second (half a second is 2
/// million): long enough that a few of them queued on one worker outlast the drain timeout,
/// even on a much faster machine.
const LONG_JOB: u64 = 3_000_000;

/// Runs one step of a test with a time limit.
async fn within<T>(what: &str, step: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, step)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn secret() -> ClusterSecret {
    ClusterSecret::from_bytes([42; 32])
}

fn sum_primes() -> Module {
    Module::from_file(wasp_fixtures::SUM_PRIMES_GUEST).unwrap()
}

fn hash_of(module: &Module) -> WireHash {
    *module.hash().as_bytes()
}

/// Job `job`: `function(n)` of the module with hash `module`.
fn run(job: u64, module: WireHash, function: &str, n: u64) -> ToNode {
    ToNode::Run(RunJob {
        job,
        module,
        function: function.into(),
        args: rmp_serde::to_vec(&(n,)).unwrap(),
        limits: WireLimits::default(),
    })
}

/// `sum_primes(n)` for each job id of `jobs`.
fn sum_primes_jobs(module: WireHash, jobs: std::ops::Range<u64>, n: u64) -> Vec<ToNode> {
    jobs.map(|job| run(job, module, "sum_primes", n)).collect()
}

/// The frame of `module`, as sent on a stream of its own.
fn module_message(module: &Module) -> ToNode {
    ToNode::Module {
        hash: hash_of(module),
        bytes: module.bytes().to_vec(),
    }
}

/// A frame: a header announcing `len` bytes, then `body` (which may be shorter).
fn frame(len: u32, body: &[u8]) -> Vec<u8> {
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// The result of a job that must have succeeded, decoded.
fn sum(result: &Result<serde_bytes::ByteBuf, WireError>) -> u64 {
    let bytes = result.as_ref().expect("sum_primes failed");
    rmp_serde::from_slice(bytes).unwrap()
}

/// A node serving on localhost, in this test's runtime.
struct TestNode {
    addr: SocketAddr,
    id: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    /// The node's cache and identity; removed when the test ends.
    _dir: TempDir,
}

impl TestNode {
    /// A node with one worker, the test secret and short timeouts.
    fn start() -> TestNode {
        Self::start_with(NodePolicy::default())
    }

    /// Like [`start`](Self::start), with `policy`.
    fn start_with(policy: NodePolicy) -> TestNode {
        Self::start_configured(|config| config.policy = policy)
    }

    /// Like [`start`](Self::start), with the configuration changed by `configure`.
    fn start_configured(configure: impl FnOnce(&mut NodeConfig)) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), Some(secret()));
        config.workers = 1;
        config.cache_dir = Some(dir.path().join("cache"));
        config.identity_dir = Some(dir.path().join("identity"));
        config.drain_timeout = NODE_TIMEOUT;
        config.client_timeout = NODE_TIMEOUT;
        configure(&mut config);
        let node = Node::bind(config).unwrap();
        let addr = node.local_addr().unwrap();
        let id = node.id().to_owned();
        let (shutdown, stop) = oneshot::channel();
        let task = tokio::spawn(node.run(async {
            let _ = stop.await;
        }));
        TestNode {
            addr,
            id,
            shutdown: Some(shutdown),
            task,
            _dir: dir,
        }
    }

    /// Asks the node to shut down, without waiting.
    fn trigger_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits until the node has stopped (after [`trigger_shutdown`](Self::trigger_shutdown)).
    async fn stopped(&mut self) {
        within("the node stops", &mut self.task).await.unwrap();
    }

    /// Shuts the node down and waits until it has stopped.
    async fn stop(mut self) {
        self.trigger_shutdown();
        self.stopped().await;
    }

    /// Checks that the node still serves: a new client gets the right result.
    async fn assert_serves(&self) {
        let mut client = RawClient::connect(self).await;
        assert_eq!(
            client.sum_primes_100(&sum_primes(), 1).await,
            SUM_PRIMES_100
        );
        client.close();
    }
}

/// Checks that a real client (a [`Server`] with the node as its only peer) gets results.
async fn assert_server_serves(addr: SocketAddr) {
    // Dropping a server joins its network thread: build and drop it off the async runtime.
    let checked = tokio::task::spawn_blocking(move || {
        let server = Server::builder()
            .workers(0)
            .peers([crate::Peer::Addr(addr)])
            .secret(secret())
            .node_timeout(NODE_TIMEOUT)
            .build()
            .unwrap();
        server
            .submit::<u64, _>(&sum_primes(), "sum_primes", (100_u64,))
            .wait_timeout(Duration::from_secs(10))
    });
    let result = tokio::time::timeout(Duration::from_secs(15), checked)
        .await
        .expect("the real client hangs")
        .unwrap();
    assert_eq!(result, Some(Ok(SUM_PRIMES_100)));
}

/// A client endpoint and its connection to `addr`: TLS done, no wasp handshake yet. The
/// endpoint drives the connection, so it must be kept as long.
async fn tls_connect(addr: SocketAddr) -> (Endpoint, Connection) {
    let endpoint = net::client_endpoint(addr, &TransportSettings::default()).unwrap();
    let connection = within("the TLS handshake", net::connect(&endpoint, addr))
        .await
        .unwrap();
    (endpoint, connection)
}

/// The code and reason the node closed `connection` with.
async fn close_of(connection: &Connection) -> (Option<CloseCode>, String) {
    match within("the node closes the connection", connection.closed()).await {
        ConnectionError::ApplicationClosed(close) => (
            CloseCode::from_code(close.error_code.into_inner()),
            String::from_utf8_lossy(&close.reason).into_owned(),
        ),
        other => panic!("not closed by the node: {other:?}"),
    }
}

/// Asserts that a close has `code` and a reason containing `words`.
fn assert_close(close: &(Option<CloseCode>, String), code: CloseCode, words: &str) {
    let (got, reason) = close;
    assert_eq!(*got, Some(code), "closed with {got:?}: {reason}");
    assert!(
        reason.contains(words),
        "{words:?} not in the reason: {reason}"
    );
}

/// Asserts that the node closes `connection` with `code` and a reason containing `words`.
async fn assert_closed(connection: &Connection, code: CloseCode, words: &str) {
    assert_close(&close_of(connection).await, code, words);
}

/// Sends `hello` (made from the TLS session's keying material) as a client's first bytes.
/// Returns the node's answer, if it sent one, and how it closed the connection.
async fn send_hello(
    node: &TestNode,
    hello: impl FnOnce(&[u8; BINDING_LEN]) -> [u8; HELLO_LEN],
) -> (Option<Hello>, (Option<CloseCode>, String)) {
    let (_endpoint, connection) = tls_connect(node.addr).await;
    let mut binding = [0; BINDING_LEN];
    connection
        .export_keying_material(&mut binding, EXPORTER_LABEL, b"")
        .unwrap();
    let (mut send, mut recv) = within("open a stream", connection.open_bi()).await.unwrap();
    within("send a hello", send.write_all(&hello(&binding)))
        .await
        .unwrap();
    let mut answer = [0; HELLO_LEN];
    let answer = match within("read the answer", recv.read_exact(&mut answer)).await {
        Ok(()) => Some(Hello::parse(&answer).unwrap()),
        Err(_) => None,
    };
    (answer, close_of(&connection).await)
}

/// An authenticated client speaking the protocol by hand: it can send anything.
struct RawClient {
    /// Drives the connection; kept as long as it.
    _endpoint: Endpoint,
    connection: Connection,
    send: SendStream,
    recv: FramedRecv,
}

impl RawClient {
    /// Sends job 0, `sum_primes(100)` of `module`, answers the node's request for the
    /// module, and leaves job 0's result unread.
    async fn send_first_job_and_its_module(&mut self, module: &Module) {
        let hash = hash_of(module);
        self.send(&[run(0, hash, "sum_primes", 100)]).await;
        self.expect_need_module(hash).await;
        self.send_module(&module_message(module)).await;
    }

    /// The ids of the next `count` results, sorted; anything else is a failure.
    async fn results(&mut self, count: usize) -> Vec<WireJobId> {
        let mut done = Vec::with_capacity(count);
        while done.len() < count {
            match self.next().await {
                ToClient::Done(result) => done.push(result.job),
                other => panic!("after {} results: unexpected {other:?}", done.len()),
            }
        }
        done.sort_unstable();
        done
    }

    /// Connects with the test secret and reads the node's welcome.
    async fn connect(node: &TestNode) -> RawClient {
        let (endpoint, connection) = tls_connect(node.addr).await;
        let secret = secret();
        let handshake = net::client_handshake(&connection, Some(&secret));
        let (send, recv) = within("the wasp handshake", handshake).await.unwrap();
        let mut client = RawClient {
            _endpoint: endpoint,
            connection,
            send,
            recv: FramedRecv::new(recv, MAX_FRAME_LEN),
        };
        match client.next().await {
            ToClient::Welcome(NodeInfo { id, workers, .. }) => {
                assert_eq!(id, node.id);
                assert_eq!(workers, 1);
            }
            other => panic!("expected a welcome, got {other:?}"),
        }
        client
    }

    /// Writes raw bytes on the job stream.
    async fn write(&mut self, bytes: &[u8]) {
        within("write to the job stream", self.send.write_all(bytes))
            .await
            .unwrap();
    }

    /// Sends messages on the job stream, in one write.
    async fn send(&mut self, messages: &[ToNode]) {
        let mut buffer = BytesMut::new();
        for message in messages {
            codec::encode(message, MAX_FRAME_LEN, &mut buffer).unwrap();
        }
        self.write(&buffer).await;
    }

    /// Sends raw bytes on a unidirectional stream of their own, as modules are sent.
    async fn send_uni(&self, bytes: &[u8]) {
        let mut stream = within("open a module stream", self.connection.open_uni())
            .await
            .unwrap();
        within("write a module stream", stream.write_all(bytes))
            .await
            .unwrap();
        stream.finish().unwrap();
    }

    /// Sends a message on a unidirectional stream of its own.
    async fn send_module(&self, message: &ToNode) {
        let mut buffer = BytesMut::new();
        codec::encode(message, MAX_MODULE_FRAME_LEN, &mut buffer).unwrap();
        self.send_uni(&buffer).await;
    }

    /// The node's next message; the node must not end its stream.
    async fn next(&mut self) -> ToClient {
        self.next_or_end("the node's next message")
            .await
            .expect("the node ended its stream")
    }

    /// The node's next message, or `None` when it ends its stream. What the node says of
    /// preparing modules (statistics for the client, told as it happens) is skipped: the
    /// test of it reads `recv` itself.
    async fn next_or_end(&mut self, what: &str) -> Option<ToClient> {
        loop {
            match within(what, self.recv.next::<ToClient>()).await.unwrap() {
                Some(ToClient::Preparing { .. } | ToClient::Prepared { .. }) => {}
                other => return other,
            }
        }
    }

    /// The node's next message, which must be a request for `module`.
    async fn expect_need_module(&mut self, module: WireHash) {
        match self.next().await {
            ToClient::NeedModule { hash } if hash == module => {}
            other => panic!("expected a request for the module, got {other:?}"),
        }
    }

    /// Runs `sum_primes(100)` as job `job`, sending the module if asked, and returns its
    /// result.
    async fn sum_primes_100(&mut self, module: &Module, job: u64) -> u64 {
        self.send(&[run(job, hash_of(module), "sum_primes", 100)])
            .await;
        loop {
            match self.next().await {
                ToClient::NeedModule { hash } if hash == hash_of(module) => {
                    self.send_module(&module_message(module)).await;
                }
                ToClient::Done(done) if done.job == job => return sum(&done.result),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Closes the connection as a client that is done.
    fn close(&self) {
        self.connection
            .close(CloseCode::Normal.code().into(), b"client done");
    }
}

// Before the handshake.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_datagrams_are_ignored() {
    let node = TestNode::start();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sizes = [1, 7, 39, 200, 1200, 1350, 1500];
    for round in 0..210 {
        let mut datagram = vec![0; sizes[round % sizes.len()]];
        getrandom::fill(&mut datagram).unwrap();
        if round % 3 == 0 {
            // A QUIC long header (an Initial of version 1), then noise.
            datagram[0] = 0xc0 | (datagram[0] & 0x0f);
            if let Some(version) = datagram.get_mut(1..5) {
                version.copy_from_slice(&1_u32.to_be_bytes());
            }
        }
        socket.send_to(&datagram, node.addr).unwrap();
    }
    node.assert_serves().await;
    assert_server_serves(node.addr).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_the_node_serves_on() {
    let node = TestNode::start();
    let wrong = ClusterSecret::from_bytes([7; 32]);
    let (answer, close) = send_hello(&node, |binding| {
        client_hello(Some(&wrong), binding).encode()
    })
    .await;
    assert_eq!(answer.map(|hello| hello.status), Some(Status::BadProof));
    assert_close(&close, CloseCode::Auth, "does not know the cluster secret");

    // The real handshake says why, and does not connect.
    let (_endpoint, connection) = tls_connect(node.addr).await;
    let refused = within(
        "a refused handshake",
        net::client_handshake(&connection, Some(&wrong)),
    )
    .await
    .map(|_| ())
    .unwrap_err();
    assert!(
        refused.to_string().contains("wrong cluster secret"),
        "{refused}"
    );

    assert_server_serves(node.addr).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_secret_is_refused_and_the_node_serves_on() {
    let node = TestNode::start();
    let (answer, close) = send_hello(&node, |binding| client_hello(None, binding).encode()).await;
    assert_eq!(
        answer.map(|hello| hello.status),
        Some(Status::ProofRequired)
    );
    assert_close(&close, CloseCode::Auth, "requires the cluster secret");
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_version_learns_the_node_version_and_is_closed() {
    let node = TestNode::start();
    let theirs = PROTOCOL_VERSION + 1;
    let (answer, close) = send_hello(&node, |binding| {
        let mut hello = client_hello(Some(&secret()), binding);
        hello.version = theirs;
        hello.encode()
    })
    .await;
    let answer = answer.expect("no answer to a hello of another version");
    assert_eq!(answer.status, Status::VersionMismatch);
    assert_eq!(answer.version, PROTOCOL_VERSION);
    assert_close(&close, CloseCode::Version, &format!("v{PROTOCOL_VERSION}"));
    assert_close(&close, CloseCode::Version, &format!("v{theirs}"));
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_hello_is_a_protocol_error() {
    let node = TestNode::start();
    let (answer, close) = send_hello(&node, |_| {
        let mut garbage = [0; HELLO_LEN];
        getrandom::fill(&mut garbage).unwrap();
        garbage[0] = b'X'; // not the magic, whatever the draw
        garbage
    })
    .await;
    assert_eq!(answer, None);
    assert_close(&close, CloseCode::Protocol, "not a wasp peer");
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_cut_short_is_a_protocol_error() {
    let node = TestNode::start();
    let (_endpoint, connection) = tls_connect(node.addr).await;
    let (mut send, _recv) = within("open a stream", connection.open_bi()).await.unwrap();
    within("send half a hello", send.write_all(b"WASP\0"))
        .await
        .unwrap();
    send.finish().unwrap();
    assert_closed(&connection, CloseCode::Protocol, "5 of 39 bytes").await;
    node.assert_serves().await;
    node.stop().await;
}

// Authenticated clients that break the framing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_is_a_protocol_error() {
    let node = TestNode::start();
    // A client connected before is not affected.
    let mut bystander = RawClient::connect(&node).await;
    let mut client = RawClient::connect(&node).await;
    client.write(&frame(100, &[0x90; 10])).await;
    client.send.finish().unwrap();
    assert_closed(
        &client.connection,
        CloseCode::Protocol,
        "ended inside a frame",
    )
    .await;

    assert_eq!(
        bystander.sum_primes_100(&sum_primes(), 7).await,
        SUM_PRIMES_100
    );
    bystander.close();
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_refused_from_its_header() {
    let node = TestNode::start();
    let mut client = RawClient::connect(&node).await;
    // 1 GiB announced, none of it sent, the stream left open: the node must not wait for it
    // (a node that waited would let the connection time out instead of closing it).
    client.write(&frame(1 << 30, &[])).await;
    let close = close_of(&client.connection).await;
    assert_close(&close, CloseCode::Protocol, &(1_u32 << 30).to_string());
    assert_close(&close, CloseCode::Protocol, &MAX_FRAME_LEN.to_string());
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_body_is_a_protocol_error() {
    let node = TestNode::start();
    // Not MessagePack (0xc1 is never used), and MessagePack that is not a message.
    let bodies: [&[u8]; 2] = [&[0xc1; 8], &[0xa5, b'h', b'e', b'l', b'l', b'o']];
    for body in bodies {
        let mut client = RawClient::connect(&node).await;
        let len = u32::try_from(body.len()).unwrap();
        client.write(&frame(len, body)).await;
        assert_closed(&client.connection, CloseCode::Protocol, "malformed message").await;
    }
    node.assert_serves().await;
    node.stop().await;
}

// Authenticated clients that break the rules of modules.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_not_asked_for_is_a_protocol_error() {
    let node = TestNode::start();
    let client = RawClient::connect(&node).await;
    client.send_module(&module_message(&sum_primes())).await;
    assert_closed(&client.connection, CloseCode::Protocol, "did not ask for").await;
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_bytes_that_do_not_match_their_hash_are_a_protocol_error() {
    let node = TestNode::start();
    let module = sum_primes();
    let hash = hash_of(&module);
    let mut client = RawClient::connect(&node).await;
    client.send(&[run(1, hash, "sum_primes", 100)]).await;
    client.expect_need_module(hash).await;
    let mut bytes = module.bytes().to_vec();
    *bytes.last_mut().unwrap() ^= 1;
    client.send_module(&ToNode::Module { hash, bytes }).await;
    assert_closed(
        &client.connection,
        CloseCode::Protocol,
        "do not match their hash",
    )
    .await;
    // The forgery was not kept: the next client is asked for the module.
    let mut next = RawClient::connect(&node).await;
    next.send(&[run(1, hash, "sum_primes", 100)]).await;
    next.expect_need_module(hash).await;
    next.close();
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_on_the_job_stream_is_a_protocol_error() {
    let node = TestNode::start();
    let mut client = RawClient::connect(&node).await;
    client.send(&[module_message(&sum_primes())]).await;
    assert_closed(
        &client.connection,
        CloseCode::Protocol,
        "module on the job stream",
    )
    .await;
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_or_garbage_on_a_module_stream_is_a_protocol_error() {
    let node = TestNode::start();
    let client = RawClient::connect(&node).await;
    let mut job = BytesMut::new();
    let message = run(1, hash_of(&sum_primes()), "sum_primes", 100);
    codec::encode(&message, MAX_FRAME_LEN, &mut job).unwrap();
    client.send_uni(&job).await;
    assert_closed(
        &client.connection,
        CloseCode::Protocol,
        "job message on a module stream",
    )
    .await;

    let client = RawClient::connect(&node).await;
    client.send_uni(&frame(3, &[0xc1; 3])).await;
    assert_closed(&client.connection, CloseCode::Protocol, "bad module stream").await;
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_does_not_load_fails_its_jobs_not_the_connection() {
    let node = TestNode::start();
    let mut client = RawClient::connect(&node).await;
    let bytes = b"\0asm\x01\0\0\0 and then nonsense".to_vec();
    let hash = *blake3::hash(&bytes).as_bytes();
    client.send(&sum_primes_jobs(hash, 1..3, 100)).await;
    client.expect_need_module(hash).await;
    client.send_module(&ToNode::Module { hash, bytes }).await;
    for _ in 1..3 {
        match client.next().await {
            ToClient::Done(done) => {
                assert!(matches!(done.result, Err(WireError::Module(_))), "{done:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The connection is still good.
    assert_eq!(
        client.sum_primes_100(&sum_primes(), 3).await,
        SUM_PRIMES_100
    );
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_disturb_a_real_client_running_jobs() {
    let node = TestNode::start();
    let addr = node.addr;
    let real = tokio::task::spawn_blocking(move || {
        let server = Server::builder()
            .workers(0)
            .peers([crate::Peer::Addr(addr)])
            .secret(secret())
            .node_timeout(NODE_TIMEOUT)
            .build()
            .unwrap();
        let module = sum_primes();
        let jobs: Vec<_> = (0..20)
            .map(|_| server.submit::<u64, _>(&module, "sum_primes", (100_000_u64,)))
            .collect();
        jobs.iter()
            .map(|job| job.wait_timeout(Duration::from_secs(10)))
            .collect::<Vec<_>>()
    });
    for (bytes, words) in [
        (frame(1 << 30, &[]), "exceeds the maximum"),
        (frame(4, &[0xc1; 4]), "malformed message"),
        (frame(100, &[0x90; 10]), "ended inside a frame"),
    ] {
        let mut client = RawClient::connect(&node).await;
        client.write(&bytes).await;
        // The node may have closed already (the oversized frame): finishing may fail.
        let _ = client.send.finish();
        assert_closed(&client.connection, CloseCode::Protocol, words).await;
        let wrong = ClusterSecret::from_bytes([7; 32]);
        let (_, close) = send_hello(&node, |binding| {
            client_hello(Some(&wrong), binding).encode()
        })
        .await;
        assert_close(&close, CloseCode::Auth, "cluster secret");
    }
    let results = tokio::time::timeout(Duration::from_secs(15), real)
        .await
        .expect("the real client hangs")
        .unwrap();
    assert!(
        results
            .iter()
            .all(|result| *result == Some(Ok(454_396_537))),
        "{results:?}"
    );
    node.stop().await;
}

// What a well-behaved client relies on.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_an_unknown_function_fails_with_unknown_function() {
    let node = TestNode::start();
    let module = sum_primes();
    let mut client = RawClient::connect(&node).await;
    client
        .send(&[run(1, hash_of(&module), "no_such_job", 100)])
        .await;
    client.expect_need_module(hash_of(&module)).await;
    client.send_module(&module_message(&module)).await;
    match client.next().await {
        ToClient::Done(done) => match done.result {
            Err(WireError::UnknownFunction {
                function,
                available,
            }) => {
                assert_eq!(function, "no_such_job");
                assert!(
                    available.iter().any(|job| job == "sum_primes"),
                    "{available:?}"
                );
            }
            other => panic!("unexpected result {other:?}"),
        },
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(client.sum_primes_100(&module, 2).await, SUM_PRIMES_100);
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_is_asked_for_once_and_shared_between_clients() {
    let node = TestNode::start();
    let module = sum_primes();
    let hash = hash_of(&module);
    let mut client = RawClient::connect(&node).await;
    let mut jobs = sum_primes_jobs(hash, 0..50, 100);
    // Then a job of a module nobody has: once the node asks for that one, it has read every
    // job before it, so all 50 are waiting before their module arrives.
    let missing = [9; 32];
    jobs.push(run(50, missing, "sum_primes", 100));
    client.send(&jobs).await;
    let mut asked = HashMap::<WireHash, usize>::new();
    while !asked.contains_key(&missing) {
        match client.next().await {
            ToClient::NeedModule { hash } => *asked.entry(hash).or_default() += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    client.send_module(&module_message(&module)).await;
    let mut done = Vec::new();
    while done.len() < 50 {
        match client.next().await {
            ToClient::Done(result) => {
                assert_eq!(sum(&result.result), SUM_PRIMES_100);
                done.push(result.job);
            }
            ToClient::NeedModule { hash } => *asked.entry(hash).or_default() += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    done.sort_unstable();
    assert_eq!(done, (0..50).collect::<Vec<_>>());
    assert_eq!(asked, HashMap::from([(hash, 1), (missing, 1)]));

    // Another client is not asked for it: the first answer to its job is the result.
    let mut other = RawClient::connect(&node).await;
    other.send(&[run(0, hash, "sum_primes", 100)]).await;
    match other.next().await {
        ToClient::Done(result) => assert_eq!(sum(&result.result), SUM_PRIMES_100),
        unexpected => panic!("expected a result, got {unexpected:?}"),
    }
    other.close();
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_sent_right_behind_their_module_are_not_asked_for_it_again() {
    let node = TestNode::start();
    let module = sum_primes();
    let hash = hash_of(&module);
    let mut client = RawClient::connect(&node).await;
    client.send(&[run(0, hash, "sum_primes", 100)]).await;
    client.expect_need_module(hash).await;
    // The jobs arrive while the node is still loading the module.
    client.send_module(&module_message(&module)).await;
    client.send(&sum_primes_jobs(hash, 1..50, 100)).await;
    assert_eq!(client.results(50).await, (0..50).collect::<Vec<_>>());
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_finishes_its_stream_still_gets_every_result() {
    let node = TestNode::start();
    let module = sum_primes();
    let hash = hash_of(&module);
    let mut client = RawClient::connect(&node).await;
    // The module first, so that the client can finish its stream right after its jobs.
    client.send_first_job_and_its_module(&module).await;
    assert!(matches!(client.next().await, ToClient::Done(done) if done.job == 0));
    client.send(&sum_primes_jobs(hash, 1..21, 100_000)).await;
    client.send.finish().unwrap();
    let mut done = Vec::new();
    while let Some(message) = client.next_or_end("a result").await {
        match message {
            ToClient::Done(result) => {
                assert!(result.result.is_ok(), "{result:?}");
                done.push(result.job);
            }
            other => panic!("after {} results: unexpected {other:?}", done.len()),
        }
    }
    done.sort_unstable();
    assert_eq!(done, (1..21).collect::<Vec<_>>());
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_of_a_client_that_left_do_not_hold_up_the_others() {
    let node = TestNode::start();
    let module = sum_primes();
    let hash = hash_of(&module);
    let mut client = RawClient::connect(&node).await;
    client.send(&sum_primes_jobs(hash, 0..20, LONG_JOB)).await;
    client.expect_need_module(hash).await;
    client.send_module(&module_message(&module)).await;
    // Once the first is done, the 19 others need far longer than a step of this test.
    assert!(matches!(client.next().await, ToClient::Done(_)));
    // Gone: its jobs run elsewhere now, and are no use here.
    client.close();
    drop(client);
    node.assert_serves().await;
    node.stop().await;
}

// Shutting down.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_finishes_or_hands_back_every_job() {
    let mut node = TestNode::start();
    let module = sum_primes();
    let hash = hash_of(&module);
    let mut client = RawClient::connect(&node).await;
    client.send(&sum_primes_jobs(hash, 0..20, LONG_JOB)).await;
    client.expect_need_module(hash).await;
    client.send_module(&module_message(&module)).await;
    let mut answered = HashMap::<u64, &'static str>::new();
    // Once the first is done, the 19 others on one worker outlast the drain timeout.
    match client.next().await {
        ToClient::Done(done) => answer(&mut answered, done.job, "done"),
        other => panic!("unexpected {other:?}"),
    }
    node.trigger_shutdown();

    let late = 100;
    let mut draining = false;
    loop {
        let message = client.next_or_end("the draining node's next message").await;
        match message {
            Some(ToClient::Draining) => {
                assert!(!draining, "told twice that the node drains");
                draining = true;
                // The node takes no more jobs: this one comes back.
                client.send(&[run(late, hash, "sum_primes", 100)]).await;
            }
            Some(ToClient::Done(done)) => answer(&mut answered, done.job, "done"),
            Some(ToClient::Returned { jobs }) => {
                assert!(draining, "jobs returned before the node said it drains");
                for job in jobs {
                    answer(&mut answered, job, "returned");
                }
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => break,
        }
    }
    assert!(draining, "the node never said it drains");
    assert_eq!(answered.remove(&late), Some("returned"));
    let mut jobs: Vec<_> = answered.keys().copied().collect();
    jobs.sort_unstable();
    assert_eq!(jobs, (0..20).collect::<Vec<_>>());
    assert!(
        answered.values().any(|&how| how == "returned"),
        "every job finished: the test drained nothing"
    );
    let (code, reason) = close_of(&client.connection).await;
    assert!(
        matches!(code, Some(CloseCode::Shutdown | CloseCode::Normal)),
        "closed with {code:?}: {reason}"
    );
    node.stopped().await;
}

/// The fault: a draining node ran its queued jobs for up to the drain timeout. Queued jobs
/// now go back at once (to run elsewhere), while the running one finishes: the hand-back
/// arrives before that job's result, and before any other job could have run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_hands_queued_jobs_back_at_once() {
    let mut node = TestNode::start();
    let module = Module::from_file(wasp_fixtures::WASP_TESTJOBS).unwrap();
    let hash = hash_of(&module);
    let mut client = RawClient::connect(&node).await;
    // The module first, so that the jobs below are submitted as they are read.
    client.send(&[run(9, hash, "busy_ms", 1)]).await;
    client.expect_need_module(hash).await;
    client.send_module(&module_message(&module)).await;
    assert!(matches!(client.next().await, ToClient::Done(done) if done.job == 9));
    // One worker: job 0 runs (1.5 s, within the drain timeout), jobs 1..5 wait for it.
    let mut jobs: Vec<_> = (0..5).map(|job| run(job, hash, "busy_ms", 1_500)).collect();
    // Then a job refused at once: its answer says the node has read (and submitted) the
    // five before it.
    let mut probe = run(10, hash, "busy_ms", 1);
    if let ToNode::Run(job) = &mut probe {
        job.limits.max_memory = Some(u64::MAX);
    }
    jobs.push(probe);
    client.send(&jobs).await;
    assert!(matches!(client.next().await, ToClient::Done(done) if done.job == 10));
    // Give the worker time to take job 0 (on a loaded machine it may not have yet; then
    // all five go back, which is just as right).
    tokio::time::sleep(Duration::from_millis(200)).await;
    node.trigger_shutdown();
    let mut returned = Vec::new();
    let finished = loop {
        let message = client.next_or_end("the draining node's next message").await;
        match message {
            Some(ToClient::Draining) => {}
            Some(ToClient::Returned { jobs }) => returned.extend(jobs),
            Some(ToClient::Done(done)) => break Some(done),
            Some(other) => panic!("unexpected {other:?}"),
            None => break None,
        }
    };
    returned.sort_unstable();
    match finished {
        Some(finished) => {
            assert_eq!(
                returned,
                (0..5)
                    .filter(|job| *job != finished.job)
                    .collect::<Vec<_>>(),
                "the queued jobs came back before any result"
            );
            assert!(
                finished.result.is_ok(),
                "the running job finished: {finished:?}"
            );
        }
        None => assert_eq!(returned, (0..5).collect::<Vec<_>>(), "every job came back"),
    }
    client.close();
    node.stopped().await;
}

/// A resized node announces its new worker count, not the one it started with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resized_node_announces_its_new_worker_count() {
    let listener = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), Some(secret()));
    config.workers = 1;
    config.cache_dir = Some(dir.path().join("cache"));
    config.announce_to = vec![listener.local_addr().unwrap()];
    config.announce_interval = Duration::from_millis(50);
    let node = Node::bind(config).unwrap();
    let control = node.workers_control();
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(node.run(async {
        let _ = stop.await;
    }));
    let heard = |workers: u32| {
        let listener = &listener;
        async move {
            let mut datagram = [0; 1024];
            loop {
                let (len, _) = listener.recv_from(&mut datagram).await.unwrap();
                let announcement = crate::discovery::announce::open(&datagram[..len], &secret())
                    .expect("an authentic announcement");
                if announcement.workers == workers {
                    return;
                }
            }
        }
    };
    within("an announcement of 1 worker", heard(1)).await;
    control.set(3);
    within("an announcement of 3 workers", heard(3)).await;
    let _ = shutdown.send(());
    within("the node stops", task).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_refuses_new_clients_at_once() {
    let mut node = TestNode::start();
    let module = sum_primes();
    let hash = hash_of(&module);
    let mut client = RawClient::connect(&node).await;
    client.send(&[run(0, hash, "sum_primes", LONG_JOB)]).await;
    client.expect_need_module(hash).await;
    client.send_module(&module_message(&module)).await;
    node.trigger_shutdown();
    assert_eq!(client.next().await, ToClient::Draining);
    let endpoint = net::client_endpoint(node.addr, &TransportSettings::default()).unwrap();
    let refused = within("a refused connection", net::connect(&endpoint, node.addr)).await;
    // Refused, not left to time out.
    match refused {
        Err(net::NetError::Connection {
            error: ConnectionError::ConnectionClosed(_),
            ..
        }) => {}
        other => panic!("a draining node must refuse a new client at once: {other:?}"),
    }
    client.close();
    node.stopped().await;
}

/// Records how `job` was answered; each job must be answered once.
fn answer(answered: &mut HashMap<u64, &'static str>, job: u64, how: &'static str) {
    if let Some(before) = answered.insert(job, how) {
        panic!("job {job} answered twice: {before}, then {how}");
    }
}

/// Sends `value` as a value stream: its head frame, then `bytes` (its bytes, or a forgery).
async fn send_value(client: &RawClient, hash: WireHash, len: u64, bytes: &[u8]) {
    let mut buffer = BytesMut::new();
    codec::encode(&ToNode::Data { hash, len }, MAX_FRAME_LEN, &mut buffer).unwrap();
    buffer.extend_from_slice(bytes);
    client.send_uni(&buffer).await;
}

/// `checksum(value)` of the test jobs, the value taken by reference.
fn checksum_taking(job: u64, module: WireHash, value: &crate::data::Data) -> ToNode {
    let mut args = vec![0x91];
    args.extend_from_slice(&value.reference());
    ToNode::Run(RunJob {
        job,
        module,
        function: "checksum".into(),
        args,
        limits: WireLimits::default(),
    })
}

/// A value: asked for once, read from its own stream, kept for the next job; a value not
/// asked for, or whose bytes do not match their hash, closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_asked_for_once_checked_and_kept() {
    let node = TestNode::start();
    let module = Module::from_file(wasp_fixtures::WASP_TESTJOBS).unwrap();
    let bytes = rmp_serde::to_vec(&serde_bytes::Bytes::new(&[3; 100_000])).unwrap();
    let value = crate::data::Data::of(bytes::Bytes::from(bytes.clone()));
    let mut client = RawClient::connect(&node).await;
    client
        .send(&[checksum_taking(1, hash_of(&module), &value)])
        .await;
    client.expect_need_module(hash_of(&module)).await;
    client
        .send(&[checksum_taking(2, hash_of(&module), &value)])
        .await;
    client.send_module(&module_message(&module)).await;
    assert_eq!(
        client.next().await,
        ToClient::NeedData { hash: value.hash },
        "asked for once, for two jobs"
    );
    send_value(&client, value.hash, bytes.len() as u64, &bytes).await;
    for _ in 0..2 {
        let ToClient::Done(done) = client.next().await else {
            panic!("a result");
        };
        let sums: (u64, u64) = rmp_serde::from_slice(done.result.as_ref().unwrap()).unwrap();
        assert_eq!(sums, (100_000, 300_000));
    }
    // Kept: the next job takes it without a request.
    client
        .send(&[checksum_taking(3, hash_of(&module), &value)])
        .await;
    assert!(matches!(client.next().await, ToClient::Done(done) if done.job == 3));
    client.close();

    let mut forger = RawClient::connect(&node).await;
    let other = crate::data::Data::of(bytes::Bytes::from_static(b"\xa3abc"));
    forger
        .send(&[checksum_taking(1, hash_of(&module), &other)])
        .await;
    assert_eq!(forger.next().await, ToClient::NeedData { hash: other.hash });
    send_value(&forger, other.hash, 4, b"\xa3abd").await;
    assert_closed(
        &forger.connection,
        CloseCode::Protocol,
        "do not match their hash",
    )
    .await;

    let unasked = RawClient::connect(&node).await;
    send_value(&unasked, other.hash, 4, b"\xa3abc").await;
    assert_closed(&unasked.connection, CloseCode::Protocol, "did not ask for").await;
    node.assert_serves().await;
    node.stop().await;
}
