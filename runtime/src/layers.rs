//! The modules of `runtime/src` depend one way, floor by floor, as ARCHITECTURE.md says:
//! each module uses only modules of the floors below its own. Read from the sources (every
//! `crate::` path outside comments and test modules, names re-exported by `lib.rs` counted
//! as their module's), and from ARCHITECTURE.md's list of floors, so that neither can drift.
//! And the crate's own dependencies: what it uses, declared, and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The line of ARCHITECTURE.md before the list of floors.
const FLOORS_HEADING: &str = "The floors of `runtime/src`, lowest first";

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules: every `*.rs` file and directory of `src` but `lib.rs` and test
/// modules (this one).
fn modules() -> BTreeSet<String> {
    let tests = test_files();
    fs::read_dir(source_dir())
        .expect("src is readable")
        .filter_map(|entry| {
            let path = entry.expect("an entry").path();
            if tests.contains(&path) {
                return None;
            }
            let name = path.file_name()?.to_str()?.to_string();
            if path.is_dir() {
                Some(name)
            } else {
                let stem = name.strip_suffix(".rs")?;
                (stem != "lib").then(|| stem.to_string())
            }
        })
        .collect()
}

/// The Rust files of `module`, with the files of its test modules left out.
fn files_of(module: &str) -> Vec<PathBuf> {
    let dir = source_dir().join(module);
    let mut files = vec![source_dir().join(format!("{module}.rs"))];
    let mut pending = vec![dir];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    let tests = test_files();
    files
        .into_iter()
        .filter(|file| file.exists() && !tests.iter().any(|test| file.starts_with(test)))
        .collect()
}

/// The files and directories of the modules declared under `#[cfg(test)]`.
fn test_files() -> Vec<PathBuf> {
    let mut tests = Vec::new();
    let mut pending = vec![source_dir()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("a readable directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let file_name = path.file_name().and_then(|name| name.to_str());
            // Where the children of this file's module live.
            let children = match file_name {
                Some("mod.rs" | "lib.rs") => dir.clone(),
                _ => path.with_extension(""),
            };
            let mut lines = text.lines().map(str::trim);
            while let Some(line) = lines.next() {
                if line != "#[cfg(test)]" {
                    continue;
                }
                let declared = lines.find(|line| !line.starts_with("#["));
                let name = declared
                    .and_then(|line| line.strip_prefix("mod "))
                    .and_then(|rest| rest.strip_suffix(';'));
                if let Some(name) = name {
                    tests.push(children.join(name));
                    tests.push(children.join(format!("{name}.rs")));
                }
            }
        }
    }
    tests
}

/// The names `lib.rs` re-exports, each with the module it comes from.
fn re_exports() -> BTreeMap<String, String> {
    let lib = fs::read_to_string(source_dir().join("lib.rs")).expect("lib.rs");
    let mut names = BTreeMap::new();
    let statements = lib.split("pub use ").skip(1);
    for statement in statements {
        let statement = statement.split(';').next().unwrap_or_default();
        let Some((module, rest)) = statement.split_once("::") else {
            continue;
        };
        for name in identifiers(rest) {
            names.insert(name, module.trim().to_string());
        }
    }
    names
}

fn identifiers(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

/// The code of `file` that is not a comment, nor an inline test module at its end.
fn code_of(file: &Path) -> String {
    let text = fs::read_to_string(file).expect("a readable source file");
    let inline_tests = text.match_indices("#[cfg(test)]\nmod ").find(|(at, _)| {
        let line = text[at + "#[cfg(test)]\n".len()..].lines().next();
        line.is_some_and(|line| line.trim_end().ends_with('{'))
    });
    let end = inline_tests.map_or(text.len(), |(at, _)| at);
    text[..end]
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which modules each module uses.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let exported = re_exports();
    let module_of = |name: &str| {
        let module = exported.get(name).map_or(name, String::as_str);
        // Names from other crates (`wasp_proto`'s, re-exported) are not floors of this one.
        modules.contains(module).then(|| module.to_string())
    };
    let mut graph = BTreeMap::new();
    for module in &modules {
        let mut uses = BTreeSet::new();
        for file in files_of(module) {
            let code = code_of(&file);
            for path in code.split("crate::").skip(1) {
                let named = match path.strip_prefix('{') {
                    Some(group) => identifiers(group.split('}').next().unwrap_or_default()),
                    None => identifiers(path).into_iter().take(1).collect(),
                };
                uses.extend(named.iter().filter_map(|name| module_of(name)));
            }
        }
        uses.remove(module);
        graph.insert(module.clone(), uses);
    }
    graph
}

/// ARCHITECTURE.md's floors, lowest first: the modules each names.
fn floors() -> Vec<Vec<String>> {
    let architecture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md");
    let text = fs::read_to_string(architecture).expect("ARCHITECTURE.md");
    let start = text
        .find(FLOORS_HEADING)
        .expect("ARCHITECTURE.md lists the floors");
    text[start..]
        .lines()
        .skip_while(|line| !line.starts_with("1. "))
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|line| {
            let names = line.split(':').next().unwrap_or_default();
            names
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[test]
fn every_module_uses_only_the_floors_below_its_own() {
    let graph = dependencies();
    let floors = floors();
    let floor_of: BTreeMap<&str, usize> = floors
        .iter()
        .enumerate()
        .flat_map(|(floor, names)| names.iter().map(move |name| (name.as_str(), floor)))
        .collect();
    let unplaced: Vec<_> = graph
        .keys()
        .filter(|module| !floor_of.contains_key(module.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "ARCHITECTURE.md places no floor for {unplaced:?}"
    );
    let mut upward = Vec::new();
    for (module, uses) in &graph {
        for used in uses {
            if floor_of[used.as_str()] >= floor_of[module.as_str()] {
                upward.push(format!("{module} uses {used}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "modules that use their own floor or one above (a cycle, or ARCHITECTURE.md out of \
         date): {upward:?}"
    );
}

/// The reading of the sources sees what it should, so that the test above cannot pass
/// by seeing nothing.
#[test]
fn the_sources_are_read_as_they_are_written() {
    let graph = dependencies();
    assert!(
        graph["server"].contains("scheduler"),
        "{:?}",
        graph["server"]
    );
    assert!(graph["builder"].contains("server"));
    assert!(graph["job"].contains("scheduler"));
    assert!(graph["waiting"].is_empty());
    let tests = test_files();
    assert!(tests.iter().any(|path| path.ends_with("node/tests")));
    assert!(
        tests
            .iter()
            .any(|path| path.ends_with("cluster/hostile_node.rs"))
    );
    assert_eq!(re_exports()["Server"], "server");
}

/// The `[dependencies]` of this crate's manifest, each with the text of its line.
fn manifest_dependencies() -> BTreeMap<String, String> {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("Cargo.toml");
    let section = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] section");
    section
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && line.contains('='))
        .filter_map(|line| {
            let (name, _) = line.split_once('=')?;
            let name = name.trim().trim_end_matches(".workspace").to_string();
            Some((name, line.to_string()))
        })
        .collect()
}

/// The host depends on the ABI's small crate, not on the guest SDK and its proc-macros;
/// on no crate it does not use (argon2 is the protocol's, signals the CLI's); and it
/// declares the features it uses itself (components, WASI 0.2), not only through p1's.
#[test]
fn the_host_declares_what_it_uses_and_nothing_else() {
    let dependencies = manifest_dependencies();
    assert!(dependencies.contains_key("wasp-abi"), "{dependencies:?}");
    for unused in ["wasp-guest", "wasp-guest-macros", "argon2"] {
        assert!(
            !dependencies.contains_key(unused),
            "{unused}: {dependencies:?}"
        );
    }
    assert!(
        !dependencies["tokio"].contains("\"signal\""),
        "{}",
        dependencies["tokio"]
    );
    assert!(dependencies["wasmtime"].contains("\"component-model\""));
    assert!(dependencies["wasmtime-wasi"].contains("\"p2\""));
    // What the claims above rest on: the sources use components and WASI 0.2 directly.
    let sandbox: String = files_of("sandbox")
        .iter()
        .map(|file| code_of(file))
        .collect();
    assert!(sandbox.contains("wasmtime::component::") && sandbox.contains("wasmtime_wasi::p2::"));
    let all: String = modules()
        .iter()
        .flat_map(|module| files_of(module))
        .map(|f| code_of(&f))
        .collect();
    assert!(!all.contains("argon2") && !all.contains("tokio::signal"));
}
