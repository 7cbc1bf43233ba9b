//! From parsed lines to a [`WriteBatch`]: schema-on-write against the catalog.
//!
//! Every line is resolved in order: its table, then its tags, then its fields (the order in
//! which InfluxDB 3 Core creates columns, so conflicts are reported the same way). Most writes
//! only touch schema that already exists, so a first pass resolves against an immutable
//! catalog snapshot without taking any lock. Only when a line needs a new database, table or
//! column does the whole request go through a catalog transaction, where each line's schema
//! changes are undone again (savepoint) if the line is rejected. The transaction is committed —
//! and so persisted — before the batch is handed to the WAL, which is what makes a replayed
//! batch always find its columns in the catalog.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use gnomon_catalog::{
    Catalog, CatalogError, CatalogTransaction, ColumnId, ColumnKind, DbId, FieldType, Savepoint,
    TableId,
};
use gnomon_line_protocol::{FieldValue, Line, LineError, Precision};

use crate::batch::{BatchColumn, ColumnData, TableBatch, WriteBatch, NULL_TAG};
use crate::WriteBufferError;

/// What to do with a write request's lines.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub precision: Precision,
    /// Write the good lines and report the bad ones (v3 default), or write nothing if any line
    /// is bad (v1, v2, and v3 with `accept_partial=false`).
    pub accept_partial: bool,
    /// Server time used for lines without a timestamp.
    pub now_ns: i64,
}

/// The outcome of validation: the rows to write (if any) and the rejected lines.
#[derive(Debug)]
pub struct Validated {
    pub batch: Option<WriteBatch>,
    pub db_id: Option<DbId>,
    /// Rejected lines in line order. With `accept_partial = false` this holds at most the first
    /// bad line and `batch` is `None`.
    pub errors: Vec<LineError>,
    pub lines_accepted: usize,
    /// A rejected line would have passed a catalog limit (databases, tables, columns): the
    /// server answers 422 rather than 400.
    pub limit_exceeded: bool,
}

/// Why resolving a line against the schema stopped.
enum Unresolved {
    /// The line needs a schema change: retry the request inside a transaction.
    NeedsChange,
    /// The line is invalid; the message goes into its line error.
    Invalid(String),
    /// The line would pass a catalog limit; the message goes into its line error.
    OverLimit(String),
}

impl From<CatalogError> for Unresolved {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::LimitExceeded(_) => Unresolved::OverLimit(e.to_string()),
            e => Unresolved::Invalid(e.to_string()),
        }
    }
}

/// Schema lookups shared by the lock-free pass and the transactional pass.
trait Schema {
    fn table(&mut self, name: &str) -> Result<TableId, Unresolved>;
    fn column(
        &mut self,
        table: TableId,
        name: &str,
        kind: ColumnKind,
    ) -> Result<ColumnId, Unresolved>;
    /// Called before a line is resolved.
    fn begin_line(&mut self) {}
    /// Called when the line just resolved is rejected: undo its schema changes.
    fn reject_line(&mut self) {}
}

/// Resolves against a snapshot: anything missing means "needs a change".
struct SnapshotSchema<'s> {
    db: &'s gnomon_catalog::DatabaseSchema,
}

impl Schema for SnapshotSchema<'_> {
    fn table(&mut self, name: &str) -> Result<TableId, Unresolved> {
        self.db
            .table(name)
            .map(|t| t.id)
            .ok_or(Unresolved::NeedsChange)
    }

    fn column(
        &mut self,
        table: TableId,
        name: &str,
        kind: ColumnKind,
    ) -> Result<ColumnId, Unresolved> {
        let table = self.db.table_by_id(table).ok_or(Unresolved::NeedsChange)?;
        match table.column(name) {
            Some(col) if col.kind == kind => Ok(col.id),
            // A conflict is reported by the transaction, which words it exactly like a
            // creation attempt would.
            Some(_) | None => Err(Unresolved::NeedsChange),
        }
    }
}

/// Resolves inside a transaction, creating what is missing.
struct TxnSchema<'t, 'c> {
    txn: &'t mut CatalogTransaction<'c>,
    db: DbId,
    savepoint: Option<Savepoint>,
}

impl Schema for TxnSchema<'_, '_> {
    fn table(&mut self, name: &str) -> Result<TableId, Unresolved> {
        Ok(self.txn.table_or_create(self.db, name)?)
    }

    fn column(
        &mut self,
        table: TableId,
        name: &str,
        kind: ColumnKind,
    ) -> Result<ColumnId, Unresolved> {
        Ok(self.txn.column_or_create(self.db, table, name, kind)?)
    }

    fn begin_line(&mut self) {
        self.savepoint = Some(self.txn.savepoint());
    }

    fn reject_line(&mut self) {
        if let Some(sp) = self.savepoint.take() {
            self.txn.rollback_to(sp);
        }
    }
}

/// Bodies at least this long are validated in two halves on two threads when the schema
/// already holds everything they need: the write waits half as long for its CPU work, which is
/// most of a durable write's latency when the machine is not saturated.
const SPLIT_MIN_BYTES: usize = 256 * 1024;

/// Splits running at once; beyond this, bodies are validated on the calling thread alone (the
/// cores are busy anyway, and threads are not spawned without bound).
static SPLITS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Bodies at least this long are parsed with the async worker handed over to another thread
/// (see [`off_the_async_workers`]); below it the hand-over costs more than it saves.
const BLOCKING_MIN_BYTES: usize = 64 * 1024;

/// Runs CPU-bound `f` without holding up the async runtime: on a multi-threaded runtime the
/// current worker's other tasks move to another thread first (`block_in_place`). Parsing a
/// large body takes milliseconds; done on a worker it delays everything queued there (other
/// connections' reads, the WAL flusher's wake-ups, writers waiting to answer), which showed
/// up directly in the latency of concurrent writes. Elsewhere (a current-thread runtime,
/// no runtime) `f` simply runs here.
fn off_the_async_workers<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Parses `body` and validates its lines for database `db_name`, building the batch to write.
///
/// Lines are parsed as they are resolved, never collected: a parsed line lives only until its
/// values are in the batch builder, so a 5,000-line request touches a few kilobytes of line
/// structures instead of megabytes. When a line needs a schema change, the body is parsed a
/// second time inside the catalog transaction (parsing is deterministic and that case is rare:
/// the first writes of a table).
///
/// Request-level problems (bad database name, database limit, storage errors) are returned as
/// `Err`; per-line problems end up in [`Validated::errors`].
pub async fn validate_body(
    catalog: &Catalog,
    db_name: &str,
    body: &str,
    opts: WriteOptions,
) -> Result<Validated, WriteBufferError> {
    // Lock-free pass: enough for every write that adds no schema.
    let snapshot = catalog.snapshot();
    if let Some(db) = snapshot.database(db_name) {
        let resolve = || {
            if body.len() >= SPLIT_MIN_BYTES {
                resolve_split(db, body, opts)
            } else {
                resolve_all(&mut SnapshotSchema { db }, db.id, body, opts)
            }
        };
        let done = if body.len() >= BLOCKING_MIN_BYTES {
            off_the_async_workers(resolve)
        } else {
            resolve()
        };
        if let Some(piece) = done {
            return piece.into_validated();
        }
    }

    // Some line needs a schema change: redo the request under the catalog lock.
    let mut txn = catalog.begin().await;
    let db_id = txn
        .database_or_create(db_name)
        .map_err(WriteBufferError::Catalog)?;
    let validated = {
        let mut schema = TxnSchema {
            txn: &mut txn,
            db: db_id,
            savepoint: None,
        };
        resolve_all(&mut schema, db_id, body, opts)
            .expect("a transaction resolves or rejects every line")
            .into_validated()?
    };
    // Rejected as a whole: drop the transaction so that no schema change survives.
    if validated.batch.is_some() || opts.accept_partial {
        txn.commit().await.map_err(WriteBufferError::Catalog)?;
    }
    Ok(validated)
}

/// The result of resolving part of a body.
struct Piece {
    validated: Validated,
    /// Lines parsed (blank and comment lines excluded): the line-number offset of whatever
    /// follows this piece.
    lines_seen: usize,
}

impl Piece {
    fn into_validated(self) -> Result<Validated, WriteBufferError> {
        if self.lines_seen == 0 {
            return Err(WriteBufferError::EmptyWrite);
        }
        Ok(self.validated)
    }

    /// This piece followed by `next`, which came right after it in the body.
    fn then(mut self, mut next: Piece, opts: WriteOptions) -> Piece {
        for e in &mut next.validated.errors {
            e.line_number += self.lines_seen;
        }
        if !opts.accept_partial {
            // All or nothing: the first bad line of the body decides.
            if !self.validated.errors.is_empty() {
                return self;
            }
            if !next.validated.errors.is_empty() {
                next.lines_seen += self.lines_seen;
                return next;
            }
        }
        let (a, b) = (&mut self.validated, next.validated);
        a.batch = match (a.batch.take(), b.batch) {
            (Some(mut first), Some(second)) => {
                // Same database; the buffer applies table batches in order, so the second
                // half's rows still win over the first's.
                first.tables.extend(second.tables);
                Some(first)
            }
            (first, second) => first.or(second),
        };
        a.db_id = a.db_id.or(b.db_id);
        a.errors.extend(b.errors);
        a.lines_accepted += b.lines_accepted;
        a.limit_exceeded |= b.limit_exceeded;
        self.lines_seen += next.lines_seen;
        self
    }
}

/// Resolves `body` against the snapshot `db` in two halves at once, cut at a line boundary.
/// `None` if either half needs a schema change.
fn resolve_split(
    db: &gnomon_catalog::DatabaseSchema,
    body: &str,
    opts: WriteOptions,
) -> Option<Piece> {
    let whole = || resolve_all(&mut SnapshotSchema { db }, db.id, body, opts);
    let cut = match memchr::memchr(b'\n', &body.as_bytes()[body.len() / 2..]) {
        Some(i) => body.len() / 2 + i + 1,
        None => return whole(),
    };
    // Asked once: on Linux the answer comes from reading cgroup files.
    static PARALLELISM: OnceLock<usize> = OnceLock::new();
    let parallel =
        *PARALLELISM.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if SPLITS_IN_FLIGHT.fetch_add(1, Ordering::Relaxed) >= parallel {
        SPLITS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        return whole();
    }
    let (head, tail) = body.split_at(cut);
    let (first, second) = std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("gnomon-validate".into())
            .spawn_scoped(scope, || {
                resolve_all(&mut SnapshotSchema { db }, db.id, tail, opts)
            });
        let first = resolve_all(&mut SnapshotSchema { db }, db.id, head, opts);
        let second = match spawned {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had: do it here.
            Err(_) => resolve_all(&mut SnapshotSchema { db }, db.id, tail, opts),
        };
        (first, second)
    });
    SPLITS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    Some(first?.then(second?, opts))
}

/// Parses and resolves every line of `body` in order. Returns `None` as soon as a line needs a
/// schema change that `schema` cannot make.
fn resolve_all<'a, S: Schema>(
    schema: &mut S,
    db_id: DbId,
    body: &'a str,
    opts: WriteOptions,
) -> Option<Piece> {
    let mut builder = BatchBuilder::default();
    let mut errors = Vec::new();
    let mut accepted = 0usize;
    let mut lines_seen = 0usize;
    let mut limit_exceeded = false;
    let mut memo: Option<Memo<'a>> = None;
    for line in gnomon_line_protocol::parse_lines(body) {
        lines_seen += 1;
        let error = match line {
            Err(e) => e,
            Ok(line) => {
                schema.begin_line();
                match resolve_line(schema, &line, opts, &memo) {
                    Ok((time, resolved)) => {
                        if builder.tables.is_empty() {
                            // Lines of one body are usually alike: size the columns for
                            // as many rows as lines like the first fit in the body.
                            builder.rows_hint = (body.len() / (line.raw.len() + 1)).min(1 << 20);
                        }
                        match resolved {
                            None => {
                                let memo = memo.as_ref().expect("matched the memo");
                                builder.push(memo.table, time, &line, &memo.ids);
                            }
                            Some((table, ids)) => {
                                builder.push(table, time, &line, &ids);
                                memo = Some(Memo { line, table, ids });
                            }
                        }
                        accepted += 1;
                        continue;
                    }
                    Err(rejected) => {
                        let message = match rejected {
                            Unresolved::NeedsChange => return None,
                            Unresolved::OverLimit(message) => {
                                limit_exceeded = true;
                                message
                            }
                            Unresolved::Invalid(message) => message,
                        };
                        schema.reject_line();
                        LineError {
                            line_number: line.line_number,
                            original_line: line.raw.to_string(),
                            message,
                        }
                    }
                }
            }
        };
        errors.push(error);
        if !opts.accept_partial {
            return Some(Piece {
                validated: Validated {
                    batch: None,
                    db_id: Some(db_id),
                    errors,
                    lines_accepted: 0,
                    limit_exceeded,
                },
                lines_seen,
            });
        }
    }
    Some(Piece {
        validated: Validated {
            batch: (accepted > 0).then(|| builder.finish(db_id)),
            db_id: Some(db_id),
            errors,
            lines_accepted: accepted,
            limit_exceeded,
        },
        lines_seen,
    })
}

/// The ids the previous accepted line resolved to. Writers send runs of lines with the same
/// measurement and keys (every TSBS line, every Telegraf metric of one input), so comparing
/// the keys with the previous line's usually replaces every catalog lookup of a line.
struct Memo<'a> {
    line: Line<'a>,
    table: TableId,
    /// Tag column ids in the line's tag order, then field column ids in its field order.
    ids: Vec<ColumnId>,
}

impl Memo<'_> {
    fn matches(&self, line: &Line<'_>) -> bool {
        let prev = &self.line;
        prev.measurement == line.measurement
            && prev.tags.len() == line.tags.len()
            && prev.fields.len() == line.fields.len()
            && prev.tags.iter().zip(&line.tags).all(|(a, b)| a.0 == b.0)
            && prev
                .fields
                .iter()
                .zip(&line.fields)
                .all(|(a, b)| a.0 == b.0 && field_type(&a.1) == field_type(&b.1))
    }
}

fn field_type(v: &FieldValue<'_>) -> FieldType {
    match v {
        FieldValue::Float(_) => FieldType::Float,
        FieldValue::Integer(_) => FieldType::Integer,
        FieldValue::UInteger(_) => FieldType::UInteger,
        FieldValue::String(_) => FieldType::String,
        FieldValue::Boolean(_) => FieldType::Boolean,
    }
}

/// A line's table and column ids (tags in line order, then fields in line order); `None` when
/// they are the memo's.
type Resolved = Option<(TableId, Vec<ColumnId>)>;

/// Resolves `line` to its table and column ids and its time in nanoseconds.
fn resolve_line<S: Schema>(
    schema: &mut S,
    line: &Line<'_>,
    opts: WriteOptions,
    memo: &Option<Memo<'_>>,
) -> Result<(i64, Resolved), Unresolved> {
    let time = match line.timestamp {
        Some(ts) => opts.precision.to_nanos(ts).map_err(Unresolved::Invalid)?,
        None => opts.precision.default_time(opts.now_ns),
    };
    if memo.as_ref().is_some_and(|m| m.matches(line)) {
        return Ok((time, None));
    }
    if let Some(dup) = duplicate_field(line) {
        return Err(Unresolved::Invalid(format!(
            "invalid line protocol - multiple instances of '{dup}' field found"
        )));
    }
    let table = schema.table(&line.measurement)?;
    let mut ids = Vec::with_capacity(line.tags.len() + line.fields.len());
    for (key, _) in line.tags.iter() {
        ids.push(schema.column(table, key, ColumnKind::Tag)?);
    }
    for (key, value) in line.fields.iter() {
        ids.push(schema.column(table, key, ColumnKind::Field(field_type(value)))?);
    }
    Ok((time, Some((table, ids))))
}

fn duplicate_field<'l>(line: &'l Line<'_>) -> Option<&'l str> {
    let fields = &line.fields;
    for (i, (name, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(other, _)| other == name) {
            return Some(name.as_ref());
        }
    }
    None
}

/// Accumulates resolved rows into per-table columnar batches.
#[derive(Default)]
struct BatchBuilder<'a> {
    tables: Vec<TableBuilder<'a>>,
    index: HashMap<TableId, usize>,
    last: usize,
    /// Expected rows of the first table (see `resolve_all`); later tables grow as needed.
    rows_hint: usize,
}

impl<'a> BatchBuilder<'a> {
    /// Appends `line`, whose tags and then fields resolved to `ids`.
    fn push(&mut self, table: TableId, time: i64, line: &Line<'a>, ids: &[ColumnId]) {
        if self
            .tables
            .get(self.last)
            .is_none_or(|t| t.table_id != table)
        {
            self.last = *self.index.entry(table).or_insert_with(|| {
                let hint = if self.tables.is_empty() {
                    self.rows_hint
                } else {
                    0
                };
                self.tables.push(TableBuilder::new(table, hint));
                self.tables.len() - 1
            });
        }
        self.tables[self.last].push(time, line, ids);
    }

    fn finish(self, db_id: DbId) -> WriteBatch {
        WriteBatch {
            db_id,
            tables: self.tables.into_iter().map(TableBuilder::finish).collect(),
        }
    }
}

struct TableBuilder<'a> {
    table_id: TableId,
    time: Vec<i64>,
    columns: Vec<(ColumnId, ColBuilder<'a>)>,
    /// Position in `columns` by column id (ids are dense within a table).
    index: Vec<Option<u32>>,
    rows_hint: usize,
}

impl<'a> TableBuilder<'a> {
    fn new(table_id: TableId, rows_hint: usize) -> Self {
        Self {
            table_id,
            time: Vec::with_capacity(rows_hint),
            columns: Vec::new(),
            index: Vec::new(),
            rows_hint,
        }
    }

    fn column(
        &mut self,
        id: ColumnId,
        make: impl FnOnce(usize) -> ColBuilder<'a>,
    ) -> &mut ColBuilder<'a> {
        let slot = id as usize;
        if slot >= self.index.len() {
            self.index.resize(slot + 1, None);
        }
        let idx = match self.index[slot] {
            Some(i) => i as usize,
            None => {
                self.columns.push((id, make(self.rows_hint)));
                self.index[slot] = Some((self.columns.len() - 1) as u32);
                self.columns.len() - 1
            }
        };
        &mut self.columns[idx].1
    }

    fn push(&mut self, time: i64, line: &Line<'a>, ids: &[ColumnId]) {
        let row_idx = self.time.len();
        let (tag_ids, field_ids) = ids.split_at(line.tags.len());
        for (&id, (_, value)) in tag_ids.iter().zip(&line.tags) {
            self.column(id, ColBuilder::new_tag)
                .push_tag(row_idx, value);
        }
        for (&id, (_, value)) in field_ids.iter().zip(&line.fields) {
            self.column(id, |hint| ColBuilder::new_field(value, hint))
                .push_field(row_idx, value);
        }
        self.time.push(time);
    }

    fn finish(self) -> TableBatch {
        let rows = self.time.len();
        TableBatch {
            table_id: self.table_id,
            time: self.time,
            columns: self
                .columns
                .into_iter()
                .map(|(column_id, b)| BatchColumn {
                    column_id,
                    data: b.finish(rows),
                })
                .collect(),
        }
    }
}

/// Per-column accumulator. Rows that did not set the column are filled in lazily (as nulls)
/// when a later row sets it, and at the end.
enum ColBuilder<'a> {
    Tag {
        /// Distinct values in first-seen order; borrowed from the body unless unescaped.
        dictionary: Vec<Cow<'a, str>>,
        /// Positions in `dictionary`, hashed by the value they point at (one copy of each
        /// value, no second map key).
        lookup: HashTable<u32>,
        keys: Vec<u32>,
    },
    Float(Vec<f64>, Validity),
    Integer(Vec<i64>, Validity),
    UInteger(Vec<u64>, Validity),
    Boolean(Vec<bool>, Validity),
    String(Vec<String>, Validity),
}

/// Validity flags, materialised only once a null is seen.
#[derive(Default)]
struct Validity(Option<Vec<bool>>);

impl Validity {
    fn pad(&mut self, from: usize, to: usize) {
        if to > from {
            let v = self.0.get_or_insert_with(|| vec![true; from]);
            v.resize(to, false);
        }
    }
    fn push_valid(&mut self) {
        if let Some(v) = &mut self.0 {
            v.push(true);
        }
    }
}

/// The hasher of tag dictionaries (fixed seed: the table lives for one request).
fn tag_hash(value: &str) -> u64 {
    use std::hash::BuildHasher;
    static HASHER: OnceLock<DefaultHashBuilder> = OnceLock::new();
    HASHER
        .get_or_init(DefaultHashBuilder::default)
        .hash_one(value)
}

impl<'a> ColBuilder<'a> {
    fn new_tag(rows_hint: usize) -> Self {
        ColBuilder::Tag {
            dictionary: Vec::new(),
            lookup: HashTable::new(),
            keys: Vec::with_capacity(rows_hint),
        }
    }

    fn new_field(v: &FieldValue<'_>, rows_hint: usize) -> Self {
        fn empty<T>(rows_hint: usize) -> Vec<T> {
            Vec::with_capacity(rows_hint)
        }
        match v {
            FieldValue::Float(_) => ColBuilder::Float(empty(rows_hint), Validity::default()),
            FieldValue::Integer(_) => ColBuilder::Integer(empty(rows_hint), Validity::default()),
            FieldValue::UInteger(_) => ColBuilder::UInteger(empty(rows_hint), Validity::default()),
            FieldValue::Boolean(_) => ColBuilder::Boolean(empty(rows_hint), Validity::default()),
            // Strings vary too much in count per line to guess.
            FieldValue::String(_) => ColBuilder::String(Vec::new(), Validity::default()),
        }
    }

    // The `Cow` itself, not `&str`: cloning it keeps a borrowed value borrowed from the body.
    #[allow(clippy::ptr_arg)]
    fn push_tag(&mut self, row: usize, value: &Cow<'a, str>) {
        let ColBuilder::Tag {
            dictionary,
            lookup,
            keys,
        } = self
        else {
            unreachable!("tag ids always resolve to tag columns")
        };
        keys.resize(row, NULL_TAG);
        let hash = tag_hash(value);
        let key = match lookup.find(hash, |&i| dictionary[i as usize] == *value) {
            Some(&key) => key,
            None => {
                let key = dictionary.len() as u32;
                dictionary.push(value.clone());
                lookup.insert_unique(hash, key, |&i| tag_hash(&dictionary[i as usize]));
                key
            }
        };
        keys.push(key);
    }

    fn push_field(&mut self, row: usize, value: &FieldValue<'_>) {
        fn put<T: Clone + Default>(vals: &mut Vec<T>, valid: &mut Validity, row: usize, v: T) {
            valid.pad(vals.len(), row);
            vals.resize(row, T::default());
            vals.push(v);
            valid.push_valid();
        }
        match (self, value) {
            (ColBuilder::Float(vals, valid), FieldValue::Float(v)) => put(vals, valid, row, *v),
            (ColBuilder::Integer(vals, valid), FieldValue::Integer(v)) => put(vals, valid, row, *v),
            (ColBuilder::UInteger(vals, valid), FieldValue::UInteger(v)) => {
                put(vals, valid, row, *v)
            }
            (ColBuilder::Boolean(vals, valid), FieldValue::Boolean(v)) => put(vals, valid, row, *v),
            (ColBuilder::String(vals, valid), FieldValue::String(v)) => {
                put(vals, valid, row, v.to_string())
            }
            _ => unreachable!("a column id always resolves to one field type"),
        }
    }

    fn finish(self, rows: usize) -> ColumnData {
        // Pads a field column to `rows` with nulls.
        macro_rules! done {
            ($variant:ident, $vals:expr, $valid:expr) => {{
                let (mut values, mut valid) = ($vals, $valid);
                valid.pad(values.len(), rows);
                values.resize(rows, Default::default());
                ColumnData::$variant {
                    values,
                    valid: valid.0,
                }
            }};
        }
        match self {
            ColBuilder::Tag {
                dictionary,
                mut keys,
                ..
            } => {
                keys.resize(rows, NULL_TAG);
                ColumnData::Tag {
                    dictionary: dictionary.into_iter().map(Cow::into_owned).collect(),
                    keys,
                }
            }
            ColBuilder::Float(v, ok) => done!(Float, v, ok),
            ColBuilder::Integer(v, ok) => done!(Integer, v, ok),
            ColBuilder::UInteger(v, ok) => done!(UInteger, v, ok),
            ColBuilder::Boolean(v, ok) => done!(Boolean, v, ok),
            ColBuilder::String(v, ok) => done!(String, v, ok),
        }
    }
}
