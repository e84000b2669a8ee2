//! Length-prefixed MessagePack frames, and an incremental decoder for them.
//!
//! A frame is a 4-byte big-endian body length followed by the body: one message in
//! `rmp_serde`'s compact form (structs as arrays, enum variants by name). Compact because a
//! client sends tens of thousands of job frames a second, and field names would about double
//! their size.
//!
//! The decoder is sans-IO: a driver [`extend`](FrameDecoder::extend)s it with what a stream
//! yields and takes whole messages out with [`decode`](FrameDecoder::decode). A frame's
//! length is checked before its body is buffered, so a hostile peer cannot make the other
//! side hold more than one maximum-size frame.

use super::message::ToNode;
use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::io;

/// The length of a frame's header: the body's length as a big-endian `u32`.
pub const FRAME_HEADER_LEN: usize = 4;

/// The largest body of a message frame (16 MiB): room for a job's arguments, or its result
/// and captured output, and a bound on what a peer can make the other side buffer.
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// The largest body of a [`ToNode::Module`] frame (256 MiB), which travels on a
/// unidirectional stream of its own.
pub const MAX_MODULE_FRAME_LEN: usize = 256 << 20;

/// The deepest nesting a message body may have. Ours nest a handful of levels; the bound
/// keeps a hostile body (nested in a field serde skips) from recursing deep into the stack.
const MAX_DEPTH: usize = 32;

/// Why a frame could not be encoded or decoded. Any decoding error ends the stream: the
/// connection is to be closed with [`CloseCode::Protocol`](super::CloseCode::Protocol).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// A frame's body is longer than the maximum for its stream.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The body's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame ({buffered} bytes of it received)")]
    Truncated {
        /// The bytes received of the unfinished frame.
        buffered: usize,
    },
    /// A frame's body does not decode as the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message could not be encoded.
    #[error("could not encode a message: {0}")]
    Encode(String),
}

/// Appends one frame (header and MessagePack body of `message`) to `out`.
///
/// The body is written straight into `out` and the header patched in afterwards, so a
/// message is never copied.
///
/// # Errors
/// [`ProtoError::TooLarge`] if the body would exceed `max` bytes, [`ProtoError::Encode`] if
/// the message does not serialize. On error `out` is left as it was.
pub fn encode<M: Serialize>(message: &M, max: usize, out: &mut BytesMut) -> Result<(), ProtoError> {
    let start = out.len();
    out.put_u32(0);
    let mut body = BodyWriter { out, len: 0, max };
    let written = rmp_serde::encode::write(&mut body, message);
    let len = body.len;
    let header = match written {
        Err(err) => Err(ProtoError::Encode(err.to_string())),
        Ok(()) if len > max => Err(ProtoError::TooLarge { len, max }),
        Ok(()) => u32::try_from(len).map_err(|_| ProtoError::TooLarge { len, max }),
    };
    match header {
        Ok(header) => {
            out[start..start + FRAME_HEADER_LEN].copy_from_slice(&header.to_be_bytes());
            Ok(())
        }
        Err(err) => {
            out.truncate(start);
            Err(err)
        }
    }
}

/// The frame of a [`ToNode::Module`] up to its module bytes, which the sender writes right
/// after it, so that a module is never copied into a frame: `head` then the module's
/// `len` bytes are exactly [`encode`]'s frame of `ToNode::Module { hash, bytes }`.
///
/// # Errors
/// [`ProtoError::TooLarge`] if the frame's body would exceed `max` bytes.
pub fn module_frame_head(
    hash: &super::message::WireHash,
    len: usize,
    max: usize,
) -> Result<BytesMut, ProtoError> {
    // The message with no bytes ends in an empty MessagePack bin (0xc4 0x00); the real one
    // ends in the same bin with its length, then the bytes.
    let empty = ToNode::Module {
        hash: *hash,
        bytes: Vec::new(),
    };
    let mut prefix =
        rmp_serde::to_vec(&empty).map_err(|err| ProtoError::Encode(err.to_string()))?;
    debug_assert!(prefix.ends_with(&[0xc4, 0x00]));
    prefix.truncate(prefix.len() - 2);
    let mut head = BytesMut::with_capacity(FRAME_HEADER_LEN + prefix.len() + 5);
    let bin_len = match u8::try_from(len) {
        Ok(_) => 2,
        Err(_) if u16::try_from(len).is_ok() => 3,
        Err(_) => 5,
    };
    let body = prefix.len() + bin_len + len;
    if body > max {
        return Err(ProtoError::TooLarge { len: body, max });
    }
    let body = u32::try_from(body).map_err(|_| ProtoError::TooLarge { len: body, max })?;
    head.put_u32(body);
    head.extend_from_slice(&prefix);
    match (u8::try_from(len), u16::try_from(len)) {
        (Ok(len), _) => head.put_slice(&[0xc4, len]),
        (_, Ok(len)) => {
            head.put_u8(0xc5);
            head.put_u16(len);
        }
        _ => {
            head.put_u8(0xc6);
            head.put_u32(u32::try_from(len).map_err(|_| ProtoError::TooLarge { len, max })?);
        }
    }
    Ok(head)
}

/// Writes a frame's body into the output buffer up to the maximum, and past it only counts:
/// an oversized message (a huge module) costs no memory beyond the maximum before it is
/// refused, and the error can still say how large it was.
struct BodyWriter<'a> {
    out: &'a mut BytesMut,
    len: usize,
    max: usize,
}

impl io::Write for BodyWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.len = self.len.saturating_add(buf.len());
        if self.len <= self.max {
            self.out.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An incremental frame decoder: feed it bytes as they arrive, take whole messages out.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Bytes received and not yet decoded.
    buf: BytesMut,
    /// The largest body accepted.
    max: usize,
    /// The first error, returned again by every later call: after it the framing of the
    /// stream is lost.
    error: Option<ProtoError>,
}

impl FrameDecoder {
    /// A decoder of frames whose bodies are at most `max` bytes long.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            max,
            error: None,
        }
    }

    /// Appends bytes received from the stream. After an error they are dropped.
    pub fn extend(&mut self, mut bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        // Complete the header of the next frame first, so that an oversized frame is
        // refused before any of its body is buffered.
        if self.buf.len() < FRAME_HEADER_LEN {
            let (header, rest) = bytes.split_at(bytes.len().min(FRAME_HEADER_LEN - self.buf.len()));
            self.buf.extend_from_slice(header);
            if self.head_len().is_err() {
                return;
            }
            bytes = rest;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, or `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// [`ProtoError::TooLarge`] as soon as a header announces a body longer than the
    /// maximum (before any of it is buffered), [`ProtoError::Malformed`] if a body is not
    /// exactly one `M`. Errors are sticky: every later call fails too, and the connection is
    /// to be closed.
    pub fn decode<M: DeserializeOwned>(&mut self) -> Result<Option<M>, ProtoError> {
        let Some(len) = self.head_len()? else {
            return Ok(None);
        };
        let end = FRAME_HEADER_LEN.saturating_add(len);
        let Some(body) = self.buf.get(FRAME_HEADER_LEN..end) else {
            return Ok(None);
        };
        match decode_body(body) {
            Ok(message) => {
                self.buf.advance(end);
                Ok(Some(message))
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Checks, at the end of the stream, that it did not end inside a frame. Call it once
    /// [`decode`](Self::decode) has returned `Ok(None)`.
    ///
    /// # Errors
    /// [`ProtoError::Truncated`] if bytes are left over, or the decoder's earlier error.
    pub fn finish(&self) -> Result<(), ProtoError> {
        match &self.error {
            Some(err) => Err(err.clone()),
            None if self.buf.is_empty() => Ok(()),
            None => Err(ProtoError::Truncated {
                buffered: self.buf.len(),
            }),
        }
    }

    /// How many bytes are buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The body length of the frame at the head of the buffer, once its header is in. An
    /// oversized one fails the decoder.
    fn head_len(&mut self) -> Result<Option<usize>, ProtoError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        let Some(header) = self.buf.first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(None);
        };
        let len = usize::try_from(u32::from_be_bytes(*header)).unwrap_or(usize::MAX);
        if len > self.max {
            return Err(self.fail(ProtoError::TooLarge { len, max: self.max }));
        }
        Ok(Some(len))
    }

    /// Makes `error` the decoder's last word, and frees its buffer: nothing more will be
    /// decoded from this stream.
    fn fail(&mut self, error: ProtoError) -> ProtoError {
        self.buf = BytesMut::new();
        self.error = Some(error.clone());
        error
    }
}

/// Decodes a body that must be exactly one `M`, borrowing from it (so bytes fields are
/// copied once, into the message).
fn decode_body<M: DeserializeOwned>(body: &[u8]) -> Result<M, ProtoError> {
    // rmp_serde does not say how much it read, so the value's extent is measured first:
    // bytes after it are a broken peer, not something to skip silently.
    match value_len(body) {
        Some(len) if len == body.len() => {}
        Some(len) => {
            return Err(ProtoError::Malformed(format!(
                "{} trailing byte(s) after the message",
                body.len() - len
            )));
        }
        None => {
            return Err(ProtoError::Malformed(
                "the body is not one whole MessagePack value".to_owned(),
            ));
        }
    }
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(body);
    deserializer.set_max_depth(MAX_DEPTH);
    M::deserialize(&mut deserializer).map_err(|err| ProtoError::Malformed(err.to_string()))
}

/// The length of the MessagePack value at the start of `bytes`, or `None` if they do not
/// begin with a whole, well-formed one. Iterative: a deeply nested value costs no stack, and
/// every step consumes a byte, so the walk is linear in the input.
pub(super) fn value_len(bytes: &[u8]) -> Option<usize> {
    crate::refs::walk(bytes, |_, _, _| Ok(())).ok()
}

#[cfg(any(test, feature = "fuzzing"))]
pub use fuzzing::fuzz_decode;

/// What the fuzz target and the property tests feed the decoders: not part of the API.
#[cfg(any(test, feature = "fuzzing"))]
mod fuzzing {
    use super::*;
    use crate::message::ToClient;

    /// Feeds `data`, as if a hostile peer sent it, to the decoders of each kind of stream
    /// ([`ToNode`] and [`ToClient`] messages, and modules), whole and in several chunkings,
    /// decoding until an error or the end. Used by the fuzz target (`proto/fuzz`, which turns on
    /// the `fuzzing` feature: this is not part of the protocol's API) and by a property test.
    ///
    /// # Panics
    /// Only on a bug in the codec: if the chunkings decode differently, or if a decoded message
    /// does not survive being encoded and decoded again.
    pub fn fuzz_decode(data: &[u8]) {
        fuzz_stream::<ToNode>(data, MAX_FRAME_LEN);
        fuzz_stream::<ToClient>(data, MAX_FRAME_LEN);
        fuzz_stream::<ToNode>(data, MAX_MODULE_FRAME_LEN);
    }

    fn fuzz_stream<M>(data: &[u8], max: usize)
    where
        M: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let (messages, end) = decode_stream::<M>(data, max, data.len().max(1));
        let step = usize::from(data.first().map_or(0, |byte| byte % 16)) + 1;
        for chunk in [1, step] {
            let (chunked, chunked_end) = decode_stream::<M>(data, max, chunk);
            assert_eq!(
                chunked, messages,
                "chunks of {chunk} bytes decode differently"
            );
            assert_eq!(chunked_end, end, "chunks of {chunk} bytes end differently");
        }
        for message in messages {
            let mut frame = BytesMut::new();
            let encoded = encode(&message, usize::MAX, &mut frame);
            assert_eq!(encoded, Ok(()), "a decoded message does not encode");
            let mut decoder = FrameDecoder::new(usize::MAX);
            decoder.extend(&frame);
            assert_eq!(decoder.decode::<M>(), Ok(Some(message)), "no round trip");
        }
    }

    /// Decodes `data` fed in chunks of `chunk` bytes: the messages, and how the stream ended.
    fn decode_stream<M: DeserializeOwned>(
        data: &[u8],
        max: usize,
        chunk: usize,
    ) -> (Vec<M>, Result<(), ProtoError>) {
        let mut decoder = FrameDecoder::new(max);
        let mut messages = Vec::new();
        for piece in data.chunks(chunk) {
            decoder.extend(piece);
            loop {
                match decoder.decode() {
                    Ok(Some(message)) => messages.push(message),
                    Ok(None) => break,
                    Err(err) => return (messages, Err(err)),
                }
            }
        }
        (messages, decoder.finish())
    }
}
