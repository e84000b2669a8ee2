//! Finding nodes on the LAN: discoverable nodes announce themselves, clients listen.
//!
//! [`announce`] is the message and its checks (plain data, in the protocol crate); `lan`
//! the sockets. A node started with `--discoverable` sends an announcement every second to
//! the discovery address (by default the multicast group [`DEFAULT_DISCOVERY_ADDRESS`]); a
//! client with discovery on ([`Peer::Discover`](crate::Peer::Discover), `--discover`)
//! connects to every authentic node it hears.

pub use wasp_proto::announce;
mod lan;

pub use lan::{DEFAULT_ANNOUNCE_INTERVAL, DEFAULT_DISCOVERY_ADDRESS, DiscoveryStats};
pub(crate) use lan::{Hearing, announce_once, listener, receive, sender};
