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

/// A wasp module (in WAT) whose job `f` has `body` and returns 7; `fields` go in the module.
fn module_with(fields: &str, body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            (memory (export "memory") 1)
            {fields}
            (func (export "wasp_alloc") (param i32) (result i32) i32.const 1024)
            ;; The result buffer at 16: status 0 (ok), then MessagePack 7.
            (func $seven (result i64)
                (i32.store8 (i32.const 16) (i32.const 0))
                (i32.store8 (i32.const 17) (i32.const 7))
                (i64.or (i64.const 16) (i64.shl (i64.const 2) (i64.const 32))))
            (func (export "wasp_job_f") (param i32 i32) (result i64) {body}))"#
    ))
    .unwrap()
}

/// What the engine cannot compile is refused when the module loads, not when a job runs.
#[test]
fn features_the_engine_lacks_are_refused_when_loading() {
    for (what, fields) in [
        ("externref", "(global (mut externref) (ref.null extern))"),
        ("two memories", "(memory 1)"),
        ("threads", "(memory $shared 1 1 shared)"),
        ("memory64", "(memory i64 1)"),
        ("five tables", &"(table 1 funcref)".repeat(5)),
    ] {
        let err = Module::from_bytes(module_with(fields, "call $seven")).unwrap_err();
        assert!(matches!(err, ModuleError::Invalid(_)), "{what}: {err}");
    }
}

/// What loads compiles and runs: WebAssembly 2.0 and the 3.0 features the engine has.
#[test]
fn modules_using_the_allowed_features_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = wasp_tests::builder(&dir).workers(1).build().unwrap();
    let simd = "(i32x4.extract_lane 0 (i32x4.trunc_sat_f32x4_s (f32x4.relaxed_madd \
        (v128.const f32x4 1 1 1 1) (v128.const f32x4 3 3 3 3) (v128.const f32x4 4 4 4 4))))";
    let cases = [
        ("tail call", String::new(), "return_call $seven".to_string()),
        (
            "bulk memory",
            String::new(),
            "(memory.fill (i32.const 0) (i32.const 9) (i32.const 16)) call $seven".into(),
        ),
        (
            "extended const, multi-value",
            "(global $g i32 (i32.add (i32.const 3) (i32.const 4)))".into(),
            "(block (result i32 i32) (global.get $g) (i32.const 0)) drop drop call $seven".into(),
        ),
        (
            "SIMD and relaxed SIMD",
            String::new(),
            format!("(drop {simd}) call $seven"),
        ),
        (
            "four tables of functions",
            "(table 1 funcref)".repeat(4),
            "call $seven".into(),
        ),
    ];
    for (what, fields, body) in cases {
        let module = Module::from_bytes(module_with(&fields, &body))
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        let job = server.submit::<u32, _>(&module, "f", ());
        assert_eq!(wasp_tests::wait(&job), Ok(7), "{what}");
    }
}

#[test]
fn a_component_without_jobs_is_refused() {
    let wasm = wat::parse_str("(component)").unwrap();
    let err = Module::from_bytes(wasm).unwrap_err();
    assert!(matches!(err, ModuleError::NotWaspModule(_)), "{err}");
}

/// A module may import functions only: no memory, table or global of the host's.
#[test]
fn importing_anything_but_functions_is_refused() {
    let memory = wat::parse_str(
        r#"(module
            (import "env" "memory" (memory 1))
            (export "memory" (memory 0))
            (func (export "wasp_alloc") (param i32) (result i32) i32.const 8)
            (func (export "wasp_job_f") (param i32 i32) (result i64) i64.const 0))"#,
    )
    .unwrap();
    let others = [
        r#"(import "env" "table" (table 1 funcref))"#,
        r#"(import "env" "global" (global i32))"#,
        r#"(import "wasi_snapshot_preview1" "fd_write" (global i32))"#,
    ];
    let modules = std::iter::once(("memory", memory))
        .chain(others.map(|import| (import, module_importing(import))));
    for (import, bytes) in modules {
        match Module::from_bytes(bytes) {
            Err(ModuleError::ForbiddenImport { why, .. }) => {
                assert!(why.contains("only functions"), "{import}: {why}")
            }
            other => panic!("{import}: expected ForbiddenImport, got {other:?}"),
        }
    }
}

/// Tables are capped at `max_table_elements` (100,000 by default): growing one past it
/// fails (`table.grow` returns -1, which the job checks), and a module whose table starts
/// larger cannot be instantiated.
#[test]
fn tables_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = wasp_tests::builder(&dir).workers(1).build().unwrap();
    let grow = module_with(
        "(table $t 1 funcref)",
        "(if (i32.ne (table.grow $t (ref.null func) (i32.const 200000)) (i32.const -1))
            (then unreachable))
         call $seven",
    );
    let job = server.submit::<u32, _>(&Module::from_bytes(grow).unwrap(), "f", ());
    assert_eq!(wasp_tests::wait(&job), Ok(7), "the growth was refused");
    let large = module_with("(table 200000 funcref)", "call $seven");
    let job = server.submit::<u32, _>(&Module::from_bytes(large).unwrap(), "f", ());
    match wasp_tests::wait(&job) {
        Err(wasp::JobError::Module(message)) => {
            assert!(message.contains("table"), "{message}")
        }
        other => panic!("expected the instantiation to fail, got {other:?}"),
    }
    let fine = server.submit::<i64, _>(&wasp_tests::testjobs(), "add_one", (1i64,));
    assert_eq!(wasp_tests::wait(&fine), Ok(2));
}

/// A malformed function body is refused when the module loads, or, for a module loaded
/// with its bodies left to the compiler (`Bodies::AtCompile`, for wasp's own runner), when
/// its first job compiles it: either way it never runs, and the server goes on.
#[test]
fn a_malformed_body_is_refused_at_load_or_at_compile() {
    let malformed = module_with("", "i32.add call $seven");
    let err = Module::from_bytes(malformed.clone()).unwrap_err();
    assert!(matches!(err, ModuleError::Invalid(_)), "{err}");

    let deferred = Module::from_bytes_with(malformed, wasp::Bodies::AtCompile)
        .expect("all but the bodies is checked");
    assert_eq!(deferred.jobs(), ["f"]);
    let dir = tempfile::tempdir().unwrap();
    let server = wasp_tests::builder(&dir).workers(1).build().unwrap();
    let job = server.submit::<u32, _>(&deferred, "f", ());
    let err = wasp_tests::wait(&job).unwrap_err();
    assert!(err.to_string().contains("type mismatch"), "{err}");

    let good = Module::from_bytes_with(module_with("", "call $seven"), wasp::Bodies::AtCompile)
        .expect("loads");
    let job = server.submit::<u32, _>(&good, "f", ());
    assert_eq!(wasp_tests::wait(&job), Ok(7));
    let truncated = module_with("", "call $seven");
    let err = Module::from_bytes_with(&truncated[..truncated.len() - 4], wasp::Bodies::AtCompile)
        .unwrap_err();
    assert!(matches!(err, ModuleError::Invalid(_)), "{err}");
}
