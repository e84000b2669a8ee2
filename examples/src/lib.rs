//! The wasp examples' guest modules, built by this crate's build script and embedded.
//!
//! Each constant holds the bytes of a module built from `examples/guests/<name>` with the
//! wasp-guest SDK, so that `cargo run -p wasp-examples --bin <example>` needs no setup.

/// The sum_primes module (`examples/guests/sum-primes`): `sum_primes(n: u64) -> u64`.
pub const SUM_PRIMES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sum-primes-guest.wasm"));

/// The mandelbrot module (`examples/guests/mandelbrot`):
/// `render_tile(x0: u32, y0: u32, w: u32, h: u32, width: u32, height: u32) -> Vec<u8>`,
/// the grey levels of one tile of the image.
pub const MANDELBROT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mandelbrot-guest.wasm"));

/// The pi module (`examples/guests/pi`): `count_inside(seed: u64, samples: u64) -> u64`,
/// how many random points of the unit square fall inside the quarter disc.
pub const PI: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pi-guest.wasm"));

/// The trivial module (`examples/guests/trivial`): `add_one(x: i64) -> i64`, to measure what
/// wasp costs per job.
pub const TRIVIAL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/trivial-guest.wasm"));

/// The data-plane benchmarks' module (`examples/guests/data`): `sum_primes_with(table,
/// n)`, `sum(values)` and `sum_primes(n)`.
pub const DATA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/data-guest.wasm"));

/// The same module with one line of a helper changed (`examples/guests/data-variant`).
pub const DATA_VARIANT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/data-variant-guest.wasm"));
