//! Components as job modules, through wasp's Python runner (`WASP_PYTHON_RUNNER`, which
//! `scripts/test` builds): loaded, compiled once (then from the disk cache), and run under
//! every limit with typed errors, in an empty WASI 0.2 sandbox.

use serde::Serialize;
use std::sync::OnceLock;
use std::time::Duration;
use wasp::{JobError, JobOptions, Module, ModuleError, ModuleKind, Server};
use wasp_tests::{wait, wait_output};

/// The variable naming the runner's `.wasm`.
const RUNNER: &str = "WASP_PYTHON_RUNNER";

/// The Python runner, or `None` (and why) when `WASP_PYTHON_RUNNER` is not set. Under
/// `CI=true` the tests must run: an unset variable fails them.
fn runner() -> Option<Module> {
    static RUNNER_MODULE: OnceLock<Option<Module>> = OnceLock::new();
    RUNNER_MODULE
        .get_or_init(|| match std::env::var(RUNNER) {
            Ok(path) if !path.trim().is_empty() => {
                Some(Module::from_file(path.trim()).expect("the Python runner loads"))
            }
            _ => {
                let why = format!(
                    "{RUNNER} is not set (scripts/test builds the runner and sets it; \
                     `python -m wasp.runner` prints the path of a built one)"
                );
                wasp_fixtures::cannot_run_here(&why);
                None
            }
        })
        .clone()
}

/// One server for these tests, with its own disk cache: the runner compiles once (it
/// takes seconds), and every test shares it.
fn server() -> &'static Server {
    static SERVER: OnceLock<(Server, tempfile::TempDir)> = OnceLock::new();
    &SERVER.get_or_init(|| wasp_tests::server(2)).0
}

/// A Python call: `function(*args)` of `source`, with `modules` imported.
#[derive(Serialize)]
struct Call<'a, A: Serialize>(&'a str, &'a str, A, &'a [&'a str]);

/// No arguments: an empty array (`()` would be nil).
const NO_ARGS: [u8; 0] = [];

fn python<R, A>(source: &str, function: &str, args: A, options: JobOptions) -> wasp::Job<R>
where
    R: serde::de::DeserializeOwned,
    A: Serialize,
{
    let runner = runner().expect("checked by the caller");
    let call = Call(source, function, args, &[]);
    server().submit_with::<R, _>(&runner, "python", call, &options)
}

#[test]
fn the_runner_is_a_component_with_one_job() {
    let Some(runner) = runner() else { return };
    assert_eq!(runner.kind(), ModuleKind::Component);
    assert_eq!(runner.jobs(), ["python"]);
}

#[test]
fn a_python_function_runs_and_prints() {
    if runner().is_none() {
        return;
    }
    let source = "def sum_primes(n):\n    print('summing', n)\n    return sum(p for p in range(2, n) if all(p % d for d in range(2, int(p ** 0.5) + 1)))\n";
    let job = python::<u64, _>(source, "sum_primes", (100,), JobOptions::new());
    let output = wait_output(&job);
    assert_eq!(output.result, Ok(1060));
    assert_eq!(output.stdout, b"summing 100\n");
}

#[test]
fn an_exception_fails_the_job_with_its_traceback() {
    if runner().is_none() {
        return;
    }
    let source = "def f(x):\n    return 1 / x\n";
    let job = python::<f64, _>(source, "f", (0,), JobOptions::new());
    match wait(&job) {
        Err(JobError::Failed(traceback)) => {
            assert!(traceback.contains("ZeroDivisionError"), "{traceback}");
            assert!(traceback.contains("return 1 / x"), "{traceback}");
        }
        other => panic!("expected a failed job, got {other:?}"),
    }
}

/// The sandbox is empty: no files, environment or network; waiting and looping for ever
/// end in typed errors; the server keeps serving.
#[test]
fn hostile_python_is_contained() {
    if runner().is_none() {
        return;
    }
    let reads = |code: &str| format!("def f():\n    {code}\n");
    for (code, expected) in [
        ("return open('/etc/passwd').read()", "Error"),
        ("import socket; return socket.socket()", "Error"),
    ] {
        let job = python::<String, _>(&reads(code), "f", NO_ARGS, JobOptions::new());
        match wait(&job) {
            Err(JobError::Failed(text)) => assert!(text.contains(expected), "{code}: {text}"),
            other => panic!("{code}: expected a failed job, got {other:?}"),
        }
    }
    let environ = python::<usize, _>(
        &reads("import os; return len(os.environ)"),
        "f",
        NO_ARGS,
        JobOptions::new(),
    );
    assert_eq!(wait(&environ), Ok(0));
    let spin = python::<(), _>(
        &reads("while True: pass"),
        "f",
        NO_ARGS,
        JobOptions::new().timeout(Duration::from_millis(300)),
    );
    assert!(matches!(wait(&spin), Err(JobError::Timeout(_))));
    let sleep = python::<(), _>(
        &reads("import time; time.sleep(30)"),
        "f",
        NO_ARGS,
        JobOptions::new(),
    );
    assert!(
        matches!(wait(&sleep), Err(JobError::Forbidden(_))),
        "{:?}",
        wait(&sleep)
    );
    let bomb = python::<(), _>(
        &reads("return bytearray(1 << 30)"),
        "f",
        NO_ARGS,
        JobOptions::new().max_memory(64 << 20),
    );
    match wait(&bomb) {
        Err(JobError::MemoryLimit { .. }) => {}
        Err(JobError::Failed(text)) if text.contains("MemoryError") => {}
        other => panic!("a memory bomb: {other:?}"),
    }
    let exit = python::<(), _>(
        &reads("import sys; sys.exit(3)"),
        "f",
        NO_ARGS,
        JobOptions::new(),
    );
    assert!(matches!(wait(&exit), Err(JobError::Failed(text)) if text.contains("SystemExit")));
    let after = python::<i64, _>(
        "def f(x):\n    return x + 1\n",
        "f",
        (41,),
        JobOptions::new(),
    );
    assert_eq!(wait(&after), Ok(42));
}

#[test]
fn a_component_is_compiled_once_then_loaded_from_disk() {
    let Some(runner) = runner() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = |server: &Server| {
        let call = Call("def f():\n    return 7\n", "f", NO_ARGS, &[]);
        let job = server.submit::<u32, _>(&runner, "python", call);
        assert_eq!(wait(&job), Ok(7));
        server.stats().cache
    };
    let first = wasp_tests::builder(&dir).workers(1).build().unwrap();
    let cache = run(&first);
    assert_eq!((cache.compiled, cache.loaded_from_disk), (1, 0));
    drop(first);
    let second = wasp_tests::builder(&dir).workers(1).build().unwrap();
    let cache = run(&second);
    assert_eq!((cache.compiled, cache.loaded_from_disk), (0, 1));
}

/// Code compiled ahead for the architecture's baseline (`wasp precompile`: what the x86-64
/// wheel ships) is loaded by a server that has never compiled the runner (on a CPU that
/// has the baseline's features; elsewhere the runner is compiled); also when it is as open
/// as the program it ships with (group-writable, as under `umask 002`). A corrupt file is
/// not, and the runner is compiled instead, with the same result.
#[test]
fn shipped_code_is_loaded_and_a_corrupt_file_is_compiled_instead() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(runner) = runner() else { return };
    let shipped = tempfile::tempdir().unwrap();
    let file = wasp::precompile_for_shipping(&runner, shipped.path()).unwrap();
    assert_eq!(file.parent(), Some(shipped.path()));
    let run = |server: &Server| {
        let call = Call("def f():\n    return 7\n", "f", NO_ARGS, &[]);
        let job = server.submit::<u32, _>(&runner, "python", call);
        assert_eq!(wait(&job), Ok(7));
        let cache = server.stats().cache;
        (cache.compiled, cache.loaded_from_disk)
    };
    let with_shipped = |dir: &tempfile::TempDir, program: Option<&std::path::Path>| {
        let mut builder = wasp_tests::builder(dir)
            .workers(1)
            .shipped_code_dir(shipped.path());
        if let Some(program) = program {
            builder = builder.shipped_with(program);
        }
        builder.build().unwrap()
    };
    let loaded = if wasp_fixtures::runs_the_baseline() {
        (0, 1)
    } else {
        (1, 0)
    };
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(run(&with_shipped(&fresh, None)), loaded);

    // As a package installed under `umask 002` has it: program and code group-writable.
    let group_writable = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    group_writable(shipped.path(), 0o775);
    group_writable(&file, 0o664);
    let program = shipped.path().join("program.so");
    std::fs::write(&program, b"the program").unwrap();
    group_writable(&program, 0o664);
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(run(&with_shipped(&fresh, Some(&program))), loaded);

    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(run(&with_shipped(&fresh, Some(&program))), (1, 0));
}

#[test]
fn only_components_are_compiled_for_shipping() {
    let core = wasp_tests::sum_primes();
    let out = tempfile::tempdir().unwrap();
    let err = wasp::precompile_for_shipping(&core, out.path()).unwrap_err();
    assert!(matches!(err, wasp::PrecompileError::NotComponent), "{err}");
}

/// Imports beyond WASI 0.2 and exports of another shape are refused at load, by name.
#[test]
fn components_that_break_the_contract_are_refused() {
    let importing = wat::parse_str(
        r#"(component
            (import "evil:host/exec@1.0.0" (instance))
        )"#,
    )
    .unwrap();
    let err = Module::from_bytes(importing).unwrap_err();
    assert!(
        matches!(&err, ModuleError::ForbiddenInterface { interface, .. } if interface == "evil:host/exec@1.0.0"),
        "{err}"
    );
    let wrong_shape = wat::parse_str(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 1))
            (core instance $i (instantiate $m))
            (func $f (result u32) (canon lift (core func $i "f")))
            (export "f" (func $f))
        )"#,
    )
    .unwrap();
    let err = Module::from_bytes(wrong_shape).unwrap_err();
    assert!(
        matches!(&err, ModuleError::BadExportType { export, .. } if export == "f"),
        "{err}"
    );
}

/// A Python function counting its calls in a global of its namespace.
const COUNTER: &str =
    "calls = 0\n\ndef count():\n    global calls\n    calls += 1\n    return calls\n";

/// With reuse, jobs of one owner run in the instance kept from the last (its state shows:
/// the count goes on); without, each runs in a fresh one. An instance stopped by a limit
/// is not kept.
#[test]
fn reused_instances_keep_their_state_and_fresh_ones_do_not() {
    let Some(runner) = runner() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = wasp_tests::builder(&dir).workers(1).build().unwrap();
    let count = |options: JobOptions| -> u32 {
        let call = Call(COUNTER, "count", NO_ARGS, &[]);
        let job = server.submit_with::<u32, _>(&runner, "python", call, &options);
        wait(&job).expect("count runs")
    };
    let reuse = || JobOptions::new().reuse_instance(true);
    assert_eq!(count(JobOptions::new()), 1);
    assert_eq!(count(JobOptions::new()), 1, "a fresh instance per job");
    assert_eq!([count(reuse()), count(reuse()), count(reuse())], [1, 2, 3]);
    let spin = Call(
        "def spin():\n    while True:\n        pass\n",
        "spin",
        NO_ARGS,
        &[],
    );
    let options = reuse().timeout(Duration::from_millis(200));
    let timed_out = server.submit_with::<(), _>(&runner, "python", spin, &options);
    assert!(matches!(wait(&timed_out), Err(JobError::Timeout(_))));
    assert_eq!(
        count(reuse()),
        1,
        "the instance that timed out was not kept"
    );
    assert_eq!(count(reuse()), 2);
    // A job that filled its memory (Python's MemoryError, caught) leaves it full: dropped.
    let fill = "def fill():\n    try:\n        return len(bytearray(1 << 30))\n    except MemoryError:\n        return -1\n";
    let options = reuse().max_memory(64 << 20);
    let call = Call(fill, "fill", NO_ARGS, &[]);
    let filled = server.submit_with::<i64, _>(&runner, "python", call, &options);
    assert_eq!(wait(&filled), Ok(-1));
    assert_eq!(count(reuse()), 1, "an instance refused memory was not kept");
    assert_eq!(count(JobOptions::new()), 1, "a job without reuse is fresh");
}

/// A value put once reaches a Python function as its argument: the component's argument
/// list is written from the segments (the value in its reference's place).
#[test]
fn a_value_put_once_reaches_a_python_function() {
    if runner().is_none() {
        return;
    }
    let table: Vec<u64> = (0..50_000).collect();
    let table = server().put(&table).unwrap();
    let source = "def total(values, offset):\n    return sum(values) + offset\n";
    let jobs: Vec<_> = (0..3u64)
        .map(|offset| python::<u64, _>(source, "total", (&table, offset), JobOptions::new()))
        .collect();
    let sum: u64 = (0..50_000).sum();
    for (offset, job) in jobs.iter().enumerate() {
        assert_eq!(wait(job), Ok(sum + offset as u64));
    }
}

/// A Python function that reads the clock or random numbers is not cached, on a fresh
/// instance or a kept one; a pure one, on a fresh instance, is (the runner seeds `random`
/// only when a job draws from it). (A pure job asking for reuse runs fresh or not,
/// whichever worker takes it: either way is right, so it is not checked.)
#[test]
fn python_is_cached_unless_it_reads_the_clock_or_random_numbers() {
    if runner().is_none() {
        return;
    }
    let sources = [
        (
            "import time\ndef f(x):\n    return int(time.time()) * 0 + x\n",
            false,
        ),
        (
            "import random\ndef f(x):\n    return random.random() * 0 + x\n",
            false,
        ),
        ("def f(x):\n    return x * 2 - x\n", true),
    ];
    for reuse in [false, true] {
        let options = JobOptions::new().reuse_instance(reuse).cache(true);
        for (source, pure) in sources.into_iter().filter(|(_, pure)| !(reuse && *pure)) {
            let before = server().stats().results;
            let job = python::<f64, _>(source, "f", (21,), options.clone());
            assert_eq!(wait(&job), Ok(21.0));
            server().wait_all();
            server().flush_results();
            let after = server().stats().results;
            let kept = pure;
            let counted = after.not_cacheable - before.not_cacheable;
            assert_eq!(counted, u64::from(!kept), "{source} (reuse: {reuse})");
            let stored = after.stored - before.stored;
            let hit = after.hits - before.hits;
            assert_eq!(stored + hit, u64::from(kept), "{source} (reuse: {reuse})");
        }
    }
}
