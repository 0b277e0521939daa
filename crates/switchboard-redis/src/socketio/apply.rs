//! What a message from another node makes this node do: decode it (a
//! malformed one is counted and logged, never trusted), note that its node
//! is alive, then apply it to the local namespace through the
//! `Namespace::remote_*` entry points, answer a request on the asking
//! node's channel, or hand an answer to the pending request.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use switchboard_socketio::{AckError, Namespace};

use super::cluster::Shared;
use super::resync;
use super::wire::{self, AckRequest, Body};

/// Applies one message received on the common channel or this node's own.
pub(crate) fn handle(shared: &Arc<Shared>, payload: &[u8]) {
    let message = match wire::decode(payload) {
        Ok(m) => m,
        Err(e) => {
            let n = shared.stats.decode_errors.fetch_add(1, Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    decode_errors = n,
                    "socket.io cluster: malformed message dropped: {e}"
                );
            } else {
                tracing::debug!(decode_errors = n, "malformed message dropped: {e}");
            }
            return;
        }
    };
    let from = message.node_id;
    if from == shared.node_id {
        // Recorded events come back to their origin to be delivered there
        // too; anything else of this node's is an echo.
        let counter = match message.body {
            Body::Recorded { .. } if recorded(shared, true, message.body) => &shared.stats.received,
            _ => &shared.stats.ignored,
        };
        counter.fetch_add(1, Relaxed);
        return;
    }
    if !matches!(message.body, Body::Bye) && shared.nodes.seen(from, Instant::now()) {
        tracing::info!(node = %format_args!("{from:016x}"), "socket.io cluster: node joined");
    }
    let applied = apply(shared, from, message.body);
    let counter = if applied {
        &shared.stats.received
    } else {
        &shared.stats.ignored
    };
    counter.fetch_add(1, Relaxed);
}

/// The namespace `name` of this node's server, if both exist.
fn namespace(shared: &Shared, name: &str) -> Option<Namespace> {
    shared.io()?.get_ns(name)
}

/// `false` when the message had nothing to act on (a late answer, an
/// unknown namespace).
fn apply(shared: &Arc<Shared>, from: u64, body: Body) -> bool {
    match body {
        Body::Hello => shared.send(shared.node_channel(from), Body::Heartbeat),
        Body::Heartbeat => true,
        Body::Bye => {
            if shared.nodes.remove(from) {
                shared.node_gone(from, "left");
            }
            true
        }
        Body::Broadcast {
            ns,
            opts,
            flags,
            ack: None,
            packet,
        } => match namespace(shared, &ns) {
            Some(ns) => {
                ns.remote_broadcast(&opts, flags, packet);
                true
            }
            None => false,
        },
        Body::Broadcast {
            ns,
            opts,
            ack: Some(ack),
            packet,
            ..
        } => {
            let Some(ns) = namespace(shared, &ns) else {
                // Nobody here: an empty recipient list, so that the origin
                // does not wait for this node.
                let reply = Body::AckCount {
                    id: ack.id,
                    sids: Vec::new(),
                };
                shared.send(shared.node_channel(from), reply);
                return false;
            };
            forward_acks(
                shared,
                from,
                ack,
                ns.remote_broadcast_with_ack(&opts, packet),
            );
            true
        }
        Body::SocketsJoin { ns, opts, rooms } => match namespace(shared, &ns) {
            Some(ns) => {
                ns.remote_sockets_join(&opts, &rooms);
                true
            }
            None => false,
        },
        Body::SocketsLeave { ns, opts, rooms } => match namespace(shared, &ns) {
            Some(ns) => {
                ns.remote_sockets_leave(&opts, &rooms);
                true
            }
            None => false,
        },
        Body::DisconnectSockets { ns, opts, close } => match namespace(shared, &ns) {
            Some(ns) => {
                ns.remote_disconnect_sockets(&opts, close);
                true
            }
            None => false,
        },
        Body::FetchSockets { id, ns, opts } => {
            let sockets = namespace(shared, &ns)
                .map(|ns| ns.remote_fetch_sockets(&opts))
                .unwrap_or_default();
            let reply = Body::FetchSocketsResponse { id, sockets };
            shared.send(shared.node_channel(from), reply)
        }
        Body::FetchSocketsResponse { id, sockets } => {
            shared.requests.fetch_response(from, id, sockets)
        }
        Body::AckCount { id, sids } => shared.requests.ack_count(from, id, sids),
        Body::Ack { id, sid, args } => shared.requests.ack(from, id, sid, args),
        body @ Body::Recorded { .. } => recorded(shared, false, body),
    }
}

/// Delivers a recorded event (numbered by Redis) to this node's sockets;
/// `false` if it is not for this node, or was delivered already (read
/// back after an outage: [`resync`]).
fn recorded(shared: &Shared, own: bool, body: Body) -> bool {
    let Body::Recorded {
        offset,
        ns,
        opts,
        local,
        packet,
    } = body
    else {
        return false;
    };
    match namespace(shared, &ns) {
        Some(ns) => resync::deliver(shared, &ns, &offset, opts, own || !local, packet),
        None => false,
    }
}

/// Tells node `origin` who got its broadcast here, then each answer as it
/// comes, until every recipient answered or left, or the origin's timeout
/// passed (later answers could not count anyway).
fn forward_acks(
    shared: &Arc<Shared>,
    origin: u64,
    ack: AckRequest,
    mut acks: switchboard_socketio::LocalAcks,
) {
    let channel = shared.node_channel(origin);
    let sids = acks.recipients();
    let none = sids.is_empty();
    shared.send(channel.clone(), Body::AckCount { id: ack.id, sids });
    if none {
        return;
    }
    let task_shared = shared.clone();
    let Some(rt) = shared.runtime.get() else {
        return;
    };
    rt.spawn(async move {
        let shared = task_shared;
        let forward = async {
            while let Some((sid, res)) = acks.next().await {
                let args = match res {
                    Ok(args) => Some(args),
                    Err(AckError::Disconnected) => None,
                    Err(_) => continue,
                };
                shared.send(
                    channel.clone(),
                    Body::Ack {
                        id: ack.id,
                        sid,
                        args,
                    },
                );
            }
        };
        match ack.timeout {
            Some(d) => {
                let _ = tokio::time::timeout(d, forward).await;
            }
            None => forward.await,
        }
        // Dropping `acks` forgets the silent sockets' ack slots.
    });
}
