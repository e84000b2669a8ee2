//! What a node counts for its monitor besides its server's metrics: its clients, the
//! connections it refused and why, the jobs it handed back, whether it drains.

use crate::monitor::status::NodeStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    clients: AtomicU64,
    refused: [AtomicU64; Refused::ALL.len()],
    handed_back: AtomicU64,
    draining: AtomicBool,
}

impl NodeCounters {
    /// A client is connected until the guard is dropped.
    pub(crate) fn client(&self) -> ClientGuard<'_> {
        self.clients.fetch_add(1, Ordering::Relaxed);
        ClientGuard(self)
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

    /// The counters, into `status` (which has the store's part already).
    pub(crate) fn fill(&self, status: &mut NodeStatus) {
        status.clients = self.clients.load(Ordering::Relaxed);
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

/// Counts a connected client while it lives.
#[derive(Debug)]
pub(crate) struct ClientGuard<'a>(&'a NodeCounters);

impl Drop for ClientGuard<'_> {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_fill_the_status() {
        let counters = NodeCounters::default();
        let guard = counters.client();
        counters.refused(Refused::WrongSecret);
        counters.refused(Refused::WrongSecret);
        counters.handed_back(3);
        let mut status = NodeStatus::default();
        counters.fill(&mut status);
        assert_eq!(status.clients, 1);
        assert_eq!(status.clients_refused["wrong_secret"], 2);
        assert_eq!(status.clients_refused["draining"], 0);
        assert_eq!(status.jobs_handed_back, 3);
        drop(guard);
        counters.set_draining();
        counters.fill(&mut status);
        assert_eq!(status.clients, 0);
        assert!(status.draining);
    }
}
