//! How many page faults the calling thread has taken.
//!
//! A page of a private file mapping becomes a copy of its own only through a write fault,
//! taken by the thread that writes it. So while a thread's count stands still, no page it
//! alone touches has become a copy since it was counted, and the pages found to be copies
//! then are still exactly those.

use std::sync::OnceLock;

/// This thread's page faults so far, minor and major, or `None` where the count cannot be
/// trusted: the kernel does not keep it per thread, or does not move it when a first write
/// faults (an emulator, a filter that fakes the call).
pub(crate) fn this_thread() -> Option<u64> {
    if !counted() {
        return None;
    }
    read()
}

/// Whether a first write to a new page moves this thread's count (checked once).
fn counted() -> bool {
    static COUNTED: OnceLock<bool> = OnceLock::new();
    *COUNTED.get_or_init(|| {
        let before = read();
        let touched = touch_a_new_page();
        touched.is_ok() && matches!((before, read()), (Some(b), Some(a)) if a > b)
    })
}

/// Writes the first byte of a page mapped for it, then unmaps it.
fn touch_a_new_page() -> std::io::Result<()> {
    use rustix::mm::{MapFlags, ProtFlags};
    let page = rustix::param::page_size();
    // SAFETY: a new private anonymous mapping at an address the kernel picks, used only
    // here and unmapped below.
    #[allow(unsafe_code, reason = "mapping a page to probe the fault count")]
    let mapped = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            page,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }?;
    // SAFETY: the first byte of the read-write mapping just made.
    #[allow(unsafe_code, reason = "writing the probe page")]
    unsafe {
        mapped.cast::<u8>().write_volatile(1)
    };
    // SAFETY: the mapping made above, no longer used.
    #[allow(unsafe_code, reason = "unmapping the probe page")]
    unsafe { rustix::mm::munmap(mapped, page) }?;
    Ok(())
}

/// The count as the kernel gives it.
fn read() -> Option<u64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes one `struct rusage` at the pointer it is given, which
    // points at one, and reads nothing.
    #[allow(unsafe_code, reason = "getrusage, which rustix does not wrap")]
    let done = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    if done != 0 {
        return None;
    }
    // SAFETY: the call succeeded, so it filled the struct (which started zeroed anyway).
    #[allow(unsafe_code, reason = "reading what getrusage wrote")]
    let usage = unsafe { usage.assume_init() };
    let minor = u64::try_from(usage.ru_minflt).ok()?;
    let major = u64::try_from(usage.ru_majflt).ok()?;
    Some(minor + major)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_write_to_a_page_is_counted() {
        assert!(counted(), "this kernel counts faults per thread");
        let before = this_thread().expect("counts faults");
        touch_a_new_page().expect("maps and writes");
        let after = this_thread().expect("counts faults");
        assert!(after > before, "the write was counted: {before} -> {after}");
    }
}
