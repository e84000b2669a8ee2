//! `wasp run MODULE FUNCTION [ARG...]`: one job, its result as JSON on stdout. MODULE may
//! be a .py file: FUNCTION then runs in wasp's Python runner.

use crate::EXIT_JOB_FAILED;
use crate::interrupt::{EXIT_INTERRUPTED, cancel_on_interrupt};
use crate::json::parse_cli_args;
use crate::options::{JobTarget, PoolArgs};
use anyhow::Context as _;
use clap::Args;
use serde_json::Value;
use std::io::Write as _;
use std::process::ExitCode;
use wasp::{JobOptions, Server};

/// The job group of `wasp run`'s job: Ctrl-C cancels it.
const GROUP: &str = "wasp run";

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
        let target = self.target.load()?;
        let args = parse_cli_args(&self.args)?;
        self.pool.check_data(&args)?;
        let server = self.pool.build(Server::builder().workers(self.workers))?;
        let data = self.pool.put_data(&server)?;
        let args = target.encode(args, &data)?;
        let options = JobOptions::new().group(GROUP);
        let (output, interrupted) = cancel_on_interrupt(&server, GROUP, |interrupted| {
            let job = server.submit_raw::<Value>(&target.module, &target.job, args, &options);
            (job.wait_output(), interrupted.is_set())
        });
        if interrupted {
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
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

/// Copies what the job printed to our stderr (stdout is reserved for results), made
/// harmless for a terminal (see [`printable`]).
pub(crate) fn forward_job_output(stdout: &[u8], stderr: &[u8]) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    for output in [stdout, stderr] {
        err.write_all(printable(output).as_bytes())
            .context("writing the job's output")?;
    }
    Ok(())
}

/// A job's output as text that cannot drive a terminal: a job is not trusted, and escape
/// sequences could rewrite the screen, retitle the window or set the clipboard. Control
/// characters other than newline and tab are shown escaped (`\u{1b}`), and bytes that are
/// not UTF-8 as U+FFFD.
fn printable(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable(b"line\n\tindented\n"), "line\n\tindented\n");
        assert_eq!(
            printable(b"\x1b]52;c;cHduZWQ=\x07\r\x1b[2J"),
            "\\u{1b}]52;c;cHduZWQ=\\u{7}\\u{d}\\u{1b}[2J"
        );
        // C1 controls (U+009B is a one-character escape sequence) and invalid UTF-8.
        assert_eq!(printable("\u{9b}2J".as_bytes()), "\\u{9b}2J");
        assert_eq!(printable(b"\xff ok"), "\u{fffd} ok");
    }
}
