//! The sockets of discovery: a node sending its announcements, a client hearing them.

use super::announce::{self, Announcement, MAX_ANNOUNCEMENT_LEN, Rejected, ReplayGuard};
use crate::secret::ClusterSecret;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tracing::debug;

/// Where announcements go by default: a site-local multicast group (239.255.0.0/16 is
/// organisation-scoped) and a port of their own.
pub const DEFAULT_DISCOVERY_ADDRESS: SocketAddrV4 =
    SocketAddrV4::new(Ipv4Addr::new(239, 255, 87, 65), 7879);

/// How often a discoverable node announces itself, by default.
pub const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1);

/// How many nonces a client remembers against replays: a few minutes of a large LAN.
const REPLAY_MEMORY: usize = 64 * 1024;

/// Milliseconds since the Unix epoch, by this machine's clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// A socket to send announcements to `target` (a multicast group, a broadcast address, or
/// one host), leaving by the interface whose address is `interface` for a multicast group
/// (unspecified: the one the routing table picks). Must be called within a tokio runtime.
pub(crate) fn sender(target: SocketAddr, interface: Ipv4Addr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(target),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    let bind: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    socket.bind(&bind.into())?;
    socket.set_broadcast(target.is_ipv4())?;
    if target.ip().is_multicast() && target.is_ipv4() {
        // Stay on the LAN; and let clients on this host hear it too.
        socket.set_multicast_ttl_v4(1)?;
        socket.set_multicast_loop_v4(true)?;
        if !interface.is_unspecified() {
            socket.set_multicast_if_v4(&interface)?;
        }
    }
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// A socket that hears announcements sent to `address`: joined to the group on the
/// interface whose address is `interface` if it is a multicast address (unspecified: the
/// one the routing table picks), shared with other clients on this host (`SO_REUSEADDR`,
/// `SO_REUSEPORT`). Must be called within a tokio runtime.
pub(crate) fn listener(address: SocketAddr, interface: Ipv4Addr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    let bind: SocketAddr = match address {
        SocketAddr::V4(v4) if v4.ip().is_multicast() || v4.ip().is_broadcast() => {
            (Ipv4Addr::UNSPECIFIED, v4.port()).into()
        }
        other => other,
    };
    socket.bind(&bind.into())?;
    if let SocketAddr::V4(v4) = address
        && v4.ip().is_multicast()
    {
        socket.join_multicast_v4(v4.ip(), &interface)?;
    }
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Sends one fresh announcement of `node`.
pub(crate) async fn announce_once(
    socket: &UdpSocket,
    target: SocketAddr,
    secret: &ClusterSecret,
    node: &Announcement,
) -> io::Result<()> {
    let mut fresh = node.clone();
    fresh.sent_at_ms = now_ms();
    getrandom::fill(&mut fresh.nonce).map_err(io::Error::other)?;
    let datagram = announce::seal(&fresh, secret).map_err(io::Error::other)?;
    socket.send_to(&datagram, target).await?;
    Ok(())
}

/// What a client made of the announcements it heard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryStats {
    /// Authenticated, fresh announcements.
    pub accepted: u64,
    /// Announcements whose MAC did not match: forged, or another cluster's.
    pub forged: u64,
    /// Announcements too far from this clock's time.
    pub stale: u64,
    /// Announcements seen before.
    pub replayed: u64,
    /// Datagrams that are not wasp announcements (or of another format version).
    pub malformed: u64,
}

/// Checks the datagrams a client hears.
#[derive(Debug)]
pub(crate) struct Hearing {
    secret: ClusterSecret,
    guard: ReplayGuard,
    pub(crate) stats: DiscoveryStats,
}

impl Hearing {
    pub(crate) fn new(secret: ClusterSecret) -> Self {
        Hearing {
            secret,
            guard: ReplayGuard::new(REPLAY_MEMORY),
            stats: DiscoveryStats::default(),
        }
    }

    /// The announcement in `datagram` from `source`, if it is authentic and fresh; with
    /// the node's address completed from `source` if it announced an unspecified one
    /// (a node listening on `0.0.0.0`).
    pub(crate) fn hear(&mut self, datagram: &[u8], source: SocketAddr) -> Option<Announcement> {
        let heard = announce::open(datagram, &self.secret).and_then(|announcement| {
            self.guard.check(&announcement, now_ms())?;
            Ok(announcement)
        });
        match heard {
            Ok(mut announcement) => {
                self.stats.accepted += 1;
                if announcement.address.ip().is_unspecified() {
                    announcement.address.set_ip(source.ip());
                }
                Some(announcement)
            }
            Err(rejected) => {
                debug!(%source, %rejected, "ignored an announcement");
                let counter = match rejected {
                    Rejected::Forged => &mut self.stats.forged,
                    Rejected::Stale(_) => &mut self.stats.stale,
                    Rejected::Replayed => &mut self.stats.replayed,
                    _ => &mut self.stats.malformed,
                };
                *counter += 1;
                None
            }
        }
    }
}

/// Receives one datagram (at most an announcement's size; longer ones are cut, and then
/// refused as malformed).
pub(crate) async fn receive(socket: &UdpSocket) -> io::Result<(Vec<u8>, SocketAddr)> {
    let mut buffer = vec![0; MAX_ANNOUNCEMENT_LEN + 1];
    let (len, source) = socket.recv_from(&mut buffer).await?;
    buffer.truncate(len);
    Ok((buffer, source))
}
