//! `wasp`: run WebAssembly jobs in parallel from the command line.
//!
//! `main` only parses, sets up logging and dispatches; each subcommand lives in its own
//! module with an `execute` method.

mod build;
mod cache;
mod interrupt;
mod json;
mod map;
mod monitor;
mod new;
mod node;
mod options;
mod policy;
mod precompile;
mod registry;
mod run;
mod secret;
mod shipped;

use clap::{Parser, Subcommand};
use std::io::IsTerminal as _;
use std::process::ExitCode;

/// Run sandboxed WebAssembly jobs in parallel on every core.
#[derive(Debug, Parser)]
#[command(name = "wasp", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one job and print its result as JSON.
    Run(run::RunCommand),
    /// Run one job per line of a JSON-lines file; print the results in input order.
    Map(map::MapCommand),
    /// Serve jobs to clients over the network (QUIC), authenticated by the cluster secret.
    Node(Box<node::NodeCommand>),
    /// Build the guest crate in the current directory for wasm32-wasip1.
    Build(build::BuildCommand),
    /// Make a new guest crate: jobs of your own, ready for `wasp build`.
    New(new::NewCommand),
    /// Manage the cluster secret that clients and nodes share.
    Secret(secret::SecretCommand),
    /// Show or clear the result cache (`run` and `map --cache`).
    Cache(cache::CacheCommand),
    /// Publish a module to an OCI registry, as a wasm artifact: `wasp push FILE oci://...`.
    Push(registry::PushCommand),
    /// Fetch a module from an OCI registry into a file: `wasp pull oci://... FILE`.
    Pull(registry::PullCommand),
    /// Compile a component ahead for this architecture's baseline CPU, to ship with a
    /// program (the Python wheel ships its runner's code).
    Precompile(precompile::PrecompileCommand),
}

/// Exit status for a job that failed (its error is printed on stderr).
const EXIT_JOB_FAILED: u8 = 1;
/// Exit status for bad usage or input: a module that does not load, arguments that are not
/// JSON, an unreadable file.
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A node is a daemon: its connections and refusals are worth a log line.
    let default_level = match cli.command {
        Command::Node(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Run(command) => command.execute(),
        Command::Map(command) => command.execute(),
        Command::Node(command) => command.execute(),
        Command::Build(command) => command.execute(),
        Command::New(command) => command.execute(),
        Command::Secret(command) => command.execute(),
        Command::Cache(command) => command.execute(),
        Command::Push(command) => command.execute(),
        Command::Pull(command) => command.execute(),
        Command::Precompile(command) => command.execute(),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wasp: error: {err:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// A closed stdout (`wasp map ... | head`) is not an error worth reporting.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
