//! The catalog handle and its transactions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use object_store::path::Path;
use object_store::ObjectStore;
use parking_lot::RwLock;
use tracing::{info, warn};
use uuid::Uuid;

use crate::cache::{
    is_distinct_cache_kind, is_last_cache_key_kind, DistinctCacheDefinition, DistinctCacheRequest,
    LastCacheDefinition, LastCacheRequest, DISTINCT_CACHE_DEFAULT_MAX_AGE_SECONDS,
    DISTINCT_CACHE_DEFAULT_MAX_CARDINALITY, DISTINCT_CACHE_RESERVED_NAME, LAST_CACHE_DEFAULT_COUNT,
    LAST_CACHE_DEFAULT_TTL_SECONDS, LAST_CACHE_MAX_COUNT,
};
use crate::error::{CatalogError, LimitError};
use crate::names::{
    deleted_name, system_time_ns, validate_column_name, validate_database_name,
    validate_table_name, CHUNK_ORDER_COLUMN_NAME, INTERNAL_DB_NAME, INTERNAL_DB_RETENTION_NS,
    TIME_COLUMN_NAME,
};
use crate::ops::CatalogOp;
use crate::persist::{self, CatalogPaths, PutOutcome, CHECKPOINT_INTERVAL};
use crate::schema::{
    CatalogSnapshot, ColumnId, ColumnKind, DatabaseSchema, DbId, FieldType, Limits, TableId,
    TableSchema,
};
use crate::trigger::TriggerDefinition;

/// State only the transaction holding the write lock may touch.
#[derive(Debug, Default)]
struct WriterState {
    /// A commit failed in a way that leaves it unknown whether its log entry landed; the next
    /// transaction re-reads the store before starting so it never builds on a stale sequence.
    needs_reload: bool,
}

/// The catalog: the current snapshot for readers, and a lock that serialises writers.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<dyn ObjectStore>,
    paths: CatalogPaths,
    limits: Limits,
    current: RwLock<Arc<CatalogSnapshot>>,
    writer: tokio::sync::Mutex<WriterState>,
}

impl Catalog {
    /// Loads the persisted catalog under `<prefix>/catalog/` or creates a new one (new uuid)
    /// and persists it. Either way `_internal` exists afterwards.
    pub async fn load_or_create(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        limits: Limits,
    ) -> Result<Arc<Catalog>, CatalogError> {
        let paths = CatalogPaths::new(&prefix);
        let (state, replayed) = match persist::load(store.as_ref(), &paths).await? {
            Some(loaded) => (loaded.state, loaded.replayed),
            None => {
                let uuid = Uuid::new_v4();
                info!(%uuid, prefix = %prefix, "creating a new catalog");
                (CatalogSnapshot::empty(uuid), 0)
            }
        };
        let catalog = Arc::new(Catalog {
            store,
            paths,
            limits,
            current: RwLock::new(Arc::new(state)),
            writer: tokio::sync::Mutex::new(WriterState::default()),
        });

        if catalog.snapshot().database(INTERNAL_DB_NAME).is_none() {
            // A new catalog's first entry. If another process created the catalog at the same
            // moment our entry 1 is refused; reloading then picks up theirs.
            let mut txn = catalog.begin().await;
            txn.create_internal_database()?;
            if let Err(e) = txn.commit().await {
                let txn = catalog.begin().await;
                if txn.state().database(INTERNAL_DB_NAME).is_none() {
                    return Err(e);
                }
            }
        }
        if replayed >= CHECKPOINT_INTERVAL {
            let _writer = catalog.writer.lock().await;
            catalog.write_checkpoint(&catalog.snapshot()).await;
        }
        Ok(catalog)
    }

    /// The current state. Cheap: clones an `Arc` under a briefly held read lock.
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        Arc::clone(&self.current.read())
    }

    /// Shorthand for `snapshot().uuid()`; the uuid never changes.
    pub fn uuid(&self) -> Uuid {
        self.current.read().uuid()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Starts a transaction. Holds the writer lock until the transaction is committed or
    /// dropped, so schema changes are serialised; the transaction starts from the state
    /// left by the previous commit.
    pub async fn begin(&self) -> CatalogTransaction<'_> {
        let mut writer = self.writer.lock().await;
        if writer.needs_reload {
            match self.reload().await {
                Ok(()) => writer.needs_reload = false,
                Err(e) => warn!(error = %e, "catalog reload after a failed commit failed"),
            }
        }
        let base = self.snapshot();
        CatalogTransaction {
            catalog: self,
            writer,
            state: (*base).clone(),
            base,
            ops: Vec::new(),
            line_start: AtomicUsize::new(0),
        }
    }

    /// Re-reads the persisted catalog and publishes it if it is newer than what we have.
    /// Only called with the writer lock held.
    async fn reload(&self) -> Result<(), CatalogError> {
        let Some(loaded) = persist::load(self.store.as_ref(), &self.paths).await? else {
            return Ok(());
        };
        let current = self.snapshot();
        if loaded.state.uuid() != current.uuid() && current.sequence() > 0 {
            return Err(CatalogError::corrupt(
                self.paths.checkpoint(),
                format!(
                    "the store now holds catalog {} instead of {}",
                    loaded.state.uuid(),
                    current.uuid()
                ),
            ));
        }
        if loaded.state.sequence() > current.sequence() {
            info!(
                from = current.sequence(),
                to = loaded.state.sequence(),
                "catalog reloaded from the store"
            );
            *self.current.write() = Arc::new(loaded.state);
        }
        Ok(())
    }

    /// Best effort: a missing checkpoint only makes the next load replay more entries.
    async fn write_checkpoint(&self, state: &CatalogSnapshot) {
        match persist::put_checkpoint(self.store.as_ref(), &self.paths, state).await {
            Ok(()) => info!(sequence = state.sequence(), "catalog checkpoint written"),
            Err(e) => warn!(error = %e, sequence = state.sequence(), "catalog checkpoint failed"),
        }
    }
}

/// Marks a point in a transaction to roll back to (see [`CatalogTransaction::rollback_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savepoint {
    ops_len: usize,
}

/// A set of schema changes, applied to a private copy of the state as they are made and
/// published only by [`CatalogTransaction::commit`]. Dropping it discards them.
pub struct CatalogTransaction<'a> {
    catalog: &'a Catalog,
    writer: tokio::sync::MutexGuard<'a, WriterState>,
    /// The state the transaction started from.
    base: Arc<CatalogSnapshot>,
    /// `base` with `ops` applied.
    state: CatalogSnapshot,
    ops: Vec<CatalogOp>,
    /// Length of `ops` at the last savepoint: tables created after it are "new" for the line
    /// being resolved, which decides between the reserved-column and the type-conflict error
    /// for `time` (LINE_PROTOCOL.md §6). Atomic only so that the transaction stays `Sync`.
    line_start: AtomicUsize,
}

impl std::fmt::Debug for CatalogTransaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogTransaction")
            .field("base_sequence", &self.base.sequence())
            .field("ops", &self.ops)
            .finish()
    }
}

impl CatalogTransaction<'_> {
    /// The state including this transaction's pending changes.
    pub fn state(&self) -> &CatalogSnapshot {
        &self.state
    }

    pub fn has_changes(&self) -> bool {
        !self.ops.is_empty()
    }

    /// Marks the current point; also starts a new "line" (see the `time` rule in
    /// [`CatalogTransaction::column_or_create`]). Cheap: callers take one per line.
    pub fn savepoint(&self) -> Savepoint {
        let ops_len = self.ops.len();
        self.line_start.store(ops_len, Ordering::Relaxed);
        Savepoint { ops_len }
    }

    /// Undoes every change made after `sp`. A savepoint at or past the current point (e.g.
    /// one taken after an earlier, deeper rollback) undoes nothing.
    pub fn rollback_to(&mut self, sp: Savepoint) {
        self.line_start.store(sp.ops_len, Ordering::Relaxed);
        if sp.ops_len >= self.ops.len() {
            return;
        }
        self.ops.truncate(sp.ops_len);
        // Rebuild by replaying the surviving ops on the base: no undo log to get wrong, and
        // ops that failed to apply were never recorded. Rejected lines are rare next to
        // savepoints, which must stay free.
        let mut state = (*self.base).clone();
        for op in &self.ops {
            state
                .apply(op)
                .expect("replaying ops that already applied to the same base cannot fail");
        }
        self.state = state;
    }

    /// Applies a validated op and records it for the commit.
    fn push(&mut self, op: CatalogOp) -> Result<(), CatalogError> {
        self.state.apply(&op).map_err(CatalogError::Internal)?;
        self.ops.push(op);
        Ok(())
    }

    fn limits(&self) -> &Limits {
        &self.catalog.limits
    }

    fn check_database_limit(&self, name: &str) -> Result<(), CatalogError> {
        let count = self.state.user_database_count();
        let limit = self.limits().max_databases;
        if count >= limit {
            return Err(LimitError::Databases {
                name: name.into(),
                count,
                limit,
            }
            .into());
        }
        Ok(())
    }

    fn add_database(
        &mut self,
        name: &str,
        retention_period_ns: Option<i64>,
        internal: bool,
    ) -> Result<DbId, CatalogError> {
        let db_id = self.state.next_db_id();
        self.push(CatalogOp::CreateDatabase {
            db_id,
            name: name.into(),
            retention_period_ns,
            internal,
        })?;
        Ok(db_id)
    }

    fn create_internal_database(&mut self) -> Result<DbId, CatalogError> {
        self.add_database(INTERNAL_DB_NAME, Some(INTERNAL_DB_RETENTION_NS), true)
    }

    /// The id of database `name`, creating it if needed (write path). Validates the v3 name
    /// rules first, like the reference, so even `_internal` is refused here.
    pub fn database_or_create(&mut self, name: &str) -> Result<DbId, CatalogError> {
        validate_database_name(name)?;
        if let Some(db) = self.state.any_database(name) {
            if db.deleted() {
                return Err(CatalogError::DatabaseDeleted { name: name.into() });
            }
            return Ok(db.id);
        }
        self.check_database_limit(name)?;
        self.add_database(name, None, false)
    }

    /// Creates database `name`; [`CatalogError::AlreadyExists`] if the name is taken (also by
    /// a soft-deleted database's new name).
    pub fn create_database(
        &mut self,
        name: &str,
        retention_period_ns: Option<i64>,
    ) -> Result<DbId, CatalogError> {
        validate_database_name(name)?;
        check_retention(retention_period_ns)?;
        if self.state.any_database(name).is_some() {
            return Err(CatalogError::AlreadyExists { name: name.into() });
        }
        self.check_database_limit(name)?;
        self.add_database(name, retention_period_ns, false)
    }

    /// Sets (`Some`) or clears (`None` = infinite) a live database's retention period.
    pub fn set_retention_period(
        &mut self,
        name: &str,
        retention_period_ns: Option<i64>,
    ) -> Result<(), CatalogError> {
        check_retention(retention_period_ns)?;
        let db = self
            .state
            .database(name)
            .ok_or_else(|| CatalogError::NotFound { name: name.into() })?;
        if db.retention_period_ns() == retention_period_ns {
            return Ok(());
        }
        let db_id = db.id;
        self.push(CatalogOp::SetRetentionPeriod {
            db_id,
            retention_period_ns,
        })
    }

    /// A live database by id, for the write path: a deleted one is a "soft-deleted" error.
    fn live_db(&self, db: DbId) -> Result<&Arc<DatabaseSchema>, CatalogError> {
        let schema =
            self.state
                .database_by_id(db)
                .ok_or_else(|| CatalogError::DatabaseNotFound {
                    name: format!("with id {db}"),
                })?;
        if schema.deleted() {
            return Err(CatalogError::DatabaseDeleted {
                name: schema.name.to_string(),
            });
        }
        Ok(schema)
    }

    fn live_table(db: &DatabaseSchema, table: TableId) -> Result<&Arc<TableSchema>, CatalogError> {
        let schema = db
            .table_by_id(table)
            .ok_or_else(|| CatalogError::TableNotFound {
                db: db.name.to_string(),
                table: format!("with id {table}"),
            })?;
        if schema.deleted() {
            return Err(CatalogError::TableDeleted {
                db: db.name.to_string(),
                table: schema.name.to_string(),
            });
        }
        Ok(schema)
    }

    /// The id of table `name` in `db`, creating it (with its `time` column) if needed.
    pub fn table_or_create(&mut self, db: DbId, name: &str) -> Result<TableId, CatalogError> {
        let db_schema = self.live_db(db)?;
        if let Some(table) = db_schema.any_table(name) {
            if table.deleted() {
                return Err(CatalogError::TableDeleted {
                    db: db_schema.name.to_string(),
                    table: name.into(),
                });
            }
            return Ok(table.id);
        }
        validate_table_name(name)?;
        if !db_schema.is_internal() {
            let count = self.state.user_table_count();
            let limit = self.limits().max_tables;
            if count >= limit {
                return Err(LimitError::Tables {
                    db: db_schema.name.to_string(),
                    table: name.into(),
                    count,
                    limit,
                }
                .into());
            }
        }
        let table_id = db_schema.next_table_id();
        self.push(CatalogOp::CreateTable {
            db_id: db,
            table_id,
            name: name.into(),
        })?;
        self.push(CatalogOp::CreateColumn {
            db_id: db,
            table_id,
            column_id: 0,
            name: TIME_COLUMN_NAME.into(),
            kind: ColumnKind::Time,
        })?;
        Ok(table_id)
    }

    /// Was `table` created since the last savepoint (by the line being resolved)?
    fn table_is_new_in_line(&self, db: DbId, table: TableId) -> bool {
        let start = self.line_start.load(Ordering::Relaxed).min(self.ops.len());
        self.ops[start..].iter().any(|op| {
            matches!(op, CatalogOp::CreateTable { db_id, table_id, .. }
                if *db_id == db && *table_id == table)
        })
    }

    /// The id of column `name`, creating it with `kind` if needed.
    ///
    /// Errors: a different existing kind is a type conflict; `time` as a tag/field is the
    /// reserved-column error when the table is new in the current line (the reference only
    /// adds `time` after a new table's other columns) and a type conflict with the timestamp
    /// otherwise; `__chunk_order` is always reserved; then the column limits.
    pub fn column_or_create(
        &mut self,
        db: DbId,
        table: TableId,
        name: &str,
        kind: ColumnKind,
    ) -> Result<ColumnId, CatalogError> {
        let db_schema = self.live_db(db)?;
        let table_schema = Self::live_table(db_schema, table)?;
        if let Some(col) = table_schema.column(name) {
            if col.kind == kind {
                return Ok(col.id);
            }
            if name == TIME_COLUMN_NAME && self.table_is_new_in_line(db, table) {
                return Err(CatalogError::ReservedColumn { name: name.into() });
            }
            return Err(CatalogError::ColumnTypeConflict {
                name: name.into(),
                expected: col.kind,
                got: kind,
            });
        }
        if name == CHUNK_ORDER_COLUMN_NAME || (name == TIME_COLUMN_NAME && kind != ColumnKind::Time)
        {
            return Err(CatalogError::ReservedColumn { name: name.into() });
        }
        if kind == ColumnKind::Time && name != TIME_COLUMN_NAME {
            return Err(CatalogError::InvalidConfiguration(format!(
                "only the '{TIME_COLUMN_NAME}' column can have the timestamp type, not '{name}'"
            )));
        }
        validate_column_name(name)?;
        if kind != ColumnKind::Time {
            let limits = self.limits();
            let count = table_schema.tag_and_field_count();
            if count >= limits.max_columns_per_table {
                return Err(LimitError::Columns {
                    db: db_schema.name.to_string(),
                    table: table_schema.name.to_string(),
                    column: name.into(),
                    count,
                    limit: limits.max_columns_per_table,
                }
                .into());
            }
            let tags = table_schema.tag_count();
            if kind == ColumnKind::Tag && tags >= limits.max_tag_columns_per_table {
                return Err(LimitError::TagColumns {
                    db: db_schema.name.to_string(),
                    table: table_schema.name.to_string(),
                    column: name.into(),
                    count: tags,
                    limit: limits.max_tag_columns_per_table,
                }
                .into());
            }
        }
        let column_id = table_schema.next_column_id();
        self.push(CatalogOp::CreateColumn {
            db_id: db,
            table_id: table,
            column_id,
            name: name.into(),
            kind,
        })?;
        Ok(column_id)
    }

    /// Creates table `name` with the given tags (duplicates merged) and fields (a repeat with
    /// the same type is merged, with another type or a tag's name is a type conflict). All or
    /// nothing: on error the transaction is left as it was.
    pub fn create_table(
        &mut self,
        db: DbId,
        name: &str,
        tags: &[&str],
        fields: &[(&str, FieldType)],
    ) -> Result<TableId, CatalogError> {
        let db_schema = self.live_db(db)?;
        if db_schema.any_table(name).is_some() {
            return Err(CatalogError::AlreadyExists { name: name.into() });
        }
        let before = self.ops.len();
        let line_start = self.line_start.load(Ordering::Relaxed);
        let result = (|| {
            let table = self.table_or_create(db, name)?;
            for tag in tags {
                self.column_or_create(db, table, tag, ColumnKind::Tag)?;
            }
            for (field, ty) in fields {
                self.column_or_create(db, table, field, ColumnKind::Field(*ty))?;
            }
            Ok(table)
        })();
        if result.is_err() {
            self.rollback_to(Savepoint { ops_len: before });
            self.line_start.store(line_start, Ordering::Relaxed);
        }
        result
    }

    /// Soft-deletes database `name` without scheduling a hard delete.
    /// See [`CatalogTransaction::soft_delete_database_with_hard_delete`].
    pub fn soft_delete_database(
        &mut self,
        name: &str,
        now: SystemTime,
    ) -> Result<(), CatalogError> {
        self.soft_delete_database_with_hard_delete(name, now, None)
    }

    /// Soft-deletes database `name`: renames it `<name>-<YYYYMMDDTHHMMSS>` (UTC `now`;
    /// `-<id>` appended on collision), marks it deleted and frees its name and its place
    /// under the database and table limits at once.
    ///
    /// `name` may also be the renamed name of a deleted database: then only its hard-delete
    /// time is updated, and asking for the time it already has is
    /// [`CatalogError::AlreadyDeleted`] (API.md §5.4). `hard_delete_time_ns: None` = never.
    pub fn soft_delete_database_with_hard_delete(
        &mut self,
        name: &str,
        now: SystemTime,
        hard_delete_time_ns: Option<i64>,
    ) -> Result<(), CatalogError> {
        let db = self
            .state
            .any_database(name)
            .ok_or_else(|| CatalogError::NotFound { name: name.into() })?;
        if db.is_internal() {
            return Err(CatalogError::CannotDeleteInternal);
        }
        let db_id = db.id;
        if db.deleted() {
            if db.hard_delete_time_ns() == hard_delete_time_ns {
                return Err(CatalogError::AlreadyDeleted { name: name.into() });
            }
            return self.push(CatalogOp::SetDatabaseHardDeleteTime {
                db_id,
                hard_delete_time_ns,
            });
        }
        let new_name = deleted_name(name, now, db_id, |n| self.state.any_database(n).is_some());
        self.push(CatalogOp::SoftDeleteDatabase {
            db_id,
            new_name,
            deleted_at_ns: system_time_ns(now),
            hard_delete_time_ns,
        })
    }

    /// Soft-deletes table `name` of `db` without scheduling a hard delete.
    /// See [`CatalogTransaction::soft_delete_table_with_hard_delete`].
    pub fn soft_delete_table(
        &mut self,
        db: DbId,
        name: &str,
        now: SystemTime,
    ) -> Result<(), CatalogError> {
        self.soft_delete_table_with_hard_delete(db, name, now, None)
    }

    /// Soft-deletes a table like [`CatalogTransaction::soft_delete_database_with_hard_delete`]
    /// does a database. A missing or deleted database, or a missing table, is "not found".
    pub fn soft_delete_table_with_hard_delete(
        &mut self,
        db: DbId,
        name: &str,
        now: SystemTime,
        hard_delete_time_ns: Option<i64>,
    ) -> Result<(), CatalogError> {
        let db_schema = self
            .state
            .database_by_id(db)
            .filter(|d| !d.deleted())
            .ok_or_else(|| CatalogError::DatabaseNotFound {
                name: format!("with id {db}"),
            })?;
        let table = db_schema
            .any_table(name)
            .ok_or_else(|| CatalogError::TableNotFound {
                db: db_schema.name.to_string(),
                table: name.into(),
            })?;
        let table_id = table.id;
        if table.deleted() {
            if table.hard_delete_time_ns() == hard_delete_time_ns {
                return Err(CatalogError::AlreadyDeleted { name: name.into() });
            }
            return self.push(CatalogOp::SetTableHardDeleteTime {
                db_id: db,
                table_id,
                hard_delete_time_ns,
            });
        }
        let new_name = deleted_name(name, now, table_id, |n| db_schema.any_table(n).is_some());
        self.push(CatalogOp::SoftDeleteTable {
            db_id: db,
            table_id,
            new_name,
            deleted_at_ns: system_time_ns(now),
            hard_delete_time_ns,
        })
    }

    /// A live database and one of its live tables by name, for the configure calls on caches.
    fn live_table_by_name(
        &self,
        db: &str,
        table: &str,
    ) -> Result<(DbId, Arc<TableSchema>), CatalogError> {
        let db_schema = self
            .state
            .database(db)
            .ok_or_else(|| CatalogError::DatabaseNotFound { name: db.into() })?;
        let table_schema =
            db_schema
                .table(table)
                .cloned()
                .ok_or_else(|| CatalogError::TableNotFound {
                    db: db.into(),
                    table: table.into(),
                })?;
        Ok((db_schema.id, table_schema))
    }

    /// Creates a last-value cache on `db`.`table` with the defaults of API.md §5.10: key
    /// columns = the series key, value columns = every other column (also later ones),
    /// `count` 1, `ttl` 4 h, name `<table>_<key>_..._last_cache`.
    pub fn create_last_cache(
        &mut self,
        db: &str,
        table: &str,
        request: LastCacheRequest,
    ) -> Result<Arc<LastCacheDefinition>, CatalogError> {
        let (db_id, schema) = self.live_table_by_name(db, table)?;
        let key_columns: Vec<ColumnId> = match &request.key_columns {
            None => schema.series_key().to_vec(),
            Some(names) => {
                let mut ids = Vec::with_capacity(names.len());
                for name in names {
                    let col = schema.column(name).ok_or_else(|| {
                        CatalogError::InvalidConfiguration(format!(
                            "invalid key column provided: {name}"
                        ))
                    })?;
                    if !is_last_cache_key_kind(col.kind) {
                        return Err(CatalogError::InvalidCacheColumnType(
                            "only uint64, int64, bool, tag, and string columns are supported in the last cache",
                        ));
                    }
                    if ids.contains(&col.id) {
                        return Err(CatalogError::InvalidConfiguration(format!(
                            "key column provided twice: {name}"
                        )));
                    }
                    ids.push(col.id);
                }
                ids
            }
        };
        let value_columns = match &request.value_columns {
            None => None,
            Some(names) => {
                let mut ids = Vec::with_capacity(names.len());
                for name in names {
                    let col = schema.column(name).ok_or_else(|| {
                        CatalogError::InvalidConfiguration(format!(
                            "invalid value column provided: {name}"
                        ))
                    })?;
                    // `time` is always part of the output; keys are output as keys.
                    if col.kind != ColumnKind::Time
                        && !key_columns.contains(&col.id)
                        && !ids.contains(&col.id)
                    {
                        ids.push(col.id);
                    }
                }
                Some(ids)
            }
        };
        let count = request.count.unwrap_or(LAST_CACHE_DEFAULT_COUNT);
        if !(1..=LAST_CACHE_MAX_COUNT).contains(&count) {
            return Err(CatalogError::InvalidConfiguration(format!(
                "last cache count must be between 1 and {LAST_CACHE_MAX_COUNT}, got {count}"
            )));
        }
        let ttl_seconds = request
            .ttl_seconds
            .unwrap_or(LAST_CACHE_DEFAULT_TTL_SECONDS);
        if ttl_seconds == 0 {
            return Err(CatalogError::InvalidConfiguration(
                "last cache ttl must be greater than 0 seconds".into(),
            ));
        }
        let name = match request.name {
            Some(name) => {
                validate_cache_name(&name)?;
                name
            }
            None => {
                let keys: Vec<&str> = key_columns
                    .iter()
                    .filter_map(|id| schema.column_by_id(*id).map(|c| &*c.name))
                    .collect();
                format!("{table}_{}_last_cache", keys.join("_"))
            }
        };
        if schema.last_cache(&name).is_some() {
            return Err(CatalogError::AlreadyExists { name });
        }
        let cache = LastCacheDefinition {
            id: schema.next_cache_id(),
            name,
            key_columns,
            value_columns,
            count,
            ttl_seconds,
        };
        self.push(CatalogOp::CreateLastCache {
            db_id,
            table_id: schema.id,
            cache: cache.clone(),
        })?;
        Ok(Arc::new(cache))
    }

    /// Deletes the last cache `name` of `db`.`table`; an unknown cache is "not found".
    pub fn delete_last_cache(
        &mut self,
        db: &str,
        table: &str,
        name: &str,
    ) -> Result<(), CatalogError> {
        let (db_id, schema) = self.live_table_by_name(db, table)?;
        let cache_id = schema
            .last_cache(name)
            .ok_or_else(|| CatalogError::NotFound { name: name.into() })?
            .id;
        self.push(CatalogOp::DeleteLastCache {
            db_id,
            table_id: schema.id,
            cache_id,
        })
    }

    /// Creates a distinct-value cache on `db`.`table` with the defaults of API.md §5.8:
    /// `max_cardinality` 100,000, `max_age` 1 day, name `<table>_<col>_..._distinct_cache`.
    pub fn create_distinct_cache(
        &mut self,
        db: &str,
        table: &str,
        request: DistinctCacheRequest,
    ) -> Result<Arc<DistinctCacheDefinition>, CatalogError> {
        let (db_id, schema) = self.live_table_by_name(db, table)?;
        if request.columns.is_empty() {
            return Err(CatalogError::InvalidConfiguration(
                "no columns provided when creating distinct cache".into(),
            ));
        }
        let mut columns = Vec::with_capacity(request.columns.len());
        for name in &request.columns {
            let col = schema.column(name).ok_or_else(|| {
                CatalogError::InvalidConfiguration(format!("invalid column provided: {name}"))
            })?;
            if !is_distinct_cache_kind(col.kind) {
                return Err(CatalogError::InvalidCacheColumnType(
                    "only tag and string columns are supported in the distinct cache",
                ));
            }
            if columns.contains(&col.id) {
                return Err(CatalogError::InvalidConfiguration(format!(
                    "column provided twice: {name}"
                )));
            }
            columns.push(col.id);
        }
        let max_cardinality = request
            .max_cardinality
            .unwrap_or(DISTINCT_CACHE_DEFAULT_MAX_CARDINALITY);
        if max_cardinality == 0 {
            return Err(CatalogError::InvalidConfiguration(
                "max cardinality must be greater than 0".into(),
            ));
        }
        let max_age_seconds = request
            .max_age_seconds
            .unwrap_or(DISTINCT_CACHE_DEFAULT_MAX_AGE_SECONDS);
        if max_age_seconds == 0 {
            return Err(CatalogError::InvalidConfiguration(
                "max age must be greater than 0 seconds".into(),
            ));
        }
        let name = match request.name {
            Some(name) => {
                validate_cache_name(&name)?;
                if name == DISTINCT_CACHE_RESERVED_NAME {
                    return Err(CatalogError::InvalidConfiguration(format!(
                        "the distinct cache name '{name}' is reserved"
                    )));
                }
                name
            }
            None => format!("{table}_{}_distinct_cache", request.columns.join("_")),
        };
        if schema.distinct_cache(&name).is_some() {
            return Err(CatalogError::AlreadyExists { name });
        }
        let cache = DistinctCacheDefinition {
            id: schema.next_cache_id(),
            name,
            columns,
            max_cardinality,
            max_age_seconds,
        };
        self.push(CatalogOp::CreateDistinctCache {
            db_id,
            table_id: schema.id,
            cache: cache.clone(),
        })?;
        Ok(Arc::new(cache))
    }

    /// Deletes the distinct cache `name` of `db`.`table`; an unknown cache is "not found".
    pub fn delete_distinct_cache(
        &mut self,
        db: &str,
        table: &str,
        name: &str,
    ) -> Result<(), CatalogError> {
        let (db_id, schema) = self.live_table_by_name(db, table)?;
        let cache_id = schema
            .distinct_cache(name)
            .ok_or_else(|| CatalogError::NotFound { name: name.into() })?
            .id;
        self.push(CatalogOp::DeleteDistinctCache {
            db_id,
            table_id: schema.id,
            cache_id,
        })
    }

    /// A live database by name for the trigger calls (`DatabaseNotFound` otherwise).
    fn live_db_by_name(&self, db: &str) -> Result<&Arc<DatabaseSchema>, CatalogError> {
        self.state
            .database(db)
            .ok_or_else(|| CatalogError::DatabaseNotFound { name: db.into() })
    }

    /// Stores a processing-engine trigger in `db`. The specification was parsed by the caller
    /// (so it is valid); the plugin file is the engine's to check.
    pub fn create_trigger(
        &mut self,
        db: &str,
        trigger: TriggerDefinition,
    ) -> Result<(), CatalogError> {
        let db_schema = self.live_db_by_name(db)?;
        if db_schema.is_internal() {
            return Err(CatalogError::CannotModifyInternal);
        }
        if trigger.name.is_empty() {
            return Err(CatalogError::InvalidConfiguration(
                "trigger name must not be empty".into(),
            ));
        }
        if db_schema.trigger(&trigger.name).is_some() {
            return Err(CatalogError::AlreadyExists { name: trigger.name });
        }
        let db_id = db_schema.id;
        self.push(CatalogOp::CreateTrigger { db_id, trigger })
    }

    /// Deletes trigger `name` of `db`. An enabled trigger needs `force`
    /// ([`CatalogError::TriggerRunning`] otherwise).
    pub fn delete_trigger(
        &mut self,
        db: &str,
        name: &str,
        force: bool,
    ) -> Result<(), CatalogError> {
        let db_schema = self.live_db_by_name(db)?;
        let trigger = db_schema
            .trigger(name)
            .ok_or_else(|| CatalogError::NotFound { name: name.into() })?;
        if !trigger.disabled && !force {
            return Err(CatalogError::TriggerRunning { name: name.into() });
        }
        let db_id = db_schema.id;
        self.push(CatalogOp::DeleteTrigger {
            db_id,
            name: name.into(),
        })
    }

    /// Enables or disables trigger `name` of `db`. Asking for the state it already has is a
    /// success that records nothing (the endpoints are idempotent).
    pub fn set_trigger_disabled(
        &mut self,
        db: &str,
        name: &str,
        disabled: bool,
    ) -> Result<(), CatalogError> {
        let db_schema = self.live_db_by_name(db)?;
        let trigger = db_schema
            .trigger(name)
            .ok_or_else(|| CatalogError::NotFound { name: name.into() })?;
        if trigger.disabled == disabled {
            return Ok(());
        }
        let db_id = db_schema.id;
        self.push(CatalogOp::SetTriggerDisabled {
            db_id,
            name: name.into(),
            disabled,
        })
    }

    /// Persists the pending changes as one checksummed log entry (written with create-only
    /// semantics, never overwriting) and only then publishes the new snapshot. No changes →
    /// no write, and the current snapshot is returned.
    pub async fn commit(mut self) -> Result<Arc<CatalogSnapshot>, CatalogError> {
        if self.ops.is_empty() {
            return Ok(self.base);
        }
        let catalog = self.catalog;
        let sequence = self.base.sequence() + 1;
        let bytes = persist::encode_log_entry(
            self.state.uuid(),
            sequence,
            system_time_ns(SystemTime::now()),
            &self.ops,
        )?;
        let path = catalog.paths.log_entry(sequence);
        match persist::put_log_entry(catalog.store.as_ref(), &path, bytes).await {
            Ok(PutOutcome::Written) => {}
            Ok(PutOutcome::Taken) => {
                self.writer.needs_reload = true;
                return Err(CatalogError::Internal(format!(
                    "catalog log entry {path} was written by someone else; is another server \
                     using the same object store prefix? The catalog will be reloaded."
                )));
            }
            Err(e) => {
                // The put may have landed even though it reported failure (e.g. a timeout).
                self.writer.needs_reload = true;
                return Err(e);
            }
        }
        self.state.set_sequence(sequence);
        let published = Arc::new(std::mem::replace(
            &mut self.state,
            CatalogSnapshot::empty(Uuid::nil()),
        ));
        *catalog.current.write() = Arc::clone(&published);
        if sequence.is_multiple_of(CHECKPOINT_INTERVAL) {
            // Still under the writer lock, so checkpoints are written in sequence order.
            catalog.write_checkpoint(&published).await;
        }
        Ok(published)
    }
}

/// Cache names follow the table-name rules (non-empty, no control characters).
fn validate_cache_name(name: &str) -> Result<(), CatalogError> {
    validate_table_name(name).map_err(|e| {
        CatalogError::InvalidConfiguration(format!("invalid cache name {name:?}: {e}"))
    })
}

fn check_retention(retention_period_ns: Option<i64>) -> Result<(), CatalogError> {
    match retention_period_ns {
        Some(ns) if ns <= 0 => Err(CatalogError::InvalidConfiguration(format!(
            "retention period must be positive, got {ns}ns"
        ))),
        _ => Ok(()),
    }
}
