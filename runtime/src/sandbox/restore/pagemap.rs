//! Linux's `PAGEMAP_SCAN` ioctl (6.7 and later): the pages of a private file mapping that a
//! guest wrote since they were last dropped are the ones no longer backed by the file.

use rustix::ioctl::{Ioctl, IoctlOutput, Opcode, opcode};
use std::cell::RefCell;
use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::OnceLock;

/// `PAGE_IS_FILE`, `PAGE_IS_PRESENT`, `PAGE_IS_SWAPPED`, `PAGE_IS_PFNZERO`
/// (`linux/fs.h`).
const PAGE_IS_FILE: u64 = 1 << 2;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
const PAGE_IS_PFNZERO: u64 = 1 << 5;

/// How many runs of written pages one ioctl reports; a scan that finds more goes on from
/// where the kernel stopped.
const RUNS_PER_CALL: usize = 256;

/// `struct pm_scan_arg` (`linux/fs.h`).
#[repr(C)]
#[derive(Debug, Default)]
struct ScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// `struct page_region` (`linux/fs.h`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct PageRun {
    start: u64,
    end: u64,
    categories: u64,
}

// SAFETY: `PAGEMAP_SCAN` is `_IOWR('f', 16, struct pm_scan_arg)`; `as_ptr` points at a
// `ScanArg` laid out as that struct, which the kernel reads and updates (`walk_end`), and
// whose `vec` points at `vec_len` writable `PageRun`s that outlive the call.
#[allow(unsafe_code, reason = "an ioctl rustix does not wrap")]
unsafe impl Ioctl for &mut ScanArg {
    type Output = usize;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        opcode::read_write::<ScanArg>(b'f', 16)
    }

    fn as_ptr(&mut self) -> *mut c_void {
        std::ptr::from_mut::<ScanArg>(*self).cast()
    }

    #[allow(unsafe_code, reason = "part of the Ioctl trait")]
    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut c_void,
    ) -> rustix::io::Result<Self::Output> {
        // The ioctl returns how many runs it wrote.
        Ok(usize::try_from(out).unwrap_or(0))
    }
}

thread_local! {
    /// This thread's handle on `/proc/self/pagemap`, and the process it was opened in (a
    /// forked child must not read its parent's page tables).
    static PAGEMAP: RefCell<Option<(u32, File)>> = const { RefCell::new(None) };
}

/// Whether this kernel answers `PAGEMAP_SCAN` (not before Linux 6.7, nor under qemu-user).
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        // Any mapped page will do: this thread's stack.
        let probe = 0u8;
        let start = std::ptr::from_ref(&probe) as usize;
        let page = rustix::param::page_size();
        let start = start - start % page;
        written(start..start + page, |_| {}).is_ok()
    })
}

/// Calls `each` with every run of pages in `range` (page-aligned addresses in this process)
/// that holds memory of its own: written since the mapping was made or since the pages
/// were dropped, rather than backed by the mapped file or the zero page. A swapped-out
/// page counts as written.
pub(crate) fn written(range: Range<usize>, mut each: impl FnMut(Range<usize>)) -> io::Result<()> {
    let mut runs = [PageRun::default(); RUNS_PER_CALL];
    let mut start = range.start;
    while start < range.end {
        let mut arg = ScanArg {
            size: size_of::<ScanArg>() as u64,
            start: start as u64,
            end: range.end as u64,
            vec: runs.as_mut_ptr() as u64,
            vec_len: RUNS_PER_CALL as u64,
            // Not backed by the file nor the zero page, and present or swapped out.
            category_inverted: PAGE_IS_FILE | PAGE_IS_PFNZERO,
            category_mask: PAGE_IS_FILE | PAGE_IS_PFNZERO,
            category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            ..ScanArg::default()
        };
        let found = with_pagemap(|pagemap| {
            // SAFETY: see the `Ioctl` impl: `arg` describes `runs`, which lives through
            // the call.
            #[allow(unsafe_code, reason = "the PAGEMAP_SCAN ioctl")]
            unsafe { rustix::ioctl::ioctl(pagemap, &mut arg) }.map_err(io::Error::from)
        })?;
        for run in &runs[..found.min(RUNS_PER_CALL)] {
            each(run.start as usize..run.end as usize);
        }
        let walked = arg.walk_end as usize;
        if walked <= start {
            return Err(io::Error::other("PAGEMAP_SCAN made no progress"));
        }
        start = walked;
    }
    Ok(())
}

/// Runs `scan` with this process's `/proc/self/pagemap`, opened once per thread and again
/// after a fork.
fn with_pagemap<T>(scan: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
    let pid = std::process::id();
    PAGEMAP.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(opened_in, _)| *opened_in != pid) {
            *cell = Some((pid, File::open("/proc/self/pagemap")?));
        }
        let (_, pagemap) = cell.as_ref().expect("opened above");
        scan(pagemap)
    })
}
