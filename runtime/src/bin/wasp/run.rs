//! `wasp run MODULE FUNCTION [ARG...]`: one job, its result as JSON on stdout.

use crate::EXIT_JOB_FAILED;
use crate::json::{encode_args, parse_cli_args};
use crate::options::{CacheArgs, LimitArgs, build_server};
use anyhow::Context as _;
use clap::Args;
use serde_json::Value;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use wasp::{JobOptions, Module, Server};

#[derive(Debug, Args)]
pub(crate) struct RunCommand {
    /// The module: a .wasm file built with the wasp-guest SDK.
    module: PathBuf,
    /// The job to call.
    function: String,
    /// The job's arguments, each a JSON value: 100, '"text"', '{"width": 2}'.
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    cache: CacheArgs,
    /// Print the statistics table on stderr at the end.
    #[arg(long)]
    stats: bool,
}

impl RunCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        let module = Module::from_file(&self.module)?;
        let args = encode_args(&parse_cli_args(&self.args)?)?;
        let builder = self
            .cache
            .apply(self.limits.apply(Server::builder().workers(1)));
        let server = build_server(builder)?;
        let output = server
            .submit_raw::<Value>(&module, &self.function, args, &JobOptions::new())
            .wait_output();
        forward_job_output(&output.stdout, &output.stderr)?;
        if self.stats {
            eprintln!("{}", server.stats());
        }
        match output.result {
            Ok(value) => {
                let mut stdout = std::io::stdout().lock();
                serde_json::to_writer(&mut stdout, &value)?;
                writeln!(stdout)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("wasp: job `{}` failed: {err}", self.function);
                Ok(ExitCode::from(EXIT_JOB_FAILED))
            }
        }
    }
}

/// Copies what the job printed to our stderr: stdout is reserved for results.
pub(crate) fn forward_job_output(stdout: &[u8], stderr: &[u8]) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    err.write_all(stdout).context("writing the job's output")?;
    err.write_all(stderr).context("writing the job's output")?;
    Ok(())
}
