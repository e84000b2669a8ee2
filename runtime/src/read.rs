//! Reading a large file whole (a module, its compiled code) into memory backed by huge pages
//! where the kernel offers them: a 37 MB read into fresh memory otherwise takes a page
//! fault, and the page's zeroing, every 4 KiB (about 9,000 of them; half of the read).

use std::fs::File;
use std::io::{self, Read};

/// Huge pages are asked for only in buffers at least this large.
const HUGE_FROM: usize = 4 << 20;

/// The size of a huge page on x86-64 and (with 4 KiB pages) aarch64.
const HUGE_PAGE: usize = 2 << 20;

/// Reads `file` to its end; `size` is what its metadata says, a hint.
pub(crate) fn whole(file: &mut File, size: u64) -> io::Result<Vec<u8>> {
    let size = usize::try_from(size).unwrap_or(0);
    // One byte more than the size, so that reaching the end needs no second allocation;
    // a size that cannot be allocated is an error, not an abort.
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(size.saturating_add(1))
        .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    if size >= HUGE_FROM {
        advise_huge(&mut bytes);
    }
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Asks for huge pages over the whole huge pages inside `bytes`' spare capacity. A refusal
/// changes nothing but speed.
fn advise_huge(bytes: &mut Vec<u8>) {
    let spare = bytes.spare_capacity_mut();
    let start = spare.as_ptr() as usize;
    let end = start + spare.len();
    let (from, to) = (start.next_multiple_of(HUGE_PAGE), end - end % HUGE_PAGE);
    if from >= to {
        return;
    }
    // SAFETY: `from..to` lies inside the vector's allocation, which it owns; the advice
    // changes how pages are backed, never what they hold (the allocator may have used them
    // before: `MADV_HUGEPAGE` keeps their contents).
    #[allow(unsafe_code, reason = "advising the kernel on the vector's own pages")]
    let _ = unsafe {
        rustix::mm::madvise(from as *mut _, to - from, rustix::mm::Advice::LinuxHugepage)
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_is_read_whole_whatever_its_size_hint() {
        let mut file = tempfile::tempfile().expect("a file");
        let content: Vec<u8> = (0..HUGE_FROM + 12_345).map(|i| (i % 251) as u8).collect();
        file.write_all(&content).expect("writes");
        let length = content.len() as u64;
        let read = |hint| {
            let mut file = file.try_clone().expect("clones");
            io::Seek::rewind(&mut file).expect("rewinds");
            whole(&mut file, hint)
        };
        for hint in [length, 0, 10, 2 * length] {
            assert_eq!(read(hint).expect("reads"), content);
        }
        let absurd = read(u64::MAX / 2).expect_err("cannot be allocated");
        assert_eq!(
            absurd.kind(),
            io::ErrorKind::OutOfMemory,
            "an error, not an abort"
        );
    }
}
