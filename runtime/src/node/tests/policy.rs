//! The node's policy against clients asking too much: limits above the maxima, modules
//! off the allow-list or too large, too many jobs, too many clients, more modules than
//! the store keeps. Each is refused with a typed error or cut off with a reason, and the
//! node goes on serving everyone else.

use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn testjobs() -> Module {
    Module::from_file(wasp_fixtures::WASP_TESTJOBS).unwrap()
}

/// Job `job`: `function()` of `module`, with `limits`.
fn run_with(job: u64, module: &Module, function: &str, limits: Limits) -> ToNode {
    ToNode::Run(RunJob {
        job,
        module: hash_of(module),
        function: function.into(),
        args: rmp_serde::to_vec(&()).unwrap(),
        limits: crate::wire::limits_to_wire(&crate::sandbox::Asked::all(&limits)),
    })
}

impl RawClient {
    /// The node's answer to job `job`, sending its module if asked for `module`.
    async fn answer(
        &mut self,
        module: &Module,
        job: u64,
    ) -> Result<serde_bytes::ByteBuf, WireError> {
        loop {
            match self.next().await {
                ToClient::NeedModule { hash } if hash == hash_of(module) => {
                    self.send_module(&module_message(module)).await;
                }
                ToClient::Done(done) if done.job == job => return done.result,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// What `work` returns, given a real client ([`Server`]) of `node` alone, off the runtime
/// (dropping a server joins its network thread).
async fn with_real_client<T: Send + 'static>(
    node: &TestNode,
    work: impl FnOnce(&Server) -> T + Send + 'static,
) -> T {
    let addr = node.addr;
    let done = tokio::task::spawn_blocking(move || {
        let server = Server::builder()
            .workers(0)
            .peers([crate::Peer::Addr(addr)])
            .secret(secret())
            .build()
            .unwrap();
        work(&server)
    });
    within("the real client", done).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_above_the_maxima_are_refused_by_name() {
    let node = TestNode::start_with(NodePolicy {
        max_memory: 64 << 20,
        max_timeout: Some(Duration::from_secs(1)),
        ..NodePolicy::default()
    });
    let mut client = RawClient::connect(&node).await;
    let module = testjobs();
    let within_limits = Limits {
        timeout: Some(Duration::from_millis(500)),
        max_memory: 64 << 20,
        ..Limits::default()
    };
    let too_much = [
        (
            Limits {
                max_memory: 128 << 20,
                ..within_limits
            },
            "memory",
        ),
        (
            Limits {
                timeout: Some(Duration::from_secs(5)),
                ..within_limits
            },
            "timeout",
        ),
    ];
    for (job, (limits, name)) in (0..).zip(too_much) {
        client
            .send(&[run_with(job, &module, "answer", limits)])
            .await;
        // Refused at once: the module is not even asked for.
        match client.next().await {
            ToClient::Done(done) => match done.result {
                Err(WireError::LimitRefused { limit, .. }) => assert_eq!(limit, name),
                other => panic!("{name}: {other:?}"),
            },
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
    client
        .send(&[run_with(2, &module, "answer", within_limits)])
        .await;
    let answer: u32 = rmp_serde::from_slice(&client.answer(&module, 2).await.unwrap()).unwrap();
    assert_eq!(answer, 42);
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_asking_for_no_timeout_gets_the_nodes_maximum() {
    let node = TestNode::start_with(NodePolicy {
        max_timeout: Some(Duration::from_millis(300)),
        ..NodePolicy::default()
    });
    let mut client = RawClient::connect(&node).await;
    let module = testjobs();
    client
        .send(&[run_with(0, &module, "spin", Limits::default())])
        .await;
    let result = client.answer(&module, 0).await;
    assert!(
        matches!(result, Err(WireError::Timeout { .. })),
        "{result:?}"
    );
    // The worker is free again.
    assert_eq!(
        client.sum_primes_100(&sum_primes(), 1).await,
        SUM_PRIMES_100
    );
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_list_refuses_other_modules_without_asking_for_them() {
    let allowed = sum_primes();
    let node = TestNode::start_with(NodePolicy {
        allowed_modules: Some([allowed.hash()].into_iter().collect()),
        ..NodePolicy::default()
    });
    let mut client = RawClient::connect(&node).await;
    let other = testjobs();
    client
        .send(&[run_with(0, &other, "answer", Limits::default())])
        .await;
    match client.next().await {
        ToClient::Done(done) => match done.result {
            Err(WireError::ModuleRefused(why)) => {
                assert!(why.contains(&other.hash().to_hex()), "{why}");
            }
            result => panic!("{result:?}"),
        },
        unexpected => panic!("expected a refusal, got {unexpected:?}"),
    }
    assert_eq!(client.sum_primes_100(&allowed, 1).await, SUM_PRIMES_100);
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_over_the_size_limit_cuts_its_sender_off_from_the_header() {
    let node = TestNode::start_with(NodePolicy {
        max_module_size: 1 << 20,
        ..NodePolicy::default()
    });
    let mut client = RawClient::connect(&node).await;
    let module = sum_primes();
    client
        .send(&[run(0, hash_of(&module), "sum_primes", 100)])
        .await;
    client.expect_need_module(hash_of(&module)).await;
    // A 1 GiB module announced; none of it sent: closed from the header (a node that
    // waited for the body would let the connection time out instead).
    let mut stream = within("open a module stream", client.connection.open_uni())
        .await
        .unwrap();
    within("write the header", stream.write_all(&frame(1 << 30, &[])))
        .await
        .unwrap();
    assert_closed(
        &client.connection,
        CloseCode::Protocol,
        "exceeds the maximum",
    )
    .await;
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_does_not_send_a_node_a_module_it_would_refuse() {
    let node = TestNode::start_with(NodePolicy {
        max_module_size: 1024,
        ..NodePolicy::default()
    });
    let result = with_real_client(&node, |server| {
        server
            .submit::<u64, _>(&sum_primes(), "sum_primes", (100_u64,))
            .wait_timeout(Duration::from_secs(10))
    })
    .await;
    match result {
        Some(Err(JobError::ModuleRefused(why))) => assert!(why.contains("1024"), "{why}"),
        other => panic!("{other:?}"),
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_more_jobs_than_it_may_is_cut_off() {
    let node = TestNode::start_with(NodePolicy {
        max_jobs_per_client: 10,
        ..NodePolicy::default()
    });
    let mut client = RawClient::connect(&node).await;
    // Jobs of a module it never sends: they wait on the node, and count.
    let missing = [9; 32];
    client.send(&sum_primes_jobs(missing, 0..11, 100)).await;
    assert_closed(&client.connection, CloseCode::Protocol, "more than 10 jobs").await;
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_jobs_no_longer_count_against_a_client() {
    let node = TestNode::start_with(NodePolicy {
        max_jobs_per_client: 2,
        ..NodePolicy::default()
    });
    let mut client = RawClient::connect(&node).await;
    let module = sum_primes();
    for job in 0..10 {
        assert_eq!(client.sum_primes_100(&module, job).await, SUM_PRIMES_100);
    }
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_past_the_limit_are_refused_and_the_others_served() {
    let node = TestNode::start_with(NodePolicy {
        max_clients: 2,
        ..NodePolicy::default()
    });
    let mut first = RawClient::connect(&node).await;
    let second = RawClient::connect(&node).await;
    let endpoint = net::client_endpoint(node.addr, &TransportSettings::default()).unwrap();
    let refused = within("a third client", net::connect(&endpoint, node.addr)).await;
    assert!(refused.is_err(), "a third client was let in");
    assert_eq!(first.sum_primes_100(&sum_primes(), 0).await, SUM_PRIMES_100);
    // One leaves: there is room again.
    second.close();
    drop(second);
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(Ok(_)) = tokio::time::timeout(STEP, net::connect(&endpoint, node.addr)).await {
            break;
        }
        assert!(Instant::now() < deadline, "no room after a client left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.close();
    node.stop().await;
}

/// A client that queues many long jobs gets its share of the workers, not all of them: the
/// job of a client that comes later runs as soon as the worker is free, before the rest of
/// the flood. (First in, first out, it would wait 19 jobs of 300 ms, past `within`'s 5 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_does_not_starve_another() {
    let node = TestNode::start(); // one worker
    let module = testjobs();
    let hash = hash_of(&module);
    let mut flood = RawClient::connect(&node).await;
    let jobs: Vec<ToNode> = (0..20).map(|job| run(job, hash, "busy_ms", 300)).collect();
    flood.send(&jobs).await;
    flood.expect_need_module(hash).await;
    flood.send_module(&module_message(&module)).await;
    assert_eq!(flood.results(1).await, [0], "the flood's first job ran");

    let mut other = RawClient::connect(&node).await;
    other.send(&[run(0, hash, "busy_ms", 1)]).await;
    assert_eq!(other.results(1).await, [0]);
    // By then the flood got at most one more result: the job that held the worker.
    let mut flood_done = 1;
    while let Ok(message) = tokio::time::timeout(Duration::from_millis(50), flood.next()).await {
        assert!(matches!(message, ToClient::Done(_)), "{message:?}");
        flood_done += 1;
    }
    assert!(
        flood_done <= 3,
        "{flood_done} flood jobs ran before the other client's"
    );
    flood.close();
    other.close();
    node.stop().await;
}

/// A relay that passes a client's packets to `node` from its own address and drops
/// everything sent back: to the node, a peer with a spoofed address that never hears it.
async fn spoofing_relay(node: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let forwarded = Arc::new(AtomicUsize::new(0));
    let count = forwarded.clone();
    tokio::spawn(async move {
        let mut buf = vec![0; 65536];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            if from != node {
                let _ = socket.send_to(&buf[..len], node).await;
                count.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (address, forwarded)
}

/// Handshakes from addresses that never answer (spoofed) keep sending Initial packets for
/// seconds; the node answers each with a QUIC Retry and keeps nothing, so they take no
/// client slot and a real client still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_handshakes_take_no_client_slot() {
    let node = TestNode::start_with(NodePolicy {
        max_clients: 1,
        ..NodePolicy::default()
    });
    let (relay, forwarded) = spoofing_relay(node.addr).await;
    let spoofed = net::client_endpoint(relay, &TransportSettings::default()).unwrap();
    let stuck = tokio::spawn(async move {
        let attempt = net::connect(&spoofed, relay).await;
        drop(spoofed);
        attempt.is_ok()
    });
    // The spoofed Initial packets arrive first.
    within("a spoofed Initial packet reaches the node", async {
        while forwarded.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let mut client = RawClient::connect(&node).await;
    assert_eq!(
        client.sum_primes_100(&sum_primes(), 0).await,
        SUM_PRIMES_100
    );
    // The spoofed handshake never completes (it ends at its idle timeout).
    let spoofed_in = tokio::time::timeout(4 * STEP, stuck)
        .await
        .expect("the spoofed attempt gives up")
        .unwrap();
    assert!(!spoofed_in, "a spoofed address got a connection");
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_module_is_asked_for_again() {
    let node = TestNode::start_with(NodePolicy {
        max_modules: 1,
        ..NodePolicy::default()
    });
    let mut client = RawClient::connect(&node).await;
    let (primes, jobs) = (sum_primes(), testjobs());
    assert_eq!(client.sum_primes_100(&primes, 0).await, SUM_PRIMES_100);
    client
        .send(&[run_with(1, &jobs, "answer", Limits::default())])
        .await;
    client.expect_need_module(hash_of(&jobs)).await;
    client.send_module(&module_message(&jobs)).await;
    assert!(client.answer(&jobs, 1).await.is_ok());
    // sum_primes was evicted to make room: asked for again.
    client
        .send(&[run(2, hash_of(&primes), "sum_primes", 100)])
        .await;
    client.expect_need_module(hash_of(&primes)).await;
    client.send_module(&module_message(&primes)).await;
    assert_eq!(sum(&client.answer(&primes, 2).await), SUM_PRIMES_100);
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_sends_an_evicted_module_again() {
    let node = TestNode::start_with(NodePolicy {
        max_modules: 1,
        ..NodePolicy::default()
    });
    let results = with_real_client(&node, |server| {
        let (primes, jobs) = (sum_primes(), testjobs());
        (0..3)
            .map(|_| {
                let sum = server.submit::<u64, _>(&primes, "sum_primes", (100_u64,));
                let sum = sum.wait_timeout(Duration::from_secs(10));
                let answer = server.submit::<u32, _>(&jobs, "answer", ());
                (sum, answer.wait_timeout(Duration::from_secs(10)))
            })
            .collect::<Vec<_>>()
    })
    .await;
    for (sum, answer) in results {
        assert_eq!(sum, Some(Ok(SUM_PRIMES_100)));
        assert_eq!(answer, Some(Ok(42)));
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_byte_budget_is_not_read_until_its_answers_drain() {
    let node = TestNode::start_with(NodePolicy {
        max_bytes_per_client: 1 << 20,
        ..NodePolicy::default()
    });
    let mut client = RawClient::connect(&node).await;
    // Jobs of a module it never sends, with 1 MiB of arguments each: they wait on the
    // node, and their arguments with them.
    let jobs: Vec<ToNode> = (0..40)
        .map(|job| {
            ToNode::Run(RunJob {
                job,
                module: [9; 32],
                function: "f".into(),
                args: vec![0; 1 << 20],
                limits: WireLimits::default(),
            })
        })
        .collect();
    let mut buffer = BytesMut::new();
    for job in &jobs {
        codec::encode(job, MAX_FRAME_LEN, &mut buffer).unwrap();
    }
    let flood = client.send.write_all(&buffer);
    let stalled = tokio::time::timeout(Duration::from_secs(1), flood).await;
    assert!(stalled.is_err(), "the node read 40 MiB past a 1 MiB budget");
    node.assert_serves().await;
    client.close();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_larger_than_the_byte_budget_still_run_one_at_a_time() {
    let node = TestNode::start_with(NodePolicy {
        max_bytes_per_client: 1024,
        ..NodePolicy::default()
    });
    let mut client = RawClient::connect(&node).await;
    let module = testjobs();
    let text = "x".repeat(64 << 10);
    let jobs: Vec<ToNode> = (0..3)
        .map(|job| {
            ToNode::Run(RunJob {
                job,
                module: hash_of(&module),
                function: "repeat".into(),
                args: rmp_serde::to_vec(&(&text, 1_u32)).unwrap(),
                limits: WireLimits::default(),
            })
        })
        .collect();
    client.send(&jobs).await;
    for job in 0..3 {
        let result = client.answer(&module, job).await.unwrap();
        let repeated: String = rmp_serde::from_slice(&result).unwrap();
        assert_eq!(repeated.len(), text.len());
    }
    client.close();
    node.stop().await;
}
