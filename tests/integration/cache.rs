//! Compilation happens once per process per module; a new process loads the code from the
//! disk cache; a corrupt cache file is recompiled, never fatal.

use wasp::Server;
use wasp_tests::{sum_primes, testjobs, wait};

fn run_one(server: &Server) {
    let job = server.submit::<u64, _>(&sum_primes(), "sum_primes", (100u64,));
    assert_eq!(wait(&job), Ok(1060));
}

/// A new server on the cache in `dir` runs one job: how many modules it compiled, and how
/// many it loaded from the disk cache.
fn compiled_and_loaded(dir: &tempfile::TempDir) -> (u64, u64) {
    let server = wasp_tests::builder(dir).workers(1).build().unwrap();
    run_one(&server);
    let cache = server.stats().cache;
    (cache.compiled, cache.loaded_from_disk)
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
    assert_eq!(compiled_and_loaded(&dir), (1, 0));

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

/// Compiled code runs as native code: a cache file reached through a symbolic link (the
/// file itself, or its engine directory) is not loaded, even a valid one of this user's.
#[test]
fn compiled_code_reached_through_a_symbolic_link_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    run_one(&wasp_tests::builder(&dir).workers(1).build().unwrap());
    let files = cache_files(&dir.path().join("cache"));
    let file = &files[0];
    let elsewhere = dir.path().join("elsewhere.cwasm");
    std::fs::rename(file, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, file).unwrap();
    assert_eq!(compiled_and_loaded(&dir), (1, 0), "a linked file");

    // A linked engine directory: nothing is loaded from it, nor written through it.
    let engine_dir = file.parent().unwrap().to_path_buf();
    let moved = dir.path().join("engine-elsewhere");
    std::fs::remove_file(file).unwrap();
    std::fs::rename(&elsewhere, file).unwrap();
    std::fs::rename(&engine_dir, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &engine_dir).unwrap();
    assert_eq!(compiled_and_loaded(&dir), (1, 0), "a linked directory");

    std::fs::remove_file(&engine_dir).unwrap();
    std::fs::rename(&moved, &engine_dir).unwrap();
    assert_eq!(
        compiled_and_loaded(&dir),
        (0, 1),
        "the same file, reached directly"
    );
}

/// A cache file that belongs to another user is not loaded, whatever its permissions.
/// Making one takes root (chown): CI runs as root.
#[test]
fn compiled_code_owned_by_another_user_is_not_loaded() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    run_one(&wasp_tests::builder(&dir).workers(1).build().unwrap());
    let files = cache_files(&dir.path().join("cache"));
    if std::fs::metadata(&files[0]).unwrap().uid() != 0 {
        wasp_fixtures::cannot_run_here("giving a file to another user needs root");
        return;
    }
    let nobody = 65534;
    std::os::unix::fs::chown(&files[0], Some(nobody), Some(nobody)).unwrap();
    assert_eq!(compiled_and_loaded(&dir), (1, 0));
}
