//! Fuel: a CPU budget counted in WebAssembly instructions. Running out is a typed error, the
//! fuel a job uses is the same on every run, and jobs without a budget are not affected.

use wasp::{CacheStats, JobError, JobOptions};
use wasp_tests::{server, sum_primes, testjobs, wait, wait_output};

#[test]
fn a_job_that_loops_runs_out_of_fuel() {
    let (server, _dir) = server(1);
    let budget = 5_000_000;
    let job =
        server.submit_with::<u64, _>(&testjobs(), "spin", (), &JobOptions::new().fuel(budget));
    let output = wait_output(&job);
    assert_eq!(
        output.result,
        Err(JobError::FuelExhausted { limit: budget })
    );
    assert_eq!(output.fuel_used, Some(budget));
    // The same worker goes on with ordinary jobs, and with fuel jobs.
    let plain = server.submit::<i64, _>(&testjobs(), "add_one", (41i64,));
    assert_eq!(wait_output(&plain).fuel_used, None, "no budget, no count");
    assert_eq!(wait(&plain), Ok(42));
    let fueled = server.submit_with::<i64, _>(
        &testjobs(),
        "add_one",
        (1i64,),
        &JobOptions::new().fuel(budget),
    );
    assert_eq!(wait(&fueled), Ok(2));
}

/// The same call uses the same fuel on every run, in any process: a budget of exactly that
/// much is enough, one unit less is not.
#[test]
fn fuel_use_is_the_same_on_every_run() {
    let module = sum_primes();
    let generous = JobOptions::new().fuel(u64::MAX / 2);
    let used = |server: &wasp::Server| -> u64 {
        let job = server.submit_with::<u64, _>(&module, "sum_primes", (20_000u64,), &generous);
        let output = wait_output(&job);
        assert_eq!(output.result, Ok(21_171_191));
        output
            .fuel_used
            .expect("a job with a budget reports its use")
    };
    let (first, dir) = server(2);
    let runs: Vec<u64> = (0..6).map(|_| used(&first)).collect();
    assert!(runs.iter().all(|&run| run == runs[0]), "{runs:?}");
    assert!(
        runs[0] > 100_000,
        "sum_primes(20000) is more than a few instructions: {runs:?}"
    );
    // A new server, whose code comes from the disk cache, counts the same.
    let again = wasp_tests::builder(&dir).workers(1).build().unwrap();
    assert_eq!(used(&again), runs[0]);
    let stats = again.stats().cache;
    assert_eq!(stats.loaded_from_disk, 1, "{stats:?}");

    // A budget is what a job may use: exactly what it used is enough, one unit less is not.
    let exact = JobOptions::new().fuel(runs[0]);
    let job = again.submit_with::<u64, _>(&module, "sum_primes", (20_000u64,), &exact);
    assert_eq!(wait(&job), Ok(21_171_191));
    let short = JobOptions::new().fuel(runs[0] - 1);
    let job = again.submit_with::<u64, _>(&module, "sum_primes", (20_000u64,), &short);
    let output = wait_output(&job);
    assert_eq!(
        output.result,
        Err(JobError::FuelExhausted { limit: runs[0] - 1 })
    );
    assert_eq!(output.fuel_used, Some(runs[0] - 1));
}

/// Code that counts fuel is compiled apart (and cached apart) from the ordinary code of the
/// same module, which stays as fast as it was.
#[test]
fn a_module_is_compiled_once_per_kind_of_code() {
    let (server, _dir) = server(1);
    let module = testjobs();
    for _ in 0..3 {
        let plain = server.submit::<i64, _>(&module, "add_one", (1i64,));
        let fueled = server.submit_with::<i64, _>(
            &module,
            "add_one",
            (1i64,),
            &JobOptions::new().fuel(10_000),
        );
        assert_eq!((wait(&plain), wait(&fueled)), (Ok(2), Ok(2)));
    }
    let CacheStats {
        compiled, reused, ..
    } = server.stats().cache;
    assert_eq!((compiled, reused), (2, 4));
}

#[test]
fn a_zero_budget_is_a_config_error() {
    match wasp::Server::builder().fuel(0).build() {
        Err(err) => assert!(err.to_string().contains("fuel"), "{err}"),
        Ok(_) => panic!("a zero fuel budget was accepted"),
    }
}
