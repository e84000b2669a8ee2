//! The CLI speaks JSON; jobs speak MessagePack. Both are self-describing, so values convert
//! without knowing the job's types. A JSON object `{"$data": "NAME"}` stands for the value
//! put with `--data NAME=FILE`.

use anyhow::{Context as _, bail};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::collections::HashMap;
use wasp::DataRef;

/// The key of the JSON object that stands for a value put with `--data`.
pub(crate) const DATA_KEY: &str = "$data";

/// Values put with `--data`, by name.
pub(crate) type Data = HashMap<String, DataRef>;

/// Encodes JSON arguments as the MessagePack array a job expects, each `{"$data": NAME}`
/// as a reference to the value put as `NAME`.
pub(crate) fn encode_args(args: &[Value], data: &Data) -> anyhow::Result<Vec<u8>> {
    let args = WithData { value: args, data };
    rmp_serde::to_vec_named(&args).context("could not encode the arguments")
}

/// The name `value` refers to, if it is `{"$data": NAME}`.
pub(crate) fn data_name(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get(DATA_KEY)?.as_str(),
        _ => None,
    }
}

/// The names of the values `args` refer to.
pub(crate) fn data_names(args: &[Value]) -> Vec<&str> {
    let mut names = Vec::new();
    let mut stack: Vec<&Value> = args.iter().collect();
    while let Some(value) = stack.pop() {
        if let Some(name) = data_name(value) {
            names.push(name);
            continue;
        }
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    names
}

/// JSON values serialized with their data references.
struct WithData<'a, T: ?Sized> {
    value: &'a T,
    data: &'a Data,
}

impl Serialize for WithData<'_, [Value]> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.value.len()))?;
        for value in self.value {
            seq.serialize_element(&WithData {
                value,
                data: self.data,
            })?;
        }
        seq.end()
    }
}

impl Serialize for WithData<'_, Value> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(name) = data_name(self.value) {
            let data = self.data.get(name).ok_or_else(|| {
                S::Error::custom(format!(
                    "no value named `{name}`: give it with --data {name}=FILE"
                ))
            })?;
            return data.serialize(serializer);
        }
        match self.value {
            Value::Array(items) => WithData {
                value: items.as_slice(),
                data: self.data,
            }
            .serialize(serializer),
            Value::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, value) in map {
                    out.serialize_entry(
                        key,
                        &WithData {
                            value,
                            data: self.data,
                        },
                    )?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
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
        let bytes = encode_args(&args, &Data::new()).unwrap();
        let back: (u64, String, serde_json::Map<String, Value>) =
            rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.0, 100);
        assert_eq!(back.1, "ab");
        assert_eq!(back.2["w"], 1.5);
    }

    #[test]
    fn data_names_are_found_wherever_they_are() {
        let args = parse_cli_args(&[
            r#"{"$data": "table"}"#.into(),
            r#"[1, {"k": {"$data": "other"}}]"#.into(),
            r#"{"$data": "x", "y": 1}"#.into(),
        ])
        .unwrap();
        let mut names = data_names(&args);
        names.sort_unstable();
        assert_eq!(names, ["other", "table"]);
        let err = encode_args(&args, &Data::new()).unwrap_err();
        assert!(format!("{err:#}").contains("--data table=FILE"), "{err:#}");
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        let err = parse_cli_args(&["ab".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("argument 1"), "{err:#}");
        let err = parse_input_line("{\"n\": 1}").unwrap_err();
        assert!(err.to_string().contains("an object"), "{err}");
    }
}
