//! A hostile guest at the ABI boundary: it controls the bytes of its result buffer, the
//! (pointer, length) pair its job export returns, the (pointer, length) of the panic message it
//! reports, and where `wasp_alloc` puts the arguments. Whatever it does, the host must end the
//! job with `Ok` or a typed `JobError` (never a panic, a hang or `JobError::Internal`), and
//! must read exactly what the ABI says.
//!
//! One hand-written guest (below) runs in a real `wasp::Server`, so this is the host's code as
//! it runs: `wasp_alloc` and the argument copy, `read_result` (bounds, `MAX_RESULT_LEN`), the
//! status byte, `wasp::panic`, `proc_exit`, classification, and the decoding of the result into
//! the caller's type (`Job::wait`, on the caller's thread, and `Job::on_complete`, on the
//! worker's), for the types a caller may ask for, among them the CLI's `serde_json::Value`.
//!
//! The guest's memory is one fresh 64 KiB page holding nothing but the arguments, so the
//! target computes what the host must return and checks it (all but `write`, which is only
//! checked to end).
//!
//! Input: byte 0 picks the job (low 3 bits) and the result type (the rest); the other bytes
//! are the arguments, written verbatim (`Server::submit_raw`) into guest memory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use wasp::{JobError, JobOptions, Module, Server};

/// The hostile guest. `wasp_alloc` puts the arguments at 1024, except: null for a 1-byte
/// buffer, and the last byte of memory for a 2-byte one (the copy runs off the end).
const GUEST: &str = r#"
(module
  (import "wasp" "panic" (func $panic (param i32 i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (func (export "wasp_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.eq (local.get $len) (i32.const 1))
      (then (i32.const 0))
      (else (if (result i32) (i32.eq (local.get $len) (i32.const 2))
        (then (i32.const 65535))
        (else (i32.const 1024))))))
  ;; The result buffer is the arguments themselves.
  (func (export "wasp_job_echo") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.extend_i32_u (local.get $ptr))
            (i64.shl (i64.extend_i32_u (local.get $len)) (i64.const 32))))
  ;; The packed (pointer, length) is the first 8 bytes of the arguments.
  (func (export "wasp_job_packed") (param $ptr i32) (param $len i32) (result i64)
    (i64.load (local.get $ptr)))
  ;; Reports the message at the (pointer, length) of the first 8 bytes, then traps.
  (func (export "wasp_job_panic") (param $ptr i32) (param $len i32) (result i64)
    (call $panic (i32.load (local.get $ptr)) (i32.load offset=4 (local.get $ptr)))
    unreachable)
  ;; Exits with the status of the first 4 bytes.
  (func (export "wasp_job_exit") (param $ptr i32) (param $len i32) (result i64)
    (call $exit (i32.load (local.get $ptr)))
    unreachable)
  ;; fd_write(fd, iovs, iovs_len, nwritten) from the first 16 bytes, then returns the packed
  ;; (pointer, length) of the next 8.
  (func (export "wasp_job_write") (param $ptr i32) (param $len i32) (result i64)
    (drop (call $write (i32.load (local.get $ptr)) (i32.load offset=4 (local.get $ptr))
                       (i32.load offset=8 (local.get $ptr)) (i32.load offset=12 (local.get $ptr))))
    (i64.load offset=16 (local.get $ptr)))
)
"#;

const PAGE: usize = 65536;
const ARGS_AT: usize = 1024;
/// `MAX_RESULT_LEN` in runtime/src/sandbox/invoke.rs.
const MAX_RESULT_LEN: u64 = 256 << 20;
/// `MAX_PANIC_MESSAGE` in runtime/src/sandbox/host.rs.
const MAX_PANIC_MESSAGE: usize = 16 * 1024;
const MAX_OUTPUT: u64 = 4096;

struct Fixture {
    server: Server,
    module: Module,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let module = Module::from_bytes(wat::parse_str(GUEST).expect("the guest parses"))
        .expect("the guest is a wasp module");
    let server = Server::builder()
        .workers(1)
        .no_disk_cache()
        .max_memory(1 << 20)
        // Generous: the guest never loops, and a loaded CI machine must not fail the oracle.
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a server");
    Fixture { server, module }
});

/// What a caller may ask the result to decode into.
#[derive(Debug, PartialEq, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: Option<i32>,
    #[serde(with = "serde_bytes")]
    blob: Vec<u8>,
}

#[derive(Debug, PartialEq, Deserialize)]
enum Shape {
    Unit,
    Circle(u32),
    Rect { w: u16, h: u16 },
    Many(Vec<Shape>),
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, args)) = data.split_first() else {
        return;
    };
    let job =
        ["echo", "packed", "panic", "exit", "write", "missing"][usize::from(selector & 7) % 6];
    match selector >> 3 {
        0 => check::<IgnoredAny, _>(job, args, |_| ()),
        1 => check::<serde_json::Value, _>(job, args, |v| v),
        2 => check::<u64, _>(job, args, |v| v),
        3 => check::<String, _>(job, args, |v| v),
        4 => check::<serde_bytes::ByteBuf, _>(job, args, |v| v),
        5 => check::<Vec<(String, Option<i64>)>, _>(job, args, |v| v),
        6 => check::<BTreeMap<String, Vec<u32>>, _>(job, args, |v| v),
        7 => check::<Record, _>(job, args, |v| v),
        8 => check::<Shape, _>(job, args, |v| v),
        9 => check::<(bool, f64, char), _>(job, args, |(b, f, c)| (b, f.to_bits(), c)),
        _ => check::<Option<Box<Shape>>, _>(job, args, |v| v),
    }
});

/// Runs `job` with `args`, decoding its result as a `T`, and checks the outcome against the
/// model (comparing results by `key`).
fn check<T, K>(job: &str, args: &[u8], key: fn(T) -> K)
where
    T: DeserializeOwned + Send + 'static,
    K: PartialEq + Debug + Send + 'static,
{
    let Fixture { server, module } = &*FIXTURE;
    let options = JobOptions::new().max_output(MAX_OUTPUT);
    let handle = server.submit_raw::<T>(module, job, args.to_vec(), &options);
    // The same result decoded on the worker thread, as a callback does.
    let in_callback: Arc<Mutex<Option<Result<K, JobError>>>> = Arc::default();
    let slot = in_callback.clone();
    handle.on_complete(move |result| *slot.lock().unwrap() = Some(result.map(key)));
    let Some(result) = handle.wait_timeout(Duration::from_secs(120)) else {
        panic!("job `{job}` did not end");
    };
    let result = result.map(key);
    let from_callback = in_callback
        .lock()
        .unwrap()
        .take()
        .expect("the callback ran");
    assert!(
        same(&result, &from_callback),
        "{result:?} != {from_callback:?} (callback)"
    );
    if let Err(JobError::Internal(message)) = &result {
        panic!("internal error: {message}");
    }
    if let Err(JobError::Timeout(_)) = &result {
        return; // only under extreme load: nothing to compare
    }
    if let Some(expected) = expected(job, args) {
        let expected = expected.and_then(|bytes| {
            rmp_serde::from_slice::<T>(&bytes)
                .map(key)
                .map_err(|err| JobError::BadResult(err.to_string()))
        });
        assert!(
            same(&result, &expected),
            "job `{job}`: got {result:?}, expected {expected:?}"
        );
    }
}

/// Equal, except that two ABI errors are alike whatever their messages say.
fn same<K: PartialEq>(a: &Result<K, JobError>, b: &Result<K, JobError>) -> bool {
    match (a, b) {
        (Err(JobError::Abi(_)), Err(JobError::Abi(_))) => true,
        // A reference's refusal names what it refers to; the model only knows it is one.
        (Err(JobError::BadArguments(a)), Err(JobError::BadArguments(b))) => {
            a == b || a.is_empty() || b.is_empty()
        }
        _ => a == b,
    }
}

fn abi() -> JobError {
    JobError::Abi(String::new())
}

/// What the host must make of `job(args)`: the raw result value, or the error. `None`: not
/// modelled (`write`).
fn expected(job: &str, args: &[u8]) -> Option<Result<Vec<u8>, JobError>> {
    if job == "missing" {
        return Some(Err(JobError::UnknownFunction {
            function: job.into(),
            available: ["echo", "exit", "packed", "panic", "write"]
                .map(String::from)
                .to_vec(),
        }));
    }
    // The server takes only arguments that are one MessagePack value, and finds the
    // references in them: the fuzzer's arguments hold none of this server's.
    match wasp_proto::refs::find(args) {
        Err(error) => return Some(Err(JobError::BadArguments(error.to_string()))),
        Ok(found) if !found.is_empty() => return Some(Err(JobError::BadArguments(String::new()))),
        Ok(_) => {}
    }
    // wasp_alloc, then the copy of the arguments into guest memory.
    let ptr = match args.len() {
        1 => return Some(Err(abi())), // wasp_alloc returned null
        2 => 65535,
        _ => ARGS_AT,
    };
    if ptr + args.len() > PAGE {
        return Some(Err(abi())); // the arguments do not fit where wasp_alloc put them
    }
    let mut memory = vec![0u8; PAGE];
    memory[ptr..ptr + args.len()].copy_from_slice(args);
    let word = |at: usize| u32::from_le_bytes(memory[ptr + at..ptr + at + 4].try_into().unwrap());
    Some(match job {
        "echo" => decode_status(&memory, ptr as u64, args.len() as u64),
        "packed" => decode_status(&memory, u64::from(word(0)), u64::from(word(4))),
        "panic" => {
            let (start, len) = (word(0) as usize, (word(4) as usize).min(MAX_PANIC_MESSAGE));
            let message = match memory.get(start..start.saturating_add(len)) {
                Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                None => "panic message out of bounds".into(),
            };
            Err(JobError::Panic(message))
        }
        "exit" => Err(JobError::Exited(word(0) as i32)),
        _ => return None,
    })
}

/// The ABI's reading of the result buffer at (`ptr`, `len`) in `memory`.
fn decode_status(memory: &[u8], ptr: u64, len: u64) -> Result<Vec<u8>, JobError> {
    if len > MAX_RESULT_LEN || ptr + len > memory.len() as u64 {
        return Err(abi());
    }
    let buf = &memory[ptr as usize..(ptr + len) as usize];
    let message = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match buf.split_first() {
        Some((0, value)) => Ok(value.to_vec()),
        Some((1, text)) => Err(JobError::Failed(message(text))),
        Some((2, text)) => Err(JobError::BadArguments(message(text))),
        _ => Err(abi()),
    }
}
