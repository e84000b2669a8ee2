//! Peers given by name (or by rendezvous directory): resolved again and again, each
//! address a node of its own.
//!
//! A name may stand for many nodes (a Kubernetes headless Service resolves to one address
//! per ready pod), and the set changes as an orchestrator adds and removes them. So a
//! named peer is resolved at start and then every `resolve_interval`; every address it
//! resolves to gets a peer loop, like a discovered node's. An address that drops out of
//! the answer keeps its connection while the node serves (a node being removed drains
//! and hands its jobs back), and is let go once it stops answering.

use super::context::Context;
use super::registry::Event;
use crate::peer::DIR_PREFIX;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// How often a peer's name is resolved again, unless configured otherwise: a node added
/// behind the name gets work within this.
pub(crate) const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(5);

/// A blocking function from `host:port` to the addresses it stands for.
type Resolve = dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync;

/// Turns a peer's `host:port` into addresses: the system's resolver, unless replaced
/// (`ServerBuilder::resolver`).
#[derive(Clone)]
pub(crate) struct Resolver(Arc<Resolve>);

impl Resolver {
    /// The system's resolver (`getaddrinfo`, with `/etc/hosts` and DNS).
    pub(crate) fn system() -> Self {
        Resolver(Arc::new(|peer| Ok(peer.to_socket_addrs()?.collect())))
    }

    /// A resolver calling `resolve`, which may block.
    pub(crate) fn new(
        resolve: impl Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> Self {
        Resolver(Arc::new(resolve))
    }

    /// The distinct addresses `peer` resolves to now, in the resolver's order; resolved
    /// on the blocking pool, since resolvers block.
    ///
    /// # Errors
    /// The resolver's error; an error too if the name resolves to no address.
    pub(crate) async fn resolve(&self, peer: &str) -> io::Result<Vec<SocketAddr>> {
        let resolve = self.0.clone();
        let name = peer.to_owned();
        let resolved = tokio::task::spawn_blocking(move || match name.strip_prefix(DIR_PREFIX) {
            Some(dir) => crate::rendezvous::addresses(Path::new(dir)),
            None => resolve(&name),
        })
        .await
        .map_err(io::Error::other)??;
        let addresses = distinct(resolved);
        if addresses.is_empty() {
            let why = if peer.starts_with(DIR_PREFIX) {
                "no node has written its address in the directory yet"
            } else {
                "the name resolves to no address"
            };
            return Err(io::Error::new(io::ErrorKind::NotFound, why));
        }
        Ok(addresses)
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver(..)")
    }
}

/// `addresses` without repeats (a resolver lists an address once per socket type),
/// first occurrences kept in order.
fn distinct(addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let mut seen = std::collections::HashSet::new();
    addresses
        .into_iter()
        .filter(|address| seen.insert(*address))
        .collect()
}

/// Resolves `name` (`host:port`) now and every resolve interval until `stop`, telling the
/// registry of every address it resolves to. Until it resolves, the name's row in the node
/// table shows why not.
pub(crate) async fn follow_name(
    ctx: Arc<Context>,
    name: String,
    events: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing: Option<String> = None;
    while !*stop.borrow() {
        let resolved = tokio::select! {
            resolved = ctx.config.resolver.resolve(&name) => resolved,
            _ = stop.changed() => break,
        };
        match resolved {
            Ok(addresses) => {
                if failing.take().is_some() {
                    info!(%name, "the name resolves again");
                }
                let _ = events.send(Event::Answer(name.clone(), addresses));
            }
            Err(error) => {
                let error = format!("cannot resolve {name}: {error}");
                // Say it once, not at every attempt.
                if failing.as_ref() != Some(&error) {
                    warn!(%error, "could not resolve a peer's name; retrying");
                }
                ctx.nodes.name_failed(&name, error.clone());
                failing = Some(error);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(ctx.config.resolve_interval) => {}
            _ = stop.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    #[test]
    fn repeated_addresses_are_resolved_once_in_order() {
        let a: SocketAddr = "10.0.0.1:7878".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:7878".parse().unwrap();
        let resolver = Resolver::new(move |_| Ok(vec![b, a, b, a]));
        let resolved = runtime().block_on(resolver.resolve("nodes:7878")).unwrap();
        assert_eq!(resolved, [b, a]);
    }

    #[test]
    fn a_name_resolving_to_nothing_is_an_error() {
        let resolver = Resolver::new(|_| Ok(Vec::new()));
        let error = runtime()
            .block_on(resolver.resolve("nodes:7878"))
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_resolvers_error_is_kept() {
        let resolver = Resolver::new(|name| Err(io::Error::other(format!("no such {name}"))));
        let error = runtime()
            .block_on(resolver.resolve("nodes:7878"))
            .unwrap_err();
        assert_eq!(error.to_string(), "no such nodes:7878");
    }

    #[test]
    fn the_system_resolver_resolves_numeric_addresses_and_refuses_junk() {
        let resolver = Resolver::system();
        let resolved = runtime()
            .block_on(resolver.resolve("127.0.0.1:7878"))
            .unwrap();
        assert_eq!(resolved, ["127.0.0.1:7878".parse::<SocketAddr>().unwrap()]);
        assert!(runtime().block_on(resolver.resolve("no port")).is_err());
    }
}
