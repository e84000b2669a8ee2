//! Between the library's types and the wire's ([`wasp_proto`]): job errors and limits.
//!
//! The protocol owns its types, so that `JobError` can grow without changing what crosses
//! the network; this is the one place that maps between them.

use crate::error::{JobError, TrapKind};
use crate::sandbox::Asked;
use std::time::Duration;
use wasp_proto::error::{WireError, WireTrap};
use wasp_proto::message::WireLimits;

/// `error` as a node sends it.
pub(crate) fn error_to_wire(error: &JobError) -> WireError {
    match error.clone() {
        JobError::UnknownFunction {
            function,
            available,
        } => WireError::UnknownFunction {
            function,
            available,
        },
        JobError::BadArguments(why) => WireError::BadArguments(why),
        JobError::Failed(why) => WireError::Failed(why),
        JobError::Panic(why) => WireError::Panic(why),
        JobError::Trap { kind } => WireError::Trap(trap_to_wire(kind)),
        JobError::Timeout(timeout) => WireError::Timeout {
            nanos: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
        },
        JobError::MemoryLimit { limit } => WireError::MemoryLimit { limit },
        JobError::OutputLimit { stream, limit } => WireError::OutputLimit { stream, limit },
        JobError::Forbidden(why) => WireError::Forbidden(why),
        JobError::ResultTooLarge { size, limit } => WireError::ResultTooLarge { size, limit },
        JobError::FuelExhausted { limit } => WireError::FuelExhausted { limit },
        JobError::Exited(status) => WireError::Exited(status),
        JobError::Abi(why) => WireError::Abi(why),
        JobError::Module(why) => WireError::Module(why),
        JobError::Cancelled(why) => WireError::Cancelled(why),
        JobError::LimitRefused {
            limit,
            asked,
            allowed,
        } => WireError::LimitRefused {
            limit,
            asked,
            allowed,
        },
        JobError::ModuleRefused(why) => WireError::ModuleRefused(why),
        JobError::DataTooLarge { size, limit } => WireError::DataTooLarge { size, limit },
        // Only a client decodes results, loses nodes and holds jobs for others: a node
        // never says these.
        error @ (JobError::BadResult(_)
        | JobError::NodeLost { .. }
        | JobError::Internal(_)
        | JobError::Dependency { .. }) => WireError::Internal(match error {
            JobError::Internal(why) => why,
            other => other.to_string(),
        }),
    }
}

/// What a node's `error` means to the client.
pub(crate) fn error_from_wire(error: WireError) -> JobError {
    match error {
        WireError::UnknownFunction {
            function,
            available,
        } => JobError::UnknownFunction {
            function,
            available,
        },
        WireError::BadArguments(why) => JobError::BadArguments(why),
        WireError::Failed(why) => JobError::Failed(why),
        WireError::Panic(why) => JobError::Panic(why),
        WireError::Trap(trap) => JobError::Trap {
            kind: trap_from_wire(trap),
        },
        WireError::Timeout { nanos } => JobError::Timeout(Duration::from_nanos(nanos)),
        WireError::MemoryLimit { limit } => JobError::MemoryLimit { limit },
        WireError::OutputLimit { stream, limit } => JobError::OutputLimit { stream, limit },
        WireError::Forbidden(why) => JobError::Forbidden(why),
        WireError::ResultTooLarge { size, limit } => JobError::ResultTooLarge { size, limit },
        WireError::FuelExhausted { limit } => JobError::FuelExhausted { limit },
        WireError::Exited(status) => JobError::Exited(status),
        WireError::Abi(why) => JobError::Abi(why),
        WireError::Module(why) => JobError::Module(why),
        WireError::Cancelled(why) => JobError::Cancelled(why),
        WireError::LimitRefused {
            limit,
            asked,
            allowed,
        } => JobError::LimitRefused {
            limit,
            asked,
            allowed,
        },
        WireError::ModuleRefused(why) => JobError::ModuleRefused(why),
        WireError::DataTooLarge { size, limit } => JobError::DataTooLarge { size, limit },
        WireError::Internal(why) => JobError::Internal(format!("on the node: {why}")),
    }
}

fn trap_to_wire(kind: TrapKind) -> WireTrap {
    match kind {
        TrapKind::StackOverflow => WireTrap::StackOverflow,
        TrapKind::MemoryOutOfBounds => WireTrap::MemoryOutOfBounds,
        TrapKind::Unreachable => WireTrap::Unreachable,
        TrapKind::IntegerDivisionByZero => WireTrap::IntegerDivisionByZero,
        TrapKind::IntegerOverflow => WireTrap::IntegerOverflow,
        TrapKind::BadConversionToInteger => WireTrap::BadConversionToInteger,
        TrapKind::TableOutOfBounds => WireTrap::TableOutOfBounds,
        TrapKind::IndirectCallToNull => WireTrap::IndirectCallToNull,
        TrapKind::BadSignature => WireTrap::BadSignature,
        TrapKind::Other(text) => WireTrap::Other(text),
    }
}

fn trap_from_wire(trap: WireTrap) -> TrapKind {
    match trap {
        WireTrap::StackOverflow => TrapKind::StackOverflow,
        WireTrap::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
        WireTrap::Unreachable => TrapKind::Unreachable,
        WireTrap::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        WireTrap::IntegerOverflow => TrapKind::IntegerOverflow,
        WireTrap::BadConversionToInteger => TrapKind::BadConversionToInteger,
        WireTrap::TableOutOfBounds => TrapKind::TableOutOfBounds,
        WireTrap::IndirectCallToNull => TrapKind::IndirectCallToNull,
        WireTrap::BadSignature => TrapKind::BadSignature,
        WireTrap::Other(text) => TrapKind::Other(text),
    }
}

/// The limits a job asks of a node: only those its caller set.
pub(crate) fn limits_to_wire(asked: &Asked) -> WireLimits {
    WireLimits {
        // Rounded up: a sub-millisecond timeout must not become "no time at all".
        timeout_ms: asked
            .timeout
            .map(|timeout| u64::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)),
        max_memory: asked.max_memory,
        max_output: asked.max_output,
        max_table_elements: asked.max_table_elements,
        fuel: asked.fuel,
        reuse_instance: asked.reuse.then_some(true),
    }
}

/// The limits a client asks for, as a node reads them.
pub(crate) fn limits_from_wire(limits: WireLimits) -> Asked {
    Asked {
        timeout: limits.timeout_ms.map(Duration::from_millis),
        max_memory: limits.max_memory,
        max_output: limits.max_output,
        max_table_elements: limits.max_table_elements,
        fuel: limits.fuel,
        reuse: limits.reuse_instance.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_the_wire_unchanged() {
        let errors = [
            JobError::UnknownFunction {
                function: "f".into(),
                available: vec!["g".into()],
            },
            JobError::Trap {
                kind: TrapKind::StackOverflow,
            },
            JobError::Trap {
                kind: TrapKind::Other("odd".into()),
            },
            JobError::Timeout(Duration::from_millis(250)),
            JobError::OutputLimit {
                stream: "stderr".into(),
                limit: 9,
            },
            JobError::FuelExhausted { limit: 3 },
            JobError::DataTooLarge { size: 9, limit: 8 },
            JobError::Exited(-1),
            JobError::Cancelled("by the client".into()),
            JobError::LimitRefused {
                limit: "memory".into(),
                asked: "2".into(),
                allowed: "1".into(),
            },
        ];
        for error in errors {
            assert_eq!(error_from_wire(error_to_wire(&error)), error);
        }
        let internal = error_from_wire(error_to_wire(&JobError::Internal("oops".into())));
        assert_eq!(internal, JobError::Internal("on the node: oops".into()));
    }

    #[test]
    fn only_the_limits_asked_for_are_sent() {
        let asked = Asked {
            max_memory: Some(64 << 20),
            timeout: Some(Duration::from_micros(1500)),
            ..Asked::default()
        };
        let wire = limits_to_wire(&asked);
        assert_eq!(wire.max_memory, Some(64 << 20));
        assert_eq!(wire.max_output, None, "a default is not asked for");
        assert_eq!(wire.timeout_ms, Some(2), "rounded up");
        assert_eq!(limits_from_wire(wire).max_memory, Some(64 << 20));
    }
}
