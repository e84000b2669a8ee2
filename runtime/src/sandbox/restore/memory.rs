//! Linear memories the sandbox maps itself, so that a kept instance's memories can be put
//! back to what they held when it was instantiated.
//!
//! A [`Region`] starts as wasmtime asks (an anonymous reservation, its accessible part
//! read-write, a guard after it). Once the instance is made, [`Region::snapshot`] copies the
//! accessible part into a memfd and maps that file over it, privately: the memory reads the
//! same, and a page the guest writes becomes a private copy. [`Region::reset`] finds those
//! copies (`PAGEMAP_SCAN`) and copies the snapshot back over them, so that every page reads
//! the snapshot again. When the thread that resets took no page fault since the last reset,
//! no page became a copy meanwhile (see `faults`), and the copies that scan found are put
//! back without scanning again.

use super::copies::{Copies, Found};
use rustix::mm::{Advice, MapFlags, MprotectFlags, ProtFlags};
use std::cell::RefCell;
use std::io::{self, Write};
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

/// What a memory reserves when wasmtime does not say: all of a 32-bit address space.
const DEFAULT_RESERVATION: usize = 4 << 30;

/// How many bytes of private copies a memory keeps between jobs before they are dropped.
const KEEP_RESIDENT: usize = 8 << 20;

thread_local! {
    /// The regions made on this thread since [`capture`] began, if it did.
    static CAPTURED: RefCell<Option<Vec<Arc<Region>>>> = const { RefCell::new(None) };
}

/// Runs `instantiate` and returns, with its result, the memories it made (wasmtime makes
/// an instance's memories on the thread that instantiates it).
pub(crate) fn capture<T>(instantiate: impl FnOnce() -> T) -> (T, Vec<Arc<Region>>) {
    /// Ends the capture however `instantiate` ends.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            CAPTURED.with(|captured| captured.borrow_mut().take());
        }
    }
    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
    let stop = Stop;
    let made = instantiate();
    let regions = CAPTURED.with(|captured| captured.borrow_mut().take().unwrap_or_default());
    drop(stop);
    (made, regions)
}

/// Makes every memory of the engine it is given to as a [`Region`].
#[derive(Debug, Default)]
pub(crate) struct Memories;

// SAFETY: each memory is a fresh reservation of `reserved_size_in_bytes` (or, when wasmtime
// leaves it open, all a 32-bit memory can grow to) followed by `guard_size_in_bytes` of
// inaccessible guard, as the trait asks; its accessible part starts zeroed; it never moves.
#[allow(unsafe_code, reason = "wasmtime's contract for host-made memories")]
unsafe impl MemoryCreator for Memories {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        let reserved = reserved_size_in_bytes
            .unwrap_or_else(|| maximum.unwrap_or(DEFAULT_RESERVATION))
            .max(minimum);
        let region = Region::reserve(minimum, reserved, guard_size_in_bytes)
            .map_err(|err| format!("cannot map a linear memory: {err}"))?;
        let region = Arc::new(region);
        CAPTURED.with(|captured| {
            if let Some(regions) = captured.borrow_mut().as_mut() {
                regions.push(region.clone());
            }
        });
        Ok(Box::new(Linear(region)))
    }
}

/// Why a memory could not be put back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResetError {
    /// The job grew the memory: its new pages cannot be taken back.
    #[error("the memory grew from {snapshot} to {now} bytes")]
    Grown { snapshot: usize, now: usize },
    /// No snapshot was taken.
    #[error("the memory has no snapshot")]
    NoSnapshot,
    /// The kernel refused the scan or the drop.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One linear memory's mapping: `reserved` bytes the memory may grow into, then the guard.
#[derive(Debug)]
pub(crate) struct Region {
    base: NonNull<u8>,
    reserved: usize,
    guard: usize,
    /// The accessible bytes, from the start.
    size: AtomicUsize,
    /// The snapshot, once taken.
    snapshot: Mutex<Option<Snapshot>>,
}

/// A memory's snapshot: its length, a read-only view of the file holding it, and the pages
/// the last reset found to be copies.
#[derive(Debug)]
struct Snapshot {
    length: usize,
    view: NonNull<u8>,
    copies: Copies,
}

/// What a reset did: how many pages it copied back, and how it knew which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reset {
    pub(crate) pages: usize,
    pub(crate) found: Found,
}

// SAFETY: the region owns its mapping; the pointer is only an address. Wasmtime uses the
// memory only while it runs the store's code on one thread, and the sandbox snapshots and
// resets it only on the thread that owns the store, between calls.
#[allow(unsafe_code, reason = "the mapping's address is shared with wasmtime")]
unsafe impl Send for Region {}
// SAFETY: as for `Send`; the shared fields are atomics or behind a mutex.
#[allow(unsafe_code, reason = "the mapping's address is shared with wasmtime")]
unsafe impl Sync for Region {}

impl Region {
    /// Reserves `reserved + guard` bytes, the first `accessible` of them read-write.
    fn reserve(accessible: usize, reserved: usize, guard: usize) -> io::Result<Self> {
        let page = rustix::param::page_size();
        let reserved = reserved.next_multiple_of(page);
        let length = reserved
            .checked_add(guard)
            .ok_or_else(|| io::Error::other("the reservation overflows"))?;
        // SAFETY: a new anonymous mapping at an address the kernel picks: nothing else is
        // affected.
        #[allow(unsafe_code, reason = "mapping memory")]
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                length,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }?;
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("null map"))?;
        let region = Region {
            base,
            reserved,
            guard,
            size: AtomicUsize::new(0),
            snapshot: Mutex::new(None),
        };
        region.make_accessible(accessible)?;
        Ok(region)
    }

    /// Makes the first `size` bytes accessible (they are zero where never written).
    fn make_accessible(&self, size: usize) -> io::Result<()> {
        let now = self.size.load(Ordering::Acquire);
        if size > self.reserved {
            return Err(io::Error::other("past the reservation"));
        }
        if size > now {
            let page = rustix::param::page_size();
            let from = now.next_multiple_of(page);
            let to = size.next_multiple_of(page);
            if to > from {
                // SAFETY: `from..to` lies inside this region's reservation, which nothing
                // else maps.
                #[allow(unsafe_code, reason = "changing a mapping's protection")]
                unsafe {
                    rustix::mm::mprotect(
                        self.base.as_ptr().add(from).cast(),
                        to - from,
                        MprotectFlags::READ | MprotectFlags::WRITE,
                    )
                }?;
            }
            self.size.store(size, Ordering::Release);
        }
        Ok(())
    }

    /// The accessible bytes.
    pub(crate) fn size(&self) -> usize {
        self.size.load(Ordering::Acquire)
    }

    /// Takes the memory as it is now as the state [`Region::reset`] puts back. Call it only
    /// while no code of the instance runs.
    pub(crate) fn snapshot(&self) -> io::Result<()> {
        let length = self.size();
        let page = rustix::param::page_size();
        if !length.is_multiple_of(page) {
            return Err(io::Error::other("a memory not made of whole host pages"));
        }
        let file = rustix::fs::memfd_create("wasp-instance", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mut file = std::fs::File::from(file);
        // SAFETY: the first `length` bytes are accessible, and no code writes them now.
        #[allow(unsafe_code, reason = "reading the guest's memory")]
        let bytes = unsafe { std::slice::from_raw_parts(self.base.as_ptr(), length) };
        file.write_all(bytes)?;
        if length == 0 {
            return Err(io::Error::other("an empty memory has nothing to snapshot"));
        }
        // SAFETY: a new shared, read-only mapping of the file, where the kernel picks.
        #[allow(unsafe_code, reason = "mapping memory")]
        let view = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                length,
                ProtFlags::READ,
                MapFlags::SHARED,
                &file,
                0,
            )
        }?;
        let view = NonNull::new(view.cast::<u8>()).ok_or_else(|| io::Error::other("null map"))?;
        let snapshot = Snapshot {
            length,
            view,
            copies: Copies::new(),
        };
        // SAFETY: replaces the accessible part of this region's own reservation with a
        // private mapping of a file holding the same bytes.
        #[allow(unsafe_code, reason = "mapping memory")]
        unsafe {
            rustix::mm::mmap(
                self.base.as_ptr().cast(),
                length,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::FIXED,
                &file,
                0,
            )
        }?;
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(snapshot);
        Ok(())
    }

    /// Puts back what the snapshot holds: copies it back over the pages that hold copies of
    /// their own (see [`Copies`]). Call it only while no code of the instance runs, on the
    /// thread that ran it: the memory's pages must be written by no other thread, whose
    /// faults this one does not count.
    ///
    /// A page the guest wrote is a private copy from then on: it is copied over from the
    /// snapshot (no fault, no `madvise` and its TLB shootdown across the cores other
    /// workers run on), and so is every page an earlier job wrote, which is cheaper than
    /// dropping them while they are few. Once they are more than [`KEEP_RESIDENT`], they
    /// are all dropped, and read the file again.
    pub(crate) fn reset(&self) -> Result<Reset, ResetError> {
        let mut guard = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = guard.as_mut().ok_or(ResetError::NoSnapshot)?;
        let length = snapshot.length;
        let now = self.size();
        if now != length {
            return Err(ResetError::Grown {
                snapshot: length,
                now,
            });
        }
        let start = self.base.as_ptr() as usize;
        let found = snapshot.copies.find(start, length)?;
        let mut copied = 0;
        for run in snapshot.copies.runs() {
            // SAFETY: `run` lies inside the snapshot's part of the region (the scan's
            // range), and the view maps the snapshot's `length` bytes; they never overlap.
            #[allow(unsafe_code, reason = "copying the snapshot back")]
            unsafe {
                std::ptr::copy_nonoverlapping(
                    snapshot.view.as_ptr().add(run.start),
                    self.base.as_ptr().add(run.start),
                    run.end - run.start,
                );
            }
            copied += run.end - run.start;
        }
        if copied > KEEP_RESIDENT {
            self.drop_pages(start..start + length)?;
            snapshot.copies.forget();
        }
        snapshot.copies.quiet_from_now();
        Ok(Reset {
            pages: copied / rustix::param::page_size(),
            found,
        })
    }

    /// Drops the private copies of the pages in `run` (addresses inside the snapshot's
    /// part): they read the file again.
    fn drop_pages(&self, run: Range<usize>) -> io::Result<()> {
        // SAFETY: `run` lies inside this region's private file mapping; dropping its
        // private pages changes only what the guest's memory holds, which nothing borrows
        // while no code of the instance runs.
        #[allow(unsafe_code, reason = "dropping pages of a mapping")]
        unsafe {
            rustix::mm::madvise(
                run.start as *mut _,
                run.end - run.start,
                Advice::LinuxDontNeed,
            )
        }?;
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Some(snapshot) = self
            .snapshot
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            // SAFETY: the snapshot's view, which only this region uses.
            #[allow(unsafe_code, reason = "unmapping memory")]
            let _ = unsafe { rustix::mm::munmap(snapshot.view.as_ptr().cast(), snapshot.length) };
        }
        // SAFETY: the whole reservation, which this region owns and nothing uses once it
        // is dropped (wasmtime holds it through `Linear` until the store goes).
        #[allow(unsafe_code, reason = "unmapping memory")]
        let _ =
            unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.reserved + self.guard) };
    }
}

/// A [`Region`] as wasmtime sees it.
struct Linear(Arc<Region>);

// SAFETY: the base never moves; growth stays inside the reservation, after which the guard
// follows.
#[allow(unsafe_code, reason = "wasmtime's contract for host-made memories")]
unsafe impl LinearMemory for Linear {
    fn byte_size(&self) -> usize {
        self.0.size()
    }

    fn byte_capacity(&self) -> usize {
        self.0.reserved
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        self.0
            .make_accessible(new_size)
            .map_err(|err| wasmtime::format_err!("cannot grow the memory: {err}"))
    }

    fn as_ptr(&self) -> *mut u8 {
        self.0.base.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::super::copies::CHECK_EVERY;
    use super::super::pagemap;
    use super::*;

    /// Writes `byte` at each of `offsets` of `region`'s memory.
    fn write(region: &Region, offsets: &[usize], byte: u8) {
        for offset in offsets {
            assert!(*offset < region.size());
            // SAFETY: inside the accessible part; nothing else uses the region.
            #[allow(unsafe_code, reason = "a test writing memory")]
            unsafe {
                region.base.as_ptr().add(*offset).write(byte)
            };
        }
    }

    /// Resets `region`: how many pages it copied back, and how it knew which.
    fn reset(region: &Region) -> (usize, Found) {
        let done = region.reset().expect("reset");
        (done.pages, done.found)
    }

    /// Resets `region`: how many pages it copied back.
    fn copied(region: &Region) -> usize {
        reset(region).0
    }

    /// Whether `PAGEMAP_SCAN` answers here; where not, the test cannot run (which fails it
    /// under `CI=true`).
    fn scans_here() -> bool {
        let available = pagemap::available();
        if !available {
            wasp_fixtures::cannot_run_here("PAGEMAP_SCAN is not available");
        }
        available
    }

    fn read(region: &Region, offset: usize) -> u8 {
        assert!(offset < region.size());
        // SAFETY: as for `write`.
        #[allow(unsafe_code, reason = "a test reading memory")]
        unsafe {
            region.base.as_ptr().add(offset).read()
        }
    }

    #[test]
    fn a_reset_puts_back_every_written_page_and_only_those() {
        if !scans_here() {
            return;
        }
        let page = rustix::param::page_size();
        let region = Region::reserve(64 * page, 1 << 30, 1 << 20).expect("reserves");
        write(&region, &[0, 5 * page, 40 * page + 7], 1);
        region.snapshot().expect("snapshot");
        assert_eq!(
            read(&region, 5 * page),
            1,
            "the snapshot reads as the memory did"
        );
        assert_eq!(copied(&region), 0, "nothing written yet");

        let written = [1, 5 * page, 6 * page, 63 * page + 1];
        write(&region, &written, 9);
        assert_eq!(copied(&region), 4);
        assert_eq!(read(&region, 1), 0);
        assert_eq!(read(&region, 0), 1);
        assert_eq!(read(&region, 5 * page), 1);
        assert_eq!(read(&region, 6 * page), 0);
        assert_eq!(read(&region, 40 * page + 7), 1);
        assert_eq!(read(&region, 63 * page + 1), 0);
        for round in 0..3 {
            write(&region, &written, round);
            assert_eq!(copied(&region), 4, "round {round}");
            assert_eq!(read(&region, 5 * page), 1, "round {round}");
        }
    }

    #[test]
    fn a_page_first_written_after_a_reset_without_a_scan_is_found() {
        if !scans_here() {
            return;
        }
        let page = rustix::param::page_size();
        let region = Region::reserve(16 * page, 1 << 30, 1 << 20).expect("reserves");
        write(&region, &[0, 9 * page], 4);
        region.snapshot().expect("snapshot");
        write(&region, &[0], 1);
        assert_eq!(reset(&region), (1, Found::Scanned), "the first reset scans");
        write(&region, &[0], 2);
        assert_eq!(reset(&region), (1, Found::Remembered), "no fault since");
        assert_eq!(read(&region, 0), 4);
        // A new copy is a fault on this thread, so the next reset scans again.
        write(&region, &[0, 9 * page, 12 * page], 3);
        assert_eq!(reset(&region), (3, Found::Scanned));
        assert_eq!(read(&region, 9 * page), 4);
        assert_eq!(read(&region, 12 * page), 0);
        // A reset on another thread than the last cannot trust that thread's count.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                write(&region, &[15 * page], 8);
                assert_eq!(reset(&region), (4, Found::Scanned));
            });
        });
        assert_eq!(read(&region, 15 * page), 0);
        assert_eq!(reset(&region).1, Found::Scanned, "nor can the first thread");
    }

    #[test]
    fn every_so_often_a_reset_checks_the_fault_count_and_a_miss_stops_the_skipping() {
        if !scans_here() {
            return;
        }
        let page = rustix::param::page_size();
        let region = Region::reserve(8 * page, 1 << 30, 1 << 20).expect("reserves");
        region.snapshot().expect("snapshot");
        write(&region, &[page], 1);
        assert_eq!(reset(&region), (1, Found::Scanned));
        for _ in 1..CHECK_EVERY {
            assert_eq!(reset(&region), (1, Found::Remembered));
        }
        assert_eq!(reset(&region), (1, Found::Checked), "the last scan agreed");

        // A copy the count did not see (as if another thread had made it): the remembered
        // runs lack a page that holds a copy.
        write(&region, &[3 * page], 2);
        assert_eq!(reset(&region), (2, Found::Scanned));
        {
            let mut snapshot = region.snapshot.lock().expect("lock");
            let copies = &mut snapshot.as_mut().expect("taken").copies;
            copies.forget();
            copies.quiet_from_now();
        }
        write(&region, &[page, 3 * page], 2);
        for _ in 1..CHECK_EVERY {
            assert_eq!(
                reset(&region),
                (0, Found::Remembered),
                "the miss is not seen yet"
            );
        }
        assert_eq!(read(&region, 3 * page), 2, "what the miss leaves");
        assert_eq!(reset(&region), (2, Found::Stale), "the check finds it");
        assert_eq!((read(&region, page), read(&region, 3 * page)), (0, 0));
        assert_eq!(
            reset(&region),
            (2, Found::Scanned),
            "and scans from then on"
        );
        assert_eq!(reset(&region), (2, Found::Scanned));
    }

    #[test]
    fn copies_past_what_is_kept_resident_are_dropped() {
        if !scans_here() {
            return;
        }
        let page = rustix::param::page_size();
        let pages = 2 * KEEP_RESIDENT / page;
        let region = Region::reserve(pages * page, 1 << 30, 1 << 20).expect("reserves");
        write(&region, &[3], 7);
        region.snapshot().expect("snapshot");
        let everywhere: Vec<usize> = (0..pages).map(|p| p * page).collect();
        write(&region, &everywhere, 5);
        assert_eq!(copied(&region), pages);
        assert_eq!(copied(&region), 0, "the copies were dropped");
        assert_eq!(read(&region, 3), 7);
        assert_eq!(read(&region, 0), 0);
        assert_eq!(read(&region, (pages - 1) * page), 0);
    }

    #[test]
    fn a_grown_memory_cannot_be_reset() {
        let page = rustix::param::page_size();
        let region = Region::reserve(4 * page, 1 << 30, 1 << 20).expect("reserves");
        region.snapshot().expect("snapshot");
        region.make_accessible(8 * page).expect("grows");
        assert!(matches!(
            region.reset(),
            Err(ResetError::Grown { snapshot, now }) if snapshot == 4 * page && now == 8 * page
        ));
        write(&region, &[8 * page - 1], 3);
        assert!(
            region.make_accessible((1 << 30) + page).is_err(),
            "past the reservation"
        );
    }

    #[test]
    fn memories_made_while_capturing_are_returned() {
        let (made, regions) = capture(|| {
            Memories
                .new_memory(
                    MemoryType::new(1, None),
                    1 << 16,
                    None,
                    Some(1 << 30),
                    1 << 16,
                )
                .map(|memory| memory.byte_size())
        });
        assert_eq!(made, Ok(1 << 16));
        assert_eq!(regions.len(), 1);
        let (_, none) = capture(|| ());
        assert!(none.is_empty());
    }
}
