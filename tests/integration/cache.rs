//! Compilation happens once per process per module; a new process loads the code from the
//! disk cache; a corrupt cache file is recompiled, never fatal.

use wasp::Server;
use wasp_tests::{sum_primes, testjobs, wait};

fn run_one(server: &Server) {
    let job = server.submit::<u64, _>(&sum_primes(), "sum_primes", (100u64,));
    assert_eq!(wait(&job), Ok(1060));
}

fn cache_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for engine_dir in std::fs::read_dir(dir).unwrap() {
        for file in std::fs::read_dir(engine_dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "cwasm") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn a_module_is_compiled_once_per_process() {
    let (server, _dir) = wasp_tests::server(2);
    let module = sum_primes();
    let jobs: Vec<_> = (0..50u64)
        .map(|n| server.submit::<u64, _>(&module, "sum_primes", (n,)))
        .collect();
    for job in &jobs {
        wait(job).unwrap();
    }
    let cache = server.stats().cache;
    assert_eq!(
        (cache.compiled, cache.loaded_from_disk, cache.reused),
        (1, 0, 49)
    );
    // A second module is a second compilation.
    let other = server.submit::<i64, _>(&testjobs(), "add_one", (1i64,));
    wait(&other).unwrap();
    assert_eq!(server.stats().cache.compiled, 2);
}

#[test]
fn a_new_server_loads_compiled_code_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let first = wasp_tests::builder(&dir).workers(1).build().unwrap();
    run_one(&first);
    assert_eq!(first.stats().cache.compiled, 1);
    drop(first);
    assert_eq!(cache_files(&dir.path().join("cache")).len(), 1);

    let second = wasp_tests::builder(&dir).workers(1).build().unwrap();
    run_one(&second);
    let cache = second.stats().cache;
    assert_eq!((cache.compiled, cache.loaded_from_disk), (0, 1));
}

#[test]
fn compiled_code_that_other_users_could_write_is_not_loaded() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    run_one(&wasp_tests::builder(&dir).workers(1).build().unwrap());
    let files = cache_files(&dir.path().join("cache"));
    let set_mode = |mode: u32| {
        let permissions = std::fs::Permissions::from_mode(mode);
        std::fs::set_permissions(&files[0], permissions).unwrap();
    };
    set_mode(0o666);
    let server = wasp_tests::builder(&dir).workers(1).build().unwrap();
    run_one(&server);
    let cache = server.stats().cache;
    assert_eq!(
        (cache.compiled, cache.loaded_from_disk),
        (1, 0),
        "{cache:?}"
    );
    drop(server);

    set_mode(0o600);
    let server = wasp_tests::builder(&dir).workers(1).build().unwrap();
    run_one(&server);
    assert_eq!(server.stats().cache.loaded_from_disk, 1);
}

#[test]
fn a_corrupt_cache_file_is_recompiled_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    run_one(&wasp_tests::builder(&dir).workers(1).build().unwrap());
    let files = cache_files(&dir.path().join("cache"));
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();

    let server = wasp_tests::builder(&dir).workers(1).build().unwrap();
    run_one(&server);
    assert_eq!(
        server.stats().cache.compiled,
        1,
        "the corrupt file was a miss"
    );
    drop(server);

    std::fs::write(&files[0], b"garbage").unwrap();
    let server = wasp_tests::builder(&dir).workers(1).build().unwrap();
    run_one(&server);
    assert_eq!(server.stats().cache.compiled, 1);
    drop(server);

    let server = wasp_tests::builder(&dir).workers(1).build().unwrap();
    run_one(&server);
    assert_eq!(
        server.stats().cache.loaded_from_disk,
        1,
        "the file was rewritten"
    );
}

#[test]
fn the_disk_cache_can_be_disabled() {
    let server = Server::builder()
        .workers(1)
        .no_disk_cache()
        .build()
        .unwrap();
    run_one(&server);
    assert_eq!(server.stats().cache.compiled, 1);
}
