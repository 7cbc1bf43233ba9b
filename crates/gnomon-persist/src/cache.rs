//! Whole Parquet files kept in memory, newest first, so the freshly persisted data never has
//! to be read back from the object store.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hashbrown::HashMap;
use parking_lot::Mutex;

#[derive(Debug, Default)]
struct State {
    files: HashMap<String, (Bytes, u64)>,
    used: usize,
    tick: u64,
}

/// A size-bounded, least-recently-used cache of file contents by object path.
#[derive(Debug)]
pub struct ParquetCache {
    capacity: usize,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ParquetCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity: capacity_bytes,
            state: Mutex::new(State::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Keeps `bytes`, evicting the least recently used files as needed. Files larger than
    /// the whole cache are not kept.
    pub fn insert(&self, path: &str, bytes: Bytes) {
        if bytes.len() > self.capacity {
            return;
        }
        let mut state = self.state.lock();
        state.tick += 1;
        let tick = state.tick;
        if let Some((old, _)) = state.files.insert(path.to_string(), (bytes.clone(), tick)) {
            state.used -= old.len();
        }
        state.used += bytes.len();
        while state.used > self.capacity {
            let Some(victim) = state
                .files
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((gone, _)) = state.files.remove(&victim) {
                state.used -= gone.len();
            }
        }
    }

    /// The file's bytes, counting a hit or a miss.
    pub fn get(&self, path: &str) -> Option<Bytes> {
        let mut state = self.state.lock();
        state.tick += 1;
        let tick = state.tick;
        match state.files.get_mut(path) {
            Some((bytes, t)) => {
                *t = tick;
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(bytes.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    pub fn remove(&self, path: &str) {
        let mut state = self.state.lock();
        if let Some((gone, _)) = state.files.remove(path) {
            state.used -= gone.len();
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn used_bytes(&self) -> usize {
        self.state.lock().used
    }

    pub fn capacity_bytes(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_counts_hits_and_misses() {
        let cache = ParquetCache::new(10);
        cache.insert("a", Bytes::from_static(b"aaaa"));
        cache.insert("b", Bytes::from_static(b"bbbb"));
        assert!(cache.get("a").is_some()); // a is now newer than b
        cache.insert("c", Bytes::from_static(b"cccc"));
        assert!(cache.get("b").is_none());
        assert_eq!(cache.get("a").unwrap(), Bytes::from_static(b"aaaa"));
        assert!(cache.get("c").is_some());
        assert_eq!(cache.used_bytes(), 8);
        assert_eq!((cache.hits(), cache.misses()), (3, 1));
        cache.insert("huge", Bytes::from(vec![0u8; 11]));
        assert!(cache.get("huge").is_none());
        assert_eq!(cache.used_bytes(), 8);
    }
}
