//! Finding nodes on the LAN: the announcements nodes send and clients check.
//!
//! Only the message format and its checks exist so far ([`announce`]), as plain data and
//! functions; the sockets that send and hear announcements are the next step.

pub mod announce;
