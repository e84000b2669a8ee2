//! One connection to a node: pull jobs from the queue within the node's credit window,
//! pipeline them on the job stream, complete them as results arrive, ship modules on
//! request, and hand back everything in flight when the connection ends.

use super::ClusterConfig;
use super::NodeTable;
use super::window::{self, Window};
use crate::error::JobError;
use crate::module::Module;
use crate::net::{self, FrameError, FramedRecv, HandshakeError, NetError};
use crate::proto::CloseCode;
use crate::proto::codec::{self, MAX_FRAME_LEN, MAX_MODULE_FRAME_LEN};
use crate::proto::message::{JobDone, NodeInfo, RunJob, ToClient, ToNode, WireHash, WireJobId};
use crate::sandbox::RawOutcome;
use crate::scheduler::pool::Shared;
use crate::scheduler::queue::Task;
use bytes::BytesMut;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::debug;

/// Room left in a module frame for everything but the module's bytes.
const MODULE_FRAME_OVERHEAD: usize = 1024;

/// How many times in a row a job may be handed back by nodes without it counting as an
/// attempt: draining nodes do it once each; a node that keeps doing it is hostile or broken.
const FREE_HAND_BACKS: u32 = 8;

/// How long connecting, the handshake and the node's welcome may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection could not be established or was lost.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The endpoint could not be bound, or the connection not made.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The secret handshake failed: a refusal, or a peer that does not speak wasp.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// A stream failed, or carried bytes that are not frames.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Connecting, the handshake and the welcome took too long.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The node sent something the protocol does not allow.
    #[error("the node broke the protocol: {0}")]
    Protocol(String),
    /// The connection failed (closed, reset, or silent past the idle timeout).
    #[error("the connection was lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
}

impl SessionError {
    /// Whether the node refused this client (wrong secret, another protocol version):
    /// retrying will not help until one side is reconfigured.
    pub(crate) fn is_refusal(&self) -> bool {
        match self {
            SessionError::Handshake(HandshakeError::Refused(_)) => true,
            SessionError::Handshake(HandshakeError::ClosedByPeer { code, .. }) => {
                matches!(code, Some(CloseCode::Auth | CloseCode::Version))
            }
            _ => false,
        }
    }
}

/// How a session ended.
pub(super) enum End {
    /// The client is shutting down.
    Stopped,
    /// The node drained and closed the connection in an orderly way.
    Drained,
    /// The node was lost: closed, killed, silent past the idle timeout, or it broke the
    /// protocol.
    Lost(SessionError),
}

/// An authenticated connection to a node, welcomed.
pub(super) struct Session {
    /// Kept alive for as long as the connection: it drives the socket.
    _endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: FramedRecv,
    info: NodeInfo,
}

/// A job sent to the node and not finished yet.
struct InFlight {
    task: Box<Task>,
}

impl Session {
    /// Connects to `address`, proves the cluster secret, and reads the node's welcome.
    pub(super) async fn connect(
        config: &ClusterConfig,
        address: SocketAddr,
    ) -> Result<Session, SessionError> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::establish(config, address))
            .await
            .map_err(|_| SessionError::Timeout(CONNECT_TIMEOUT))?
    }

    async fn establish(config: &ClusterConfig, peer: SocketAddr) -> Result<Session, SessionError> {
        let endpoint = net::client_endpoint(peer, &config.transport)?;
        let connection = net::connect(&endpoint, peer).await?;
        let (send, recv) = net::client_handshake(&connection, config.secret.as_ref()).await?;
        let mut recv = FramedRecv::new(recv, MAX_FRAME_LEN);
        let mut info = match recv.next::<ToClient>().await? {
            Some(ToClient::Welcome(info)) => info,
            other => {
                let why = format!("expected a welcome, got {other:?}");
                close(&connection, CloseCode::Protocol, &why);
                return Err(SessionError::Protocol(why));
            }
        };
        // The node's id is what its TLS session proved, not what it says.
        if let Some(fingerprint) = net::peer_fingerprint(&connection) {
            info.id = fingerprint;
        }
        Ok(Session {
            _endpoint: endpoint,
            connection,
            send,
            recv,
            info,
        })
    }

    /// Who the node is.
    pub(super) fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// Runs jobs on the node until the client stops or the connection ends; then puts the
    /// jobs still in flight back in the queue.
    pub(super) async fn run(
        self,
        shared: &Arc<Shared>,
        nodes: &Arc<NodeTable>,
        index: usize,
        max_retries: u32,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let Session {
            _endpoint,
            connection,
            send,
            recv,
            info,
        } = self;
        let (messages, mut inbox) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_messages(recv, messages));
        let mut driver = Driver {
            shared,
            nodes: nodes.clone(),
            index,
            max_retries,
            connection: &connection,
            send,
            window: Window::new(info.workers),
            in_flight: HashMap::new(),
            modules: HashMap::new(),
            next_id: 0,
            draining: false,
            buffer: BytesMut::new(),
            worker_name: format!("node {}", nodes.snapshot()[index].address),
            max_module_size: usize::try_from(info.max_module_size)
                .unwrap_or(usize::MAX)
                .min(MAX_MODULE_FRAME_LEN - MODULE_FRAME_OVERHEAD),
        };
        let end = driver.drive(&mut inbox, stop).await;
        reader.abort();
        // Results that arrived before the end still count: they must not run again.
        while let Ok(Ok(ToClient::Done(done))) = inbox.try_recv() {
            let _ = driver.finished(done);
        }
        // A node that drained handed back what it had not run; only a lost node costs the
        // jobs it held an attempt.
        driver.hand_back(matches!(end, End::Lost(_)));
        let (code, reason) = match &end {
            End::Stopped => (CloseCode::Normal, "client shutting down"),
            End::Drained => (CloseCode::Normal, "node drained"),
            End::Lost(SessionError::Protocol(_)) => (CloseCode::Protocol, "protocol violation"),
            End::Lost(_) => (CloseCode::Normal, "connection lost"),
        };
        close(&connection, code, reason);
        if matches!(end, End::Stopped) {
            // Let the close reach the node, which then stops this client's jobs at once.
            let _ = tokio::time::timeout(Duration::from_millis(200), _endpoint.wait_idle()).await;
        }
        end
    }
}

/// The state of a running session.
struct Driver<'a> {
    /// The server's queue and pool, where jobs come from and complete.
    shared: &'a Arc<Shared>,
    /// Where this node's statistics go, at `index`.
    nodes: Arc<NodeTable>,
    index: usize,
    /// How many times a job may lose its node before it fails.
    max_retries: u32,
    connection: &'a quinn::Connection,
    /// The job stream, towards the node.
    send: quinn::SendStream,
    window: Window,
    /// Jobs sent and not finished, by the id they were sent under.
    in_flight: HashMap<WireJobId, InFlight>,
    /// The modules of the jobs sent in this session, by hash: what the node may ask for.
    modules: HashMap<WireHash, Module>,
    /// The id of the next job sent.
    next_id: WireJobId,
    /// The node said it is shutting down: send it nothing more.
    draining: bool,
    /// Frames encoded and not written yet.
    buffer: BytesMut,
    /// How jobs run here are named in their output and the statistics.
    worker_name: String,
    /// The largest module the node accepts (and a frame can carry).
    max_module_size: usize,
}

impl Driver<'_> {
    async fn drive(
        &mut self,
        inbox: &mut mpsc::UnboundedReceiver<Result<ToClient, SessionError>>,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        loop {
            if *stop.borrow() {
                return End::Stopped;
            }
            // Arm the wake-up before looking at the queue, so a job queued in between is
            // not missed.
            let queued = self.shared.remote_work.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let room = self.room();
            if room > 0 {
                // A write can wait on flow control: the client's shutdown must not.
                let sent = tokio::select! {
                    sent = self.send_jobs(room) => sent,
                    _ = stop.changed() => return End::Stopped,
                };
                match sent {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(error) => return self.ended(error),
                }
            }
            tokio::select! {
                _ = stop.changed() => return End::Stopped,
                message = inbox.recv() => {
                    let handled = match message {
                        Some(Ok(message)) => self.handle(message),
                        Some(Err(error)) => Err(error),
                        None => Err(SessionError::Protocol("the node closed the job stream".into())),
                    };
                    if let Err(error) = handled {
                        return self.ended(error);
                    }
                }
                () = &mut queued, if room > 0 => {}
            }
        }
    }

    /// How many more jobs the node may be sent now.
    fn room(&self) -> usize {
        if self.draining {
            return 0;
        }
        self.window
            .size(self.connection.rtt())
            .saturating_sub(self.in_flight.len())
    }

    /// Takes up to `room` queued jobs and sends them in one write. Returns whether any
    /// were sent.
    async fn send_jobs(&mut self, room: usize) -> Result<bool, SessionError> {
        let mine = self.window.workers();
        let other_nodes = self.nodes.connected_workers().saturating_sub(mine);
        let tasks = self.shared.take_remote(|pending| {
            let others = pending.local_workers + other_nodes;
            room.min(window::fair_share(pending.tasks, mine, others))
        });
        if tasks.is_empty() {
            return Ok(false);
        }
        for task in tasks {
            self.encode_job(task);
        }
        net::write_all(&mut self.send, &mut self.buffer).await?;
        Ok(true)
    }

    fn encode_job(&mut self, task: Box<Task>) {
        if task.module.bytes().len() > self.max_module_size {
            let outcome = RawOutcome::failed(JobError::ModuleRefused(format!(
                "the module ({} bytes) is larger than {} accepts ({} bytes)",
                task.module.bytes().len(),
                self.worker_name,
                self.max_module_size
            )));
            self.shared.complete(*task, outcome, String::new());
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let hash = *task.module.hash().as_bytes();
        let run = ToNode::Run(RunJob {
            job: id,
            module: hash,
            function: task.function.clone(),
            args: task.args.clone(),
            limits: (&task.limits).into(),
        });
        if let Err(error) = codec::encode(&run, MAX_FRAME_LEN, &mut self.buffer) {
            // Only a job too large for a frame gets here: no node could take it.
            let outcome = RawOutcome::failed(JobError::BadArguments(format!(
                "cannot send the job to a node: {error}"
            )));
            self.shared.complete(*task, outcome, String::new());
            return;
        }
        self.modules
            .entry(hash)
            .or_insert_with(|| task.module.clone());
        self.in_flight.insert(id, InFlight { task });
    }

    fn handle(&mut self, message: ToClient) -> Result<(), SessionError> {
        match message {
            ToClient::Done(done) => self.finished(done),
            ToClient::NeedModule { hash } => self.ship_module(hash),
            ToClient::Returned { jobs } => {
                for id in jobs {
                    let InFlight { mut task } = self.take(id)?;
                    task.handed_back += 1;
                    // A draining node hands a job back once; a node that keeps doing it
                    // must not bounce it for ever.
                    if task.handed_back > FREE_HAND_BACKS {
                        task.handed_back = 0;
                        self.retry(task);
                    } else {
                        self.shared.requeue(task);
                    }
                }
                Ok(())
            }
            ToClient::Draining => {
                debug!(node = %self.worker_name, "node is draining");
                self.draining = true;
                Ok(())
            }
            ToClient::Workers { workers } => {
                self.window.set_workers(workers);
                self.nodes.update(self.index, |node| node.workers = workers);
                Ok(())
            }
            ToClient::Welcome(_) => Err(SessionError::Protocol("a second welcome".into())),
        }
    }

    fn take(&mut self, id: WireJobId) -> Result<InFlight, SessionError> {
        self.in_flight.remove(&id).ok_or_else(|| {
            SessionError::Protocol(format!("a result for job {id}, which it does not have"))
        })
    }

    fn finished(&mut self, done: JobDone) -> Result<(), SessionError> {
        let job = self.take(done.job)?;
        let duration = Duration::from_nanos(done.duration_ns);
        let failed = done.result.is_err();
        if !failed {
            // A job that failed at once says nothing about how long jobs take.
            self.window.record(duration);
        }
        self.nodes.update(self.index, |node| {
            node.jobs += 1;
            node.failed += u64::from(failed);
            node.busy += duration;
        });
        let outcome = RawOutcome {
            result: done.result.map(serde_bytes::ByteBuf::into_vec),
            stdout: done.stdout,
            stderr: done.stderr,
            duration,
            fuel_used: done.fuel_used,
        };
        // Callbacks run here, on the network thread: they must be quick (see
        // `Job::on_complete`).
        self.shared
            .complete(*job.task, outcome, self.worker_name.clone());
        Ok(())
    }

    /// Sends a module the node asked for, on a stream of its own, without holding up jobs.
    fn ship_module(&mut self, hash: WireHash) -> Result<(), SessionError> {
        let module = self.modules.get(&hash).cloned().ok_or_else(|| {
            SessionError::Protocol("it asked for a module no job of this session uses".into())
        })?;
        // A module may be asked for again: the node's store is bounded, and evicts.
        let connection = self.connection.clone();
        let (nodes, index) = (self.nodes.clone(), self.index);
        let transfer = async move {
            let mut buffer = BytesMut::with_capacity(module.bytes().len() + 64);
            let message = ToNode::Module {
                hash,
                bytes: module.bytes().to_vec(),
            };
            codec::encode(&message, MAX_MODULE_FRAME_LEN, &mut buffer)
                .map_err(|error| SessionError::Protocol(error.to_string()))?;
            let mut stream = connection.open_uni().await?;
            net::write_all(&mut stream, &mut buffer).await?;
            let _ = stream.finish();
            Ok::<_, SessionError>(())
        };
        let connection = self.connection.clone();
        tokio::spawn(async move {
            match transfer.await {
                Ok(()) => nodes.update(index, |node| node.module_transfers += 1),
                Err(error) => {
                    // The node waits for this module: without it the session is of no use.
                    // Closing ends it, and the session hands its jobs back.
                    debug!(%error, "module transfer failed");
                    close(&connection, CloseCode::Normal, "module transfer failed");
                }
            }
        });
        Ok(())
    }

    /// How the session ended, given the error that ended it: a node that said it was
    /// draining, or closed with [`CloseCode::Shutdown`], shut down in order.
    fn ended(&self, error: SessionError) -> End {
        let shut_down = matches!(
            self.connection.close_reason(),
            Some(quinn::ConnectionError::ApplicationClosed(close))
                if CloseCode::from_code(close.error_code.into_inner()) == Some(CloseCode::Shutdown)
        );
        if shut_down || self.draining {
            End::Drained
        } else {
            End::Lost(error)
        }
    }

    /// Puts every job still in flight back in the queue. A job whose node was `lost`
    /// counts an attempt; past the retry limit it fails with [`JobError::NodeLost`].
    fn hand_back(&mut self, lost: bool) {
        let mut jobs: Vec<_> = self.in_flight.drain().collect();
        // Requeued at the head one by one: last first, so they keep their order.
        jobs.sort_unstable_by_key(|(id, _)| std::cmp::Reverse(*id));
        for (_, InFlight { task }) in jobs {
            if lost {
                self.retry(task);
            } else {
                self.shared.requeue(task);
            }
        }
    }

    /// Puts back a job its node lost, counting an attempt: past the retry limit it fails
    /// with [`JobError::NodeLost`].
    fn retry(&mut self, mut task: Box<Task>) {
        task.attempts += 1;
        if task.attempts > self.max_retries {
            let outcome = RawOutcome::failed(JobError::NodeLost {
                attempts: task.attempts,
                node: self.worker_name.clone(),
            });
            self.shared.complete(*task, outcome, String::new());
            return;
        }
        self.nodes.update(self.index, |node| node.retries += 1);
        self.shared.requeue(task);
    }
}

/// Reads the node's messages and forwards them to the session, until an error.
async fn read_messages(
    mut recv: FramedRecv,
    messages: mpsc::UnboundedSender<Result<ToClient, SessionError>>,
) {
    loop {
        let message = match recv.next::<ToClient>().await {
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err(SessionError::Protocol(
                "the node ended the job stream".into(),
            )),
            Err(error) => Err(error.into()),
        };
        let failed = message.is_err();
        if messages.send(message).is_err() || failed {
            return;
        }
    }
}

fn close(connection: &quinn::Connection, code: CloseCode, reason: &str) {
    connection.close(quinn::VarInt::from_u32(code.code()), reason.as_bytes());
}
