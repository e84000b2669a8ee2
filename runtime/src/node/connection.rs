//! One client connection of a node: handshake, then jobs in, results out.
//!
//! Three tasks per connection: this one reads job frames; a writer batches the outgoing
//! messages (results come from worker threads through a channel); an uploader reads the
//! modules the client sends on their own streams.

use super::holdings::Holdings;
use super::{NodeContext, Phase};
use crate::error::JobError;
use crate::job::Finished;
use crate::module::{Module, ModuleHash};
use crate::net::{self, FramedRecv};
use crate::proto::CloseCode;
use crate::proto::codec::{self, MAX_FRAME_LEN, MAX_MODULE_FRAME_LEN};
use crate::proto::message::{JobDone, RunJob, ToClient, ToNode, WireHash, WireLimits};
use crate::sandbox::Cancel;
use crate::scheduler::lanes::Owner;
use bytes::BytesMut;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// How long a client has to complete the QUIC and wasp handshakes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the node waits for a client to read its last results and close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Room in a module frame for everything but the module's bytes.
const MODULE_FRAME_OVERHEAD: usize = 1024;

/// How many bytes of outgoing messages the writer gathers before writing them.
const WRITE_BATCH: usize = 64 << 10;

/// Serves one client until it leaves, breaks the protocol, or the node closes.
pub(super) async fn serve(
    incoming: quinn::Incoming,
    node: Arc<NodeContext>,
    mut phase: watch::Receiver<Phase>,
    mut workers: watch::Receiver<u32>,
) {
    let remote = incoming.remote_address();
    let Some((connection, send, recv)) = accept(incoming, &node).await else {
        return;
    };
    info!(%remote, "client authenticated");
    let (out, outbox) = mpsc::unbounded_channel();
    let holdings = Arc::new(Holdings::default());
    let writer = tokio::spawn(write_messages(send, outbox, holdings.clone()));
    let client = Arc::new(Client {
        node,
        remote,
        connection: connection.clone(),
        out,
        waiting: Mutex::new(HashMap::new()),
        holdings: holdings.clone(),
        cancel: Cancel::default(),
        owner: Owner(NEXT_OWNER.fetch_add(1, Ordering::Relaxed)),
    });
    let mut welcome = client.node.info.clone();
    welcome.workers = *workers.borrow_and_update();
    client.send(ToClient::Welcome(welcome));
    let uploads = tokio::spawn(receive_modules(client.clone()));
    let recv = FramedRecv::new(recv, MAX_FRAME_LEN);
    let ended = read_jobs(&client, recv, &mut phase, &mut workers).await;
    uploads.abort();
    match ended {
        Ok(()) => debug!(%remote, "client finished"),
        Err(why) => {
            warn!(%remote, %why, "closing the connection of a client that broke the protocol");
            close(&connection, CloseCode::Protocol, &why);
        }
    }
    if connection.close_reason().is_some() {
        // Nobody will read the results of its jobs: do not spend workers on them.
        client.cancel.cancel();
    }
    // The writer ends when the last sender is gone: this one, and those of jobs still
    // running, whose results are still worth sending.
    drop(client);
    let _ = writer.await;
    // Closing discards what the client has not read yet: let it read and close first.
    let _ = tokio::time::timeout(CLOSE_GRACE, connection.closed()).await;
    if *phase.borrow() == Phase::Closing {
        close(&connection, CloseCode::Shutdown, "node shutting down");
    } else {
        close(&connection, CloseCode::Normal, "client finished");
    }
}

/// Completes the QUIC handshake and the wasp handshake, or logs why not.
async fn accept(
    incoming: quinn::Incoming,
    node: &NodeContext,
) -> Option<(quinn::Connection, quinn::SendStream, quinn::RecvStream)> {
    let remote = incoming.remote_address();
    let connection = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            debug!(%remote, %error, "QUIC handshake failed");
            return None;
        }
        Err(_) => {
            debug!(%remote, "QUIC handshake timed out");
            return None;
        }
    };
    let handshake = net::node_handshake(&connection, node.secret.as_ref());
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok((send, recv))) => Some((connection, send, recv)),
        Ok(Err(error)) => {
            warn!(%remote, %error, "refused a client");
            if connection.close_reason().is_none() {
                close(&connection, CloseCode::Protocol, &error.to_string());
            }
            None
        }
        Err(_) => {
            warn!(%remote, "refused a client: no handshake within {HANDSHAKE_TIMEOUT:?}");
            close(&connection, CloseCode::Protocol, "no handshake in time");
            None
        }
    }
}

/// A connected, authenticated client.
struct Client {
    node: Arc<NodeContext>,
    remote: SocketAddr,
    connection: quinn::Connection,
    out: mpsc::UnboundedSender<ToClient>,
    /// Jobs waiting for their module, by module hash. A hash present here has been asked
    /// of the client once.
    waiting: Mutex<HashMap<WireHash, Vec<RunJob>>>,
    /// Its jobs and their bytes on the node, until their answers are written: bounded by
    /// the policy, and so are the messages queued for the writer.
    holdings: Arc<Holdings>,
    /// Set when the client is gone: stops its queued and running jobs.
    cancel: Cancel,
    /// Whose its jobs are in the node's queue: clients share the workers fairly.
    owner: Owner,
}

/// The owner of the next client's jobs (0 is the server's own caller).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

impl Client {
    fn send(&self, message: ToClient) {
        // Fails only when the writer has stopped: the connection is gone.
        let _ = self.out.send(message);
    }

    /// Sends the answer to jobs whose arguments (`args` bytes) are freed.
    fn answer(&self, args: usize, message: ToClient) {
        self.holdings.answered(args, &message);
        self.send(message);
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<WireHash, Vec<RunJob>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a job now, or parks it until its module arrives (asking for it once); or
    /// refuses it, if the node's policy does not allow its module or its limits. Returns
    /// why the client must be disconnected if it sends more jobs than it may.
    fn run(&self, mut job: RunJob) -> Result<(), String> {
        let policy = &self.node.policy;
        // This job counts already (from its frame): more than the limit is one too many.
        if self.holdings.jobs() > policy.max_jobs_per_client {
            return Err(format!(
                "sent more than {} jobs at once",
                policy.max_jobs_per_client
            ));
        }
        let hash = ModuleHash::from_bytes(job.module);
        let admitted = policy
            .admit_module(&hash)
            .and_then(|()| policy.admit_limits(job.limits.into()));
        match admitted {
            Ok(limits) => job.limits = WireLimits::from(&limits),
            Err(refused) => {
                debug!(remote = %self.remote, %refused, "refused a job");
                self.answer(job.args.len(), failed(job.job, refused));
                return Ok(());
            }
        }
        // Under the lock: a module that arrives meanwhile is stored before its waiting jobs
        // are taken out (see `module_arrived`), so the job is either submitted or parked.
        let mut waiting = self.waiting();
        if let Some(module) = self.node.modules.get(&hash) {
            drop(waiting);
            self.submit(&module, job);
            return Ok(());
        }
        let asked = waiting.contains_key(&job.module);
        let hash = job.module;
        waiting.entry(hash).or_default().push(job);
        drop(waiting);
        if !asked {
            self.send(ToClient::NeedModule { hash });
        }
        Ok(())
    }

    fn submit(&self, module: &Module, job: RunJob) {
        let out = self.out.clone();
        let holdings = self.holdings.clone();
        let (id, args) = (job.job, job.args.len());
        self.node.server.submit_with_callback(
            module,
            &job.function,
            job.args,
            job.limits.into(),
            (self.owner, self.cancel.clone()),
            Box::new(move |finished: &Finished| {
                let answer = result_message(id, finished);
                holdings.answered(args, &answer);
                let _ = out.send(answer);
            }),
        );
    }

    /// Hands back the jobs still waiting for their module: the node is closing.
    fn return_waiting(&self) {
        let parked: Vec<_> = self.waiting().drain().flat_map(|(_, jobs)| jobs).collect();
        if !parked.is_empty() {
            let args = parked.iter().map(|job| job.args.len()).sum();
            let jobs = parked.iter().map(|job| job.job).collect();
            self.answer(args, ToClient::Returned { jobs });
        }
    }

    /// A module the client sent: checked against the hash it was asked under, validated,
    /// kept, and its waiting jobs submitted.
    fn module_arrived(&self, hash: WireHash, bytes: Vec<u8>) -> Result<(), String> {
        if !self.waiting().contains_key(&hash) {
            return Err("sent a module the node did not ask for".into());
        }
        if ModuleHash::of(&bytes).as_bytes() != &hash {
            return Err("sent module bytes that do not match their hash".into());
        }
        match Module::from_bytes(bytes) {
            Ok(module) => {
                debug!(remote = %self.remote, module = %module.hash(), "module received");
                // Stored first, then the waiting jobs taken out: `run` looks at both under
                // the same lock, so no job falls between them and asks again.
                let evicted = self.node.modules.insert(module.clone());
                for hash in &evicted {
                    self.node.server.forget_module(hash);
                }
                if !evicted.is_empty() {
                    let (kept, bytes) = self.node.modules.size();
                    debug!(
                        evicted = evicted.len(),
                        kept, bytes, "modules evicted from the store"
                    );
                }
                let jobs = self.waiting().remove(&hash).unwrap_or_default();
                for job in jobs {
                    self.submit(&module, job);
                }
            }
            Err(error) => {
                warn!(remote = %self.remote, %error, "a client sent a module that does not load");
                let jobs = self.waiting().remove(&hash).unwrap_or_default();
                for job in jobs {
                    let answer = failed(job.job, JobError::Module(error.to_string()));
                    self.answer(job.args.len(), answer);
                }
            }
        }
        Ok(())
    }
}

/// What to tell the client about a finished job: its result, or, if the node shut down
/// before running it, that it is handed back.
fn result_message(job: u64, finished: &Finished) -> ToClient {
    let outcome = &finished.outcome;
    match &outcome.result {
        Err(JobError::Cancelled(_)) => ToClient::Returned { jobs: vec![job] },
        result => ToClient::Done(JobDone {
            job,
            result: result.clone().map(serde_bytes::ByteBuf::from),
            stdout: outcome.stdout.clone(),
            stderr: outcome.stderr.clone(),
            duration_ns: u64::try_from(outcome.duration.as_nanos()).unwrap_or(u64::MAX),
            fuel_used: outcome.fuel_used,
        }),
    }
}

fn failed(job: u64, error: JobError) -> ToClient {
    ToClient::Done(JobDone {
        job,
        result: Err(error),
        stdout: Vec::new(),
        stderr: Vec::new(),
        duration_ns: 0,
        fuel_used: None,
    })
}

/// Reads job frames until the client finishes its stream, or the node closes. Returns why
/// the client must be disconnected, if it broke the protocol.
async fn read_jobs(
    client: &Client,
    mut recv: FramedRecv,
    phase: &mut watch::Receiver<Phase>,
    workers: &mut watch::Receiver<u32>,
) -> Result<(), String> {
    let mut draining = false;
    loop {
        if *phase.borrow() != Phase::Serving && !draining {
            draining = true;
            client.send(ToClient::Draining);
        }
        if *phase.borrow() == Phase::Closing {
            client.return_waiting();
            return Ok(());
        }
        // Over its byte budget, the client's stream is not read: QUIC's flow control makes
        // it wait (its answers, as they are written, make room).
        let budget = usize::try_from(client.node.policy.max_bytes_per_client).unwrap_or(usize::MAX);
        tokio::select! {
            frame = async {
                client.holdings.within(budget).await;
                recv.next::<ToNode>().await
            } => match frame {
                Ok(Some(ToNode::Run(job))) => {
                    client.holdings.job_read(job.args.len());
                    if draining {
                        let back = ToClient::Returned { jobs: vec![job.job] };
                        client.answer(job.args.len(), back);
                    } else {
                        client.run(job)?;
                    }
                }
                Ok(Some(ToNode::Module { .. })) => {
                    return Err("sent a module on the job stream".into());
                }
                Ok(None) => return Ok(()),
                Err(error) if client.connection.close_reason().is_some() => {
                    debug!(remote = %client.remote, %error, "connection closed");
                    return Ok(());
                }
                Err(error) => return Err(error.to_string()),
            },
            changed = phase.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            Ok(()) = workers.changed() => {
                let count = *workers.borrow_and_update();
                client.send(ToClient::Workers { workers: count });
            }
        }
    }
}

/// Accepts the client's module streams, one module each.
async fn receive_modules(client: Arc<Client>) {
    let policy = &client.node.policy;
    let max_frame = usize::try_from(policy.max_module_size)
        .unwrap_or(usize::MAX)
        .saturating_add(MODULE_FRAME_OVERHEAD)
        .min(MAX_MODULE_FRAME_LEN);
    while let Ok(stream) = client.connection.accept_uni().await {
        let message = net::read_one::<ToNode>(stream, max_frame).await;
        let arrived = match message {
            Ok(ToNode::Module { hash, bytes }) => {
                // Hashing and validating a large module is CPU work: off the runtime.
                let receiver = client.clone();
                tokio::task::spawn_blocking(move || receiver.module_arrived(hash, bytes))
                    .await
                    .unwrap_or_else(|error| Err(format!("module check failed: {error}")))
            }
            Ok(ToNode::Run(_)) => Err("sent a job on a module stream".into()),
            Err(error) => Err(format!("bad module stream: {error}")),
        };
        if let Err(why) = arrived {
            warn!(remote = %client.remote, %why, "closing the connection of a client that broke the protocol");
            close(&client.connection, CloseCode::Protocol, &why);
            return;
        }
    }
}

/// Writes the node's messages, many per write when they come fast.
async fn write_messages(
    mut send: quinn::SendStream,
    mut outbox: mpsc::UnboundedReceiver<ToClient>,
    holdings: Arc<Holdings>,
) {
    let mut buffer = BytesMut::new();
    let take = |message: ToClient, buffer: &mut BytesMut| {
        encode(&message, buffer);
        holdings.written(&message);
    };
    while let Some(message) = outbox.recv().await {
        take(message, &mut buffer);
        while buffer.len() < WRITE_BATCH {
            match outbox.try_recv() {
                Ok(message) => take(message, &mut buffer),
                Err(_) => break,
            }
        }
        if net::write_all(&mut send, &mut buffer).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
}

fn encode(message: &ToClient, buffer: &mut BytesMut) {
    if let Err(error) = codec::encode(message, MAX_FRAME_LEN, buffer) {
        // Only a result too large for a frame gets here: say so instead.
        let ToClient::Done(done) = message else {
            warn!(%error, "could not encode a message");
            return;
        };
        debug!(%error, job = done.job, "a result too large to send back");
        let size = done.result.as_ref().map_or(0, |value| value.len())
            + done.stdout.len()
            + done.stderr.len();
        let too_large = failed(
            done.job,
            JobError::ResultTooLarge {
                size: size as u64,
                limit: MAX_FRAME_LEN as u64,
            },
        );
        let _ = codec::encode(&too_large, MAX_FRAME_LEN, buffer);
    }
}

fn close(connection: &quinn::Connection, code: CloseCode, reason: &str) {
    connection.close(quinn::VarInt::from_u32(code.code()), reason.as_bytes());
}
