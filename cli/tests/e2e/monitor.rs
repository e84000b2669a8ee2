//! The monitor end to end: real `wasp node` processes with `--metrics`, and a client with a
//! monitor of its own, scraped over HTTP while a batch runs. The expositions are checked
//! with `promtool check metrics` (Debian's `prometheus`; required under `CI=true`).
//!
//! Every wait is bounded: a hung test is a failed test.

use crate::harness::node::{Auth, NodeProcess, run_wasp, write_secret};
use crate::harness::support::*;
use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wasp::{Job, MonitorConfig, Server};

/// A free port on 127.0.0.1 for a node's monitor (the node binds it a moment later).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

/// A GET with optional extra headers: the status code, the headers and the body.
fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT).expect("the monitor accepts");
    stream.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{extra}\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("the request goes");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    (status, head.to_string(), body.to_string())
}

/// The samples of a classic text exposition: `name{labels}` to value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn scrape(address: SocketAddr) -> (String, HashMap<String, f64>) {
    let (status, _, body) = get(address, "/metrics", &[]);
    assert_eq!(status, 200, "{body}");
    let parsed = samples(&body);
    (body, parsed)
}

/// The sum of the samples of `family` (over its labels).
fn total(samples: &HashMap<String, f64>, family: &str) -> f64 {
    samples
        .iter()
        .filter(|(name, _)| *name == family || name.starts_with(&format!("{family}{{")))
        .map(|(_, value)| value)
        .sum()
}

fn value(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {samples:?}"))
}

/// `promtool check metrics` on `text`: it must pass. Without promtool the test fails under
/// `CI=true` (CI installs it), and says so elsewhere.
fn promtool_check(text: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            wasp_fixtures::cannot_run_here(&format!(
                "promtool not run ({error}): install Debian's `prometheus` package \
                 (scripts/monitor-tools.sh)"
            ));
            return;
        }
    };
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(text.as_bytes()).expect("promtool reads");
    drop(stdin);
    let output = child.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- the exposition:\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A client with one local worker and a monitor on loopback, using `nodes`.
fn monitored_client(secret: &wasp::ClusterSecret, nodes: &[&NodeProcess]) -> Server {
    let server = Server::builder()
        .workers(1)
        .no_disk_cache()
        .node_timeout(NODE_TIMEOUT)
        .secret(secret.clone())
        .peers(nodes.iter().map(|node| wasp::Peer::Addr(node.address())))
        .monitor(MonitorConfig::new(
            "127.0.0.1:0".parse().expect("an address"),
        ))
        .build()
        .expect("the client builds");
    connect(&server, nodes.len());
    server
}

#[test]
fn scrapes_of_nodes_and_a_client_add_up_while_a_batch_runs() {
    let secret = new_secret();
    let monitors = [free_port(), free_port()];
    let nodes: Vec<NodeProcess> = monitors
        .iter()
        .map(|monitor| {
            let monitor = monitor.to_string();
            NodeProcess::start_with(Auth::Secret(&secret), 1, &["--metrics", &monitor])
        })
        .collect();
    let server = monitored_client(&secret, &[&nodes[0], &nodes[1]]);
    let client = server.monitor_address().expect("the client has a monitor");
    let module = testjobs();
    // 150 jobs of 10 ms on 3 workers, 12 of which fail: long enough to be seen moving.
    let jobs: Vec<Job<i64>> = (0..150)
        .map(|i| {
            let ms: i64 = if i % 13 == 0 { -1 } else { 10 };
            server.submit(&module, "busy_or_fail", (ms,))
        })
        .collect();
    let failing = (0..150).filter(|i| i % 13 == 0).count() as f64;
    let mut seen = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while server.group_summary(wasp::DEFAULT_GROUP).pending() > 0 {
        assert!(Instant::now() < deadline, "the batch did not finish");
        let (_, samples) = scrape(client);
        seen.push(total(&samples, "wasp_jobs_finished_total"));
        std::thread::sleep(Duration::from_millis(50));
    }
    for job in &jobs {
        let _ = result(job);
    }
    assert!(
        seen.windows(2).all(|pair| pair[0] <= pair[1]),
        "counters never go down: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|&finished| finished > 0.0 && finished < 150.0),
        "a scrape saw the batch half done: {seen:?}"
    );

    // The client: outcomes add up to the jobs run, histograms count them.
    let (text, client_samples) = scrape(client);
    promtool_check(&text);
    assert_eq!(value(&client_samples, "wasp_jobs_submitted_total"), 150.0);
    assert_eq!(total(&client_samples, "wasp_jobs_finished_total"), 150.0);
    let failed = value(
        &client_samples,
        r#"wasp_jobs_finished_total{outcome="failed"}"#,
    );
    assert_eq!(failed, failing);
    let ok = value(&client_samples, r#"wasp_jobs_finished_total{outcome="ok"}"#);
    assert_eq!(ok, 150.0 - failing);
    assert_eq!(
        value(&client_samples, "wasp_job_duration_seconds_count"),
        150.0
    );
    let started = total(&client_samples, "wasp_jobs_started_total");
    assert_eq!(
        value(&client_samples, "wasp_job_queue_wait_seconds_count"),
        started
    );
    assert_eq!(
        value(
            &client_samples,
            r#"wasp_job_duration_seconds_bucket{le="+Inf"}"#
        ),
        150.0
    );
    let remote = value(
        &client_samples,
        r#"wasp_jobs_started_total{where="remote"}"#,
    );
    assert!(remote > 0.0, "the nodes ran jobs");
    for node in &nodes {
        let label = format!(r#"{{node="{}"}}"#, node.address());
        assert_eq!(
            value(&client_samples, &format!("wasp_node_connected{label}")),
            1.0
        );
        assert!(client_samples.contains_key(&format!("wasp_node_round_trip_seconds{label}")));
    }

    // The nodes: what they finished is what the client sent them.
    let mut node_finished = 0.0;
    for monitor in monitors {
        let (text, samples) = scrape(monitor);
        promtool_check(&text);
        let finished = total(&samples, "wasp_jobs_finished_total");
        assert_eq!(value(&samples, "wasp_job_duration_seconds_count"), finished);
        assert_eq!(value(&samples, "wasp_clients_connected"), 1.0);
        assert_eq!(value(&samples, "wasp_modules_received_total"), 1.0);
        assert_eq!(
            value(
                &samples,
                r#"wasp_build_info{version="0.1.0",arch="x86_64",role="node"}"#
            ),
            1.0
        );
        node_finished += finished;
    }
    assert_eq!(
        node_finished, remote,
        "every job sent to a node was finished there once"
    );

    // The status the dashboard reads: both nodes, the group done, a failure with its error.
    let (status, _, json) = get(client, "/api/v1/status", &[]);
    assert_eq!(status, 200);
    for node in &nodes {
        assert!(
            json.contains(&format!(r#""address":"{}""#, node.address())),
            "{json}"
        );
    }
    assert!(json.contains(r#""arch":"x86_64""#), "{json}");
    assert!(
        json.contains(r#""name":"default","submitted":150,"total":150,"finished":150"#),
        "{json}"
    );
    assert!(
        json.contains(r#""error":"job failed: asked to fail (-1)""#),
        "{json}"
    );
}

#[test]
fn readiness_flips_while_a_node_drains_and_liveness_stays_up() {
    let secret = new_secret();
    let monitor = free_port();
    let mut node = NodeProcess::start_with(
        Auth::Secret(&secret),
        1,
        &["--metrics", &monitor.to_string(), "--drain-timeout", "20s"],
    );
    assert_eq!(get(monitor, "/readyz", &[]).0, 200);
    let server = client(Auth::Secret(&secret), &[&node]);
    connect(&server, 1);
    let job: Job<u64> = server.submit(&testjobs(), "busy_ms", (3000u64,));
    wait_until("the node runs the job", TIMEOUT, || {
        value(&scrape(monitor).1, "wasp_workers_busy") == 1.0
    });
    node.terminate();
    wait_until("the node is not ready", TIMEOUT, || {
        get(monitor, "/readyz", &[]).0 == 503
    });
    let (live, _, _) = get(monitor, "/livez", &[]);
    assert_eq!(live, 200, "a draining node is alive");
    assert_eq!(value(&scrape(monitor).1, "wasp_draining"), 1.0);
    assert_eq!(
        result(&job),
        Ok(3000),
        "the running job finished in the drain"
    );
    assert!(
        node.wait_exit(TIMEOUT).is_some(),
        "the node exits after draining"
    );
}

#[test]
fn a_public_monitor_needs_its_token() {
    let secret = new_secret();
    let dir = tempfile::tempdir().expect("a temp dir");
    let key = dir.path().join("cluster.key");
    write_secret(&key, &secret);
    let key = key.to_str().expect("a UTF-8 path");

    // Off loopback without --metrics-public: refused at start, with a reason.
    let output = run_wasp(
        &[
            "node",
            "--listen",
            "127.0.0.1:0",
            "--secret-file",
            key,
            "--metrics",
            "0.0.0.0:0",
        ],
        TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("needs a bearer token"), "{stderr}");

    // With it: the token derived from the secret, as `wasp secret token` prints it.
    let port = free_port().port();
    let listen = format!("0.0.0.0:{port}");
    let _node = NodeProcess::start_with(
        Auth::Secret(&secret),
        1,
        &["--metrics", &listen, "--metrics-public"],
    );
    let printed = run_wasp(&["secret", "token", "--secret-file", key], TIMEOUT);
    let token = String::from_utf8_lossy(&printed.stdout).trim().to_string();
    assert_eq!(token, MonitorConfig::token_from_secret(&secret));
    let monitor = SocketAddr::from(([127, 0, 0, 1], port));
    for path in ["/metrics", "/api/v1/status", "/"] {
        let (status, head, _) = get(monitor, path, &[]);
        assert_eq!(status, 401, "{path} without the token");
        assert!(head.contains("www-authenticate: Bearer"), "{head}");
        let wrong = get(
            monitor,
            path,
            &[("Authorization", "Bearer 0123456789abcdef0123")],
        );
        assert_eq!(wrong.0, 401, "{path} with a wrong token");
        let bearer = format!("Bearer {token}");
        let right = get(monitor, path, &[("Authorization", &bearer)]);
        assert_eq!(right.0, 200, "{path} with the token");
    }
    for probe in ["/livez", "/healthz", "/readyz"] {
        assert_eq!(get(monitor, probe, &[]).0, 200, "{probe} needs no token");
    }
    // A browser: ?token= once, then a cookie.
    let (status, head, _) = get(monitor, &format!("/?token={token}"), &[]);
    assert_eq!(status, 303);
    assert!(
        head.contains(&format!("set-cookie: wasp_token={token}")),
        "{head}"
    );
    let cookie = format!("wasp_token={token}");
    assert_eq!(get(monitor, "/", &[("Cookie", &cookie)]).0, 200);

    // The library refuses the same mistake.
    let unprotected = Server::builder()
        .workers(1)
        .monitor(MonitorConfig::new("0.0.0.0:0".parse().expect("an address")))
        .build();
    let error = unprotected.expect_err("no token, off loopback");
    assert!(error.to_string().contains("bearer token"), "{error}");
}

/// `wasp map` reads its whole input before it runs anything, so its group's total is
/// known from the start: the dashboard's progress and ETA count towards every line, not
/// towards the lines submitted so far through its window.
#[test]
fn a_maps_progress_counts_every_line_from_the_start() {
    const LINES: u64 = 120;
    let dir = tempfile::tempdir().expect("a temp dir");
    let input = dir.path().join("in.jsonl");
    let lines: String = (0..LINES).map(|_| "[40]\n").collect();
    std::fs::write(&input, lines).expect("the input is written");
    let monitor = free_port();
    let mut map = Command::new(crate::harness::node::WASP)
        .args(["map", wasp_fixtures::WASP_TESTJOBS, "busy_ms", "--input"])
        .arg(&input)
        .args([
            "--workers",
            "1",
            "--no-cache",
            "--metrics",
            &monitor.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wasp map starts");
    let mut group = None;
    wait_until("the map's group shows", TIMEOUT, || {
        let Ok(stream) = TcpStream::connect(monitor) else {
            return false;
        };
        drop(stream);
        let (_, _, body) = get(monitor, "/api/v1/status", &[]);
        let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        group = status["groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["name"] == "wasp map"))
            .filter(|g| g["finished"].as_u64() > Some(0))
            .cloned();
        group.is_some()
    });
    let _ = map.kill();
    let _ = map.wait();
    let group = group.expect("the group");
    let (submitted, total, finished) = (
        group["submitted"].as_u64().expect("submitted"),
        group["total"].as_u64().expect("total"),
        group["finished"].as_u64().expect("finished"),
    );
    assert!(submitted < LINES, "the window holds back the rest: {group}");
    assert_eq!(total, LINES, "{group}");
    assert!(finished < LINES, "{group}");
    let eta = group["eta_seconds"]
        .as_f64()
        .expect("an ETA once a job finished");
    let rate = group["rate_per_second"].as_f64().expect("a rate");
    let expected = (LINES - finished) as f64 / rate;
    assert!((eta - expected).abs() < 1e-6 * expected.max(1.0), "{group}");
}

/// The status as JSON.
fn status(address: SocketAddr) -> serde_json::Value {
    let (code, _, body) = get(address, "/api/v1/status", &[]);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("the status is JSON")
}

/// A node's own view: it lists its clients (address, jobs done, failures), puts each
/// client's jobs in a group of its own, attributes each failure to its client, and its
/// `job failed` log line names the client. The client's view shows that node as draining
/// once it drains, not as merely connected.
#[test]
fn a_nodes_page_lists_its_clients_and_a_clients_page_shows_a_draining_node() {
    let secret = new_secret();
    let monitor = free_port();
    let mut node = NodeProcess::start_with(
        Auth::Secret(&secret),
        2,
        &["--metrics", &monitor.to_string(), "--drain-timeout", "20s"],
    );
    let module = testjobs();
    let quiet = client(Auth::Secret(&secret), &[&node]);
    connect(&quiet, 1); // first: the clients are listed in order of connection
    let failing = Server::builder()
        .workers(0)
        .no_disk_cache()
        .node_timeout(NODE_TIMEOUT)
        .secret(secret.clone())
        .peers([wasp::Peer::Addr(node.address())])
        .monitor(MonitorConfig::new(
            "127.0.0.1:0".parse().expect("an address"),
        ))
        .build()
        .expect("the client builds");
    connect(&failing, 1);
    for x in 0..3i64 {
        assert_eq!(
            result(&quiet.submit::<i64, _>(&module, "add_one", (x,))),
            Ok(x + 1)
        );
    }
    for x in [4.0, -1.0, 9.0] {
        let job = failing.submit::<f64, _>(&module, "checked_sqrt", (x,));
        assert_eq!(result(&job).is_err(), x < 0.0, "checked_sqrt({x})");
    }

    let view = status(monitor);
    assert_eq!(view["role"], "node");
    let clients = view["node"]["client_list"]
        .as_array()
        .expect("a client list");
    assert_eq!(clients.len(), 2, "{view}");
    assert_eq!(view["node"]["clients"], 2);
    let counts: Vec<(u64, u64)> = clients
        .iter()
        .map(|c| {
            (
                c["finished"].as_u64().unwrap(),
                c["failed"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [(3, 0), (3, 1)], "in order of connection: {view}");
    for client in clients {
        let address: SocketAddr = client["address"]
            .as_str()
            .unwrap()
            .parse()
            .expect("an address");
        assert!(address.ip().is_loopback(), "{client}");
        let group = client["group"].as_str().unwrap();
        let listed = view["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == group);
        assert!(
            listed,
            "each client's jobs are a group of their own: {view}"
        );
    }
    let failure = &view["failures"][0];
    assert_eq!(failure["client"], clients[1]["address"], "{view}");
    assert_eq!(failure["group"], clients[1]["group"], "{view}");
    let client_address = clients[1]["address"].as_str().unwrap();
    let logged = format!("client={client_address}");
    wait_until("the node logs the failure with its client", TIMEOUT, || {
        node.log()
            .lines()
            .any(|line| line.contains("job failed") && line.contains(&logged))
    });

    // The node drains while a job of this client runs: the client's page says so.
    let client_monitor = failing.monitor_address().expect("the client's monitor");
    let long: Job<u64> = failing.submit(&module, "busy_ms", (3000u64,));
    wait_until("the node runs the job", TIMEOUT, || {
        status(monitor)["queue"]["running"] == 1
    });
    assert_eq!(status(client_monitor)["nodes"][0]["draining"], false);
    node.terminate();
    wait_until("the client shows the node draining", TIMEOUT, || {
        status(client_monitor)["nodes"][0]["draining"] == true
    });
    let row = &status(client_monitor)["nodes"][0];
    assert_eq!(row["connected"], true, "draining, still connected: {row}");
    assert!(
        failing.stats().to_string().contains(", draining)"),
        "{}",
        failing.stats()
    );
    assert_eq!(
        result(&long),
        Ok(3000),
        "the running job finished in the drain"
    );
}
