//! A client against nodes that know the secret but never run a job: one hands every job
//! back, one drains and closes as soon as it gets a job, again and again, and one keeps
//! the connection alive but never answers. The jobs must not bounce, or wait, without end.

use crate::error::JobError;
use crate::module::Module;
use crate::net::{self, FramedRecv, NodeIdentity, TransportSettings};
use crate::secret::ClusterSecret;
use crate::server::Server;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::Duration;
use wasp_proto::CloseCode;
use wasp_proto::codec::{self, MAX_FRAME_LEN};
use wasp_proto::message::{NodeInfo, ToClient, ToNode};

/// What the fake node does with each job it gets.
#[derive(Debug, Clone, Copy)]
enum Bounce {
    /// Answers `Returned`, on the same connection.
    HandBack,
    /// Says it drains, and closes the connection as a node shutting down does.
    DrainAndClose,
    /// Keeps the job, and the connection (QUIC keeps it alive), and never answers.
    Ignore,
}

/// Serves clients on `endpoint`: welcomes them, then bounces every job they send.
async fn bounce_everything(endpoint: quinn::Endpoint, secret: ClusterSecret, bounce: Bounce) {
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
                pulls_from: Vec::new(),
            });
            let mut buffer = BytesMut::new();
            codec::encode(&welcome, MAX_FRAME_LEN, &mut buffer).unwrap();
            let mut recv = FramedRecv::new(recv, MAX_FRAME_LEN);
            loop {
                if net::write_all(&mut send, &mut buffer).await.is_err() {
                    return;
                }
                let job = match recv.next::<ToNode>().await {
                    Ok(Some(ToNode::Run(job))) => job,
                    Ok(Some(ToNode::Cancel { .. })) if matches!(bounce, Bounce::Ignore) => continue,
                    _ => return,
                };
                match bounce {
                    Bounce::Ignore => {}
                    Bounce::HandBack => {
                        let back = ToClient::Returned {
                            jobs: vec![job.job],
                        };
                        codec::encode(&back, MAX_FRAME_LEN, &mut buffer).unwrap();
                    }
                    Bounce::DrainAndClose => {
                        codec::encode(&ToClient::Draining, MAX_FRAME_LEN, &mut buffer).unwrap();
                        let _ = net::write_all(&mut send, &mut buffer).await;
                        let code = quinn::VarInt::from_u32(CloseCode::Shutdown.code());
                        connection.close(code, b"node shutting down");
                        return;
                    }
                }
            }
        });
    }
}

/// A client of one fake node that bounces jobs as `bounce` says: its one job (with
/// `options`) ends with `NodeLost` after `max_retries + 1` counted attempts.
fn job_bounced(
    bounce: Bounce,
    max_retries: u32,
    options: &crate::JobOptions,
) -> Option<Result<u64, JobError>> {
    let secret = ClusterSecret::from_bytes([5; 32]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let identity = NodeIdentity::generate().unwrap();
    let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
    let endpoint = {
        let _guard = runtime.enter();
        net::node_endpoint(localhost, &identity, &TransportSettings::default()).unwrap()
    };
    let addr = endpoint.local_addr().unwrap();
    runtime.spawn(bounce_everything(endpoint, secret.clone(), bounce));
    let server = Server::builder()
        .workers(0)
        .no_disk_cache()
        .peers([crate::Peer::Addr(addr)])
        .secret(secret)
        .max_retries(max_retries)
        .build()
        .unwrap();
    let module = Module::from_file(wasp_fixtures::SUM_PRIMES_GUEST).unwrap();
    let job = server.submit_with::<u64, _>(&module, "sum_primes", (100_u64,), options);
    job.wait_timeout(Duration::from_secs(90))
}

#[test]
fn a_node_that_hands_every_job_back_cannot_bounce_it_for_ever() {
    match job_bounced(Bounce::HandBack, 2, &crate::JobOptions::new()) {
        Some(Err(JobError::NodeLost { attempts, .. })) => assert_eq!(attempts, 3),
        other => panic!("{other:?}"),
    }
}

/// The fault: a node that said it drains (or closed as shutting down) got its jobs back with
/// no attempt counted, and was reconnected at once, so a job could bounce for ever.
#[test]
fn a_node_that_drains_at_every_job_cannot_bounce_it_for_ever() {
    match job_bounced(Bounce::DrainAndClose, 0, &crate::JobOptions::new()) {
        Some(Err(JobError::NodeLost { attempts, .. })) => assert_eq!(attempts, 1),
        other => panic!("{other:?}"),
    }
}

/// The fault: a node that keeps its connection alive (QUIC keep-alives) but never answers
/// held a job for ever, whatever its time limit. Now the client takes it back past twice
/// the limit plus the grace, which costs an attempt.
#[test]
fn a_node_that_never_answers_cannot_hold_a_job_with_a_time_limit_for_ever() {
    let limit = Duration::from_secs(1);
    let options = crate::JobOptions::new().timeout(limit);
    let started = std::time::Instant::now();
    match job_bounced(Bounce::Ignore, 0, &options) {
        Some(Err(JobError::NodeLost { attempts, .. })) => assert_eq!(attempts, 1),
        other => panic!("{other:?}"),
    }
    let waited = started.elapsed();
    let deadline = super::session::answer_deadline(limit);
    assert!(
        waited >= deadline,
        "taken back at its deadline, not before: {waited:?}"
    );
}
