//! A mixed cluster: an x86-64 client runs one batch across a native `wasp node` and an
//! aarch64 one (a cross-built `wasp`, under qemu-user on this machine), both on 127.0.0.1.
//! The results are those of a local run, each node reports its architecture, and each
//! compiles the module for itself: the same blake3 hash, two compatibility keys, two kinds
//! of machine code in the two disk caches.
//!
//! The aarch64 node is run by the command in `WASP_AARCH64_NODE` (words separated by
//! spaces: a runner and its arguments, then the aarch64 `wasp`), e.g.
//! `qemu-aarch64-static -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/debug/wasp`.
//! `scripts/aarch64.sh` installs the cross toolchain and qemu, builds that binary and runs
//! this test with the variable set; without it, the mixed-cluster test says why and does
//! nothing, so that `cargo test` passes on machines without the toolchain.
//!
//! Also here, run natively: a node in an address space as small as a Raspberry Pi OS
//! kernel's (39-bit, 512 GiB) still starts and serves.
//!
//! Every wait is bounded, generously where the emulator is involved: cranelift compiling
//! under qemu takes tens of seconds.

use crate::harness::node::{Auth, NodeProcess, Program, WASP};
use crate::harness::support::{
    new_secret, python_runner, sum_primes, sums_of_primes_below, testjobs,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wasp::{ClusterSecret, Job, JobError, JobOptions, JobOutput, Module, Server, Stats};

/// The variable that names the command running an aarch64 `wasp`.
const AARCH64_NODE: &str = "WASP_AARCH64_NODE";

/// How long an emulated node may take to print its address.
const EMULATED_START: Duration = Duration::from_secs(300);

/// How long the nodes may take to connect to a client.
const CONNECT_WAIT: Duration = Duration::from_secs(120);

/// How long a batch may take, the emulated node's compilation of the module included.
const BATCH_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a client waits for a silent node, and a node for a silent client: long enough
/// for an emulated node on a busy machine, whose heartbeats come late.
const NODE_TIMEOUT: Duration = Duration::from_secs(20);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The user address space of an aarch64 kernel built with 39-bit virtual addresses, as
/// Raspberry Pi OS ships: 512 GiB.
const VA_39_BITS: u64 = 1 << 39;

/// ELF `e_machine` of x86-64 and aarch64 code, as in the `.cwasm` files.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// The first bytes of a disk cache file before wasmtime's payload: magic and checksum
/// (see `runtime/src/sandbox/disk.rs`).
const CACHE_HEADER_LEN: usize = 8 + 32;

/// The command of `WASP_AARCH64_NODE`, or `None` (and why) when it is not set. Under
/// `CI=true` the test must run: an unset variable fails it.
fn aarch64_command() -> Option<Vec<String>> {
    match std::env::var(AARCH64_NODE) {
        Ok(command) if !command.trim().is_empty() => {
            Some(command.split_whitespace().map(str::to_string).collect())
        }
        _ => {
            let why = format!(
                "{AARCH64_NODE} is not set (scripts/aarch64.sh cross-builds wasp for aarch64 \
                 and runs this test under qemu-user with it; `scripts/aarch64.sh node` prints \
                 the command to set it to)"
            );
            wasp_fixtures::cannot_run_here(&why);
            None
        }
    }
}

/// A node run by `command`, patient enough for an emulator.
fn node(command: Vec<String>, start_timeout: Duration, secret: &ClusterSecret) -> NodeProcess {
    let program = Program {
        command,
        start_timeout,
        client_timeout: CLIENT_TIMEOUT,
    };
    NodeProcess::start_program(program, Auth::Secret(secret), 1, &[])
}

/// A client of `nodes` with no local workers, connected to all of them.
fn client(secret: &ClusterSecret, nodes: &[&NodeProcess]) -> Server {
    let server = Server::builder()
        .workers(0)
        .no_disk_cache()
        .node_timeout(NODE_TIMEOUT)
        .secret(secret.clone())
        .peers(nodes.iter().map(|node| wasp::Peer::Addr(node.address())))
        .build()
        .expect("the client builds");
    if let Err(err) = server.wait_for_nodes(nodes.len(), CONNECT_WAIT) {
        panic!("the nodes did not connect: {err}");
    }
    server
}

/// The same jobs on this machine's own pool: the reference a cluster must match.
fn local() -> Server {
    Server::builder()
        .workers(2)
        .no_disk_cache()
        .build()
        .expect("the local server builds")
}

/// Waits for every job by `deadline`; their outputs.
fn outputs<T: serde::de::DeserializeOwned>(
    jobs: &[Job<T>],
    deadline: Instant,
) -> Vec<JobOutput<T>> {
    jobs.iter()
        .map(|job| {
            let left = deadline.saturating_duration_since(Instant::now());
            if job.wait_timeout(left).is_none() {
                panic!("{job:?} did not finish within {BATCH_TIMEOUT:?}");
            }
            job.wait_output()
        })
        .collect()
}

/// The results of `outputs`, failing the test on any error.
fn results<T: Clone + std::fmt::Debug>(outputs: &[JobOutput<T>]) -> Vec<T> {
    outputs
        .iter()
        .map(|output| match &output.result {
            Ok(value) => value.clone(),
            Err(err) => panic!("a job failed on {}: {err}", output.worker),
        })
        .collect()
}

/// The statistics row of `node`.
fn row<'a>(stats: &'a Stats, node: &NodeProcess) -> &'a wasp::NodeStats {
    let address = node.address().to_string();
    stats
        .nodes
        .iter()
        .find(|row| row.address == address)
        .unwrap_or_else(|| panic!("no row for {address}:\n{stats}"))
}

/// The engine directories of a node's disk cache that hold `module`'s compiled code.
fn cached(node: &NodeProcess, module: &Module) -> Vec<PathBuf> {
    let file = format!("{}.cwasm", module.hash());
    let Ok(dirs) = std::fs::read_dir(node.cache_dir()) else {
        return Vec::new();
    };
    dirs.map(|dir| dir.expect("cache dir entry readable").path())
        .filter(|dir| dir.join(&file).is_file())
        .collect()
}

/// The ELF machine of a disk cache file's compiled code.
fn machine(file: &Path) -> u16 {
    let bytes = std::fs::read(file).expect("cache file readable");
    let elf = &bytes[CACHE_HEADER_LEN..];
    assert_eq!(&elf[..4], b"\x7fELF", "{}: not ELF code", file.display());
    u16::from_le_bytes([elf[18], elf[19]])
}

/// Checks that `node` holds `module` compiled once, in a directory named for `arch`, as
/// `machine` code; the directory's name (`<arch>-<compatibility key>`).
fn check_cache(node: &NodeProcess, module: &Module, arch: &str, elf_machine: u16) -> String {
    let dirs = cached(node, module);
    let [dir] = &dirs[..] else {
        panic!(
            "{arch} node: expected {} in one engine directory of {}, found {dirs:?}",
            module.hash(),
            node.cache_dir().display()
        );
    };
    let name = dir
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with(&format!("{arch}-")), "{arch} node: {name}");
    let file = dir.join(format!("{}.cwasm", module.hash()));
    assert_eq!(machine(&file), elf_machine, "{}", file.display());
    name
}

/// pp's sum_primes over a range of sizes, on an x86-64 node and an aarch64 node at once.
#[test]
fn a_batch_runs_across_an_x86_64_and_an_aarch64_node() {
    let Some(command) = aarch64_command() else {
        return;
    };
    let secret = new_secret();
    let started = Instant::now();
    let aarch64 = node(command, EMULATED_START, &secret);
    eprintln!("aarch64 node up in {:.1?}", started.elapsed());
    let native = node(vec![WASP.to_string()], Duration::from_secs(20), &secret);
    let server = client(&secret, &[&native, &aarch64]);

    let module = sum_primes();
    let inputs: Vec<u64> = (0..32).map(|i| 10_000 + 2_900 * i).collect();
    let started = Instant::now();
    let jobs: Vec<Job<u64>> = inputs
        .iter()
        .map(|&n| server.submit(&module, "sum_primes", (n,)))
        .collect();
    let outputs = outputs(&jobs, started + BATCH_TIMEOUT);
    eprintln!(
        "batch of {} across both nodes in {:.1?}",
        jobs.len(),
        started.elapsed()
    );

    let expected: Vec<u64> = local()
        .map(&module, "sum_primes", inputs.iter().map(|&n| (n,)))
        .collect::<Result<_, _>>()
        .expect("the local run succeeds");
    assert_eq!(
        results(&outputs),
        expected,
        "the cluster and the local pool differ"
    );
    let sums = sums_of_primes_below(*inputs.last().expect("inputs"));
    let reference: Vec<u64> = inputs.iter().map(|&n| sums[n as usize]).collect();
    assert_eq!(
        expected, reference,
        "the local pool and the native sieve differ"
    );

    let summary = server.wait_all_timeout(Duration::from_secs(30));
    assert_eq!(summary.pending(), 0, "jobs still pending: {summary:?}");
    let stats = server.stats();
    for (node, arch) in [(&native, "x86_64"), (&aarch64, "aarch64")] {
        let row = row(&stats, node);
        assert_eq!(row.arch.as_deref(), Some(arch), "{stats}");
        assert!(row.connected, "{row:?}");
        assert!(row.jobs > 0, "the {arch} node did no work:\n{stats}");
        assert_eq!((row.failed, row.retries), (0, 0), "{row:?}");
        assert_eq!(row.module_transfers, 1, "{row:?}");
        let worker = format!("node {}", node.address());
        assert!(
            outputs.iter().any(|output| output.worker == worker),
            "no result came from {worker}"
        );
    }
    let node_jobs: u64 = stats.nodes.iter().map(|row| row.jobs).sum();
    assert_eq!(node_jobs, inputs.len() as u64, "{stats}");
    eprintln!("{stats}");

    // Each node compiled the module for itself: same hash, other key, other machine code.
    let native_key = check_cache(&native, &module, "x86_64", EM_X86_64);
    let aarch64_key = check_cache(&aarch64, &module, "aarch64", EM_AARCH64);
    assert_ne!(native_key, aarch64_key);
    eprintln!("{} cached as {native_key} and {aarch64_key}", module.hash());

    same_results_on_the_aarch64_node_alone(&secret, &aarch64);
    same_python_results_on_both_nodes(&secret, &native, &aarch64);
    print_memory_reset(&aarch64);
}

/// A Python function: sums of primes, float arithmetic and text.
const PYTHON_JOB: &str = "\
import math

def f(n):
    primes = [p for p in range(2, n) if all(p % d for d in range(2, math.isqrt(p) + 1))]
    return sum(primes), math.fsum(1 / p for p in primes), ' '.join(map(str, primes[-3:]))
";

/// The same Python function on each node alone, and locally: the same results, bit for
/// bit (each node compiles the runner, CPython, for itself).
fn same_python_results_on_both_nodes(
    secret: &ClusterSecret,
    native: &NodeProcess,
    aarch64: &NodeProcess,
) {
    let Some(runner) = python_runner() else {
        return;
    };
    let no_modules: [&str; 0] = [];
    let run = |server: &Server| -> Vec<(u64, f64, String)> {
        let jobs: Vec<Job<(u64, f64, String)>> = [100u64, 5_000]
            .iter()
            .map(|&n| server.submit(&runner, "python", (PYTHON_JOB, "f", (n,), no_modules)))
            .collect();
        results(&outputs(&jobs, Instant::now() + BATCH_TIMEOUT))
    };
    let started = Instant::now();
    let expected = run(&local());
    assert_eq!(expected[0].0, 1060);
    for (node, arch) in [(native, "x86_64"), (aarch64, "aarch64")] {
        let found = run(&client(secret, &[node]));
        let bits = |rows: &[(u64, f64, String)]| -> Vec<(u64, u64, String)> {
            rows.iter()
                .map(|(sum, float, text)| (*sum, float.to_bits(), text.clone()))
                .collect()
        };
        assert_eq!(bits(&found), bits(&expected), "the {arch} node");
    }
    eprintln!(
        "the Python job gave the same results locally and on both nodes ({:.1?})",
        started.elapsed()
    );
}

/// Floats, strings, errors and statics (a fresh instance per job: the pool's memory reset,
/// without `PAGEMAP_SCAN` under qemu-user) on the aarch64 node alone, against a local run.
fn same_results_on_the_aarch64_node_alone(secret: &ClusterSecret, aarch64: &NodeProcess) {
    let server = client(secret, &[aarch64]);
    let local = local();
    let module = testjobs();
    let deadline = Instant::now() + BATCH_TIMEOUT;
    let roots = [2.0, 0.1, 1e-300, 7.5e300, -1.0, f64::MAX];
    let sqrt = |server: &Server| -> Vec<Job<f64>> {
        roots
            .iter()
            .map(|&x| server.submit(&module, "checked_sqrt", (x,)))
            .collect()
    };
    let (remote_roots, local_roots) = (sqrt(&server), sqrt(&local));
    let calls: Vec<Job<u32>> = (0..4)
        .map(|_| server.submit(&module, "count_calls", ()))
        .collect();
    let text: Job<String> = server.submit(&module, "repeat", ("wasp ", 3u32));

    let remote_roots = outputs(&remote_roots, deadline);
    let local_roots = outputs(&local_roots, deadline);
    for ((x, remote), local) in roots.iter().zip(&remote_roots).zip(&local_roots) {
        // Bit for bit: wasm floats are IEEE 754 on every host.
        let bits = |output: &JobOutput<f64>| output.result.clone().map(f64::to_bits);
        assert_eq!(bits(remote), bits(local), "checked_sqrt({x})");
    }
    assert!(remote_roots[4].result.is_err(), "sqrt(-1) is a job error");
    assert_eq!(results(&outputs(&calls, deadline)), [1, 1, 1, 1]);
    assert_eq!(results(&outputs(&[text], deadline)), ["wasp wasp wasp "]);
    let stats = server.stats();
    assert_eq!(stats.nodes[0].arch.as_deref(), Some("aarch64"), "{stats}");
    check_cache(aarch64, &module, "aarch64", EM_AARCH64);
    same_fuel_on_the_aarch64_node(&server, &local, deadline);
}

/// Fuel counts WebAssembly instructions, not the machine's: a job uses the same fuel on
/// the aarch64 node as on this machine, and a budget runs out on both alike.
fn same_fuel_on_the_aarch64_node(server: &Server, local: &Server, deadline: Instant) {
    let module = sum_primes();
    let generous = JobOptions::new().fuel(u64::MAX / 2);
    let fueled = |server: &Server, options: &JobOptions| -> JobOutput<u64> {
        let job = server.submit_with(&module, "sum_primes", (20_000u64,), options);
        outputs(&[job], deadline).remove(0)
    };
    let (remote, here) = (fueled(server, &generous), fueled(local, &generous));
    assert_eq!(remote.result, Ok(21_171_191));
    let used = here.fuel_used.expect("fuel used is reported");
    assert_eq!(
        remote.fuel_used,
        Some(used),
        "the aarch64 node counted otherwise"
    );
    let short = JobOptions::new().fuel(used - 1);
    let remote = fueled(server, &short);
    assert_eq!(
        remote.result,
        Err(JobError::FuelExhausted { limit: used - 1 })
    );
    eprintln!("sum_primes(20000) used {used} fuel on both architectures");
}

/// Shows how the emulated node resets its sandboxes (its log at debug level says).
fn print_memory_reset(node: &NodeProcess) {
    for line in node.log().lines() {
        if line.contains("memory reset") || line.contains("sandbox slots") {
            eprintln!("aarch64 node: {line}");
        }
    }
}

/// Whether `prlimit` (util-linux) can run here.
fn have_prlimit() -> bool {
    Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The full pool needs about 1 TiB of address space; a node that has only 512 GiB (an
/// aarch64 kernel with 39-bit addresses, or `ulimit -v`) makes do with fewer sandbox slots
/// instead of refusing to start.
#[test]
fn a_node_in_a_39_bit_address_space_starts_and_serves() {
    if !have_prlimit() {
        // Under CI=true this fails: CI has util-linux, and the test must run.
        wasp_fixtures::cannot_run_here(
            "prlimit (util-linux) is not available to limit the address space",
        );
        return;
    }
    let secret = new_secret();
    let command = vec![
        "prlimit".to_string(),
        format!("--as={VA_39_BITS}"),
        WASP.to_string(),
    ];
    let node = node(command, Duration::from_secs(20), &secret);
    let server = client(&secret, &[&node]);
    let module = sum_primes();
    let jobs: Vec<Job<u64>> = [100u64, 100_000]
        .iter()
        .map(|&n| server.submit(&module, "sum_primes", (n,)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    assert_eq!(results(&outputs(&jobs, deadline)), [1060, 454_396_537]);
    assert!(
        node.log().contains("sandbox slots, not 256"),
        "the node should say that its pool is smaller:\n{}",
        node.log()
    );
}
