//! Checking that bytes are a wasp component (the contract is `runtime/wit/wasp.wit`),
//! without compiling them.

use super::Bodies;
use super::validate::FEATURES;
use crate::error::ModuleError;
use wasmparser::component_types::{ComponentDefinedType, ComponentValType};
use wasmparser::types::Types;
use wasmparser::{ComponentExternalKind, Parser, Payload, PrimitiveValType, WasmFeatures};

/// The WebAssembly features a wasp component may use: those of core modules, the component
/// model, and what toolchains that build components rely on (several memories and tables
/// across the core modules a component links, and multiple memories' bulk operations).
pub(crate) const COMPONENT_FEATURES: WasmFeatures = FEATURES.union(WasmFeatures::COMPONENT_MODEL);

/// The WASI 0.2 interfaces a component may import (whatever its 0.2.x version). The sandbox
/// provides them empty: no preopened directories, environment, arguments or network.
///
/// These are what componentize-py's CPython imports; a component importing anything else
/// is refused at load.
pub(crate) const WASI_INTERFACES: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stderr",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stderr",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/preopens",
    "wasi:filesystem/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:random/random",
    "wasi:sockets/instance-network",
    "wasi:sockets/ip-name-lookup",
    "wasi:sockets/network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
];

/// The shape every exported job function must have.
const JOB_SHAPE: &str = "func(args: list<u8>) -> result<list<u8>, string>";

/// Whether `bytes` are a component rather than a core module.
pub(crate) fn is_component(bytes: &[u8]) -> bool {
    matches!(
        Parser::new(0).parse_all(bytes).next(),
        Some(Ok(Payload::Version {
            encoding: wasmparser::Encoding::Component,
            ..
        }))
    )
}

/// Validates `bytes` as a wasp component (its function bodies as `bodies` says) and returns
/// the names of its jobs, sorted.
pub(super) fn validate(bytes: &[u8], bodies: Bodies) -> Result<Vec<String>, ModuleError> {
    let types = super::parallel::validate_all(COMPONENT_FEATURES, bytes, bodies)?;
    let mut jobs = Vec::new();
    for item in top_level(bytes)? {
        match item {
            TopLevel::Import(name) => check_import(&name)?,
            TopLevel::Export { name, kind, index } => {
                if kind == ComponentExternalKind::Func {
                    check_job_shape(&types, &name, index)?;
                    jobs.push(name);
                }
            }
        }
    }
    if jobs.is_empty() {
        return Err(ModuleError::NotWaspModule(format!(
            "the component exports no function (each job is an exported `{JOB_SHAPE}`)"
        )));
    }
    jobs.sort();
    Ok(jobs)
}

/// An import or export of the outermost component (not of the modules and components
/// nested in it, which only the outermost one's imports can reach).
enum TopLevel {
    Import(String),
    Export {
        name: String,
        kind: ComponentExternalKind,
        index: u32,
    },
}

fn top_level(bytes: &[u8]) -> Result<Vec<TopLevel>, ModuleError> {
    let invalid = |err: wasmparser::BinaryReaderError| ModuleError::Invalid(err.to_string());
    let mut items = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    items.push(TopLevel::Import(import.map_err(invalid)?.name.name.into()));
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    items.push(TopLevel::Export {
                        name: export.name.name.into(),
                        kind: export.kind,
                        index: export.index,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(items)
}

/// An import must be one of [`WASI_INTERFACES`], at a 0.2 version.
fn check_import(name: &str) -> Result<(), ModuleError> {
    let refuse = |why| {
        Err(ModuleError::ForbiddenInterface {
            interface: name.to_string(),
            why,
        })
    };
    let Some((interface, version)) = name.split_once('@') else {
        return refuse("a wasp component may import only WASI 0.2 interfaces, by version");
    };
    if !WASI_INTERFACES.contains(&interface) {
        return refuse("it is not a WASI 0.2 interface the sandbox provides");
    }
    if !version.starts_with("0.2.") {
        return refuse("the sandbox provides WASI 0.2 (0.2.x)");
    }
    Ok(())
}

/// An exported function must be a job: `func(list<u8>) -> result<list<u8>, string>`.
fn check_job_shape(types: &Types, name: &str, index: u32) -> Result<(), ModuleError> {
    let types = types.as_ref();
    let func = &types[types.component_function_at(index)];
    let is_bytes = |ty: &ComponentValType| match ty {
        ComponentValType::Type(id) => matches!(
            &types[*id],
            ComponentDefinedType::List {
                element: ComponentValType::Primitive(PrimitiveValType::U8),
                ..
            }
        ),
        ComponentValType::Primitive(_) => false,
    };
    let returns_job_result = match func.result {
        Some(ComponentValType::Type(id)) => match &types[id] {
            ComponentDefinedType::Result {
                ok: Some(ok),
                err: Some(ComponentValType::Primitive(PrimitiveValType::String)),
                ..
            } => is_bytes(ok),
            _ => false,
        },
        _ => false,
    };
    let takes_bytes = matches!(&func.params[..], [(_, param)] if is_bytes(param));
    if takes_bytes && returns_job_result && !func.async_ {
        return Ok(());
    }
    Err(ModuleError::BadExportType {
        export: name.to_string(),
        expected: JOB_SHAPE,
        found: describe(func.params.len(), func.result.is_some(), func.async_),
    })
}

/// What can be said of a function of the wrong shape without printing its whole type.
fn describe(params: usize, returns: bool, is_async: bool) -> String {
    format!(
        "{}a function of {params} parameter{} {}",
        if is_async { "an async " } else { "" },
        if params == 1 { "" } else { "s" },
        if returns {
            "returning another type"
        } else {
            "returning nothing"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasi_0_2_interfaces_may_be_imported() {
        assert!(check_import("wasi:io/streams@0.2.9").is_ok());
        assert!(check_import("wasi:cli/stdout@0.2.0").is_ok());
        for name in [
            "wasi:io/streams",
            "wasi:io/streams@0.3.0",
            "wasi:http/outgoing-handler@0.2.9",
            "evil:host/exec@1.0.0",
            "exec",
        ] {
            let err = check_import(name).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
