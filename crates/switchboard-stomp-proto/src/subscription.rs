//! The per-connection subscription table: ids, destinations, [`AckMode`]s
//! and the messages each subscription still has to acknowledge. Routing
//! messages to subscriptions is the hub's job, not this module's.

use std::collections::{BTreeSet, HashMap};

use crate::version::Version;

/// How a subscription's messages are acknowledged (SUBSCRIBE `ack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AckMode {
    /// No acknowledgement; a message counts as delivered once sent.
    #[default]
    Auto,
    /// Cumulative: an ACK/NACK covers the named message and every earlier
    /// unacknowledged message of the subscription.
    Client,
    /// Per message: an ACK/NACK covers only the named message (1.1+).
    ClientIndividual,
}

impl AckMode {
    /// Parses an `ack` header value; `client-individual` needs 1.1+.
    ///
    /// ```
    /// use switchboard_stomp_proto::{AckMode, Version};
    /// assert_eq!(AckMode::parse("client", Version::V1_0), Some(AckMode::Client));
    /// assert_eq!(AckMode::parse("client-individual", Version::V1_0), None);
    /// ```
    pub fn parse(value: &str, version: Version) -> Option<AckMode> {
        match value {
            "auto" => Some(AckMode::Auto),
            "client" => Some(AckMode::Client),
            "client-individual" if version >= Version::V1_1 => Some(AckMode::ClientIndividual),
            _ => None,
        }
    }

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Client => "client",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

/// One active subscription.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) destination: String,
    pub(crate) ack: AckMode,
    /// False for a 1.0 SUBSCRIBE without `id` (the destination serves as
    /// the id and MESSAGE frames carry no `subscription` header).
    pub(crate) explicit_id: bool,
    /// Message ids sent and not yet acknowledged (non-auto modes only).
    unacked: BTreeSet<u64>,
}

/// The subscriptions of one connection, with an index from unacknowledged
/// message id to subscription id (1.2 ACK frames name only the message).
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    by_id: HashMap<String, Subscription>,
    owner: HashMap<u64, String>,
}

impl Subscriptions {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Subscription> {
        self.by_id.get(id)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    pub(crate) fn insert(
        &mut self,
        id: String,
        destination: String,
        ack: AckMode,
        explicit_id: bool,
    ) {
        self.by_id.insert(
            id,
            Subscription {
                destination,
                ack,
                explicit_id,
                unacked: BTreeSet::new(),
            },
        );
    }

    /// Removes a subscription; returns its destination and the ids of its
    /// unacknowledged messages.
    pub(crate) fn remove(&mut self, id: &str) -> Option<(String, Vec<u64>)> {
        let sub = self.by_id.remove(id)?;
        for m in &sub.unacked {
            self.owner.remove(m);
        }
        Some((sub.destination, sub.unacked.into_iter().collect()))
    }

    /// Notes that message `message_id` was sent on subscription `id` and
    /// awaits acknowledgement (a no-op for `auto` subscriptions).
    pub(crate) fn record(&mut self, id: &str, message_id: u64) {
        if let Some(sub) = self.by_id.get_mut(id) {
            if sub.ack != AckMode::Auto {
                sub.unacked.insert(message_id);
                self.owner.insert(message_id, id.to_owned());
            }
        }
    }

    /// Number of unacknowledged messages of subscription `id`.
    pub(crate) fn unacked(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).map(|s| s.unacked.len())
    }

    /// Acknowledges (or NACKs) `message_id`, optionally checking that it
    /// belongs to `subscription`. Returns the subscription id and every
    /// message id covered (cumulative in `client` mode), oldest first, or
    /// `None` if the message does not await acknowledgement.
    pub(crate) fn ack(
        &mut self,
        subscription: Option<&str>,
        message_id: u64,
    ) -> Option<(String, Vec<u64>)> {
        let owner = self.owner.get(&message_id)?;
        if subscription.is_some_and(|s| s != owner) {
            return None;
        }
        let owner = owner.clone();
        let sub = self.by_id.get_mut(&owner)?;
        let covered: Vec<u64> = match sub.ack {
            AckMode::Client => {
                let newer = sub.unacked.split_off(&(message_id + 1));
                let older = std::mem::replace(&mut sub.unacked, newer);
                older.into_iter().collect()
            }
            _ => {
                sub.unacked.remove(&message_id);
                vec![message_id]
            }
        };
        for m in &covered {
            self.owner.remove(m);
        }
        Some((owner, covered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_mode_parse() {
        for v in Version::ALL {
            assert_eq!(AckMode::parse("auto", v), Some(AckMode::Auto));
            assert_eq!(AckMode::parse("client", v), Some(AckMode::Client));
            assert_eq!(AckMode::parse("bogus", v), None);
        }
        assert_eq!(
            AckMode::parse("client-individual", Version::V1_1),
            Some(AckMode::ClientIndividual)
        );
        for m in [AckMode::Auto, AckMode::Client, AckMode::ClientIndividual] {
            assert_eq!(AckMode::parse(m.as_str(), Version::V1_2), Some(m));
        }
    }

    #[test]
    fn client_mode_is_cumulative() {
        let mut s = Subscriptions::default();
        s.insert("a".into(), "/d".into(), AckMode::Client, true);
        for m in 1..=4 {
            s.record("a", m);
        }
        assert_eq!(s.ack(None, 3), Some(("a".into(), vec![1, 2, 3])));
        assert_eq!(s.unacked("a"), Some(1));
        assert_eq!(s.ack(None, 2), None);
        assert_eq!(s.ack(Some("b"), 4), None);
        assert_eq!(s.ack(Some("a"), 4), Some(("a".into(), vec![4])));
    }

    #[test]
    fn individual_mode_and_auto() {
        let mut s = Subscriptions::default();
        s.insert("i".into(), "/d".into(), AckMode::ClientIndividual, true);
        s.insert("x".into(), "/d".into(), AckMode::Auto, true);
        s.record("i", 1);
        s.record("i", 2);
        s.record("x", 3);
        assert_eq!(s.unacked("x"), Some(0));
        assert_eq!(s.ack(None, 2), Some(("i".into(), vec![2])));
        assert_eq!(s.ack(None, 3), None);
        assert_eq!(s.remove("i"), Some(("/d".into(), vec![1])));
        assert_eq!(s.ack(None, 1), None);
        assert_eq!(s.len(), 1);
    }
}
