//! Data put once: a value taken by many jobs, alone or nested in their arguments; refused
//! when too large, or when it is not the server's.

use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use wasp::{DataError, JobError, JobOptions, Server};
use wasp_tests::{builder, server, testjobs, wait};

#[test]
fn a_value_put_once_is_taken_by_many_jobs() {
    let (server, _dir) = server(2);
    let module = testjobs();
    let table: Vec<u64> = (0..10_000).map(|n| n * 3).collect();
    let table = server.put(&table).unwrap();
    let jobs: Vec<_> = (0..200u64)
        .map(|i| server.submit::<u64, _>(&module, "nth", (&table, i * 50)))
        .collect();
    for (i, job) in jobs.iter().enumerate() {
        assert_eq!(wait(job), Ok(i as u64 * 150));
    }
    let out_of_range = server.submit::<u64, _>(&module, "nth", (&table, 10_000u64));
    assert!(
        matches!(wait(&out_of_range), Err(JobError::Failed(why)) if why.contains("10000 values"))
    );
}

/// A reference anywhere a value may be: in an array, a map, a struct's field, twice.
#[test]
fn references_nested_in_containers_become_their_values() {
    let (server, _dir) = server(1);
    let text = server.put("a value put once").unwrap();
    let numbers = server.put(&[1u8, 2, 3]).unwrap();
    let mut map = BTreeMap::new();
    map.insert("text", (&text, 7u8));
    let args = ((vec![&numbers, &numbers], map),);
    let echoed = server.submit::<rmpv_like::Value, _>(&testjobs(), "echo", args);
    let value = wait(&echoed).unwrap();
    assert_eq!(
        value,
        rmpv_like::parse(r#"[[[1,2,3],[1,2,3]],{"text":["a value put once",7]}]"#)
    );
}

#[test]
fn large_values_arrive_whole_and_are_encoded_once() {
    let (server, _dir) = server(2);
    let bytes: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
    let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
    let value = server.put(&ByteBuf::from(bytes)).unwrap();
    assert_eq!(value.len(), (8 << 20) + 5, "a bin 32 header and the bytes");
    let module = testjobs();
    let jobs: Vec<_> = (0..4)
        .map(|_| server.submit::<(u64, u64), _>(&module, "checksum", (&value,)))
        .collect();
    for job in &jobs {
        assert_eq!(wait(job), Ok((8 << 20, sum)));
    }
}

#[test]
fn a_file_is_put_as_bytes() {
    let (server, dir) = server(1);
    let path = dir.path().join("input.bin");
    std::fs::write(&path, b"\x01\x02\x03 file").unwrap();
    let value = server.put_file(&path).unwrap();
    let job = server.submit::<(u64, u64), _>(&testjobs(), "checksum", (&value,));
    let sum = b"\x01\x02\x03 file".iter().map(|&b| u64::from(b)).sum();
    assert_eq!(wait(&job), Ok((8, sum)));
    assert!(matches!(
        server.put_file(dir.path().join("missing")),
        Err(DataError::Read { .. })
    ));
}

#[test]
fn a_value_over_the_maximum_is_refused_at_put() {
    let dir = tempfile::tempdir().unwrap();
    let server = builder(&dir)
        .workers(1)
        .max_data_value(1000)
        .build()
        .unwrap();
    let refused = server.put(&ByteBuf::from(vec![0; 1000]));
    assert!(
        matches!(
            refused,
            Err(DataError::TooLarge {
                size: 1003,
                limit: 1000
            })
        ),
        "{refused:?}"
    );
    assert!(server.put(&ByteBuf::from(vec![0; 990])).is_ok());
    assert!(matches!(
        server.put_raw(vec![0x92, 0x01]),
        Err(DataError::NotAValue(_))
    ));
}

/// Raw arguments (as bindings build them) hold the reference's 43 bytes; a reference the
/// server does not hold (another server's, or one dropped) fails the job, never takes
/// another value.
#[test]
fn raw_arguments_take_references_of_this_server_only() {
    let (server, _dir) = server(1);
    let (other, _other_dir) = wasp_tests::server(1);
    let module = testjobs();
    let table = server.put(&[10u64, 20, 30]).unwrap();
    let mut args = vec![0x92];
    args.extend_from_slice(&table.to_msgpack());
    args.push(2);
    let job = server.submit_raw::<u64>(&module, "nth", args.clone(), &JobOptions::new());
    assert_eq!(wait(&job), Ok(30));
    let elsewhere = other.submit_raw::<u64>(&module, "nth", args, &JobOptions::new());
    assert!(
        matches!(wait(&elsewhere), Err(JobError::BadArguments(why)) if why.contains("not put on this server")),
        "{:?}",
        wait(&elsewhere)
    );
}

/// A value its caller dropped stays with the jobs that take it.
#[test]
fn jobs_keep_the_values_they_take() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let blocker = server.submit::<u64, _>(&module, "busy_ms", (200u64,));
    let table = server.put(&[5u64, 6]).unwrap();
    let job = server.submit::<u64, _>(&module, "nth", (&table, 1u64));
    drop(table);
    assert_eq!(wait(&job), Ok(6));
    wait(&blocker).unwrap();
}

/// The same value put twice is one value.
#[test]
fn a_value_is_named_by_its_hash() {
    let server = Server::builder()
        .workers(0)
        .no_disk_cache()
        .build()
        .unwrap();
    let first = server.put("same").unwrap();
    let second = server.put("same").unwrap();
    assert_eq!(first.hash(), second.hash());
    assert_eq!(first.hash(), blake3::hash(b"\xa4same").to_hex().as_str());
    assert_ne!(first.hash(), server.put("other").unwrap().hash());
}

/// Just enough of a dynamic MessagePack value to compare what `echo` returns.
mod rmpv_like {
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(untagged)]
    pub(crate) enum Value {
        Int(i64),
        Text(String),
        List(Vec<Value>),
        Map(BTreeMap<String, Value>),
    }

    /// A value from its JSON (integers, strings, arrays and objects only).
    pub(crate) fn parse(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }
}
