//! Keeps per-connection tables from holding the capacity of their busiest
//! moment.
//!
//! A hash map keyed by connection grows with the crowd and, left alone, keeps
//! its peak capacity after the crowd leaves: 19,000 Socket.IO sessions leave
//! megabytes of empty buckets behind in half a dozen maps (docs/benchmarks.md,
//! "Leaks"). Call [`Shrink::shrink_when_sparse`] after removing an entry: the
//! table is reallocated at twice its length once it is at most a quarter
//! full, so the cost is amortized like growth is.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

/// Tables this small keep their capacity (not worth a reallocation).
pub const KEEP_CAPACITY: usize = 64;

/// A table whose capacity may be given back after removals.
pub trait Shrink {
    /// Halves (or more) the capacity once at most a quarter of it is used.
    fn shrink_when_sparse(&mut self);
}

fn sparse(len: usize, capacity: usize) -> bool {
    capacity > KEEP_CAPACITY && len <= capacity / 4
}

impl<K: Eq + Hash, V, S: BuildHasher> Shrink for HashMap<K, V, S> {
    fn shrink_when_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to(self.len() * 2);
        }
    }
}

impl<T: Eq + Hash, S: BuildHasher> Shrink for HashSet<T, S> {
    fn shrink_when_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to(self.len() * 2);
        }
    }
}

impl<T> Shrink for Vec<T> {
    fn shrink_when_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to(self.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crowd_that_leaves_gives_the_buckets_back() {
        let mut map: HashMap<u32, u32> = (0..20_000).map(|i| (i, i)).collect();
        let peak = map.capacity();
        for i in 0..20_000 {
            map.remove(&i);
            map.shrink_when_sparse();
            assert!(
                map.capacity() <= KEEP_CAPACITY.max(map.len() * 8),
                "{i}: {}",
                map.capacity()
            );
        }
        assert!(peak >= 20_000);
        assert!(map.capacity() <= KEEP_CAPACITY);
    }

    #[test]
    fn shrinking_is_amortized() {
        // Removing one at a time reallocates O(log n) times, not per removal.
        let mut set: HashSet<u32> = (0..100_000).collect();
        let mut reallocations = 0;
        for i in 0..100_000 {
            set.remove(&i);
            let before = set.capacity();
            set.shrink_when_sparse();
            reallocations += usize::from(set.capacity() != before);
        }
        assert!((1..=20).contains(&reallocations), "{reallocations}");
        let mut v: Vec<u8> = vec![0; 1000];
        v.truncate(200);
        v.shrink_when_sparse();
        assert!(v.capacity() < 1000 && v.capacity() >= 200);
        let mut small: HashMap<u8, u8> = (0..40).map(|i| (i, i)).collect();
        small.clear();
        small.shrink_when_sparse();
        assert!(small.capacity() >= 40, "small tables keep their buckets");
    }
}
