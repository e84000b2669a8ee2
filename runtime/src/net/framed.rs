//! Frames ([`wasp_proto::codec`]) over quinn streams.
//!
//! The codec is pure; this is the only place that feeds it from a stream, so a peer's bytes
//! reach a message only through [`FrameDecoder`] and its size limit.

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use wasp_proto::codec::{FrameDecoder, ProtoError};

/// Why frames could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The bytes are not a valid frame (too large, malformed, cut off by the end of the
    /// stream).
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The stream could not be read (reset by the peer, connection lost).
    #[error("could not read from the peer: {0}")]
    Read(#[from] quinn::ReadError),
    /// The stream could not be written (stopped by the peer, connection lost).
    #[error("could not write to the peer: {0}")]
    Write(#[from] quinn::WriteError),
    /// A one-frame stream ended before its frame.
    #[error("the stream ended without a frame")]
    Empty,
    /// A one-frame stream went on after its frame.
    #[error("the stream holds more than one frame")]
    Trailing,
}

/// The receiving half of a stream of frames.
#[derive(Debug)]
pub(crate) struct FramedRecv {
    /// The stream.
    recv: quinn::RecvStream,
    /// What has been read but not decoded yet.
    decoder: FrameDecoder,
}

impl FramedRecv {
    /// Frames of at most `max` bytes from `recv`.
    pub(crate) fn new(recv: quinn::RecvStream, max: usize) -> Self {
        FramedRecv {
            recv,
            decoder: FrameDecoder::new(max),
        }
    }

    /// The next message, or `None` once the peer has finished the stream.
    ///
    /// Cancel safe: a chunk read is in the decoder before the next `.await`.
    ///
    /// # Errors
    /// [`FrameError::Proto`] for a frame too large or malformed, or cut off by the end of
    /// the stream; [`FrameError::Read`] if the stream fails.
    pub(crate) async fn next<M: DeserializeOwned>(&mut self) -> Result<Option<M>, FrameError> {
        loop {
            if let Some(message) = self.decoder.decode()? {
                return Ok(Some(message));
            }
            // Unordered reads are no faster here, and the decoder needs the bytes in order.
            match self.recv.read_chunk(usize::MAX, true).await? {
                Some(chunk) => self.decoder.extend(&chunk.bytes),
                None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
            }
        }
    }
}

/// Writes `buf` (encoded frames) to `send` and leaves it empty, ready for the next frames.
/// The bytes are handed to quinn without a copy.
///
/// # Errors
/// [`FrameError::Write`] if the stream fails.
pub(crate) async fn write_all(
    send: &mut quinn::SendStream,
    buf: &mut BytesMut,
) -> Result<(), FrameError> {
    if buf.is_empty() {
        return Ok(());
    }
    send.write_chunk(buf.split().freeze()).await?;
    Ok(())
}

/// Reads the one frame of a stream that carries exactly one (a module), of at most `max`
/// bytes; the sender finishes the stream after it.
///
/// # Errors
/// [`FrameError::Empty`] or [`FrameError::Trailing`] if the stream does not hold exactly one
/// frame, or any error of [`FramedRecv::next`].
pub(crate) async fn read_one<M: DeserializeOwned>(
    recv: quinn::RecvStream,
    max: usize,
) -> Result<M, FrameError> {
    let mut frames = FramedRecv::new(recv, max);
    let message = frames.next::<M>().await?.ok_or(FrameError::Empty)?;
    // Whatever follows must be nothing: a second frame, or part of one, is an error.
    if frames.decoder.buffered() > 0 {
        return Err(FrameError::Trailing);
    }
    match frames.recv.read_chunk(usize::MAX, true).await? {
        None => Ok(message),
        Some(_) => Err(FrameError::Trailing),
    }
}
