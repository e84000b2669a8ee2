//! Support code for the `#[job]` macro. Not a public API: its items may change at any time.

use crate::abi;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;

pub use rmp_serde;
pub use serde;

/// What a job function may return: converted into the ABI's result buffer.
pub trait JobReturn {
    /// Encodes `self` as a result buffer (status byte + payload).
    fn into_result_buffer(self) -> Vec<u8>;
}

/// A plain return value: always a success.
#[derive(Debug)]
pub struct Value<T>(pub T);

/// A `Result` return value: `Err(e)` becomes a job error carrying `e.to_string()`.
#[derive(Debug)]
pub struct Fallible<T, E>(pub Result<T, E>);

impl<T: Serialize> JobReturn for Value<T> {
    fn into_result_buffer(self) -> Vec<u8> {
        encode_ok(&self.0)
    }
}

impl<T: Serialize, E: Display> JobReturn for Fallible<T, E> {
    fn into_result_buffer(self) -> Vec<u8> {
        match self.0 {
            Ok(value) => encode_ok(&value),
            Err(err) => status_with_message(abi::STATUS_JOB_ERROR, &err.to_string()),
        }
    }
}

fn encode_ok<T: Serialize>(value: &T) -> Vec<u8> {
    let mut buf = vec![abi::STATUS_OK];
    match rmp_serde::encode::write_named(&mut buf, value) {
        Ok(()) => buf,
        Err(err) => status_with_message(
            abi::STATUS_JOB_ERROR,
            &format!("the job's result could not be encoded: {err}"),
        ),
    }
}

fn status_with_message(status: u8, message: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + message.len());
    buf.push(status);
    buf.extend_from_slice(message.as_bytes());
    buf
}

/// Decodes a job's arguments (a MessagePack array) into the parameter tuple `A`.
///
/// # Errors
/// Returns a result buffer with [`abi::STATUS_BAD_ARGUMENTS`] describing the mismatch.
pub fn decode_args<A: DeserializeOwned>(bytes: &[u8], function: &str) -> Result<A, Vec<u8>> {
    rmp_serde::from_slice(bytes).map_err(|err| {
        status_with_message(
            abi::STATUS_BAD_ARGUMENTS,
            &format!("arguments do not match the parameters of `{function}`: {err}"),
        )
    })
}

#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "wasm32")]
pub use wasm::{finish, install_panic_hook, take_args, wasp_alloc};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_errors_are_encoded_with_their_status() {
        let ok = Value(7u32).into_result_buffer();
        assert_eq!(ok[0], abi::STATUS_OK);
        assert_eq!(rmp_serde::from_slice::<u32>(&ok[1..]).unwrap(), 7);

        let err = Fallible::<u32, _>(Err("no such thing")).into_result_buffer();
        assert_eq!(err[0], abi::STATUS_JOB_ERROR);
        assert_eq!(&err[1..], b"no such thing");
    }

    #[test]
    fn mismatched_arguments_name_the_function() {
        let args = rmp_serde::to_vec(&("text",)).unwrap();
        let err = decode_args::<(u64,)>(&args, "sum_primes").unwrap_err();
        assert_eq!(err[0], abi::STATUS_BAD_ARGUMENTS);
        let message = String::from_utf8(err[1..].to_vec()).unwrap();
        assert!(message.contains("sum_primes"), "{message}");
    }
}
