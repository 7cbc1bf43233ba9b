//! The last-value cache of one definition: per key combination, the newest `count` rows.
//!
//! Keys form a tree with one level per key column, so a filter on the first key columns
//! (the usual `WHERE host = 'x'`) is a hash lookup per level instead of a scan.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, TimestampNanosecondArray};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use gnomon_catalog::{ColumnId, ColumnKind, LastCacheDefinition, TableSchema};
use gnomon_write_buffer::batch::TableBatch;
use gnomon_write_buffer::buffer::arrow_type;
use hashbrown::HashMap;

use crate::filter::{all_match, filters_on, ColumnFilter};
use crate::value::{build_array, key_at, value_at, KeyRef, KeyValue, Value};

#[derive(Debug)]
pub struct LastCache {
    def: Arc<LastCacheDefinition>,
    ttl: Duration,
    root: Node,
}

#[derive(Debug)]
enum Node {
    Keys(HashMap<KeyValue, Node>),
    Rows(VecDeque<Row>),
}

#[derive(Debug)]
struct Row {
    time: i64,
    /// When the row entered the cache: `ttl` counts from here (wall clock, not data time).
    inserted: Instant,
    /// Only the columns the row set, among the cache's value columns.
    values: Vec<(ColumnId, Value)>,
}

impl Node {
    fn new(depth: usize) -> Self {
        if depth == 0 {
            Node::Rows(VecDeque::new())
        } else {
            Node::Keys(HashMap::new())
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Node::Keys(m) => m.is_empty(),
            Node::Rows(r) => r.is_empty(),
        }
    }
}

impl LastCache {
    pub fn new(def: Arc<LastCacheDefinition>) -> Self {
        let root = Node::new(def.key_columns.len());
        Self {
            ttl: Duration::from_secs(def.ttl_seconds),
            def,
            root,
        }
    }

    pub fn definition(&self) -> &Arc<LastCacheDefinition> {
        &self.def
    }

    /// Takes the rows of `batch` that are newer than what is cached for their key. A row
    /// with the same time as the newest cached one is merged into it (its non-null values
    /// win), like rows of equal series and time are merged in the table.
    pub fn push(&mut self, batch: &TableBatch, table: &TableSchema, now: Instant) {
        let key_cols: Vec<Option<usize>> = self
            .def
            .key_columns
            .iter()
            .map(|id| batch.columns.iter().position(|c| c.column_id == *id))
            .collect();
        let value_cols: Vec<usize> = match &self.def.value_columns {
            Some(ids) => batch
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| ids.contains(&c.column_id))
                .map(|(i, _)| i)
                .collect(),
            None => batch
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    !self.def.key_columns.contains(&c.column_id)
                        && table
                            .column_by_id(c.column_id)
                            .is_some_and(|col| col.kind != ColumnKind::Time)
                })
                .map(|(i, _)| i)
                .collect(),
        };
        let count = self.def.count;
        for row in 0..batch.row_count() {
            let mut node = &mut self.root;
            for (level, col) in key_cols.iter().enumerate() {
                let key = match col {
                    Some(i) => key_at(&batch.columns[*i], row),
                    None => KeyRef::Null,
                };
                let Node::Keys(children) = node else {
                    unreachable!("tree depth equals the number of key columns")
                };
                let below = key_cols.len() - level - 1;
                node = children.entry_ref(&key).or_insert_with(|| Node::new(below));
            }
            let Node::Rows(rows) = node else {
                unreachable!("leaves hold rows")
            };
            let time = batch.time[row];
            let values = || -> Vec<(ColumnId, Value)> {
                value_cols
                    .iter()
                    .filter_map(|&i| {
                        let c = &batch.columns[i];
                        value_at(c, row).map(|v| (c.column_id, v))
                    })
                    .collect()
            };
            match rows.back_mut() {
                Some(last) if time < last.time => continue,
                Some(last) if time == last.time => {
                    for (id, v) in values() {
                        match last.values.iter_mut().find(|(c, _)| *c == id) {
                            Some(slot) => slot.1 = v,
                            None => last.values.push((id, v)),
                        }
                    }
                    last.inserted = now;
                }
                _ => {
                    rows.push_back(Row {
                        time,
                        inserted: now,
                        values: values(),
                    });
                    while rows.len() > count {
                        rows.pop_front();
                    }
                }
            }
        }
    }

    /// Drops rows older than the ttl, and keys left without rows.
    pub fn evict(&mut self, now: Instant) {
        fn walk(node: &mut Node, now: Instant, ttl: Duration) {
            match node {
                Node::Rows(rows) => {
                    rows.retain(|r| now.saturating_duration_since(r.inserted) < ttl)
                }
                Node::Keys(children) => {
                    for child in children.values_mut() {
                        walk(child, now, ttl);
                    }
                    children.retain(|_, c| !c.is_empty());
                }
            }
        }
        walk(&mut self.root, now, self.ttl);
    }

    /// Number of key combinations currently held.
    pub fn key_count(&self) -> usize {
        fn walk(node: &Node) -> usize {
            match node {
                Node::Rows(rows) => usize::from(!rows.is_empty()),
                Node::Keys(children) => children.values().map(walk).sum(),
            }
        }
        walk(&self.root)
    }

    /// The output schema: key columns in key order, `time`, then the value columns.
    pub fn schema(&self, table: &TableSchema) -> SchemaRef {
        let mut fields = Vec::new();
        for id in self.output_columns(table) {
            if let Some(col) = table.column_by_id(id) {
                fields.push(Field::new(
                    col.name.as_ref(),
                    arrow_type(col.kind),
                    col.kind != ColumnKind::Time,
                ));
            }
        }
        Arc::new(Schema::new(fields))
    }

    fn output_columns(&self, table: &TableSchema) -> Vec<ColumnId> {
        let time = table.time_column().map(|c| c.id);
        self.def
            .key_columns
            .iter()
            .copied()
            .chain(time)
            .chain(self.def.value_column_ids(table))
            .filter(|id| table.column_by_id(*id).is_some())
            .collect()
    }

    /// The cached rows matching `filters` (filters on non-key columns are ignored: the
    /// caller applies every filter again), as one batch of [`LastCache::schema`]. Rows past
    /// their ttl are left out even before eviction removes them.
    pub fn to_record_batch(
        &self,
        table: &TableSchema,
        filters: &[ColumnFilter],
        now: Instant,
    ) -> Result<RecordBatch, ArrowError> {
        let level_filters: Vec<Vec<&ColumnFilter>> = self
            .def
            .key_columns
            .iter()
            .map(|id| filters_on(filters, *id))
            .collect();
        let mut keys: Vec<KeyValue> = Vec::with_capacity(self.def.key_columns.len());
        let mut out: Vec<(Vec<KeyValue>, &Row)> = Vec::new();
        collect(
            &self.root,
            &level_filters,
            &mut keys,
            &mut out,
            now,
            self.ttl,
        );

        let schema = self.schema(table);
        let columns = self.output_columns(table);
        let key_count = self.def.key_columns.len();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
        for (pos, id) in columns.iter().enumerate() {
            let kind = table
                .column_by_id(*id)
                .map(|c| c.kind)
                .unwrap_or(ColumnKind::Tag);
            if kind == ColumnKind::Time {
                arrays.push(Arc::new(TimestampNanosecondArray::from_iter_values(
                    out.iter().map(|(_, r)| r.time),
                )));
            } else if pos < key_count {
                let values: Vec<Option<Value>> =
                    out.iter().map(|(k, _)| (&k[pos]).into()).collect();
                arrays.push(build_array(kind, values.iter().map(Option::as_ref)));
            } else {
                arrays.push(build_array(
                    kind,
                    out.iter()
                        .map(|(_, r)| r.values.iter().find(|(c, _)| c == id).map(|(_, v)| v)),
                ));
            }
        }
        RecordBatch::try_new(schema, arrays)
    }
}

fn collect<'a>(
    node: &'a Node,
    filters: &[Vec<&ColumnFilter>],
    keys: &mut Vec<KeyValue>,
    out: &mut Vec<(Vec<KeyValue>, &'a Row)>,
    now: Instant,
    ttl: Duration,
) {
    match node {
        Node::Rows(rows) => {
            for row in rows {
                if now.saturating_duration_since(row.inserted) < ttl {
                    out.push((keys.clone(), row));
                }
            }
        }
        Node::Keys(children) => {
            let level = &filters[keys.len()];
            // An equality (or IN) filter is answered by lookups instead of a scan.
            let lookup = level.iter().find(|f| !f.negated);
            let mut visit = |key: &KeyValue, child: &'a Node, keys: &mut Vec<KeyValue>| {
                if all_match(level, key) {
                    keys.push(key.clone());
                    collect(child, filters, keys, out, now, ttl);
                    keys.pop();
                }
            };
            match lookup {
                Some(f) => {
                    let mut values: Vec<&KeyValue> = f.values.iter().collect();
                    values.sort();
                    values.dedup();
                    for value in values {
                        if let Some((key, child)) = children.get_key_value(value) {
                            visit(key, child, keys);
                        }
                    }
                }
                None => {
                    for (key, child) in children {
                        visit(key, child, keys);
                    }
                }
            }
        }
    }
}
