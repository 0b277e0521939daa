//! Recorded events a node missed while its subscription was down
//! (connection state recovery across nodes): how far each namespace's
//! sockets got in the namespace's stream ([`Positions`]), the check that
//! hands every recorded event to the namespace once ([`deliver`]), and the
//! catch-up read after the subscriber link is back ([`catch_up`]).
//! Recording and restores are [`recovery`](super::recovery)'s.
//!
//! * **Position**: per namespace, the stream id of the last RECORDED
//!   message this node received (delivered, or passed over as another
//!   node's `local` event). One at or below it is a duplicate, dropped.
//! * **Catch-up**: once the subscriber link is subscribed again, before it
//!   handles anything that arrives, it reads each namespace's stream from
//!   its position (`XRANGE key position + COUNT n`, pages; inclusive, which
//!   any Redis takes, and the position coming back first shows that
//!   nothing between was trimmed) and delivers the entries through the same
//!   check. What is published meanwhile waits in the subscription, in
//!   order, and what the read gave too is then dropped as a duplicate: no
//!   gap, nothing twice. Nothing is read at the first subscription (no
//!   position yet: a fresh node's sockets cannot have missed anything), nor
//!   for a namespace without one.
//! * **Restored sockets**: a socket restored with the entries up to some
//!   id (the store's read runs ahead of this node's subscription, and goes
//!   on while it is down) is not sent those again when the live messages or
//!   a catch-up bring them after it joined.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;
use redis::{ErrorKind, RedisError, RedisResult, RetryMethod};
use switchboard_socketio::{BroadcastOptions, EncodedPacket, Namespace};

use super::cluster::Shared;
use super::recovery::{entry_message, stream_key, StreamEntry};
use super::wire::{Body, Message};

/// Entries per `XRANGE` of a catch-up.
const PAGE: usize = 512;

/// A stream entry id (`ms-seq`; `ms` alone is `ms-0`), ordered as Redis
/// orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StreamId(u64, u64);

impl StreamId {
    /// `None` if `s` is not one.
    pub(crate) fn parse(s: &str) -> Option<StreamId> {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        let number = |x: &str| match x.bytes().all(|c| c.is_ascii_digit()) {
            true => x.parse().ok(),
            false => None,
        };
        Some(StreamId(number(ms)?, number(seq)?))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// Each namespace's position in its stream, and the sockets restored ahead
/// of it.
#[derive(Debug, Default)]
pub(crate) struct Positions(Mutex<HashMap<String, Position>>);

#[derive(Debug, Default)]
struct Position {
    /// The last entry received, if any.
    last: Option<StreamId>,
    /// Sockets restored with the entries up to an id after `last`.
    restored: Vec<(String, StreamId)>,
}

impl Positions {
    /// Makes entry `id` namespace `ns`'s position and runs `deliver` with
    /// the ids of the sockets restored with it already, unless it is not
    /// after the position (`None`: a duplicate). Under the lock, so that a
    /// restore registered meanwhile ([`restored`](Self::restored)) comes
    /// either before (its socket excluded) or after (its socket joins after
    /// the delivery).
    pub(crate) fn admit<R>(
        &self,
        ns: &str,
        id: StreamId,
        deliver: impl FnOnce(&[String]) -> R,
    ) -> Option<R> {
        let mut all = self.0.lock();
        let p = match all.get_mut(ns) {
            Some(p) => p,
            None => all.entry(ns.to_owned()).or_default(),
        };
        if p.last.is_some_and(|last| id <= last) {
            return None;
        }
        p.last = Some(id);
        if p.restored.is_empty() {
            return Some(deliver(&[]));
        }
        let have_it: Vec<String> = p
            .restored
            .iter()
            .filter(|(_, upto)| id <= *upto)
            .map(|(sid, _)| sid.clone())
            .collect();
        p.restored.retain(|(_, upto)| *upto > id);
        Some(deliver(&have_it))
    }

    /// Socket `sid` of `ns` is being restored with the entries up to
    /// `upto` (before it joins): it is not sent those again.
    pub(crate) fn restored(&self, ns: &str, sid: &str, upto: StreamId) {
        let mut all = self.0.lock();
        let p = all.entry(ns.to_owned()).or_default();
        if p.last.is_some_and(|last| upto <= last) {
            return; // every later delivery is after `upto`
        }
        p.restored.retain(|(s, _)| s != sid);
        p.restored.push((sid.to_owned(), upto));
    }

    /// The namespaces with a position, and their positions.
    pub(crate) fn resume_points(&self) -> Vec<(String, StreamId)> {
        let all = self.0.lock();
        all.iter()
            .filter_map(|(ns, p)| Some((ns.clone(), p.last?)))
            .collect()
    }
}

/// Hands recorded event `offset` of `ns` to the namespace, without the
/// sockets restored with it, unless it was received before; `for_here`
/// is false for another node's `local` event (only its position counts).
/// `true` if handed over.
pub(crate) fn deliver(
    shared: &Shared,
    ns: &Namespace,
    offset: &str,
    mut opts: BroadcastOptions,
    for_here: bool,
    packet: EncodedPacket,
) -> bool {
    let Some(id) = StreamId::parse(offset) else {
        tracing::debug!(ns = %ns.name(), offset, "recorded event dropped: not a stream id");
        return false;
    };
    let admitted = shared.positions.admit(ns.name(), id, |have_it| {
        if !for_here {
            return false;
        }
        opts.except.extend_from_slice(have_it);
        ns.deliver_recorded(&opts, offset, packet);
        true
    });
    admitted.unwrap_or(false)
}

/// After the subscriber link subscribed again: delivers what each
/// namespace's stream holds after its position (module docs). `Err`:
/// Redis could not be read; the link reconnects and this runs again (what
/// was delivered is not delivered twice).
pub(crate) async fn catch_up(shared: &Shared) -> Result<(), String> {
    let points = shared.positions.resume_points();
    if points.is_empty() {
        return Ok(());
    }
    let Some(io) = shared.io() else {
        return Ok(());
    };
    shared.stats.resyncs.fetch_add(1, Relaxed);
    for (name, from) in points {
        if let Some(ns) = io.get_ns(&name) {
            catch_up_ns(shared, &ns, from).await?;
        }
    }
    Ok(())
}

async fn catch_up_ns(shared: &Shared, ns: &Namespace, from: StreamId) -> Result<(), String> {
    let key = stream_key(&shared.config.prefix, ns.name());
    let mut start = from;
    let mut delivered = 0;
    loop {
        let page = match read(shared, &key, start).await {
            Ok(page) => page,
            Err(e) if matches!(e.retry_method(), RetryMethod::NoRetry) && !e.is_io_error() => {
                // Refused, not unreachable: trying again would not help.
                tracing::warn!(
                    ns = %ns.name(),
                    "socket.io cluster: cannot read back the events recorded while this node's \
                     subscription was down; its sockets miss them: {e}"
                );
                break;
            }
            Err(e) => return Err(format!("XRANGE {key}: {e}")),
        };
        if start == from && page.first().is_some_and(|(id, _)| id_is_not(id, from)) {
            tracing::warn!(
                ns = %ns.name(),
                position = %from,
                "socket.io cluster: the stream no longer holds this node's position (trimmed, \
                 or Redis restarted empty): its sockets miss the events recorded while its \
                 subscription was down that the stream no longer holds"
            );
        }
        let full = page.len() == PAGE;
        let mut next = start;
        for (id, fields) in page {
            let Some(entry_id) = StreamId::parse(&id) else {
                shared.stats.decode_errors.fetch_add(1, Relaxed);
                continue;
            };
            next = next.max(entry_id);
            match entry_message(&id, fields) {
                Some(Message {
                    node_id,
                    body:
                        Body::Recorded {
                            ns: name,
                            opts,
                            local,
                            packet,
                            ..
                        },
                }) if name == ns.name() => {
                    let for_here = !local || node_id == shared.node_id;
                    if deliver(shared, ns, &id, opts, for_here, packet) {
                        shared.stats.resynced.fetch_add(1, Relaxed);
                        delivered += 1;
                    }
                }
                _ => {
                    shared.stats.decode_errors.fetch_add(1, Relaxed);
                }
            }
        }
        if !full || next == start {
            break;
        }
        start = next;
    }
    if delivered > 0 {
        tracing::info!(
            ns = %ns.name(),
            delivered,
            "socket.io cluster: delivered the events recorded while this node's subscription \
             was down"
        );
    }
    Ok(())
}

/// `id` is a stream id other than `expected`.
fn id_is_not(id: &str, expected: StreamId) -> bool {
    StreamId::parse(id) != Some(expected)
}

/// One page of `key` from `start` (included), on the reading connection;
/// once more on a new connection if that fails (the kept one may have died
/// with the outage).
async fn read(shared: &Shared, key: &str, start: StreamId) -> RedisResult<Vec<StreamEntry>> {
    let mut retried = false;
    loop {
        let query = async {
            let mut conn = shared.reader().await?;
            redis::cmd("XRANGE")
                .arg(key)
                .arg(start.to_string())
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async::<Vec<StreamEntry>>(&mut conn)
                .await
        };
        let result = match tokio::time::timeout(shared.config.command_timeout(), query).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::from((ErrorKind::Io, "timed out"))),
        };
        match result {
            Ok(page) => return Ok(page),
            Err(e) => {
                *shared.reader.lock() = None;
                if retried {
                    return Err(e);
                }
                retried = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> StreamId {
        StreamId::parse(s).unwrap()
    }

    /// Admits `ids` of namespace `ns` in turn: those handed over, each with
    /// the sockets left out.
    fn admit_all(p: &Positions, ns: &str, ids: &[&str]) -> Vec<(String, Vec<String>)> {
        ids.iter()
            .filter_map(|s| p.admit(ns, id(s), |have| (s.to_string(), have.to_vec())))
            .collect()
    }

    fn ids(got: &[(String, Vec<String>)]) -> Vec<&str> {
        got.iter().map(|(i, _)| i.as_str()).collect()
    }

    #[test]
    fn stream_ids_parse_print_and_order_as_redis_does() {
        assert_eq!(id("5"), id("5-0"));
        assert_eq!(id("1700000000000-3").to_string(), "1700000000000-3");
        assert!(id("1-10") > id("1-9"));
        assert!(id("2-0") > id("1-99"));
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "a-1",
            "1-b",
            "+1",
            "1-+2",
            "1-2-3",
            "99999999999999999999",
        ] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn what_was_read_back_and_what_waited_live_are_delivered_once_in_order() {
        let p = Positions::default();
        assert!(
            p.resume_points().is_empty(),
            "nothing to read before any event"
        );
        assert_eq!(ids(&admit_all(&p, "/", &["1-0", "2-0"])), ["1-0", "2-0"]);
        assert_eq!(p.resume_points(), [("/".to_owned(), id("2-0"))]);
        // The catch-up reads from the position, itself included; meanwhile
        // 4 and 5 were published and wait in the subscription.
        let read = admit_all(&p, "/", &["2-0", "3-0", "4-0", "5-0"]);
        let live = admit_all(&p, "/", &["4-0", "5-0", "6-0"]);
        assert_eq!(ids(&read), ["3-0", "4-0", "5-0"]);
        assert_eq!(ids(&live), ["6-0"]);
        // Older or repeated ones are dropped; other namespaces are apart.
        assert!(admit_all(&p, "/", &["1-5", "6-0", "6"]).is_empty());
        assert_eq!(ids(&admit_all(&p, "/chat", &["3-0"])), ["3-0"]);
        let mut points = p.resume_points();
        points.sort();
        assert_eq!(
            points,
            [("/".to_owned(), id("6-0")), ("/chat".to_owned(), id("3-0"))]
        );
    }

    #[test]
    fn a_socket_restored_ahead_of_the_position_is_not_sent_what_it_has() {
        let p = Positions::default();
        admit_all(&p, "/", &["2-0"]);
        p.restored("/", "s1", id("4-0"));
        p.restored("/", "s2", id("3-0"));
        p.restored("/", "old", id("2-0")); // behind the position: nothing to leave out
        let got = admit_all(&p, "/", &["3-0", "4-0", "5-0"]);
        let left_out: Vec<Vec<String>> = got.into_iter().map(|(_, have)| have).collect();
        assert_eq!(left_out, [vec!["s1", "s2"], vec!["s1"], vec![]]);
        assert!(p.0.lock()["/"].restored.is_empty(), "forgotten once passed");

        // Restored again further on: the newer extent replaces the older.
        p.restored("/", "s1", id("6-0"));
        p.restored("/", "s1", id("7-0"));
        let left_out: Vec<Vec<String>> = admit_all(&p, "/", &["7-0", "8-0"])
            .into_iter()
            .map(|(_, have)| have)
            .collect();
        assert_eq!(left_out, [vec!["s1"], vec![]]);

        // Restored before this node received anything: no position to read
        // from, but the live messages still leave it out.
        let fresh = Positions::default();
        fresh.restored("/", "s3", id("9-0"));
        assert!(fresh.resume_points().is_empty());
        assert_eq!(admit_all(&fresh, "/", &["9-0"])[0].1, ["s3"]);
    }
}
