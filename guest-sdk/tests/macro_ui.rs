//! Compile-pass and compile-fail tests for `#[wasp_guest::job]`, checked with `trybuild`.
//!
//! On the host the macro emits no wasm export (it is behind `#[cfg(target_arch = "wasm32")]`),
//! so these tests check the macro's argument and signature validation, its error messages, and
//! that the function itself is preserved. Regenerate the `.stderr` snapshots with
//! `TRYBUILD=overwrite cargo test -p wasp-guest --test macro_ui`.

#[test]
fn job_macro_ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
