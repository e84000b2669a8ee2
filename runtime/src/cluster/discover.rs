//! Listening for the announcements of discoverable nodes, and telling the registry of each
//! authentic one.

use super::context::Context;
use super::registry::{Event, Origin};
use crate::discovery::{self, Hearing};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

/// Listens for announcements on `address` until `stop`; every node heard (authentic, fresh,
/// not replayed) is reported to the registry, which connects to it once.
pub(crate) async fn discover(
    ctx: Arc<Context>,
    address: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(secret) = ctx.config.secret.clone() else {
        return; // refused when the server is built
    };
    let socket = match discovery::listener(address, ctx.config.discovery_interface) {
        Ok(socket) => socket,
        Err(error) => {
            error!(%address, %error, "cannot listen for node announcements; discovery is off");
            return;
        }
    };
    info!(%address, "listening for node announcements");
    let mut hearing = Hearing::new(secret);
    loop {
        let received = tokio::select! {
            received = discovery::receive(&socket) => received,
            _ = stop.changed() => break,
        };
        let Ok((datagram, source)) = received else {
            continue;
        };
        let heard = hearing.hear(&datagram, source);
        ctx.nodes.set_discovery(hearing.stats);
        if let Some(node) = heard {
            let _ = events.send(Event::Found(node.address, Origin::Discovered));
        }
    }
}
