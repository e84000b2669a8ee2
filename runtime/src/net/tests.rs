//! The transport over real QUIC endpoints on localhost: the handshake's outcomes for every
//! combination of secrets, impostors, peers of another version and garbage, and frames over
//! the streams it returns.

use super::*;
use crate::secret::{ClusterSecret, Role};
use bytes::BytesMut;
use quinn::{Connection, ConnectionError, Endpoint, RecvStream, SendStream};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use wasp_proto::codec::{self, MAX_FRAME_LEN, MAX_MODULE_FRAME_LEN, ProtoError};
use wasp_proto::handshake::{
    BINDING_LEN, EXPORTER_LABEL, HELLO_LEN, Hello, Refusal, Status, client_hello, node_verdict,
};
use wasp_proto::message::{NodeInfo, RunJob, ToClient, ToNode, WireLimits};
use wasp_proto::{CloseCode, PROTOCOL_VERSION};

/// Every test is bounded: a handshake that hangs is a failure, not a stuck test run.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A version no build speaks, far from ours so that messages cannot match by accident.
const OTHER_VERSION: u16 = PROTOCOL_VERSION + 1000;

type Streams = (SendStream, RecvStream);

/// Runs `test` with a time limit.
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("the test timed out")
}

/// A node endpoint on localhost with `identity`, and a client endpoint for it.
fn endpoints(identity: &NodeIdentity) -> (Endpoint, Endpoint, SocketAddr) {
    let transport = TransportSettings::default();
    let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
    let node = node_endpoint(localhost, identity, &transport).unwrap();
    let addr = node.local_addr().unwrap();
    let client = client_endpoint(addr, &transport).unwrap();
    (node, client, addr)
}

/// The next connection to `node`, once its TLS handshake is done.
async fn accept(node: &Endpoint) -> Connection {
    node.accept().await.unwrap().await.unwrap()
}

/// A node and a client, each with its secret, run the real handshake. Returns each side's
/// connection and result.
async fn handshake(
    client_secret: Option<&ClusterSecret>,
    node_secret: Option<&ClusterSecret>,
) -> (
    (Connection, Result<Streams, HandshakeError>),
    (Connection, Result<Streams, HandshakeError>),
) {
    let identity = NodeIdentity::generate().unwrap();
    let (node, client, addr) = endpoints(&identity);
    let node_side = async {
        let conn = accept(&node).await;
        let result = node_handshake(&conn, node_secret).await;
        (conn, result)
    };
    let client_side = async {
        let conn = connect(&client, addr).await.unwrap();
        let result = client_handshake(&conn, client_secret).await;
        (conn, result)
    };
    bounded(async { tokio::join!(client_side, node_side) }).await
}

/// The keying material of `conn`'s session, as the drivers export it.
fn binding(conn: &Connection) -> [u8; BINDING_LEN] {
    let mut binding = [0; BINDING_LEN];
    conn.export_keying_material(&mut binding, EXPORTER_LABEL, b"")
        .unwrap();
    binding
}

/// The code and reason the peer closed `conn` with.
async fn close_of(conn: &Connection) -> (Option<CloseCode>, String) {
    match bounded(conn.closed()).await {
        ConnectionError::ApplicationClosed(close) => (
            CloseCode::from_code(close.error_code.into_inner()),
            String::from_utf8_lossy(&close.reason).into_owned(),
        ),
        other => panic!("not closed by the peer: {other:?}"),
    }
}

fn refusal(result: Result<Streams, HandshakeError>) -> Refusal {
    match result {
        Err(HandshakeError::Refused(refusal)) => refusal,
        Err(other) => panic!("not a refusal: {other:?}"),
        Ok(_) => panic!("the handshake succeeded"),
    }
}

fn secret(byte: u8) -> ClusterSecret {
    ClusterSecret::from_bytes([byte; 32])
}

fn run_job(job: u64) -> ToNode {
    ToNode::Run(RunJob {
        job,
        module: [job as u8; 32],
        function: "sum_primes".into(),
        args: vec![0x91, 0x0a],
        limits: WireLimits {
            timeout_ms: Some(1000),
            max_memory: Some(1 << 20),
            max_output: Some(1 << 10),
            max_table_elements: Some(100),
            fuel: None,
            reuse_instance: None,
        },
    })
}

async fn send_frames<M: serde::Serialize>(send: &mut SendStream, messages: &[M], max: usize) {
    let mut buf = BytesMut::new();
    for message in messages {
        codec::encode(message, max, &mut buf).unwrap();
    }
    write_all(send, &mut buf).await.unwrap();
    assert!(buf.is_empty());
}

#[tokio::test]
async fn the_same_secret_on_both_sides_opens_streams_that_carry_frames() {
    let secret = secret(7);
    let ((client_conn, client), (node_conn, node)) = handshake(Some(&secret), Some(&secret)).await;
    let (mut client_send, client_recv) = client.unwrap();
    let (mut node_send, node_recv) = node.unwrap();

    bounded(async {
        // Client to node: jobs, pipelined in one write.
        send_frames(&mut client_send, &[run_job(1), run_job(2)], MAX_FRAME_LEN).await;
        client_send.finish().unwrap();
        let mut from_client = FramedRecv::new(node_recv, MAX_FRAME_LEN);
        assert_eq!(
            from_client.next::<ToNode>().await.unwrap(),
            Some(run_job(1))
        );
        assert_eq!(
            from_client.next::<ToNode>().await.unwrap(),
            Some(run_job(2))
        );
        assert_eq!(from_client.next::<ToNode>().await.unwrap(), None);

        // Node to client.
        let welcome = ToClient::Welcome(NodeInfo {
            id: "node".into(),
            arch: std::env::consts::ARCH.into(),
            os: std::env::consts::OS.into(),
            workers: 4,
            version: env!("CARGO_PKG_VERSION").into(),
            max_module_size: 64 << 20,
            pulls_from: Vec::new(),
        });
        send_frames(
            &mut node_send,
            std::slice::from_ref(&welcome),
            MAX_FRAME_LEN,
        )
        .await;
        let mut from_node = FramedRecv::new(client_recv, MAX_FRAME_LEN);
        assert_eq!(from_node.next::<ToClient>().await.unwrap(), Some(welcome));

        // A module, on a unidirectional stream of its own.
        let module = ToNode::Module {
            hash: [3; 32],
            bytes: vec![0xa5; 3 << 20],
        };
        let mut uni = client_conn.open_uni().await.unwrap();
        send_frames(
            &mut uni,
            std::slice::from_ref(&module),
            MAX_MODULE_FRAME_LEN,
        )
        .await;
        uni.finish().unwrap();
        let received = node_conn.accept_uni().await.unwrap();
        let received: ToNode = read_one(received, MAX_MODULE_FRAME_LEN).await.unwrap();
        assert_eq!(received, module);
    })
    .await;
}

#[tokio::test]
async fn the_client_sees_the_fingerprint_of_the_node_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    // Twice, as if the node restarted: its identity, and so its fingerprint, stays.
    for _ in 0..2 {
        let identity = NodeIdentity::load_or_create(tmp.path()).unwrap();
        let (node, client, addr) = endpoints(&identity);
        let (client_conn, node_conn) =
            bounded(async { tokio::join!(connect(&client, addr), accept(&node)) }).await;
        let client_conn = client_conn.unwrap();
        assert_eq!(
            peer_fingerprint(&client_conn).as_deref(),
            Some(identity.fingerprint())
        );
        // Clients present no certificate.
        assert_eq!(peer_fingerprint(&node_conn), None);
        seen.push(identity.fingerprint().to_owned());
    }
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_on_both_sides() {
    let ((client_conn, client), (_, node)) = handshake(Some(&secret(1)), Some(&secret(2))).await;
    assert_eq!(refusal(node), Refusal::BadProof);
    let client = client.map(|_| ()).unwrap_err();
    assert!(
        matches!(client, HandshakeError::Refused(Refusal::RefusedWrongSecret)),
        "{client:?}"
    );
    assert!(
        client.to_string().contains("wrong cluster secret"),
        "{client}"
    );
    // Both sides close it (which first is a race, so the code is checked elsewhere).
    bounded(client_conn.closed()).await;
}

#[tokio::test]
async fn a_client_without_a_secret_is_refused_by_a_node_with_one() {
    let ((client_conn, client), (_, node)) = handshake(None, Some(&secret(1))).await;
    assert_eq!(refusal(node), Refusal::ProofRequired);
    assert_eq!(refusal(client), Refusal::ProofRequired);
    bounded(client_conn.closed()).await;
}

#[tokio::test]
async fn an_insecure_node_accepts_an_insecure_client() {
    let ((_, client), (_, node)) = handshake(None, None).await;
    client.unwrap();
    node.unwrap();
}

#[tokio::test]
async fn a_client_with_a_secret_refuses_an_insecure_node() {
    let ((_, client), (node_conn, node)) = handshake(Some(&secret(1)), None).await;
    assert_eq!(refusal(client), Refusal::NodeInsecure);
    // The node accepted; the client's close tells it why it was dropped.
    node.unwrap();
    let (code, reason) = close_of(&node_conn).await;
    assert_eq!(code, Some(CloseCode::Auth));
    assert!(reason.contains("without a secret"), "{reason}");
}

#[tokio::test]
async fn a_node_that_accepts_without_knowing_the_secret_is_refused() {
    // An impostor: it skips the check and claims acceptance with a proof of another secret.
    let identity = NodeIdentity::generate().unwrap();
    let (node, client, addr) = endpoints(&identity);
    let impostor = async {
        let conn = accept(&node).await;
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let mut hello = [0; HELLO_LEN];
        recv.read_exact(&mut hello).await.unwrap();
        let answer = Hello {
            version: PROTOCOL_VERSION,
            status: Status::Accepted,
            proof: Some(secret(2).proof(Role::Node, &binding(&conn)).to_bytes()),
        };
        send.write_all(&answer.encode()).await.unwrap();
        close_of(&conn).await
    };
    let client_side = async {
        let conn = connect(&client, addr).await.unwrap();
        client_handshake(&conn, Some(&secret(1))).await
    };
    let (client, (code, _)) = bounded(async { tokio::join!(client_side, impostor) }).await;
    assert_eq!(refusal(client), Refusal::NodeUnproven);
    assert_eq!(code, Some(CloseCode::Auth));
}

#[tokio::test]
async fn a_relayed_proof_is_refused_because_it_is_bound_to_another_session() {
    // A man in the middle without the secret: it terminates the client's TLS session and
    // opens its own to the real node, forwarding the hellos both ways.
    let secret = secret(5);
    let relay_identity = NodeIdentity::generate().unwrap();
    let (relay_node, client, relay_addr) = endpoints(&relay_identity);
    let node_identity = NodeIdentity::generate().unwrap();
    let (node, relay_client, node_addr) = endpoints(&node_identity);

    let relay = async {
        let inbound = accept(&relay_node).await;
        let (mut in_send, mut in_recv) = inbound.accept_bi().await.unwrap();
        let mut hello = [0; HELLO_LEN];
        in_recv.read_exact(&mut hello).await.unwrap();
        let outbound = connect(&relay_client, node_addr).await.unwrap();
        let (mut out_send, mut out_recv) = outbound.open_bi().await.unwrap();
        out_send.write_all(&hello).await.unwrap();
        let mut answer = [0; HELLO_LEN];
        out_recv.read_exact(&mut answer).await.unwrap();
        in_send.write_all(&answer).await.unwrap();
        close_of(&inbound).await
    };
    let node_side = async {
        let conn = accept(&node).await;
        node_handshake(&conn, Some(&secret)).await
    };
    let client_side = async {
        let conn = connect(&client, relay_addr).await.unwrap();
        client_handshake(&conn, Some(&secret)).await
    };
    let (client, node, _) = bounded(async { tokio::join!(client_side, node_side, relay) }).await;
    assert_eq!(refusal(node), Refusal::BadProof);
    assert_eq!(refusal(client), Refusal::RefusedWrongSecret);
}

#[tokio::test]
async fn a_node_refuses_a_client_of_another_version() {
    let secret = secret(1);
    let identity = NodeIdentity::generate().unwrap();
    let (node, client, addr) = endpoints(&identity);
    let node_side = async {
        let conn = accept(&node).await;
        node_handshake(&conn, Some(&secret)).await
    };
    // A client of another version: a hello as ours, with its version.
    let other_client = async {
        let conn = connect(&client, addr).await.unwrap();
        let mut hello = client_hello(Some(&secret), &binding(&conn));
        hello.version = OTHER_VERSION;
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&hello.encode()).await.unwrap();
        let mut answer = [0; HELLO_LEN];
        recv.read_exact(&mut answer).await.unwrap();
        (Hello::parse(&answer).unwrap(), close_of(&conn).await)
    };
    let (node, (answer, (code, reason))) =
        bounded(async { tokio::join!(node_side, other_client) }).await;
    let node = refusal(node);
    assert_eq!(
        node,
        Refusal::Version {
            ours: PROTOCOL_VERSION,
            theirs: OTHER_VERSION
        }
    );
    assert_mentions_versions(&node.to_string());
    // The other client learns the node's version from its answer, and why it was closed.
    assert_eq!(answer.version, PROTOCOL_VERSION);
    assert_eq!(answer.status, Status::VersionMismatch);
    assert_eq!(code, Some(CloseCode::Version));
    assert_mentions_versions(&reason);
}

#[tokio::test]
async fn a_client_refuses_a_node_of_another_version() {
    let secret = secret(1);
    let identity = NodeIdentity::generate().unwrap();
    let (node, client, addr) = endpoints(&identity);
    // A node of another version: it accepts, and its answer carries its version.
    let other_node = async {
        let conn = accept(&node).await;
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let mut hello = [0; HELLO_LEN];
        recv.read_exact(&mut hello).await.unwrap();
        let hello = Hello::parse(&hello).unwrap();
        let (mut answer, verdict) = node_verdict(&hello, Some(&secret), &binding(&conn));
        verdict.unwrap();
        answer.version = OTHER_VERSION;
        send.write_all(&answer.encode()).await.unwrap();
        close_of(&conn).await
    };
    let client_side = async {
        let conn = connect(&client, addr).await.unwrap();
        client_handshake(&conn, Some(&secret)).await
    };
    let (client, (code, reason)) = bounded(async { tokio::join!(client_side, other_node) }).await;
    let client = refusal(client);
    assert_eq!(
        client,
        Refusal::Version {
            ours: PROTOCOL_VERSION,
            theirs: OTHER_VERSION
        }
    );
    assert_mentions_versions(&client.to_string());
    assert_eq!(code, Some(CloseCode::Version));
    assert_mentions_versions(&reason);
}

fn assert_mentions_versions(message: &str) {
    assert!(
        message.contains(&format!("v{PROTOCOL_VERSION}"))
            && message.contains(&format!("v{OTHER_VERSION}")),
        "{message}"
    );
}

#[tokio::test]
async fn a_garbage_hello_is_closed_as_a_protocol_error() {
    let identity = NodeIdentity::generate().unwrap();
    let (node, client, addr) = endpoints(&identity);
    let node_side = async {
        let conn = accept(&node).await;
        node_handshake(&conn, Some(&secret(1))).await
    };
    let garbage_client = async {
        let conn = connect(&client, addr).await.unwrap();
        let mut garbage = [0; HELLO_LEN];
        getrandom::fill(&mut garbage).unwrap();
        garbage[0] = b'X'; // not the magic, whatever the draw
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&garbage).await.unwrap();
        close_of(&conn).await
    };
    let (node, (code, reason)) = bounded(async { tokio::join!(node_side, garbage_client) }).await;
    let node = node.map(|_| ()).unwrap_err();
    assert!(matches!(node, HandshakeError::Garbage(_)), "{node:?}");
    assert!(node.to_string().contains("not a wasp peer"), "{node}");
    assert_eq!(code, Some(CloseCode::Protocol));
    assert!(reason.starts_with("bad handshake"), "{reason}");
}

#[tokio::test]
async fn a_hello_cut_short_is_an_error_not_a_hang() {
    let identity = NodeIdentity::generate().unwrap();
    let (node, client, addr) = endpoints(&identity);
    let node_side = async {
        let conn = accept(&node).await;
        node_handshake(&conn, None).await
    };
    let short_client = async {
        let conn = connect(&client, addr).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(b"WASP\0").await.unwrap();
        send.finish().unwrap();
        conn
    };
    let (node, _conn) = bounded(async { tokio::join!(node_side, short_client) }).await;
    let node = node.map(|_| ()).unwrap_err();
    assert!(matches!(node, HandshakeError::Stream(_)), "{node:?}");
    assert!(node.to_string().contains("after 5 of 39 bytes"), "{node}");
}

#[tokio::test]
async fn a_node_that_closes_first_is_reported_with_its_code_and_reason() {
    let identity = NodeIdentity::generate().unwrap();
    let (node, client, addr) = endpoints(&identity);
    let closing_node = async {
        let conn = accept(&node).await;
        let _streams = conn.accept_bi().await.unwrap();
        conn.close(CloseCode::Shutdown.code().into(), b"draining");
        conn
    };
    let client_side = async {
        let conn = connect(&client, addr).await.unwrap();
        client_handshake(&conn, None).await
    };
    let (client, _conn) = bounded(async { tokio::join!(client_side, closing_node) }).await;
    let client = client.map(|_| ()).unwrap_err();
    assert!(
        matches!(
            &client,
            HandshakeError::ClosedByPeer {
                code: Some(CloseCode::Shutdown),
                reason,
                ..
            } if reason == "draining"
        ),
        "{client:?}"
    );
    assert_eq!(
        client.to_string(),
        "the node closed the connection: shutting down: draining"
    );
}

#[tokio::test]
async fn one_frame_streams_hold_exactly_one_frame() {
    let ((client_conn, client), (node_conn, node)) = handshake(None, None).await;
    let (_streams, _other) = (client.unwrap(), node.unwrap());
    bounded(async {
        let frame = run_job(1);
        for count in [0, 2] {
            let mut uni = client_conn.open_uni().await.unwrap();
            let frames = vec![frame.clone(); count];
            send_frames(&mut uni, &frames, MAX_FRAME_LEN).await;
            uni.finish().unwrap();
            let recv = node_conn.accept_uni().await.unwrap();
            let err = read_one::<ToNode>(recv, MAX_FRAME_LEN).await.unwrap_err();
            let expected = if count == 0 {
                "without"
            } else {
                "more than one"
            };
            assert!(err.to_string().contains(expected), "{err}");
        }
        // A frame over the limit is refused from its header.
        let mut uni = client_conn.open_uni().await.unwrap();
        send_frames(&mut uni, std::slice::from_ref(&frame), MAX_FRAME_LEN).await;
        uni.finish().unwrap();
        let recv = node_conn.accept_uni().await.unwrap();
        let err = read_one::<ToNode>(recv, 8).await.unwrap_err();
        assert!(
            matches!(err, FrameError::Proto(ProtoError::TooLarge { max: 8, .. })),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_stream_cut_inside_a_frame_is_truncated() {
    let ((_, client), (_, node)) = handshake(None, None).await;
    let (mut send, _) = client.unwrap();
    let (_, recv) = node.unwrap();
    bounded(async {
        let mut buf = BytesMut::new();
        codec::encode(&run_job(1), MAX_FRAME_LEN, &mut buf).unwrap();
        buf.truncate(buf.len() - 1);
        write_all(&mut send, &mut buf).await.unwrap();
        send.finish().unwrap();
        let mut frames = FramedRecv::new(recv, MAX_FRAME_LEN);
        let err = frames.next::<ToNode>().await.unwrap_err();
        assert!(
            matches!(err, FrameError::Proto(ProtoError::Truncated { .. })),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_peer_gets_module_streams_and_a_full_window_only_once_it_proved_the_secret() {
    let identity = NodeIdentity::generate().unwrap();
    let (node, client, addr) = endpoints(&identity);
    let connections = async { tokio::join!(connect(&client, addr), accept(&node)) };
    let (stranger, _node_side) = bounded(connections).await;
    let stranger = stranger.unwrap();
    let stall = Duration::from_millis(300);
    let uni = tokio::time::timeout(stall, stranger.open_uni()).await;
    assert!(
        uni.is_err(),
        "a module stream was opened before the handshake"
    );
    let (mut send, _recv) = bounded(stranger.open_bi()).await.unwrap();
    let megabyte = vec![0; 1 << 20];
    let written = tokio::time::timeout(stall, send.write_all(&megabyte)).await;
    assert!(written.is_err(), "the node took 1 MiB from a stranger");

    // Once authenticated, a client can send a module of that size on a stream of its own.
    let secret = secret(3);
    let ((client_conn, client), (node_conn, node)) = handshake(Some(&secret), Some(&secret)).await;
    let (_streams, _node_streams) = (client.unwrap(), node.unwrap());
    bounded(async {
        let reader = async {
            let mut stream = node_conn.accept_uni().await.unwrap();
            stream.read_to_end(2 << 20).await.unwrap().len()
        };
        let writer = async {
            let mut stream = client_conn.open_uni().await.unwrap();
            stream.write_all(&megabyte).await.unwrap();
            stream.finish().unwrap();
        };
        let (read, ()) = tokio::join!(reader, writer);
        assert_eq!(read, megabyte.len());
    })
    .await;
}
