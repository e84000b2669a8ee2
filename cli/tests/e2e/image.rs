//! The container image (`scripts/image.sh`): unpacked with umoci, it holds one binary, the
//! loader and libraries it asks for (plus a passwd entry and /tmp), the x86-64 image the
//! Python runner's code compiled ahead, its configuration runs `/wasp` as user 65532, and
//! that binary, chrooted into the unpacked root as that user in a network namespace of its
//! own, with the image's environment, serves as a node to a client here: the x86-64 one
//! runs a Python job on that code, compiling nothing.
//!
//! CI builds the images first and names their OCI layouts in `WASP_IMAGE_X86_64` and
//! `WASP_IMAGE_AARCH64` (the aarch64 one runs under qemu-user). Without them the test says
//! so and passes, except under `CI=true`, where it fails.

use crate::harness::hosts::TestHost;
use crate::harness::support::*;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wasp::{Module, Peer, Server};

/// The OCI layout named by `variable`, or `None` (and why) outside CI.
fn layout(variable: &str) -> Option<PathBuf> {
    match std::env::var_os(variable) {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            wasp_fixtures::cannot_run_here(&format!(
                "{variable} is not set (build it with scripts/image.sh)"
            ));
            None
        }
    }
}

/// Unpacks `layout`'s `latest` into `bundle` (a root and a runtime config).
fn unpack(layout: &Path, bundle: &Path) -> serde_json::Value {
    let image = format!("{}:latest", layout.display());
    let output = Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(bundle)
        .output()
        .expect("umoci runs");
    assert!(
        output.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = std::fs::read_to_string(bundle.join("config.json")).expect("a config");
    serde_json::from_str(&config).expect("the config is JSON")
}

/// Every regular file under `root`, relative.
fn files(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a readable dir") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let relative = path.strip_prefix(root).expect("under the root");
                found.push(relative.display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// The program interpreter the ELF file at `path` asks for (its loader), if any.
fn interpreter(path: &Path) -> Option<String> {
    let elf = std::fs::read(path).expect("the binary reads");
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF file");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let (table, size, count) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..count).find_map(|i| {
        let at = table + i * size;
        let kind = u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
        (kind == PT_INTERP).then(|| {
            let (offset, length) = (u64_at(at + 8), u64_at(at + 32));
            String::from_utf8_lossy(&elf[offset..offset + length])
                .trim_end_matches('\0')
                .to_string()
        })
    })
}

/// A node running the image as its configuration says.
struct ImageNode {
    child: Child,
    address: SocketAddr,
    secret: wasp::ClusterSecret,
}

impl Drop for ImageNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The image's node, run as the image says (its user, its entrypoint) in `host`'s
/// namespace, chrooted into `root`; `runner` is a qemu-user program copied into the root to
/// run a foreign architecture's binary.
fn start_node(
    host: &TestHost,
    root: &Path,
    config: &serde_json::Value,
    runner: Option<&Path>,
) -> ImageNode {
    let user = &config["process"]["user"];
    let (uid, gid) = (user["uid"].as_u64().unwrap(), user["gid"].as_u64().unwrap());
    assert_eq!(
        (uid, gid),
        (65532, 65532),
        "the image runs as a non-root user"
    );
    let entrypoint = config["process"]["args"][0]
        .as_str()
        .expect("an entrypoint");
    assert_eq!(entrypoint, "/wasp");
    let secret = new_secret();
    let key = root.join("tmp/cluster.key");
    crate::harness::node::write_secret(&key, &secret);
    std::os::unix::fs::chown(&key, Some(uid as u32), Some(gid as u32)).expect("chown");
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &host.namespace, "chroot"])
        .arg(format!("--userspec={uid}:{gid}"))
        .arg(root);
    if let Some(runner) = runner {
        let name = runner.file_name().expect("a file name");
        std::fs::copy(runner, root.join(name)).expect("qemu copied into the root");
        command.arg(Path::new("/").join(name));
    }
    let listen = format!("{}:7878", host.address);
    let environment = config["process"]["env"].as_array().expect("an environment");
    let environment = environment
        .iter()
        .filter_map(|variable| variable.as_str()?.split_once('='));
    command
        .envs(environment)
        .arg(entrypoint)
        .args([
            "node",
            "--listen",
            &listen,
            "--secret-file",
            "/tmp/cluster.key",
        ])
        .args([
            "--identity-dir",
            "/tmp/identity",
            "--cache-dir",
            "/tmp/cache",
        ])
        .args(["--workers", "1", "--client-timeout", "10s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().expect("the node starts");
    let stdout = child.stdout.take().expect("piped");
    let (line, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut text = String::new();
        let _ = line.send(reader.read_line(&mut text).map(|_| text));
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let node = ImageNode {
        child,
        address: listen.parse().expect("an address"),
        secret,
    };
    let first = read
        .recv_timeout(Duration::from_secs(120))
        .expect("the node printed its address")
        .expect("its stdout reads");
    assert!(first.contains(&format!("listening on {listen}")), "{first}");
    node
}

/// The Python runner whose code the image of `arch` holds: only the image of this
/// machine's architecture does (`scripts/image.sh` compiles it with that image's `wasp`).
/// `Err` where it is needed and cannot be had (outside CI: the test is skipped).
fn shipped_runner(arch: &str) -> Result<Option<Module>, ()> {
    if arch != std::env::consts::ARCH {
        return Ok(None);
    }
    python_runner().map(Some).ok_or(())
}

/// Whether the node's compiled-code cache under `cache` holds code for `module`: code the
/// node compiled (it keeps none it loaded from shipped code).
fn compiled_into(cache: &Path, module: &Module) -> bool {
    let name = format!("{}.cwasm", module.hash().to_hex());
    files(cache).iter().any(|file| file.ends_with(&name))
}

/// Unpacks the image of `variable`, checks what it holds, runs its node in a test host of
/// its own and a batch on it from here; with `shipped`, the Python runner whose code the
/// image holds (the image of this machine's architecture), a Python job too.
fn the_image_serves_a_client(
    variable: &str,
    index: u8,
    runner: Option<&Path>,
    shipped: Option<&Module>,
) {
    let Some(layout) = layout(variable) else {
        return;
    };
    let bundle = tempfile::tempdir().expect("a temp dir");
    let bundle = bundle.path().join("bundle");
    let config = unpack(&layout, &bundle);
    let root = bundle.join("rootfs");
    let binary = root.join("wasp");
    let loader = interpreter(&binary).expect("the binary names its loader");
    let (libraries, others): (Vec<String>, Vec<String>) = files(&root)
        .into_iter()
        .partition(|file| file.starts_with("lib/") && file.contains(".so") && *file != loader[1..]);
    let mut expected = vec![
        "etc/group".to_string(),
        "etc/passwd".to_string(),
        loader.trim_start_matches('/').to_string(),
        "wasp".to_string(),
    ];
    if let Some(python) = shipped {
        expected.push(format!("code/{}.cwasm", python.hash().to_hex()));
        let environment = config["process"]["env"].to_string();
        assert!(
            environment.contains("WASP_SHIPPED_CODE_DIR=/code"),
            "{environment}"
        );
    }
    expected.sort();
    assert_eq!(
        others, expected,
        "one binary, its loader, its user, and the runner's code if it ships"
    );
    assert!(
        libraries.len() <= 8,
        "only the few libraries of glibc the binary loads: {libraries:?}"
    );
    let size = std::fs::metadata(&binary).expect("the binary").len();
    let image: u64 = files(&layout)
        .iter()
        .map(|file| std::fs::metadata(layout.join(file)).map_or(0, |meta| meta.len()))
        .sum();
    eprintln!(
        "{variable}: binary {:.1} MiB, image {:.1} MiB",
        size as f64 / 1048576.0,
        image as f64 / 1048576.0
    );
    let host = match TestHost::create(index) {
        Ok(host) => host,
        Err(why) => {
            wasp_fixtures::cannot_run_here(&format!("cannot make a test host here: {why}"));
            return;
        }
    };
    let node = start_node(&host, &root, &config, runner);
    let server = Server::builder()
        .workers(0)
        .no_disk_cache()
        .secret(node.secret.clone())
        .peers([Peer::Addr(node.address)])
        .build()
        .expect("the client builds");
    if let Err(error) = server.wait_for_nodes(1, Duration::from_secs(60)) {
        panic!("the image's node did not connect: {error}");
    }
    let sums = sums_of_primes_below(20_000);
    let inputs: Vec<u64> = (0..20).map(|i| 10_000 + 500 * i).collect();
    let batch = Batch::submit(&server, inputs);
    batch.check(&sums);
    let stats = settled_stats(&server);
    assert_eq!(total_node_jobs(&stats), 20, "{stats}");
    if let Some(python) = shipped {
        let no_modules: [&str; 0] = [];
        let call = ("def f(x):\n    return x + 1\n", "f", (6,), no_modules);
        let job = server.submit::<u32, _>(python, "python", call);
        let done = job.wait_timeout(Duration::from_secs(300));
        assert_eq!(
            done.expect("the Python job finished within 5 minutes"),
            Ok(7)
        );
        // The node keeps what it compiles there: sum_primes, and the runner only on a CPU
        // without the baseline's features.
        let cache = root.join("tmp/cache");
        assert!(
            compiled_into(&cache, &sum_primes()),
            "sum_primes compiled into {cache:?}"
        );
        let compiled = compiled_into(&cache, python);
        assert_eq!(compiled, !wasp_fixtures::runs_the_baseline());
    }
}

#[test]
fn the_x86_64_image_runs_as_a_node() {
    let Ok(shipped) = shipped_runner("x86_64") else {
        return;
    };
    the_image_serves_a_client("WASP_IMAGE_X86_64", 2, None, shipped.as_ref());
}

#[test]
fn the_aarch64_image_runs_as_a_node_under_qemu() {
    let Ok(shipped) = shipped_runner("aarch64") else {
        return;
    };
    the_image_serves_a_client(
        "WASP_IMAGE_AARCH64",
        3,
        Some(Path::new("/usr/bin/qemu-aarch64-static")),
        shipped.as_ref(),
    );
}
