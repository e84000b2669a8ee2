//! The raw side of the ABI: the allocator export, buffer hand-over and the panic hook.
//!
//! This is the only unsafe code of the SDK. The host is trusted to follow the ABI for the
//! pointers it passes in (it is the host that sandboxes *us*, not the other way round).
#![allow(
    unsafe_code,
    reason = "raw pointers cross the wasm ABI here and only here"
)]

use crate::abi;
use std::sync::Once;

/// `wasp_alloc(len) -> ptr`: allocates a buffer the host writes a job's arguments into.
///
/// The buffer is a leaked `Vec<u8>` with capacity `len`; [`take_args`] takes it back.
#[unsafe(export_name = "wasp_alloc")]
pub extern "C" fn wasp_alloc(len: u32) -> u32 {
    let mut buf = Vec::<u8>::with_capacity(len as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as u32
}

/// Takes ownership of the argument buffer the host wrote at `ptr`.
///
/// # Safety
/// `ptr` must come from [`wasp_alloc`] called with exactly `len`, and the host must have
/// written `len` bytes there: this is what the ABI requires of the host.
pub unsafe fn take_args(ptr: u32, len: u32) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    // SAFETY: by the contract above the buffer was allocated as a `Vec<u8>` with capacity
    // `len` by `wasp_alloc` and is now fully initialised; nobody else owns it.
    unsafe { Vec::from_raw_parts(ptr as *mut u8, len as usize, len as usize) }
}

/// Hands a result buffer to the host: leaks it and packs its address and length.
pub fn finish(buf: Vec<u8>) -> u64 {
    let buf = buf.into_boxed_slice();
    let len = buf.len() as u32;
    let ptr = Box::into_raw(buf) as *mut u8 as u32;
    abi::pack_result(ptr, len)
}

#[link(wasm_import_module = "wasp")]
unsafe extern "C" {
    #[link_name = "panic"]
    fn host_panic(ptr: *const u8, len: usize);
}

/// Installs (once) a panic hook that reports the panic message to the host before the
/// default hook prints it to stderr and the guest aborts.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic with a non-string payload".to_string());
            let message = match info.location() {
                Some(at) => format!("{message} (at {}:{})", at.file(), at.line()),
                None => message,
            };
            // SAFETY: the host reads `len` bytes at `ptr` during the call; the string outlives
            // the call.
            unsafe { host_panic(message.as_ptr(), message.len()) };
            default_hook(info);
        }));
    });
}
