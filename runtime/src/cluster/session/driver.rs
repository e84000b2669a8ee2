//! The async driver of one connection to a node: it moves bytes between quinn and the
//! [`SessionState`], takes jobs from the queue when the state has room, and carries out
//! the state's actions. All decisions are the state's.

use super::state::{Action, Ending, SessionState, Violation};
use crate::cluster::context::Context;
use crate::cluster::nodes::RowId;
use crate::data::Data;
use crate::module::Module;
use crate::net::{self, FrameError, FramedRecv, HandshakeError, NetError};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};
use wasp_proto::CloseCode;
use wasp_proto::codec::{self, MAX_FRAME_LEN, MAX_MODULE_FRAME_LEN};
use wasp_proto::message::{NodeInfo, ToClient, ToNode, WireHash};

/// How long connecting, the handshake and the node's welcome may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many of the node's messages may be decoded ahead of the session: past them, the
/// reader stops reading, and QUIC's flow control holds the node back.
pub(super) const READ_AHEAD: usize = 256;

/// The node's messages, as the reader decodes them.
type Inbox = mpsc::Receiver<Result<ToClient, SessionError>>;

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
    #[error(transparent)]
    Protocol(#[from] Violation),
    /// The connection failed (closed, reset, or silent past the idle timeout).
    #[error("the connection was lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// A module or a value the node asked for could not be sent.
    #[error("a module or a value could not be sent to the node")]
    Transfer,
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
pub(crate) enum End {
    /// The client is shutting down.
    Stopped,
    /// The node drained and closed the connection in an orderly way.
    Drained,
    /// The node was lost: closed, killed, silent past the idle timeout, or it broke the
    /// protocol.
    Lost(SessionError),
}

/// An authenticated connection to a node, welcomed.
pub(crate) struct Session {
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: FramedRecv,
    info: NodeInfo,
}

impl Session {
    /// Connects to `address`, proves the cluster secret, and reads the node's welcome.
    pub(crate) async fn connect(
        ctx: &Context,
        address: SocketAddr,
    ) -> Result<Session, SessionError> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::establish(ctx, address))
            .await
            .map_err(|_| SessionError::Timeout(CONNECT_TIMEOUT))?
    }

    async fn establish(ctx: &Context, peer: SocketAddr) -> Result<Session, SessionError> {
        let endpoint = ctx.endpoint(peer)?;
        let connection = net::connect(&endpoint, peer).await?;
        let secret = ctx.config.secret.as_ref();
        let (send, recv) = net::client_handshake(&connection, secret).await?;
        let mut recv = FramedRecv::new(recv, MAX_FRAME_LEN);
        let mut info = match recv.next::<ToClient>().await? {
            Some(ToClient::Welcome(info)) => info,
            other => {
                let why = format!("expected a welcome, got {other:?}");
                close(&connection, CloseCode::Protocol, &why);
                return Err(Violation(why).into());
            }
        };
        // The node's id is what its TLS session proved, not what it says.
        if let Some(fingerprint) = net::peer_fingerprint(&connection) {
            info.id = fingerprint;
        }
        Ok(Session {
            connection,
            send,
            recv,
            info,
        })
    }

    /// Who the node is.
    pub(crate) fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// Runs jobs on the node until the client stops or the connection ends; then every
    /// message received still counts, and the jobs left in flight go back to the queue.
    /// Returns how it ended and how many jobs the node answered.
    pub(crate) async fn run(
        self,
        ctx: &Arc<Context>,
        row: RowId,
        stop: &mut watch::Receiver<bool>,
    ) -> (End, u64) {
        let Session {
            connection,
            send,
            recv,
            info,
        } = self;
        let (reader, mut inbox) = spawn_reader(recv);
        let name = format!("node {}", ctx.nodes.address(row));
        let (shipped, shipments) = mpsc::unbounded_channel();
        let mut driver = Driver {
            ctx,
            row,
            connection: &connection,
            send,
            state: SessionState::new(name, &info, ctx.config.max_retries),
            buffer: BytesMut::new(),
            cancels_seen: ctx.shared.books.cancellations(),
            shipped,
            link: Link::new(),
            sent_seen: 0,
        };
        let end = driver.drive(&mut inbox, shipments, stop).await;
        reader.abort();
        // Every message that arrived before the end still counts: results must not run
        // again. The reader hands over each message as soon as it is decoded, so all that
        // arrived are in the inbox.
        while let Ok(message) = inbox.try_recv() {
            if let Ok(message) = message {
                let _ = driver.state.handle(message);
            }
        }
        let ending = match &end {
            End::Stopped => Ending::Stopped,
            End::Drained => Ending::Drained,
            End::Lost(_) => Ending::Lost,
        };
        driver.state.end(ending);
        driver.count_sent();
        driver.apply();
        let (code, reason) = match &end {
            End::Stopped => (CloseCode::Normal, "client shutting down"),
            End::Drained => (CloseCode::Normal, "node drained"),
            End::Lost(SessionError::Protocol(_)) => (CloseCode::Protocol, "protocol violation"),
            End::Lost(_) => (CloseCode::Normal, "connection lost"),
        };
        close(&connection, code, reason);
        (end, driver.state.answered())
    }
}

/// The state of a running session, and what it talks through.
struct Driver<'a> {
    ctx: &'a Arc<Context>,
    /// This node's row in the node table.
    row: RowId,
    connection: &'a quinn::Connection,
    /// The job stream, towards the node.
    send: quinn::SendStream,
    state: SessionState,
    /// Frames encoded and not written yet.
    buffer: BytesMut,
    /// The server's count of cancellations when this session last looked for them.
    cancels_seen: u64,
    /// Where transfers report their end.
    shipped: mpsc::UnboundedSender<Shipped>,
    /// What the node table is told of the link, every second.
    link: Link,
    /// The bytes QUIC had sent on the connection when last counted.
    sent_seen: u64,
}

/// A transfer that ended, and whether it reached the node.
enum Shipped {
    Module(WireHash, bool),
    Data(WireHash, u64, bool),
}

/// Bytes of a value handed to quinn at a time: it is sent as the node's flow control
/// lets it, a chunk at a time, shared with the value (not copied).
const DATA_CHUNK: usize = 1 << 20;

/// The link's liveness, as the node table shows it.
struct Link {
    ticks: tokio::time::Interval,
    /// Datagrams received when last looked at: more means the node was heard from.
    datagrams: u64,
    heard: Instant,
}

impl Link {
    fn new() -> Self {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Link {
            ticks,
            datagrams: 0,
            heard: Instant::now(),
        }
    }
}

impl Driver<'_> {
    async fn drive(
        &mut self,
        inbox: &mut Inbox,
        mut shipments: mpsc::UnboundedReceiver<Shipped>,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let books = self.ctx.shared.books.clone();
        loop {
            if *stop.borrow() {
                return End::Stopped;
            }
            // Armed before looking at the queue, so a job queued (or cancelled) in between
            // is not missed.
            let queued = books.remote_work.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            self.send_cancels();
            let room = self.state.room(self.connection.rtt());
            let sent_jobs = room > 0 && self.take_jobs(room);
            self.apply();
            if !self.buffer.is_empty() {
                // A write can wait on flow control: the client's shutdown must not.
                let written = tokio::select! {
                    written = net::write_all(&mut self.send, &mut self.buffer) => written,
                    _ = stop.changed() => return End::Stopped,
                };
                if let Err(error) = written {
                    return self.ended(error.into());
                }
            }
            if sent_jobs {
                continue;
            }
            tokio::select! {
                _ = stop.changed() => return End::Stopped,
                message = inbox.recv() => {
                    let handled = match message {
                        Some(Ok(message)) => self.state.handle(message).map_err(SessionError::from),
                        Some(Err(error)) => Err(error),
                        None => Err(Violation("the node closed the job stream".into()).into()),
                    };
                    if let Err(error) = handled {
                        return self.ended(error);
                    }
                }
                Some(shipped) = shipments.recv() => {
                    let sent = match shipped {
                        Shipped::Module(hash, sent) => {
                            self.state.module_sent(hash, sent);
                            sent
                        }
                        Shipped::Data(hash, len, sent) => {
                            self.state.data_sent(hash, len, sent);
                            sent
                        }
                    };
                    if !sent {
                        // The node waits for this: without it the session is of no use.
                        // Ending it hands its jobs back.
                        return self.ended(SessionError::Transfer);
                    }
                }
                // Cancellations wake this too: a full window must still pass them on.
                () = &mut queued => {}
                _ = self.link.ticks.tick() => {
                    self.report_link();
                    self.take_back_overdue();
                }
            }
            self.apply();
        }
    }

    /// Takes up to `room` queued jobs, the node's fair share of them, and encodes them.
    /// Returns whether any were taken.
    fn take_jobs(&mut self, room: usize) -> bool {
        let remote = self
            .ctx
            .shared
            .remote_workers
            .load(std::sync::atomic::Ordering::Relaxed);
        let others_remote = remote.saturating_sub(self.state.workers());
        let state = &self.state;
        let tasks = self.ctx.shared.take_remote(|pending| {
            state.share(room, pending.tasks, pending.local_workers + others_remote)
        });
        let taken = !tasks.is_empty();
        let now = Instant::now();
        for task in tasks {
            self.state.send(task, &mut self.buffer, now);
        }
        taken
    }

    /// Tells the node table how the link is: jobs in flight, round trip, last heard.
    fn report_link(&mut self) {
        let datagrams = self.connection.stats().udp_rx.datagrams;
        if datagrams != self.link.datagrams {
            self.link.datagrams = datagrams;
            self.link.heard = Instant::now();
        }
        self.count_sent();
        let rtt = self.connection.rtt();
        let in_flight = self.state.in_flight();
        self.ctx
            .nodes
            .link(self.row, in_flight, rtt, self.link.heard);
    }

    /// Counts what QUIC has sent to the node since the last count.
    fn count_sent(&mut self) {
        let sent = self.connection.stats().udp_tx.bytes;
        self.state.sent_bytes(sent.saturating_sub(self.sent_seen));
        self.sent_seen = sent;
    }

    /// Takes back the jobs with a time limit that the node has held past their deadline:
    /// they run elsewhere, and the node is told to cancel them.
    fn take_back_overdue(&mut self) {
        let expired = self.state.expire(Instant::now(), &mut self.buffer);
        if expired > 0 {
            let node = self.ctx.nodes.address(self.row);
            warn!(%node, jobs = expired, "the node held jobs far past their time limit without answering; they run elsewhere");
        }
    }

    /// Passes on the cancellations made since the last look, if any.
    fn send_cancels(&mut self) {
        let cancellations = self.ctx.shared.books.cancellations();
        if cancellations != self.cancels_seen {
            self.cancels_seen = cancellations;
            self.state.check_cancels(&mut self.buffer);
        }
    }

    /// Records what the state saw in the node's row, then carries out what it asked for:
    /// the row counts a job before its waiters are released.
    fn apply(&mut self) {
        // Bytes sent are counted with what the state saw, not only on the link's tick:
        // a job's result is never delivered before the bytes that carried it are counted.
        self.count_sent();
        let delta = self.state.take_delta();
        self.ctx.nodes.record(self.row, delta);
        while let Some(action) = self.state.poll_action() {
            match action {
                // Callbacks run here, on the network thread: they must be quick (see
                // `Job::on_complete`).
                Action::Finish(task, finished) => self.ctx.shared.finish(task, finished),
                Action::Requeue(task, why) => self.ctx.shared.requeue(task, why),
                Action::Ship(hash, module) => self.ship(hash, module),
                Action::ShipData(data) => self.ship_data(data),
                Action::Refer(hash, source) => {
                    let pull = ToNode::Pull {
                        hash,
                        source: source.to_string(),
                    };
                    // A hash and a short reference are far below the maximum: encoding
                    // cannot fail.
                    let _ = codec::encode(&pull, MAX_FRAME_LEN, &mut self.buffer);
                }
            }
        }
    }

    /// Sends a module the node asked for, on a stream of its own, without holding up jobs
    /// and without copying it.
    fn ship(&self, hash: WireHash, module: Module) {
        let connection = self.connection.clone();
        let shipped = self.shipped.clone();
        tokio::spawn(async move {
            let sent = send_module(&connection, hash, &module).await;
            if let Err(error) = &sent {
                debug!(%error, "module transfer failed");
            }
            let _ = shipped.send(Shipped::Module(hash, sent.is_ok()));
        });
    }

    /// Sends a value the node asked for, on a stream of its own, without holding up jobs
    /// and without copying it.
    fn ship_data(&self, data: Data) {
        let connection = self.connection.clone();
        let shipped = self.shipped.clone();
        tokio::spawn(async move {
            let sent = send_data(&connection, &data).await;
            if let Err(error) = &sent {
                debug!(%error, "value transfer failed");
            }
            let len = data.bytes.len() as u64;
            let _ = shipped.send(Shipped::Data(data.hash, len, sent.is_ok()));
        });
    }

    /// How the session ended, given the error that ended it: a node that said it was
    /// draining, or closed with [`CloseCode::Shutdown`], shut down in order.
    fn ended(&self, error: SessionError) -> End {
        let shut_down = matches!(
            self.connection.close_reason(),
            Some(quinn::ConnectionError::ApplicationClosed(close))
                if CloseCode::from_code(close.error_code.into_inner()) == Some(CloseCode::Shutdown)
        );
        if shut_down || self.state.is_draining() {
            End::Drained
        } else {
            End::Lost(error)
        }
    }
}

/// Writes `module` on a new unidirectional stream: the frame's head, then the module's
/// bytes as they are.
async fn send_module(
    connection: &quinn::Connection,
    hash: WireHash,
    module: &Module,
) -> Result<(), SessionError> {
    let head = codec::module_frame_head(&hash, module.bytes().len(), MAX_MODULE_FRAME_LEN)
        .map_err(|error| Violation(error.to_string()))?;
    let mut stream = connection.open_uni().await?;
    let written = async {
        stream.write_chunk(head.freeze()).await?;
        stream.write_chunk(module.shared_bytes()).await?;
        Ok::<_, quinn::WriteError>(())
    };
    written.await.map_err(FrameError::from)?;
    let _ = stream.finish();
    Ok(())
}

/// Writes `data` on a new unidirectional stream: a head frame, then the value's bytes,
/// a chunk at a time as flow control allows, each chunk shared with the value.
async fn send_data(connection: &quinn::Connection, data: &Data) -> Result<(), SessionError> {
    let head = ToNode::Data {
        hash: data.hash,
        len: data.bytes.len() as u64,
    };
    let mut frame = BytesMut::new();
    codec::encode(&head, MAX_FRAME_LEN, &mut frame)
        .map_err(|error| Violation(error.to_string()))?;
    let mut stream = connection.open_uni().await?;
    let written = async {
        stream.write_chunk(frame.freeze()).await?;
        let mut at = 0;
        while at < data.bytes.len() {
            let end = (at + DATA_CHUNK).min(data.bytes.len());
            stream.write_chunk(data.bytes.slice(at..end)).await?;
            at = end;
        }
        Ok::<_, quinn::WriteError>(())
    };
    written.await.map_err(FrameError::from)?;
    let _ = stream.finish();
    Ok(())
}

/// Starts reading the node's messages from `recv` into a bounded inbox: at most
/// [`READ_AHEAD`] are decoded and not yet taken by the session.
pub(super) fn spawn_reader(recv: FramedRecv) -> (tokio::task::JoinHandle<()>, Inbox) {
    let (messages, inbox) = mpsc::channel(READ_AHEAD);
    (tokio::spawn(read_messages(recv, messages)), inbox)
}

/// Reads the node's messages and forwards them to the session, until an error. Room in the
/// inbox is reserved before a message is read, so a message read is never held back (nor
/// lost when the session ends and the reader is stopped).
async fn read_messages(
    mut recv: FramedRecv,
    messages: mpsc::Sender<Result<ToClient, SessionError>>,
) {
    loop {
        let Ok(room) = messages.reserve().await else {
            return;
        };
        let message = match recv.next::<ToClient>().await {
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err(Violation("the node ended the job stream".into()).into()),
            Err(error) => Err(error.into()),
        };
        let failed = message.is_err();
        room.send(message);
        if failed {
            return;
        }
    }
}

fn close(connection: &quinn::Connection, code: CloseCode, reason: &str) {
    connection.close(quinn::VarInt::from_u32(code.code()), reason.as_bytes());
}
