//! Room membership: the [`Adapter`] trait (one instance per namespace) and
//! its in-memory implementation [`LocalAdapter`] (socket.io-adapter's
//! `InMemoryAdapter`).
//!
//! The adapter only tracks who is in which room on this node; the
//! namespace does the fan-out to its local sockets. Other nodes are the
//! business of a [`Cluster`](crate::Cluster), which carries the
//! [`BroadcastOptions`] and lets each node apply them to its own adapter.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use switchboard_transport::Shrink;

use parking_lot::RwLock;

/// A room name. Every socket is in the room named by its own id.
pub type Room = String;

/// Which sockets a broadcast reaches: those in any of `rooms` (all sockets
/// when empty), minus those in any of `except`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastOptions {
    /// Target rooms (union); empty means every socket of the namespace.
    pub rooms: Vec<Room>,
    /// Excluded rooms.
    pub except: Vec<Room>,
}

/// Room bookkeeping for one namespace.
pub trait Adapter: Send + Sync + 'static {
    /// Adds socket `sid` to `rooms` (the socket's own copy of its id: an
    /// adapter that keeps it shares it).
    fn add_all(&self, sid: &Arc<str>, rooms: &[Room]);
    /// Removes socket `sid` from `room`.
    fn del(&self, sid: &str, room: &str);
    /// Removes socket `sid` from every room.
    fn del_all(&self, sid: &str);
    /// The rooms socket `sid` is in.
    fn socket_rooms(&self, sid: &str) -> Vec<Room>;
    /// The ids of the sockets `opts` selects.
    fn sockets(&self, opts: &BroadcastOptions) -> Vec<String>;
    /// Calls `f` with the id of each socket `opts` selects, without
    /// collecting them (the broadcast path). `f` must not call back into
    /// the adapter. The default goes through [`sockets`](Self::sockets).
    fn for_each_socket(&self, opts: &BroadcastOptions, f: &mut dyn FnMut(&str)) {
        for s in self.sockets(opts) {
            f(&s);
        }
    }
    /// Every room with at least one socket.
    fn rooms(&self) -> Vec<Room>;
}

/// The in-memory adapter: two maps (room → sids, sid → rooms) behind one
/// lock. A socket's own room (named by its id, which every socket joins)
/// is implicit: a flag in the socket's entry instead of a one-element set
/// on each side (about 400 bytes per idle socket).
#[derive(Debug, Default)]
pub struct LocalAdapter {
    inner: RwLock<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    /// Rooms other than sockets' own rooms (see [`Member::own`]).
    rooms: HashMap<Room, HashSet<Arc<str>>>,
    /// Keyed by the sockets' own copies of their ids.
    sids: HashMap<Arc<str>, Member>,
}

/// One socket's rooms.
#[derive(Debug, Default)]
struct Member {
    /// In the room named by its own id (kept out of `rooms` and of
    /// [`Maps::rooms`]).
    own: bool,
    /// Every other room it is in; boxed, `None` when none (most sockets:
    /// the map's entry then takes 40 bytes instead of 80).
    #[allow(clippy::box_collection)] // the box is the point: see above
    rooms: Option<Box<HashSet<Room>>>,
}

impl Maps {
    /// Calls `f` with each socket in `room`: those that joined it, and the
    /// socket whose id it is (unless that one left it).
    fn for_each_member<'a>(&'a self, room: &str, mut f: impl FnMut(&'a str)) {
        if let Some((sid, m)) = self.sids.get_key_value(room) {
            if m.own {
                f(sid);
            }
        }
        for s in self.rooms.get(room).into_iter().flatten() {
            f(s);
        }
    }

    /// Removes `sid` from `room`, an entry of [`Maps::rooms`].
    fn leave_shared(&mut self, sid: &str, room: &str) {
        if let Some(set) = self.rooms.get_mut(room) {
            set.remove(sid);
            set.shrink_when_sparse();
            if set.is_empty() {
                self.rooms.remove(room);
            }
        }
    }
}

impl LocalAdapter {
    /// An empty adapter.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Adapter for LocalAdapter {
    fn add_all(&self, sid: &Arc<str>, rooms: &[Room]) {
        let mut m = self.inner.write();
        let member = match m.sids.get_mut(&**sid) {
            Some(member) => member,
            None => m.sids.entry(sid.clone()).or_default(),
        };
        let mut shared = Vec::new();
        for r in rooms {
            if **r == **sid {
                member.own = true;
            } else if member
                .rooms
                .get_or_insert_with(Default::default)
                .insert(r.clone())
            {
                shared.push(r);
            }
        }
        for r in shared {
            m.rooms.entry(r.clone()).or_default().insert(sid.clone());
        }
    }

    fn del(&self, sid: &str, room: &str) {
        let mut m = self.inner.write();
        let Some(member) = m.sids.get_mut(sid) else {
            return;
        };
        if room == sid {
            member.own = false;
            return;
        }
        let Some(rooms) = member.rooms.as_mut() else {
            return;
        };
        if rooms.remove(room) {
            if rooms.is_empty() {
                member.rooms = None;
            } else {
                rooms.shrink_when_sparse();
            }
            m.leave_shared(sid, room);
            m.rooms.shrink_when_sparse();
        }
    }

    fn del_all(&self, sid: &str) {
        let mut m = self.inner.write();
        let Some(member) = m.sids.remove(sid) else {
            return;
        };
        m.sids.shrink_when_sparse();
        for r in member.rooms.into_iter().flat_map(|r| *r) {
            m.leave_shared(sid, &r);
        }
        m.rooms.shrink_when_sparse();
    }

    fn socket_rooms(&self, sid: &str) -> Vec<Room> {
        let m = self.inner.read();
        let Some(member) = m.sids.get(sid) else {
            return Vec::new();
        };
        let own = member.own.then(|| sid.to_owned());
        own.into_iter()
            .chain(member.rooms.iter().flat_map(|r| r.iter()).cloned())
            .collect()
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_socket(opts, &mut |s| out.push(s.to_owned()));
        out
    }

    fn for_each_socket(&self, opts: &BroadcastOptions, f: &mut dyn FnMut(&str)) {
        let m = self.inner.read();
        let mut excluded: HashSet<&str> = HashSet::new();
        for r in &opts.except {
            m.for_each_member(r, |s| {
                excluded.insert(s);
            });
        }
        let mut visit = |s: &str| {
            if !excluded.contains(s) {
                f(s)
            }
        };
        match opts.rooms.as_slice() {
            [] => m.sids.keys().for_each(|s| visit(s)),
            [room] => m.for_each_member(room, visit),
            rooms => {
                // A socket in several of the rooms is visited once.
                let mut seen = HashSet::new();
                for r in rooms {
                    m.for_each_member(r, |s| {
                        if seen.insert(s) {
                            visit(s);
                        }
                    });
                }
            }
        }
    }

    fn rooms(&self) -> Vec<Room> {
        let m = self.inner.read();
        let own = m.sids.iter().filter(|(_, member)| member.own);
        // A socket's id can also name a room others joined: listed once.
        own.filter(|(sid, _)| !m.rooms.contains_key(&***sid))
            .map(|(sid, _)| sid.to_string())
            .chain(m.rooms.keys().cloned())
            .collect()
    }
}

/// Anything that names one or more rooms: `&str`, `String`, a `Vec` or
/// array or slice of those.
pub trait IntoRooms {
    /// The room names.
    fn into_rooms(self) -> Vec<Room>;
}

impl IntoRooms for &str {
    fn into_rooms(self) -> Vec<Room> {
        vec![self.to_owned()]
    }
}
impl IntoRooms for String {
    fn into_rooms(self) -> Vec<Room> {
        vec![self]
    }
}
impl IntoRooms for &String {
    fn into_rooms(self) -> Vec<Room> {
        vec![self.clone()]
    }
}
impl IntoRooms for Vec<String> {
    fn into_rooms(self) -> Vec<Room> {
        self
    }
}
impl IntoRooms for Vec<&str> {
    fn into_rooms(self) -> Vec<Room> {
        self.into_iter().map(str::to_owned).collect()
    }
}
impl IntoRooms for &[&str] {
    fn into_rooms(self) -> Vec<Room> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}
impl<const N: usize> IntoRooms for [&str; N] {
    fn into_rooms(self) -> Vec<Room> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_and_selection() {
        let a = LocalAdapter::new();
        a.add_all(&Arc::from("s1"), &["s1".into(), "r".into()]);
        a.add_all(&Arc::from("s2"), &["s2".into(), "r".into()]);
        a.add_all(&Arc::from("s3"), &["s3".into()]);
        let mut all = a.sockets(&BroadcastOptions::default());
        all.sort();
        assert_eq!(all, ["s1", "s2", "s3"]);
        let mut r = a.sockets(&BroadcastOptions {
            rooms: vec!["r".into(), "s3".into()],
            except: vec!["s2".into()],
        });
        r.sort();
        assert_eq!(r, ["s1", "s3"]);
        a.del("s1", "r");
        assert_eq!(
            a.sockets(&BroadcastOptions {
                rooms: vec!["r".into()],
                ..Default::default()
            }),
            ["s2"]
        );
        a.del_all("s2");
        let mut rooms = a.rooms();
        rooms.sort();
        assert_eq!(rooms, ["s1", "s3"]);
        assert_eq!(a.socket_rooms("s1"), ["s1"]);
    }

    #[test]
    fn own_rooms_are_rooms_like_any_other() {
        let a = LocalAdapter::new();
        a.add_all(&Arc::from("s1"), &["s1".into()]);
        a.add_all(&Arc::from("s2"), &["s2".into(), "s1".into()]);
        a.add_all(&Arc::from("s3"), &["s3".into(), "r".into()]);
        let sel = |rooms: &[&str], except: &[&str]| {
            let mut v = a.sockets(&BroadcastOptions {
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
                except: except.iter().map(|r| r.to_string()).collect(),
            });
            v.sort();
            v
        };
        // s2 joined the room named by s1's id: both are in it.
        assert_eq!(sel(&["s1"], &[]), ["s1", "s2"]);
        assert_eq!(sel(&["s1", "s2", "r"], &[]), ["s1", "s2", "s3"]);
        assert_eq!(sel(&[], &["s1"]), ["s3"]);
        assert_eq!(sel(&["r", "s2"], &["s3"]), ["s2"]);
        let mut rooms = a.rooms();
        rooms.sort();
        assert_eq!(rooms, ["r", "s1", "s2", "s3"]);
        let mut s2 = a.socket_rooms("s2");
        s2.sort();
        assert_eq!(s2, ["s1", "s2"]);

        // Leaving its own room: still a socket of the namespace.
        a.del("s1", "s1");
        assert_eq!(sel(&["s1"], &[]), ["s2"]);
        assert_eq!(sel(&[], &[]), ["s1", "s2", "s3"]);
        assert!(a.socket_rooms("s1").is_empty());
        a.add_all(&Arc::from("s1"), &["s1".into()]);
        assert_eq!(a.socket_rooms("s1"), ["s1"]);

        // Gone: out of every room, its own included.
        a.del_all("s1");
        assert_eq!(sel(&["s1"], &[]), ["s2"]);
        a.del_all("s2");
        assert_eq!(sel(&["s1"], &[]), Vec::<String>::new());
        let mut rooms = a.rooms();
        rooms.sort();
        assert_eq!(rooms, ["r", "s3"]);
        a.del("s3", "r");
        assert_eq!(a.rooms(), ["s3"]);
        assert!(a.inner.read().rooms.is_empty());
        // In no shared room: its entry holds no set.
        assert!(a.inner.read().sids["s3"].rooms.is_none());
        a.add_all(&Arc::from("s3"), &["x".into()]);
        assert_eq!(a.socket_rooms("s3"), ["s3", "x"]);
        a.del("s3", "x");
        assert!(a.inner.read().sids["s3"].rooms.is_none());
    }
}
