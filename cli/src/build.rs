//! `wasp build`: compile the guest crate in the current directory to a wasp module.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use wasp::Module;
use wasp_guest_build::GuestBuild;

#[derive(Debug, Args)]
pub(crate) struct BuildCommand {
    /// The guest crate's manifest (default: ./Cargo.toml).
    #[arg(long, value_name = "PATH", default_value = "Cargo.toml")]
    manifest_path: PathBuf,
    /// Build with the dev profile instead of release.
    #[arg(long)]
    debug: bool,
}

impl BuildCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        let modules = GuestBuild::new(&self.manifest_path)
            .release(!self.debug)
            .run()?;
        for path in modules {
            // Validate what was built: a crate without any #[job] builds fine but is no use.
            let module = Module::from_file(&path)?;
            println!("{}", path.display());
            println!("  blake3 {}", module.hash());
            println!("  jobs   {}", module.jobs().join(", "));
        }
        Ok(ExitCode::SUCCESS)
    }
}
