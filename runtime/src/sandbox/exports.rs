//! A module's wasp exports, resolved once when it is prepared so that each job finds them by
//! index instead of by name.

use crate::error::JobError;
use std::collections::HashMap;
use wasmtime::{Instance, Memory, ModuleExport, Store, TypedFunc, WasmParams, WasmResults};
use wasp_abi as abi;

/// The ABI exports of one compiled module.
pub(crate) struct Exports {
    initialize: Option<ModuleExport>,
    alloc: ModuleExport,
    memory: ModuleExport,
    jobs: HashMap<String, ModuleExport>,
}

impl Exports {
    /// Resolves the exports of `module`, which validation has already checked.
    pub(super) fn resolve(module: &wasmtime::Module) -> Result<Self, JobError> {
        let required = |name: &str| {
            module
                .get_export_index(name)
                .ok_or_else(|| JobError::Abi(format!("no `{name}` export")))
        };
        let jobs = module
            .exports()
            .filter_map(|export| export.name().strip_prefix(abi::JOB_PREFIX))
            .map(|job| {
                Ok((
                    job.to_string(),
                    required(&format!("{}{job}", abi::JOB_PREFIX))?,
                ))
            })
            .collect::<Result<_, JobError>>()?;
        Ok(Exports {
            initialize: module.get_export_index(abi::INITIALIZE),
            alloc: required(abi::ALLOC)?,
            memory: required(abi::MEMORY)?,
            jobs,
        })
    }

    pub(super) fn initialize<T>(
        &self,
        store: &mut Store<T>,
        instance: &Instance,
    ) -> Option<TypedFunc<(), ()>> {
        let export = self.initialize.as_ref()?;
        typed_func(store, instance, export, abi::INITIALIZE).ok()
    }

    pub(super) fn alloc<T>(
        &self,
        store: &mut Store<T>,
        instance: &Instance,
    ) -> Result<TypedFunc<u32, u32>, String> {
        typed_func(store, instance, &self.alloc, abi::ALLOC)
    }

    pub(super) fn memory<T>(&self, store: &mut Store<T>, instance: &Instance) -> Option<Memory> {
        instance
            .get_module_export(&mut *store, &self.memory)?
            .into_memory()
    }

    pub(super) fn job<T>(
        &self,
        store: &mut Store<T>,
        instance: &Instance,
        name: &str,
    ) -> Result<TypedFunc<(u32, u32), u64>, String> {
        let export = self
            .jobs
            .get(name)
            .ok_or_else(|| format!("no job `{name}`"))?;
        typed_func(store, instance, export, name)
    }
}

/// The function `export` of `instance`, checked against the signature the ABI requires.
fn typed_func<T, Params: WasmParams, Results: WasmResults>(
    store: &mut Store<T>,
    instance: &Instance,
    export: &ModuleExport,
    name: &str,
) -> Result<TypedFunc<Params, Results>, String> {
    let func = instance
        .get_module_export(&mut *store, export)
        .and_then(|export| export.into_func())
        .ok_or_else(|| format!("`{name}` is not a function"))?;
    func.typed(&*store)
        .map_err(|err| format!("`{name}`: {err:#}"))
}
