//! No code: see this crate's `Cargo.toml`. A dependency of the `wasp` binary and of the
//! Python extension, so that they and the tests compile wasmtime and its dependencies with
//! the same features, once.
