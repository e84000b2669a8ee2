//! How many page faults the calling thread has taken.
//!
//! A page of a private file mapping becomes a copy of its own only through a write fault,
//! taken by the thread that writes it. So while a thread's count stands still, no page it
//! alone touches has become a copy since it was counted, and the pages found to be copies
//! then are still exactly those.

/// This thread's page faults so far, minor and major, or `None` where the kernel does not
/// count them per thread.
pub(crate) fn this_thread() -> Option<u64> {
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
        let before = this_thread().expect("counts faults");
        let page = rustix::param::page_size();
        // A fresh anonymous mapping: its first write is a fault.
        // SAFETY: a new private mapping only this test uses, unmapped below.
        #[allow(unsafe_code, reason = "a test mapping memory")]
        let mapped = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                page,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .expect("maps");
        // SAFETY: the first byte of the mapping just made.
        #[allow(unsafe_code, reason = "a test writing memory")]
        unsafe {
            mapped.cast::<u8>().write_volatile(1)
        };
        let after = this_thread().expect("counts faults");
        assert!(after > before, "the write was counted: {before} -> {after}");
        // SAFETY: the mapping made above, no longer used.
        #[allow(unsafe_code, reason = "a test unmapping memory")]
        unsafe { rustix::mm::munmap(mapped, page) }.expect("unmaps");
    }
}
