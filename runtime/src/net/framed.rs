//! Frames ([`wasp_proto::codec`]) over quinn streams.
//!
//! The codec is pure; this is the only place that feeds it from a stream, so a peer's bytes
//! reach a message only through [`FrameDecoder`] and its size limit.

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use wasp_proto::codec::{FRAME_HEADER_LEN, FrameDecoder, ProtoError};

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
    #[error("the stream holds more than one frame, or more than its frame says")]
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

/// Reads the frame at the start of `recv`, of at most `max` bytes, and nothing after it:
/// what follows on the stream (a value's raw bytes) is the caller's.
///
/// # Errors
/// [`FrameError::Empty`] if the stream ends before the frame, [`FrameError::Proto`] for a
/// frame too large (from its header), cut off or malformed, [`FrameError::Read`] if the
/// stream fails.
pub(crate) async fn read_head<M: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<M, FrameError> {
    let mut header = [0; FRAME_HEADER_LEN];
    let read = |error| match error {
        quinn::ReadExactError::FinishedEarly(0) => FrameError::Empty,
        quinn::ReadExactError::FinishedEarly(buffered) => {
            FrameError::Proto(ProtoError::Truncated { buffered })
        }
        quinn::ReadExactError::ReadError(error) => FrameError::Read(error),
    };
    recv.read_exact(&mut header).await.map_err(read)?;
    let len = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if len > max {
        return Err(ProtoError::TooLarge { len, max }.into());
    }
    let mut decoder = FrameDecoder::new(max);
    decoder.extend(&header);
    let mut body = vec![0; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|error| match read(error) {
            FrameError::Empty => FrameError::Proto(ProtoError::Truncated { buffered: 4 }),
            FrameError::Proto(ProtoError::Truncated { buffered }) => {
                FrameError::Proto(ProtoError::Truncated {
                    buffered: buffered + FRAME_HEADER_LEN,
                })
            }
            other => other,
        })?;
    decoder.extend(&body);
    decoder.decode()?.ok_or(FrameError::Empty)
}

/// Checks that `recv` ends here.
///
/// # Errors
/// [`FrameError::Trailing`] if it goes on, [`FrameError::Read`] if it fails.
pub(crate) async fn read_end(recv: &mut quinn::RecvStream) -> Result<(), FrameError> {
    match recv.read_chunk(1, true).await? {
        None => Ok(()),
        Some(_) => Err(FrameError::Trailing),
    }
}

/// Reads the one frame of a stream that carries exactly one (a module), of at most `max`
/// bytes; the sender finishes the stream after it.
///
/// # Errors
/// [`FrameError::Empty`] or [`FrameError::Trailing`] if the stream does not hold exactly one
/// frame, or any error of [`read_head`].
#[cfg(test)]
pub(crate) async fn read_one<M: DeserializeOwned>(
    mut recv: quinn::RecvStream,
    max: usize,
) -> Result<M, FrameError> {
    let message = read_head(&mut recv, max).await?;
    read_end(&mut recv).await?;
    Ok(message)
}
