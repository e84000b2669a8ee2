//! Hostile modules: `wasp::Module::from_bytes` must refuse anything that is not a wasp module
//! with a typed `ModuleError` and never panic; and a module it accepts must run in a
//! `wasp::Server` with tight limits (1 MiB of memory, 20 ms, 256 bytes of output) to an end,
//! `Ok` or a typed `JobError` (never a panic, a hang or `JobError::Internal`).
//!
//! Byte 0 (modulo 4) picks how the module is made from the rest of the input:
//!
//! * 0: the raw bytes (what a mutated real module or garbage looks like). Accepted modules of
//!   at most 16 KiB are also run.
//! * 1: a wasm-smith module with an arbitrary wasm-smith configuration (every proposal it
//!   knows). It almost never has the wasp exports, so this mostly checks refusal; the rare
//!   one accepted is run.
//! * 2 and 3: a wasp-shaped wasm-smith module: `memory`, `wasp_alloc`, one to three
//!   `wasp_job_*` exports (sometimes `_initialize`), and a random set of the allowed imports
//!   (WASI preview 1 with their real types, and `wasp::panic`), with random code, in the
//!   feature set the wasp engine compiles. One mutation may be applied: a forbidden import, a
//!   wrong export type, a missing export, or a WASI import of the wrong type. The target knows
//!   what `from_bytes` must answer in each case and checks it; the module is then run
//!   (except when a refusal was expected): a job picked by the input, with arguments from the
//!   input. It must not fail to compile (what loads, the engine compiles), and for the wrong
//!   WASI type it must fail with `JobError::Module` (linking).
//!
//! Only wasp-shaped modules reach the run often; the wasm they run is random code that calls
//! the imports with random arguments, traps, loops, grows memory and writes output.

#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;
use wasp::{JobError, JobOptions, Module, ModuleError, Server};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mode) = u.arbitrary::<u8>() else {
        return;
    };
    match mode % 4 {
        0 => {
            let bytes = u.take_rest();
            if let Ok(module) = Module::from_bytes(bytes) {
                if bytes.len() <= 16 << 10 {
                    let job = module.jobs()[0].clone();
                    run(&module, &job, Vec::new(), Expect::Ends);
                }
            }
        }
        1 => {
            let Ok(config) = wasm_smith::Config::arbitrary(&mut u) else {
                return;
            };
            let Ok(smith) = wasm_smith::Module::new(config, &mut u) else {
                return;
            };
            if let Ok(module) = Module::from_bytes(smith.to_bytes()) {
                let job = module.jobs()[0].clone();
                run(&module, &job, Vec::new(), Expect::Ends);
            }
        }
        _ => {
            let _ = wasp_shaped(&mut u);
        }
    }
});

/// The WASI preview 1 functions a generated module may import, with their real types.
const WASI: &[(&str, &str)] = &[
    ("args_get", "(param i32 i32) (result i32)"),
    ("args_sizes_get", "(param i32 i32) (result i32)"),
    ("environ_get", "(param i32 i32) (result i32)"),
    ("environ_sizes_get", "(param i32 i32) (result i32)"),
    ("clock_res_get", "(param i32 i32) (result i32)"),
    ("clock_time_get", "(param i32 i64 i32) (result i32)"),
    ("fd_close", "(param i32) (result i32)"),
    ("fd_fdstat_get", "(param i32 i32) (result i32)"),
    ("fd_prestat_get", "(param i32 i32) (result i32)"),
    ("fd_prestat_dir_name", "(param i32 i32 i32) (result i32)"),
    ("fd_read", "(param i32 i32 i32 i32) (result i32)"),
    ("fd_write", "(param i32 i32 i32 i32) (result i32)"),
    ("fd_seek", "(param i32 i64 i32 i32) (result i32)"),
    ("fd_pread", "(param i32 i32 i32 i64 i32) (result i32)"),
    ("fd_readdir", "(param i32 i32 i32 i64 i32) (result i32)"),
    (
        "path_open",
        "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)",
    ),
    (
        "path_filestat_get",
        "(param i32 i32 i32 i32 i32) (result i32)",
    ),
    ("path_create_directory", "(param i32 i32 i32) (result i32)"),
    ("path_unlink_file", "(param i32 i32 i32) (result i32)"),
    ("poll_oneoff", "(param i32 i32 i32 i32) (result i32)"),
    ("proc_exit", "(param i32)"),
    ("proc_raise", "(param i32) (result i32)"),
    ("random_get", "(param i32 i32) (result i32)"),
    ("sched_yield", "(result i32)"),
];

/// Job names, odd ones included: the empty name is a job too (`wasp_job_`).
const JOB_NAMES: &[&str] = &["run", "a", "", "x y", "ü", "wasp_job_"];

/// What a generated module should make of loading and running.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mutation {
    None,
    /// An import the sandbox refuses: `ForbiddenImport`.
    ForbiddenImport,
    /// `wasp_alloc` of the wrong type: `BadExportType`.
    BadAllocType,
    /// A job of the wrong type: `BadExportType`.
    BadJobType,
    /// No `memory`, or no `wasp_alloc`, or no job: `NotWaspModule`.
    Missing,
    /// A WASI import with an allowed name but the wrong type: loads, fails to link.
    BadWasiType,
}

fn wasp_shaped(u: &mut Unstructured<'_>) -> Result<()> {
    let mutation = *u.choose(&[
        Mutation::None,
        Mutation::None,
        Mutation::None,
        Mutation::None,
        Mutation::ForbiddenImport,
        Mutation::BadAllocType,
        Mutation::BadJobType,
        Mutation::Missing,
        Mutation::BadWasiType,
    ])?;
    let mut shape = String::from("(module\n");
    for (name, ty) in WASI {
        if u.ratio(1, 6)? {
            writeln!(
                shape,
                r#"(import "wasi_snapshot_preview1" "{name}" (func {ty}))"#
            )
            .unwrap();
        }
    }
    if u.arbitrary()? {
        shape.push_str(r#"(import "wasp" "panic" (func (param i32 i32)))"#);
    }
    match mutation {
        Mutation::ForbiddenImport => {
            let import = *u.choose(&[
                r#"(import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))"#,
                r#"(import "wasi_snapshot_preview1" "no_such_call" (func))"#,
                r#"(import "wasp" "exit" (func (param i32)))"#,
                r#"(import "env" "f" (func))"#,
                r#"(import "wasi_snapshot_preview1" "random_get" (global i32))"#,
            ])?;
            shape.push_str(import);
        }
        Mutation::BadWasiType => {
            let (name, _) = u.choose(WASI)?;
            writeln!(
                shape,
                r#"(import "wasi_snapshot_preview1" "{name}" (func (param f32)))"#
            )
            .unwrap();
        }
        _ => {}
    }
    // Which of memory, wasp_alloc and the jobs a `Missing` module lacks.
    let missing = if mutation == Mutation::Missing {
        u.int_in_range(0..=2)?
    } else {
        3
    };
    if missing != 0 {
        let max = u.int_in_range(1..=32u32)?; // pages; past 16 the 1 MiB limit applies
        writeln!(shape, r#"(memory (export "memory") 1 {max})"#).unwrap();
    }
    if missing != 1 {
        let ty = if mutation == Mutation::BadAllocType {
            "(param i32 i32) (result i32)"
        } else {
            "(param i32) (result i32)"
        };
        writeln!(shape, r#"(func (export "wasp_alloc") {ty} unreachable)"#).unwrap();
    }
    let mut jobs = Vec::new();
    if missing != 2 {
        for _ in 0..u.int_in_range(1..=3)? {
            let name = *u.choose(JOB_NAMES)?;
            if !jobs.contains(&name) {
                jobs.push(name);
            }
        }
        for (i, name) in jobs.iter().enumerate() {
            let ty = if mutation == Mutation::BadJobType && i == 0 {
                "(param i32 i32) (result i32)"
            } else {
                "(param i32 i32) (result i64)"
            };
            writeln!(
                shape,
                r#"(func (export "wasp_job_{name}") {ty} unreachable)"#
            )
            .unwrap();
        }
    }
    if u.ratio(1, 4)? {
        shape.push_str(r#"(func (export "_initialize") unreachable)"#);
    }
    shape.push(')');

    let mut config = engine_config(u)?;
    config.module_shape = Some(wat::parse_str(&shape).expect("the shape is valid text"));
    // Beyond what a wasp module may use: loading may refuse it as invalid.
    let beyond = config.reference_types_enabled || config.max_tables > 4;
    let bytes = wasm_smith::Module::new(config, u)?.to_bytes();

    let loaded = Module::from_bytes(bytes);
    let mut sorted: Vec<String> = jobs.iter().map(|name| name.to_string()).collect();
    sorted.sort();
    let module = match (mutation, loaded) {
        (Mutation::None | Mutation::BadWasiType, Ok(module)) => {
            assert_eq!(module.jobs(), sorted, "the jobs of\n{shape}");
            module
        }
        (Mutation::ForbiddenImport, Err(ModuleError::ForbiddenImport { .. }))
        | (Mutation::BadAllocType | Mutation::BadJobType, Err(ModuleError::BadExportType { .. }))
        | (Mutation::Missing, Err(ModuleError::NotWaspModule(_))) => return Ok(()),
        (_, Err(ModuleError::Invalid(_))) if beyond => return Ok(()),
        (mutation, loaded) => panic!("{mutation:?}: loading\n{shape}\ngave {loaded:?}"),
    };
    let job = *u.choose(&jobs)?;
    let len = u.arbitrary_len::<u8>()?;
    // One MessagePack value (the server refuses anything else before the module runs).
    let args = rmp_serde::to_vec(serde_bytes::Bytes::new(u.bytes(len)?)).expect("bytes encode");
    let expect = if mutation == Mutation::BadWasiType {
        Expect::LinkError
    } else {
        Expect::Compiles
    };
    run(&module, job, args, expect);
    Ok(())
}

/// A wasm-smith configuration around what the wasp engine compiles (`FEATURES` in
/// runtime/src/module/validate.rs; one memory; at most 4 tables), with some features beyond
/// it (reference types, which wasm-smith uses with typed function references), which
/// loading must refuse; small enough to compile in milliseconds.
fn engine_config(u: &mut Unstructured<'_>) -> Result<wasm_smith::Config> {
    let simd = u.arbitrary()?;
    Ok(wasm_smith::Config {
        max_funcs: u.int_in_range(1..=20)?,
        max_instructions: u.int_in_range(1..=500)?,
        max_memories: 1,
        max_tables: u.int_in_range(0..=5)?,
        max_table_elements: 1_000,
        max_data_segments: 10,
        max_element_segments: 10,
        max_globals: 20,
        max_types: 30,
        max_imports: 30,
        max_exports: 30,
        max_memory32_bytes: 2 << 20,
        max_nesting_depth: 8,
        memory64_enabled: false,
        multi_value_enabled: u.arbitrary()?,
        bulk_memory_enabled: true,
        reference_types_enabled: u.arbitrary()?,
        simd_enabled: simd,
        relaxed_simd_enabled: simd && u.arbitrary()?,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        tail_call_enabled: u.arbitrary()?,
        extended_const_enabled: u.arbitrary()?,
        gc_enabled: false,
        exceptions_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        wide_arithmetic_enabled: false,
        custom_page_sizes_enabled: false,
        compact_imports_enabled: false,
        custom_descriptors_enabled: false,
        disallow_traps: u.arbitrary()?,
        ..wasm_smith::Config::default()
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Any end: a result or a typed error.
    Ends,
    /// Any end, but not a refusal by the engine's parser or compiler: what loading accepts,
    /// in the feature set of `engine_config`, the engine must compile.
    Compiles,
    /// The module must fail to link (`JobError::Module`).
    LinkError,
}

/// The server modules run in. Each one it runs stays compiled in it, so it is replaced after
/// a while to keep the fuzzer's memory bounded.
static SERVER: Mutex<Option<(Server, usize)>> = Mutex::new(None);
const MODULES_PER_SERVER: usize = 64;

fn run(module: &Module, job: &str, args: Vec<u8>, expect: Expect) {
    let mut guard = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    if guard
        .as_ref()
        .is_some_and(|(_, runs)| *runs >= MODULES_PER_SERVER)
    {
        *guard = None; // dropped (workers joined) before the next one reserves its pool
    }
    let (server, runs) = guard.get_or_insert_with(|| {
        let server = Server::builder()
            .workers(1)
            .no_disk_cache()
            .max_memory(1 << 20)
            .timeout(Duration::from_millis(20))
            .build()
            .expect("a server");
        (server, 0)
    });
    *runs += 1;
    let options = JobOptions::new().max_output(256);
    let handle = server.submit_raw::<IgnoredAny>(module, job, args, &options);
    // Compilation is part of the wait; 20 ms of running, then a generous margin.
    let Some(result) = handle.wait_timeout(Duration::from_secs(120)) else {
        panic!("job `{job}` did not end");
    };
    match (expect, &result) {
        (_, Err(JobError::Internal(message))) => panic!("internal error: {message}"),
        (Expect::Compiles, Err(JobError::Module(message)))
            if ["failed to parse", "failed to compile"]
                .iter()
                .any(|refusal| message.contains(refusal)) =>
        {
            panic!("a module that loads does not compile: {message}")
        }
        (Expect::LinkError, Err(JobError::Module(_))) | (Expect::Ends | Expect::Compiles, _) => {}
        (Expect::LinkError, _) => panic!("a WASI import of the wrong type linked: {result:?}"),
    }
}
