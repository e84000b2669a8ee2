/*!
Builds wasp guest crates for `wasm32-wasip1`.

This is what `wasp build` runs, and what build scripts use to embed guest modules (the wasp
examples and tests do). It runs `cargo build --release --target wasm32-wasip1` on a crate,
installing the target with `rustup` first if it is missing, and reports the `.wasm` files
produced.

```no_run
use wasp_guest_build::GuestBuild;

let modules = GuestBuild::new("path/to/my-job/Cargo.toml").run()?;
for module in modules {
    println!("{}", module.display());
}
# Ok::<(), wasp_guest_build::BuildError>(())
```
*/
#![deny(missing_docs)]

mod script;
mod target;

pub use script::embed_guests;
pub use target::{TargetStatus, ensure_target};

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target wasp guests are compiled for.
pub const TARGET: &str = "wasm32-wasip1";

/// Why a guest build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A tool (cargo or rustup) could not be started at all.
    #[error("could not run `{tool}`: {error}")]
    Spawn {
        /// The program that failed to start.
        tool: String,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// `rustup target add wasm32-wasip1` failed.
    #[error(
        "the {TARGET} target is not installed and `rustup target add {TARGET}` failed: {stderr}"
    )]
    InstallTarget {
        /// What rustup printed.
        stderr: String,
    },
    /// cargo reported a compilation failure (its diagnostics went to stderr).
    #[error("cargo build for {TARGET} failed ({status})")]
    Cargo {
        /// cargo's exit status.
        status: std::process::ExitStatus,
    },
    /// A generated file could not be written.
    #[error("could not write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The build succeeded but produced no `.wasm` module.
    #[error(
        "the build produced no .wasm module: is the crate a library with \
         `crate-type = [\"cdylib\"]`?"
    )]
    NoModule,
}

/// A build of one guest crate (or one package of a workspace) for [`TARGET`].
#[derive(Debug, Clone)]
pub struct GuestBuild {
    manifest_path: PathBuf,
    package: Option<String>,
    target_dir: Option<PathBuf>,
    release: bool,
    quiet: bool,
    strip_debug_info: bool,
}

impl GuestBuild {
    /// A release build of the crate whose `Cargo.toml` is at `manifest_path`.
    pub fn new(manifest_path: impl Into<PathBuf>) -> Self {
        GuestBuild {
            manifest_path: manifest_path.into(),
            package: None,
            target_dir: None,
            release: true,
            quiet: false,
            strip_debug_info: false,
        }
    }

    /// Builds only this package of the manifest's workspace (`cargo build -p`).
    pub fn package(mut self, package: impl Into<String>) -> Self {
        self.package = Some(package.into());
        self
    }

    /// Uses this target directory instead of the workspace's own. Build scripts must set one:
    /// the outer cargo holds the lock on the default target directory.
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.target_dir = Some(dir.into());
        self
    }

    /// Builds with the dev profile instead of release (default: release).
    pub fn release(mut self, release: bool) -> Self {
        self.release = release;
        self
    }

    /// Silences cargo's progress output (diagnostics still go to stderr).
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Leaves debug information out of the module, whatever the profile says: smaller
    /// modules hash, ship and load faster. Default: off (the crate's profile decides).
    pub fn strip_debug_info(mut self, strip: bool) -> Self {
        self.strip_debug_info = strip;
        self
    }

    /// Runs the build and returns the paths of the `.wasm` modules it produced.
    ///
    /// # Errors
    /// See [`BuildError`]: a missing target that cannot be installed, or a failed build.
    pub fn run(&self) -> Result<Vec<PathBuf>, BuildError> {
        ensure_target()?;
        let mut cmd = self.command();
        let mut child = cmd.spawn().map_err(|error| BuildError::Spawn {
            tool: "cargo".into(),
            error,
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let modules = wasm_artifacts(BufReader::new(stdout));
        let status = child.wait().map_err(|error| BuildError::Spawn {
            tool: "cargo".into(),
            error,
        })?;
        if !status.success() {
            return Err(BuildError::Cargo { status });
        }
        if modules.is_empty() {
            return Err(BuildError::NoModule);
        }
        Ok(modules)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(cargo());
        cmd.arg("build")
            .arg("--target")
            .arg(TARGET)
            .arg("--message-format=json-render-diagnostics")
            .arg("--manifest-path")
            .arg(&self.manifest_path);
        if self.release {
            cmd.arg("--release");
        }
        if self.quiet {
            cmd.arg("--quiet");
        }
        if let Some(package) = &self.package {
            cmd.arg("--package").arg(package);
        }
        if let Some(dir) = &self.target_dir {
            cmd.arg("--target-dir").arg(dir);
        }
        if self.strip_debug_info {
            let profile = if self.release { "RELEASE" } else { "DEV" };
            cmd.env(format!("CARGO_PROFILE_{profile}_DEBUG"), "false");
            cmd.env(format!("CARGO_PROFILE_{profile}_STRIP"), "debuginfo");
        }
        // Inside a build script, cargo exports flags meant for the host build; they must not
        // leak into the guest's.
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            cmd.env_remove(var);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        cmd
    }
}

/// The cargo to run: the one running us if any (build scripts, `cargo run`), else `cargo`.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Reads cargo's JSON messages and collects the `.wasm` files of compiler artifacts.
fn wasm_artifacts(reader: impl BufRead) -> Vec<PathBuf> {
    let mut modules = Vec::new();
    for line in reader.lines().map_while(Result::ok) {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(files) = message["filenames"].as_array() else {
            continue;
        };
        modules.extend(
            files
                .iter()
                .filter_map(|file| file.as_str())
                .filter(|file| Path::new(file).extension().is_some_and(|ext| ext == "wasm"))
                .map(PathBuf::from),
        );
    }
    modules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_only_wasm_artifacts() {
        let messages = r#"{"reason":"compiler-artifact","filenames":["/t/libserde.rlib"]}
not json
{"reason":"compiler-artifact","filenames":["/t/job.wasm","/t/libjob.rlib"]}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            wasm_artifacts(messages.as_bytes()),
            vec![PathBuf::from("/t/job.wasm")]
        );
    }
}
