//! Where `wasp node` finds code shipped with it: the directory it is given
//! (`--shipped-code-dir`, or `WASP_SHIPPED_CODE_DIR`, which the container image sets), or
//! else the Python wheel's. `pip` installs the wheel's `wasp` as `<prefix>/bin/wasp` and
//! its package, with the runner's code compiled ahead (`wasp precompile`), in
//! `<prefix>/lib/python3.X/site-packages/wasp/runner/code/` (`lib64` where a distribution
//! puts compiled packages there, `dist-packages` for Debian's system Python). A node
//! started from that environment finds it, so its first Python job compiles nothing, as a
//! client's does.

use std::path::{Path, PathBuf};

/// The environment variable that names the directory when the command line does not.
const VARIABLE: &str = "WASP_SHIPPED_CODE_DIR";

/// Where the package's code is, relative to an interpreter's `lib/python3.X/`.
const PACKAGED_CODE: &str = "wasp/runner/code";

/// Where a node looks for shipped code.
#[derive(Debug)]
pub(crate) struct ShippedCode {
    /// The directory of the code.
    pub(crate) dir: PathBuf,
    /// The program it was installed with, whose file says how open the code may be; `None`
    /// for a directory given, which must be as private as a disk cache.
    pub(crate) program: Option<PathBuf>,
}

impl ShippedCode {
    /// The directory `given` on the command line, else the one `WASP_SHIPPED_CODE_DIR`
    /// names (unless empty), else the wheel's code beside this program, if any. A directory
    /// named that does not exist is an error: it would only make the node compile.
    pub(crate) fn find(given: Option<PathBuf>) -> anyhow::Result<Option<ShippedCode>> {
        let variable = std::env::var_os(VARIABLE).filter(|value| !value.is_empty());
        let named = match (given, variable) {
            (Some(dir), _) => Some((dir, "--shipped-code-dir")),
            (None, Some(dir)) => Some((PathBuf::from(dir), VARIABLE)),
            (None, None) => None,
        };
        if let Some((dir, source)) = named {
            anyhow::ensure!(dir.is_dir(), "{source} {}: not a directory", dir.display());
            return Ok(Some(ShippedCode { dir, program: None }));
        }
        let Ok(program) = std::env::current_exe() else {
            return Ok(None);
        };
        Ok(installed_beside(&program).map(|dir| {
            tracing::info!(dir = %dir.display(), "code shipped with this program");
            ShippedCode {
                dir,
                program: Some(program),
            }
        }))
    }
}

/// The runner's code the Python wheel installed beside `program` (`<prefix>/bin/wasp`), if
/// there is any. A prefix with the package installed for several Pythons gives the first
/// by name (`python3.11` before `python3.12`): another version's code is only a miss, and
/// the node compiles.
fn installed_beside(program: &Path) -> Option<PathBuf> {
    let bin = program.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let prefix = bin.parent()?;
    let mut pythons: Vec<PathBuf> = ["lib", "lib64"]
        .iter()
        .filter_map(|lib| std::fs::read_dir(prefix.join(lib)).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            name.to_str()
                .is_some_and(|name| name.starts_with("python3"))
        })
        .map(|entry| entry.path())
        .collect();
    pythons.sort();
    pythons
        .iter()
        .flat_map(|python| ["site-packages", "dist-packages"].map(|packages| python.join(packages)))
        .map(|packages| packages.join(PACKAGED_CODE))
        .find(|code| code.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(root: &Path, dir: &str) -> PathBuf {
        let path = root.join(dir);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    #[test]
    fn the_wheels_code_is_found_beside_its_wasp() {
        let venv = tempfile::tempdir().unwrap();
        let root = venv.path();
        make(root, "bin");
        make(root, "lib/python3.11/site-packages/numpy");
        assert_eq!(installed_beside(&root.join("bin/wasp")), None);
        let code = make(root, "lib/python3.11/site-packages/wasp/runner/code");
        assert_eq!(installed_beside(&root.join("bin/wasp")), Some(code));
    }

    #[test]
    fn debians_dist_packages_and_lib64_are_looked_in_too() {
        let usr = tempfile::tempdir().unwrap();
        let root = usr.path();
        let code = make(root, "lib/python3.11/dist-packages/wasp/runner/code");
        assert_eq!(installed_beside(&root.join("bin/wasp")), Some(code));
        let fedora = tempfile::tempdir().unwrap();
        let code = make(
            fedora.path(),
            "lib64/python3.12/site-packages/wasp/runner/code",
        );
        assert_eq!(
            installed_beside(&fedora.path().join("bin/wasp")),
            Some(code)
        );
    }

    #[test]
    fn of_several_pythons_the_first_by_name_with_the_package_is_taken() {
        let prefix = tempfile::tempdir().unwrap();
        let root = prefix.path();
        make(root, "lib/python3.10/site-packages");
        let code = make(root, "lib/python3.11/site-packages/wasp/runner/code");
        make(root, "lib/python3.12/site-packages/wasp/runner/code");
        assert_eq!(installed_beside(&root.join("bin/wasp")), Some(code));
    }

    #[test]
    fn a_wasp_outside_a_bin_directory_has_no_shipped_code() {
        let checkout = tempfile::tempdir().unwrap();
        let root = checkout.path();
        make(root, "lib/python3.11/site-packages/wasp/runner/code");
        assert_eq!(installed_beside(&root.join("target/release/wasp")), None);
        assert_eq!(installed_beside(Path::new("wasp")), None);
    }
}
