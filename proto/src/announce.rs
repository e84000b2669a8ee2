//! The announcement a discoverable node sends on the LAN, and how a client checks it.
//!
//! A datagram is `WASPA` (5 bytes), a format version (1 byte), the body's length (u16,
//! big-endian), the body (MessagePack: who the node is and where, when, and a random
//! nonce), and a 32-byte MAC: a keyed blake3 hash of everything before it, under a key
//! derived from the cluster secret. So a stranger cannot forge an announcement (and lure
//! clients to a rogue node), and a recorded one cannot be replayed: it is refused once its
//! timestamp is out of the window, and while in the window its nonce has been seen.
//!
//! Nothing here touches a socket or the clock: callers pass the time in.

use crate::secret::ClusterSecret;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// The first bytes of every announcement.
pub const MAGIC: &[u8; 5] = b"WASPA";

/// The announcement format this build sends and reads.
pub const FORMAT_VERSION: u8 = 1;

/// The largest announcement: well within one unfragmented UDP datagram.
pub const MAX_ANNOUNCEMENT_LEN: usize = 512;

/// How far an announcement's timestamp may be from the receiver's clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(30);

/// The context of the key announcements are authenticated with (see
/// [`ClusterSecret`]: one key per purpose).
const KEY_CONTEXT: &str = "wasp 2026-11-24 discovery announcement mac v1";

const HEADER_LEN: usize = MAGIC.len() + 1 + 2;
const MAC_LEN: usize = 32;

/// What a node says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The node's stable id: its certificate's blake3 fingerprint, in hex.
    pub id: String,
    /// Where the node accepts QUIC connections.
    pub address: SocketAddr,
    /// The node's CPU architecture.
    pub arch: String,
    /// How many jobs the node runs at once.
    pub workers: u32,
    /// When it was sent: milliseconds since the Unix epoch, by the node's clock.
    pub sent_at_ms: u64,
    /// Random bytes, fresh for each announcement, against replay.
    pub nonce: [u8; 16],
}

/// Why an announcement was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// Not an announcement: wrong magic, length or layout.
    #[error("not a wasp announcement: {0}")]
    Malformed(String),
    /// A format this build does not read.
    #[error("announcement format v{0}, this build reads v{FORMAT_VERSION}")]
    Version(u8),
    /// The MAC does not match: forged, damaged, or from a cluster with another secret.
    #[error("the announcement is not authenticated by this cluster's secret")]
    Forged,
    /// Its timestamp is too far from now: an old recording, or a badly wrong clock.
    #[error("the announcement is {0:?} away from this clock's time")]
    Stale(Duration),
    /// Its nonce has been seen already within the window: a replay.
    #[error("the announcement was seen before (a replay)")]
    Replayed,
}

/// Why an announcement could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the announcement is {0} bytes, more than the {MAX_ANNOUNCEMENT_LEN} allowed")]
pub struct TooLarge(pub usize);

/// Encodes and authenticates `announcement` into a datagram.
///
/// # Errors
/// [`TooLarge`] if the result would exceed [`MAX_ANNOUNCEMENT_LEN`] (a very long id or
/// architecture name).
pub fn seal(announcement: &Announcement, secret: &ClusterSecret) -> Result<Vec<u8>, TooLarge> {
    let body = rmp_serde::to_vec(announcement).expect("an announcement always encodes");
    let len = HEADER_LEN + body.len() + MAC_LEN;
    if len > MAX_ANNOUNCEMENT_LEN {
        return Err(TooLarge(len));
    }
    let mut datagram = Vec::with_capacity(len);
    datagram.extend_from_slice(MAGIC);
    datagram.push(FORMAT_VERSION);
    datagram.extend_from_slice(&(body.len() as u16).to_be_bytes());
    datagram.extend_from_slice(&body);
    let mac = mac(secret, &datagram);
    datagram.extend_from_slice(mac.as_bytes());
    Ok(datagram)
}

/// Checks a datagram's layout and MAC, and decodes it. Freshness is [`ReplayGuard`]'s.
///
/// # Errors
/// [`Rejected::Malformed`], [`Rejected::Version`] or [`Rejected::Forged`].
pub fn open(datagram: &[u8], secret: &ClusterSecret) -> Result<Announcement, Rejected> {
    if datagram.len() > MAX_ANNOUNCEMENT_LEN {
        return Err(Rejected::Malformed(format!("{} bytes", datagram.len())));
    }
    if datagram.len() < HEADER_LEN + MAC_LEN || &datagram[..MAGIC.len()] != MAGIC {
        return Err(Rejected::Malformed("no wasp announcement header".into()));
    }
    let version = datagram[MAGIC.len()];
    if version != FORMAT_VERSION {
        return Err(Rejected::Version(version));
    }
    let body_len = usize::from(u16::from_be_bytes([
        datagram[MAGIC.len() + 1],
        datagram[MAGIC.len() + 2],
    ]));
    if datagram.len() != HEADER_LEN + body_len + MAC_LEN {
        return Err(Rejected::Malformed(
            "its length does not match its header".into(),
        ));
    }
    let (signed, received) = datagram.split_at(HEADER_LEN + body_len);
    let received: [u8; MAC_LEN] = received.try_into().expect("split at the MAC");
    // blake3::Hash compares in constant time.
    if mac(secret, signed) != blake3::Hash::from_bytes(received) {
        return Err(Rejected::Forged);
    }
    rmp_serde::from_slice(&signed[HEADER_LEN..])
        .map_err(|error| Rejected::Malformed(format!("authenticated but undecodable: {error}")))
}

fn mac(secret: &ClusterSecret, signed: &[u8]) -> blake3::Hash {
    blake3::keyed_hash(&secret.derive_key(KEY_CONTEXT), signed)
}

/// Remembers the nonces of recent announcements, to refuse replays.
///
/// An announcement is fresh if its timestamp is within [`MAX_CLOCK_SKEW`] of now and its
/// nonce has not been seen. Nonces are kept for twice the skew (past that, the timestamp
/// check refuses a replay anyway), and at most `capacity` of them: when full, the oldest go
/// first. Only authenticated announcements reach the guard, so a stranger cannot fill it.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: HashMap<[u8; 16], u64>,
    /// Nonces in the order they were seen, with when: for expiry.
    order: VecDeque<([u8; 16], u64)>,
    capacity: usize,
}

impl ReplayGuard {
    /// A guard that remembers at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        ReplayGuard {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Accepts `announcement` if it is fresh at `now_ms` (milliseconds since the Unix
    /// epoch), and remembers its nonce.
    ///
    /// # Errors
    /// [`Rejected::Stale`] or [`Rejected::Replayed`].
    pub fn check(&mut self, announcement: &Announcement, now_ms: u64) -> Result<(), Rejected> {
        let skew = now_ms.abs_diff(announcement.sent_at_ms);
        if u128::from(skew) > MAX_CLOCK_SKEW.as_millis() {
            return Err(Rejected::Stale(Duration::from_millis(skew)));
        }
        self.expire(now_ms);
        if self.seen.contains_key(&announcement.nonce) {
            return Err(Rejected::Replayed);
        }
        if self.order.len() == self.capacity
            && let Some((oldest, _)) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.seen.insert(announcement.nonce, now_ms);
        self.order.push_back((announcement.nonce, now_ms));
        Ok(())
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn expire(&mut self, now_ms: u64) {
        let keep = 2 * MAX_CLOCK_SKEW.as_millis() as u64;
        while let Some(&(nonce, seen_at)) = self.order.front() {
            if now_ms.saturating_sub(seen_at) <= keep {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&nonce);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_795_000_000_000;

    fn secret(byte: u8) -> ClusterSecret {
        ClusterSecret::from_bytes([byte; 32])
    }

    fn announcement(nonce: u8, sent_at_ms: u64) -> Announcement {
        Announcement {
            id: "ab".repeat(32),
            address: "192.168.1.20:7878".parse().unwrap(),
            arch: "aarch64".into(),
            workers: 4,
            sent_at_ms,
            nonce: [nonce; 16],
        }
    }

    #[test]
    fn a_sealed_announcement_opens_with_the_same_secret() {
        let sent = announcement(1, NOW);
        let datagram = seal(&sent, &secret(7)).unwrap();
        assert!(datagram.len() <= MAX_ANNOUNCEMENT_LEN);
        assert_eq!(open(&datagram, &secret(7)), Ok(sent));
    }

    #[test]
    fn another_secret_or_a_changed_byte_is_a_forgery() {
        let datagram = seal(&announcement(1, NOW), &secret(7)).unwrap();
        assert_eq!(open(&datagram, &secret(8)), Err(Rejected::Forged));
        // Flip one bit anywhere after the header: the MAC no longer matches.
        for at in HEADER_LEN..datagram.len() {
            let mut tampered = datagram.clone();
            tampered[at] ^= 1;
            assert_eq!(
                open(&tampered, &secret(7)),
                Err(Rejected::Forged),
                "byte {at}"
            );
        }
    }

    #[test]
    fn garbage_and_other_versions_are_refused_by_their_layout() {
        assert!(matches!(open(b"", &secret(7)), Err(Rejected::Malformed(_))));
        assert!(matches!(
            open(&[0; 100], &secret(7)),
            Err(Rejected::Malformed(_))
        ));
        let mut datagram = seal(&announcement(1, NOW), &secret(7)).unwrap();
        datagram.push(0);
        assert!(matches!(
            open(&datagram, &secret(7)),
            Err(Rejected::Malformed(_))
        ));
        let mut other = seal(&announcement(1, NOW), &secret(7)).unwrap();
        other[MAGIC.len()] = 2;
        assert_eq!(open(&other, &secret(7)), Err(Rejected::Version(2)));
    }

    #[test]
    fn an_oversized_announcement_is_not_made() {
        let mut long = announcement(1, NOW);
        long.arch = "x".repeat(600);
        assert!(matches!(seal(&long, &secret(7)), Err(TooLarge(_))));
    }

    #[test]
    fn a_replay_is_refused_while_fresh_and_a_recording_once_stale() {
        let mut guard = ReplayGuard::new(100);
        let sent = announcement(1, NOW);
        assert_eq!(guard.check(&sent, NOW + 10), Ok(()));
        assert_eq!(guard.check(&sent, NOW + 20), Err(Rejected::Replayed));
        // A new nonce from the same node is fine.
        assert_eq!(
            guard.check(&announcement(2, NOW + 1_000), NOW + 1_000),
            Ok(())
        );
        // Played back later, the recording is stale, nonce or not.
        let later = NOW + MAX_CLOCK_SKEW.as_millis() as u64 + 1;
        assert!(matches!(guard.check(&sent, later), Err(Rejected::Stale(_))));
        // So is one from the future (a clock far ahead).
        assert!(matches!(
            guard.check(&announcement(3, later + 60_000), NOW),
            Err(Rejected::Stale(_))
        ));
    }

    #[test]
    fn the_guard_forgets_old_nonces_and_stays_bounded() {
        let mut guard = ReplayGuard::new(3);
        for nonce in 0..5 {
            assert_eq!(guard.check(&announcement(nonce, NOW), NOW), Ok(()));
        }
        assert_eq!(guard.len(), 3);
        // Past twice the skew, everything is forgotten.
        let much_later = NOW + 3 * MAX_CLOCK_SKEW.as_millis() as u64;
        assert_eq!(
            guard.check(&announcement(9, much_later), much_later),
            Ok(())
        );
        assert_eq!(guard.len(), 1);
    }

    proptest! {
        #[test]
        fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = open(&bytes, &secret(7));
        }

        #[test]
        fn announcements_round_trip(workers in any::<u32>(), port in any::<u16>(), sent_at_ms in any::<u64>(), nonce in any::<[u8; 16]>()) {
            let sent = Announcement {
                id: "cd".repeat(32),
                address: SocketAddr::from(([10, 0, 0, 1], port)),
                arch: "x86_64".into(),
                workers,
                sent_at_ms,
                nonce,
            };
            let datagram = seal(&sent, &secret(3)).unwrap();
            prop_assert_eq!(open(&datagram, &secret(3)), Ok(sent));
        }
    }
}
