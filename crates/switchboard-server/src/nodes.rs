//! The cluster's nodes as each node sees them: every node publishes its
//! counters ([`crate::metrics::info_json`]) every [`HEARTBEAT`] on the
//! reserved hub topic [`NODES_TOPIC`], which the backplane carries to every
//! other node like any topic; each node keeps the last report of every node
//! it heard from and forgets one that stays silent for [`EXPIRY`]. With the
//! in-memory backplane the list is this node alone. Clients may neither
//! subscribe nor publish to topics starting with `$`.
//!
//! The same listener carries cluster-wide commands on [`CONTROL_TOPIC`]:
//! `POST /api/disconnect` disconnects the user's connections on its own node
//! and publishes the command there for every other node
//! ([`broadcast_disconnect`]).

use crate::app::AppState;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use switchboard_hub::{ClientInfo, Delivery, Payload};

/// The reserved topic of node reports.
pub const NODES_TOPIC: &str = "$nodes";
/// The reserved topic of cluster-wide commands.
pub const CONTROL_TOPIC: &str = "$control";

/// A command on [`CONTROL_TOPIC`].
#[derive(serde::Serialize, serde::Deserialize)]
struct Command {
    /// The node that sent it (which has already acted on it).
    origin: String,
    /// Disconnect this user's connections.
    disconnect: Option<String>,
}

/// Asks every other node to disconnect `user` (this node has done it).
pub fn broadcast_disconnect(state: &AppState, user: &str) {
    let command = Command {
        origin: state.node_id.clone(),
        disconnect: Some(user.to_owned()),
    };
    let json = serde_json::to_vec(&command).expect("serializes");
    let _ = state.hub.publish(
        CONTROL_TOPIC,
        Payload::json_or_text(bytes::Bytes::from(json)),
        None,
    );
}
/// How often a node reports.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node not heard from for this long is gone.
pub const EXPIRY: Duration = Duration::from_secs(7);

/// The `ClientInfo::protocol` of the server's own hub clients: not
/// connections, not subject to permissions.
pub const INTERNAL: &str = "internal";

/// Whether clients may use `topic` (topics starting with `$` are the server's).
pub fn client_topic(topic: &str) -> bool {
    !topic.starts_with('$')
}

/// The last report of every node heard from.
#[derive(Default)]
pub struct Nodes {
    seen: Mutex<HashMap<String, (Instant, String)>>,
}

impl Nodes {
    /// The live nodes' reports (JSON objects), this node's first.
    pub fn json(&self, state: &AppState) -> String {
        let me = crate::metrics::info_json(state);
        let mut out = format!("{{\"nodes\":[{me}");
        let mut seen = self.seen.lock();
        seen.retain(|_, (at, _)| at.elapsed() < EXPIRY);
        let mut others: Vec<(&String, &String)> = seen
            .iter()
            .filter(|(id, _)| **id != state.node_id)
            .map(|(id, (_, info))| (id, info))
            .collect();
        others.sort();
        for (_, info) in others {
            out.push(',');
            out.push_str(info);
        }
        out.push_str("]}");
        out
    }

    fn record(&self, report: &[u8]) {
        let Ok(text) = std::str::from_utf8(report) else {
            return;
        };
        #[derive(serde::Deserialize)]
        struct Head {
            node: String,
        }
        if let Ok(head) = serde_json::from_str::<Head>(text) {
            self.seen
                .lock()
                .insert(head.node, (Instant::now(), text.to_owned()));
        }
    }
}

/// Starts the heartbeat (publish this node's report) and the listener
/// (record the others'), when a Tokio runtime is running; both end with the
/// state.
pub fn start(state: &Arc<AppState>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let listener = state
        .hub
        .connect(ClientInfo::new("$server", INTERNAL).with_presence_events(false));
    if listener.subscribe(NODES_TOPIC, None).is_err()
        || listener.subscribe(CONTROL_TOPIC, None).is_err()
    {
        return;
    }
    let weak: Weak<AppState> = Arc::downgrade(state);
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        let mailbox = listener.mailbox().clone();
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let Some(state) = weak.upgrade() else { return };
                    if state.shutdown.is_triggered() {
                        return;
                    }
                    let report = crate::metrics::info_json(&state);
                    let _ = state.hub.publish(NODES_TOPIC, Payload::json_or_text(bytes::Bytes::from(report)), None);
                }
                _ = mailbox.ready() => {
                    let Some(state) = weak.upgrade() else { return };
                    if mailbox.drain(&mut batch) == 0 && mailbox.is_closed() {
                        return;
                    }
                    for d in batch.drain(..) {
                        match d {
                            Delivery::Message(p) if &*p.topic == NODES_TOPIC => {
                                state.nodes.record(&p.payload.data);
                            }
                            Delivery::Message(p) => command(&state, &p.payload.data),
                            Delivery::Presence(_) | Delivery::CatchUp(_) | Delivery::History(_) => {}
                        }
                    }
                }
            }
        }
    });
}

/// Carries out a command from another node.
fn command(state: &AppState, json: &[u8]) {
    let Ok(c) = serde_json::from_slice::<Command>(json) else {
        tracing::warn!("malformed cluster command ignored");
        return;
    };
    if c.origin == state.node_id {
        return;
    }
    if let Some(user) = c.disconnect {
        let n = state.hub.disconnect_user(&user);
        tracing::info!(%user, connections = n, from = %c.origin, "disconnected by another node's API call");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_hub::Payload;

    #[tokio::test]
    async fn node_reports_are_delivered_but_not_kept_in_history() {
        let sb = crate::Switchboard::new(crate::Config::default());
        let hub = sb.hub();
        for topic in [NODES_TOPIC, CONTROL_TOPIC] {
            hub.publish(topic, Payload::text("{}"), None).unwrap();
            assert!(hub.history(topic, 0).messages.is_empty(), "{topic}");
        }
        hub.publish("chat", Payload::text("hi"), None).unwrap();
        assert_eq!(hub.history("chat", 0).messages.len(), 1);
    }
}
