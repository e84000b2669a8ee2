//! Hostile LAN announcements (`wasp_proto::announce::open`, under a fixed cluster secret):
//! opening arbitrary datagrams must never panic, and what opens must seal back (unless its
//! canonical encoding is longer than the datagram it came in, which then must be why it is too
//! large) into a datagram that opens to the same announcement, and seals the same again.
//!
//! Input: the datagram. Mutated bytes almost never carry a valid MAC, so this mostly checks the
//! layout checks in front of it (magic, version, lengths); `seeds/announce/` holds
//! authenticated datagrams, so that the decoding and the round trip run too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasp_proto::announce::{TooLarge, open, seal};
use wasp_proto::secret::ClusterSecret;

/// The secret the seeds are sealed with.
const SECRET: [u8; 32] = [7; 32];

fuzz_target!(|datagram: &[u8]| {
    let secret = ClusterSecret::from_bytes(SECRET);
    let Ok(announcement) = open(datagram, &secret) else {
        return;
    };
    match seal(&announcement, &secret) {
        Ok(sealed) => {
            assert_eq!(open(&sealed, &secret).as_ref(), Ok(&announcement));
            assert_eq!(
                seal(&announcement, &secret),
                Ok(sealed),
                "sealing is not stable"
            );
        }
        Err(TooLarge(len)) => assert!(
            len > datagram.len(),
            "a {}-byte announcement does not seal back ({len} bytes)",
            datagram.len()
        ),
    }
});
