//! Who the client's nodes are: one peer loop per node address, whoever found it (listed,
//! resolved from a name, heard on the LAN), and rows that go when found nodes go.
//!
//! [`Membership`] decides, as plain data; [`run`] carries its decisions out: it starts a
//! peer loop for each address that needs one and hears when loops end. One registry for
//! all sources means one connection per address: a listed node that is also discovered is
//! not connected to twice.

use super::context::Context;
use super::nodes::{NodeTable, RowId};
use super::peer::run_peer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument as _, error, info, info_span};

/// How many failed connection attempts in a row make a found node count as gone: its loop
/// ends, and starts again when the node is found again.
const ATTEMPTS: u32 = 5;

/// How a node's address became known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Given as an address: kept for as long as the client runs.
    Listed,
    /// One of the addresses a name resolves to.
    Name(String),
    /// Heard announcing itself.
    Discovered,
}

/// What the registry hears.
#[derive(Debug)]
pub(crate) enum Event {
    /// A node was found at this address.
    Found(SocketAddr, Origin),
    /// A name (or rendezvous directory) now stands for these addresses, and no others.
    Answer(String, Vec<SocketAddr>),
    /// The peer loop of this address ended (it gave up on a found node).
    Ended(SocketAddr),
}

/// A peer loop to start.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    pub(crate) row: RowId,
    /// How many failed attempts in a row end the loop (`None`: never).
    pub(crate) give_up_after: Option<u32>,
    /// Whether the address is still in its name's answer: once it is not, the loop ends
    /// as soon as the node is not connected (at once, if it never was).
    pub(crate) listed: watch::Receiver<bool>,
}

/// An address with a peer loop.
struct Member {
    origin: Origin,
    row: RowId,
    listed: watch::Sender<bool>,
}

/// The addresses with a peer loop, and their rows.
#[derive(Default)]
pub(crate) struct Membership {
    members: HashMap<SocketAddr, Member>,
}

impl Membership {
    /// A node was found at `address`: returns the loop to start, unless one runs already.
    pub(crate) fn found(
        &mut self,
        address: SocketAddr,
        origin: Origin,
        nodes: &NodeTable,
    ) -> Option<Start> {
        if let Some(member) = self.members.get(&address) {
            if member.origin == origin {
                member.listed.send_replace(true);
            }
            return None;
        }
        let name = match &origin {
            Origin::Name(name) => Some(name.clone()),
            Origin::Listed | Origin::Discovered => None,
        };
        let row = nodes.add(address.to_string(), name);
        let give_up_after = (origin != Origin::Listed).then_some(ATTEMPTS);
        let (listed, receiver) = watch::channel(true);
        self.members.insert(
            address,
            Member {
                origin,
                row,
                listed,
            },
        );
        Some(Start {
            row,
            give_up_after,
            listed: receiver,
        })
    }

    /// `name` now stands for `addresses`: returns the loops to start for the new ones, and
    /// marks those it no longer names as unlisted (their loops end once not connected).
    pub(crate) fn answer(
        &mut self,
        name: &str,
        addresses: &[SocketAddr],
        nodes: &NodeTable,
    ) -> Vec<(SocketAddr, Start)> {
        let origin = Origin::Name(name.to_string());
        let starts = addresses
            .iter()
            .filter_map(|&address| Some((address, self.found(address, origin.clone(), nodes)?)))
            .collect();
        for (address, member) in &self.members {
            if member.origin == origin && !addresses.contains(address) {
                member.listed.send_replace(false);
            }
        }
        starts
    }

    /// The loop of `address` ended: a found node is let go (its row folds into the
    /// departed row); found again, it gets a new loop and row.
    pub(crate) fn ended(&mut self, address: SocketAddr, nodes: &NodeTable) {
        if let Some(member) = self.members.remove(&address) {
            nodes.remove(member.row);
        }
    }

    /// How many addresses have a loop.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.members.len()
    }
}

/// Runs the registry until `stop`: starts the loops of `listed` (members already) at once,
/// then a peer loop per address found, and lets found nodes go when their loops give up.
pub(crate) async fn run(
    ctx: Arc<Context>,
    mut membership: Membership,
    listed: Vec<(SocketAddr, Start)>,
    (events, mut inbox): (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    mut stop: watch::Receiver<bool>,
) {
    let mut loops = JoinSet::new();
    for (address, start) in listed {
        spawn_peer(&mut loops, &ctx, address, start, &events, &stop);
    }
    loop {
        tokio::select! {
            event = inbox.recv() => match event {
                Some(Event::Found(address, origin)) => {
                    let found = membership.found(address, origin.clone(), &ctx.nodes);
                    if let Some(start) = found {
                        if origin != Origin::Listed {
                            info!(node = %address, ?origin, "found a node");
                        }
                        spawn_peer(&mut loops, &ctx, address, start, &events, &stop);
                    }
                }
                Some(Event::Answer(name, addresses)) => {
                    for (address, start) in membership.answer(&name, &addresses, &ctx.nodes) {
                        info!(node = %address, %name, "found a node");
                        spawn_peer(&mut loops, &ctx, address, start, &events, &stop);
                    }
                }
                Some(Event::Ended(address)) => membership.ended(address, &ctx.nodes),
                None => break,
            },
            Some(joined) = loops.join_next(), if !loops.is_empty() => {
                if let Err(panic) = joined {
                    // The jobs the loop held were answered by their completers as they
                    // were dropped; the node's loop is gone until it is found again.
                    error!(%panic, "a node's loop failed; its jobs were answered with an error");
                }
            }
            _ = stop.changed() => break,
        }
    }
    while loops.join_next().await.is_some() {}
}

fn spawn_peer(
    loops: &mut JoinSet<()>,
    ctx: &Arc<Context>,
    address: SocketAddr,
    start: Start,
    events: &mpsc::UnboundedSender<Event>,
    stop: &watch::Receiver<bool>,
) {
    let peer = run_peer(ctx.clone(), address, start, stop.clone());
    let events = events.clone();
    let span = info_span!("node", %address);
    loops.spawn(
        async move {
            peer.await;
            let _ = events.send(Event::Ended(address));
        }
        .instrument(span),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn address(host: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, host], 7878))
    }

    #[test]
    fn one_loop_per_address_whoever_finds_it() {
        let nodes = NodeTable::new(Arc::new(AtomicUsize::new(0)));
        let mut membership = Membership::default();
        let listed = membership.found(address(1), Origin::Listed, &nodes);
        assert_eq!(
            listed.map(|s| s.give_up_after),
            Some(None),
            "listed: never given up"
        );
        // The same node, heard on the LAN: already served.
        assert!(
            membership
                .found(address(1), Origin::Discovered, &nodes)
                .is_none()
        );
        let heard = membership.found(address(2), Origin::Discovered, &nodes);
        assert_eq!(heard.map(|s| s.give_up_after), Some(Some(ATTEMPTS)));
        assert_eq!(nodes.len(), 2);
    }

    /// An address its name no longer gives is marked unlisted (its loop ends once it is
    /// not connected); given again, listed again. Other origins are not touched.
    #[test]
    fn a_name_s_answer_lists_and_unlists_its_addresses() {
        let nodes = NodeTable::new(Arc::new(AtomicUsize::new(0)));
        let mut membership = Membership::default();
        let listed = membership
            .found(address(9), Origin::Listed, &nodes)
            .unwrap();
        let starts = membership.answer("nodes:7878", &[address(1), address(2)], &nodes);
        assert_eq!(starts.len(), 2);
        let (first, second) = (&starts[0].1.listed, &starts[1].1.listed);
        let again = membership.answer("nodes:7878", &[address(2), address(9)], &nodes);
        assert!(again.is_empty(), "no new loop for known addresses");
        assert!(!*first.borrow(), "address 1 left the answer");
        assert!(*second.borrow());
        assert!(*listed.listed.borrow(), "a listed address stays listed");
        membership.answer("nodes:7878", &[address(1)], &nodes);
        assert!(*first.borrow(), "back in the answer");
        assert!(!*second.borrow());
    }

    /// A name whose answer changes at every resolution (pods coming and going), a hundred
    /// times: the table holds the live nodes, not every address ever seen.
    #[test]
    fn churn_behind_a_name_does_not_grow_the_table() {
        let nodes = NodeTable::new(Arc::new(AtomicUsize::new(0)));
        let mut membership = Membership::default();
        let name = Origin::Name("nodes:7878".into());
        for cycle in 0..100u8 {
            let live = [address(cycle), address(cycle.wrapping_add(1))];
            for node in live {
                membership.found(node, name.clone(), &nodes);
            }
            // The node that left the answer stops answering; its loop gives up.
            membership.ended(address(cycle), &nodes);
            assert!(membership.len() <= 2, "cycle {cycle}");
            assert!(nodes.len() <= 2, "cycle {cycle}: {} rows", nodes.len());
        }
        let rows = nodes.snapshot();
        assert!(rows.last().unwrap().address.ends_with("departed node(s)"));
    }
}
