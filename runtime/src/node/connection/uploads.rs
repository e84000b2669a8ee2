//! What a client sends on streams of its own, each read by a task of its own: a module
//! (one frame), or a value put once (a head frame, then the value's raw bytes, read as
//! they arrive into the value's place and hashed as they go: never one message).

use super::{Client, close};
use crate::data::Data;
use crate::net;
use crate::node::data::TooLarge;
use bytes::Bytes;
use std::sync::Arc;
use tokio::task::JoinSet;
use tracing::{debug, warn};
use wasp_proto::CloseCode;
use wasp_proto::codec::MAX_MODULE_FRAME_LEN;
use wasp_proto::message::{ToNode, WireHash};

/// Room in a module frame for everything but the module's bytes.
const MODULE_FRAME_OVERHEAD: usize = 1024;

/// Accepts the client's upload streams until the connection ends; a stream that breaks
/// the protocol closes the connection.
pub(super) async fn receive(client: Arc<Client>) {
    // Dropped (aborted) with this task: no upload outlives its connection.
    let mut uploads = JoinSet::new();
    loop {
        tokio::select! {
            stream = client.connection.accept_uni() => match stream {
                Ok(stream) => {
                    uploads.spawn(upload(client.clone(), stream));
                }
                Err(_) => return,
            },
            Some(_) = uploads.join_next(), if !uploads.is_empty() => {}
        }
    }
}

async fn upload(client: Arc<Client>, stream: quinn::RecvStream) {
    if let Err(why) = read_upload(&client, stream).await {
        warn!(remote = %client.remote, %why, "closing the connection of a client that broke the protocol");
        close(&client.connection, CloseCode::Protocol, &why);
    }
}

async fn read_upload(client: &Arc<Client>, mut stream: quinn::RecvStream) -> Result<(), String> {
    let policy = &client.node.policy;
    let max_frame = usize::try_from(policy.max_module_size)
        .unwrap_or(usize::MAX)
        .saturating_add(MODULE_FRAME_OVERHEAD)
        .min(MAX_MODULE_FRAME_LEN);
    let head = net::read_head::<ToNode>(&mut stream, max_frame)
        .await
        .map_err(|error| format!("bad module stream: {error}"))?;
    match head {
        ToNode::Module { hash, bytes } => {
            end_of_stream(&mut stream).await?;
            // Hashing and validating a large module is CPU work: off the runtime.
            let receiver = client.clone();
            tokio::task::spawn_blocking(move || receiver.module_arrived(hash, bytes))
                .await
                .unwrap_or_else(|error| Err(format!("module check failed: {error}")))
        }
        ToNode::Data { hash, len } => read_value(client, stream, hash, len).await,
        ToNode::Run(_) | ToNode::Cancel { .. } | ToNode::Pull { .. } => {
            Err("sent a job message on a module stream".into())
        }
    }
}

/// Checks that the stream ends here.
async fn end_of_stream(stream: &mut quinn::RecvStream) -> Result<(), String> {
    net::read_end(stream)
        .await
        .map_err(|error| format!("bad module stream: {error}"))
}

/// A value the node asked for: room is reserved for it (waiting, if jobs pin the store
/// full), its bytes read and hashed as they arrive, then it is kept and its jobs run.
async fn read_value(
    client: &Arc<Client>,
    mut stream: quinn::RecvStream,
    hash: WireHash,
    len: u64,
) -> Result<(), String> {
    client.state().expects_data(&hash, len)?;
    let reservation = match client.node.data.reserve(len).await {
        Ok(reservation) => reservation,
        // The node asked only for values its store can hold.
        Err(TooLarge { size, limit }) => {
            return Err(format!(
                "sent a value of {size} bytes, more than the {limit} kept"
            ));
        }
    };
    let len = usize::try_from(len).map_err(|_| "a value too large for this machine")?;
    let mut bytes = Vec::with_capacity(len);
    let mut hasher = blake3::Hasher::new();
    while bytes.len() < len {
        let chunk = stream
            .read_chunk(len - bytes.len(), true)
            .await
            .map_err(|error| format!("bad value stream: {error}"))?
            .ok_or("the stream ended inside a value")?;
        hasher.update(&chunk.bytes);
        bytes.extend_from_slice(&chunk.bytes);
    }
    end_of_stream(&mut stream).await?;
    if hasher.finalize().as_bytes() != &hash {
        return Err("sent a value whose bytes do not match their hash".into());
    }
    let data = Data {
        hash,
        bytes: Bytes::from(bytes),
    };
    client.node.data.insert(reservation, &data);
    debug!(remote = %client.remote, len, "value received");
    client.state().data_arrived(hash, client.stores());
    client.act();
    Ok(())
}
