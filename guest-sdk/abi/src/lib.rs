/*!
The wasp job ABI, version 1: the contract between a wasp host and a guest module.

This crate is the one place where the ABI is written down. The host (`wasp-runtime`) and
the guest SDK (`wasp-guest`, which re-exports it as `wasp_guest::abi`) both use the
constants below, so the names cannot drift apart; it has no dependencies, so the host
depends on neither the SDK nor its proc-macros. A guest written in C, Zig or any language
that targets `wasm32-wasip1` implements the same contract by hand.

# Module shape

A wasp module is a core WebAssembly module (not a component) for `wasm32-wasip1`, built as a
*reactor* (a library: `crate-type = ["cdylib"]` in Rust). It must export:

| export | type | purpose |
|---|---|---|
| [`MEMORY`] (`memory`) | memory | the linear memory all buffers live in |
| [`ALLOC`] (`wasp_alloc`) | `(len: i32) -> i32` | allocate `len` bytes for the host to write into; returns the address, or 0 on failure |
| [`JOB_PREFIX`]`<name>` (`wasp_job_<name>`) | `(ptr: i32, len: i32) -> i64` | one per job function: runs job `<name>` |
| [`INITIALIZE`] (`_initialize`) | `() -> ()` | optional: the WASI reactor initialiser, called once before anything else |

It may import:
* the WASI preview 1 functions of module `wasi_snapshot_preview1` listed in
  [`WASI_ALLOWED`]. The sandbox gives them no preopened directories, no environment, no
  arguments and no sockets: a job can write to stdout and stderr (captured and returned to the
  caller), read clocks and random numbers, and nothing else;
* [`HOST_PANIC`] (`panic`) from module [`HOST_MODULE`] (`wasp`), of type `(ptr: i32, len: i32)
  -> ()`: reports the UTF-8 message of a panic just before the guest aborts, so the host can
  return it as a typed error.

Nothing else may be imported: the host refuses such a module when it is loaded.

# Calling a job

For every job the host uses a **fresh instance** (no state survives from one job to the next):

1. it calls `_initialize` if the module exports it;
2. it encodes the arguments as one MessagePack **array** (one element per argument, in order)
   and calls `wasp_alloc(len)`; it writes the bytes at the returned address. Ownership of that
   buffer passes to the guest, which may free or reuse it;
3. it calls `wasp_job_<name>(ptr, len)`. The `i64` result packs the address of the *result
   buffer* in its low 32 bits and its length in its high 32 bits;
4. it copies the result buffer out. It never frees it: the instance is discarded after the job.

MessagePack is self-describing: structs are encoded as maps keyed by field name, so a host that
knows nothing of the guest's types (the `wasp` CLI, which speaks JSON) can still build arguments
and read results.

# The result buffer

The first byte is a status, one of [`STATUS_OK`], [`STATUS_JOB_ERROR`] and
[`STATUS_BAD_ARGUMENTS`]; the rest depends on it:

| status | meaning | rest of the buffer |
|---|---|---|
| `0` OK | the job returned a value | the value, MessagePack-encoded |
| `1` job error | the job returned an error (a Rust `Err(e)`) | the error message, UTF-8 |
| `2` bad arguments | the arguments could not be decoded into the job's parameter types | a description, UTF-8 |

A trap (including a Rust panic, which aborts) ends the job without a result buffer; the host
turns it into a typed error that names the trap, with the message reported through
[`HOST_PANIC`] when there was one.
*/
#![cfg_attr(not(test), no_std)]

/// The version of the ABI described here. A future incompatible ABI will use other export
/// names, so a host never misreads a module built for another version.
pub const ABI_VERSION: u32 = 1;

/// The name of the exported linear memory.
pub const MEMORY: &str = "memory";

/// The exported allocator: `(len: i32) -> i32`.
pub const ALLOC: &str = "wasp_alloc";

/// The prefix of every job export: job `sum_primes` is exported as `wasp_job_sum_primes`.
pub const JOB_PREFIX: &str = "wasp_job_";

/// The WASI reactor initialiser, called once per instance before any other export if present.
pub const INITIALIZE: &str = "_initialize";

/// The import module of the host functions wasp provides.
pub const HOST_MODULE: &str = "wasp";

/// The host function a guest calls with its panic message just before it aborts:
/// `(ptr: i32, len: i32) -> ()`.
pub const HOST_PANIC: &str = "panic";

/// The import module of WASI preview 1.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Status byte: the job returned a value.
pub const STATUS_OK: u8 = 0;

/// Status byte: the job returned an error; a UTF-8 message follows.
pub const STATUS_JOB_ERROR: u8 = 1;

/// Status byte: the arguments did not match the job's parameters; a UTF-8 message follows.
pub const STATUS_BAD_ARGUMENTS: u8 = 2;

/// The WASI preview 1 functions a module may import. Every other preview 1 function (the
/// `sock_*` family) is refused at load time: the sandbox has no network.
///
/// Filesystem functions are allowed so that ordinary language runtimes link, but the sandbox
/// preopens no directory, so every path lookup fails with `EBADF`/`ENOTCAPABLE`.
pub const WASI_ALLOWED: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_advise",
    "fd_allocate",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_renumber",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "proc_raise",
    "sched_yield",
    "random_get",
];

/// Packs a result buffer's address and length into the `i64` a job export returns.
pub const fn pack_result(ptr: u32, len: u32) -> u64 {
    (ptr as u64) | ((len as u64) << 32)
}

/// Splits the `i64` a job export returns into the result buffer's address and length.
pub const fn unpack_result(packed: u64) -> (u32, u32) {
    // Truncation is the point: the two halves are the two 32-bit fields.
    #[allow(
        clippy::cast_possible_truncation,
        reason = "splitting into 32-bit halves"
    )]
    let parts = (packed as u32, (packed >> 32) as u32);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_packing_round_trips() {
        for (ptr, len) in [(0, 0), (1, 2), (u32::MAX, 7), (65536, u32::MAX)] {
            assert_eq!(unpack_result(pack_result(ptr, len)), (ptr, len));
        }
    }

    #[test]
    fn sockets_are_not_allowed() {
        assert!(WASI_ALLOWED.iter().all(|name| !name.starts_with("sock_")));
        assert!(WASI_ALLOWED.contains(&"fd_write"));
    }
}
