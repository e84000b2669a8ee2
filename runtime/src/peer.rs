//! [`Peer`]: where a client finds its nodes.

use crate::error::ConfigError;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// A source of nodes for a client ([`ServerBuilder::peers`](crate::ServerBuilder::peers)).
///
/// Parsed from the forms pp's `ppservers` uses: `"10.0.0.5:7878"` (an address), `"node1:7878"`
/// (a name), `"*"` (discovery).
///
/// ```
/// use wasp::Peer;
/// assert_eq!("10.0.0.5:7878".parse::<Peer>()?, Peer::Addr("10.0.0.5:7878".parse()?));
/// assert_eq!("workers:7878".parse::<Peer>()?, Peer::Name { host: "workers".into(), port: 7878 });
/// assert_eq!("*".parse::<Peer>()?, Peer::Discover);
/// assert!("workers".parse::<Peer>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Peer {
    /// The node at this address; reconnected with backoff for as long as the client runs.
    Addr(SocketAddr),
    /// Every node the name resolves to, each address a node, resolved again every
    /// [`resolve_interval`](crate::ServerBuilder::resolve_interval) (as a Kubernetes
    /// headless Service's name stands for its pods).
    Name {
        /// The host name.
        host: String,
        /// The nodes' port.
        port: u16,
    },
    /// Every node heard announcing itself on the LAN with this cluster's secret (pp's
    /// `ppservers=("*",)`), on [`ServerBuilder::discovery`](crate::ServerBuilder::discovery)'s
    /// address, by default
    /// [`DEFAULT_DISCOVERY_ADDRESS`](crate::discovery::DEFAULT_DISCOVERY_ADDRESS).
    Discover,
    /// Every node whose address is written in this rendezvous directory (on storage the
    /// nodes share with the client: `wasp node --rendezvous DIR`, as a Slurm launcher
    /// starts them), read again every
    /// [`resolve_interval`](crate::ServerBuilder::resolve_interval). Parsed from
    /// `dir:/path/to/dir`. See [`rendezvous`](crate::rendezvous).
    Dir(PathBuf),
}

/// How a rendezvous directory is written as a peer: `dir:/shared/wasp/nodes`.
pub(crate) const DIR_PREFIX: &str = "dir:";

impl Peer {
    /// What to resolve again and again: `host:port` for a name, `dir:PATH` for a
    /// rendezvous directory.
    pub(crate) fn name(&self) -> Option<String> {
        match self {
            Peer::Name { host, port } => Some(format!("{host}:{port}")),
            Peer::Dir(dir) => Some(format!("{DIR_PREFIX}{}", dir.display())),
            _ => None,
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(address: SocketAddr) -> Self {
        Peer::Addr(address)
    }
}

impl FromStr for Peer {
    type Err = ConfigError;

    fn from_str(peer: &str) -> Result<Self, ConfigError> {
        if peer == "*" {
            return Ok(Peer::Discover);
        }
        if let Some(dir) = peer.strip_prefix(DIR_PREFIX) {
            if dir.is_empty() {
                return Err(not_a_peer(peer));
            }
            return Ok(Peer::Dir(PathBuf::from(dir)));
        }
        if let Ok(address) = peer.parse::<SocketAddr>() {
            return Ok(Peer::Addr(address));
        }
        match peer.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.contains(['[', ']', ' ']) => {
                match port.parse::<u16>() {
                    Ok(port) => Ok(Peer::Name {
                        host: host.to_string(),
                        port,
                    }),
                    Err(_) => Err(not_a_peer(peer)),
                }
            }
            _ => Err(not_a_peer(peer)),
        }
    }
}

fn not_a_peer(peer: &str) -> ConfigError {
    ConfigError::Invalid {
        setting: "peers",
        why: format!(
            "`{peer}` is not host:port (e.g. 192.168.1.20:7878 or node1:7878), `*` (discovery), nor dir:PATH (a rendezvous directory)"
        ),
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Addr(address) => write!(f, "{address}"),
            Peer::Name { host, port } => write!(f, "{host}:{port}"),
            Peer::Discover => f.write_str("*"),
            Peer::Dir(dir) => write!(f, "{DIR_PREFIX}{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_need_a_host_and_a_port() {
        assert!(matches!("127.0.0.1:7878".parse(), Ok(Peer::Addr(_))));
        assert!(matches!("[::1]:7878".parse(), Ok(Peer::Addr(_))));
        assert!(matches!(
            "nodes.wasp.svc.cluster.local:7878".parse(),
            Ok(Peer::Name { port: 7878, .. })
        ));
        assert!(matches!("localhost:7878".parse(), Ok(Peer::Name { .. })));
        for bad in [
            "node1",
            ":7878",
            "node1:http",
            "node1:99999",
            "[::1:7878",
            "",
            "dir:",
        ] {
            assert!(bad.parse::<Peer>().is_err(), "{bad}");
        }
    }

    #[test]
    fn peers_print_as_they_are_parsed() {
        for text in [
            "10.0.0.5:7878",
            "[fd00::5]:7878",
            "workers:7878",
            "*",
            "dir:/shared/n",
        ] {
            assert_eq!(text.parse::<Peer>().unwrap().to_string(), text);
        }
    }
}
