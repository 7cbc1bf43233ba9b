//! The last-value and distinct-value caches: their data, how writes fill them, eviction.
//!
//! # What this crate owns
//! - [`LastCache`]: per combination of key column values, the newest `count` rows (only
//!   rows newer than what is cached are taken), expiring `ttl` after insertion.
//! - [`DistinctCache`]: the distinct combinations of its columns as a sorted hierarchy,
//!   expiring by data time (`max_age`) and bounded by `max_cardinality` (least recently seen
//!   combinations go first).
//! - [`CacheManager`]: one cache per definition in the catalog. It sees every durable write
//!   batch through [`BatchObserver`] (installed in the write buffer before the WAL replay, so
//!   after a restart the caches are rebuilt from the replayed, i.e. buffered, data), follows
//!   the catalog for created and deleted definitions, and evicts periodically.
//!
//! # What it must not reach into
//! The definitions are the catalog's (this crate never changes them); SQL is the query
//! crate's, which turns `WHERE` predicates into [`ColumnFilter`]s and the results into table
//! functions. Lookups return Arrow record batches.
//!
//! # Consistency
//! A cache exists from the moment the manager first sees its definition (at the next write
//! batch or lookup after the catalog commit); it is filled by writes from then on, not
//! backfilled from older data, except that a restart rebuilds it from the WAL replay.

mod distinct;
mod filter;
mod last;
mod value;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gnomon_catalog::{
    CacheId, Catalog, DbId, DistinctCacheDefinition, LastCacheDefinition, TableId, TableSchema,
};
use gnomon_write_buffer::{BatchObserver, WriteBatch};
use hashbrown::HashMap;
use parking_lot::{Mutex, RwLock};

pub use distinct::DistinctCache;
pub use filter::ColumnFilter;
pub use last::LastCache;
pub use value::KeyValue;

/// The caches of one table, with the table schema they were synced against.
#[derive(Debug)]
struct TableCaches {
    schema: Arc<TableSchema>,
    last: Vec<Arc<Mutex<LastCache>>>,
    distinct: Vec<Arc<Mutex<DistinctCache>>>,
}

#[derive(Debug, Default)]
struct Registry {
    /// Catalog sequence the registry reflects.
    sequence: u64,
    tables: HashMap<(DbId, TableId), TableCaches>,
}

/// Every cache of the server.
#[derive(Debug)]
pub struct CacheManager {
    catalog: Arc<Catalog>,
    registry: RwLock<Registry>,
}

impl CacheManager {
    pub fn new(catalog: Arc<Catalog>) -> Arc<Self> {
        let manager = Arc::new(Self {
            catalog,
            registry: RwLock::new(Registry::default()),
        });
        manager.sync();
        manager
    }

    /// Brings the set of caches in line with the catalog: new definitions get an empty cache,
    /// caches whose definition (or table, or database) is gone are dropped. Cheap when the
    /// catalog has not changed.
    pub fn sync(&self) {
        let snapshot = self.catalog.snapshot();
        if self.registry.read().sequence == snapshot.sequence() {
            return;
        }
        let mut registry = self.registry.write();
        if registry.sequence == snapshot.sequence() {
            return;
        }
        let mut old = std::mem::take(&mut registry.tables);
        for db in snapshot.databases().filter(|d| !d.deleted()) {
            for table in db.tables() {
                if table.last_caches().is_empty() && table.distinct_caches().is_empty() {
                    continue;
                }
                let previous = old.remove(&(db.id, table.id));
                let reuse_last = |def: &Arc<LastCacheDefinition>| {
                    previous.as_ref().and_then(|p| {
                        p.last
                            .iter()
                            .find(|c| **c.lock().definition() == **def)
                            .cloned()
                    })
                };
                let reuse_distinct = |def: &Arc<DistinctCacheDefinition>| {
                    previous.as_ref().and_then(|p| {
                        p.distinct
                            .iter()
                            .find(|c| **c.lock().definition() == **def)
                            .cloned()
                    })
                };
                let caches = TableCaches {
                    schema: Arc::clone(table),
                    last: table
                        .last_caches()
                        .iter()
                        .map(|def| {
                            reuse_last(def).unwrap_or_else(|| {
                                Arc::new(Mutex::new(LastCache::new(Arc::clone(def))))
                            })
                        })
                        .collect(),
                    distinct: table
                        .distinct_caches()
                        .iter()
                        .map(|def| {
                            reuse_distinct(def).unwrap_or_else(|| {
                                Arc::new(Mutex::new(DistinctCache::new(Arc::clone(def))))
                            })
                        })
                        .collect(),
                };
                registry.tables.insert((db.id, table.id), caches);
            }
        }
        registry.sequence = snapshot.sequence();
    }

    /// The last cache with id `cache` of a table, as currently held.
    pub fn last_cache(
        &self,
        db: DbId,
        table: TableId,
        cache: CacheId,
    ) -> Option<Arc<Mutex<LastCache>>> {
        self.sync();
        let registry = self.registry.read();
        registry
            .tables
            .get(&(db, table))?
            .last
            .iter()
            .find(|c| c.lock().definition().id == cache)
            .cloned()
    }

    /// The distinct cache with id `cache` of a table, as currently held.
    pub fn distinct_cache(
        &self,
        db: DbId,
        table: TableId,
        cache: CacheId,
    ) -> Option<Arc<Mutex<DistinctCache>>> {
        self.sync();
        let registry = self.registry.read();
        registry
            .tables
            .get(&(db, table))?
            .distinct
            .iter()
            .find(|c| c.lock().definition().id == cache)
            .cloned()
    }

    /// Feeds a durable batch to the caches of its tables.
    pub fn apply(&self, batch: &WriteBatch, now: Instant, now_ns: i64) {
        self.sync();
        let registry = self.registry.read();
        if registry.tables.is_empty() {
            return;
        }
        for table in &batch.tables {
            let Some(caches) = registry.tables.get(&(batch.db_id, table.table_id)) else {
                continue;
            };
            for cache in &caches.last {
                cache.lock().push(table, &caches.schema, now);
            }
            for cache in &caches.distinct {
                cache.lock().push(table, now_ns);
            }
        }
    }

    /// Evicts expired entries from every last cache.
    pub fn evict_last_caches(&self, now: Instant) {
        self.sync();
        for caches in self.registry.read().tables.values() {
            for cache in &caches.last {
                cache.lock().evict(now);
            }
        }
    }

    /// Evicts expired and excess entries from every distinct cache.
    pub fn evict_distinct_caches(&self, now_ns: i64) {
        self.sync();
        for caches in self.registry.read().tables.values() {
            for cache in &caches.distinct {
                cache.lock().evict(now_ns);
            }
        }
    }

    /// Runs the evictions every `last_interval` and `distinct_interval` until the runtime
    /// shuts down.
    pub fn spawn_eviction(self: &Arc<Self>, last_interval: Duration, distinct_interval: Duration) {
        let manager = Arc::clone(self);
        tokio::spawn(async move {
            let mut last = tokio::time::interval(last_interval);
            let mut distinct = tokio::time::interval(distinct_interval);
            last.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            distinct.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = last.tick() => manager.evict_last_caches(Instant::now()),
                    _ = distinct.tick() => manager.evict_distinct_caches(gnomon_write_buffer::now_ns()),
                }
            }
        });
    }
}

/// The manager as the write buffer's observer.
#[derive(Debug)]
pub struct CacheObserver(pub Arc<CacheManager>);

impl BatchObserver for CacheObserver {
    fn observe(&self, batch: &Arc<WriteBatch>) {
        self.0
            .apply(batch, Instant::now(), gnomon_write_buffer::now_ns());
    }
}
