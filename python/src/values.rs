//! Python values to MessagePack (a job's arguments) and back (its result).

mod decode;
mod encode;

pub(crate) use decode::to_python;
pub(crate) use encode::MAX_DEPTH;
pub(crate) use encode::encode_args;
