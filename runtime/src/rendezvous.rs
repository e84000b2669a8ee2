//! A rendezvous directory: where nodes started by a batch system (Slurm) write their
//! address, on storage the client also sees, so that the client finds them with no address
//! typed ([`Peer::Dir`](crate::Peer::Dir); `wasp node --rendezvous DIR`).
//!
//! Each node writes one file, `<node id>.node`, holding its address, atomically (a
//! temporary file renamed), and removes it when it starts draining or exits: a client
//! reading the directory again stops connecting to it. The client reads the directory at
//! start and every resolve interval, as it resolves a name; an address that leaves the
//! directory keeps its connection while the node serves. A node killed outright (SIGKILL)
//! leaves its file: the client tries it with backoff, harmlessly, until the file goes.
//!
//! The files hold addresses only: the cluster secret authenticates the nodes, so a file
//! written by someone else leads at worst to a connection that fails its handshake. Only
//! regular files are read, and only their first 256 bytes.

use std::fs;
use std::io::{self, Read as _};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use tracing::{debug, warn};

/// The extension of a node's file in a rendezvous directory.
pub const EXTENSION: &str = "node";

/// The addresses written in `dir`, one per node file, in file-name order.
///
/// # Errors
/// If the directory cannot be read. Files that cannot be read or hold no address are
/// skipped, with a warning.
pub fn addresses(dir: &Path) -> io::Result<Vec<SocketAddr>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == EXTENSION))
        .collect();
    files.sort();
    let mut found = Vec::with_capacity(files.len());
    for file in files {
        let text = match read_small(&file) {
            Ok(text) => text,
            // Removed between the listing and the read: that node left.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => {
                warn!(file = %file.display(), %error, "cannot read a rendezvous file");
                continue;
            }
        };
        match text.trim().parse() {
            Ok(address) => found.push(address),
            Err(_) => warn!(file = %file.display(), "a rendezvous file holds no address"),
        }
    }
    Ok(found)
}

/// The most a node's file is read of: an address is far shorter.
const MAX_FILE: u64 = 256;

/// The start of a regular file (not a FIFO, which would block the read, nor a device).
fn read_small(file: &Path) -> io::Result<String> {
    if !fs::metadata(file)?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    fs::File::open(file)?
        .take(MAX_FILE)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// A node's address published in a rendezvous directory; dropping it removes the file.
#[derive(Debug)]
pub struct Published {
    file: Option<PathBuf>,
}

impl Published {
    /// Writes `address` as node `id`'s file in `dir` (created if missing).
    ///
    /// # Errors
    /// If the directory or the file cannot be written.
    pub fn new(dir: &Path, id: &str, address: SocketAddr) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let file = dir.join(format!("{id}.{EXTENSION}"));
        let temporary = dir.join(format!(".{id}.{EXTENSION}.{}", std::process::id()));
        fs::write(&temporary, format!("{address}\n"))?;
        fs::rename(&temporary, &file)?;
        debug!(file = %file.display(), %address, "address published");
        Ok(Published { file: Some(file) })
    }

    /// Removes the file now (the node drains: no new client should come).
    pub fn withdraw(&mut self) {
        if let Some(file) = self.file.take()
            && let Err(error) = fs::remove_file(&file)
            && error.kind() != io::ErrorKind::NotFound
        {
            warn!(file = %file.display(), %error, "cannot remove the rendezvous file");
        }
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        self.withdraw();
    }
}

/// The address to publish for a node listening on `listen`: as is, unless its IP is
/// unspecified (`0.0.0.0`), then the address of the interface this machine reaches other
/// machines by (the one a route to a public address leaves from; no packet is sent), else
/// loopback.
pub fn reachable(listen: SocketAddr) -> SocketAddr {
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let ip = outbound_ip(listen.is_ipv4()).unwrap_or(match listen {
        SocketAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
        SocketAddr::V6(_) => IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
    });
    SocketAddr::new(ip, listen.port())
}

fn outbound_ip(v4: bool) -> Option<IpAddr> {
    // Documentation addresses (RFC 5737, RFC 3849): connect() only picks a route.
    let (bind, probe) = if v4 {
        ("0.0.0.0:0", "192.0.2.1:9")
    } else {
        ("[::]:0", "[2001:db8::1]:9")
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(probe).ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_come_and_go_with_their_files() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let a: SocketAddr = "10.0.0.1:7878".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:7878".parse().unwrap();
        let first = Published::new(dir.path(), "aaaa", a).expect("published");
        let mut second = Published::new(dir.path(), "bbbb", b).expect("published");
        fs::write(dir.path().join("junk.node"), "not an address").unwrap();
        fs::write(dir.path().join("notes.txt"), "10.0.0.3:7878").unwrap();
        fs::write(dir.path().join("huge.node"), vec![b'1'; 1 << 20]).unwrap();
        fs::create_dir(dir.path().join("dir.node")).unwrap();
        assert_eq!(addresses(dir.path()).unwrap(), [a, b]);
        second.withdraw();
        assert_eq!(addresses(dir.path()).unwrap(), [a]);
        drop(first);
        assert!(addresses(dir.path()).unwrap().is_empty());
        assert!(addresses(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn an_unspecified_listen_address_publishes_a_reachable_one() {
        let listen: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        assert_eq!(reachable(listen), listen);
        let any = reachable("0.0.0.0:7878".parse().unwrap());
        assert!(!any.ip().is_unspecified());
        assert_eq!(any.port(), 7878);
    }
}
