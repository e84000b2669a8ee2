//! A client against a node that knows the secret but hands every job back, for ever: the
//! jobs must not bounce without end.

use crate::error::JobError;
use crate::module::Module;
use crate::net::{self, FramedRecv, NodeIdentity, TransportSettings};
use crate::secret::ClusterSecret;
use crate::server::Server;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::Duration;
use wasp_proto::codec::{self, MAX_FRAME_LEN};
use wasp_proto::message::{NodeInfo, ToClient, ToNode};

/// Serves clients on `endpoint`: welcomes them, then hands back every job they send.
async fn hand_everything_back(endpoint: quinn::Endpoint, secret: ClusterSecret) {
    while let Some(incoming) = endpoint.accept().await {
        let secret = secret.clone();
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else {
                return;
            };
            let Ok((mut send, recv)) = net::node_handshake(&connection, Some(&secret)).await else {
                return;
            };
            let welcome = ToClient::Welcome(NodeInfo {
                id: String::new(),
                arch: std::env::consts::ARCH.into(),
                os: std::env::consts::OS.into(),
                workers: 1,
                version: env!("CARGO_PKG_VERSION").into(),
                max_module_size: 64 << 20,
            });
            let mut buffer = BytesMut::new();
            codec::encode(&welcome, MAX_FRAME_LEN, &mut buffer).unwrap();
            let mut recv = FramedRecv::new(recv, MAX_FRAME_LEN);
            loop {
                if net::write_all(&mut send, &mut buffer).await.is_err() {
                    return;
                }
                let Ok(Some(ToNode::Run(job))) = recv.next::<ToNode>().await else {
                    return;
                };
                let back = ToClient::Returned {
                    jobs: vec![job.job],
                };
                codec::encode(&back, MAX_FRAME_LEN, &mut buffer).unwrap();
            }
        });
    }
}

#[test]
fn a_node_that_hands_every_job_back_cannot_bounce_it_for_ever() {
    let secret = ClusterSecret::from_bytes([5; 32]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let identity = NodeIdentity::generate().unwrap();
    let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
    let endpoint = {
        let _guard = runtime.enter();
        net::node_endpoint(localhost, &identity, &TransportSettings::default()).unwrap()
    };
    let addr = endpoint.local_addr().unwrap();
    runtime.spawn(hand_everything_back(endpoint, secret.clone()));
    let server = Server::builder()
        .workers(0)
        .no_disk_cache()
        .peers([crate::Peer::Addr(addr)])
        .secret(secret)
        .max_retries(2)
        .build()
        .unwrap();
    let module = Module::from_file(wasp_fixtures::SUM_PRIMES_GUEST).unwrap();
    let job = server.submit::<u64, _>(&module, "sum_primes", (100_u64,));
    match job.wait_timeout(Duration::from_secs(20)) {
        Some(Err(JobError::NodeLost { attempts, .. })) => assert_eq!(attempts, 3),
        other => panic!("{other:?}"),
    }
}
