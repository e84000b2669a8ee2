//! Jobs for wasp's tests: well-behaved ones, and hostile or broken ones that must each end
//! in a clear typed error while the pool keeps serving.

use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

/// The trivial job: `x + 1`.
#[wasp_guest::job]
pub fn add_one(x: i64) -> i64 {
    x + 1
}

/// Several arguments of several types.
#[wasp_guest::job]
pub fn repeat(text: String, times: u32) -> String {
    text.repeat(times as usize)
}

/// A rectangle, to check that structs cross the ABI as self-describing maps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rect {
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

/// A struct argument and a struct result.
#[wasp_guest::job]
pub fn scale(rect: Rect, factor: f64) -> Rect {
    Rect {
        width: rect.width * factor,
        height: rect.height * factor,
    }
}

/// Prints to stdout and stderr, then returns.
#[wasp_guest::job]
pub fn greet(name: String) -> String {
    println!("hello, {name}");
    eprintln!("a note on stderr");
    format!("greeted {name}")
}

/// A job with no arguments.
#[wasp_guest::job]
pub fn answer() -> u32 {
    42
}

/// Counts its calls in a static: every job gets a fresh instance, so this is always 1.
#[wasp_guest::job]
pub fn count_calls() -> u32 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    CALLS.fetch_add(1, Ordering::SeqCst) + 1
}

/// Busy-waits for `ms` milliseconds of wall-clock time (WASI clock).
#[wasp_guest::job]
pub fn busy_ms(ms: u64) -> u64 {
    let start = std::time::Instant::now();
    let mut spins = 0u64;
    while start.elapsed().as_millis() < u128::from(ms) {
        spins = black_box(spins + 1);
    }
    ms
}

/// Returns `Err` for a negative input: a typed job error on the host.
#[wasp_guest::job]
pub fn checked_sqrt(x: f64) -> Result<f64, String> {
    if x < 0.0 {
        Err(format!("cannot take the square root of {x}"))
    } else {
        Ok(x.sqrt())
    }
}

/// Panics with `message`.
#[wasp_guest::job]
pub fn panics(message: String) -> u32 {
    panic!("{message}");
}

/// Loops forever.
#[wasp_guest::job]
pub fn spin() -> u64 {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates without end.
#[wasp_guest::job]
pub fn memory_bomb() -> usize {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        chunk[0] = 1;
        hoard.push(black_box(chunk));
    }
}

/// Recurses without end.
#[wasp_guest::job]
pub fn recurse(depth: u64) -> u64 {
    fn down(n: u64, pad: [u64; 8]) -> u64 {
        if n == u64::MAX {
            return 0;
        }
        black_box(down(black_box(n + 1), black_box(pad))) + pad[0]
    }
    down(depth, [depth; 8])
}

/// Executes a wasm `unreachable` instruction.
#[wasp_guest::job]
pub fn trap_unreachable() -> u32 {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    unreachable!()
}

/// Writes `bytes` bytes to stdout.
#[wasp_guest::job]
pub fn print_lots(bytes: u64) -> u64 {
    let line = [b'x'; 1023];
    let mut out = std::io::stdout().lock();
    let mut written = 0;
    while written < bytes {
        let _ = out.write_all(&line);
        let _ = out.write_all(b"\n");
        written += 1024;
    }
    let _ = out.flush();
    written
}

/// Calls `proc_exit` instead of returning.
#[wasp_guest::job]
pub fn exit(code: i32) -> u32 {
    std::process::exit(code)
}

/// Tries to read a file: the sandbox has no filesystem.
#[wasp_guest::job]
pub fn read_file(path: String) -> Result<String, String> {
    std::fs::read_to_string(&path).map_err(|err| format!("{path}: {err}"))
}

/// Reads an environment variable: the sandbox has no environment.
#[wasp_guest::job]
pub fn env_var(name: String) -> Option<String> {
    std::env::var(name).ok()
}

/// Tries to open a TCP connection to `address`: the sandbox has no sockets.
#[wasp_guest::job]
pub fn connect(address: String) -> Result<String, String> {
    match std::net::TcpStream::connect(&address) {
        Ok(stream) => Ok(format!("connected to {:?}", stream.peer_addr())),
        Err(err) => Err(format!("{address}: {err}")),
    }
}

/// Sleeps for `secs` seconds (WASI `poll_oneoff`), which the sandbox refuses: a sleeping
/// job would block its worker where no timeout reaches it.
#[wasp_guest::job]
pub fn sleep_secs(secs: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_secs(secs));
    secs
}

/// Returns its argument, whatever MessagePack value it is: what crosses, crosses back.
#[wasp_guest::job]
pub fn echo(value: rmpv::Value) -> rmpv::Value {
    value
}

/// Prints to both streams, then fails: a failure carries what the job printed.
#[wasp_guest::job]
pub fn print_then_fail(text: String) -> Result<u32, String> {
    println!("out: {text}");
    eprintln!("err: {text}");
    Err(format!("failed after printing {text}"))
}

/// Busy-waits for `ms` milliseconds, or fails at once if `ms` is negative.
#[wasp_guest::job]
pub fn busy_or_fail(ms: i64) -> Result<i64, String> {
    if ms < 0 {
        return Err(format!("asked to fail ({ms})"));
    }
    busy_ms(ms as u64);
    Ok(ms)
}

/// Element `i` of `values` (a table put once, taken by many jobs).
#[wasp_guest::job]
pub fn nth(values: Vec<u64>, i: u64) -> Result<u64, String> {
    values
        .get(i as usize)
        .copied()
        .ok_or_else(|| format!("no element {i} in {} values", values.len()))
}

/// The sum of `values`: what a reduction of other jobs' results does.
#[wasp_guest::job]
pub fn sum_list(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

/// The length of `data` and the sum of its bytes, to check that large values arrive whole.
#[wasp_guest::job]
pub fn checksum(data: serde_bytes::ByteBuf) -> (u64, u64) {
    let sum = data.iter().map(|&byte| u64::from(byte)).sum();
    (data.len() as u64, sum)
}

/// `len` bytes, each its index modulo 251: a large result other jobs can take.
#[wasp_guest::job]
pub fn bytes_of(len: u32) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>())
}

/// The time now, in milliseconds since the Unix epoch: a job whose result is not cacheable.
#[wasp_guest::job]
pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |since| since.as_millis() as u64)
}

/// A random number (through WASI's random source): a job whose result is not cacheable.
#[wasp_guest::job]
pub fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}
