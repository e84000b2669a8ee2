//! `wasp map MODULE FUNCTION --input FILE.jsonl`: one job per input line, results in input
//! order, one JSON line each.

use crate::EXIT_JOB_FAILED;
use crate::interrupt::{EXIT_INTERRUPTED, Interrupted, cancel_on_interrupt};
use crate::json::parse_input_line;
use crate::options::{JobTarget, Loaded, PoolArgs};
use crate::run::forward_job_output;
use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use wasp::{Job, JobOptions, Server, Stats};

/// Jobs kept in flight per worker: enough to keep every worker busy.
const IN_FLIGHT_PER_WORKER: usize = 16;

/// The job group of a map's jobs: Ctrl-C cancels it.
const GROUP: &str = "wasp map";

#[derive(Debug, Args)]
pub(crate) struct MapCommand {
    #[command(flatten)]
    target: JobTarget,
    /// JSON-lines file: each line a JSON array of arguments (`-` for stdin). Blank lines are
    /// skipped.
    #[arg(long, short, value_name = "FILE")]
    input: PathBuf,
    /// Number of workers (default: one per available CPU).
    #[arg(long, short)]
    workers: Option<usize>,
    #[command(flatten)]
    pool: PoolArgs,
}

/// One input line on its way through the pool.
struct Pending {
    line: usize,
    job: Job<Value>,
}

impl MapCommand {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        let target = self.target.load()?;
        let lines = self.read_input()?;
        let mut builder = Server::builder();
        if let Some(workers) = self.workers {
            builder = builder.workers(workers);
        }
        let server = self.pool.build(builder)?;
        let data = self.pool.put_data(&server)?;
        let lines = lines
            .into_iter()
            .map(|(line, args)| Ok((line, target.encode(args, &data)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let progress = progress_bar(lines.len());
        let failed = cancel_on_interrupt(&server, GROUP, |interrupted| {
            self.run_all(&server, &target, lines, &progress, interrupted)
        })?;
        progress.finish_and_clear();
        self.pool.print_stats(&server);
        let Some(failed) = failed else {
            // Dropping the server closes its connections: nodes stop its jobs at once.
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        };
        if failed > 0 {
            eprintln!("wasp: {failed} job(s) failed");
            return Ok(ExitCode::from(EXIT_JOB_FAILED));
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Reads and checks every line before running anything: bad input loses no work.
    fn read_input(&self) -> anyhow::Result<Vec<(usize, Vec<Value>)>> {
        let reader: Box<dyn BufRead> = if self.input.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let file = std::fs::File::open(&self.input)
                .with_context(|| format!("could not open {}", self.input.display()))?;
            Box::new(BufReader::new(file))
        };
        let mut inputs = Vec::new();
        for (index, line) in reader.lines().enumerate() {
            let number = index + 1;
            let line = line.with_context(|| format!("could not read line {number}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let args = parse_input_line(&line)
                .and_then(|args| self.pool.check_data(&args).map(|()| args))
                .with_context(|| format!("line {number} of {}", self.input.display()))?;
            inputs.push((number, args));
        }
        Ok(inputs)
    }

    /// Submits with a bounded window, prints results in input order; returns the number of
    /// failed jobs, or `None` if Ctrl-C stopped it (what was submitted is cancelled). A
    /// failed job prints `null` on stdout (keeping output line N for input line N) and its
    /// error, with its line number, on stderr.
    fn run_all(
        &self,
        server: &Server,
        target: &Loaded,
        lines: Vec<(usize, Vec<u8>)>,
        progress: &ProgressBar,
        interrupted: &Interrupted,
    ) -> anyhow::Result<Option<usize>> {
        let window = server.capacity().max(1) * IN_FLIGHT_PER_WORKER;
        let options = JobOptions::new().group(GROUP);
        // Every line was read before anything ran: the group's total is known now, so its
        // progress and ETA (on the dashboard) count towards it, not towards the window.
        server.expect_jobs(GROUP, lines.len() as u64);
        let mut inputs = lines.into_iter();
        let mut in_flight = VecDeque::new();
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        let mut failed = 0;
        let mut per_node = PerNode::default();
        loop {
            while in_flight.len() < window && !interrupted.is_set() {
                let Some((line, args)) = inputs.next() else {
                    break;
                };
                let job = server.submit_raw(&target.module, &target.job, args, &options);
                in_flight.push_back(Pending { line, job });
            }
            let Some(pending) = in_flight.pop_front() else {
                break;
            };

            let output = pending.job.wait_output();
            if interrupted.is_set() {
                // The watcher cancelled the group; a job submitted as it did goes too.
                in_flight.iter().for_each(|pending| {
                    pending.job.cancel();
                });
                stdout.flush()?;
                return Ok(None);
            }
            forward_job_output(&output.stdout, &output.stderr)?;
            match output.result {
                Ok(value) => serde_json::to_writer(&mut stdout, &value)?,
                Err(err) => {
                    failed += 1;
                    progress.suspend(|| eprintln!("wasp: line {}: {err}", pending.line));
                    stdout.write_all(b"null")?;
                }
            }
            stdout.write_all(b"\n")?;
            progress.inc(1);
            per_node.update(server, progress);
        }
        stdout.flush()?;
        if interrupted.is_set() {
            return Ok(None);
        }
        Ok(Some(failed))
    }
}

/// The jobs done per worker and node, shown under the bar (at most every 250 ms: reading
/// the statistics takes locks the workers also take).
#[derive(Default)]
struct PerNode {
    shown: Option<Instant>,
}

impl PerNode {
    fn update(&mut self, server: &Server, progress: &ProgressBar) {
        if progress.is_hidden() || self.shown.is_some_and(|at| at.elapsed() < PER_NODE_EVERY) {
            return;
        }
        self.shown = Some(Instant::now());
        progress.set_message(per_node_line(&server.stats()));
    }
}

const PER_NODE_EVERY: Duration = Duration::from_millis(250);

/// `local 120 · 10.0.0.2:7878 98 (4/4 busy)`: jobs done here and on each node.
fn per_node_line(stats: &Stats) -> String {
    let local: u64 = stats.workers.iter().map(|worker| worker.jobs).sum();
    let local = (stats.target_workers > 0).then(|| format!("local {local}"));
    let nodes = stats.nodes.iter().map(|node| {
        let state = match (node.connected, node.draining) {
            (true, false) => format!("{}/{} busy", node.in_flight.min(node.workers), node.workers),
            (true, true) => "draining".to_string(),
            (false, _) => "disconnected".to_string(),
        };
        format!("{} {} ({state})", node.address, node.jobs)
    });
    local
        .into_iter()
        .chain(nodes)
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
fn progress_bar(total: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} jobs  {per_sec}  eta {eta}\n{wide_msg}")
            .expect("the template is valid"),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_node_line_names_each_node_with_its_jobs() {
        let mut stats = Stats::default();
        stats.target_workers = 1;
        let mut node = wasp::NodeStats::default();
        node.address = "10.0.0.2:7878".into();
        node.jobs = 98;
        node.workers = 4;
        node.in_flight = 9;
        node.connected = true;
        stats.nodes.push(node);
        assert_eq!(
            per_node_line(&stats),
            "local 0 · 10.0.0.2:7878 98 (4/4 busy)"
        );
    }
}
