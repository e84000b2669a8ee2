//! Real `wasp node` processes on 127.0.0.1, and bounded runs of the `wasp` binary.
//!
//! A [`NodeProcess`] owns a temp dir with the node's identity, compiled-code cache, secret
//! file and log (its stderr). It can be killed, terminated and restarted on the same port
//! with the same identity; dropping it kills the process. When a test fails, every node
//! still owned prints its log.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wasp::ClusterSecret;

/// The `wasp` binary under test.
pub(crate) const WASP: &str = env!("CARGO_BIN_EXE_wasp");

/// How long a node may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a node may stay silent before it drops a client: short, so that a client that
/// goes away is forgotten quickly.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The node's log filter: wasp's own decisions in detail, the libraries' warnings.
const NODE_LOG: &str = "info,wasp=debug";

/// Writes `secret` as `wasp secret new` does, readable by its owner only.
pub(crate) fn write_secret(path: &Path, secret: &ClusterSecret) {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|err| panic!("cannot create {}: {err}", path.display()));
    writeln!(file, "{}", secret.to_hex()).expect("secret written");
}

/// Sends `signal` (`TERM`, `KILL`) to process `pid` with kill(1): the tests have no libc.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// Runs `wasp args…` to its end, failing the test if it takes longer than `timeout`.
pub(crate) fn run_wasp(args: &[&str], timeout: Duration) -> Output {
    let child = Command::new(WASP)
        .args(args)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wasp starts");
    let pid = child.id();
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(timeout) {
        Ok(output) => output.expect("wasp's output is read"),
        Err(_) => {
            send_signal(pid, "KILL");
            panic!(
                "`wasp {}` did not finish within {timeout:?}",
                args.join(" ")
            );
        }
    }
}

/// How clients authenticate to a node.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth<'a> {
    /// `--secret-file` with this secret.
    Secret(&'a ClusterSecret),
    /// `--insecure`.
    Insecure,
}

/// What runs a node: the `wasp` under test, or another `wasp` binary (a build for another
/// architecture), possibly through a runner (an emulator, `prlimit`).
#[derive(Debug, Clone)]
pub(crate) struct Program {
    /// The runner and its arguments, if any, then the path of a `wasp` binary. The runner
    /// must exec it (keep its pid), so that signals reach the node.
    pub(crate) command: Vec<String>,
    /// How long the node may take to print its address.
    pub(crate) start_timeout: Duration,
    /// How long the node may stay silent before it drops a client (`--client-timeout`).
    pub(crate) client_timeout: Duration,
}

impl Program {
    /// The `wasp` binary under test, run directly.
    pub(crate) fn wasp_under_test() -> Program {
        Program {
            command: vec![WASP.to_string()],
            start_timeout: START_TIMEOUT,
            client_timeout: CLIENT_TIMEOUT,
        }
    }
}

/// A `wasp node` process listening on 127.0.0.1.
#[derive(Debug)]
pub(crate) struct NodeProcess {
    /// Holds the identity, the cache, the secret file and the log.
    dir: tempfile::TempDir,
    /// The secret file, or `None` for `--insecure`.
    secret_file: Option<PathBuf>,
    workers: usize,
    /// More arguments for `wasp node`.
    extra: Vec<String>,
    /// What runs the node, and how patient to be with it.
    program: Program,
    /// The running process, if any.
    child: Option<Child>,
    /// Where it listens (the port it was given at its first start).
    address: SocketAddr,
    /// Its identity, as it printed it.
    id: String,
}

impl NodeProcess {
    /// Starts a node with `workers` workers on a free port, and waits for its address.
    pub(crate) fn start(auth: Auth<'_>, workers: usize) -> NodeProcess {
        Self::start_with(auth, workers, &[])
    }

    /// Like [`start`](Self::start), with more arguments for `wasp node`.
    pub(crate) fn start_with(auth: Auth<'_>, workers: usize, extra: &[&str]) -> NodeProcess {
        Self::start_program(Program::wasp_under_test(), auth, workers, extra)
    }

    /// Like [`start_with`](Self::start_with), with the node run by `program`.
    pub(crate) fn start_program(
        program: Program,
        auth: Auth<'_>,
        workers: usize,
        extra: &[&str],
    ) -> NodeProcess {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_program_at(program, auth, workers, loopback, extra)
    }

    /// Like [`start_program`](Self::start_program), listening on `listen` (port 0: a free
    /// one).
    pub(crate) fn start_program_at(
        program: Program,
        auth: Auth<'_>,
        workers: usize,
        listen: SocketAddr,
        extra: &[&str],
    ) -> NodeProcess {
        assert!(!program.command.is_empty(), "no command to run wasp with");
        let dir = tempfile::tempdir().expect("temp dir");
        let secret_file = match auth {
            Auth::Secret(secret) => {
                let path = dir.path().join("cluster.key");
                write_secret(&path, secret);
                Some(path)
            }
            Auth::Insecure => None,
        };
        let mut node = NodeProcess {
            dir,
            secret_file,
            workers,
            extra: extra.iter().map(|arg| arg.to_string()).collect(),
            program,
            child: None,
            address: listen,
            id: String::new(),
        };
        node.spawn();
        node
    }

    /// The address clients connect to (`127.0.0.1:PORT` unless started elsewhere).
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// The identity the node printed at its last start.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Everything the node has logged so far (its stderr, across restarts).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The node's compiled-code cache (`--cache-dir`).
    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    /// Starts the process on `self.address` and reads its first line.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the node is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file opens");
        let mut command = Command::new(&self.program.command[0]);
        command
            .args(&self.program.command[1..])
            .arg("node")
            .arg("--listen")
            .arg(self.address.to_string())
            .arg("--identity-dir")
            .arg(self.dir.path().join("identity"))
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .arg("--workers")
            .arg(self.workers.to_string())
            .arg("--client-timeout")
            .arg(format!("{}ms", self.program.client_timeout.as_millis()))
            .args(&self.extra)
            .env("RUST_LOG", NODE_LOG)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        match &self.secret_file {
            Some(path) => command.arg("--secret-file").arg(path),
            None => command.arg("--insecure"),
        };
        let mut child = command.spawn().expect("wasp node starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (first_line, line) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut text = String::new();
            let _ = first_line.send(reader.read_line(&mut text).map(|_| text));
            // Keep the pipe open and drained for as long as the process lives.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        self.child = Some(child);
        let start_timeout = self.program.start_timeout;
        let line = match line.recv_timeout(start_timeout) {
            Ok(Ok(line)) => line,
            Ok(Err(err)) => self.fail(&format!("cannot read its stdout: {err}")),
            Err(_) => self.fail(&format!("no address within {start_timeout:?}")),
        };
        // `wasp node <id> listening on <addr>`
        let words: Vec<&str> = line.split_whitespace().collect();
        let [_, _, id, _, _, address] = words[..] else {
            self.fail(&format!("unexpected first line {line:?}"))
        };
        let address = address
            .parse()
            .unwrap_or_else(|_| self.fail(&format!("unexpected address in {line:?}")));
        self.id = id.to_string();
        self.address = address;
    }

    /// Kills the process and fails the test with `why` and the node's log.
    fn fail(&mut self, why: &str) -> ! {
        self.kill9();
        panic!("wasp node: {why}; its log:\n{}", self.log());
    }

    /// Kills the process with SIGKILL and reaps it.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to shut down gracefully (SIGTERM); see [`wait_exit`](Self::wait_exit).
    pub(crate) fn terminate(&mut self) {
        let child = self.child.as_ref().expect("the node is running");
        send_signal(child.id(), "TERM");
    }

    /// Sends SIGHUP: the node re-reads its settings file.
    pub(crate) fn hangup(&mut self) {
        let child = self.child.as_ref().expect("the node is running");
        send_signal(child.id(), "HUP");
    }

    /// Waits for the process to exit, up to `timeout`; `None` if it is still running then.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("the node was started");
        loop {
            if let Some(status) = child.try_wait().expect("the node's status is readable") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the node again, on the same port, with the same identity and cache. The
    /// previous process must have exited.
    pub(crate) fn restart(&mut self) {
        let port = self.address;
        self.spawn();
        assert_eq!(self.address, port, "the node came back on another address");
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- log of wasp node {} ({}):\n{}",
                self.address,
                self.id,
                self.log()
            );
        }
    }
}
