//! The monitor's listener under peers that hold connections open and send nothing: the
//! probes still answer, a peer cannot hold more than its share, and silence is cut off.

use super::MonitorConfig;
use super::connections::{IO_TIMEOUT, MAX_CONNECTIONS, MAX_PER_PEER};
use crate::Server;
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long a request here may take: far longer than an answer needs, far shorter than a
/// test runner's patience.
const ANSWER: Duration = Duration::from_secs(5);

fn monitored() -> (Server, SocketAddr) {
    let server = Server::builder()
        .workers(1)
        .no_disk_cache()
        .monitor(MonitorConfig::new(
            "127.0.0.1:0".parse().expect("an address"),
        ))
        .build()
        .expect("a server with a monitor");
    let address = server.monitor_address().expect("its monitor");
    (server, address)
}

/// A connection to `to` from `from` (any address of the loopback network), that sends
/// nothing.
fn silent(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("a loopback source address");
    socket.connect(&to.into()).expect("the monitor accepts");
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(ANSWER)).expect("a timeout");
    stream
}

/// GET `path` from `from`: the status code, or why there was none in time.
fn get(from: Ipv4Addr, to: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = silent(from, to);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {response:?}"))
}

/// Whether the monitor closed `stream` (end of stream or a reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("a timeout");
    let mut byte = [0];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn silent_peers_cannot_take_the_probes_slots() {
    let (_server, monitor) = monitored();
    // Peers on 127.0.0.2, .3, ... each hold as many silent connections as they may,
    // together every ordinary slot.
    let peers = MAX_CONNECTIONS.div_ceil(MAX_PER_PEER);
    let mut held = Vec::new();
    for peer in 0..peers {
        let from = Ipv4Addr::new(127, 0, 0, 2 + peer as u8);
        for _ in 0..MAX_PER_PEER {
            held.push(silent(from, monitor));
        }
    }
    assert_eq!(held.len(), MAX_CONNECTIONS);
    // Let the monitor take them all before probing.
    std::thread::sleep(Duration::from_millis(200));
    let prober = Ipv4Addr::new(127, 0, 0, 1);
    assert_eq!(
        get(prober, monitor, "/livez"),
        Ok(200),
        "the probe is answered"
    );
    assert_eq!(get(prober, monitor, "/readyz"), Ok(200));
    assert_eq!(
        get(prober, monitor, "/metrics"),
        Ok(503),
        "the rest waits for a slot"
    );
}

#[test]
fn a_peer_over_its_bound_is_closed_at_once_and_silence_is_cut_off() {
    let (_server, monitor) = monitored();
    let from = Ipv4Addr::new(127, 0, 0, 1);
    let started = Instant::now();
    let mut held: Vec<TcpStream> = (0..MAX_PER_PEER).map(|_| silent(from, monitor)).collect();
    let mut over = silent(from, monitor);
    assert!(
        closed_within(&mut over, ANSWER),
        "over the peer's bound: closed"
    );
    assert_eq!(
        get(Ipv4Addr::new(127, 0, 0, 9), monitor, "/livez"),
        Ok(200),
        "others are served"
    );
    // The silent ones are cut off after the monitor's I/O timeout, not kept for ever.
    let patience = IO_TIMEOUT + ANSWER;
    for stream in &mut held {
        let left = patience.saturating_sub(started.elapsed());
        assert!(
            closed_within(stream, left.max(Duration::from_millis(1))),
            "a silent connection is closed"
        );
    }
    assert_eq!(
        get(from, monitor, "/livez"),
        Ok(200),
        "the peer's slots came back"
    );
}
