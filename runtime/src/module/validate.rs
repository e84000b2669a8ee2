//! Checking that bytes are a wasp module, without compiling them.

use super::{Bodies, ModuleKind, component};
use crate::error::ModuleError;
use wasmparser::{ExternalKind, FuncType, Parser, Payload, TypeRef, ValType, WasmFeatures};
use wasp_abi as abi;

const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// The WebAssembly features a wasp module may use; the sandbox's engine is configured with
/// exactly these, so that a module that loads also compiles.
///
/// WebAssembly 2.0 (SIMD, bulk memory, multiple values, references to functions…) and, of
/// 3.0, tail calls, extended constant expressions and relaxed SIMD (which the engine makes
/// deterministic: the same results on every architecture). Not GC types (such as
/// `externref`) or exceptions, which the engine is built without; not threads, as a job is
/// one thread; not memory64 or several memories, as the ABI is one 32-bit memory.
pub(crate) const FEATURES: WasmFeatures = WasmFeatures::WASM2
    .difference(WasmFeatures::GC_TYPES)
    .union(WasmFeatures::TAIL_CALL)
    .union(WasmFeatures::EXTENDED_CONST)
    .union(WasmFeatures::RELAXED_SIMD);

/// The most tables a module may define or import: the sandbox's pool has room for this many
/// per instance.
pub(crate) const MAX_TABLES: u32 = 4;

/// Validates `bytes` as a wasp module (a core module, or a component; its function bodies as
/// `bodies` says) and returns its kind and the names of its jobs, sorted.
pub(super) fn validate(
    bytes: &[u8],
    bodies: Bodies,
) -> Result<(ModuleKind, Vec<String>), ModuleError> {
    if !bytes.starts_with(WASM_MAGIC) {
        return Err(ModuleError::NotWasm);
    }
    if component::is_component(bytes) {
        return Ok((ModuleKind::Component, component::validate(bytes, bodies)?));
    }
    Ok((ModuleKind::Core, validate_core(bytes, bodies)?))
}

/// Validates `bytes` as a wasp core module and returns the names of its jobs, sorted.
fn validate_core(bytes: &[u8], bodies: Bodies) -> Result<Vec<String>, ModuleError> {
    let types = super::parallel::validate_all(FEATURES, bytes, bodies)?;
    check_imports(bytes)?;
    let exports = read_exports(bytes)?;

    let types = types.as_ref();
    if types.table_count() > MAX_TABLES {
        return Err(ModuleError::Invalid(format!(
            "{} tables: a wasp module may have at most {MAX_TABLES}",
            types.table_count()
        )));
    }
    let func_type = |index: u32| types[types.core_function_at(index)].unwrap_func().clone();
    let mut jobs = Vec::new();
    let (mut has_memory, mut has_alloc) = (false, false);
    for export in exports {
        match (export.kind, export.name.as_str()) {
            (ExternalKind::Memory, abi::MEMORY) => has_memory = true,
            (ExternalKind::Func, abi::ALLOC) => {
                expect_signature(
                    &export.name,
                    &func_type(export.index),
                    &[ValType::I32],
                    &[ValType::I32],
                    "(i32) -> i32",
                )?;
                has_alloc = true;
            }
            (ExternalKind::Func, name) if name.starts_with(abi::JOB_PREFIX) => {
                expect_signature(
                    name,
                    &func_type(export.index),
                    &[ValType::I32, ValType::I32],
                    &[ValType::I64],
                    "(i32, i32) -> i64",
                )?;
                jobs.push(name[abi::JOB_PREFIX.len()..].to_string());
            }
            _ => {}
        }
    }
    if jobs.is_empty() {
        return Err(ModuleError::NotWaspModule(format!(
            "it exports no `{}*` function",
            abi::JOB_PREFIX
        )));
    }
    if !has_memory {
        return Err(ModuleError::NotWaspModule(format!(
            "it exports no memory named `{}`",
            abi::MEMORY
        )));
    }
    if !has_alloc {
        return Err(ModuleError::NotWaspModule(format!(
            "it exports no `{}` function",
            abi::ALLOC
        )));
    }
    jobs.sort();
    Ok(jobs)
}

/// Every import must be an allowed WASI function or a wasp host function.
fn check_imports(bytes: &[u8]) -> Result<(), ModuleError> {
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::ImportSection(reader)) = payload else {
            continue;
        };
        for import in reader.into_imports() {
            let import = import.map_err(|err| ModuleError::Invalid(err.to_string()))?;
            check_import(import.module, import.name, &import.ty)?;
        }
    }
    Ok(())
}

fn check_import(module: &str, name: &str, ty: &TypeRef) -> Result<(), ModuleError> {
    let refuse = |why| {
        Err(ModuleError::ForbiddenImport {
            module: module.to_string(),
            name: name.to_string(),
            why,
        })
    };
    if !matches!(ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
        return refuse("a wasp module may import only functions");
    }
    match module {
        abi::WASI_MODULE if name.starts_with("sock_") => refuse("the sandbox has no network"),
        abi::WASI_MODULE if abi::WASI_ALLOWED.contains(&name) => Ok(()),
        abi::WASI_MODULE => refuse("it is not a WASI preview 1 function the sandbox provides"),
        abi::HOST_MODULE if name == abi::HOST_PANIC => Ok(()),
        abi::HOST_MODULE => refuse("wasp provides no such host function"),
        _ => refuse("only WASI preview 1 and wasp host functions may be imported"),
    }
}

struct Export {
    name: String,
    kind: ExternalKind,
    index: u32,
}

fn read_exports(bytes: &[u8]) -> Result<Vec<Export>, ModuleError> {
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::ExportSection(reader)) = payload else {
            continue;
        };
        for export in reader {
            let export = export.map_err(|err| ModuleError::Invalid(err.to_string()))?;
            exports.push(Export {
                name: export.name.to_string(),
                kind: export.kind,
                index: export.index,
            });
        }
    }
    Ok(exports)
}

fn expect_signature(
    export: &str,
    found: &FuncType,
    params: &[ValType],
    results: &[ValType],
    expected: &'static str,
) -> Result<(), ModuleError> {
    if found.params() == params && found.results() == results {
        return Ok(());
    }
    Err(ModuleError::BadExportType {
        export: export.to_string(),
        expected,
        found: format!("{found}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bytes_that_are_not_wasm() {
        assert!(matches!(
            validate(b"hello", Bodies::AtLoad),
            Err(ModuleError::NotWasm)
        ));
        assert!(matches!(
            validate(b"", Bodies::AtLoad),
            Err(ModuleError::NotWasm)
        ));
    }

    #[test]
    fn rejects_truncated_wasm() {
        assert!(matches!(
            validate(b"\0asm\x01\0\0\0\x01", Bodies::AtLoad),
            Err(ModuleError::Invalid(_))
        ));
    }

    #[test]
    fn an_empty_module_is_not_a_wasp_module() {
        assert!(matches!(
            validate(b"\0asm\x01\0\0\0", Bodies::AtLoad),
            Err(ModuleError::NotWaspModule(_))
        ));
    }

    #[test]
    fn refuses_sockets_and_unknown_imports() {
        let func = TypeRef::Func(0);
        assert!(check_import("wasi_snapshot_preview1", "fd_write", &func).is_ok());
        assert!(check_import("wasp", "panic", &func).is_ok());
        for (module, name) in [
            ("wasi_snapshot_preview1", "sock_accept"),
            ("wasi_snapshot_preview1", "no_such_function"),
            ("env", "system"),
            ("wasp", "exec"),
        ] {
            let err = check_import(module, name, &func).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
