//! Which pages of a memory hold copies of their own: found by `PAGEMAP_SCAN`, or, when the
//! thread that resets the memory took no page fault since the last reset, remembered from
//! the last scan (see `faults`: no page became a copy meanwhile).
//!
//! The fault count is an argument about the kernel, so it is checked: every
//! [`CHECK_EVERY`]th reset that could skip the scan scans anyway, and if the scan finds a
//! copy the last one did not, this memory never skips again and the finding is logged.

use super::{faults, pagemap};
use std::io;
use std::ops::Range;
use std::thread::ThreadId;
use tracing::warn;

/// One reset in this many that could skip the scan scans, to check the fault count.
pub(crate) const CHECK_EVERY: u32 = 64;

/// How a reset knew the copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A scan found them (the first reset, or after a fault).
    Scanned,
    /// They are the last scan's: no fault since.
    Remembered,
    /// A scan found them where the last scan's would have done, and agreed with it.
    Checked,
    /// A scan found them where the last scan's would have done, and found more: the fault
    /// count missed a copy, and this memory will scan at every reset from now on.
    Stale,
}

/// The thread that last reset a memory, in which process, and its fault count then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quiet {
    process: u32,
    thread: ThreadId,
    faults: u64,
}

impl Quiet {
    /// The calling thread now, if its faults are counted.
    fn now() -> Option<Quiet> {
        Some(Quiet {
            process: std::process::id(),
            thread: std::thread::current().id(),
            faults: faults::this_thread()?,
        })
    }
}

/// The copies of one memory, as the last reset knew them.
#[derive(Debug)]
pub(crate) struct Copies {
    /// Runs of pages, as offsets into the memory.
    runs: Vec<Range<usize>>,
    /// When the last reset ended, if its thread's faults are counted.
    quiet_since: Option<Quiet>,
    /// Resets that skipped the scan since one scanned.
    skipped: u32,
    /// Whether the fault count may be trusted for this memory.
    trusted: bool,
}

impl Copies {
    /// Nothing known yet: the first reset scans.
    pub(crate) fn new() -> Self {
        Copies {
            runs: Vec::new(),
            quiet_since: None,
            skipped: 0,
            trusted: true,
        }
    }

    /// The runs of pages that hold copies, as offsets.
    pub(crate) fn runs(&self) -> &[Range<usize>] {
        &self.runs
    }

    /// Finds the copies in the `length` bytes at address `start` (a page-aligned range of
    /// this process).
    pub(crate) fn find(&mut self, start: usize, length: usize) -> io::Result<Found> {
        let quiet = self.trusted && self.quiet_since.is_some() && self.quiet_since == Quiet::now();
        self.quiet_since = None;
        if quiet && self.skipped + 1 < CHECK_EVERY {
            self.skipped += 1;
            return Ok(Found::Remembered);
        }
        let remembered = std::mem::take(&mut self.runs);
        self.skipped = 0;
        pagemap::written(start..start + length, |run| {
            self.runs.push(run.start - start..run.end - start);
        })?;
        if !quiet {
            return Ok(Found::Scanned);
        }
        if covered(&self.runs, &remembered) {
            return Ok(Found::Checked);
        }
        self.trusted = false;
        warn!(
            "a page became a copy without a page fault on the thread that resets its memory: \
             this memory's resets scan from now on"
        );
        Ok(Found::Stale)
    }

    /// Forgets the copies (they were dropped: the pages read the file again).
    pub(crate) fn forget(&mut self) {
        self.runs.clear();
    }

    /// Notes that the reset ended now, on this thread (after its own copying, which may
    /// fault too).
    pub(crate) fn quiet_from_now(&mut self) {
        self.quiet_since = Quiet::now();
    }
}

/// Whether every byte of `inner` lies in `outer` (both sorted, not overlapping).
fn covered(inner: &[Range<usize>], outer: &[Range<usize>]) -> bool {
    let mut outer = outer.iter().peekable();
    for run in inner {
        let mut from = run.start;
        while from < run.end {
            while outer.next_if(|o| o.end <= from).is_some() {}
            match outer.peek() {
                Some(o) if o.start <= from => from = o.end,
                _ => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init, reason = "lists of one run")]
    fn coverage_spans_adjacent_runs_and_finds_gaps() {
        assert!(covered(&[], &[]));
        assert!(covered(&[2..4], &[0..8]));
        assert!(covered(&[0..4, 6..8], &[0..5, 5..8]));
        assert!(covered(&[0..8], &[0..5, 5..8]));
        assert!(!covered(&[0..8], &[0..5, 6..8]));
        assert!(!covered(&[9..10], &[0..8]));
        assert!(!covered(&[0..1], &[]));
        assert!(covered(&[], &[0..1]));
    }
}
