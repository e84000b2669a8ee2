//! `wasp precompile COMPONENT --out DIR`: a component's code compiled ahead for this
//! architecture's baseline, to ship with a program (the Python wheel ships its runner's)
//! and give to servers with `shipped_code_dir`.

use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct PrecompileCommand {
    /// The component (a `.wasm` file).
    component: PathBuf,
    /// Where to write its code, as `<blake3 of the component>.cwasm`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

impl PrecompileCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        let module = wasp::Module::from_file(&self.component)
            .with_context(|| format!("could not load {}", self.component.display()))?;
        let path = wasp::precompile_for_shipping(&module, &self.out)?;
        println!("{}", path.display());
        Ok(ExitCode::SUCCESS)
    }
}
