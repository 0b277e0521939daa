//! Connection state recovery (socket.io 4.6's `connectionStateRecovery`):
//! per namespace, the events sent recently, each tagged with an offset, and
//! the sessions of sockets whose transport dropped, so that a client coming
//! back in time with its `{pid, offset}` gets its socket id, rooms and data
//! back and receives the events it missed.
//!
//! The rules are Node's (`SessionAwareAdapter`): every event sent without
//! an ack id and not `volatile` (broadcasts and `socket.emit` alike) gets a
//! string offset as its last argument; a socket that disconnects for a
//! recoverable reason (transport close or error, ping timeout, forced or
//! server close) is kept for `max_disconnection_duration`; a restore needs
//! the session and the offset still stored. Beyond Node, the store is
//! bounded: at most `max_packets` events are kept (the oldest go first, and
//! a client whose offset went is simply not recovered).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchboard_engineio::Message;

use crate::adapter::{BroadcastOptions, Room};

/// Options of connection state recovery ([`Config::connection_state_recovery`](crate::Config::connection_state_recovery)).
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// How long a disconnected socket can come back (Node's
    /// `maxDisconnectionDuration`, 2 minutes); also how long events are kept.
    pub max_disconnection_duration: Duration,
    /// Whether a recovered socket skips the namespace middlewares (Node's
    /// `skipMiddlewares`, true).
    pub skip_middlewares: bool,
    /// At most this many events are kept per namespace (not in Node, which
    /// keeps everything from the last `max_disconnection_duration`).
    pub max_packets: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            max_disconnection_duration: Duration::from_secs(120),
            skip_middlewares: true,
            max_packets: 100_000,
        }
    }
}

/// An event as sent: its options (who got it) and its encoded messages.
struct Stored {
    offset: u64,
    at: Instant,
    opts: BroadcastOptions,
    messages: Vec<Message>,
}

/// A socket that lost its transport.
struct Persisted {
    sid: String,
    rooms: Vec<Room>,
    data: crate::handshake::TypeMap,
    at: Instant,
}

/// What a restore gives back.
pub(crate) struct Restored {
    pub sid: String,
    pub pid: String,
    pub rooms: Vec<Room>,
    pub data: crate::handshake::TypeMap,
    /// The last offset the client saw; [`Recovery::resume`] gives the
    /// events after it.
    pub offset: u64,
}

#[derive(Default)]
struct State {
    next_offset: u64,
    packets: VecDeque<Stored>,
    sessions: HashMap<String, Persisted>,
    /// (disconnected at, pid) in disconnection order, for expiry.
    expiry: VecDeque<(Instant, String)>,
}

/// The recovery store of one namespace.
pub(crate) struct Recovery {
    config: RecoveryConfig,
    state: Mutex<State>,
}

impl Recovery {
    pub(crate) fn new(config: RecoveryConfig) -> Self {
        Recovery {
            config,
            state: Mutex::default(),
        }
    }

    pub(crate) fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    /// Tags an event with the next offset, hands it out and stores it:
    /// `send(offset)` encodes the event with the offset as last argument,
    /// queues it to the recipients and returns its messages for the store.
    /// It runs under the store's lock, so every client sees this
    /// namespace's offsets in increasing order (a client remembers the
    /// last one it saw).
    pub(crate) fn record(
        &self,
        now: Instant,
        opts: &BroadcastOptions,
        send: impl FnOnce(&str) -> Vec<Message>,
    ) {
        let mut st = self.state.lock();
        self.prune(&mut st, now);
        let offset = st.next_offset;
        st.next_offset += 1;
        let messages = send(&offset.to_string());
        if st.packets.len() >= self.config.max_packets.max(1) {
            st.packets.pop_front();
        }
        st.packets.push_back(Stored {
            offset,
            at: now,
            opts: opts.clone(),
            messages,
        });
    }

    /// Keeps a disconnected socket for a later restore.
    pub(crate) fn persist(
        &self,
        now: Instant,
        pid: &str,
        sid: &str,
        rooms: Vec<Room>,
        data: crate::handshake::TypeMap,
    ) {
        let mut st = self.state.lock();
        self.prune(&mut st, now);
        st.sessions.insert(
            pid.to_owned(),
            Persisted {
                sid: sid.to_owned(),
                rooms,
                data,
                at: now,
            },
        );
        st.expiry.push_back((now, pid.to_owned()));
    }

    /// The session `pid`, if the client's `offset` is still stored; `None`
    /// when the session expired or is unknown, or the offset is no longer
    /// (or never was) stored. A restored session is removed: it can be
    /// restored once. The missed events come with [`resume`](Self::resume),
    /// once the socket is ready to join its rooms.
    pub(crate) fn restore(&self, now: Instant, pid: &str, offset: &str) -> Option<Restored> {
        let mut st = self.state.lock();
        self.prune(&mut st, now);
        let offset: u64 = offset.parse().ok()?;
        let stored = {
            let (a, b) = st.packets.as_slices();
            a.binary_search_by_key(&offset, |p| p.offset).is_ok()
                || b.binary_search_by_key(&offset, |p| p.offset).is_ok()
        };
        if !stored {
            return None;
        }
        let session = st.sessions.remove(pid)?;
        Some(Restored {
            sid: session.sid,
            pid: pid.to_owned(),
            rooms: session.rooms,
            data: session.data,
            offset,
        })
    }

    /// Calls `connect` with the events after `offset` meant for `rooms`
    /// (oldest first, each as its encoded messages), under the store's
    /// lock: `connect` adds the socket to the namespace and queues them, so
    /// no event recorded meanwhile falls between the missed ones and the
    /// live ones (recorded after `restore`, before the socket joined), nor
    /// reaches the client before them.
    pub(crate) fn resume(
        &self,
        offset: u64,
        rooms: &[Room],
        connect: impl FnOnce(Vec<Vec<Message>>),
    ) {
        let st = self.state.lock();
        let missed = st
            .packets
            .iter()
            .filter(|p| p.offset > offset && should_include(rooms, &p.opts))
            .map(|p| p.messages.clone())
            .collect();
        connect(missed);
    }

    /// Drops the events and sessions older than the window.
    fn prune(&self, st: &mut State, now: Instant) {
        let window = self.config.max_disconnection_duration;
        let expired = |at: Instant| now.saturating_duration_since(at) > window;
        while st.packets.front().is_some_and(|p| expired(p.at)) {
            st.packets.pop_front();
        }
        while let Some((at, _)) = st.expiry.front() {
            if !expired(*at) {
                break;
            }
            let (at, pid) = st.expiry.pop_front().expect("front exists");
            // Only if it was not persisted again since.
            if st.sessions.get(&pid).is_some_and(|s| s.at == at) {
                st.sessions.remove(&pid);
            }
        }
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let st = self.state.lock();
        (st.packets.len(), st.sessions.len())
    }
}

/// Node's `shouldIncludePacket`: the packet targeted one of the session's
/// rooms (or everyone) and excluded none of them.
pub(crate) fn should_include(session_rooms: &[Room], opts: &BroadcastOptions) -> bool {
    let included = opts.rooms.is_empty() || session_rooms.iter().any(|r| opts.rooms.contains(r));
    let excluded = session_rooms.iter().any(|r| opts.except.contains(r));
    included && !excluded
}

/// Reasons after which a session is kept (Node's
/// `RECOVERABLE_DISCONNECT_REASONS`).
pub(crate) fn is_recoverable(reason: crate::DisconnectReason) -> bool {
    use crate::DisconnectReason as R;
    matches!(
        reason,
        R::TransportError
            | R::TransportClose
            | R::ForcedClose
            | R::PingTimeout
            | R::ServerShuttingDown
            | R::ForcedServerClose
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_engineio::Utf8Bytes;

    fn opts(rooms: &[&str], except: &[&str]) -> BroadcastOptions {
        BroadcastOptions {
            rooms: rooms.iter().map(|s| s.to_string()).collect(),
            except: except.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn record(r: &Recovery, now: Instant, o: &BroadcastOptions, name: &str) -> String {
        let mut off = String::new();
        r.record(now, o, |offset| {
            off = offset.to_owned();
            vec![Message::Text(Utf8Bytes::from(format!("{name}:{offset}")))]
        });
        off
    }

    fn texts(missed: &[Vec<Message>]) -> Vec<String> {
        missed
            .iter()
            .map(|m| match &m[0] {
                Message::Text(t) => t.as_str().split(':').next().unwrap().to_owned(),
                Message::Binary(_) => "bin".into(),
            })
            .collect()
    }

    #[test]
    fn restores_rooms_data_and_only_the_missed_packets_meant_for_them() {
        let r = Recovery::new(RecoveryConfig::default());
        let t = Instant::now();
        let first = record(&r, t, &opts(&[], &[]), "seen");
        let mut data = crate::handshake::TypeMap::new();
        data.insert(7u32);
        r.persist(t, "pid1", "sid1", vec!["sid1".into(), "red".into()], data);
        record(&r, t, &opts(&[], &[]), "all");
        record(&r, t, &opts(&["red"], &[]), "red");
        record(&r, t, &opts(&["blue"], &[]), "blue");
        record(&r, t, &opts(&[], &["red"]), "not-red");
        record(&r, t, &opts(&["sid1"], &[]), "private");
        let got = r.restore(t, "pid1", &first).expect("restored");
        assert_eq!(got.sid, "sid1");
        assert_eq!(got.rooms, vec!["sid1".to_owned(), "red".to_owned()]);
        assert_eq!(got.data.get::<u32>(), Some(&7));
        assert_eq!(texts(&missed(&r, &got)), ["all", "red", "private"]);
        // Once only.
        assert!(r.restore(t, "pid1", &first).is_none());
    }

    fn missed(r: &Recovery, got: &Restored) -> Vec<Vec<Message>> {
        let mut out = Vec::new();
        r.resume(got.offset, &got.rooms, |m| out = m);
        out
    }

    #[test]
    fn an_event_recorded_between_restore_and_resume_is_among_the_missed() {
        // The socket is restored on CONNECT but joins its rooms later
        // (`resume`, from finish_connect): an event sent in between reaches
        // no live socket, so it must be among the missed ones.
        let r = Recovery::new(RecoveryConfig::default());
        let t = Instant::now();
        let seen = record(&r, t, &opts(&[], &[]), "seen");
        r.persist(
            t,
            "p",
            "s",
            vec!["s".into()],
            crate::handshake::TypeMap::new(),
        );
        record(&r, t, &opts(&[], &[]), "before");
        let got = r.restore(t, "p", &seen).expect("restored");
        record(&r, t, &opts(&[], &[]), "between");
        record(&r, t, &opts(&["other"], &[]), "elsewhere");
        assert_eq!(texts(&missed(&r, &got)), ["before", "between"]);
    }

    #[test]
    fn unknown_pid_or_offset_is_not_restored() {
        let r = Recovery::new(RecoveryConfig::default());
        let t = Instant::now();
        let off = record(&r, t, &opts(&[], &[]), "a");
        r.persist(t, "p", "s", vec![], crate::handshake::TypeMap::new());
        assert!(r.restore(t, "nope", &off).is_none());
        assert!(r.restore(t, "p", "999").is_none());
        assert!(r.restore(t, "p", "not a number").is_none());
        // The session survived the failed attempts.
        assert!(r.restore(t, "p", &off).is_some());
    }

    #[test]
    fn sessions_and_packets_expire() {
        let r = Recovery::new(RecoveryConfig {
            max_disconnection_duration: Duration::from_secs(10),
            ..RecoveryConfig::default()
        });
        let t = Instant::now();
        let off = record(&r, t, &opts(&[], &[]), "a");
        r.persist(t, "p", "s", vec![], crate::handshake::TypeMap::new());
        record(&r, t + Duration::from_secs(5), &opts(&[], &[]), "b");
        assert_eq!(r.sizes(), (2, 1));
        assert!(r.restore(t + Duration::from_secs(11), "p", &off).is_none());
        assert_eq!(r.sizes(), (1, 0));
    }

    #[test]
    fn a_repersisted_session_is_not_expired_by_its_old_entry() {
        let r = Recovery::new(RecoveryConfig {
            max_disconnection_duration: Duration::from_secs(10),
            ..RecoveryConfig::default()
        });
        let t = Instant::now();
        r.persist(t, "p", "s", vec![], crate::handshake::TypeMap::new());
        r.persist(
            t + Duration::from_secs(8),
            "p",
            "s",
            vec![],
            crate::handshake::TypeMap::new(),
        );
        let off = record(&r, t + Duration::from_secs(12), &opts(&[], &[]), "a");
        assert_eq!(r.sizes(), (1, 1));
        assert!(r.restore(t + Duration::from_secs(12), "p", &off).is_some());
    }

    #[test]
    fn the_store_is_bounded() {
        let r = Recovery::new(RecoveryConfig {
            max_packets: 3,
            ..RecoveryConfig::default()
        });
        let t = Instant::now();
        let first = record(&r, t, &opts(&[], &[]), "a");
        r.persist(t, "p", "s", vec![], crate::handshake::TypeMap::new());
        for _ in 0..3 {
            record(&r, t, &opts(&[], &[]), "x");
        }
        assert_eq!(r.sizes(), (3, 1));
        // The offset fell out of the store: not recoverable.
        assert!(r.restore(t, "p", &first).is_none());
    }

    #[test]
    fn recoverable_reasons_are_nodes() {
        use crate::DisconnectReason as R;
        assert!(is_recoverable(R::TransportClose));
        assert!(is_recoverable(R::PingTimeout));
        assert!(!is_recoverable(R::ClientNamespaceDisconnect));
        assert!(!is_recoverable(R::ServerNamespaceDisconnect));
        assert!(!is_recoverable(R::ParseError));
    }
}
