//! Open STOMP transactions of one connection: the SENDs, ACKs and NACKs
//! buffered between BEGIN and COMMIT/ABORT. Applying or undoing them is the
//! connection's job ([`crate::client`]); this module only keeps them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use switchboard_stomp_proto::Headers;

use crate::queue::QueueMessage;

/// A queue message sent on a `client` / `client-individual` subscription
/// and not yet acknowledged (or acknowledged inside an open transaction).
#[derive(Debug, Clone)]
pub(crate) struct Unacked {
    pub(crate) queue: Arc<str>,
    pub(crate) subscription: Arc<str>,
    pub(crate) message: Arc<QueueMessage>,
}

/// One buffered operation.
#[derive(Debug)]
pub(crate) enum TxOp {
    Send {
        destination: String,
        headers: Headers,
        body: Bytes,
    },
    /// Queue messages acknowledged (topic messages need nothing).
    Ack(Vec<Unacked>),
    /// Queue messages refused: redelivered on COMMIT.
    Nack(Vec<Unacked>),
}

/// The open transactions, by id. The protocol session already checks that
/// ids are unique, known and within the configured limit.
#[derive(Debug, Default)]
pub(crate) struct Transactions {
    open: HashMap<String, Vec<TxOp>>,
}

impl Transactions {
    pub(crate) fn begin(&mut self, id: String) {
        self.open.insert(id, Vec::new());
    }

    pub(crate) fn push(&mut self, id: &str, op: TxOp) {
        if let Some(ops) = self.open.get_mut(id) {
            ops.push(op);
        }
    }

    /// Closes a transaction, returning its operations in order.
    pub(crate) fn finish(&mut self, id: &str) -> Vec<TxOp> {
        self.open.remove(id).unwrap_or_default()
    }

    /// Closes every open transaction (for an abort at disconnect).
    pub(crate) fn finish_all(&mut self) -> Vec<TxOp> {
        self.open.drain().flat_map(|(_, ops)| ops).collect()
    }
}
