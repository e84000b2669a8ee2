//! The session's reader over a real QUIC stream: a node that sends messages faster than
//! the session takes them fills a bounded inbox, and is then held back by QUIC's flow
//! control, not buffered without end by the client.

use super::driver::{READ_AHEAD, spawn_reader};
use crate::net::{self, FramedRecv, NodeIdentity, TransportSettings};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use wasp_proto::codec::{self, MAX_FRAME_LEN};
use wasp_proto::message::ToClient;

const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn a_flooding_node_fills_a_bounded_inbox_and_loses_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let identity = NodeIdentity::generate().expect("an identity");
        let transport = TransportSettings::default();
        let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
        let node = net::node_endpoint(localhost, &identity, &transport).expect("a node");
        let address = node.local_addr().expect("its address");
        let client = net::client_endpoint(address, &transport).expect("a client");
        let (accepted, connected) = tokio::join!(
            async { node.accept().await?.await.ok() },
            net::connect(&client, address)
        );
        let (from_node, to_client) = (accepted.expect("accepted"), connected.expect("connected"));
        // The node floods the client with far more messages than the inbox holds.
        let sent = READ_AHEAD + 500;
        let mut stream = from_node.open_uni().await.expect("a stream");
        let writer = tokio::spawn(async move {
            let mut frames = BytesMut::new();
            for workers in 0..sent {
                let message = ToClient::Workers {
                    workers: workers as u32,
                };
                codec::encode(&message, MAX_FRAME_LEN, &mut frames).expect("a frame");
            }
            net::write_all(&mut stream, &mut frames)
                .await
                .expect("written");
            stream.finish().expect("finished");
            stream
        });
        let recv = to_client.accept_uni().await.expect("the stream");
        let (reader, mut inbox) = spawn_reader(FramedRecv::new(recv, MAX_FRAME_LEN));
        let deadline = Instant::now() + TIMEOUT;
        while inbox.len() < READ_AHEAD {
            assert!(
                Instant::now() < deadline,
                "the inbox never filled: {}",
                inbox.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(inbox.len(), READ_AHEAD, "the reader waits for room");
        // Taken in order, every message arrives, then the end of the stream.
        for workers in 0..sent {
            let message = tokio::time::timeout(TIMEOUT, inbox.recv())
                .await
                .expect("in time");
            match message {
                Some(Ok(ToClient::Workers { workers: got })) => assert_eq!(got as usize, workers),
                other => panic!("message {workers}: {other:?}"),
            }
        }
        let end = tokio::time::timeout(TIMEOUT, inbox.recv())
            .await
            .expect("in time");
        assert!(
            matches!(end, Some(Err(_))),
            "the end of the stream: {end:?}"
        );
        let _ = tokio::time::timeout(TIMEOUT, reader)
            .await
            .expect("the reader ends");
        drop(writer.await);
    });
}
