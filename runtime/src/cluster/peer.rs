//! One loop per node address: connect, run a session until it ends, wait, reconnect.

use super::context::Context;
use super::registry::Start;
use super::session::{End, Session};
use super::window::{Backoff, jittered, random_fraction};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// The first delay before reconnecting to a peer that failed or went away (each delay is
/// jittered: between half of it and all of it).
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// The longest delay between attempts: a restarted node is back in use within this.
const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// The delay after a node refused this client (wrong secret or version): a retry only
/// helps once someone reconfigures a side, so it need not fill the node's log.
const RECONNECT_REFUSED: Duration = Duration::from_secs(15);

/// Connects to the node at `address` (`start.row`) and keeps reconnecting; for a found node
/// (discovered, or resolved from a name), only until `start.give_up_after` attempts in a
/// row have failed, or, once its name no longer lists it, until it is not connected.
///
/// The backoff starts again from its shortest delay only after a session in which the node
/// answered jobs: a node that accepts and then drains or fails at once, again and again, is
/// retried ever more slowly, not every 100 ms.
pub(crate) async fn run_peer(
    ctx: Arc<Context>,
    address: SocketAddr,
    start: Start,
    mut stop: watch::Receiver<bool>,
) {
    let Start {
        row,
        give_up_after,
        mut listed,
    } = start;
    let mut backoff = Backoff::new(RECONNECT_FIRST, RECONNECT_MAX);
    // The error shown already: said once only.
    let mut last_error = ctx.nodes.last_error(row).unwrap_or_default();
    let mut failures = 0;
    while !*stop.borrow() {
        if !*listed.borrow() {
            info!(node = %address, "no longer listed under its name: let go");
            break;
        }
        let mut delay = backoff.next_delay();
        let connected = tokio::select! {
            connected = Session::connect(&ctx, address) => connected,
            _ = stop.changed() => break,
            () = unlisted(&mut listed) => continue,
        };
        match connected {
            Ok(session) => {
                failures = 0;
                last_error.clear();
                let info = session.info();
                info!(node = %address, id = %info.id, arch = %info.arch, workers = info.workers, "connected to node");
                ctx.nodes.connected(row, info);
                let (end, answered) = session.run(&ctx, row, &mut stop).await;
                if answered > 0 {
                    backoff.reset();
                    delay = backoff.next_delay();
                }
                let error = match &end {
                    End::Stopped => {
                        debug!(node = %address, "session closed");
                        None
                    }
                    End::Drained => {
                        info!(node = %address, "node shut down; will reconnect when it returns");
                        None
                    }
                    End::Lost(error) => {
                        warn!(node = %address, %error, "lost the node; its jobs go back to the queue");
                        Some(error.to_string())
                    }
                };
                ctx.nodes.disconnected(row, error);
            }
            Err(error) => {
                failures += 1;
                if give_up_after.is_some_and(|limit| failures >= limit) {
                    info!(node = %address, %error, "the node is gone");
                    break;
                }
                let refused = error.is_refusal();
                if refused {
                    delay = jittered(RECONNECT_REFUSED, random_fraction());
                }
                let error = error.to_string();
                // Say it once, not at every retry.
                if error != last_error {
                    warn!(node = %address, %error, "could not connect to node; retrying");
                    last_error.clone_from(&error);
                }
                ctx.nodes.update_and_notify(row, |node| {
                    node.last_error = Some(error);
                    node.refused = refused;
                });
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
            () = unlisted(&mut listed) => {}
        }
    }
}

/// Returns once the address is no longer listed under its name; never, for an address
/// that stays listed.
async fn unlisted(listed: &mut watch::Receiver<bool>) {
    if listed.wait_for(|listed| !listed).await.is_err() {
        std::future::pending::<()>().await;
    }
}
