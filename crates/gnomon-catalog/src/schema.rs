//! The in-memory catalog state: immutable snapshots of databases, tables and columns.
//!
//! Snapshots are shared as `Arc`s and changed copy-on-write (`Arc::make_mut`), so a
//! transaction only copies the database and table it touches.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cache::{CacheId, DistinctCacheDefinition, LastCacheDefinition};
use crate::names::INTERNAL_DB_NAME;
use crate::ops::CatalogOp;
use crate::trigger::TriggerDefinition;

pub type DbId = u32;
pub type TableId = u32;
pub type ColumnId = u32;

/// The type of a field column. Columns never change type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Float,
    Integer,
    UInteger,
    String,
    Boolean,
}

impl FieldType {
    pub const ALL: [FieldType; 5] = [
        FieldType::Float,
        FieldType::Integer,
        FieldType::UInteger,
        FieldType::String,
        FieldType::Boolean,
    ];

    /// Short lowercase name, as used by `system.influxdb_schema` and the persisted format.
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::Float => "float",
            FieldType::Integer => "integer",
            FieldType::UInteger => "uinteger",
            FieldType::String => "string",
            FieldType::Boolean => "boolean",
        }
    }
}

/// What a column is: a tag (part of the series key), the timestamp, or a typed field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    Tag,
    Time,
    Field(FieldType),
}

impl ColumnKind {
    /// `iox::column_type::tag`, `iox::column_type::timestamp`,
    /// `iox::column_type::field::float|integer|uinteger|string|boolean`.
    pub fn iox_name(&self) -> &'static str {
        match self {
            ColumnKind::Tag => "iox::column_type::tag",
            ColumnKind::Time => "iox::column_type::timestamp",
            ColumnKind::Field(FieldType::Float) => "iox::column_type::field::float",
            ColumnKind::Field(FieldType::Integer) => "iox::column_type::field::integer",
            ColumnKind::Field(FieldType::UInteger) => "iox::column_type::field::uinteger",
            ColumnKind::Field(FieldType::String) => "iox::column_type::field::string",
            ColumnKind::Field(FieldType::Boolean) => "iox::column_type::field::boolean",
        }
    }

    /// Short name: `tag`, `time`, or the field type's [`FieldType::name`]. This is also how a
    /// kind is spelled in the persisted catalog.
    pub fn name(&self) -> &'static str {
        match self {
            ColumnKind::Tag => "tag",
            ColumnKind::Time => "time",
            ColumnKind::Field(t) => t.name(),
        }
    }

    /// Inverse of [`ColumnKind::name`].
    pub fn from_name(name: &str) -> Option<ColumnKind> {
        match name {
            "tag" => Some(ColumnKind::Tag),
            "time" => Some(ColumnKind::Time),
            other => FieldType::ALL
                .into_iter()
                .find(|t| t.name() == other)
                .map(ColumnKind::Field),
        }
    }

    pub fn is_field(&self) -> bool {
        matches!(self, ColumnKind::Field(_))
    }
}

impl fmt::Display for ColumnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.iox_name())
    }
}

impl Serialize for ColumnKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ColumnKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        ColumnKind::from_name(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown column kind {s:?}")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    pub id: ColumnId,
    pub name: Arc<str>,
    pub kind: ColumnKind,
}

/// Limits on resources; checked when something is created, never on load (so lowering a
/// limit never makes an existing catalog unloadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// User databases (not `_internal`, not soft-deleted).
    pub max_databases: usize,
    /// Tables across all non-deleted user databases (soft-deleted tables not counted).
    pub max_tables: usize,
    /// Tag + field columns per table; `time` is not counted.
    pub max_columns_per_table: usize,
    /// Tag columns per table.
    pub max_tag_columns_per_table: usize,
}

impl Limits {
    /// The limits InfluxDB 3 Core enforces (SERVER.md §6), for strict compatibility runs.
    pub const INFLUXDB3_CORE: Limits = Limits {
        max_databases: 5,
        max_tables: 2000,
        max_columns_per_table: 500,
        max_tag_columns_per_table: 4096,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_databases: 100,
            max_tables: 10_000,
            max_columns_per_table: 1000,
            max_tag_columns_per_table: 4096,
        }
    }
}

/// Soft-deletion state shared by databases and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Deletion {
    pub(crate) deleted: bool,
    /// When it was soft-deleted (ns since epoch).
    pub(crate) deleted_at_ns: Option<i64>,
    /// When its data should be removed; `None` = never scheduled.
    pub(crate) hard_delete_time_ns: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub id: TableId,
    pub name: Arc<str>,
    /// In creation order; ids ascend with it, which `column_by_id` relies on.
    columns: Vec<ColumnSchema>,
    column_index: HashMap<Arc<str>, usize>,
    series_key: Vec<ColumnId>,
    tag_count: usize,
    field_count: usize,
    pub(crate) next_column_id: ColumnId,
    pub(crate) deletion: Deletion,
    /// In creation order.
    pub(crate) last_caches: Vec<Arc<LastCacheDefinition>>,
    /// In creation order.
    pub(crate) distinct_caches: Vec<Arc<DistinctCacheDefinition>>,
    pub(crate) next_cache_id: CacheId,
}

impl TableSchema {
    pub(crate) fn new(id: TableId, name: Arc<str>) -> Self {
        TableSchema {
            id,
            name,
            columns: Vec::new(),
            column_index: HashMap::new(),
            series_key: Vec::new(),
            tag_count: 0,
            field_count: 0,
            next_column_id: 0,
            deletion: Deletion::default(),
            last_caches: Vec::new(),
            distinct_caches: Vec::new(),
            next_cache_id: 0,
        }
    }

    /// The table's last-value caches, in creation order.
    pub fn last_caches(&self) -> &[Arc<LastCacheDefinition>] {
        &self.last_caches
    }

    pub fn last_cache(&self, name: &str) -> Option<&Arc<LastCacheDefinition>> {
        self.last_caches.iter().find(|c| c.name == name)
    }

    /// The table's distinct-value caches, in creation order.
    pub fn distinct_caches(&self) -> &[Arc<DistinctCacheDefinition>] {
        &self.distinct_caches
    }

    pub fn distinct_cache(&self, name: &str) -> Option<&Arc<DistinctCacheDefinition>> {
        self.distinct_caches.iter().find(|c| c.name == name)
    }

    /// The id the next cache of this table will get (ids are never reused).
    pub fn next_cache_id(&self) -> CacheId {
        self.next_cache_id
    }

    pub(crate) fn add_last_cache(&mut self, def: LastCacheDefinition) -> Result<(), String> {
        self.check_new_cache(def.id, &def.name)?;
        self.next_cache_id = def.id + 1;
        self.last_caches.push(Arc::new(def));
        Ok(())
    }

    pub(crate) fn add_distinct_cache(
        &mut self,
        def: DistinctCacheDefinition,
    ) -> Result<(), String> {
        self.check_new_cache(def.id, &def.name)?;
        self.next_cache_id = def.id + 1;
        self.distinct_caches.push(Arc::new(def));
        Ok(())
    }

    fn check_new_cache(&self, id: CacheId, name: &str) -> Result<(), String> {
        if id < self.next_cache_id {
            return Err(format!(
                "cache id {id} of '{name}' in table '{}' is below the next free id {}",
                self.name, self.next_cache_id
            ));
        }
        Ok(())
    }

    /// All columns in creation order.
    pub fn columns(&self) -> &[ColumnSchema] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.column_index.get(name).map(|&i| &self.columns[i])
    }

    pub fn column_by_id(&self, id: ColumnId) -> Option<&ColumnSchema> {
        self.columns
            .binary_search_by_key(&id, |c| c.id)
            .ok()
            .map(|i| &self.columns[i])
    }

    /// The tag columns in the order they were first seen.
    pub fn series_key(&self) -> &[ColumnId] {
        &self.series_key
    }

    /// Tag and field columns (what the column limit counts; `time` excluded).
    pub fn tag_and_field_count(&self) -> usize {
        self.tag_count + self.field_count
    }

    pub fn tag_count(&self) -> usize {
        self.tag_count
    }

    pub fn field_count(&self) -> usize {
        self.field_count
    }

    /// The `time` column, present on every table created by this catalog.
    pub fn time_column(&self) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.kind == ColumnKind::Time)
    }

    pub fn deleted(&self) -> bool {
        self.deletion.deleted
    }

    /// When the table was soft-deleted (ns since the epoch).
    pub fn deleted_at_ns(&self) -> Option<i64> {
        self.deletion.deleted_at_ns
    }

    /// When the table's data is scheduled for removal (ns since the epoch).
    pub fn hard_delete_time_ns(&self) -> Option<i64> {
        self.deletion.hard_delete_time_ns
    }

    /// The id the next column will get (ids are never reused).
    pub fn next_column_id(&self) -> ColumnId {
        self.next_column_id
    }

    pub(crate) fn add_column(&mut self, column: ColumnSchema) -> Result<(), String> {
        if column.id < self.next_column_id {
            return Err(format!(
                "column id {} of '{}' in table '{}' is below the next free id {}",
                column.id, column.name, self.name, self.next_column_id
            ));
        }
        if self.column_index.contains_key(&column.name) {
            return Err(format!(
                "column '{}' already exists in table '{}'",
                column.name, self.name
            ));
        }
        match column.kind {
            ColumnKind::Tag => {
                self.tag_count += 1;
                self.series_key.push(column.id);
            }
            ColumnKind::Field(_) => self.field_count += 1,
            ColumnKind::Time => {}
        }
        self.next_column_id = column.id + 1;
        self.column_index
            .insert(Arc::clone(&column.name), self.columns.len());
        self.columns.push(column);
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseSchema {
    pub id: DbId,
    pub name: Arc<str>,
    retention_period_ns: Option<i64>,
    internal: bool,
    pub(crate) deletion: Deletion,
    pub(crate) next_table_id: TableId,
    tables: BTreeMap<TableId, Arc<TableSchema>>,
    /// Every table's current name, deleted ones under their renamed name. Sorted, so
    /// listings come out ordered without sorting.
    table_names: BTreeMap<Arc<str>, TableId>,
    live_tables: usize,
    /// Processing-engine triggers by name (sorted, so listings need no sort).
    pub(crate) triggers: BTreeMap<String, Arc<TriggerDefinition>>,
}

impl DatabaseSchema {
    pub(crate) fn new(
        id: DbId,
        name: Arc<str>,
        retention_period_ns: Option<i64>,
        internal: bool,
    ) -> Self {
        DatabaseSchema {
            id,
            name,
            retention_period_ns,
            internal,
            deletion: Deletion::default(),
            next_table_id: 0,
            tables: BTreeMap::new(),
            table_names: BTreeMap::new(),
            live_tables: 0,
            triggers: BTreeMap::new(),
        }
    }

    /// A non-deleted table by name.
    pub fn table(&self, name: &str) -> Option<&Arc<TableSchema>> {
        self.any_table(name).filter(|t| !t.deleted())
    }

    /// A table by its current name, soft-deleted (renamed) tables included.
    pub fn any_table(&self, name: &str) -> Option<&Arc<TableSchema>> {
        self.table_names
            .get(name)
            .and_then(|id| self.tables.get(id))
    }

    /// A table by id, deleted or not.
    pub fn table_by_id(&self, id: TableId) -> Option<&Arc<TableSchema>> {
        self.tables.get(&id)
    }

    /// Non-deleted tables, sorted by name.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<TableSchema>> {
        self.all_tables().filter(|t| !t.deleted())
    }

    /// All tables including soft-deleted ones, sorted by current name.
    pub fn all_tables(&self) -> impl Iterator<Item = &Arc<TableSchema>> {
        self.table_names.values().map(|id| &self.tables[id])
    }

    /// The database's processing-engine triggers, sorted by name. None for a soft-deleted
    /// database: its triggers are kept (with the database) but must never run again.
    pub fn triggers(&self) -> impl Iterator<Item = &Arc<TriggerDefinition>> {
        let live = !self.deleted();
        self.triggers.values().filter(move |_| live)
    }

    /// A trigger by name; `None` in a soft-deleted database (see [`DatabaseSchema::triggers`]).
    pub fn trigger(&self, name: &str) -> Option<&Arc<TriggerDefinition>> {
        self.triggers.get(name).filter(|_| !self.deleted())
    }

    pub(crate) fn add_trigger(&mut self, trigger: TriggerDefinition) -> Result<(), String> {
        if self.triggers.contains_key(&trigger.name) {
            return Err(format!(
                "trigger '{}' already exists in database '{}'",
                trigger.name, self.name
            ));
        }
        self.triggers
            .insert(trigger.name.clone(), Arc::new(trigger));
        Ok(())
    }

    /// Number of non-deleted tables.
    pub fn table_count(&self) -> usize {
        self.live_tables
    }

    pub fn deleted(&self) -> bool {
        self.deletion.deleted
    }

    pub fn deleted_at_ns(&self) -> Option<i64> {
        self.deletion.deleted_at_ns
    }

    pub fn hard_delete_time_ns(&self) -> Option<i64> {
        self.deletion.hard_delete_time_ns
    }

    /// `None` = keep data forever.
    pub fn retention_period_ns(&self) -> Option<i64> {
        self.retention_period_ns
    }

    /// True for `_internal`, the server's own database.
    pub fn is_internal(&self) -> bool {
        self.internal
    }

    /// The id the next table will get (ids are never reused).
    pub fn next_table_id(&self) -> TableId {
        self.next_table_id
    }

    pub(crate) fn add_table(&mut self, table: TableSchema) -> Result<(), String> {
        if table.id < self.next_table_id {
            return Err(format!(
                "table id {} of '{}' in database '{}' is below the next free id {}",
                table.id, table.name, self.name, self.next_table_id
            ));
        }
        if self.table_names.contains_key(&table.name) {
            return Err(format!(
                "table '{}' already exists in database '{}'",
                table.name, self.name
            ));
        }
        self.next_table_id = table.id + 1;
        if !table.deleted() {
            self.live_tables += 1;
        }
        self.table_names.insert(Arc::clone(&table.name), table.id);
        self.tables.insert(table.id, Arc::new(table));
        Ok(())
    }

    fn table_mut(&mut self, id: TableId) -> Result<&mut TableSchema, String> {
        let name = &self.name;
        self.tables
            .get_mut(&id)
            .map(Arc::make_mut)
            .ok_or_else(|| format!("table id {id} not found in database '{name}'"))
    }
}

/// One consistent version of the whole catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogSnapshot {
    uuid: Uuid,
    sequence: u64,
    pub(crate) next_db_id: DbId,
    databases: BTreeMap<DbId, Arc<DatabaseSchema>>,
    /// Every database's current name (deleted ones renamed); sorted for listings.
    db_names: BTreeMap<Arc<str>, DbId>,
}

impl CatalogSnapshot {
    pub(crate) fn empty(uuid: Uuid) -> Self {
        CatalogSnapshot {
            uuid,
            sequence: 0,
            next_db_id: 0,
            databases: BTreeMap::new(),
            db_names: BTreeMap::new(),
        }
    }

    /// The catalog's identity (the `cluster-uuid` header), fixed when it was created.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The sequence number of the last log entry applied; 0 for a catalog never written.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    pub(crate) fn set_sequence(&mut self, sequence: u64) {
        self.sequence = sequence;
    }

    /// A non-deleted database by name.
    pub fn database(&self, name: &str) -> Option<&Arc<DatabaseSchema>> {
        self.any_database(name).filter(|d| !d.deleted())
    }

    /// A database by its current name, soft-deleted (renamed) ones included.
    pub fn any_database(&self, name: &str) -> Option<&Arc<DatabaseSchema>> {
        self.db_names
            .get(name)
            .and_then(|id| self.databases.get(id))
    }

    pub fn database_by_id(&self, id: DbId) -> Option<&Arc<DatabaseSchema>> {
        self.databases.get(&id)
    }

    /// All databases, soft-deleted and `_internal` included, sorted by current name.
    pub fn databases(&self) -> impl Iterator<Item = &Arc<DatabaseSchema>> {
        self.db_names.values().map(|id| &self.databases[id])
    }

    /// Databases that count toward the database limit: not internal, not deleted.
    pub fn user_database_count(&self) -> usize {
        self.databases
            .values()
            .filter(|d| !d.internal && !d.deleted())
            .count()
    }

    /// Tables that count toward the table limit: live tables of live user databases.
    pub fn user_table_count(&self) -> usize {
        self.databases
            .values()
            .filter(|d| !d.internal && !d.deleted())
            .map(|d| d.table_count())
            .sum()
    }

    /// The id the next database will get (ids are never reused).
    pub fn next_db_id(&self) -> DbId {
        self.next_db_id
    }

    pub(crate) fn add_database(&mut self, db: DatabaseSchema) -> Result<(), String> {
        if db.id < self.next_db_id {
            return Err(format!(
                "database id {} of '{}' is below the next free id {}",
                db.id, db.name, self.next_db_id
            ));
        }
        if self.db_names.contains_key(&db.name) {
            return Err(format!("database '{}' already exists", db.name));
        }
        if db.internal != (&*db.name == INTERNAL_DB_NAME) {
            return Err(format!(
                "database '{}' has the wrong internal flag {}",
                db.name, db.internal
            ));
        }
        self.next_db_id = db.id + 1;
        self.db_names.insert(Arc::clone(&db.name), db.id);
        self.databases.insert(db.id, Arc::new(db));
        Ok(())
    }

    fn database_mut(&mut self, id: DbId) -> Result<&mut DatabaseSchema, String> {
        self.databases
            .get_mut(&id)
            .map(Arc::make_mut)
            .ok_or_else(|| format!("database id {id} not found"))
    }

    /// Applies one persisted operation. The same code runs for a live transaction, for
    /// rolling one back (replay from its start) and for loading, so what is persisted is
    /// exactly what was published. Ops carry explicit ids and names; applying them decides
    /// nothing, it only checks that the op fits the state.
    pub(crate) fn apply(&mut self, op: &CatalogOp) -> Result<(), String> {
        match op {
            CatalogOp::CreateDatabase {
                db_id,
                name,
                retention_period_ns,
                internal,
            } => self.add_database(DatabaseSchema::new(
                *db_id,
                name.as_str().into(),
                *retention_period_ns,
                *internal,
            )),
            CatalogOp::SetRetentionPeriod {
                db_id,
                retention_period_ns,
            } => {
                self.database_mut(*db_id)?.retention_period_ns = *retention_period_ns;
                Ok(())
            }
            CatalogOp::SoftDeleteDatabase {
                db_id,
                new_name,
                deleted_at_ns,
                hard_delete_time_ns,
            } => {
                if self.db_names.contains_key(new_name.as_str()) {
                    return Err(format!("database name '{new_name}' is already taken"));
                }
                let db = self.database_mut(*db_id)?;
                if db.deleted() {
                    return Err(format!("database '{}' is already deleted", db.name));
                }
                if db.internal {
                    return Err("the internal database cannot be deleted".into());
                }
                let old_name = std::mem::replace(&mut db.name, new_name.as_str().into());
                db.deletion = Deletion {
                    deleted: true,
                    deleted_at_ns: Some(*deleted_at_ns),
                    hard_delete_time_ns: *hard_delete_time_ns,
                };
                let new_name = Arc::clone(&db.name);
                self.db_names.remove(&old_name);
                self.db_names.insert(new_name, *db_id);
                Ok(())
            }
            CatalogOp::SetDatabaseHardDeleteTime {
                db_id,
                hard_delete_time_ns,
            } => {
                let db = self.database_mut(*db_id)?;
                if !db.deleted() {
                    return Err(format!("database '{}' is not deleted", db.name));
                }
                db.deletion.hard_delete_time_ns = *hard_delete_time_ns;
                Ok(())
            }
            CatalogOp::CreateTable {
                db_id,
                table_id,
                name,
            } => self
                .database_mut(*db_id)?
                .add_table(TableSchema::new(*table_id, name.as_str().into())),
            CatalogOp::CreateColumn {
                db_id,
                table_id,
                column_id,
                name,
                kind,
            } => self
                .database_mut(*db_id)?
                .table_mut(*table_id)?
                .add_column(ColumnSchema {
                    id: *column_id,
                    name: name.as_str().into(),
                    kind: *kind,
                }),
            CatalogOp::SoftDeleteTable {
                db_id,
                table_id,
                new_name,
                deleted_at_ns,
                hard_delete_time_ns,
            } => {
                let db = self.database_mut(*db_id)?;
                if db.table_names.contains_key(new_name.as_str()) {
                    return Err(format!(
                        "table name '{new_name}' is already taken in database '{}'",
                        db.name
                    ));
                }
                let table = db.table_mut(*table_id)?;
                if table.deleted() {
                    return Err(format!("table '{}' is already deleted", table.name));
                }
                let old_name = std::mem::replace(&mut table.name, new_name.as_str().into());
                table.deletion = Deletion {
                    deleted: true,
                    deleted_at_ns: Some(*deleted_at_ns),
                    hard_delete_time_ns: *hard_delete_time_ns,
                };
                let new_name = Arc::clone(&table.name);
                db.table_names.remove(&old_name);
                db.table_names.insert(new_name, *table_id);
                db.live_tables -= 1;
                Ok(())
            }
            CatalogOp::SetTableHardDeleteTime {
                db_id,
                table_id,
                hard_delete_time_ns,
            } => {
                let table = self.database_mut(*db_id)?.table_mut(*table_id)?;
                if !table.deleted() {
                    return Err(format!("table '{}' is not deleted", table.name));
                }
                table.deletion.hard_delete_time_ns = *hard_delete_time_ns;
                Ok(())
            }
            CatalogOp::CreateLastCache {
                db_id,
                table_id,
                cache,
            } => self
                .database_mut(*db_id)?
                .table_mut(*table_id)?
                .add_last_cache(cache.clone()),
            CatalogOp::DeleteLastCache {
                db_id,
                table_id,
                cache_id,
            } => {
                let table = self.database_mut(*db_id)?.table_mut(*table_id)?;
                let before = table.last_caches.len();
                table.last_caches.retain(|c| c.id != *cache_id);
                if table.last_caches.len() == before {
                    return Err(format!(
                        "last cache id {cache_id} not found in '{}'",
                        table.name
                    ));
                }
                Ok(())
            }
            CatalogOp::CreateDistinctCache {
                db_id,
                table_id,
                cache,
            } => self
                .database_mut(*db_id)?
                .table_mut(*table_id)?
                .add_distinct_cache(cache.clone()),
            CatalogOp::DeleteDistinctCache {
                db_id,
                table_id,
                cache_id,
            } => {
                let table = self.database_mut(*db_id)?.table_mut(*table_id)?;
                let before = table.distinct_caches.len();
                table.distinct_caches.retain(|c| c.id != *cache_id);
                if table.distinct_caches.len() == before {
                    return Err(format!(
                        "distinct cache id {cache_id} not found in '{}'",
                        table.name
                    ));
                }
                Ok(())
            }
            CatalogOp::CreateTrigger { db_id, trigger } => {
                self.database_mut(*db_id)?.add_trigger(trigger.clone())
            }
            CatalogOp::DeleteTrigger { db_id, name } => {
                let db = self.database_mut(*db_id)?;
                if db.triggers.remove(name).is_none() {
                    return Err(format!(
                        "trigger '{name}' not found in database '{}'",
                        db.name
                    ));
                }
                Ok(())
            }
            CatalogOp::SetTriggerDisabled {
                db_id,
                name,
                disabled,
            } => {
                let db = self.database_mut(*db_id)?;
                let db_name = Arc::clone(&db.name);
                let trigger = db
                    .triggers
                    .get_mut(name)
                    .ok_or_else(|| format!("trigger '{name}' not found in database '{db_name}'"))?;
                Arc::make_mut(trigger).disabled = *disabled;
                Ok(())
            }
        }
    }
}
