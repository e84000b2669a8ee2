//! Hostile hellos: parsing must never panic, and what parses must survive a round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasp_proto::handshake::{HELLO_LEN, Hello};

fuzz_target!(|bytes: [u8; HELLO_LEN]| {
    if let Ok(hello) = Hello::parse(&bytes) {
        assert_eq!(Hello::parse(&hello.encode()).ok(), Some(hello));
    }
});
