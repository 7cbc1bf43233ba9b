//! The distinct-value cache of one definition: the distinct combinations of its columns as a
//! tree (one level per column, children sorted), each node remembering the newest data time
//! that produced it.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use gnomon_catalog::{DistinctCacheDefinition, TableSchema};
use gnomon_write_buffer::batch::TableBatch;

use crate::filter::{all_match, filters_on, ColumnFilter};
use crate::value::{key_at, KeyRef, KeyValue};

#[derive(Debug)]
pub struct DistinctCache {
    def: Arc<DistinctCacheDefinition>,
    max_age_ns: i64,
    root: Level,
    /// Number of leaves (complete combinations).
    cardinality: usize,
}

/// One level: its values in order, and the null value (sorted last).
#[derive(Debug, Default)]
struct Level {
    values: BTreeMap<Arc<str>, Entry>,
    null: Option<Box<Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    /// Newest data time of any row under this entry.
    last_time: i64,
    below: Level,
}

impl Level {
    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.null.is_none()
    }

    fn entry_or_insert(&mut self, key: Option<&str>) -> (&mut Entry, bool) {
        match key {
            None => {
                let new = self.null.is_none();
                (self.null.get_or_insert_with(Default::default), new)
            }
            Some(k) => {
                if self.values.contains_key(k) {
                    (self.values.get_mut(k).expect("just checked"), false)
                } else {
                    (self.values.entry(Arc::from(k)).or_default(), true)
                }
            }
        }
    }

    /// Entries in output order: values ascending, then null.
    fn entries(&self) -> impl Iterator<Item = (Option<&Arc<str>>, &Entry)> {
        self.values
            .iter()
            .map(|(k, e)| (Some(k), e))
            .chain(self.null.as_deref().map(|e| (None, e)))
    }

    /// Removes entries older than `cutoff`; returns the leaves removed.
    fn expire(&mut self, cutoff: i64, depth: usize) -> usize {
        let mut removed = 0;
        let mut prune = |e: &mut Entry| -> bool {
            if e.last_time < cutoff {
                removed += e.below.leaf_count(depth - 1).max(1);
                return false;
            }
            if depth > 1 {
                removed += e.below.expire(cutoff, depth - 1);
                return !e.below.is_empty();
            }
            true
        };
        self.values.retain(|_, e| prune(e));
        if let Some(e) = self.null.as_deref_mut() {
            if !prune(e) {
                self.null = None;
            }
        }
        removed
    }

    fn leaf_count(&self, depth: usize) -> usize {
        if depth == 0 {
            return 0;
        }
        if depth == 1 {
            return self.values.len() + usize::from(self.null.is_some());
        }
        self.entries()
            .map(|(_, e)| e.below.leaf_count(depth - 1))
            .sum()
    }

    /// Every leaf's data time.
    fn leaf_times(&self, depth: usize, out: &mut Vec<i64>) {
        for (_, e) in self.entries() {
            if depth == 1 {
                out.push(e.last_time);
            } else {
                e.below.leaf_times(depth - 1, out);
            }
        }
    }
}

impl DistinctCache {
    pub fn new(def: Arc<DistinctCacheDefinition>) -> Self {
        Self {
            max_age_ns: i64::try_from(def.max_age_seconds)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000_000),
            def,
            root: Level::default(),
            cardinality: 0,
        }
    }

    pub fn definition(&self) -> &Arc<DistinctCacheDefinition> {
        &self.def
    }

    /// Number of distinct combinations held.
    pub fn cardinality(&self) -> usize {
        self.cardinality
    }

    /// Adds the combinations of `batch`. Rows older than `max_age` (by data time, relative to
    /// `now_ns`) are ignored: they would be expired at once.
    pub fn push(&mut self, batch: &TableBatch, now_ns: i64) {
        let cols: Vec<Option<usize>> = self
            .def
            .columns
            .iter()
            .map(|id| batch.columns.iter().position(|c| c.column_id == *id))
            .collect();
        if cols.iter().all(Option::is_none) {
            return;
        }
        let cutoff = now_ns.saturating_sub(self.max_age_ns);
        for row in 0..batch.row_count() {
            let time = batch.time[row];
            if time < cutoff {
                continue;
            }
            let mut level = &mut self.root;
            let mut new_leaf = false;
            for col in &cols {
                let key = match col.map(|i| key_at(&batch.columns[i], row)) {
                    Some(KeyRef::Str(s)) => Some(s),
                    _ => None,
                };
                let (entry, new) = level.entry_or_insert(key);
                entry.last_time = entry.last_time.max(time);
                new_leaf = new;
                level = &mut entry.below;
            }
            if new_leaf {
                self.cardinality += 1;
            }
        }
        // Bound memory between evictions: past twice the limit, prune now.
        if self.cardinality as u64 > self.def.max_cardinality.saturating_mul(2) {
            self.prune_cardinality();
        }
    }

    /// Drops combinations older than `max_age`, then the least recently seen ones beyond
    /// `max_cardinality`.
    pub fn evict(&mut self, now_ns: i64) {
        let depth = self.def.columns.len();
        let cutoff = now_ns.saturating_sub(self.max_age_ns);
        let removed = self.root.expire(cutoff, depth);
        self.cardinality = self.cardinality.saturating_sub(removed);
        self.prune_cardinality();
    }

    fn prune_cardinality(&mut self) {
        let max = usize::try_from(self.def.max_cardinality).unwrap_or(usize::MAX);
        if self.cardinality <= max {
            return;
        }
        let depth = self.def.columns.len();
        let mut times = Vec::with_capacity(self.cardinality);
        self.root.leaf_times(depth, &mut times);
        let excess = times.len().saturating_sub(max);
        if excess == 0 {
            self.cardinality = times.len();
            return;
        }
        times.sort_unstable();
        // Leaves at exactly the threshold time may all go: a few more than needed, never
        // more than the ties at one timestamp.
        let cutoff = times[excess - 1] + 1;
        let removed = self.root.expire(cutoff, depth);
        self.cardinality = times.len() - removed;
    }

    pub fn schema(&self, table: &TableSchema) -> SchemaRef {
        Arc::new(Schema::new(
            self.def
                .columns
                .iter()
                .map(|id| {
                    let name = table
                        .column_by_id(*id)
                        .map_or_else(|| format!("column_{id}"), |c| c.name.to_string());
                    Field::new(name, DataType::Utf8, true)
                })
                .collect::<Vec<_>>(),
        ))
    }

    /// The combinations matching `filters` and not older than `max_age`, sorted by the
    /// first column, then the second, and so on (nulls last).
    pub fn to_record_batch(
        &self,
        table: &TableSchema,
        filters: &[ColumnFilter],
        now_ns: i64,
    ) -> Result<RecordBatch, ArrowError> {
        let depth = self.def.columns.len();
        let level_filters: Vec<Vec<&ColumnFilter>> = self
            .def
            .columns
            .iter()
            .map(|id| filters_on(filters, *id))
            .collect();
        let cutoff = now_ns.saturating_sub(self.max_age_ns);
        let mut builders: Vec<StringBuilder> = (0..depth).map(|_| StringBuilder::new()).collect();
        let mut path: Vec<Option<&Arc<str>>> = Vec::with_capacity(depth);
        walk(&self.root, &level_filters, cutoff, &mut path, &mut builders);
        let arrays: Vec<ArrayRef> = builders
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        RecordBatch::try_new(self.schema(table), arrays)
    }
}

fn walk<'a>(
    level: &'a Level,
    filters: &[Vec<&ColumnFilter>],
    cutoff: i64,
    path: &mut Vec<Option<&'a Arc<str>>>,
    out: &mut [StringBuilder],
) {
    let depth = path.len();
    for (key, entry) in level.entries() {
        if entry.last_time < cutoff {
            continue;
        }
        let key_value = match key {
            Some(s) => KeyValue::Str(Arc::clone(s)),
            None => KeyValue::Null,
        };
        if !all_match(&filters[depth], &key_value) {
            continue;
        }
        path.push(key);
        if depth + 1 == filters.len() {
            for (b, v) in out.iter_mut().zip(path.iter()) {
                b.append_option(v.map(|s| &**s));
            }
        } else {
            walk(&entry.below, filters, cutoff, path, out);
        }
        path.pop();
    }
}
