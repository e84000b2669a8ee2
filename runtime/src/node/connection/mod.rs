//! One client connection of a node: handshake, then jobs in, results out.
//!
//! `state` holds the connection's protocol as plain data; this driver runs three tasks per
//! connection: this one reads job frames; a writer batches the outgoing messages (results
//! come from worker threads through a channel); an uploader reads the modules and values
//! the client sends on their own streams (`uploads.rs`).

mod state;
mod uploads;

use super::counters::Refused;
use super::holdings::Holdings;
use super::pull;
use super::{NodeContext, Phase};
use crate::cache::Preparation;
use crate::module::{Module, ModuleHash, ModuleSource};
use crate::net::{self, FramedRecv, HandshakeError};
use crate::scheduler::lanes::Owner;
use crate::scheduler::slot::Finished;
use bytes::BytesMut;
use state::{Action, ConnectionState, Stores, Submission};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use wasp_proto::CloseCode;
use wasp_proto::codec::{self, MAX_FRAME_LEN};
use wasp_proto::handshake::Refusal;
use wasp_proto::message::{ToClient, ToNode, WireHash};

/// How long a client has to complete the QUIC and wasp handshakes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the node waits for a client to read its last results and close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

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
    let owner = Owner(NEXT_OWNER.fetch_add(1, Ordering::Relaxed));
    let group = client_group(owner, remote);
    info!(%remote, client = owner.0, "client authenticated");
    let counters = node.clone();
    let _connected = counters.counters.client(owner.0, remote, &group);
    node.server.name_owner(owner, Arc::from(remote.to_string()));
    let (out, outbox) = mpsc::unbounded_channel();
    let holdings = Arc::new(Holdings::default());
    let writer = tokio::spawn(write_messages(send, outbox, holdings.clone()));
    let client = Arc::new(Client {
        node,
        remote,
        connection: connection.clone(),
        out,
        state: Arc::new(Mutex::new(ConnectionState::default())),
        holdings: holdings.clone(),
        owner,
        group: Arc::from(group),
    });
    let mut welcome = client.node.info.clone();
    welcome.workers = *workers.borrow_and_update();
    client.answer(0, ToClient::Welcome(welcome));
    let uploads = tokio::spawn(uploads::receive(client.clone()));
    let recv = FramedRecv::new(recv, MAX_FRAME_LEN);
    let mut preparations = client.node.preparations.subscribe();
    let events = Events {
        phase: &mut phase,
        workers: &mut workers,
        preparations: &mut preparations,
    };
    let ended = read_jobs(&client, recv, events).await;
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
        client.state().cancel_all();
        client.act();
    }

    // The writer ends when the last sender is gone: this one, and those of jobs still
    // running, whose results are still worth sending.
    let (server, owner) = (client.node.server.clone(), client.owner);
    drop(client);
    let _ = writer.await;
    // Every job of the client has been answered (a job cancelled while running still
    // stops, and the instance of a cancelled job is never kept): the instances kept for
    // it go now, not when their workers next run a component job.
    let forgotten = server.forget_owner(owner);
    if forgotten > 0 {
        debug!(%remote, forgotten, "dropped the instances kept for a client that left");
    }
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
            node.counters.refused(refusal_reason(&error));
            if connection.close_reason().is_none() {
                close(&connection, CloseCode::Protocol, &error.to_string());
            }
            None
        }
        Err(_) => {
            warn!(%remote, "refused a client: no handshake within {HANDSHAKE_TIMEOUT:?}");
            node.counters.refused(Refused::Timeout);
            close(&connection, CloseCode::Protocol, "no handshake in time");
            None
        }
    }
}

/// Why a handshake failed, as the node's metrics count it.
fn refusal_reason(error: &HandshakeError) -> Refused {
    match error {
        HandshakeError::Refused(Refusal::BadProof | Refusal::ProofRequired) => Refused::WrongSecret,
        HandshakeError::Refused(Refusal::Version { .. }) => Refused::Version,
        _ => Refused::Handshake,
    }
}

/// A connected, authenticated client.
struct Client {
    node: Arc<NodeContext>,
    remote: SocketAddr,
    connection: quinn::Connection,
    out: mpsc::UnboundedSender<ToClient>,
    /// The connection's protocol state, shared with the callbacks of its running jobs.
    state: Arc<Mutex<ConnectionState>>,
    /// Its jobs and their bytes on the node, until their answers are written: bounded by
    /// the policy, and so are the messages queued for the writer.
    holdings: Arc<Holdings>,
    /// Whose its jobs are in the node's queue: clients share the workers fairly.
    owner: Owner,
    /// The job group of its jobs on the node: its progress and failures, on the node's
    /// page.
    group: Arc<str>,
}

/// The job group of client `owner` at `remote` on the node.
fn client_group(owner: Owner, remote: SocketAddr) -> String {
    format!("client {} ({remote})", owner.0)
}

/// The owner of the next client's jobs (0 is the server's own caller).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

impl Client {
    fn state(&self) -> MutexGuard<'_, ConnectionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Carries out what the state asked for: sends its messages, submits its jobs.
    fn act(&self) {
        loop {
            // Messages are sent under the state's lock, so that they leave in the order the
            // state queued them (job callbacks send from other threads). The lock is not
            // held while submitting: a job that fails at once answers through its callback,
            // which takes the lock.
            let action = {
                let mut state = self.state();
                while let Some((message, args)) = state.poll_send() {
                    self.answer(args, message);
                }
                state.poll_action()
            };
            match action {
                None => return,
                // Not after the loop above; sent all the same.
                Some(Action::Send(message, args)) => self.answer(args, message),
                Some(Action::Submit(submission)) => self.submit(*submission),
                Some(Action::Stop(slot)) => {
                    slot.cancel("cancelled by its client");
                }
            }
        }
    }

    /// Sends a message answering jobs whose arguments (`args` bytes) are freed.
    fn answer(&self, args: usize, message: ToClient) {
        if let ToClient::Returned { jobs } = &message {
            self.node.counters.handed_back(jobs.len());
        }
        send(&self.holdings, &self.out, args, message);
    }

    /// What the node keeps for all its clients.
    fn stores(&self) -> Stores<'_> {
        Stores {
            modules: &self.node.modules,
            data: &self.node.data,
        }
    }

    fn submit(&self, submission: Submission) {
        let id = submission.id;
        let (state, holdings, out) = (self.state.clone(), self.holdings.clone(), self.out.clone());
        let callback = Box::new(move |finished: &Finished| {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            if state.finished(id, finished) {
                // Its answer, and the messages queued before it, in order; anything else
                // queued is the reader's to do, and so are sends queued behind it.
                while let Some((message, args)) = state.poll_send() {
                    send(&holdings, &out, args, message);
                }
            }
        });
        let slot = self.node.server.submit_owned(
            (&submission.module, &submission.function),
            Ok(submission.args),
            (submission.asked, self.owner, &self.group),
            callback,
        );
        self.state().attach(id, slot);
    }

    /// A job frame: run, park or answer it. Returns why the client must be cut off, if it
    /// must.
    fn run(&self, job: wasp_proto::message::RunJob) -> Result<(), String> {
        let node = &self.node;
        let held = self.holdings.jobs();
        self.state().run(job, held, &node.policy, self.stores())?;
        self.act();
        Ok(())
    }

    /// A module the client sent: checked against the hash it was asked under, validated,
    /// kept, and its waiting jobs submitted.
    fn module_arrived(&self, hash: WireHash, bytes: Vec<u8>) -> Result<(), String> {
        if !self.state().awaits(&hash) {
            return Err("sent a module the node did not ask for".into());
        }
        if ModuleHash::of(&bytes).as_bytes() != &hash {
            return Err("sent module bytes that do not match their hash".into());
        }
        let module = Module::from_bytes(bytes).map_err(|error| error.to_string());
        match &module {
            Ok(module) => {
                debug!(remote = %self.remote, module = %module.hash(), "module received");
            }
            Err(error) => {
                warn!(remote = %self.remote, %error, "a client sent a module that does not load");
            }
        }
        self.module_ready(hash, module)
    }

    /// A module the client said where to pull from: the pull starts, in `pulls`; its end
    /// comes to [`pulled`](Self::pulled).
    fn pull(
        &self,
        hash: WireHash,
        source: &str,
        pulls: &mut JoinSet<(WireHash, Result<Module, String>)>,
    ) -> Result<(), String> {
        if !self.state().awaits(&hash) {
            return Err("said where to pull a module the node did not ask for".into());
        }
        let puller = self.node.puller.clone();
        let source: ModuleSource = source.parse().map_err(|error| format!("{error}"))?;
        let Some(puller) = puller.filter(|puller| {
            let scopes = puller.scopes();
            scopes.iter().any(|scope| source.is_within(scope))
        }) else {
            return Err(format!(
                "said to pull a module from {source}, a registry the node does not pull from"
            ));
        };
        info!(remote = %self.remote, %source, "pulling a module");
        let max_bytes = self.node.policy.max_module_size;
        let expected = ModuleHash::from_bytes(hash);
        pulls.spawn(async move {
            let pulled = tokio::time::timeout(pull::PULL_TIMEOUT, puller.pull(&source, max_bytes))
                .await
                .unwrap_or_else(|_| Err(format!("no answer in {:?}", pull::PULL_TIMEOUT)));
            // Hashing and validating a large module is CPU work: off the runtime.
            let checked =
                tokio::task::spawn_blocking(move || pull::check(expected, &source, pulled))
                    .await
                    .unwrap_or_else(|error| Err(format!("module check failed: {error}")));
            (hash, checked)
        });
        Ok(())
    }

    /// A pull has ended: the module is kept and its jobs run, or they fail saying why.
    fn pulled(&self, hash: WireHash, module: Result<Module, String>) -> Result<(), String> {
        match &module {
            Ok(module) => info!(remote = %self.remote, module = %module.hash(), "module pulled"),
            Err(why) => warn!(remote = %self.remote, %why, "a module could not be pulled"),
        }
        self.module_ready(hash, module)
    }

    /// A module the node awaited is here (kept, then its waiting jobs submitted) or will
    /// not be (its jobs fail with the reason).
    fn module_ready(&self, hash: WireHash, module: Result<Module, String>) -> Result<(), String> {
        if let Ok(module) = &module {
            self.keep(module);
        }
        // Stored first, then its waiting jobs taken out, under the state's lock, which
        // `run` holds too: no job falls between them and asks again.
        self.state().module_arrived(hash, module, self.stores())?;
        self.act();
        Ok(())
    }

    /// Keeps `module` in the node's store; evicted modules' code is dropped too.
    fn keep(&self, module: &Module) {
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
    }
}

/// Sends `message` to the writer, counting it in `holdings` until written.
fn send(
    holdings: &Holdings,
    out: &mpsc::UnboundedSender<ToClient>,
    args: usize,
    message: ToClient,
) {
    holdings.answered(args, &message);
    // Fails only when the writer has stopped: the connection is gone.
    let _ = out.send(message);
}

/// Reads job frames until the client finishes its stream, or the node closes. Returns why
/// the client must be disconnected, if it broke the protocol.
/// What a connection hears of its node while it reads its client's jobs.
struct Events<'a> {
    phase: &'a mut watch::Receiver<Phase>,
    workers: &'a mut watch::Receiver<u32>,
    preparations: &'a mut broadcast::Receiver<(WireHash, Preparation)>,
}

async fn read_jobs(
    client: &Client,
    mut recv: FramedRecv,
    events: Events<'_>,
) -> Result<(), String> {
    let Events {
        phase,
        workers,
        preparations,
    } = events;
    // Modules being pulled from registries: aborted if the connection ends first.
    let mut pulls = JoinSet::new();
    loop {
        if *phase.borrow() != Phase::Serving {
            // Said once (the state knows); jobs waiting for their module go back now.
            client.state().drain();
            client.act();
        }
        if *phase.borrow() == Phase::Closing {
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
                    client.run(job)?;
                }
                Ok(Some(ToNode::Cancel { jobs })) => {
                    client.state().cancel(&jobs);
                    client.act();
                }
                Ok(Some(ToNode::Module { .. })) => {
                    return Err("sent a module on the job stream".into());
                }
                Ok(Some(ToNode::Data { .. })) => {
                    return Err("sent a value on the job stream".into());
                }
                Ok(Some(ToNode::Pull { hash, source })) => client.pull(hash, &source, &mut pulls)?,
                Ok(None) => return Ok(()),
                Err(error) if client.connection.close_reason().is_some() => {
                    debug!(remote = %client.remote, %error, "connection closed");
                    return Ok(());
                }
                Err(error) => return Err(error.to_string()),
            },
            Some(pulled) = pulls.join_next(), if !pulls.is_empty() => {
                if let Ok((hash, module)) = pulled {
                    client.pulled(hash, module)?;
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            Ok(()) = workers.changed() => {
                let count = *workers.borrow_and_update();
                client.answer(0, ToClient::Workers { workers: count });
            }
            // Lagging behind only loses statistics: the next event is as good.
            Ok((module, what)) = preparations.recv() => {
                client.state().preparation(module, what);
                client.act();
            }
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
        let too_large = state::failed(
            done.job,
            &crate::error::JobError::ResultTooLarge {
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
