//! The queryable in-memory buffer: per table, time chunks of columnar data.
//!
//! Rows are appended to Arrow builders in arrival order; each row also records its *series*
//! (the set of tag values), numbered per chunk in first-seen order. A query asks a chunk for a
//! [`RecordBatch`]: the chunk sorts its rows by series and then time with a counting sort (rows
//! of one series usually arrive in time order already, which the chunk tracks, so the sort is
//! linear), merges rows with the same series and time (per column, the last value written
//! wins), and caches the result until more rows arrive.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hashbrown::HashMap;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BooleanBuilder, DictionaryArray, Float64Builder, Int32Array,
    Int64Builder, PrimitiveBuilder, StringArray, StringBuilder, TimestampNanosecondArray,
    UInt32Array, UInt64Builder,
};
use arrow::compute::take;
use arrow::datatypes::ArrowPrimitiveType;
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use gnomon_catalog::{ColumnId, ColumnKind, DbId, FieldType, TableId, TableSchema};
use parking_lot::{Mutex, RwLock};

use crate::batch::{ColumnData, TableBatch, WriteBatch, NULL_TAG};

/// Name of the time column in every table.
pub const TIME_COLUMN: &str = "time";

/// The Arrow schema of a table as queries see it: columns sorted by name (InfluxDB 3 Core's
/// `SELECT *` order), tags as `Dictionary(Int32, Utf8)`, `time` as non-null `Timestamp(ns)`.
pub fn arrow_schema(table: &TableSchema) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .columns()
        .iter()
        .map(|c| {
            Field::new(
                c.name.as_ref(),
                arrow_type(c.kind),
                c.kind != ColumnKind::Time,
            )
        })
        .collect();
    fields.sort_by(|a, b| a.name().cmp(b.name()));
    Arc::new(Schema::new(fields))
}

pub fn arrow_type(kind: ColumnKind) -> DataType {
    match kind {
        ColumnKind::Tag => {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        }
        ColumnKind::Time => DataType::Timestamp(TimeUnit::Nanosecond, None),
        ColumnKind::Field(FieldType::Float) => DataType::Float64,
        ColumnKind::Field(FieldType::Integer) => DataType::Int64,
        ColumnKind::Field(FieldType::UInteger) => DataType::UInt64,
        ColumnKind::Field(FieldType::String) => DataType::Utf8,
        ColumnKind::Field(FieldType::Boolean) => DataType::Boolean,
    }
}

type SharedTable = Arc<Mutex<TableBuffer>>;

/// Per table, per chunk start: the highest WAL sequence whose rows of that chunk are already
/// in a persisted file. Replay skips those rows so that nothing is loaded twice.
#[derive(Debug, Clone, Default)]
pub struct PersistedWatermarks {
    chunks: HashMap<(DbId, TableId), BTreeMap<i64, u64>>,
}

impl PersistedWatermarks {
    /// Records that the rows of chunk `start` of the table written by WAL entries up to
    /// `sequence` are persisted.
    pub fn insert(&mut self, db: DbId, table: TableId, start: i64, sequence: u64) {
        let slot = self
            .chunks
            .entry((db, table))
            .or_default()
            .entry(start)
            .or_insert(0);
        *slot = (*slot).max(sequence);
    }

    fn covers(&self, db: DbId, table: TableId, start: i64, sequence: u64) -> bool {
        self.chunks
            .get(&(db, table))
            .and_then(|c| c.get(&start))
            .is_some_and(|&s| sequence <= s)
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// What the persister needs to know about a chunk to decide whether to write it.
#[derive(Debug, Clone)]
pub struct ChunkInfo {
    pub db_id: DbId,
    pub table_id: TableId,
    /// Chunk start (ns, a multiple of the chunk duration).
    pub start: i64,
    pub rows: usize,
    pub size_bytes: usize,
    /// When a write last added rows to the chunk.
    pub last_write: Instant,
}

/// A chunk taken out of the writable set for persisting. It stays queryable until
/// [`Buffer::drop_frozen`]; writes to its time range meanwhile go to a new chunk.
#[derive(Debug, Clone)]
pub struct FrozenChunk {
    pub db_id: DbId,
    pub table_id: TableId,
    pub start: i64,
    pub end: i64,
    /// Unique per buffer: tells two frozen chunks of the same time range apart.
    pub id: u64,
    pub rows: usize,
    /// Every row of the chunk comes from a WAL entry with a sequence up to this one, and no
    /// later entry adds rows to it.
    pub max_sequence: u64,
}

/// One chunk's rows, for queries: `[start, end)` is the chunk's time range.
#[derive(Debug, Clone)]
pub struct ChunkBatch {
    pub start: i64,
    pub end: i64,
    pub batch: RecordBatch,
}

/// All buffered data of the server.
#[derive(Debug)]
pub struct Buffer {
    chunk_duration_ns: i64,
    tables: RwLock<HashMap<(DbId, TableId), SharedTable>>,
    /// Set during replay: rows already in persisted files are skipped.
    watermarks: RwLock<PersistedWatermarks>,
    last_sequence: AtomicU64,
    next_frozen_id: AtomicU64,
}

impl Buffer {
    pub fn new(chunk_duration_ns: i64) -> Self {
        assert!(chunk_duration_ns > 0);
        Self {
            chunk_duration_ns,
            tables: RwLock::new(HashMap::new()),
            watermarks: RwLock::new(PersistedWatermarks::default()),
            last_sequence: AtomicU64::new(0),
            next_frozen_id: AtomicU64::new(1),
        }
    }

    pub fn chunk_duration_ns(&self) -> i64 {
        self.chunk_duration_ns
    }

    /// Rows covered by `watermarks` are skipped by later [`Buffer::apply_entry`] calls.
    pub fn set_watermarks(&self, watermarks: PersistedWatermarks) {
        *self.watermarks.write() = watermarks;
    }

    /// Appends a write that is not part of the WAL's numbering (tests, tools).
    pub fn apply(&self, batch: &WriteBatch) {
        let seq = self.last_sequence.load(Ordering::Relaxed) + 1;
        self.apply_entry(seq, batch);
    }

    /// Appends durable WAL entry `sequence`. Called by the WAL in sequence order.
    pub fn apply_entry(&self, sequence: u64, batch: &WriteBatch) {
        let watermarks = self.watermarks.read();
        let skip = |table: TableId, start: i64| {
            !watermarks.is_empty() && watermarks.covers(batch.db_id, table, start, sequence)
        };
        for table in &batch.tables {
            let buffer = self.table_or_create(batch.db_id, table.table_id);
            buffer
                .lock()
                .append(table, self.chunk_duration_ns, sequence, &|start| {
                    skip(table.table_id, start)
                });
        }
        self.last_sequence.fetch_max(sequence, Ordering::Relaxed);
    }

    /// The highest WAL sequence applied.
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence.load(Ordering::Relaxed)
    }

    /// The lowest WAL sequence that still has rows only in memory (writable or frozen chunks).
    pub fn min_buffered_sequence(&self) -> Option<u64> {
        self.tables
            .read()
            .values()
            .filter_map(|t| {
                let t = t.lock();
                t.chunks
                    .values()
                    .chain(t.frozen.iter().map(|(_, _, c)| c))
                    .filter(|c| c.rows > 0)
                    .map(|c| c.min_seq)
                    .min()
            })
            .min()
    }

    /// The writable chunks.
    pub fn chunk_infos(&self) -> Vec<ChunkInfo> {
        let tables = self.tables.read();
        let mut out = Vec::new();
        for (&(db_id, table_id), table) in tables.iter() {
            for (&start, chunk) in table.lock().chunks.iter() {
                if chunk.rows == 0 {
                    continue;
                }
                out.push(ChunkInfo {
                    db_id,
                    table_id,
                    start,
                    rows: chunk.rows,
                    size_bytes: chunk.size_bytes(),
                    last_write: chunk.last_write.unwrap_or_else(Instant::now),
                });
            }
        }
        out
    }

    /// Moves the writable chunk `start` of the table to the frozen set.
    pub fn freeze(&self, db: DbId, table: TableId, start: i64) -> Option<FrozenChunk> {
        let buffer = self.tables.read().get(&(db, table)).cloned()?;
        let mut buffer = buffer.lock();
        let chunk = buffer.chunks.remove(&start)?;
        let id = self.next_frozen_id.fetch_add(1, Ordering::Relaxed);
        let frozen = FrozenChunk {
            db_id: db,
            table_id: table,
            start,
            end: start.saturating_add(self.chunk_duration_ns),
            id,
            rows: chunk.rows,
            max_sequence: chunk.max_seq,
        };
        buffer.frozen.push((start, id, chunk));
        Some(frozen)
    }

    /// Every frozen chunk (left over by a failed persist, or being persisted).
    pub fn frozen_chunks(&self) -> Vec<FrozenChunk> {
        let tables = self.tables.read();
        let mut out = Vec::new();
        for (&(db_id, table_id), table) in tables.iter() {
            for (start, id, chunk) in table.lock().frozen.iter() {
                out.push(FrozenChunk {
                    db_id,
                    table_id,
                    start: *start,
                    end: start.saturating_add(self.chunk_duration_ns),
                    id: *id,
                    rows: chunk.rows,
                    max_sequence: chunk.max_seq,
                });
            }
        }
        out
    }

    /// The rows of a frozen chunk (sorted by series then time, deduplicated), not cached.
    pub fn frozen_batch(&self, frozen: &FrozenChunk, schema: &TableSchema) -> Option<RecordBatch> {
        let buffer = self
            .tables
            .read()
            .get(&(frozen.db_id, frozen.table_id))
            .cloned()?;
        let mut buffer = buffer.lock();
        let (_, _, chunk) = buffer
            .frozen
            .iter_mut()
            .find(|(_, id, _)| *id == frozen.id)?;
        let target = arrow_schema(schema);
        let batch = chunk.record_batch(schema, &target);
        chunk.cached = None;
        batch
    }

    /// Forgets a frozen chunk once its rows are in a persisted file.
    pub fn drop_frozen(&self, frozen: &FrozenChunk) {
        if let Some(buffer) = self
            .tables
            .read()
            .get(&(frozen.db_id, frozen.table_id))
            .cloned()
        {
            buffer.lock().frozen.retain(|(_, id, _)| *id != frozen.id);
        }
    }

    fn table_or_create(&self, db: DbId, table: TableId) -> Arc<Mutex<TableBuffer>> {
        if let Some(t) = self.tables.read().get(&(db, table)) {
            return Arc::clone(t);
        }
        Arc::clone(self.tables.write().entry((db, table)).or_default())
    }

    /// The table's buffered rows as record batches of `arrow_schema(schema)`, one per time chunk
    /// overlapping `[min_time, max_time]` (inclusive), each sorted by series and time.
    pub fn record_batches(
        &self,
        db: DbId,
        schema: &TableSchema,
        min_time: i64,
        max_time: i64,
    ) -> Vec<RecordBatch> {
        self.chunk_batches(db, schema, min_time, max_time)
            .into_iter()
            .map(|c| c.batch)
            .collect()
    }

    /// Like [`Buffer::record_batches`], with each chunk's time range. Frozen chunks come
    /// before the writable chunk of the same range: their rows were written earlier.
    pub fn chunk_batches(
        &self,
        db: DbId,
        schema: &TableSchema,
        min_time: i64,
        max_time: i64,
    ) -> Vec<ChunkBatch> {
        let Some(table) = self.tables.read().get(&(db, schema.id)).cloned() else {
            return Vec::new();
        };
        let target = arrow_schema(schema);
        let mut table = table.lock();
        let chunk_duration = self.chunk_duration_ns;
        let first = min_time
            .div_euclid(chunk_duration)
            .saturating_mul(chunk_duration);
        let mut out = Vec::new();
        let TableBuffer { chunks, frozen } = &mut *table;
        for (start, _, chunk) in frozen.iter_mut() {
            if *start >= first && *start <= max_time {
                if let Some(batch) = chunk.record_batch(schema, &target) {
                    out.push(ChunkBatch {
                        start: *start,
                        end: start.saturating_add(chunk_duration),
                        batch,
                    });
                }
            }
        }
        for (start, chunk) in chunks
            .range_mut(first..)
            .take_while(|(start, _)| **start <= max_time)
        {
            if let Some(batch) = chunk.record_batch(schema, &target) {
                out.push(ChunkBatch {
                    start: *start,
                    end: start.saturating_add(chunk_duration),
                    batch,
                });
            }
        }
        // Stable: frozen chunks (pushed first, in freeze order) stay ahead within a range.
        out.sort_by_key(|c| c.start);
        out
    }

    /// Drops every buffered row of the tables `gone` names (deleted tables); returns how many
    /// tables were dropped.
    pub fn drop_tables(&self, gone: impl Fn(DbId, TableId) -> bool) -> usize {
        let mut tables = self.tables.write();
        let before = tables.len();
        tables.retain(|&(db, table), _| !gone(db, table));
        before - tables.len()
    }

    /// Drops the writable chunks wholly older than `cutoff(db)` (retention); frozen chunks
    /// are left to their snapshot. Returns how many chunks were dropped.
    pub fn drop_expired_chunks(&self, cutoff: impl Fn(DbId) -> Option<i64>) -> usize {
        let duration = self.chunk_duration_ns;
        let mut dropped = 0;
        for (&(db, _), table) in self.tables.read().iter() {
            let Some(cutoff) = cutoff(db) else {
                continue;
            };
            let mut table = table.lock();
            let before = table.chunks.len();
            table
                .chunks
                .retain(|&start, _| start.saturating_add(duration) > cutoff);
            dropped += before - table.chunks.len();
        }
        dropped
    }

    /// Approximate bytes held by the buffer.
    pub fn size_bytes(&self) -> usize {
        self.tables
            .read()
            .values()
            .map(|t| {
                let t = t.lock();
                t.chunks
                    .values()
                    .chain(t.frozen.iter().map(|(_, _, c)| c))
                    .map(Chunk::size_bytes)
                    .sum::<usize>()
            })
            .sum()
    }

    /// Rows held by the buffer (before deduplication).
    pub fn row_count(&self) -> usize {
        self.tables
            .read()
            .values()
            .map(|t| {
                let t = t.lock();
                t.chunks
                    .values()
                    .chain(t.frozen.iter().map(|(_, _, c)| c))
                    .map(|c| c.rows)
                    .sum::<usize>()
            })
            .sum()
    }
}

#[derive(Debug, Default)]
struct TableBuffer {
    /// Keyed by chunk start time (ns, multiple of the chunk duration).
    chunks: BTreeMap<i64, Chunk>,
    /// Chunks being persisted: `(start, frozen id, chunk)`, in freeze order.
    frozen: Vec<(i64, u64, Chunk)>,
}

impl TableBuffer {
    fn append(
        &mut self,
        batch: &TableBatch,
        chunk_duration: i64,
        sequence: u64,
        skip: &dyn Fn(i64) -> bool,
    ) {
        let chunk_of = |t: i64| t.div_euclid(chunk_duration) * chunk_duration;
        let first = match batch.time.first() {
            Some(&t) => chunk_of(t),
            None => return,
        };
        if batch.time.iter().all(|&t| chunk_of(t) == first) {
            if skip(first) {
                return;
            }
            let rows: Vec<u32> = (0..batch.time.len() as u32).collect();
            self.chunk(first).append(batch, &rows, sequence);
            return;
        }
        let mut by_chunk: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, &t) in batch.time.iter().enumerate() {
            by_chunk.entry(chunk_of(t)).or_default().push(i as u32);
        }
        for (start, rows) in by_chunk {
            if skip(start) {
                continue;
            }
            self.chunk(start).append(batch, &rows, sequence);
        }
    }

    /// The writable chunk starting at `start`, created if needed.
    ///
    /// Writes usually move forward in time at a steady rate, so a chunk that becomes the
    /// newest will likely end up about as large as the newest one before it. Its columns are
    /// sized for that many rows up front: grown by doubling instead, each doubling copies the
    /// whole column inside one write's apply (tens of milliseconds for a large chunk, which
    /// every write queued behind it waits for). Older chunks (late or backfilled data) start
    /// empty: their size says nothing about a neighbour's.
    fn chunk(&mut self, start: i64) -> &mut Chunk {
        if !self.chunks.contains_key(&start) {
            let reserve = match self.chunks.last_key_value() {
                Some((&newest, chunk)) if start > newest => Reserve {
                    rows: chunk.rows.min(MAX_RESERVED_ROWS),
                    series: chunk.series.len().min(MAX_RESERVED_ROWS),
                },
                _ => Reserve::default(),
            };
            self.chunks.insert(start, Chunk::new(reserve));
        }
        self.chunks
            .get_mut(&start)
            .expect("inserted above if it was missing")
    }
}

/// Rows a new chunk's columns are sized for at most (see [`TableBuffer::chunk`]): 32 MiB
/// per 8-byte column. Beyond it columns grow by doubling again.
const MAX_RESERVED_ROWS: usize = 4 << 20;

/// How many rows and series a new chunk is sized for.
#[derive(Debug, Default, Clone, Copy)]
struct Reserve {
    rows: usize,
    series: usize,
}

/// Rows of one table within one time chunk.
#[derive(Debug, Default)]
struct Chunk {
    /// Lowest and highest WAL sequence that added rows.
    min_seq: u64,
    max_seq: u64,
    last_write: Option<Instant>,
    rows: usize,
    time: Vec<i64>,
    columns: HashMap<ColumnId, ColumnStore>,
    /// Per row: the series it belongs to.
    series_of_row: Vec<u32>,
    series_index: HashMap<Vec<(ColumnId, u32)>, u32>,
    series: Vec<SeriesState>,
    cached: Option<(usize, RecordBatch)>,
    /// Rows the chunk's columns are sized for when created.
    reserved_rows: usize,
}

#[derive(Debug, Clone, Copy)]
struct SeriesState {
    last_time: i64,
    /// False once a row arrived with a time not after the series' previous row: the series
    /// must be sorted (and may hold duplicates) when read.
    in_order: bool,
}

#[derive(Debug)]
enum ColumnStore {
    Tag {
        keys: Vec<u32>,
        values: Vec<Arc<str>>,
        lookup: HashMap<Arc<str>, u32>,
    },
    Float(Float64Builder),
    Integer(Int64Builder),
    UInteger(UInt64Builder),
    Boolean(BooleanBuilder),
    String(StringBuilder),
}

impl ColumnStore {
    /// A column for `data`'s type holding `existing_rows` nulls, sized for `capacity` rows.
    fn new(data: &ColumnData, existing_rows: usize, capacity: usize) -> Self {
        let capacity = capacity.max(existing_rows);
        let mut store = match data {
            ColumnData::Tag { .. } => ColumnStore::Tag {
                keys: Vec::with_capacity(capacity),
                values: Vec::new(),
                lookup: HashMap::new(),
            },
            ColumnData::Float { .. } => ColumnStore::Float(Float64Builder::with_capacity(capacity)),
            ColumnData::Integer { .. } => {
                ColumnStore::Integer(Int64Builder::with_capacity(capacity))
            }
            ColumnData::UInteger { .. } => {
                ColumnStore::UInteger(UInt64Builder::with_capacity(capacity))
            }
            ColumnData::Boolean { .. } => {
                ColumnStore::Boolean(BooleanBuilder::with_capacity(capacity))
            }
            // Value bytes per row vary too much to guess.
            ColumnData::String { .. } => ColumnStore::String(StringBuilder::new()),
        };
        store.append_nulls(existing_rows);
        store
    }

    fn len(&self) -> usize {
        match self {
            ColumnStore::Tag { keys, .. } => keys.len(),
            ColumnStore::Float(b) => b.len(),
            ColumnStore::Integer(b) => b.len(),
            ColumnStore::UInteger(b) => b.len(),
            ColumnStore::Boolean(b) => b.len(),
            ColumnStore::String(b) => b.len(),
        }
    }

    fn append_nulls(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        match self {
            ColumnStore::Tag { keys, .. } => keys.resize(keys.len() + n, NULL_TAG),
            ColumnStore::Float(b) => b.append_nulls(n),
            ColumnStore::Integer(b) => b.append_nulls(n),
            ColumnStore::UInteger(b) => b.append_nulls(n),
            ColumnStore::Boolean(b) => b.append_nulls(n),
            ColumnStore::String(b) => {
                for _ in 0..n {
                    b.append_null()
                }
            }
        }
    }

    /// Appends the values of `rows` of `data` (`all_rows`: `rows` is every row of `data`).
    fn append(&mut self, data: &ColumnData, rows: &[u32], all_rows: bool) {
        fn put<T: ArrowPrimitiveType>(
            b: &mut PrimitiveBuilder<T>,
            values: &[T::Native],
            valid: &Option<Vec<bool>>,
            rows: &[u32],
            all_rows: bool,
        ) {
            match (valid, all_rows) {
                (None, true) => b.append_slice(values),
                _ => {
                    for &r in rows {
                        let r = r as usize;
                        let ok = valid.as_ref().is_none_or(|v| v[r]);
                        b.append_option(ok.then_some(values[r]));
                    }
                }
            }
        }
        match (self, data) {
            (
                ColumnStore::Tag {
                    keys,
                    values,
                    lookup,
                },
                ColumnData::Tag {
                    dictionary,
                    keys: batch_keys,
                },
            ) => {
                // Map batch-local dictionary ids to chunk ids once per distinct value.
                let mapping: Vec<u32> = dictionary
                    .iter()
                    .map(|v| match lookup.get(v.as_str()) {
                        Some(&k) => k,
                        None => {
                            let v: Arc<str> = Arc::from(v.as_str());
                            values.push(Arc::clone(&v));
                            let k = (values.len() - 1) as u32;
                            lookup.insert(v, k);
                            k
                        }
                    })
                    .collect();
                keys.extend(rows.iter().map(|&r| match batch_keys[r as usize] {
                    NULL_TAG => NULL_TAG,
                    k => mapping[k as usize],
                }));
            }
            (ColumnStore::Float(b), ColumnData::Float { values, valid }) => {
                put(b, values, valid, rows, all_rows)
            }
            (ColumnStore::Integer(b), ColumnData::Integer { values, valid }) => {
                put(b, values, valid, rows, all_rows)
            }
            (ColumnStore::UInteger(b), ColumnData::UInteger { values, valid }) => {
                put(b, values, valid, rows, all_rows)
            }
            (ColumnStore::Boolean(b), ColumnData::Boolean { values, valid }) => {
                for &r in rows {
                    let r = r as usize;
                    let ok = valid.as_ref().is_none_or(|v| v[r]);
                    b.append_option(ok.then_some(values[r]));
                }
            }
            (ColumnStore::String(b), ColumnData::String { values, valid }) => {
                for &r in rows {
                    let r = r as usize;
                    if valid.as_ref().is_none_or(|v| v[r]) {
                        b.append_value(&values[r]);
                    } else {
                        b.append_null();
                    }
                }
            }
            // The catalog never changes a column's type, and ids are never reused.
            (store, data) => unreachable!(
                "column type changed: buffered {:?} vs batch {:?}",
                std::mem::discriminant(store),
                std::mem::discriminant(data)
            ),
        }
    }

    /// The first `rows` values as an Arrow array of `data_type`.
    fn to_array(&self, rows: usize) -> ArrayRef {
        let array: ArrayRef = match self {
            ColumnStore::Tag { keys, values, .. } => {
                let keys = Int32Array::from_iter(
                    keys[..rows]
                        .iter()
                        .map(|&k| (k != NULL_TAG).then_some(k as i32)),
                );
                let values = StringArray::from_iter_values(values.iter().map(|v| v.as_ref()));
                Arc::new(
                    DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values))
                        .expect("keys index the dictionary"),
                )
            }
            ColumnStore::Float(b) => Arc::new(b.finish_cloned()),
            ColumnStore::Integer(b) => Arc::new(b.finish_cloned()),
            ColumnStore::UInteger(b) => Arc::new(b.finish_cloned()),
            ColumnStore::Boolean(b) => Arc::new(b.finish_cloned()),
            ColumnStore::String(b) => Arc::new(b.finish_cloned()),
        };
        if array.len() > rows {
            array.slice(0, rows)
        } else {
            array
        }
    }

    fn size_bytes(&self) -> usize {
        match self {
            ColumnStore::Tag { keys, values, .. } => {
                keys.len() * 4 + values.iter().map(|v| v.len() + 48).sum::<usize>()
            }
            ColumnStore::Float(b) => b.len() * 8,
            ColumnStore::Integer(b) => b.len() * 8,
            ColumnStore::UInteger(b) => b.len() * 8,
            ColumnStore::Boolean(b) => b.len() / 8 + 1,
            ColumnStore::String(b) => b.values_slice().len() + b.len() * 4,
        }
    }
}

impl Chunk {
    fn new(reserve: Reserve) -> Self {
        Self {
            time: Vec::with_capacity(reserve.rows),
            series_of_row: Vec::with_capacity(reserve.rows),
            series_index: HashMap::with_capacity(reserve.series),
            series: Vec::with_capacity(reserve.series),
            reserved_rows: reserve.rows,
            ..Self::default()
        }
    }

    fn append(&mut self, batch: &TableBatch, rows: &[u32], sequence: u64) {
        if self.rows == 0 {
            self.min_seq = sequence;
        }
        self.min_seq = self.min_seq.min(sequence);
        self.max_seq = self.max_seq.max(sequence);
        self.last_write = Some(Instant::now());
        let all_rows = rows.len() == batch.time.len();
        let before = self.rows;
        for col in &batch.columns {
            let store = self
                .columns
                .entry(col.column_id)
                .or_insert_with(|| ColumnStore::new(&col.data, before, self.reserved_rows));
            store.append(&col.data, rows, all_rows);
        }
        self.rows += rows.len();
        for store in self.columns.values_mut() {
            let missing = self.rows - store.len();
            store.append_nulls(missing);
        }
        self.time
            .extend(rows.iter().map(|&r| batch.time[r as usize]));
        self.assign_series(before);
    }

    /// Numbers the series of rows `from..` and tracks per-series time order.
    fn assign_series(&mut self, from: usize) {
        let mut tag_columns: Vec<(ColumnId, &Vec<u32>)> = self
            .columns
            .iter()
            .filter_map(|(id, c)| match c {
                ColumnStore::Tag { keys, .. } => Some((*id, keys)),
                _ => None,
            })
            .collect();
        tag_columns.sort_unstable_by_key(|(id, _)| *id);
        let mut key = Vec::with_capacity(tag_columns.len());
        for row in from..self.rows {
            key.clear();
            key.extend(
                tag_columns
                    .iter()
                    .filter(|(_, keys)| keys[row] != NULL_TAG)
                    .map(|(id, keys)| (*id, keys[row])),
            );
            let next = self.series.len() as u32;
            let time = self.time[row];
            let id = match self.series_index.get(&key) {
                Some(&id) => {
                    let state = &mut self.series[id as usize];
                    if time <= state.last_time {
                        state.in_order = false;
                    }
                    state.last_time = state.last_time.max(time);
                    id
                }
                None => {
                    self.series_index.insert(key.clone(), next);
                    self.series.push(SeriesState {
                        last_time: time,
                        in_order: true,
                    });
                    next
                }
            };
            self.series_of_row.push(id);
        }
    }

    fn size_bytes(&self) -> usize {
        self.time.len() * 12
            + self
                .columns
                .values()
                .map(ColumnStore::size_bytes)
                .sum::<usize>()
    }

    fn record_batch(&mut self, schema: &TableSchema, target: &SchemaRef) -> Option<RecordBatch> {
        if self.rows == 0 {
            return None;
        }
        if let Some((rows, batch)) = &self.cached {
            if *rows == self.rows && batch.schema() == *target {
                return Some(batch.clone());
            }
        }
        let order = self.sorted_order();
        let rows = self.rows;
        let mut arrays = Vec::with_capacity(target.fields().len());
        for field in target.fields() {
            let column = schema
                .column(field.name())
                .expect("schema built from this table");
            let array: ArrayRef = match column.kind {
                ColumnKind::Time => Arc::new(TimestampNanosecondArray::from(self.time.clone())),
                _ => match self.columns.get(&column.id) {
                    Some(store) => store.to_array(rows),
                    None => arrow::array::new_null_array(field.data_type(), rows),
                },
            };
            arrays.push(order.apply(&array));
        }
        let batch = RecordBatch::try_new(Arc::clone(target), arrays)
            .expect("arrays built to the target schema");
        self.cached = Some((self.rows, batch.clone()));
        Some(batch)
    }

    /// The order in which rows are read: by series, then time; rows with equal series and
    /// time collapse into one.
    fn sorted_order(&self) -> RowOrder {
        let n = self.rows;
        // Counting sort by series id: stable, so arrival order is kept within a series.
        let mut starts = vec![0u32; self.series.len() + 1];
        for &s in &self.series_of_row {
            starts[s as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut perm = vec![0u32; n];
        for (row, &s) in self.series_of_row.iter().enumerate() {
            perm[next[s as usize] as usize] = row as u32;
            next[s as usize] += 1;
        }
        let mut groups: Vec<(u32, u32)> = Vec::new(); // (start, len) in perm of duplicate runs
        for (s, state) in self.series.iter().enumerate() {
            if state.in_order {
                continue;
            }
            let range = starts[s] as usize..starts[s + 1] as usize;
            let slice = &mut perm[range.clone()];
            slice.sort_by_key(|&r| self.time[r as usize]); // stable: later writes stay later
            let mut i = 0;
            while i < slice.len() {
                let t = self.time[slice[i] as usize];
                let mut j = i + 1;
                while j < slice.len() && self.time[slice[j] as usize] == t {
                    j += 1;
                }
                if j - i > 1 {
                    groups.push(((range.start + i) as u32, (j - i) as u32));
                }
                i = j;
            }
        }
        RowOrder { perm, groups }
    }
}

/// A permutation of a chunk's rows plus the runs of rows that are one logical row.
struct RowOrder {
    perm: Vec<u32>,
    /// Runs `(start, len)` in `perm` of rows with the same series and time, in write order.
    groups: Vec<(u32, u32)>,
}

impl RowOrder {
    /// Reorders `array`, and collapses each duplicate run to its last non-null value.
    fn apply(&self, array: &ArrayRef) -> ArrayRef {
        let identity =
            self.groups.is_empty() && self.perm.iter().enumerate().all(|(i, &r)| i as u32 == r);
        if identity {
            return Arc::clone(array);
        }
        let mut indices: Vec<u32> = Vec::with_capacity(self.perm.len());
        let mut pos = 0usize;
        for &(start, len) in &self.groups {
            let (start, len) = (start as usize, len as usize);
            indices.extend_from_slice(&self.perm[pos..start]);
            let run = &self.perm[start..start + len];
            let pick = run
                .iter()
                .rev()
                .find(|&&r| array.is_valid(r as usize))
                .unwrap_or(&run[len - 1]);
            indices.push(*pick);
            pos = start + len;
        }
        indices.extend_from_slice(&self.perm[pos..]);
        take(array.as_ref(), &UInt32Array::from(indices), None).expect("indices in range")
    }
}
