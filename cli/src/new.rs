//! `wasp new NAME`: a guest crate of one's own, ready for `wasp build` and `wasp run`.

use anyhow::Context as _;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The guest SDK next to the sources this `wasp` was built from, if they are still there
/// (`cargo install --path cli` from a checkout): the SDK is not published yet.
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

#[derive(Debug, Args)]
pub(crate) struct NewCommand {
    /// The crate's name: letters, digits, `-` and `_`, starting with a letter.
    name: String,
    /// The directory to make (default: ./NAME). It must not exist, or be empty.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// Depend on the wasp-guest SDK in this directory (default: the SDK of the sources
    /// this wasp was built from).
    #[arg(long, value_name = "DIR", conflicts_with = "sdk_git")]
    sdk_path: Option<PathBuf>,
    /// Depend on the wasp-guest SDK from this git repository instead.
    #[arg(long, value_name = "URL")]
    sdk_git: Option<String>,
}

impl NewCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        check_name(&self.name)?;
        let dir = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(&self.name));
        let sdk = self.sdk_dependency()?;
        make_empty_dir(&dir)?;
        let files = [
            ("Cargo.toml", manifest(&self.name, &sdk)),
            ("src/lib.rs", LIB_RS.replace("@CRATE@", &self.name)),
            (".gitignore", "/target\n".to_string()),
        ];
        for (file, text) in files {
            let path = dir.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("could not create {}", parent.display()))?;
            }
            std::fs::write(&path, text)
                .with_context(|| format!("could not write {}", path.display()))?;
        }
        let module = format!(
            "target/wasm32-wasip1/release/{}.wasm",
            self.name.replace('-', "_")
        );
        println!(
            "created the guest crate `{}` in {}",
            self.name,
            dir.display()
        );
        println!("next:");
        println!("  cd {}", dir.display());
        println!("  wasp build");
        println!("  wasp run {module} sum_primes 100");
        println!("  wasp run {module} hello '\"world\"'");
        Ok(ExitCode::SUCCESS)
    }

    /// The `wasp-guest` dependency line's value.
    fn sdk_dependency(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.sdk_git {
            return Ok(format!("{{ git = {} }}", toml_string(url)));
        }
        let dir = match &self.sdk_path {
            Some(dir) => dir.clone(),
            None => PathBuf::from(BUILT_FROM_SDK),
        };
        let dir = dir.canonicalize().map_err(|_| {
            anyhow::anyhow!(
                "the wasp-guest SDK is not at {} (it is not published yet): give its \
                 directory with --sdk-path (guest-sdk in a wasp checkout) or --sdk-git URL",
                dir.display()
            )
        })?;
        anyhow::ensure!(
            dir.join("Cargo.toml").is_file(),
            "{} holds no Cargo.toml: --sdk-path must be the wasp-guest crate (guest-sdk in a \
             wasp checkout)",
            dir.display()
        );
        let path = dir.to_str().context("the SDK's path is not UTF-8")?;
        Ok(format!("{{ path = {} }}", toml_string(path)))
    }
}

/// Refuses names cargo would refuse, before anything is written.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    anyhow::ensure!(
        starts_with_letter && rest_ok,
        "`{name}` is not a crate name: use letters, digits, `-` and `_`, starting with a letter"
    );
    Ok(())
}

/// Creates `dir`, or accepts it if it exists and is empty: nothing is overwritten.
fn make_empty_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("{} exists and cannot be read", dir.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "{} exists and is not empty: choose another name or --path",
            dir.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

fn manifest(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the .wasm module wasp runs; rlib: so the jobs can be tested natively too.
crate-type = ["cdylib", "rlib"]

[dependencies]
wasp-guest = {sdk}

# A crate of its own, whatever workspace is around it.
[workspace]
"#
    )
}

/// The crate's code; `@CRATE@` is its name.
const LIB_RS: &str = r#"//! @CRATE@: jobs for wasp. `wasp build` compiles them to a WebAssembly module; `wasp run
//! MODULE JOB ARG...` runs one, `wasp map` many, each in its own sandbox.

/// The sum of the primes below `n` (Parallel Python's classic example).
#[wasp_guest::job]
pub fn sum_primes(n: u64) -> u64 {
    (2..n).filter(|&x| is_prime(x)).sum()
}

/// A greeting: arguments and results are any serde types.
#[wasp_guest::job]
pub fn hello(name: String) -> String {
    println!("greeting {name}"); // captured, and shown by `wasp run` on stderr
    format!("hello, {name}!")
}

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|i| i * i <= n).all(|i| n % i != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_ordinary_functions() {
        assert_eq!(sum_primes(100), 1060);
        assert_eq!(hello("world".into()), "hello, world!");
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_are_checked() {
        for good in ["jobs", "my-jobs", "my_jobs2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "2jobs", "-jobs", "my jobs", "jobs!", "../up"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_are_quoted_for_toml() {
        assert_eq!(toml_string(r#"/a "b" \c"#), r#""/a \"b\" \\c""#);
    }
}
