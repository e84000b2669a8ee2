//! A job's arguments written into its memory from several segments (the argument bytes
//! between data references, and each value in its reference's place), so that a value put
//! once is copied once per job, into the job, and never assembled on the host first.
//!
//! A core module's arguments go where its `wasp_alloc` says ([`write`]); a component's job
//! takes a `list<u8>`, lowered by [`Segments`] with the component's own allocator, as
//! wasmtime lowers a `&[u8]`, but from the segments.

use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Lower};
use wasmtime::{AsContextMut, Memory, ValRaw};

/// The length of the arguments `segments` make.
pub(super) fn total(segments: &[&[u8]]) -> usize {
    segments.iter().map(|segment| segment.len()).sum()
}

/// The arguments do not fit in the job's memory where its allocator put them.
#[derive(Debug)]
pub(super) struct OutsideMemory;

/// Writes `segments` one after the other into `memory` at `ptr`.
///
/// # Errors
/// If they do not fit in the memory there.
pub(super) fn write(
    mut store: impl AsContextMut,
    memory: Memory,
    ptr: usize,
    segments: &[&[u8]],
) -> Result<(), OutsideMemory> {
    let len = total(segments);
    let target = memory
        .data_mut(&mut store)
        .get_mut(ptr..ptr.saturating_add(len))
        .ok_or(OutsideMemory)?;
    copy(target, segments);
    Ok(())
}

/// Copies `segments` one after the other into `target` (exactly as long).
fn copy(target: &mut [u8], segments: &[&[u8]]) {
    populate(target);
    let mut rest = target;
    for segment in segments {
        let (here, after) = rest.split_at_mut(segment.len());
        here.copy_from_slice(segment);
        rest = after;
    }
}

/// From this size on, the pages of a job's memory that a value is copied into are asked of
/// the kernel at once.
const POPULATE_AT: usize = 1 << 20;

/// Has the kernel back `target` with pages in one call (`MADV_POPULATE_WRITE`, Linux 5.14),
/// rather than a page fault per page as the copy reaches it: a job's memory past what its
/// pool slot keeps resident is fresh for each job, and on a virtual machine a fault costs
/// more than copying the page (100 MiB: about 27 ms instead of 40 to 75). Where the kernel
/// cannot, nothing changes: the copy faults the pages in.
fn populate(target: &mut [u8]) {
    #[cfg(target_os = "linux")]
    if target.len() >= POPULATE_AT {
        let page = rustix::param::page_size();
        let start = target.as_mut_ptr() as usize;
        let first = start.next_multiple_of(page);
        let end = (start + target.len()) / page * page;
        if end > first {
            #[allow(
                unsafe_code,
                reason = "madvise on pages of a slice this function holds mutably"
            )]
            // SAFETY: `first..end` lies inside `target`, which is borrowed mutably, so no one
            // else reads or writes it meanwhile; MADV_POPULATE_WRITE only faults its pages in
            // (writable, contents unchanged) and never unmaps or moves them.
            let _ = unsafe {
                rustix::mm::madvise(
                    first as *mut std::ffi::c_void,
                    end - first,
                    rustix::mm::Advice::LinuxPopulateWrite,
                )
            };
        }
    }
}

/// A `list<u8>` made of segments, lowered into a component with one copy of each.
pub(super) struct Segments<'a>(pub(super) &'a [&'a [u8]]);

impl Segments<'_> {
    /// Allocates the list in the component's memory and copies the segments there;
    /// returns its address and length.
    fn store<T>(&self, cx: &mut LowerContext<'_, T>) -> wasmtime::Result<(usize, usize)> {
        let len = total(self.0);
        let ptr = cx.realloc(0, 0, 1, len)?;
        // `realloc` checked that `ptr..ptr + len` is inside the memory.
        let target = cx
            .as_slice_mut()
            .get_mut(ptr..ptr + len)
            .ok_or_else(|| wasmtime::format_err!("the argument list is outside memory"))?;
        copy(target, self.0);
        Ok((ptr, len))
    }
}

#[allow(
    unsafe_code,
    reason = "wasmtime's traits for lowering a value into a component are unsafe to implement"
)]
// SAFETY: `Segments` stands for a `list<u8>` exactly as `[u8]` does: the same flat
// representation (`Lower`), the same canonical ABI and the same type check, all taken from
// `[u8]`'s own implementation, so wasmtime reads and writes it as it does a byte list.
unsafe impl ComponentType for Segments<'_> {
    type Lower = <[u8] as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <[u8] as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[u8] as ComponentType>::typecheck(ty, types)
    }
}

#[allow(
    unsafe_code,
    reason = "wasmtime's traits for lowering a value into a component are unsafe to implement"
)]
// SAFETY: the list is written through `LowerContext`'s own allocator and bounds-checked
// slice of the component's memory; the pointer and length written are those of the bytes
// copied, as `[u8]`'s implementation writes them (two `i64` flat values, or two
// little-endian `u32` in memory).
unsafe impl Lower for Segments<'_> {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        dst: &mut std::mem::MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.store(cx)?;
        dst.write([ValRaw::i64(ptr as i64), ValRaw::i64(len as i64)]);
        Ok(())
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.store(cx)?;
        *cx.get::<4>(offset) = u32::try_from(ptr)?.to_le_bytes();
        *cx.get::<4>(offset + 4) = u32::try_from(len)?.to_le_bytes();
        Ok(())
    }
}
