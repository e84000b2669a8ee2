//! Bounded capture of a job's stdout and stderr.
//!
//! wasmtime-wasi's own `MemoryOutputPipe` fails writes past its capacity with an anonymous
//! error; we need to know *that* the limit was hit to report [`JobError::OutputLimit`], so
//! this is a small pipe of our own that records it.
//!
//! [`JobError::OutputLimit`]: crate::JobError::OutputLimit

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// How much a guest may write in one WASI call before it must ask again.
const WRITE_PERMIT: usize = 64 * 1024;

/// One captured stream: cloned into the WASI context, read back after the job.
#[derive(Clone, Debug)]
pub(crate) struct Capture {
    inner: Arc<Mutex<Buffer>>,
}

#[derive(Debug)]
struct Buffer {
    data: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Self {
        Capture {
            inner: Arc::new(Mutex::new(Buffer {
                data: Vec::new(),
                limit,
                overflowed: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // The buffer stays consistent even if a writer panicked: keep going.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the guest tried to write past the limit.
    pub(crate) fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Takes the captured bytes (at most the limit).
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.lock().data)
    }

    /// Empties the capture for the next job of a kept instance, with that job's limit.
    pub(crate) fn reset(&self, limit: usize) {
        let mut buf = self.lock();
        buf.data.clear();
        buf.limit = limit;
        buf.overflowed = false;
    }

    /// Appends what fits; returns false if anything had to be dropped.
    fn append(&self, bytes: &[u8]) -> bool {
        let mut buf = self.lock();
        let room = buf.limit.saturating_sub(buf.data.len());
        let fits = bytes.len().min(room);
        buf.data.extend_from_slice(&bytes[..fits]);
        if fits < bytes.len() {
            buf.overflowed = true;
        }
        fits == bytes.len()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if self.append(&bytes) {
            Ok(())
        } else {
            // Trapping stops the job at once: a job that floods its output is not left to
            // spin, and the host reports the limit from `overflowed()`.
            Err(StreamError::Trap(wasmtime::format_err!(
                "output limit exceeded"
            )))
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.append(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(std::io::Error::other("output limit exceeded")))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_fits_and_records_the_overflow() {
        let mut capture = Capture::new(5);
        assert!(capture.write(Bytes::from_static(b"abc")).is_ok());
        assert!(!capture.overflowed());
        assert!(capture.write(Bytes::from_static(b"defg")).is_err());
        assert!(capture.overflowed());
        assert_eq!(capture.take(), b"abcde");
    }
}
