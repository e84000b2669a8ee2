//! Whether a component keeps all its state in its linear memories, so that putting those
//! back puts back the whole instance.
//!
//! An instance's state is its memories, its tables, its globals, and which of its data and
//! element segments were dropped. A kept instance is put back by restoring only its
//! memories ([`super::memory`]), so a component qualifies when no call that returns can
//! leave anything else changed:
//!
//! * no code mutates a table (`table.set`, `table.grow`, `table.fill`, `table.init`,
//!   `table.copy`) or drops a segment (`elem.drop`, `data.drop`);
//! * every global that reachable code writes is a stack pointer (`__stack_pointer`: code
//!   built by LLVM puts it back before it returns), or belongs to a WASI preview 1 adapter
//!   whose stack is already allocated and into which nothing but its `reset_adapter_state`
//!   is called (that function then writes nothing but the adapter's stack pointer; the
//!   adapter's other entry points allocate its state, a global pointing into the memory,
//!   so they must be unused: exported by nobody else, imported by no module, aliased by
//!   no canonical option).
//!
//! Code is reachable from a module's exports, its start function, and the functions its
//! element segments or `ref.func` name; a global written only by unreachable code (a
//! dynamic linker's relocations, run once when the component was built) never changes.
//! A component that does not qualify runs each job in a new instance, as before.

use std::collections::{HashMap, HashSet};
use std::fmt;
use wasmparser::{
    CanonicalFunction, CanonicalOption, ComponentAlias, ConstExpr, ElementItems, ExternalKind,
    Name, Operator, Parser, Payload, TypeRef,
};

/// The module name a WASI preview 1 adapter is imported under.
const ADAPTER_IMPORT: &str = "wasi_snapshot_preview1";

/// The one adapter function other modules may call: it writes only the adapter's stack
/// pointer once that stack is allocated.
const ADAPTER_RESET: &str = "reset_adapter_state";

/// The adapter's reallocs: their first call allocates the adapter's state.
const ADAPTER_REALLOCS: [&str; 2] = ["cabi_import_realloc", "cabi_export_realloc"];

/// The adapter's allocation-state global, and its first value that means "stack allocated"
/// (`StackAllocated`; later values also have the stack).
const ADAPTER_ALLOCATION_STATE: &str = "allocation_state";
const STACK_ALLOCATED: i32 = 2;

/// Why a component cannot be put back by restoring its memories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotRestorable(String);

impl fmt::Display for NotRestorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks `component` (a valid component's bytes): `Ok` if restoring its memories after a
/// call that returned puts the whole instance back.
pub(crate) fn check(component: &[u8]) -> Result<(), NotRestorable> {
    let mut modules = Vec::new();
    let mut current: Option<ModuleFacts> = None;
    // One per component being read (nested ones have index spaces of their own), and
    // whether any used an adapter's realloc.
    let mut components: Vec<RealloUses> = Vec::new();
    let mut used = false;
    for payload in Parser::new(0).parse_all(component) {
        let payload = payload.map_err(|err| refuse(format!("unreadable: {err}")))?;
        match payload {
            Payload::Version {
                encoding: wasmparser::Encoding::Module,
                ..
            } => current = Some(ModuleFacts::default()),
            Payload::Version { .. } => components.push(RealloUses::default()),
            Payload::End(_) => match current.take() {
                Some(facts) => modules.push(facts),
                None => used |= components.pop().is_some_and(|uses| uses.used),
            },
            payload => match (current.as_mut(), components.last_mut()) {
                (Some(facts), _) => facts.read(payload)?,
                (None, Some(uses)) => uses.read(payload)?,
                (None, None) => {}
            },
        }
    }
    let mut adapters = 0usize;
    for (index, module) in modules.iter().enumerate() {
        let verdict = module
            .verdict()
            .map_err(|why| refuse(format!("module {index}: {why}")))?;
        adapters += usize::from(verdict == Verdict::AdapterWrites);
    }
    if adapters > 0 {
        adapter_is_only_reset(&modules, used)?;
    }
    Ok(())
}

/// Where a WASI preview 1 adapter writes globals, checks that nothing but its reset is
/// called into it.
fn adapter_is_only_reset(modules: &[ModuleFacts], realloc_used: bool) -> Result<(), NotRestorable> {
    for (index, module) in modules.iter().enumerate() {
        let called = module
            .adapter_imports
            .iter()
            .find(|name| *name != ADAPTER_RESET);
        let realloc = module.imported_reallocs.first();
        if let Some(name) = called.or(realloc) {
            return Err(refuse(format!(
                "module {index} imports the WASI preview 1 adapter's `{name}`, which allocates \
                 the adapter's state"
            )));
        }
    }
    if realloc_used {
        return Err(refuse(
            "the component calls the WASI preview 1 adapter's realloc, which allocates the \
             adapter's state"
                .to_string(),
        ));
    }
    Ok(())
}

/// Whether the component itself uses an adapter's realloc: a canonical option, a lift or a
/// bag of core exports naming a core function aliased from one.
#[derive(Default)]
struct RealloUses {
    /// The component's core functions so far: whether each is an alias of a realloc.
    core_functions: Vec<bool>,
    used: bool,
}

impl RealloUses {
    fn read(&mut self, payload: Payload<'_>) -> Result<(), NotRestorable> {
        let unreadable = |err: wasmparser::BinaryReaderError| refuse(format!("unreadable: {err}"));
        match payload {
            Payload::ComponentAliasSection(aliases) => {
                for alias in aliases {
                    if let ComponentAlias::CoreInstanceExport {
                        kind: ExternalKind::Func | ExternalKind::FuncExact,
                        name,
                        ..
                    } = alias.map_err(unreadable)?
                    {
                        self.core_functions.push(ADAPTER_REALLOCS.contains(&name));
                    }
                }
            }
            Payload::ComponentCanonicalSection(functions) => {
                for function in functions {
                    match function.map_err(unreadable)? {
                        CanonicalFunction::Lift {
                            core_func_index,
                            options,
                            ..
                        } => {
                            self.note(core_func_index);
                            self.note_options(&options);
                        }
                        CanonicalFunction::Lower { options, .. } => {
                            self.note_options(&options);
                            self.core_functions.push(false);
                        }
                        // Every other canonical function defines a core function; those
                        // taking options name them only through these.
                        _ => self.core_functions.push(false),
                    }
                }
            }
            Payload::InstanceSection(instances) => {
                for instance in instances {
                    if let wasmparser::Instance::FromExports(exports) =
                        instance.map_err(unreadable)?
                    {
                        for export in exports.iter() {
                            if matches!(export.kind, ExternalKind::Func | ExternalKind::FuncExact) {
                                self.note(export.index);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn note_options(&mut self, options: &[CanonicalOption]) {
        for option in options {
            if let CanonicalOption::Realloc(function)
            | CanonicalOption::PostReturn(function)
            | CanonicalOption::Callback(function) = option
            {
                self.note(*function);
            }
        }
    }

    /// Notes a use of core function `index`; an index not yet defined is unknown, and
    /// counts as a realloc.
    fn note(&mut self, index: u32) {
        let realloc = self
            .core_functions
            .get(index as usize)
            .copied()
            .unwrap_or(true);
        self.used |= realloc;
    }
}

fn refuse(why: String) -> NotRestorable {
    NotRestorable(why)
}

/// What one core module's check found.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// No reachable code writes a global other than a stack pointer.
    Clean,
    /// The module is a WASI preview 1 adapter with its stack allocated, and writes its own
    /// globals: sound only if nothing but its reset is called into it.
    AdapterWrites,
}

/// What the check needs of one core module.
#[derive(Default)]
struct ModuleFacts {
    imported_functions: u32,
    /// Imported then defined globals: their names where known.
    global_names: HashMap<u32, String>,
    imported_globals: u32,
    /// The constant first value of each defined global that has one.
    initial: HashMap<u32, i32>,
    /// Entry points: exported functions, the start function, functions named by element
    /// segments or `ref.func`.
    roots: HashSet<u32>,
    exported_functions: HashSet<String>,
    /// Names this module imports from the WASI preview 1 adapter.
    adapter_imports: Vec<String>,
    /// The adapter's reallocs, imported from any module name.
    imported_reallocs: Vec<String>,
    /// Each defined function's direct callees.
    calls: HashMap<u32, Vec<u32>>,
    /// Functions writing a global, and which.
    writes: Vec<(u32, u32)>,
    /// The first table or segment mutation found, and the function holding it.
    mutation: Option<(u32, &'static str)>,
    next_function: u32,
}

impl ModuleFacts {
    fn read(&mut self, payload: Payload<'_>) -> Result<(), NotRestorable> {
        let unreadable = |err: wasmparser::BinaryReaderError| refuse(format!("unreadable: {err}"));
        match payload {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.map_err(unreadable)?;
                    match import.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => {
                            if import.module == ADAPTER_IMPORT {
                                self.adapter_imports.push(import.name.to_string());
                            }
                            if ADAPTER_REALLOCS.contains(&import.name) {
                                self.imported_reallocs.push(import.name.to_string());
                            }
                            self.imported_functions += 1;
                        }
                        TypeRef::Global(_) => {
                            self.global_names
                                .insert(self.imported_globals, import.name.to_string());
                            self.imported_globals += 1;
                        }
                        _ => {}
                    }
                }
                self.next_function = self.imported_functions;
            }
            Payload::GlobalSection(globals) => {
                for (offset, global) in globals.into_iter().enumerate() {
                    let global = global.map_err(unreadable)?;
                    let index = self.imported_globals + offset as u32;
                    if let Some(value) = const_i32(&global.init_expr) {
                        self.initial.insert(index, value);
                    }
                    self.note_ref_funcs(&global.init_expr)?;
                }
            }
            Payload::ExportSection(exports) => {
                for export in exports {
                    let export = export.map_err(unreadable)?;
                    match export.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => {
                            self.roots.insert(export.index);
                            self.exported_functions.insert(export.name.to_string());
                        }
                        ExternalKind::Global => {
                            self.global_names
                                .entry(export.index)
                                .or_insert_with(|| export.name.to_string());
                        }
                        _ => {}
                    }
                }
            }
            Payload::StartSection { func, .. } => {
                self.roots.insert(func);
            }
            Payload::ElementSection(elements) => {
                for element in elements {
                    match element.map_err(unreadable)?.items {
                        ElementItems::Functions(functions) => {
                            for function in functions {
                                self.roots.insert(function.map_err(unreadable)?);
                            }
                        }
                        ElementItems::Expressions(_, expressions) => {
                            for expression in expressions {
                                self.note_ref_funcs(&expression.map_err(unreadable)?)?;
                            }
                        }
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let function = self.next_function;
                self.next_function += 1;
                self.read_body(function, &body)?;
            }
            Payload::CustomSection(section) => {
                if let wasmparser::KnownCustom::Name(names) = section.as_known() {
                    for name in names {
                        // A broken name section names nothing: the imports and exports
                        // still do.
                        if let Ok(Name::Global(map)) = name {
                            for naming in map.into_iter().flatten() {
                                self.global_names
                                    .entry(naming.index)
                                    .or_insert_with(|| naming.name.to_string());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn read_body(
        &mut self,
        function: u32,
        body: &wasmparser::FunctionBody<'_>,
    ) -> Result<(), NotRestorable> {
        let unreadable = |err: wasmparser::BinaryReaderError| refuse(format!("unreadable: {err}"));
        let mut callees = Vec::new();
        let mut operators = body.get_operators_reader().map_err(unreadable)?;
        while !operators.eof() {
            match operators.read().map_err(unreadable)? {
                Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                    callees.push(function_index);
                }
                Operator::RefFunc { function_index } => {
                    self.roots.insert(function_index);
                }
                Operator::GlobalSet { global_index } => self.writes.push((function, global_index)),
                operator => {
                    if let Some(what) = mutation(&operator) {
                        self.mutation.get_or_insert((function, what));
                    }
                }
            }
        }
        self.calls.insert(function, callees);
        Ok(())
    }

    fn note_ref_funcs(&mut self, expression: &ConstExpr<'_>) -> Result<(), NotRestorable> {
        for operator in expression.get_operators_reader() {
            let operator = operator.map_err(|err| refuse(format!("unreadable: {err}")))?;
            if let Operator::RefFunc { function_index } = operator {
                self.roots.insert(function_index);
            }
        }
        Ok(())
    }

    /// Whether restoring this module's memory puts it back, and on what condition.
    fn verdict(&self) -> Result<Verdict, String> {
        if let Some((function, what)) = self.mutation {
            return Err(format!("function {function} uses `{what}`"));
        }
        let reachable = self.reachable();
        let written: Vec<(u32, u32)> = self
            .writes
            .iter()
            .copied()
            .filter(|(function, global)| reachable.contains(function) && !self.is_stack(*global))
            .collect();
        let Some(&(function, global)) = written.first() else {
            return Ok(Verdict::Clean);
        };
        if self.is_adapter_with_stack() {
            return Ok(Verdict::AdapterWrites);
        }
        let name = self.global_names.get(&global).map_or("", String::as_str);
        Err(format!(
            "function {function} writes global {global} `{name}`"
        ))
    }

    fn is_stack(&self, global: u32) -> bool {
        self.global_names.get(&global).map(String::as_str) == Some("__stack_pointer")
    }

    /// Whether this is a WASI preview 1 adapter whose stack is already allocated, and which
    /// exports nothing but its reset and its reallocs.
    fn is_adapter_with_stack(&self) -> bool {
        let only_reset = self.exported_functions.contains(ADAPTER_RESET)
            && self
                .exported_functions
                .iter()
                .all(|name| name == ADAPTER_RESET || ADAPTER_REALLOCS.contains(&name.as_str()));
        if !only_reset {
            return false;
        }
        let state = self
            .global_names
            .iter()
            .find(|(_, name)| name.as_str() == ADAPTER_ALLOCATION_STATE)
            .map(|(index, _)| *index);
        state
            .and_then(|index| self.initial.get(&index))
            .is_some_and(|value| *value >= STACK_ALLOCATED)
    }

    /// The defined functions reachable from the roots by direct calls (any function in a
    /// table or named by `ref.func` is a root, which covers indirect calls).
    fn reachable(&self) -> HashSet<u32> {
        let mut seen = HashSet::new();
        let mut stack: Vec<u32> = self.roots.iter().copied().collect();
        while let Some(function) = stack.pop() {
            if !seen.insert(function) {
                continue;
            }
            if let Some(callees) = self.calls.get(&function) {
                stack.extend(callees.iter().copied().filter(|f| !seen.contains(f)));
            }
        }
        seen
    }
}

/// The name of `operator` if it changes a table or drops a segment.
fn mutation(operator: &Operator<'_>) -> Option<&'static str> {
    Some(match operator {
        Operator::TableSet { .. } => "table.set",
        Operator::TableGrow { .. } => "table.grow",
        Operator::TableFill { .. } => "table.fill",
        Operator::TableInit { .. } => "table.init",
        Operator::TableCopy { .. } => "table.copy",
        Operator::ElemDrop { .. } => "elem.drop",
        Operator::DataDrop { .. } => "data.drop",
        _ => return None,
    })
}

/// The value of a constant expression that is one `i32.const`.
fn const_i32(expression: &ConstExpr<'_>) -> Option<i32> {
    let mut operators = expression.get_operators_reader();
    match operators.read().ok()? {
        Operator::I32Const { value } => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).expect("valid text")
    }

    #[test]
    fn a_component_whose_state_is_its_memory_qualifies() {
        let bytes = component(
            r#"(component
                (core module $m
                    (memory (export "memory") 1)
                    (global $__stack_pointer (mut i32) (i32.const 1024))
                    (func (export "run") (result i32)
                        (global.set $__stack_pointer (i32.sub (global.get $__stack_pointer) (i32.const 16)))
                        (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
                        (global.set $__stack_pointer (i32.add (global.get $__stack_pointer) (i32.const 16)))
                        (i32.load (i32.const 0))))
                (core instance $i (instantiate $m)))"#,
        );
        assert_eq!(check(&bytes), Ok(()));
    }

    #[test]
    fn a_counter_in_a_global_does_not_qualify() {
        let bytes = component(
            r#"(component
                (core module $m
                    (global $calls (mut i32) (i32.const 0))
                    (func (export "run") (result i32)
                        (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
                        (global.get $calls)))
                (core instance $i (instantiate $m)))"#,
        );
        let why = check(&bytes).expect_err("a global counter").to_string();
        assert!(why.contains("writes global 0 `calls`"), "{why}");
    }

    #[test]
    fn a_global_written_only_by_unreachable_code_qualifies() {
        let bytes = component(
            r#"(component
                (core module $m
                    (global $relocated (mut i32) (i32.const 0))
                    (func $relocate (global.set $relocated (i32.const 64)))
                    (func (export "run") (result i32) (global.get $relocated)))
                (core instance $i (instantiate $m)))"#,
        );
        assert_eq!(check(&bytes), Ok(()));
    }

    #[test]
    fn code_that_changes_a_table_does_not_qualify() {
        let bytes = component(
            r#"(component
                (core module $m
                    (table $t 1 funcref)
                    (func $f)
                    (elem declare func $f)
                    (func (export "run") (table.set $t (i32.const 0) (ref.func $f))))
                (core instance $i (instantiate $m)))"#,
        );
        let why = check(&bytes).expect_err("a table write").to_string();
        assert!(why.contains("table.set"), "{why}");
    }

    #[test]
    fn an_adapter_qualifies_only_if_nothing_but_its_reset_is_called() {
        let adapter = |state: i32, imported: &str| {
            component(&format!(
                r#"(component
                (core module $adapter
                    (global $allocation_state (mut i32) (i32.const {state}))
                    (func (export "reset_adapter_state")
                        (global.set $allocation_state (i32.const 2)))
                    (func (export "cabi_import_realloc")
                        (global.set $allocation_state (i32.const 4))))
                (core instance $a (instantiate $adapter))
                (core module $main
                    (import "wasi_snapshot_preview1" "{imported}" (func)))
                (core instance $i (instantiate $main
                    (with "wasi_snapshot_preview1" (instance $a)))))"#
            ))
        };
        assert_eq!(check(&adapter(2, "reset_adapter_state")), Ok(()));
        let why = check(&adapter(2, "cabi_import_realloc"))
            .expect_err("a realloc")
            .to_string();
        assert!(why.contains("`cabi_import_realloc`"), "{why}");
        let why = check(&adapter(0, "reset_adapter_state"))
            .expect_err("no stack")
            .to_string();
        assert!(why.contains("allocation_state"), "{why}");
    }

    /// wasp's Python runner (componentize-py's CPython, with its WASI preview 1 adapter)
    /// qualifies: its Python jobs get fresh interpreters without instantiating.
    #[test]
    fn the_python_runner_qualifies() {
        let Some(path) = super::super::python_runner_for_tests() else {
            return;
        };
        let runner = std::fs::read(path).expect("the runner reads");
        assert_eq!(check(&runner), Ok(()));
    }

    #[test]
    fn an_adapter_whose_realloc_the_component_uses_does_not_qualify() {
        let bytes = component(
            r#"(component
                (import "f" (func $f (result string)))
                (core module $adapter
                    (memory (export "memory") 1)
                    (global $allocation_state (mut i32) (i32.const 2))
                    (func (export "reset_adapter_state")
                        (global.set $allocation_state (i32.const 2)))
                    (func (export "cabi_import_realloc") (param i32 i32 i32 i32) (result i32)
                        (global.set $allocation_state (i32.const 4)) (i32.const 0)))
                (core instance $a (instantiate $adapter))
                (core func $lowered (canon lower (func $f)
                    (memory (core memory $a "memory"))
                    (realloc (core func $a "cabi_import_realloc")))))"#,
        );
        let why = check(&bytes).expect_err("a realloc in use").to_string();
        assert!(why.contains("realloc"), "{why}");
    }
}
