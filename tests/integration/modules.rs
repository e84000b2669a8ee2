//! Loading modules: every kind of bad input is refused with an error that says what is
//! wrong, before anything runs.

use wasp::{Module, ModuleError};

#[test]
fn bytes_that_are_not_wasm() {
    let err = Module::from_bytes(b"#!/bin/sh\nrm -rf /\n".to_vec()).unwrap_err();
    assert!(matches!(err, ModuleError::NotWasm), "{err}");
}

#[test]
fn a_truncated_module_is_invalid() {
    let bytes = std::fs::read(wasp_fixtures::SUM_PRIMES_GUEST).unwrap();
    let err = Module::from_bytes(bytes[..bytes.len() / 2].to_vec()).unwrap_err();
    assert!(matches!(err, ModuleError::Invalid(_)), "{err}");
}

#[test]
fn a_missing_file_names_the_path() {
    let err = Module::from_file("/no/such/module.wasm").unwrap_err();
    assert!(err.to_string().contains("/no/such/module.wasm"), "{err}");
}

#[test]
fn a_module_without_wasp_exports() {
    let wasm = wat::parse_str(r#"(module (func (export "main")))"#).unwrap();
    let err = Module::from_bytes(wasm).unwrap_err();
    assert!(matches!(err, ModuleError::NotWaspModule(_)), "{err}");
}

/// A minimal valid wasp module (in WAT) with one extra import.
fn module_importing(import: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            {import}
            (memory (export "memory") 1)
            (func (export "wasp_alloc") (param i32) (result i32) i32.const 8)
            (func (export "wasp_job_f") (param i32 i32) (result i64) i64.const 0))"#
    ))
    .unwrap()
}

#[test]
fn a_module_importing_the_host_environment_is_refused() {
    let err = Module::from_bytes(module_importing(
        r#"(import "env" "system" (func (param i32)))"#,
    ))
    .unwrap_err();
    match err {
        ModuleError::ForbiddenImport { module, name, .. } => {
            assert_eq!((module.as_str(), name.as_str()), ("env", "system"))
        }
        other => panic!("expected ForbiddenImport, got {other}"),
    }
}

#[test]
fn a_module_importing_sockets_is_refused() {
    let wasi_socket = r#"(import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))"#;
    let err = Module::from_bytes(module_importing(wasi_socket)).unwrap_err();
    assert!(err.to_string().contains("sock_accept"), "{err}");
    assert!(err.to_string().contains("network"), "{err}");
}

#[test]
fn a_wasp_export_with_the_wrong_type_is_refused() {
    let wasm = wat::parse_str(
        r#"(module
            (memory (export "memory") 1)
            (func (export "wasp_alloc") (param i32) (result i32) i32.const 8)
            (func (export "wasp_job_f") (param i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let err = Module::from_bytes(wasm).unwrap_err();
    assert!(matches!(err, ModuleError::BadExportType { .. }), "{err}");
}

#[test]
fn the_identity_is_the_blake3_hash_of_the_bytes() {
    let module = wasp_tests::sum_primes();
    let bytes = std::fs::read(wasp_fixtures::SUM_PRIMES_GUEST).unwrap();
    assert_eq!(module.hash().as_bytes(), blake3::hash(&bytes).as_bytes());
    assert_eq!(
        module.hash().to_hex(),
        blake3::hash(&bytes).to_hex().as_str()
    );
    assert_eq!(module.jobs(), ["sum_primes"]);
}
