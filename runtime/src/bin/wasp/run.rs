//! `wasp run MODULE FUNCTION [ARG...]`: one job, its result as JSON on stdout.

use crate::EXIT_JOB_FAILED;
use crate::json::{encode_args, parse_cli_args};
use crate::options::{JobTarget, PoolArgs};
use anyhow::Context as _;
use clap::Args;
use serde_json::Value;
use std::io::Write as _;
use std::process::ExitCode;
use wasp::{JobOptions, Server};

#[derive(Debug, Args)]
pub(crate) struct RunCommand {
    #[command(flatten)]
    target: JobTarget,
    /// The job's arguments, each a JSON value: 100, '"text"', '{"width": 2}'.
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    /// Local workers: 0 runs the job on a node (`--peer`). Default: 1.
    #[arg(long, value_name = "N", default_value_t = 1)]
    workers: usize,
    #[command(flatten)]
    pool: PoolArgs,
}

impl RunCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        let module = self.target.load()?;
        let args = encode_args(&parse_cli_args(&self.args)?)?;
        let server = self.pool.build(Server::builder().workers(self.workers))?;
        let output = server
            .submit_raw::<Value>(&module, &self.target.function, args, &JobOptions::new())
            .wait_output();
        forward_job_output(&output.stdout, &output.stderr)?;
        if let Some(fuel) = output.fuel_used {
            eprintln!("wasp: the job used {fuel} fuel");
        }
        self.pool.print_stats(&server);
        match output.result {
            Ok(value) => {
                let mut stdout = std::io::stdout().lock();
                serde_json::to_writer(&mut stdout, &value)?;
                writeln!(stdout)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("wasp: job `{}` failed: {err}", self.target.function);
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
