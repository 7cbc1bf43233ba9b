//! Whole Parquet files kept in memory, newest first, so the freshly persisted data never has
//! to be read back from the object store; and the size-bounded [`Lru`] map it keeps them in
//! (the query side keeps decompressed pages in one too).

use std::sync::atomic::{AtomicU64, Ordering};

use std::hash::Hash;

use bytes::Bytes;
use hashbrown::{Equivalent, HashMap};
use parking_lot::Mutex;

/// A map bounded by the total size of its values, evicting the least recently used first
/// (a linear search: meant for hundreds or a few thousand entries). Not synchronized: its
/// owner holds it in a lock.
#[derive(Debug)]
pub struct Lru<K, V> {
    capacity: usize,
    /// Each value with its size and its last use.
    entries: HashMap<K, (V, usize, u64)>,
    used: usize,
    tick: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            used: 0,
            tick: 0,
        }
    }

    /// Keeps `value` (of `size` bytes) for `key`, replacing what was there and evicting the
    /// least recently used entries as needed. A value larger than the whole capacity is not
    /// kept.
    pub fn insert(&mut self, key: K, value: V, size: usize) {
        if size > self.capacity {
            return;
        }
        self.tick += 1;
        if let Some((_, old, _)) = self.entries.insert(key, (value, size, self.tick)) {
            self.used -= old;
        }
        self.used += size;
        while self.used > self.capacity {
            let Some(victim) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.remove(&victim);
        }
    }

    /// The value of `key`, now the most recently used.
    pub fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(value, _, used)| {
            *used = tick;
            value.clone()
        })
    }

    pub fn remove<Q>(&mut self, key: &Q)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        if let Some((_, size, _)) = self.entries.remove(key) {
            self.used -= size;
        }
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|(value, _, _)| value)
    }

    /// The total size of the values kept.
    pub fn used(&self) -> usize {
        self.used
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// A size-bounded, least-recently-used cache of file contents by object path.
#[derive(Debug)]
pub struct ParquetCache {
    files: Mutex<Lru<String, Bytes>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ParquetCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            files: Mutex::new(Lru::new(capacity_bytes)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Keeps `bytes`, evicting the least recently used files as needed. Files larger than
    /// the whole cache are not kept.
    pub fn insert(&self, path: &str, bytes: Bytes) {
        let size = bytes.len();
        self.files.lock().insert(path.to_string(), bytes, size);
    }

    /// The file's bytes, counting a hit or a miss.
    pub fn get(&self, path: &str) -> Option<Bytes> {
        let found = self.files.lock().get(path);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn remove(&self, path: &str) {
        self.files.lock().remove(path);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn used_bytes(&self) -> usize {
        self.files.lock().used()
    }

    pub fn capacity_bytes(&self) -> usize {
        self.files.lock().capacity()
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
