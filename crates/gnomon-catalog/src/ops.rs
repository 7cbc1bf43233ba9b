//! The operations a log entry records.
//!
//! Persisted entries are replayed by every later version, so an existing variant's meaning
//! and fields never change; new behaviour gets a new variant (or a new optional field).

use serde::{Deserialize, Serialize};

use crate::cache::{CacheId, DistinctCacheDefinition, LastCacheDefinition};
use crate::schema::{ColumnId, ColumnKind, DbId, TableId};
use crate::trigger::TriggerDefinition;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum CatalogOp {
    CreateDatabase {
        db_id: DbId,
        name: String,
        retention_period_ns: Option<i64>,
        internal: bool,
    },
    SetRetentionPeriod {
        db_id: DbId,
        retention_period_ns: Option<i64>,
    },
    SoftDeleteDatabase {
        db_id: DbId,
        new_name: String,
        deleted_at_ns: i64,
        hard_delete_time_ns: Option<i64>,
    },
    SetDatabaseHardDeleteTime {
        db_id: DbId,
        hard_delete_time_ns: Option<i64>,
    },
    CreateTable {
        db_id: DbId,
        table_id: TableId,
        name: String,
    },
    CreateColumn {
        db_id: DbId,
        table_id: TableId,
        column_id: ColumnId,
        name: String,
        kind: ColumnKind,
    },
    SoftDeleteTable {
        db_id: DbId,
        table_id: TableId,
        new_name: String,
        deleted_at_ns: i64,
        hard_delete_time_ns: Option<i64>,
    },
    SetTableHardDeleteTime {
        db_id: DbId,
        table_id: TableId,
        hard_delete_time_ns: Option<i64>,
    },
    CreateLastCache {
        db_id: DbId,
        table_id: TableId,
        cache: LastCacheDefinition,
    },
    DeleteLastCache {
        db_id: DbId,
        table_id: TableId,
        cache_id: CacheId,
    },
    CreateDistinctCache {
        db_id: DbId,
        table_id: TableId,
        cache: DistinctCacheDefinition,
    },
    DeleteDistinctCache {
        db_id: DbId,
        table_id: TableId,
        cache_id: CacheId,
    },
    CreateTrigger {
        db_id: DbId,
        trigger: TriggerDefinition,
    },
    DeleteTrigger {
        db_id: DbId,
        name: String,
    },
    SetTriggerDisabled {
        db_id: DbId,
        name: String,
        disabled: bool,
    },
}
