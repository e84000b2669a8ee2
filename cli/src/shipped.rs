//! Where `wasp node` finds the code shipped with it. `pip` installs the Python wheel's
//! `wasp` as `<prefix>/bin/wasp` and its package, with the runner's code compiled ahead
//! (`wasp precompile`), in `<prefix>/lib/python3.X/site-packages/wasp/runner/code/`
//! (`lib64` where a distribution puts compiled packages there, `dist-packages` for
//! Debian's system Python). A node started from that environment finds it, so its first
//! Python job compiles nothing, as a client's does.

use std::path::{Path, PathBuf};

/// Where the package's code is, relative to an interpreter's `lib/python3.X/`.
const PACKAGED_CODE: &str = "wasp/runner/code";

/// The runner's code the Python wheel installed beside `program` (`<prefix>/bin/wasp`), if
/// there is any.
pub(crate) fn installed_beside(program: &Path) -> Option<PathBuf> {
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
    fn a_wasp_outside_a_bin_directory_has_no_shipped_code() {
        let checkout = tempfile::tempdir().unwrap();
        let root = checkout.path();
        make(root, "lib/python3.11/site-packages/wasp/runner/code");
        assert_eq!(installed_beside(&root.join("target/release/wasp")), None);
        assert_eq!(installed_beside(Path::new("wasp")), None);
    }
}
