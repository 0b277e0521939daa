//! Room membership: the [`Adapter`] trait (one instance per namespace) and
//! its in-memory implementation [`LocalAdapter`] (socket.io-adapter's
//! `InMemoryAdapter`).
//!
//! The adapter only tracks who is in which room on this node; the
//! namespace does the fan-out to its local sockets. Other nodes are the
//! business of a [`Cluster`](crate::Cluster), which carries the
//! [`BroadcastOptions`] and lets each node apply them to its own adapter.

use std::collections::{HashMap, HashSet};
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
    /// Adds socket `sid` to `rooms`.
    fn add_all(&self, sid: &str, rooms: &[Room]);
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
/// lock.
#[derive(Debug, Default)]
pub struct LocalAdapter {
    inner: RwLock<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    rooms: HashMap<Room, HashSet<String>>,
    sids: HashMap<String, HashSet<Room>>,
}

impl LocalAdapter {
    /// An empty adapter.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Adapter for LocalAdapter {
    fn add_all(&self, sid: &str, rooms: &[Room]) {
        let mut m = self.inner.write();
        let own = m.sids.entry(sid.to_owned()).or_default();
        for r in rooms {
            own.insert(r.clone());
        }
        for r in rooms {
            m.rooms.entry(r.clone()).or_default().insert(sid.to_owned());
        }
    }

    fn del(&self, sid: &str, room: &str) {
        let mut m = self.inner.write();
        if let Some(own) = m.sids.get_mut(sid) {
            own.remove(room);
        }
        if let Some(set) = m.rooms.get_mut(room) {
            set.remove(sid);
            set.shrink_when_sparse();
            if set.is_empty() {
                m.rooms.remove(room);
                m.rooms.shrink_when_sparse();
            }
        }
    }

    fn del_all(&self, sid: &str) {
        let mut m = self.inner.write();
        let Some(own) = m.sids.remove(sid) else {
            return;
        };
        m.sids.shrink_when_sparse();
        for r in own {
            if let Some(set) = m.rooms.get_mut(&r) {
                set.remove(sid);
                set.shrink_when_sparse();
                if set.is_empty() {
                    m.rooms.remove(&r);
                }
            }
        }
        m.rooms.shrink_when_sparse();
    }

    fn socket_rooms(&self, sid: &str) -> Vec<Room> {
        let m = self.inner.read();
        m.sids
            .get(sid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_socket(opts, &mut |s| out.push(s.to_owned()));
        out
    }

    fn for_each_socket(&self, opts: &BroadcastOptions, f: &mut dyn FnMut(&str)) {
        let m = self.inner.read();
        let excluded: HashSet<&str> = opts
            .except
            .iter()
            .filter_map(|r| m.rooms.get(r))
            .flatten()
            .map(String::as_str)
            .collect();
        let mut visit = |s: &str| {
            if !excluded.contains(s) {
                f(s)
            }
        };
        match opts.rooms.as_slice() {
            [] => m.sids.keys().for_each(|s| visit(s)),
            [room] => {
                if let Some(set) = m.rooms.get(room) {
                    set.iter().for_each(|s| visit(s));
                }
            }
            rooms => {
                // A socket in several of the rooms is visited once.
                let mut seen = HashSet::new();
                for r in rooms {
                    for s in m.rooms.get(r).into_iter().flatten() {
                        if seen.insert(s.as_str()) {
                            visit(s);
                        }
                    }
                }
            }
        }
    }

    fn rooms(&self) -> Vec<Room> {
        self.inner.read().rooms.keys().cloned().collect()
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
        a.add_all("s1", &["s1".into(), "r".into()]);
        a.add_all("s2", &["s2".into(), "r".into()]);
        a.add_all("s3", &["s3".into()]);
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
}
