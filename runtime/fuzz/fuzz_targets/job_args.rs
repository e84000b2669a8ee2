//! A hostile client at the guest's side of the ABI: it controls the argument bytes a job
//! decodes (`wasp_guest::__private::decode_args`, what `#[job]` expands to, run natively
//! here). Decoding must never panic and never overflow the stack (in a guest a panic is only a
//! trap, but it would be reported as the job's panic instead of `BadArguments`); a refusal
//! must be a result buffer with the bad-arguments status that names the job; and what decodes
//! must survive the trip back: encoded as a result (`JobReturn`, status OK), it decodes to the
//! same value, and encoding is stable.
//!
//! Input: byte 0 picks the parameter types; the rest are the arguments.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use wasp_guest::__private::{JobReturn, Value, decode_args};
use wasp_guest::abi;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: Option<i32>,
    #[serde(with = "serde_bytes")]
    blob: Vec<u8>,
    at: Point,
    #[serde(default)]
    extra: BTreeMap<String, u8>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Circle(u32),
    Rect { w: u16, h: u16 },
    Pair(i8, i64),
    Many(Vec<Shape>),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Tagged {
    A { n: u32 },
    B { s: String },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Num(i64),
    Text(String),
    List(Vec<Untagged>),
}

const JOB: &str = "fuzzed_job";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, args)) = data.split_first() else {
        return;
    };
    match selector % 14 {
        0 => check::<()>(args),
        1 => check::<(u64,)>(args),
        2 => check::<(i8, u16, i32, i128)>(args),
        3 => check::<(String, Vec<u8>)>(args),
        4 => check::<(serde_bytes::ByteBuf, Option<bool>)>(args),
        5 => check::<(Vec<Vec<u32>>, BTreeMap<String, i64>)>(args),
        6 => check::<(Record,)>(args),
        7 => check::<(Shape, Shape)>(args),
        8 => check::<(Tagged,)>(args),
        9 => check::<(Untagged,)>(args),
        10 => check::<(char, [u8; 4], (u8, (u8, u8)))>(args),
        11 => check::<(Option<Box<Shape>>, Vec<Point>)>(args),
        12 => check::<(f32, f64)>(args),
        _ => check::<(BTreeMap<u32, Vec<Option<String>>>,)>(args),
    }
});

fn check<A>(args: &[u8])
where
    A: DeserializeOwned + Serialize + Debug,
{
    match decode_args::<A>(args, JOB) {
        Ok(decoded) => {
            // What the job would send back if it returned its arguments.
            let once = Value(&decoded).into_result_buffer();
            assert_eq!(once[0], abi::STATUS_OK, "{decoded:?} does not encode");
            let again: A = rmp_serde::from_slice(&once[1..])
                .unwrap_or_else(|err| panic!("{decoded:?} encodes to what does not decode: {err}"));
            let twice = Value(&again).into_result_buffer();
            assert_eq!(once, twice, "encoding {decoded:?} is not stable");
        }
        Err(buffer) => {
            assert_eq!(buffer[0], abi::STATUS_BAD_ARGUMENTS);
            let message = std::str::from_utf8(&buffer[1..]).expect("a UTF-8 message");
            assert!(message.contains(JOB), "{message}");
        }
    }
}
