use wasp::{JobError, JobOptions};
use wasp_testjobs::Rect;
use wasp_tests::{server, testjobs, wait};

#[test]
fn sum_primes_matches_the_known_values() {
    let (server, _dir) = server(2);
    let module = wasp_tests::sum_primes();
    let small = server.submit::<u64, _>(&module, "sum_primes", (100u64,));
    let big = server.submit::<u64, _>(&module, "sum_primes", (100_000u64,));
    assert_eq!(wait(&small), Ok(1060));
    assert_eq!(wait(&big), Ok(454_396_537));
}

#[test]
fn several_arguments_structs_and_no_arguments() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let repeated = server.submit::<String, _>(&module, "repeat", ("ab", 3u32));
    let scaled = server.submit::<Rect, _>(
        &module,
        "scale",
        (
            Rect {
                width: 2.0,
                height: 3.0,
            },
            2.0,
        ),
    );
    let answer = server.submit::<u32, _>(&module, "answer", ());
    assert_eq!(wait(&repeated).unwrap(), "ababab");
    assert_eq!(
        wait(&scaled).unwrap(),
        Rect {
            width: 4.0,
            height: 6.0
        }
    );
    assert_eq!(wait(&answer).unwrap(), 42);
}

#[test]
fn output_is_captured_and_returned_with_the_result() {
    let (server, _dir) = server(1);
    let job = server.submit::<String, _>(&testjobs(), "greet", ("wasp",));
    let output = job.wait_output();
    assert_eq!(output.result.unwrap(), "greeted wasp");
    assert_eq!(output.stdout, b"hello, wasp\n");
    assert_eq!(output.stderr, b"a note on stderr\n");
    assert_eq!(output.worker, "local/0");
}

#[test]
fn every_job_gets_a_fresh_instance() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let jobs: Vec<_> = (0..5)
        .map(|_| server.submit::<u32, _>(&module, "count_calls", ()))
        .collect();
    for job in &jobs {
        assert_eq!(wait(job), Ok(1), "a static survived from an earlier job");
    }
}

#[test]
fn an_err_return_is_a_typed_job_error() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let ok = server.submit::<f64, _>(&module, "checked_sqrt", (16.0,));
    let err = server.submit::<f64, _>(&module, "checked_sqrt", (-1.0,));
    assert_eq!(wait(&ok), Ok(4.0));
    assert_eq!(
        wait(&err),
        Err(JobError::Failed("cannot take the square root of -1".into()))
    );
}

#[test]
fn an_unknown_function_names_the_ones_that_exist() {
    let (server, _dir) = server(1);
    let job = server.submit::<u64, _>(&wasp_tests::sum_primes(), "sum_prime", (10u64,));
    match wait(&job) {
        Err(JobError::UnknownFunction {
            function,
            available,
        }) => {
            assert_eq!(function, "sum_prime");
            assert_eq!(available, ["sum_primes"]);
        }
        other => panic!("expected UnknownFunction, got {other:?}"),
    }
}

#[test]
fn wrong_argument_types_are_reported_by_the_guest() {
    let (server, _dir) = server(1);
    let module = wasp_tests::sum_primes();
    let text = server.submit::<u64, _>(&module, "sum_primes", ("one hundred",));
    let too_many = server.submit::<u64, _>(&module, "sum_primes", (1u64, 2u64));
    for job in [text, too_many] {
        match wait(&job) {
            Err(JobError::BadArguments(message)) => {
                assert!(message.contains("sum_primes"), "{message}")
            }
            other => panic!("expected BadArguments, got {other:?}"),
        }
    }
}

#[test]
fn a_result_of_the_wrong_type_is_a_bad_result() {
    let (server, _dir) = server(1);
    let job = server.submit::<String, _>(&wasp_tests::sum_primes(), "sum_primes", (100u64,));
    assert!(matches!(wait(&job), Err(JobError::BadResult(_))));
}

#[test]
fn the_sandbox_has_no_files_and_no_environment() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let file = server.submit::<String, _>(&module, "read_file", ("/etc/passwd",));
    match wait(&file) {
        Err(JobError::Failed(message)) => assert!(message.starts_with("/etc/passwd"), "{message}"),
        other => panic!("expected the guest's own error, got {other:?}"),
    }
    let env = server.submit::<Option<String>, _>(&module, "env_var", ("PATH",));
    assert_eq!(wait(&env), Ok(None));
}

#[test]
fn per_job_options_override_the_server_defaults() {
    let (server, _dir) = server(1);
    let options = JobOptions::new().max_output(4);
    let job = server.submit_with::<String, _>(&testjobs(), "greet", ("x",), &options);
    assert!(matches!(
        wait(&job),
        Err(JobError::OutputLimit { limit: 4, .. })
    ));
}
