//! A node that pulls modules itself (`NodeConfig::puller`), with a registry faked in
//! process: the client tells it where a module is instead of sending it, the pulled bytes
//! must be the module the jobs name, and modules from elsewhere still travel.

use super::*;
use crate::module::ModuleSource;
use crate::node::{ModulePuller, PullFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The one registry the fake puller serves.
const REGISTRY: &str = "registry.example:5000";

/// Answers every pull with `bytes`, and counts the pulls.
#[derive(Debug)]
struct FakeRegistry {
    bytes: Vec<u8>,
    pulls: AtomicUsize,
}

impl ModulePuller for FakeRegistry {
    fn scopes(&self) -> Vec<String> {
        vec![REGISTRY.to_string()]
    }

    fn pull(&self, _source: &ModuleSource, max_bytes: u64) -> PullFuture {
        self.pulls.fetch_add(1, Ordering::SeqCst);
        let bytes = self.bytes.clone();
        Box::pin(async move {
            assert!(bytes.len() as u64 <= max_bytes);
            Ok(bytes)
        })
    }
}

fn source(registry: &str) -> ModuleSource {
    ModuleSource::new(registry, "jobs/sum", &format!("sha256:{}", "cd".repeat(32))).unwrap()
}

/// Runs `sum_primes(100)` of `module` on a node whose registry answers with `bytes`:
/// the job's result, the client's module transfers, and the node's pulls.
async fn run_on_pulling_node(
    module: Module,
    bytes: Vec<u8>,
) -> (Result<u64, JobError>, u64, usize) {
    let registry = Arc::new(FakeRegistry {
        bytes,
        pulls: AtomicUsize::new(0),
    });
    let puller: Arc<dyn ModulePuller> = registry.clone();
    let node = TestNode::start_configured(|config| config.puller = Some(puller));
    let addr = node.addr;
    let ran = tokio::task::spawn_blocking(move || {
        let server = Server::builder()
            .workers(0)
            .no_disk_cache()
            .peers([crate::Peer::Addr(addr)])
            .secret(secret())
            .node_timeout(NODE_TIMEOUT)
            .build()
            .unwrap();
        let result = server
            .submit::<u64, _>(&module, "sum_primes", (100_u64,))
            .wait_timeout(Duration::from_secs(10))
            .expect("answered");
        let transfers = server.stats().nodes[0].module_transfers;
        (result, transfers)
    });
    let (result, transfers) = within("the job", ran).await.unwrap();
    node.stop().await;
    (result, transfers, registry.pulls.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_module_from_the_nodes_registry_is_pulled_not_sent() {
    let module = sum_primes().with_source(source(REGISTRY));
    let bytes = module.bytes().to_vec();
    let (result, transfers, pulls) = run_on_pulling_node(module, bytes).await;
    assert_eq!(result, Ok(SUM_PRIMES_100));
    assert_eq!((transfers, pulls), (0, 1));
}

#[tokio::test]
async fn pulled_bytes_that_are_not_the_jobs_module_fail_its_jobs() {
    let module = sum_primes().with_source(source(REGISTRY));
    let other = std::fs::read(wasp_fixtures::WASP_TESTJOBS).unwrap();
    let (result, transfers, pulls) = run_on_pulling_node(module, other).await;
    let Err(JobError::Module(why)) = result else {
        panic!("the job fails with the module's error: {result:?}");
    };
    assert!(why.contains("is not the module the job names"), "{why}");
    assert!(why.contains(&source(REGISTRY).to_string()), "{why}");
    assert_eq!((transfers, pulls), (0, 1));
}

#[tokio::test]
async fn a_module_from_elsewhere_is_still_sent_by_the_client() {
    let module = sum_primes().with_source(source("elsewhere.example"));
    let (result, transfers, pulls) = run_on_pulling_node(module, Vec::new()).await;
    assert_eq!(result, Ok(SUM_PRIMES_100));
    assert_eq!((transfers, pulls), (1, 0));
}

/// A node that pulls from [`REGISTRY`] (its registry answers with sum_primes).
fn pulling_node() -> TestNode {
    let puller: Arc<dyn ModulePuller> = Arc::new(FakeRegistry {
        bytes: sum_primes().bytes().to_vec(),
        pulls: AtomicUsize::new(0),
    });
    TestNode::start_configured(|config| config.puller = Some(puller))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_the_node_did_not_ask_for_is_a_protocol_error() {
    let node = pulling_node();
    let mut client = RawClient::connect(&node).await;
    let pull = ToNode::Pull {
        hash: hash_of(&sum_primes()),
        source: source(REGISTRY).to_string(),
    };
    client.send(&[pull]).await;
    assert_closed(&client.connection, CloseCode::Protocol, "did not ask for").await;
    node.assert_serves().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_from_a_registry_the_node_does_not_name_is_a_protocol_error() {
    let node = pulling_node();
    let hash = hash_of(&sum_primes());
    let mut client = RawClient::connect(&node).await;
    client.send(&[run(1, hash, "sum_primes", 100)]).await;
    client.expect_need_module(hash).await;
    let source = source("elsewhere.example").to_string();
    client.send(&[ToNode::Pull { hash, source }]).await;
    assert_closed(
        &client.connection,
        CloseCode::Protocol,
        "does not pull from",
    )
    .await;
    node.assert_serves().await;
    node.stop().await;
}
