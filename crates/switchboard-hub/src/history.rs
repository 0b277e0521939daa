//! Per-topic history: a bounded ring of the most recent publications used for
//! `since` recovery on subscribe and for [`Hub::history`](crate::Hub::history).
//! Owns [`HistoryRange`] and the rule deciding whether a range is complete.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::publication::Publication;

/// Publications of a topic after a given sequence number.
#[derive(Debug, Clone, Default)]
pub struct HistoryRange {
    /// Publications with `seq > since`, oldest first.
    pub messages: Vec<Arc<Publication>>,
    /// `false` if some publications after `since` are missing because they
    /// were evicted (history full or disabled, topic removed while idle), or
    /// if `since` is ahead of the topic's last sequence number (the topic was
    /// recreated, so the numbering restarted: `messages` then holds the whole
    /// retained history).
    pub complete: bool,
}

/// Bounded ring buffer of the last `cap` publications of a topic.
#[derive(Debug)]
pub(crate) struct History {
    buf: VecDeque<Arc<Publication>>,
    cap: usize,
}

impl History {
    pub(crate) fn new(cap: usize) -> Self {
        History {
            buf: VecDeque::new(),
            cap,
        }
    }

    /// Appends a publication, evicting the oldest if full. No-op if cap is 0.
    pub(crate) fn push(&mut self, p: Arc<Publication>) {
        if self.cap == 0 {
            return;
        }
        if self.buf.len() == self.cap {
            self.buf.pop_front();
        }
        self.buf.push_back(p);
    }

    /// Replaces the ring with `entries` (oldest first, as numbered by the
    /// cluster) followed by the retained publications newer than all of
    /// them, keeping the last `cap`. Used when a node (re)synchronises a
    /// topic from shared history: what the cluster retained wins.
    pub(crate) fn merge(&mut self, entries: &[Arc<Publication>]) {
        if self.cap == 0 {
            return;
        }
        let newest = entries.last().map_or(0, |p| p.seq);
        let mut buf: VecDeque<Arc<Publication>> = entries.iter().cloned().collect();
        buf.extend(self.buf.iter().filter(|p| p.seq > newest).cloned());
        while buf.len() > self.cap {
            buf.pop_front();
        }
        self.buf = buf;
    }

    /// Forgets everything (the topic's numbering restarted elsewhere).
    pub(crate) fn clear(&mut self) {
        self.buf = VecDeque::new();
    }

    /// Publications with `seq > since`, given the topic's last assigned seq.
    pub(crate) fn since(&self, since: u64, last_seq: u64) -> HistoryRange {
        if since > last_seq {
            return HistoryRange {
                messages: self.buf.iter().cloned().collect(),
                complete: false,
            };
        }
        if since == last_seq {
            return HistoryRange {
                messages: Vec::new(),
                complete: true,
            };
        }
        let oldest = self.buf.front().map_or(last_seq + 1, |p| p.seq);
        let start = self.buf.partition_point(|p| p.seq <= since);
        HistoryRange {
            messages: self.buf.range(start..).cloned().collect(),
            complete: oldest <= since + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publication::Payload;

    fn p(seq: u64) -> Arc<Publication> {
        Arc::new(Publication::new(
            "t".into(),
            seq,
            None,
            Payload::text("x"),
            0,
        ))
    }

    fn seqs(r: &HistoryRange) -> Vec<u64> {
        r.messages.iter().map(|p| p.seq).collect()
    }

    #[test]
    fn ring_and_ranges() {
        let mut h = History::new(3);
        for s in 1..=5 {
            h.push(p(s));
        }
        // holds 3,4,5
        let r = h.since(2, 5);
        assert_eq!(seqs(&r), vec![3, 4, 5]);
        assert!(r.complete);
        let r = h.since(1, 5);
        assert_eq!(seqs(&r), vec![3, 4, 5]);
        assert!(!r.complete);
        let r = h.since(4, 5);
        assert_eq!(seqs(&r), vec![5]);
        assert!(r.complete);
        let r = h.since(5, 5);
        assert!(r.messages.is_empty() && r.complete);
        let r = h.since(9, 5);
        assert_eq!(seqs(&r), vec![3, 4, 5]);
        assert!(!r.complete);
    }

    #[test]
    fn merge_keeps_cluster_entries_then_newer_local_ones() {
        let mut h = History::new(4);
        for s in [7, 8] {
            h.push(p(s));
        }
        h.merge(&[p(3), p(4), p(5), p(6), p(7)]);
        assert_eq!(seqs(&h.since(0, 8)), vec![5, 6, 7, 8]);
        assert!(h.since(4, 8).complete);
        assert!(!h.since(3, 8).complete);
        h.clear();
        assert!(h.since(0, 8).messages.is_empty());
    }

    #[test]
    fn disabled_history() {
        let mut h = History::new(0);
        h.push(p(1));
        let r = h.since(0, 1);
        assert!(r.messages.is_empty());
        assert!(!r.complete);
        assert!(h.since(0, 0).complete);
    }
}
