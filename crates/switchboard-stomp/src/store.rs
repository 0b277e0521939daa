//! Where `/queue/` messages are kept between their acceptance and their
//! acknowledgement: [`QueueStore`]. [`MemoryStore`] (the default) keeps
//! nothing beyond the broker's memory; [`RedbStore`] writes every accepted
//! message to a [redb](https://www.redb.org) file so that it survives a
//! restart.
//!
//! The broker calls the store at exactly two points (see `docs/stomp.md`):
//!
//! * [`insert`](QueueStore::insert) when a queue accepts a message (a SEND
//!   outside a transaction, a SEND at COMMIT, [`Broker::send_to_queue`]),
//!   before the message can be dispatched and before the session emits the
//!   SEND's (or COMMIT's) RECEIPT;
//! * [`remove`](QueueStore::remove) when messages are done: acknowledged
//!   (ACK, or ACK at COMMIT), or written to the connection on an `auto`
//!   subscription.
//!
//! At startup ([`Broker::with_store`]) every stored message is loaded, in
//! order of acceptance, into its queue, marked `redelivered:true` (it may
//! have been delivered before the restart).
//!
//! [`Broker::send_to_queue`]: crate::Broker::send_to_queue
//! [`Broker::with_store`]: crate::Broker::with_store

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use redb::{Database, ReadableTable, TableDefinition};

/// A message as a [`QueueStore`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Order of acceptance, unique across all queues of the broker.
    pub seq: u64,
    /// The queue name (without `/queue/`).
    pub queue: String,
    /// The headers passed on to the MESSAGE.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

/// Storage of the queue messages not yet acknowledged.
///
/// Calls are synchronous and made on the connection's task: a durable
/// implementation returns from [`insert`](Self::insert) only once the
/// message is on stable storage.
pub trait QueueStore: Send + Sync + 'static {
    /// Whether anything is kept at all. `false` (the [`MemoryStore`]) lets
    /// the broker skip every store call.
    fn is_durable(&self) -> bool {
        true
    }

    /// Every stored message, in `seq` order.
    fn load(&self) -> io::Result<Vec<StoredMessage>>;

    /// Stores one accepted message (durably before returning).
    fn insert(
        &self,
        seq: u64,
        queue: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> io::Result<()>;

    /// Forgets acknowledged messages (unknown `seq`s are ignored).
    fn remove(&self, seqs: &[u64]) -> io::Result<()>;
}

/// Keeps nothing: queues live in memory only (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryStore;

impl QueueStore for MemoryStore {
    fn is_durable(&self) -> bool {
        false
    }

    fn load(&self) -> io::Result<Vec<StoredMessage>> {
        Ok(Vec::new())
    }

    fn insert(&self, _: u64, _: &str, _: &[(String, String)], _: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn remove(&self, _: &[u64]) -> io::Result<()> {
        Ok(())
    }
}

/// `seq` → encoded message (see [`encode`]).
const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_messages");

/// The file [`RedbStore::open`] uses inside its directory.
pub const FILE_NAME: &str = "stomp-queues.redb";

/// A durable [`QueueStore`]: one redb database file,
/// `<dir>/stomp-queues.redb`. Every insert and remove is its own write
/// transaction committed with redb's default durability (`Immediate`:
/// fsynced before `commit` returns). The file is created in redb's v3
/// file format, the one later redb major versions read.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl RedbStore {
    /// Opens (or creates) the store in directory `dir`, creating the
    /// directory if needed. Fails if another process has it open.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<RedbStore> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut db = redb::Builder::new()
            .create_with_file_format_v3(true)
            .create(&path)
            .map_err(|e| other(&path, e))?;
        db.upgrade().map_err(|e| other(&path, e))?;
        let tx = db.begin_write().map_err(|e| other(&path, e))?;
        tx.open_table(MESSAGES).map_err(|e| other(&path, e))?;
        tx.commit().map_err(|e| other(&path, e))?;
        Ok(RedbStore { db, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(
        &self,
        f: impl FnOnce(&mut redb::Table<u64, &[u8]>) -> redb::Result<()>,
    ) -> io::Result<()> {
        let tx = self.db.begin_write().map_err(|e| other(&self.path, e))?;
        {
            let mut table = tx.open_table(MESSAGES).map_err(|e| other(&self.path, e))?;
            f(&mut table).map_err(|e| other(&self.path, e))?;
        }
        tx.commit().map_err(|e| other(&self.path, e))
    }
}

impl QueueStore for RedbStore {
    fn load(&self) -> io::Result<Vec<StoredMessage>> {
        let tx = self.db.begin_read().map_err(|e| other(&self.path, e))?;
        let table = tx.open_table(MESSAGES).map_err(|e| other(&self.path, e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| other(&self.path, e))? {
            let (seq, value) = entry.map_err(|e| other(&self.path, e))?;
            let seq = seq.value();
            let message = decode(seq, value.value()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: message {seq} is corrupt", self.path.display()),
                )
            })?;
            out.push(message);
        }
        Ok(out)
    }

    fn insert(
        &self,
        seq: u64,
        queue: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> io::Result<()> {
        let value = encode(queue, headers, body);
        self.write(|t| t.insert(seq, value.as_slice()).map(drop))
    }

    fn remove(&self, seqs: &[u64]) -> io::Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.write(|t| {
            for &seq in seqs {
                t.remove(seq)?;
            }
            Ok(())
        })
    }
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn other(path: &Path, e: impl fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {e}", path.display()))
}

/// `queue`, the headers, the body: each string as a little-endian `u32`
/// length and its bytes, the header count as a `u32`, the body as the rest.
fn encode(queue: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let head: usize = headers.iter().map(|(n, v)| 8 + n.len() + v.len()).sum();
    let mut out = Vec::with_capacity(8 + queue.len() + head + body.len());
    let put = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    put(&mut out, queue);
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for (n, v) in headers {
        put(&mut out, n);
        put(&mut out, v);
    }
    out.extend_from_slice(body);
    out
}

fn decode(seq: u64, mut data: &[u8]) -> Option<StoredMessage> {
    fn u32_of(data: &mut &[u8]) -> Option<usize> {
        let (n, rest) = data.split_first_chunk::<4>()?;
        *data = rest;
        Some(u32::from_le_bytes(*n) as usize)
    }
    fn string(data: &mut &[u8]) -> Option<String> {
        let n = u32_of(data)?;
        if data.len() < n {
            return None;
        }
        let (s, rest) = data.split_at(n);
        *data = rest;
        String::from_utf8(s.to_vec()).ok()
    }
    let queue = string(&mut data)?;
    let count = u32_of(&mut data)?;
    let mut headers = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        headers.push((string(&mut data)?, string(&mut data)?));
    }
    Some(StoredMessage {
        seq,
        queue,
        headers,
        body: Bytes::copy_from_slice(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_rejects_truncation() {
        let headers = vec![("content-type".to_owned(), "text/plain".to_owned())];
        let data = encode("jobs", &headers, b"a\0b");
        let m = decode(7, &data).unwrap();
        assert_eq!(m.seq, 7);
        assert_eq!(m.queue, "jobs");
        assert_eq!(m.headers, headers);
        assert_eq!(&m.body[..], b"a\0b");
        assert!(decode(7, &data[..10]).is_none());
    }
}
