//! The CLI speaks JSON; jobs speak MessagePack. Both are self-describing, so values convert
//! without knowing the job's types.

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Encodes JSON arguments as the MessagePack array a job expects.
pub(crate) fn encode_args(args: &[Value]) -> anyhow::Result<Vec<u8>> {
    rmp_serde::to_vec_named(args).context("could not encode the arguments")
}

/// Parses command-line arguments, each a JSON value.
pub(crate) fn parse_cli_args(args: &[String]) -> anyhow::Result<Vec<Value>> {
    args.iter()
        .enumerate()
        .map(|(i, text)| {
            serde_json::from_str(text).with_context(|| {
                format!(
                    "argument {} ({text:?}) is not a JSON value; strings need JSON quotes, e.g. '\"{text}\"'",
                    i + 1
                )
            })
        })
        .collect()
}

/// Parses one line of a `map` input: a JSON array of arguments.
pub(crate) fn parse_input_line(line: &str) -> anyhow::Result<Vec<Value>> {
    match serde_json::from_str(line)? {
        Value::Array(args) => Ok(args),
        other => bail!("expected a JSON array of arguments, found {}", kind(&other)),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip_through_messagepack() {
        let args = parse_cli_args(&["100".into(), "\"ab\"".into(), "{\"w\":1.5}".into()]).unwrap();
        let bytes = encode_args(&args).unwrap();
        let back: (u64, String, serde_json::Map<String, Value>) =
            rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.0, 100);
        assert_eq!(back.1, "ab");
        assert_eq!(back.2["w"], 1.5);
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        let err = parse_cli_args(&["ab".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("argument 1"), "{err:#}");
        let err = parse_input_line("{\"n\": 1}").unwrap_err();
        assert!(err.to_string().contains("an object"), "{err}");
    }
}
