//! Hostile bytes on every kind of stream: the frame decoders must refuse them, never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wasp_proto::codec::fuzz_decode(data);
});
