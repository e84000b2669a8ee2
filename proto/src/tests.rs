//! Tests of the codec and the handshake: round trips of every message, hostile streams,
//! and every handshake verdict.

use super::codec::{
    FRAME_HEADER_LEN, FrameDecoder, MAX_FRAME_LEN, MAX_MODULE_FRAME_LEN, ProtoError, encode,
    fuzz_decode, module_frame_head, value_len,
};
use super::handshake::{
    HELLO_LEN, HandshakeParseError, Hello, MAGIC, Refusal, Status, check_node_hello, client_hello,
    node_verdict,
};
use super::message::{JobDone, NodeInfo, RunJob, ToClient, ToNode, WireLimits};
use super::{CloseCode, PROTOCOL_VERSION, refs};
use crate::error::{WireError, WireTrap};
use crate::secret::{ClusterSecret, Role};
use bytes::{BufMut, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use std::fmt::Debug;

// ---- strategies ----

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}

fn run_job() -> impl Strategy<Value = RunJob> {
    let limits = (
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<bool>>(),
    )
        .prop_map(
            |(timeout_ms, max_memory, max_output, max_table_elements, fuel, reuse_instance)| {
                WireLimits {
                    timeout_ms,
                    max_memory,
                    max_output,
                    max_table_elements,
                    fuel,
                    reuse_instance,
                }
            },
        );
    (any::<u64>(), any::<[u8; 32]>(), text(), bytes(64), limits).prop_map(
        |(job, module, function, args, limits)| RunJob {
            job,
            module,
            function,
            args,
            limits,
        },
    )
}

fn to_node() -> impl Strategy<Value = ToNode> {
    prop_oneof![
        run_job().prop_map(ToNode::Run),
        (any::<[u8; 32]>(), bytes(512)).prop_map(|(hash, bytes)| ToNode::Module { hash, bytes }),
        vec(any::<u64>(), 0..8).prop_map(|jobs| ToNode::Cancel { jobs }),
        (any::<[u8; 32]>(), any::<u64>()).prop_map(|(hash, len)| ToNode::Data { hash, len }),
        (any::<[u8; 32]>(), text()).prop_map(|(hash, source)| ToNode::Pull { hash, source }),
    ]
}

fn wire_error() -> impl Strategy<Value = WireError> {
    prop_oneof![
        (text(), vec(text(), 0..4)).prop_map(|(function, available)| {
            WireError::UnknownFunction {
                function,
                available,
            }
        }),
        text().prop_map(WireError::BadArguments),
        text().prop_map(WireError::Failed),
        text().prop_map(WireError::Panic),
        Just(WireError::Trap(WireTrap::StackOverflow)),
        text().prop_map(|text| WireError::Trap(WireTrap::Other(text))),
        any::<u64>().prop_map(|nanos| WireError::Timeout { nanos }),
        any::<u64>().prop_map(|limit| WireError::MemoryLimit { limit }),
        (text(), any::<u64>()).prop_map(|(stream, limit)| WireError::OutputLimit { stream, limit }),
        any::<i32>().prop_map(WireError::Exited),
        any::<u64>().prop_map(|limit| WireError::FuelExhausted { limit }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(size, limit)| WireError::ResultTooLarge { size, limit }),
        text().prop_map(WireError::Cancelled),
        (text(), text(), text()).prop_map(|(limit, asked, allowed)| WireError::LimitRefused {
            limit,
            asked,
            allowed
        }),
        text().prop_map(WireError::ModuleRefused),
        (any::<u64>(), any::<u64>())
            .prop_map(|(size, limit)| WireError::DataTooLarge { size, limit }),
        text().prop_map(WireError::Forbidden),
        text().prop_map(WireError::Abi),
        text().prop_map(WireError::Module),
        text().prop_map(WireError::Internal),
    ]
}

fn job_done() -> impl Strategy<Value = JobDone> {
    let result = prop_oneof![
        bytes(64).prop_map(|value| Ok(ByteBuf::from(value))),
        wire_error().prop_map(Err),
    ];
    let sizes = (any::<u64>(), any::<Option<u64>>(), any::<bool>());
    (any::<u64>(), result, bytes(64), bytes(64), sizes).prop_map(
        |(job, result, stdout, stderr, (duration_ns, fuel_used, deterministic))| JobDone {
            job,
            result,
            stdout,
            stderr,
            duration_ns,
            fuel_used,
            deterministic,
        },
    )
}

fn to_client() -> impl Strategy<Value = ToClient> {
    let info = (
        (text(), text(), text()),
        (any::<u32>(), text(), any::<u64>()),
        vec(text(), 0..3),
    )
        .prop_map(
            |((id, arch, os), (workers, version, max_module_size), pulls_from)| NodeInfo {
                id,
                arch,
                os,
                workers,
                version,
                max_module_size,
                pulls_from,
            },
        );
    prop_oneof![
        info.prop_map(ToClient::Welcome),
        any::<[u8; 32]>().prop_map(|hash| ToClient::NeedModule { hash }),
        any::<[u8; 32]>().prop_map(|hash| ToClient::NeedData { hash }),
        job_done().prop_map(ToClient::Done),
        vec(any::<u64>(), 0..8).prop_map(|jobs| ToClient::Returned { jobs }),
        Just(ToClient::Draining),
        any::<u32>().prop_map(|workers| ToClient::Workers { workers }),
    ]
}

// ---- codec helpers ----

/// The frames of `messages`, one after the other.
fn stream_of<M: Serialize>(messages: &[M], max: usize) -> BytesMut {
    let mut out = BytesMut::new();
    for message in messages {
        encode(message, max, &mut out).unwrap();
    }
    out
}

/// Feeds `stream` to a decoder in chunks of the sizes given (in turn), decoding all it can
/// after each; the stream must end cleanly.
fn decode_chunked<M: DeserializeOwned>(stream: &[u8], max: usize, sizes: &[usize]) -> Vec<M> {
    let mut decoder = FrameDecoder::new(max);
    let mut messages = Vec::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        decoder.extend(chunk);
        while let Some(message) = decoder.decode().unwrap() {
            messages.push(message);
        }
    }
    decoder.finish().unwrap();
    assert_eq!(decoder.buffered(), 0);
    messages
}

/// A frame with this body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

fn round_trip<M>(messages: Vec<M>, max: usize, sizes: &[usize])
where
    M: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let stream = stream_of(&messages, max);
    assert_eq!(
        decode_chunked::<M>(&stream, max, &[stream.len().max(1)]),
        messages
    );
    assert_eq!(decode_chunked::<M>(&stream, max, sizes), messages);
}

proptest! {
    #[test]
    fn to_node_frames_round_trip_in_any_chunking(
        messages in vec(to_node(), 0..8),
        sizes in vec(1..64usize, 1..8),
    ) {
        round_trip(messages, MAX_MODULE_FRAME_LEN, &sizes);
    }

    #[test]
    fn to_client_frames_round_trip_in_any_chunking(
        messages in vec(to_client(), 0..8),
        sizes in vec(1..64usize, 1..8),
    ) {
        round_trip(messages, MAX_FRAME_LEN, &sizes);
    }

    #[test]
    fn a_frame_body_is_compact_messagepack(message in to_client()) {
        let mut out = BytesMut::new();
        encode(&message, MAX_FRAME_LEN, &mut out).unwrap();
        let body = rmp_serde::to_vec(&message).unwrap();
        prop_assert_eq!(&out[..FRAME_HEADER_LEN], &frame(&body)[..FRAME_HEADER_LEN]);
        prop_assert_eq!(&out[FRAME_HEADER_LEN..], &body[..]);
    }

    #[test]
    fn fuzz_decode_never_panics_on_arbitrary_bytes(data in bytes(512)) {
        fuzz_decode(&data);
    }

    #[test]
    fn fuzz_decode_never_panics_on_corrupted_frames(
        to_node in vec(to_node(), 1..4),
        to_client in vec(to_client(), 1..4),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for mut stream in [
            stream_of(&to_node, MAX_FRAME_LEN).to_vec(),
            stream_of(&to_client, MAX_FRAME_LEN).to_vec(),
        ] {
            fuzz_decode(&stream);
            for (at, byte) in &flips {
                let at = at.index(stream.len());
                stream[at] = *byte;
            }
            fuzz_decode(&stream);
            stream.truncate(cut.index(stream.len()));
            fuzz_decode(&stream);
        }
    }

    #[test]
    fn value_len_measures_any_messagepack_value(
        value in (
            text(),
            bytes(300),
            vec(any::<i64>(), 0..20),
            any::<(u8, u16, u32, u64, i8, i16, i32, f32, f64)>(),
            any::<Option<bool>>(),
            prop::collection::btree_map(any::<u8>(), text(), 0..20),
        ),
        garbage in bytes(8),
    ) {
        let mut encoded = rmp_serde::to_vec(&value).unwrap();
        let len = encoded.len();
        prop_assert_eq!(value_len(&encoded), Some(len));
        encoded.extend_from_slice(&garbage);
        prop_assert_eq!(value_len(&encoded), Some(len));
        prop_assert_eq!(value_len(&encoded[..len - 1]), None);
    }

    #[test]
    fn references_are_found_in_any_value_and_nothing_else_is(
        before in vec(any::<i64>(), 0..8),
        hash in any::<[u8; 32]>(),
        len in any::<u64>(),
        ids in any::<(u64, u64)>(),
        garbage in bytes(64),
    ) {
        // [before..., {"data": <ref>, "jobs": [<ref>]}]
        let mut args = rmp_serde::to_vec(&before).unwrap();
        args[0] += 1; // one more element (a fixarray of at most 8): the map below
        args.extend_from_slice(&[0x82, 0xa4]);
        args.extend_from_slice(b"data");
        args.extend_from_slice(&refs::data_ref(&hash, len));
        args.extend_from_slice(&[0xa4]);
        args.extend_from_slice(b"jobs");
        args.push(0x91);
        args.extend_from_slice(&refs::job_ref(ids.0, ids.1));
        let found = refs::find(&args).unwrap();
        prop_assert_eq!(found.len(), 2);
        prop_assert_eq!(found[0].what, refs::Ref::Data { hash, len });
        prop_assert_eq!(found[1].what, refs::Ref::Job { server: ids.0, job: ids.1 });
        prop_assert_eq!(value_len(&args), Some(args.len()));
        // Whatever the bytes, the walk ends without a panic.
        let _ = refs::find(&garbage);
    }
}

#[test]
fn value_len_measures_long_and_ext_values() {
    let long = (
        "s".repeat(70_000),
        ByteBuf::from(vec![1; 70_000]),
        vec![(); 70_000],
        (0..70_000u32).map(|n| (n, ())).collect::<BTreeMap<_, _>>(),
    );
    let encoded = rmp_serde::to_vec(&long).unwrap();
    assert_eq!(value_len(&encoded), Some(encoded.len()));
    // fixext 1, ext 8 with 2 bytes, fixext 16, then the never-used marker
    assert_eq!(value_len(&[0xd4, 1, 2, 9]), Some(3));
    assert_eq!(value_len(&[0xc7, 2, 5, 1, 2, 9]), Some(5));
    assert_eq!(
        value_len(&[[0xd8, 1].as_slice(), &[0; 16]].concat()),
        Some(18)
    );
    assert_eq!(value_len(&[0xc1]), None);
    // An array that claims more elements than there are bytes.
    assert_eq!(value_len(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0]), None);
}

#[test]
fn a_deeply_nested_body_is_refused_without_recursing() {
    // 100 000 nested one-element arrays: measured iteratively, refused by the depth limit.
    let mut body = vec![0x91; 100_000];
    body.push(0);
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    decoder.extend(&frame(&body));
    assert!(matches!(
        decoder.decode::<ToClient>(),
        Err(ProtoError::Malformed(_))
    ));
}

#[test]
fn an_oversized_header_is_refused_before_any_body() {
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    // The header arrives in two pieces, with the start of a "4 GiB" body.
    decoder.extend(&[0xff, 0xff]);
    assert!(matches!(decoder.decode::<ToNode>(), Ok(None)));
    decoder.extend(&[0xff, 0xff, 1, 2, 3, 4]);
    assert_eq!(decoder.buffered(), 0, "nothing of the body is kept");
    let too_large = ProtoError::TooLarge {
        len: u32::MAX as usize,
        max: MAX_FRAME_LEN,
    };
    assert_eq!(decoder.decode::<ToNode>().unwrap_err(), too_large);
    assert_eq!(
        too_large.to_string(),
        format!("frame of 4294967295 bytes exceeds the maximum of {MAX_FRAME_LEN}")
    );

    // One byte over the maximum, in a single chunk.
    let mut decoder = FrameDecoder::new(16);
    decoder.extend(&frame(&[0xc0; 17]));
    assert_eq!(decoder.buffered(), 0);
    assert!(matches!(
        decoder.decode::<ToNode>(),
        Err(ProtoError::TooLarge { len: 17, max: 16 })
    ));
}

#[test]
fn encode_refuses_an_oversized_message_and_leaves_the_buffer_as_it_was() {
    let module = ToNode::Module {
        hash: [1; 32],
        bytes: vec![7; 1000],
    };
    let mut out = BytesMut::new();
    out.put_slice(b"earlier frames");
    let err = encode(&module, 999, &mut out).unwrap_err();
    assert!(
        matches!(err, ProtoError::TooLarge { len, max: 999 } if len > 1000),
        "{err:?}"
    );
    assert_eq!(&out[..], b"earlier frames");
    // The same message fits a larger maximum, after what was there.
    encode(&module, MAX_MODULE_FRAME_LEN, &mut out).unwrap();
    let mut decoder = FrameDecoder::new(MAX_MODULE_FRAME_LEN);
    decoder.extend(&out[b"earlier frames".len()..]);
    assert_eq!(decoder.decode::<ToNode>().unwrap(), Some(module));
}

#[test]
fn a_stream_that_ends_inside_a_frame_is_truncated() {
    let stream = stream_of(
        &[ToClient::Draining, ToClient::Workers { workers: 3 }],
        MAX_FRAME_LEN,
    );
    let first = 4 + rmp_serde::to_vec(&ToClient::Draining).unwrap().len();
    // Inside the second frame's header, at its end, inside its body.
    for cut in [first + 1, first + FRAME_HEADER_LEN, stream.len() - 1] {
        let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
        decoder.extend(&stream[..cut]);
        assert_eq!(decoder.decode::<ToClient>(), Ok(Some(ToClient::Draining)));
        assert_eq!(decoder.decode::<ToClient>(), Ok(None));
        let buffered = decoder.buffered();
        assert!(buffered > 0);
        assert_eq!(decoder.finish(), Err(ProtoError::Truncated { buffered }));
    }
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    decoder.extend(&stream);
    while decoder.decode::<ToClient>().unwrap().is_some() {}
    assert_eq!(decoder.finish(), Ok(()));
}

#[test]
fn trailing_bytes_in_a_body_are_malformed() {
    let mut body = rmp_serde::to_vec(&ToClient::Workers { workers: 2 }).unwrap();
    body.push(0xc0);
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    decoder.extend(&frame(&body));
    let err = decoder.decode::<ToClient>().unwrap_err();
    assert_eq!(
        err,
        ProtoError::Malformed("1 trailing byte(s) after the message".to_owned())
    );
}

#[test]
fn errors_are_sticky() {
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    // A whole frame of the other direction's message.
    decoder.extend(&stream_of(&[ToClient::Draining], MAX_FRAME_LEN));
    let err = decoder.decode::<ToNode>().unwrap_err();
    assert!(matches!(err, ProtoError::Malformed(_)), "{err:?}");
    assert_eq!(decoder.buffered(), 0);
    // Good frames after it change nothing: the stream's framing is lost.
    let run = ToNode::Module {
        hash: [0; 32],
        bytes: vec![],
    };
    decoder.extend(&stream_of(&[run], MAX_FRAME_LEN));
    assert_eq!(decoder.buffered(), 0);
    assert_eq!(decoder.decode::<ToNode>(), Err(err.clone()));
    assert_eq!(decoder.finish(), Err(err));
}

#[test]
fn a_body_that_is_not_messagepack_is_malformed() {
    for body in [&[][..], &[0xc1], &[0x92, 0x01]] {
        let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
        decoder.extend(&frame(body));
        assert!(matches!(
            decoder.decode::<ToClient>(),
            Err(ProtoError::Malformed(_))
        ));
    }
}

// ---- handshake ----

const BINDING: &[u8] = b"keying material of one TLS session";

fn secret(byte: u8) -> ClusterSecret {
    ClusterSecret::from_bytes([byte; 32])
}

fn all_statuses() -> [Status; 7] {
    [
        Status::Proof,
        Status::NoProof,
        Status::Accepted,
        Status::AcceptedInsecure,
        Status::BadProof,
        Status::ProofRequired,
        Status::VersionMismatch,
    ]
}

#[test]
fn hellos_round_trip_for_every_status() {
    for status in all_statuses() {
        let hello = Hello {
            version: 0xbeef,
            status,
            proof: status.has_proof().then_some([9; 32]),
        };
        let bytes = hello.encode();
        assert_eq!(bytes.len(), HELLO_LEN);
        assert_eq!(Hello::parse(&bytes).unwrap(), hello, "{status:?}");
    }
}

#[test]
fn the_hello_layout_is_frozen() {
    let hello = Hello {
        version: 0x0102,
        status: Status::Proof,
        proof: Some([0xaa; 32]),
    };
    let mut expected = b"WASP\x01\x02\x01".to_vec();
    expected.extend_from_slice(&[0xaa; 32]);
    assert_eq!(hello.encode().to_vec(), expected);
    assert_eq!(&hello.encode()[..4], &MAGIC);
    // Statuses without a proof send zeros.
    let refused = Hello {
        version: 1,
        status: Status::BadProof,
        proof: None,
    };
    assert_eq!(refused.encode()[6], 4);
    assert_eq!(refused.encode()[7..], [0; 32]);
}

#[test]
fn a_hello_without_the_magic_is_shown_in_hex() {
    let mut bytes = [0; HELLO_LEN];
    bytes[..8].copy_from_slice(b"GET / HT");
    let err = Hello::parse(&bytes).unwrap_err();
    assert!(matches!(err, HandshakeParseError::BadMagic { .. }));
    assert!(err.to_string().contains("474554202f204854"), "{err}");
}

#[test]
fn an_unknown_status_is_refused_unless_the_version_differs() {
    let mut bytes = client_hello(None, BINDING).encode();
    bytes[6] = 0x42;
    assert_eq!(
        Hello::parse(&bytes).unwrap_err(),
        HandshakeParseError::UnknownStatus(0x42)
    );
    // From a peer of another version, the version is what matters.
    bytes[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_be_bytes());
    let hello = Hello::parse(&bytes).unwrap();
    assert_eq!(hello.status, Status::VersionMismatch);
    assert_eq!(
        check_node_hello(&hello, None, BINDING),
        Err(Refusal::Version {
            ours: PROTOCOL_VERSION,
            theirs: PROTOCOL_VERSION + 1
        })
    );
}

/// A whole handshake through the wire format: the node's verdict and the client's.
fn handshake(
    client: Option<&ClusterSecret>,
    node: Option<&ClusterSecret>,
) -> (Result<(), Refusal>, Result<(), Refusal>) {
    let hello = Hello::parse(&client_hello(client, BINDING).encode()).unwrap();
    let (answer, node_side) = node_verdict(&hello, node, BINDING);
    let answer = Hello::parse(&answer.encode()).unwrap();
    (node_side, check_node_hello(&answer, client, BINDING))
}

#[test]
fn the_same_secret_on_both_sides_is_accepted() {
    let (node, client) = handshake(Some(&secret(1)), Some(&secret(1)));
    assert_eq!((node, client), (Ok(()), Ok(())));
}

#[test]
fn a_wrong_secret_is_refused_on_both_sides() {
    let (node, client) = handshake(Some(&secret(1)), Some(&secret(2)));
    assert_eq!(node, Err(Refusal::BadProof));
    assert_eq!(client, Err(Refusal::RefusedWrongSecret));
    let (answer, _) = node_verdict(
        &client_hello(Some(&secret(1)), BINDING),
        Some(&secret(2)),
        BINDING,
    );
    assert_eq!(answer.proof, None, "a refused client gets no proof");
}

#[test]
fn a_client_without_a_secret_is_refused_by_a_node_with_one() {
    let (node, client) = handshake(None, Some(&secret(1)));
    assert_eq!(node, Err(Refusal::ProofRequired));
    assert_eq!(client, Err(Refusal::ProofRequired));
    assert!(client.unwrap_err().to_string().contains("--secret-file"));
}

#[test]
fn insecure_clients_and_nodes_accept_each_other() {
    assert_eq!(handshake(None, None), (Ok(()), Ok(())));
}

#[test]
fn a_client_with_a_secret_refuses_an_insecure_node() {
    assert_eq!(
        handshake(Some(&secret(1)), None),
        (Ok(()), Err(Refusal::NodeInsecure))
    );
}

#[test]
fn versions_are_checked_first_on_both_sides() {
    let mut hello = client_hello(Some(&secret(1)), BINDING);
    hello.version = PROTOCOL_VERSION + 1;
    let (answer, verdict) = node_verdict(&hello, Some(&secret(1)), BINDING);
    let mismatch = Refusal::Version {
        ours: PROTOCOL_VERSION,
        theirs: PROTOCOL_VERSION + 1,
    };
    assert_eq!(verdict, Err(mismatch.clone()));
    assert_eq!(answer.status, Status::VersionMismatch);
    assert_eq!(answer.version, PROTOCOL_VERSION);
    assert_eq!(
        mismatch.to_string(),
        format!(
            "protocol version mismatch: this side speaks v{PROTOCOL_VERSION}, the peer v{}",
            PROTOCOL_VERSION + 1
        )
    );

    // The client, talking to a node of another version, whatever that node says.
    let mut answer = Hello::parse(&answer.encode()).unwrap();
    answer.version = PROTOCOL_VERSION + 1;
    assert_eq!(
        check_node_hello(&answer, Some(&secret(1)), BINDING),
        Err(mismatch.clone())
    );
    answer.status = Status::Accepted;
    answer.proof = Some(secret(1).proof(Role::Node, BINDING).to_bytes());
    assert_eq!(
        check_node_hello(&answer, Some(&secret(1)), BINDING),
        Err(mismatch)
    );
}

#[test]
fn a_reflected_client_proof_does_not_prove_the_node() {
    let client = client_hello(Some(&secret(1)), BINDING);
    let impostor = Hello {
        status: Status::Accepted,
        ..client
    };
    assert_eq!(
        check_node_hello(&impostor, Some(&secret(1)), BINDING),
        Err(Refusal::NodeUnproven)
    );
}

#[test]
fn proofs_bound_to_another_session_fail() {
    // The node's proof from another session (a relay between two sessions).
    let client = client_hello(Some(&secret(1)), b"other session");
    let (answer, verdict) = node_verdict(&client, Some(&secret(1)), b"other session");
    assert_eq!(verdict, Ok(()));
    assert_eq!(
        check_node_hello(&answer, Some(&secret(1)), BINDING),
        Err(Refusal::NodeUnproven)
    );
    // The client's proof replayed on another session.
    let (_, verdict) = node_verdict(&client, Some(&secret(1)), BINDING);
    assert_eq!(verdict, Err(Refusal::BadProof));
}

#[test]
fn hellos_in_the_wrong_direction_are_unexpected() {
    for status in [
        Status::Accepted,
        Status::AcceptedInsecure,
        Status::BadProof,
        Status::ProofRequired,
    ] {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            status,
            proof: status.has_proof().then_some([0; 32]),
        };
        let (answer, verdict) = node_verdict(&hello, Some(&secret(1)), BINDING);
        assert!(matches!(verdict, Err(Refusal::Unexpected(_))), "{status:?}");
        assert_ne!(answer.status, Status::Accepted);
    }
    for status in [Status::Proof, Status::NoProof] {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            status,
            proof: status.has_proof().then_some([0; 32]),
        };
        let verdict = check_node_hello(&hello, None, BINDING);
        assert!(matches!(verdict, Err(Refusal::Unexpected(_))), "{status:?}");
    }
}

#[test]
fn refusals_close_with_their_codes() {
    let cases = [
        (Refusal::Version { ours: 1, theirs: 2 }, CloseCode::Version),
        (Refusal::BadProof, CloseCode::Auth),
        (Refusal::ProofRequired, CloseCode::Auth),
        (Refusal::RefusedWrongSecret, CloseCode::Auth),
        (Refusal::NodeUnproven, CloseCode::Auth),
        (Refusal::NodeInsecure, CloseCode::Auth),
        (Refusal::Unexpected("?".to_owned()), CloseCode::Protocol),
    ];
    for (refusal, code) in cases {
        assert_eq!(refusal.close_code(), code, "{refusal:?}");
    }
}

proptest! {
    #[test]
    fn hello_parse_never_panics(mut bytes in any::<[u8; HELLO_LEN]>(), magic in any::<bool>()) {
        if magic {
            bytes[..4].copy_from_slice(&MAGIC);
        }
        if let Ok(hello) = Hello::parse(&bytes) {
            prop_assert_eq!(Hello::parse(&hello.encode()).unwrap(), hello);
        }
    }
}

/// A module frame written as a head and the module's bytes is the frame `encode` makes,
/// for module sizes around each MessagePack bin width.
#[test]
fn a_module_frame_head_and_its_bytes_are_the_encoded_frame() {
    for len in [0, 1, 255, 256, 65_535, 65_536, 70_000] {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let hash = [7; 32];
        let mut expected = BytesMut::new();
        let message = ToNode::Module {
            hash,
            bytes: bytes.clone(),
        };
        encode(&message, MAX_MODULE_FRAME_LEN, &mut expected).unwrap();
        let mut head = module_frame_head(&hash, len, MAX_MODULE_FRAME_LEN).unwrap();
        head.extend_from_slice(&bytes);
        assert_eq!(head, expected, "module of {len} bytes");
    }
    assert!(matches!(
        module_frame_head(&[0; 32], 100, 50),
        Err(ProtoError::TooLarge { .. })
    ));
}
