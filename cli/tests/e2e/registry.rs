//! Job modules through a real OCI registry: Debian's docker-registry on 127.0.0.1, started
//! by `scripts/registry.sh` in a temp dir of each test.
//!
//! `wasp push`, `wasp pull`, `wasp run` and `wasp map` by tag and by digest; the artifact
//! checked against the wasm OCI layout with plain HTTP requests and `sha256sum`, as another
//! tool would read it; a node that pulls modules itself by digest (`--pull-from`), into its
//! disk cache; a tampered blob refused by the client and by the node; a missing tag, missing
//! credentials and wrong ones refused with clear errors that hold no secret.
//!
//! Without a registry that can start (no apt-get, no root), the tests say so and pass,
//! except under `CI=true`, where they fail. Self-contained: its helpers are its own.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `wasp` binary under test.
const WASP: &str = env!("CARGO_BIN_EXE_wasp");
/// How long one `wasp` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// pp's sum_primes(100).
const SUM_BELOW_100: &str = "1060";

/// A docker-registry started by `scripts/registry.sh` in a temp dir; stopped when dropped.
struct TestRegistry {
    dir: tempfile::TempDir,
    address: String,
}

impl TestRegistry {
    /// A registry, asking for a password if `auth`; `None` (and why) if none can start
    /// here outside CI.
    fn start(auth: bool) -> Option<TestRegistry> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/registry.sh");
        let mut command = Command::new(&script);
        command.arg("start").arg(dir.path());
        if auth {
            command.arg("--auth");
        }
        let output = command
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/registry.sh runs");
        if !output.status.success() {
            assert!(
                !wasp_fixtures::under_ci(),
                "the registry tests must run under CI=true, and scripts/registry.sh failed"
            );
            eprintln!("skipped: scripts/registry.sh could not start a registry here");
            return None;
        }
        let address = String::from_utf8(output.stdout).expect("UTF-8");
        let address = address
            .lines()
            .last()
            .expect("an address")
            .trim()
            .to_string();
        Some(TestRegistry { dir, address })
    }

    /// `oci://ADDRESS/path`.
    fn reference(&self, path: &str) -> String {
        format!("oci://{}/{path}", self.address)
    }

    /// The password of an `--auth` registry (user `wasp`).
    fn password(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("password")).expect("a password")
    }

    /// Where the registry keeps the blob of `digest` (`sha256:...`).
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/registry.sh");
        let _ = Command::new(script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Runs `wasp args…` with `env` to its end, within [`COMMAND_TIMEOUT`].
fn wasp_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(WASP);
    command
        .args(args)
        .env("RUST_LOG", "off")
        // The tests' credentials are their own: none of the user's.
        .env("DOCKER_CONFIG", "/nonexistent")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WASP_REGISTRY_TOKEN")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("wasp starts");
    let pid = child.id();
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(COMMAND_TIMEOUT) {
        Ok(output) => output.expect("wasp's output is read"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!(
                "`wasp {}` did not finish within {COMMAND_TIMEOUT:?}",
                args.join(" ")
            );
        }
    }
}

fn wasp(args: &[&str]) -> Output {
    wasp_with(args, &[])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// Runs `wasp args…`, which must succeed; returns its stdout.
fn ok(args: &[&str]) -> String {
    let output = wasp(args);
    assert!(
        output.status.success(),
        "`wasp {}` failed: {}",
        args.join(" "),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Runs `wasp args…`, which must fail with status 2 saying `needle`; returns its stderr.
fn refused(args: &[&str], env: &[(&str, &str)], needle: &str) -> String {
    let output = wasp_with(args, env);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "`wasp {}`: {stderr}",
        args.join(" ")
    );
    assert!(
        stderr.contains(needle),
        "`wasp {}`: {stderr}",
        args.join(" ")
    );
    stderr
}

/// `sha256:` and the digest of `path`, by coreutils' sha256sum: another implementation.
fn sha256sum(path: &Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    format!(
        "sha256:{}",
        text.split_whitespace().next().expect("a digest")
    )
}

/// The digest at the end of a pinned reference.
fn digest_of(pinned: &str) -> String {
    let (_, digest) = pinned.rsplit_once('@').expect("a pinned reference");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{pinned}"
    );
    digest.to_string()
}

/// One plain HTTP/1.1 GET to the registry: status, headers (lowercase names) and body.
fn http_get(address: &str, path: &str, accept: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(address).expect("the registry accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .expect("the request is sent");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("a status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .expect("a status")
        .parse()
        .expect("a code");
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a header");
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut body = Vec::new();
    reader.read_to_end(&mut body).expect("the body");
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[test]
fn push_pull_run_and_map_by_tag_and_by_digest() {
    let Some(registry) = TestRegistry::start(false) else {
        return;
    };
    let module = wasp_fixtures::SUM_PRIMES_GUEST;
    let tagged = registry.reference("jobs/sum-primes:1");
    let started = Instant::now();
    let pinned = ok(&["push", module, &tagged]);
    eprintln!("push: {:?}", started.elapsed());
    assert!(pinned.starts_with(&format!("{tagged}@sha256:")), "{pinned}");

    let dir = tempfile::tempdir().expect("a temp dir");
    let pulled = dir.path().join("pulled.wasm");
    let pulled = pulled.to_str().expect("UTF-8");
    let started = Instant::now();
    let pinned_again = ok(&["pull", &tagged, pulled]);
    eprintln!("pull: {:?}", started.elapsed());
    assert_eq!(digest_of(&pinned_again), digest_of(&pinned));
    assert_eq!(
        std::fs::read(pulled).expect("the pulled module"),
        std::fs::read(module).expect("the module"),
        "the same bytes"
    );

    // By tag, by digest (the tag names something else now), and without a tag (`latest`).
    assert_eq!(ok(&["run", &tagged, "sum_primes", "100"]), SUM_BELOW_100);
    let by_digest = format!(
        "{}@{}",
        registry.reference("jobs/sum-primes"),
        digest_of(&pinned)
    );
    ok(&["push", wasp_fixtures::WASP_TESTJOBS, &tagged]);
    assert_eq!(ok(&["run", &by_digest, "sum_primes", "100"]), SUM_BELOW_100);
    let output = wasp(&["run", &tagged, "sum_primes", "100"]);
    let error = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{error}");
    assert!(
        error.contains("has no job `sum_primes`"),
        "the tag names the test jobs now: {error}"
    );
    ok(&["push", module, &registry.reference("jobs/latest-one")]);
    assert_eq!(
        ok(&[
            "run",
            &registry.reference("jobs/latest-one:latest"),
            "sum_primes",
            "100"
        ]),
        SUM_BELOW_100
    );

    let inputs = dir.path().join("inputs.jsonl");
    std::fs::write(&inputs, "[10]\n[100]\n[1000]\n").expect("inputs written");
    let mapped = ok(&[
        "map",
        &by_digest,
        "sum_primes",
        "--input",
        inputs.to_str().unwrap(),
    ]);
    assert_eq!(mapped.lines().collect::<Vec<_>>(), ["17", "1060", "76127"]);
}

#[test]
fn the_artifact_follows_the_wasm_oci_layout_as_plain_http_reads_it() {
    let Some(registry) = TestRegistry::start(false) else {
        return;
    };
    let module = Path::new(wasp_fixtures::SUM_PRIMES_GUEST);
    let pinned = ok(&[
        "push",
        module.to_str().unwrap(),
        &registry.reference("layout/sum:1"),
    ]);
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let (status, headers, body) = http_get(&registry.address, "/v2/layout/sum/manifests/1", accept);
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(header(&headers, "content-type"), Some(accept));
    assert_eq!(
        header(&headers, "docker-content-digest"),
        Some(digest_of(&pinned).as_str())
    );
    let manifest_file = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(manifest_file.path(), &body).expect("written");
    assert_eq!(
        sha256sum(manifest_file.path()),
        digest_of(&pinned),
        "the manifest's digest"
    );

    let manifest: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], accept);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer");
    let layer = &layers[0];
    assert_eq!(layer["mediaType"], "application/wasm");
    assert_eq!(layer["digest"], sha256sum(module));
    assert_eq!(layer["size"], std::fs::metadata(module).unwrap().len());
    assert_eq!(
        layer["annotations"]["org.opencontainers.image.title"],
        "sum-primes-guest.wasm"
    );

    let config_path = format!(
        "/v2/layout/sum/blobs/{}",
        manifest["config"]["digest"].as_str().unwrap()
    );
    let (status, _, config) = http_get(&registry.address, &config_path, "*/*");
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_slice(&config).expect("JSON");
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip1");
    assert_eq!(
        config["layerDigests"],
        serde_json::json!([sha256sum(module)])
    );
    assert!(
        config["created"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{config}"
    );
    assert!(config.get("component").is_none(), "a core module: {config}");

    let layer_path = format!("/v2/layout/sum/blobs/{}", layer["digest"].as_str().unwrap());
    let (status, _, bytes) = http_get(&registry.address, &layer_path, "*/*");
    assert_eq!(status, 200);
    assert_eq!(
        bytes,
        std::fs::read(module).unwrap(),
        "the layer is the module as it is"
    );
}

#[test]
fn a_component_is_pushed_as_wasip2_with_its_imports_and_exports() {
    let runner = match std::env::var("WASP_PYTHON_RUNNER") {
        Ok(path) => path,
        Err(_) if wasp_fixtures::under_ci() => {
            panic!("WASP_PYTHON_RUNNER must name the Python runner under CI=true")
        }
        Err(_) => {
            return eprintln!("skipped: WASP_PYTHON_RUNNER is not set (scripts/test sets it)");
        }
    };
    let Some(registry) = TestRegistry::start(false) else {
        return;
    };
    let started = Instant::now();
    let pinned = ok(&["push", &runner, &registry.reference("runner/python:1")]);
    let size = std::fs::metadata(&runner).unwrap().len();
    eprintln!(
        "push of the Python runner ({size} bytes): {:?}",
        started.elapsed()
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let pulled = dir.path().join("runner.wasm");
    let started = Instant::now();
    ok(&["pull", &pinned, pulled.to_str().unwrap()]);
    eprintln!("pull of the Python runner: {:?}", started.elapsed());
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        std::fs::read(&runner).unwrap()
    );

    let accept = "application/vnd.oci.image.manifest.v1+json";
    let path = format!("/v2/runner/python/manifests/{}", digest_of(&pinned));
    let (_, _, body) = http_get(&registry.address, &path, accept);
    let manifest: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let config_path = format!(
        "/v2/runner/python/blobs/{}",
        manifest["config"]["digest"].as_str().unwrap()
    );
    let (_, _, config) = http_get(&registry.address, &config_path, "*/*");
    let config: serde_json::Value = serde_json::from_slice(&config).expect("JSON");
    assert_eq!(config["os"], "wasip2");
    let names = |key: &str| -> Vec<String> {
        config["component"][key]
            .as_array()
            .unwrap_or_else(|| panic!("component.{key}: {config}"))
            .iter()
            .map(|name| name.as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        names("imports")
            .iter()
            .any(|name| name.starts_with("wasi:cli/")),
        "{config}"
    );
    assert!(names("exports").contains(&"python".to_string()), "{config}");
}

/// A `wasp node` on 127.0.0.1 that pulls from `registry`, its log kept in a file.
struct PullingNode {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

impl PullingNode {
    fn start(registry: &str) -> PullingNode {
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = std::fs::File::create(dir.path().join("node.log")).expect("a log file");
        let mut child = Command::new(WASP)
            .args([
                "node",
                "--listen",
                "127.0.0.1:0",
                "--insecure",
                "--workers",
                "1",
            ])
            .args(["--pull-from", registry, "--cache-dir"])
            .arg(dir.path().join("cache"))
            .env("RUST_LOG", "info")
            .env("DOCKER_CONFIG", "/nonexistent")
            .env("HOME", "/nonexistent")
            .env_remove("WASP_REGISTRY_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the node starts");
        let stdout = child.stdout.take().expect("piped");
        let (line, read) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut text = String::new();
            let _ = line.send(reader.read_line(&mut text).map(|_| text));
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let first = read
            .recv_timeout(Duration::from_secs(30))
            .expect("the node printed its address")
            .expect("its stdout reads");
        let address = first
            .trim()
            .rsplit_once("listening on ")
            .expect("wasp node ... listening on ADDR")
            .1
            .to_string();
        PullingNode {
            child,
            address,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// The compiled modules in the node's disk cache.
    fn cached(&self) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(self.dir.path().join("cache"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for file in std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                found.push(file.file_name().to_string_lossy().to_string());
            }
        }
        found
    }
}

impl Drop for PullingNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- the node's log:\n{}", self.log());
        }
    }
}

/// The `N module transfers` of the statistics' node line.
fn module_transfers(stats: &str) -> u64 {
    let (_, after) = stats
        .split_once("retries, ")
        .expect("a node line in the statistics");
    after
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .expect("a count")
}

#[test]
fn a_node_pulls_a_module_by_digest_instead_of_receiving_it() {
    let Some(registry) = TestRegistry::start(false) else {
        return;
    };
    let node = PullingNode::start(&registry.address);
    let pinned = ok(&[
        "push",
        wasp_fixtures::SUM_PRIMES_GUEST,
        &registry.reference("jobs/sum:1"),
    ]);
    let remote = [
        "--workers",
        "0",
        "--peer",
        &node.address,
        "--insecure",
        "--stats",
    ];

    let output = wasp(
        &[
            &[
                "run",
                &registry.reference("jobs/sum:1"),
                "sum_primes",
                "100",
            ][..],
            &remote,
        ]
        .concat(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), SUM_BELOW_100);
    assert_eq!(
        module_transfers(&text(&output.stderr)),
        0,
        "the client sent no module"
    );
    let log = node.log();
    assert!(log.contains("module pulled"), "{log}");
    assert!(log.contains(&digest_of(&pinned)), "pulled by digest: {log}");
    let hash = blake3::hash(&std::fs::read(wasp_fixtures::SUM_PRIMES_GUEST).unwrap()).to_hex();
    assert!(
        node.cached().contains(&format!("{hash}.cwasm")),
        "compiled into the node's disk cache: {:?}",
        node.cached()
    );

    // A module from a file still travels from the client.
    let output = wasp(
        &[
            &["run", wasp_fixtures::WASP_TESTJOBS, "add_one", "2"][..],
            &remote,
        ]
        .concat(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        module_transfers(&text(&output.stderr)),
        1,
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_tampered_blob_is_refused_by_the_client_and_by_the_node() {
    let Some(registry) = TestRegistry::start(false) else {
        return;
    };
    let tagged = registry.reference("jobs/tampered:1");
    ok(&["push", wasp_fixtures::SUM_PRIMES_GUEST, &tagged]);
    // The client pulls the genuine module first (a caller that got it before the attack).
    let reference: wasp_registry::Reference = tagged.parse().unwrap();
    let client = wasp_registry::Registry::new([reference.registry()]);
    let anonymous = wasp_registry::Credentials::anonymous();
    let genuine = wasp_registry::block_on(client.pull(&reference, &anonymous, 64 << 20)).unwrap();

    // The registry's copy of the layer changes under it: same size, one byte flipped.
    let layer = registry.blob_file(&sha256sum(Path::new(wasp_fixtures::SUM_PRIMES_GUEST)));
    let mut bytes = std::fs::read(&layer).expect("the layer's blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&layer, &bytes).expect("the blob tampered with");

    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("tampered.wasm");
    refused(
        &["pull", &tagged, out.to_str().unwrap()],
        &[],
        "do not match their digest",
    );
    assert!(!out.exists(), "nothing written");
    refused(
        &["run", &tagged, "sum_primes", "100"],
        &[],
        "do not match their digest",
    );

    // The node pulls the tampered blob by digest and refuses it: the job fails saying so.
    let node = PullingNode::start(&registry.address);
    let server = wasp::Server::builder()
        .workers(0)
        .no_disk_cache()
        .insecure()
        .peers([wasp::Peer::Addr(node.address.parse().unwrap())])
        .build()
        .expect("the client starts");
    server
        .wait_for_nodes(1, Duration::from_secs(30))
        .expect("the node connects");
    let job = server.submit::<u64, _>(&genuine.module, "sum_primes", (100u64,));
    let error = job
        .wait()
        .expect_err("the node refuses the module")
        .to_string();
    assert!(error.contains("do not match their digest"), "{error}");
    assert!(error.contains(&genuine.source.to_string()), "{error}");
    assert!(
        node.cached().is_empty(),
        "nothing compiled: {:?}",
        node.cached()
    );
}

#[test]
fn missing_modules_and_refused_credentials_are_clear_errors() {
    let Some(open) = TestRegistry::start(false) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out.wasm");
    let out = out.to_str().unwrap();
    refused(
        &["pull", &open.reference("jobs/none:1"), out],
        &[],
        "was not found in the registry",
    );
    ok(&[
        "push",
        wasp_fixtures::SUM_PRIMES_GUEST,
        &open.reference("jobs/sum:1"),
    ]);
    refused(
        &["pull", &open.reference("jobs/sum:2"), out],
        &[],
        "was not found in the registry",
    );
    refused(
        &["push", "Cargo.toml", &open.reference("jobs/x:1")],
        &[],
        "not a module to push",
    );
    refused(
        &["pull", "oci://127.0.0.1/Jobs:1", out],
        &[],
        "not a module reference",
    );

    let Some(locked) = TestRegistry::start(true) else {
        return;
    };
    let target = locked.reference("jobs/sum:1");
    let push = ["push", wasp_fixtures::SUM_PRIMES_GUEST, &target];
    refused(&push, &[], "refused access with no credentials");

    // Docker's config, with a wrong password, then the right one.
    let docker = dir.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    let config = |password: &str| {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("wasp:{password}"));
        let json = serde_json::json!({"auths": {(locked.address.as_str()): {"auth": auth}}});
        std::fs::write(docker.join("config.json"), json.to_string()).unwrap();
    };
    let env = [("DOCKER_CONFIG", docker.to_str().unwrap())];
    config("not-the-password");
    let error = refused(&push, &env, "refused access with");
    assert!(
        error.contains("config.json"),
        "names where the credentials came from: {error}"
    );
    assert!(!error.contains("not-the-password"), "{error}");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let with_token = [
        &push[..],
        &["--registry-token-file", token_file.to_str().unwrap()],
    ]
    .concat();
    let error = refused(&with_token, &[], "refused access with");
    assert!(!error.contains("s3cret-token"), "{error}");

    config(locked.password().trim());
    let output = wasp_with(&push, &env);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = wasp_with(&["run", &target, "sum_primes", "100"], &env);
    assert_eq!(
        text(&output.stdout),
        SUM_BELOW_100,
        "{}",
        text(&output.stderr)
    );
}
