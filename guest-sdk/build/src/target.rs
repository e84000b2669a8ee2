//! Making sure the `wasm32-wasip1` standard library is installed.

use crate::{BuildError, TARGET};
use std::process::Command;

/// What [`ensure_target`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetStatus {
    /// The target was already installed.
    Present,
    /// The target was missing and has just been installed with rustup.
    Installed,
}

/// Installs the [`TARGET`] standard library with `rustup target add` if it is missing,
/// saying so on stderr.
///
/// Without rustup (a distribution's Rust) the target cannot be checked; the build then goes
/// ahead and cargo reports a missing target itself.
///
/// # Errors
/// [`BuildError::InstallTarget`] if rustup fails to install it.
pub fn ensure_target() -> Result<TargetStatus, BuildError> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let Ok(listed) = listed else {
        // No rustup: nothing we can check or install.
        return Ok(TargetStatus::Present);
    };
    let installed = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|line| line.trim() == TARGET);
    if installed {
        return Ok(TargetStatus::Present);
    }
    eprintln!(
        "wasp: the {TARGET} target is missing; installing it with `rustup target add {TARGET}`"
    );
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .output()
        .map_err(|error| BuildError::Spawn {
            tool: "rustup".into(),
            error,
        })?;
    if !added.status.success() {
        return Err(BuildError::InstallTarget {
            stderr: String::from_utf8_lossy(&added.stderr).trim().to_string(),
        });
    }
    Ok(TargetStatus::Installed)
}
