//! The monitor's connections: how many it serves at once, to whom, and for how long.
//!
//! A connection holds a slot from the moment it is accepted, before a byte of it is read
//! and before any token is checked, so a slot must be something a silent peer cannot
//! hoard. Each peer (an IP address) holds at most [`MAX_PER_PEER`] connections at once;
//! a connection that moves no byte either way for [`IO_TIMEOUT`] is closed
//! ([`TimedIo`]); and none lives past [`MAX_AGE`] (it finishes the request it is serving
//! first). The probes have slots of their own: once the [`MAX_CONNECTIONS`] ordinary
//! slots are taken, up to [`PROBE_CONNECTIONS`] more connections are accepted, which answer
//! the probes only, so that a monitor kept busy is not restarted as dead. A connection
//! over these bounds is closed at once.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The ordinary slots: connections served at once, whatever they ask.
pub(super) const MAX_CONNECTIONS: usize = 64;

/// The slots kept for the probes, used once the ordinary ones are all taken.
pub(super) const PROBE_CONNECTIONS: usize = 8;

/// The connections one peer (IP address) may hold at once.
pub(super) const MAX_PER_PEER: usize = 8;

/// How long a connection may move no byte, either way: a peer that sends nothing (or
/// stops reading) loses its connection.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may live: then it finishes its request and is closed.
pub(super) const MAX_AGE: Duration = Duration::from_secs(60);

/// What a connection may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Serves {
    /// Every route.
    Everything,
    /// The probes only: it holds one of the slots kept for them.
    ProbesOnly,
}

/// The monitor's slots, and the connections of each peer.
#[derive(Debug)]
pub(super) struct Slots {
    ordinary: Arc<Semaphore>,
    probes: Arc<Semaphore>,
    peers: Mutex<HashMap<IpAddr, usize>>,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            ordinary: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            probes: Arc::new(Semaphore::new(PROBE_CONNECTIONS)),
            peers: Mutex::new(HashMap::new()),
        }
    }
}

/// A connection's place: its slot and its count in its peer's, given back when dropped.
#[derive(Debug)]
pub(super) struct Admission {
    pub(super) serves: Serves,
    _slot: OwnedSemaphorePermit,
    peer: IpAddr,
    slots: Arc<Slots>,
}

impl Slots {
    /// A place for a connection from `peer`, or `None` if it is over a bound.
    pub(super) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admission> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let held = peers.entry(peer).or_default();
        if *held >= MAX_PER_PEER {
            return None;
        }
        let (slot, serves) = match self.ordinary.clone().try_acquire_owned() {
            Ok(slot) => (slot, Serves::Everything),
            Err(_) => (
                self.probes.clone().try_acquire_owned().ok()?,
                Serves::ProbesOnly,
            ),
        };
        *held += 1;
        Some(Admission {
            serves,
            _slot: slot,
            peer,
            slots: self.clone(),
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut peers = self.slots.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = peers.get_mut(&self.peer) {
            *held -= 1;
            if *held == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

/// A stream that fails with [`io::ErrorKind::TimedOut`] once it has moved no byte, either
/// way, for its timeout: reading and writing both wait on the same deadline, pushed back
/// by every read or write that completes.
#[derive(Debug)]
pub(super) struct TimedIo<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> TimedIo<S> {
    pub(super) fn new(inner: S, timeout: Duration) -> Self {
        TimedIo {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// What a poll of the inner stream comes to: progress pushes the deadline back; waiting
    /// past it is an error.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                let next = Instant::now() + self.timeout;
                self.deadline.as_mut().reset(next);
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the monitor's peer moved no byte in time",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.watch(cx, polled)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_peer_holds_a_bounded_number_of_connections() {
        let slots = Arc::new(Slots::default());
        let held: Vec<_> = (0..MAX_PER_PEER)
            .map(|_| slots.admit(peer(1)).expect("under the peer's bound"))
            .collect();
        assert!(slots.admit(peer(1)).is_none(), "over the peer's bound");
        assert!(slots.admit(peer(2)).is_some(), "another peer is served");
        drop(held);
        assert!(slots.admit(peer(1)).is_some(), "given back when closed");
        assert!(
            slots.peers.lock().unwrap().is_empty(),
            "no peer left counted"
        );
    }

    #[test]
    fn the_probes_keep_slots_of_their_own() {
        let slots = Arc::new(Slots::default());
        let peers = (0..=u8::MAX).map(peer);
        let mut held = Vec::new();
        for address in peers.clone().take(MAX_CONNECTIONS) {
            let admission = slots.admit(address).expect("an ordinary slot");
            assert_eq!(admission.serves, Serves::Everything);
            held.push(admission);
        }
        let mut others = peers.skip(MAX_CONNECTIONS);
        for _ in 0..PROBE_CONNECTIONS {
            let admission = slots.admit(others.next().unwrap()).expect("a probe slot");
            assert_eq!(admission.serves, Serves::ProbesOnly);
            held.push(admission);
        }
        assert!(
            slots.admit(others.next().unwrap()).is_none(),
            "every slot taken"
        );
        held.swap_remove(0);
        let freed = slots
            .admit(others.next().unwrap())
            .expect("a slot came back");
        assert_eq!(freed.serves, Serves::Everything);
    }

    #[test]
    fn a_stream_that_moves_nothing_times_out_and_one_that_moves_does_not() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (near, mut far) = tokio::io::duplex(64);
            let mut timed = TimedIo::new(near, Duration::from_millis(100));
            // Bytes that keep coming, each within the timeout, keep the stream alive.
            for byte in 0..5u8 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                far.write_all(&[byte]).await.unwrap();
                let mut read = [0];
                timed.read_exact(&mut read).await.expect("in time");
                assert_eq!(read[0], byte);
            }
            let silent = tokio::time::timeout(Duration::from_secs(10), timed.read_u8()).await;
            let error = silent
                .expect("ended by its own timeout")
                .expect_err("timed out");
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
            // A peer that stops reading: writes stall, then time out too.
            let (near, _far) = tokio::io::duplex(8);
            let mut timed = TimedIo::new(near, Duration::from_millis(100));
            let stalled =
                tokio::time::timeout(Duration::from_secs(10), timed.write_all(&[0; 64])).await;
            let error = stalled
                .expect("ended by its own timeout")
                .expect_err("timed out");
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        });
    }
}
