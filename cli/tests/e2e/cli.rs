//! The `wasp` command line, run as a real process on real modules.

use std::path::Path;
use std::process::{Command, Output};

fn wasp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("wasp runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs wasp, checks its exit status and that stderr mentions `needle`.
fn expect_failure(args: &[&str], code: i32, needle: &str) -> Output {
    let out = wasp(args);
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains(needle), "expected {needle:?} in: {text}");
    out
}

const SUM_PRIMES: &str = wasp_fixtures::SUM_PRIMES_GUEST;
const TESTJOBS: &str = wasp_fixtures::WASP_TESTJOBS;

#[test]
fn run_prints_the_result_as_json() {
    let out = wasp(&["run", SUM_PRIMES, "sum_primes", "100", "--no-cache"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1060\n");

    let out = wasp(&[
        "run",
        TESTJOBS,
        "scale",
        r#"{"width": 2, "height": 0.5}"#,
        "3",
        "--no-cache",
    ]);
    assert_eq!(
        stdout(&out),
        "{\"width\":6.0,\"height\":1.5}\n",
        "{}",
        stderr(&out)
    );

    let out = wasp(&["run", TESTJOBS, "add_one", "-5", "--no-cache"]);
    assert_eq!(stdout(&out), "-4\n", "{}", stderr(&out));
}

#[test]
fn run_sends_the_job_output_to_stderr() {
    let out = wasp(&["run", TESTJOBS, "greet", r#""ann""#, "--no-cache"]);
    assert_eq!(stdout(&out), "\"greeted ann\"\n");
    assert!(stderr(&out).contains("hello, ann"), "{}", stderr(&out));
}

/// A job's output cannot drive the user's terminal: escape sequences arrive escaped.
#[test]
fn job_output_is_shown_without_terminal_escapes() {
    let name = r#""\u001b]0;pwned\u0007\u001b[2J""#;
    let out = wasp(&["run", TESTJOBS, "greet", name, "--no-cache"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stderr(&out);
    assert!(
        shown.contains(r"hello, \u{1b}]0;pwned\u{7}\u{1b}[2J"),
        "{shown}"
    );
    assert!(
        !shown.contains('\u{1b}'),
        "a raw escape reached stderr: {shown:?}"
    );
}

#[test]
fn a_job_error_is_printed_with_a_nonzero_exit() {
    let panicked = expect_failure(
        &["run", TESTJOBS, "panics", r#""boom""#, "--no-cache"],
        1,
        "job `panics` failed: job panicked: boom",
    );
    assert!(stdout(&panicked).is_empty());
    let spin = ["run", TESTJOBS, "spin", "--timeout", "200ms", "--no-cache"];
    expect_failure(&spin, 1, "timed out after 200ms");
    let bomb = [
        "run",
        TESTJOBS,
        "memory_bomb",
        "--max-memory",
        "16MiB",
        "--no-cache",
    ];
    expect_failure(&bomb, 1, "memory limit of 16777216 bytes");
    let unknown = ["run", SUM_PRIMES, "no_such_job", "--no-cache"];
    expect_failure(&unknown, 1, "it has: sum_primes");
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    expect_failure(&["run", "Cargo.toml", "f"], 2, "not a WebAssembly module");
    expect_failure(&["run", "/no/such.wasm", "f"], 2, "/no/such.wasm");
    expect_failure(&["run", TESTJOBS, "repeat", "ab", "3"], 2, "argument 1");
    expect_failure(
        &["run", TESTJOBS, "spin", "--timeout", "soon"],
        2,
        "--timeout",
    );
}

fn write_input(dir: &Path, text: &str) -> String {
    let path = dir.join("input.jsonl");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn map_prints_results_in_input_order_and_stats_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..50).map(|i| format!("[{}]\n", (50 - i) * 3)).collect();
    let input = write_input(dir.path(), &lines);
    let out = wasp(&[
        "map",
        TESTJOBS,
        "busy_ms",
        "--input",
        &input,
        "--workers",
        "2",
        "--stats",
        "--no-cache",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: String = (0..50).map(|i| format!("{}\n", (50 - i) * 3)).collect();
    assert_eq!(stdout(&out), expected);
    assert!(
        stderr(&out).contains("Job execution statistics"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("local/1"), "{}", stderr(&out));
    // The table adds up: every result printed is counted, in the rows and the totals.
    assert!(
        stderr(&out).contains("0 jobs queued, 0 running, 2 workers; 50 finished, 0 failed"),
        "{}",
        stderr(&out)
    );
    let rows: u64 = stderr(&out)
        .lines()
        .filter(|line| line.contains("| local/"))
        .map(|line| {
            line.split('|')
                .next()
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(rows, 50, "{}", stderr(&out));
}

#[test]
fn map_reports_failed_lines_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "[4.0]\n\n[-1.0]\n[9.0]\n");
    let map = [
        "map",
        TESTJOBS,
        "checked_sqrt",
        "--input",
        &input,
        "--no-cache",
    ];
    let out = expect_failure(&map, 1, "line 3: job failed");
    assert_eq!(stdout(&out), "2.0\nnull\n3.0\n");
}

#[test]
fn map_refuses_a_malformed_input_file_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "[1]\n{\"n\": 2}\n");
    let map = [
        "map",
        SUM_PRIMES,
        "sum_primes",
        "--input",
        &input,
        "--no-cache",
    ];
    let out = expect_failure(&map, 2, "line 2");
    assert!(stdout(&out).is_empty(), "nothing ran");
}

#[test]
fn a_second_process_loads_the_module_from_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().display().to_string();
    let run = [
        "run",
        SUM_PRIMES,
        "sum_primes",
        "10",
        "--cache-dir",
        &cache,
        "--stats",
    ];
    let first = wasp(&run);
    let text = stderr(&first);
    assert!(
        text.contains("1 compiled, 0 loaded from the disk cache"),
        "{text}"
    );
    let second = wasp(&run);
    assert_eq!(stdout(&second), "17\n");
    let text = stderr(&second);
    assert!(
        text.contains("0 compiled, 1 loaded from the disk cache"),
        "{text}"
    );
}

#[test]
fn build_compiles_a_guest_crate_and_prints_its_hash() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let manifest = workspace.join("examples/guests/sum-primes/Cargo.toml");
    // A target directory of its own: the one running this test may be locked by cargo.
    let target = workspace.join("target/wasp-cli-test");
    let out = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["build", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let path = text.lines().next().unwrap();
    assert!(path.ends_with("sum_primes_guest.wasm"), "{text}");
    let hash = blake3::hash(&std::fs::read(path).unwrap())
        .to_hex()
        .to_string();
    assert!(text.contains(&format!("blake3 {hash}")), "{text}");
    assert!(text.contains("jobs   sum_primes"), "{text}");
}

#[test]
fn build_explains_a_missing_crate() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("Cargo.toml").display().to_string();
    let build = ["build", "--manifest-path", &manifest];
    expect_failure(&build, 2, "cargo build for wasm32-wasip1 failed");
}

#[test]
fn secret_new_prints_a_fresh_random_secret() {
    let first = wasp(&["secret", "new"]);
    let second = wasp(&["secret", "new"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let (a, b) = (stdout(&first), stdout(&second));
    assert_eq!(a.len(), 65, "64 hex digits and a newline: {a:?}");
    assert!(a.trim().chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    assert_ne!(a, b);
    let parsed = wasp::ClusterSecret::parse(&a).unwrap();
    assert_eq!(parsed.to_hex(), a.trim());
}

/// Runs wasp in `dir` to its end, failing the test if it takes longer than `timeout`.
fn wasp_in(dir: &Path, args: &[&str], timeout: std::time::Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wasp starts");
    let pid = child.id();
    let (done, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(timeout) {
        Ok(output) => output.expect("wasp's output is read"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "`wasp {}` did not finish within {timeout:?}",
                args.join(" ")
            );
        }
    }
}

/// A first job in five minutes: `wasp new` makes a guest crate outside this repository,
/// `wasp build` builds it, `wasp run` runs its jobs.
#[test]
fn new_makes_a_guest_crate_that_builds_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let made = wasp_in(
        dir.path(),
        &["new", "my-jobs"],
        std::time::Duration::from_secs(30),
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let crate_dir = dir.path().join("my-jobs");
    assert!(stdout(&made).contains("wasp build"), "{}", stdout(&made));
    // The workspace's lock file pins the dependencies' versions (and spares the build a
    // registry lookup); cargo keeps what the new crate uses.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::copy(workspace.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let built = wasp_in(&crate_dir, &["build"], std::time::Duration::from_secs(600));
    assert!(built.status.success(), "{}", stderr(&built));
    let module = "target/wasm32-wasip1/release/my_jobs.wasm";
    assert!(
        stdout(&built).contains("jobs   hello, sum_primes"),
        "{}",
        stdout(&built)
    );
    let timeout = std::time::Duration::from_secs(60);
    let sum = wasp_in(&crate_dir, &["run", module, "sum_primes", "100"], timeout);
    assert_eq!(stdout(&sum), "1060\n", "{}", stderr(&sum));
    let hello = wasp_in(&crate_dir, &["run", module, "hello", "\"world\""], timeout);
    assert_eq!(stdout(&hello), "\"hello, world!\"\n", "{}", stderr(&hello));
    assert!(
        stderr(&hello).contains("greeting world"),
        "{}",
        stderr(&hello)
    );
    // Nothing is overwritten, and names cargo would refuse are refused first.
    let again = wasp_in(dir.path(), &["new", "my-jobs"], timeout);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    let bad = wasp_in(dir.path(), &["new", "9 lives"], timeout);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("not a crate name"),
        "{}",
        stderr(&bad)
    );
}

/// `wasp run job.py FUNCTION ARGS`: a Python file's function, in wasp's Python runner
/// (`WASP_PYTHON_RUNNER`, which scripts/test builds; under `CI=true` it must be set), and
/// `wasp map` over it.
#[test]
fn run_and_map_take_a_python_file() {
    if std::env::var_os("WASP_PYTHON_RUNNER").is_none() {
        wasp_fixtures::cannot_run_here("WASP_PYTHON_RUNNER is not set (scripts/test sets it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.py");
    std::fs::write(
        &job,
        "import math\n\ndef isprime(n):\n    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))\n\n\
         def sum_primes(n):\n    print('summing', n)\n    return sum(x for x in range(2, n) if isprime(x))\n",
    )
    .unwrap();
    let job = job.to_str().unwrap();
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let out = wasp(&["run", job, "sum_primes", "100", "--cache-dir", cache]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1060\n");
    assert!(stderr(&out).contains("summing 100"), "{}", stderr(&out));

    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "[10]\n[100]\n").unwrap();
    let input = input.to_str().unwrap();
    let out = wasp(&["map", job, "sum_primes", "-i", input, "--cache-dir", cache]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "17\n1060\n");

    expect_failure(
        &["run", job, "no_such", "1"],
        2,
        "defines no function `no_such`",
    );
    let out = wasp(&["run", job, "sum_primes", "\"x\"", "--cache-dir", cache]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("TypeError"), "{}", stderr(&out));
}

/// `--data NAME=FILE` puts a file once; every line that says `{"$data": "NAME"}` takes it.
#[test]
fn map_takes_a_file_put_once_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
    let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
    let file = dir.path().join("table.bin");
    std::fs::write(&file, &bytes).unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "[{\"$data\": \"table\"}]\n".repeat(5)).unwrap();
    let data = format!("table={}", file.display());
    let args = [
        "map",
        TESTJOBS,
        "checksum",
        "--input",
        input.to_str().unwrap(),
    ];
    let out = wasp(&[&args[..], &["--data", &data, "--no-cache"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("[100000,{sum}]\n").repeat(5));
    // A name no --data gives is refused before anything runs.
    expect_failure(
        &[&args[..], &["--no-cache"]].concat(),
        2,
        "--data table=FILE",
    );
    let out = wasp(&[
        "run",
        TESTJOBS,
        "checksum",
        "{\"$data\": \"t\"}",
        "--data",
        &format!("t={}", file.display()),
        "--no-cache",
    ]);
    assert_eq!(
        stdout(&out),
        format!("[100000,{sum}]\n"),
        "{}",
        stderr(&out)
    );
}

/// `--cache`: the second run of a map is answered from the cache; `wasp cache stats` and
/// `clear` see and empty it.
#[test]
fn map_with_cache_answers_the_second_run_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let lines: String = (0..20).map(|n| format!("[{}]\n", n * 100)).collect();
    std::fs::write(&input, lines).unwrap();
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let map = [
        "map",
        SUM_PRIMES,
        "sum_primes",
        "--input",
        input.to_str().unwrap(),
        "--cache",
        "--cache-dir",
        cache,
        "--stats",
    ];
    let first = wasp(&map);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("cache: 0 hits, 20 stored, 0 not cacheable"),
        "{}",
        stderr(&first)
    );
    let second = wasp(&map);
    assert_eq!(stdout(&second), stdout(&first));
    assert!(
        stderr(&second).contains("cache: 20 hits, 0 stored, 0 not cacheable"),
        "{}",
        stderr(&second)
    );
    let stats = wasp(&["cache", "stats", "--cache-dir", cache]);
    assert!(
        stdout(&stats).starts_with("results: 20 entries,"),
        "{}",
        stdout(&stats)
    );
    let cleared = wasp(&["cache", "clear", "--cache-dir", cache]);
    assert!(
        stdout(&cleared).starts_with("removed 20 entries"),
        "{}",
        stdout(&cleared)
    );
    let third = wasp(&map);
    assert!(
        stderr(&third).contains("cache: 0 hits, 20 stored"),
        "{}",
        stderr(&third)
    );
    // A job that reads the clock is never answered from the cache.
    let now = [
        "run",
        TESTJOBS,
        "now_ms",
        "--cache",
        "--cache-dir",
        cache,
        "--stats",
    ];
    wasp(&now);
    let again = wasp(&now);
    assert!(
        stderr(&again).contains("cache: 0 hits, 0 stored, 1 not cacheable"),
        "{}",
        stderr(&again)
    );
}

/// `wasp secret copy`: a secret a container mounts readable by a group becomes a file only
/// its user may read, so the node that reads it has nothing to warn about; something that
/// is not a secret is not copied.
#[test]
fn secret_copy_makes_a_private_copy_of_a_checked_secret() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mounted = dir.path().join("mounted.key");
    std::fs::write(&mounted, format!("{}\n", "a7".repeat(32))).unwrap();
    std::fs::set_permissions(&mounted, std::fs::Permissions::from_mode(0o440)).unwrap();
    let copy = dir.path().join("cluster.key");
    for _ in 0..2 {
        let out = wasp(&[
            "secret",
            "copy",
            mounted.to_str().unwrap(),
            copy.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&mounted).unwrap()
    );
    let token = |file: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_wasp"))
            .args(["secret", "token", "--secret-file", file.to_str().unwrap()])
            .output()
            .expect("wasp runs");
        (stdout(&out), stderr(&out))
    };
    let (from_copy, warned) = token(&copy);
    assert!(!warned.contains("other users"), "{warned}");
    let (from_mounted, warned) = token(&mounted);
    assert!(
        warned.contains("other users"),
        "the mounted one is warned about: {warned}"
    );
    assert_eq!(from_copy, from_mounted, "the same secret");

    let garbage = dir.path().join("short");
    std::fs::write(&garbage, "abc").unwrap();
    let refused = dir.path().join("refused.key");
    let garbage = garbage.to_str().unwrap();
    expect_failure(
        &["secret", "copy", garbage, refused.to_str().unwrap()],
        2,
        "short",
    );
    assert!(!refused.exists());
}

/// `wasp node --memory-limit`: maxima not given are fitted to the limit (and said at
/// start); maxima given that do not fit are refused at start, saying what they need.
#[test]
fn a_nodes_maxima_fit_its_memory_limit_or_it_does_not_start() {
    let refused = expect_failure(
        &[
            "node",
            "--listen",
            "127.0.0.1:0",
            "--insecure",
            "--workers",
            "2",
            "--memory-limit",
            "1GiB",
            "--max-memory",
            "1GiB",
        ],
        2,
        "more than the node's memory limit",
    );
    assert!(stdout(&refused).is_empty(), "it did not start");
    // 1 GiB for 2 workers: a module store of 128 MiB (an eighth), a store of values of
    // 64 MiB (a sixteenth), 256 MiB for the node, and each job the rest of its half, less
    // its output and tables, in whole pages.
    let node = crate::harness::node::NodeProcess::start_with(
        crate::harness::node::Auth::Insecure,
        2,
        &["--memory-limit", "1GiB"],
    );
    let fitted = wasp::NodePolicy::within_memory(1 << 30, 2).max_memory;
    assert!(fitted < 1 << 30 && fitted > 250 << 20 && fitted.is_multiple_of(64 << 10));
    crate::harness::support::wait_until(
        "the node says its maxima",
        crate::harness::support::TIMEOUT,
        || {
            node.log().lines().any(|line| {
                line.contains("node maxima")
                    && line.contains(&format!("max_memory={fitted}"))
                    && line.contains(&format!("max_module_bytes={}", 128u64 << 20))
                    && line.contains(&format!("max_data_bytes={}", 64u64 << 20))
            })
        },
    );
}
