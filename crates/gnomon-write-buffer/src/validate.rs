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

use hashbrown::HashMap;

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
}

/// Why resolving a line against the schema stopped.
enum Unresolved {
    /// The line needs a schema change: retry the request inside a transaction.
    NeedsChange,
    /// The line is invalid; the message goes into its line error.
    Invalid(String),
}

impl From<CatalogError> for Unresolved {
    fn from(e: CatalogError) -> Self {
        Unresolved::Invalid(e.to_string())
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

/// Validates `lines` for database `db_name` and builds the batch to write.
///
/// Request-level problems (bad database name, database limit, storage errors) are returned as
/// `Err`; per-line problems end up in [`Validated::errors`].
pub async fn validate_lines(
    catalog: &Catalog,
    db_name: &str,
    lines: &[Result<Line<'_>, LineError>],
    opts: WriteOptions,
) -> Result<Validated, WriteBufferError> {
    if lines.is_empty() {
        return Err(WriteBufferError::EmptyWrite);
    }

    // Lock-free pass: enough for every write that adds no schema.
    let snapshot = catalog.snapshot();
    if let Some(db) = snapshot.database(db_name) {
        let mut schema = SnapshotSchema { db };
        if let Some(done) = resolve_all(&mut schema, db.id, lines, opts) {
            return Ok(done);
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
        resolve_all(&mut schema, db_id, lines, opts)
            .expect("a transaction resolves or rejects every line")
    };
    // Rejected as a whole: drop the transaction so that no schema change survives.
    if validated.batch.is_some() || opts.accept_partial {
        txn.commit().await.map_err(WriteBufferError::Catalog)?;
    }
    Ok(validated)
}

/// Resolves every line in order. Returns `None` as soon as a line needs a schema change that
/// `schema` cannot make.
fn resolve_all<S: Schema>(
    schema: &mut S,
    db_id: DbId,
    lines: &[Result<Line<'_>, LineError>],
    opts: WriteOptions,
) -> Option<Validated> {
    let mut builder = BatchBuilder::default();
    let mut errors = Vec::new();
    let mut accepted = 0usize;
    let mut memo: Option<Memo<'_, '_>> = None;
    for line in lines {
        let error = match line {
            Err(e) => e.clone(),
            Ok(line) => {
                schema.begin_line();
                match resolve_line(schema, line, opts, &mut memo) {
                    Ok(time) => {
                        let memo = memo.as_ref().expect("set by a resolved line");
                        builder.push(memo.table, time, line, &memo.ids);
                        accepted += 1;
                        continue;
                    }
                    Err(Unresolved::NeedsChange) => return None,
                    Err(Unresolved::Invalid(message)) => {
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
            return Some(Validated {
                batch: None,
                db_id: Some(db_id),
                errors,
                lines_accepted: 0,
            });
        }
    }
    Some(Validated {
        batch: (accepted > 0).then(|| builder.finish(db_id)),
        db_id: Some(db_id),
        errors,
        lines_accepted: accepted,
    })
}

/// The ids the previous accepted line resolved to. Writers send runs of lines with the same
/// measurement and keys (every TSBS line, every Telegraf metric of one input), so comparing
/// the keys with the previous line's usually replaces every catalog lookup of a line.
struct Memo<'l, 'a> {
    line: &'l Line<'a>,
    table: TableId,
    /// Tag column ids in the line's tag order, then field column ids in its field order.
    ids: Vec<ColumnId>,
}

impl Memo<'_, '_> {
    fn matches(&self, line: &Line<'_>) -> bool {
        let prev = self.line;
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

/// Resolves `line` to its table and column ids (left in `memo`) and its time in nanoseconds.
fn resolve_line<'l, 'a, S: Schema>(
    schema: &mut S,
    line: &'l Line<'a>,
    opts: WriteOptions,
    memo: &mut Option<Memo<'l, 'a>>,
) -> Result<i64, Unresolved> {
    let time = match line.timestamp {
        Some(ts) => opts.precision.to_nanos(ts).map_err(Unresolved::Invalid)?,
        None => opts.precision.default_time(opts.now_ns),
    };
    if memo.as_ref().is_some_and(|m| m.matches(line)) {
        return Ok(time);
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
    *memo = Some(Memo { line, table, ids });
    Ok(time)
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
struct BatchBuilder<'l> {
    tables: Vec<TableBuilder<'l>>,
    index: HashMap<TableId, usize>,
    last: usize,
}

impl<'l> BatchBuilder<'l> {
    /// Appends `line`, whose tags and then fields resolved to `ids`.
    fn push(&mut self, table: TableId, time: i64, line: &'l Line<'_>, ids: &[ColumnId]) {
        if self
            .tables
            .get(self.last)
            .is_none_or(|t| t.table_id != table)
        {
            self.last = *self.index.entry(table).or_insert_with(|| {
                self.tables.push(TableBuilder::new(table));
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

struct TableBuilder<'l> {
    table_id: TableId,
    time: Vec<i64>,
    columns: Vec<(ColumnId, ColBuilder<'l>)>,
    /// Position in `columns` by column id (ids are dense within a table).
    index: Vec<Option<u32>>,
}

impl<'l> TableBuilder<'l> {
    fn new(table_id: TableId) -> Self {
        Self {
            table_id,
            time: Vec::new(),
            columns: Vec::new(),
            index: Vec::new(),
        }
    }

    fn column(
        &mut self,
        id: ColumnId,
        make: impl FnOnce() -> ColBuilder<'l>,
    ) -> &mut ColBuilder<'l> {
        let slot = id as usize;
        if slot >= self.index.len() {
            self.index.resize(slot + 1, None);
        }
        let idx = match self.index[slot] {
            Some(i) => i as usize,
            None => {
                self.columns.push((id, make()));
                self.index[slot] = Some((self.columns.len() - 1) as u32);
                self.columns.len() - 1
            }
        };
        &mut self.columns[idx].1
    }

    fn push(&mut self, time: i64, line: &'l Line<'_>, ids: &[ColumnId]) {
        let row_idx = self.time.len();
        let (tag_ids, field_ids) = ids.split_at(line.tags.len());
        for (&id, (_, value)) in tag_ids.iter().zip(&line.tags) {
            self.column(id, ColBuilder::new_tag)
                .push_tag(row_idx, value);
        }
        for (&id, (_, value)) in field_ids.iter().zip(&line.fields) {
            self.column(id, || ColBuilder::new_field(value))
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
enum ColBuilder<'l> {
    Tag {
        dictionary: Vec<&'l str>,
        lookup: HashMap<&'l str, u32>,
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

impl<'l> ColBuilder<'l> {
    fn new_tag() -> Self {
        ColBuilder::Tag {
            dictionary: Vec::new(),
            lookup: HashMap::new(),
            keys: Vec::new(),
        }
    }

    fn new_field(v: &FieldValue<'_>) -> Self {
        match v {
            FieldValue::Float(_) => ColBuilder::Float(Vec::new(), Validity::default()),
            FieldValue::Integer(_) => ColBuilder::Integer(Vec::new(), Validity::default()),
            FieldValue::UInteger(_) => ColBuilder::UInteger(Vec::new(), Validity::default()),
            FieldValue::Boolean(_) => ColBuilder::Boolean(Vec::new(), Validity::default()),
            FieldValue::String(_) => ColBuilder::String(Vec::new(), Validity::default()),
        }
    }

    fn push_tag(&mut self, row: usize, value: &'l str) {
        let ColBuilder::Tag {
            dictionary,
            lookup,
            keys,
        } = self
        else {
            unreachable!("tag ids always resolve to tag columns")
        };
        keys.resize(row, NULL_TAG);
        let key = *lookup.entry(value).or_insert_with(|| {
            dictionary.push(value);
            (dictionary.len() - 1) as u32
        });
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
                    dictionary: dictionary.into_iter().map(str::to_string).collect(),
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
