//! What a node counts for its monitor besides its server's metrics: its clients, the
//! connections it refused and why, the jobs it handed back, whether it drains.

use crate::monitor::status::{ClientStatus, NodeStatus};
use crate::scheduler::groups::GroupProgress;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Why a node refused a connection: the `reason` label of `wasp_clients_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The client's proof was wrong, or missing.
    WrongSecret,
    /// Another protocol version.
    Version,
    /// The wasp handshake failed otherwise (garbage, a lost connection).
    Handshake,
    /// No handshake in time.
    Timeout,
    /// `max_clients` were connected.
    TooManyClients,
    /// The node was draining.
    Draining,
}

impl Refused {
    const ALL: [Refused; 6] = [
        Refused::WrongSecret,
        Refused::Version,
        Refused::Handshake,
        Refused::Timeout,
        Refused::TooManyClients,
        Refused::Draining,
    ];

    fn label(self) -> &'static str {
        match self {
            Refused::WrongSecret => "wrong_secret",
            Refused::Version => "version",
            Refused::Handshake => "handshake",
            Refused::Timeout => "timeout",
            Refused::TooManyClients => "too_many_clients",
            Refused::Draining => "draining",
        }
    }
}

/// The node's counters.
#[derive(Debug, Default)]
pub(crate) struct NodeCounters {
    /// The clients connected now, by connection number.
    clients: Mutex<BTreeMap<u64, Connected>>,
    refused: [AtomicU64; Refused::ALL.len()],
    handed_back: AtomicU64,
    draining: AtomicBool,
}

/// A client connected now.
#[derive(Debug)]
struct Connected {
    address: SocketAddr,
    group: String,
    since: Instant,
}

impl NodeCounters {
    /// Client `id`, at `address`, whose jobs are in `group`, is connected until the guard
    /// is dropped.
    pub(crate) fn client(&self, id: u64, address: SocketAddr, group: &str) -> ClientGuard<'_> {
        let connected = Connected {
            address,
            group: group.to_string(),
            since: Instant::now(),
        };
        self.lock_clients().insert(id, connected);
        ClientGuard(self, id)
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Connected>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn refused(&self, why: Refused) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handed_back(&self, jobs: usize) {
        self.handed_back.fetch_add(jobs as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The counters, into `status` (which has the store's part already); `progress` reads
    /// a client's group.
    pub(crate) fn fill(
        &self,
        status: &mut NodeStatus,
        progress: impl Fn(&str) -> Option<GroupProgress>,
    ) {
        let clients: Vec<(u64, String, String, Instant)> = self
            .lock_clients()
            .iter()
            .map(|(&id, client)| {
                (
                    id,
                    client.address.to_string(),
                    client.group.clone(),
                    client.since,
                )
            })
            .collect();
        status.clients = clients.len() as u64;
        status.client_list = clients
            .into_iter()
            .map(|(id, address, group, since)| {
                let jobs = progress(&group);
                let count = |field: fn(&GroupProgress) -> u64| jobs.as_ref().map_or(0, field);
                ClientStatus {
                    id,
                    address,
                    connected_seconds: since.elapsed().as_secs_f64(),
                    running: count(|jobs| jobs.running),
                    queued: count(|jobs| jobs.queued),
                    finished: count(|jobs| jobs.finished),
                    failed: count(|jobs| jobs.failed),
                    group,
                }
            })
            .collect();
        status.draining = self.draining.load(Ordering::Relaxed);
        status.jobs_handed_back = self.handed_back.load(Ordering::Relaxed);
        status.clients_refused = Refused::ALL
            .iter()
            .map(|&why| {
                (
                    why.label(),
                    self.refused[why as usize].load(Ordering::Relaxed),
                )
            })
            .collect();
    }
}

/// Lists a connected client while it lives.
#[derive(Debug)]
pub(crate) struct ClientGuard<'a>(&'a NodeCounters, u64);

impl Drop for ClientGuard<'_> {
    fn drop(&mut self) {
        self.0.lock_clients().remove(&self.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_fill_the_status() {
        let counters = NodeCounters::default();
        let address = "10.0.0.9:4000".parse().unwrap();
        let guard = counters.client(3, address, "client 3 (10.0.0.9:4000)");
        counters.refused(Refused::WrongSecret);
        counters.refused(Refused::WrongSecret);
        counters.handed_back(3);
        let mut status = NodeStatus::default();
        counters.fill(&mut status, |_| None);
        assert_eq!(status.clients, 1);
        assert_eq!(
            (
                status.client_list[0].id,
                status.client_list[0].address.as_str()
            ),
            (3, "10.0.0.9:4000")
        );
        assert_eq!(status.clients_refused["wrong_secret"], 2);
        assert_eq!(status.clients_refused["draining"], 0);
        assert_eq!(status.jobs_handed_back, 3);
        drop(guard);
        counters.set_draining();
        counters.fill(&mut status, |_| None);
        assert_eq!(status.clients, 0);
        assert!(status.client_list.is_empty());
        assert!(status.draining);
    }
}
