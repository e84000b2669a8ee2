//! The result cache: a deterministic job's result is found again by the next process; a
//! change to anything in the key misses; jobs that read a clock or random numbers are not
//! cached; corrupt entries are misses; concurrent writers leave whole entries.

use std::path::{Path, PathBuf};
use wasp::{JobError, JobOptions, Module, ResultCacheStats, Server};
use wasp_tests::{builder, sum_primes, testjobs, wait};

/// A server whose result cache is in `dir` (and its compiled code next to it).
fn cached_server(dir: &tempfile::TempDir) -> Server {
    builder(dir).workers(2).cache(true).build().unwrap()
}

fn results_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("cache").join("results")
}

/// Runs `function(args)` of `module` on `server` and returns its result and the worker.
fn run(
    server: &Server,
    module: &Module,
    function: &str,
    args: impl serde::Serialize,
) -> (u64, String) {
    let job = server.submit::<u64, _>(module, function, args);
    let output = wasp_tests::wait_output(&job);
    (output.result.unwrap(), output.worker)
}

fn stats(server: &Server) -> ResultCacheStats {
    server.wait_all();
    server.stats().results
}

#[test]
fn a_result_is_found_again_by_the_next_server() {
    let dir = tempfile::tempdir().unwrap();
    let module = sum_primes();
    {
        let server = cached_server(&dir);
        assert_eq!(
            run(&server, &module, "sum_primes", (10_000u64,)).0,
            5_736_396
        );
        let stats = stats(&server);
        assert_eq!((stats.hits, stats.misses), (0, 1));
    }
    let server = cached_server(&dir);
    let (sum, worker) = run(&server, &module, "sum_primes", (10_000u64,));
    assert_eq!(
        (sum, worker.as_str()),
        (5_736_396, wasp::result_cache::CACHE_WORKER)
    );
    let stats = stats(&server);
    assert_eq!((stats.hits, stats.stored), (1, 0));
    assert!(
        server
            .stats()
            .to_string()
            .contains("cache: 1 hits, 0 stored, 0 not cacheable")
    );
    // A job that does not ask for the cache runs.
    let job = server.submit_with::<u64, _>(
        &module,
        "sum_primes",
        (10_000u64,),
        &JobOptions::new().cache(false),
    );
    assert!(wasp_tests::wait_output(&job).worker.starts_with("local/"));
}

/// Every part of the key: another argument, function, module or fuel budget is a miss.
#[test]
fn a_change_to_any_part_of_the_key_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let (primes, jobs) = (sum_primes(), testjobs());
    let fuel = JobOptions::new().fuel(10_000_000);
    let calls = |server: &Server| {
        vec![
            server.submit::<u64, _>(&primes, "sum_primes", (100u64,)),
            server.submit::<u64, _>(&primes, "sum_primes", (102u64,)),
            server.submit_with::<u64, _>(&primes, "sum_primes", (100u64,), &fuel),
            server.submit::<u64, _>(&jobs, "answer", ()),
            server.submit::<u64, _>(&jobs, "count_calls", ()),
        ]
    };
    {
        let server = cached_server(&dir);
        calls(&server).iter().for_each(|job| {
            wait(job).unwrap();
        });
        assert_eq!(stats(&server).misses, 5);
    }
    assert_eq!(
        wasp::result_cache::usage(&results_dir(&dir))
            .unwrap()
            .entries,
        5
    );
    let server = cached_server(&dir);
    let results: Vec<u64> = calls(&server)
        .iter()
        .map(|job| wait(job).unwrap())
        .collect();
    assert_eq!(results, [1060, 1161, 1060, 42, 1]);
    assert_eq!(stats(&server).hits, 5);
}

/// Jobs that read a clock or random numbers, or stop at their time limit, are not kept.
#[test]
fn nondeterministic_jobs_are_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let module = testjobs();
    for round in 0..2u64 {
        let server = cached_server(&dir);
        let now = server.submit::<u64, _>(&module, "now_ms", ());
        let random = server.submit::<u64, _>(&module, "random_u64", ());
        let timeout = JobOptions::new().timeout(std::time::Duration::from_millis(50));
        let spin = server.submit_with::<u64, _>(&module, "spin", (), &timeout);
        let pure = server.submit::<i64, _>(&module, "add_one", (1i64,));
        for job in [&now, &random, &spin] {
            let output = wasp_tests::wait_output(job);
            assert_ne!(output.worker, wasp::result_cache::CACHE_WORKER);
        }
        assert!(matches!(wait(&spin), Err(JobError::Timeout(_))));
        assert_eq!(wait(&pure), Ok(2));
        let stats = stats(&server);
        assert_eq!(stats.not_cacheable, 3, "round {round}");
        assert_eq!(stats.hits, round, "only the pure job hits, the second time");
    }
}

/// Corrupt or truncated entries are misses, and the job runs again, right.
#[test]
fn corrupt_entries_are_misses() {
    let dir = tempfile::tempdir().unwrap();
    let module = sum_primes();
    let inputs = [200u64, 300, 400];
    {
        let server = cached_server(&dir);
        for n in inputs {
            run(&server, &module, "sum_primes", (n,));
        }
    }
    let files = entry_files(&results_dir(&dir));
    assert_eq!(files.len(), 3);
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    let mut flipped = std::fs::read(&files[1]).unwrap();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    std::fs::write(&files[1], flipped).unwrap();
    let server = cached_server(&dir);
    let sums: Vec<u64> = inputs
        .iter()
        .map(|&n| run(&server, &module, "sum_primes", (n,)).0)
        .collect();
    let native: Vec<u64> = inputs
        .iter()
        .map(|&n| sum_primes_guest::sum_primes(n))
        .collect();
    assert_eq!(sums, native);
    let stats = stats(&server);
    assert_eq!((stats.hits, stats.misses), (1, 2));
}

/// Two servers writing the same results at once leave whole entries the next one reads.
#[test]
fn concurrent_writers_leave_whole_entries() {
    let dir = tempfile::tempdir().unwrap();
    let module = sum_primes();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let server = cached_server(&dir);
                let jobs: Vec<_> = (0..50u64)
                    .map(|n| server.submit::<u64, _>(&module, "sum_primes", (n * 10,)))
                    .collect();
                jobs.iter().for_each(|job| {
                    wait(job).unwrap();
                });
            });
        }
    });
    let server = cached_server(&dir);
    let jobs: Vec<_> = (0..50u64)
        .map(|n| server.submit::<u64, _>(&module, "sum_primes", (n * 10,)))
        .collect();
    let native: Vec<u64> = (0..50u64)
        .map(|n| sum_primes_guest::sum_primes(n * 10))
        .collect();
    let cached: Vec<u64> = jobs.iter().map(|job| wait(job).unwrap()).collect();
    assert_eq!(cached, native);
    assert_eq!(stats(&server).hits, 50);
}

/// A job that takes another job's result is keyed by that result: the second run hits
/// both.
#[test]
fn jobs_that_take_results_are_cached_by_those_results() {
    let dir = tempfile::tempdir().unwrap();
    let module = testjobs();
    for hits in [0, 2] {
        let server = cached_server(&dir);
        let first = server.submit::<i64, _>(&module, "add_one", (41i64,));
        let second = server.submit::<i64, _>(&module, "add_one", (&first,));
        assert_eq!(wait(&second), Ok(43));
        assert_eq!(stats(&server).hits, hits);
    }
}

/// The cache directory is bounded: the least recently used entries go.
#[test]
fn the_cache_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let module = sum_primes();
    let server = builder(&dir)
        .workers(2)
        .cache(true)
        .result_cache_max_bytes(2000)
        .build()
        .unwrap();
    for n in 0..100u64 {
        run(&server, &module, "sum_primes", (n,));
    }
    drop(server);
    let usage = wasp::result_cache::usage(&results_dir(&dir)).unwrap();
    assert!(usage.bytes <= 2000, "{usage:?}");
    assert!(usage.entries > 0);
}

fn entry_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
        .map(|file| file.unwrap().path())
        .collect();
    files.sort();
    files
}
