/*!
Write wasp jobs in Rust.

A job is an ordinary Rust function marked with [`job`]. Build the crate as a `cdylib` for
`wasm32-wasip1` (`wasp build`, or `cargo build --release --target wasm32-wasip1`) and the
resulting `.wasm` module can be run by a wasp [host](https://docs.rs/wasp-runtime) on every core
of the machine, or on remote nodes, each call in a fresh sandbox.

```
#[wasp_guest::job]
fn sum_primes(n: u64) -> u64 {
    (2..n).filter(|&x| is_prime(x)).sum()
}

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|i| i * i <= n).all(|i| n % i != 0)
}

// The function stays an ordinary function: it can be tested natively.
assert_eq!(sum_primes(100), 1060);
```

# Core concepts

* **Arguments and results** are any [`serde`] types. Several parameters are fine; the host
  sends them as one MessagePack array (see [`abi`]).
* **Errors.** A job returning `Result<T, E>` with `E: Display` reports `Err(e)` to the host as a
  typed job error carrying `e.to_string()`. A panic becomes a job error carrying the panic
  message; it never hangs or kills a worker.
* **Output.** `println!` and `eprintln!` work: the host captures stdout and stderr (bounded) and
  returns them with the result.
* **No ambient authority.** A job has no files, no environment, no network; only its arguments,
  clocks and random numbers.

The crate's `Cargo.toml` needs:

```toml
[lib]
crate-type = ["cdylib", "rlib"]  # rlib: so the jobs can also be tested and called natively

[dependencies]
wasp-guest = "0.1"
```
*/
#![deny(missing_docs)]

/// The ABI between a wasp host and a guest module (the `wasp-abi` crate, which the host
/// uses too).
pub use wasp_abi as abi;

/// Turns a function into a wasp job exported from the module.
///
/// The function keeps its name, signature and body, so it can still be called and tested
/// natively. When compiled for `wasm32`, the macro also emits the export
/// `wasp_job_<name>` described in [`abi`], which decodes the arguments, calls the function and
/// encodes its result.
///
/// Parameters must implement `serde::de::DeserializeOwned`; the return type must implement
/// `serde::Serialize`, or be a `Result<T, E>` whose `T: Serialize` and `E: Display`.
///
/// Options: `#[job(name = "other")]` exports the job under another name;
/// `#[job(crate = "path::to::wasp_guest")]` names this crate when it is re-exported.
pub use wasp_guest_macros::job;

#[doc(hidden)]
pub mod __private;
