//! Definitions of the last-value and distinct-value caches of a table.
//!
//! The catalog only stores what a cache is (its columns and limits) so that definitions
//! survive restarts and disappear with their table; the cached data itself belongs to the
//! cache crate. Columns are referenced by id, so a definition never needs rewriting.

use serde::{Deserialize, Serialize};

use crate::schema::{ColumnId, ColumnKind, FieldType, TableSchema};

/// Identifies a cache within its table; shared by both cache kinds, never reused.
pub type CacheId = u32;

/// `count` when none is given (API.md §5.10).
pub const LAST_CACHE_DEFAULT_COUNT: usize = 1;
/// The largest `count` a last cache accepts.
pub const LAST_CACHE_MAX_COUNT: usize = 10;
/// `ttl` when none is given: 4 hours.
pub const LAST_CACHE_DEFAULT_TTL_SECONDS: u64 = 4 * 60 * 60;
/// `max_cardinality` when none is given (API.md §5.8).
pub const DISTINCT_CACHE_DEFAULT_MAX_CARDINALITY: u64 = 100_000;
/// `max_age` when none is given: 1 day.
pub const DISTINCT_CACHE_DEFAULT_MAX_AGE_SECONDS: u64 = 24 * 60 * 60;
/// A distinct cache name the reference reserves.
pub const DISTINCT_CACHE_RESERVED_NAME: &str = "__auto__";

/// A last-value cache: per combination of key column values, the last `count` rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCacheDefinition {
    pub id: CacheId,
    pub name: String,
    /// In key order; may be empty (then the cache holds the table's last rows).
    pub key_columns: Vec<ColumnId>,
    /// `None`: every non-key column, including columns added to the table later.
    pub value_columns: Option<Vec<ColumnId>>,
    pub count: usize,
    pub ttl_seconds: u64,
}

/// A distinct-value cache: the distinct combinations of `columns`, as a hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistinctCacheDefinition {
    pub id: CacheId,
    pub name: String,
    pub columns: Vec<ColumnId>,
    pub max_cardinality: u64,
    pub max_age_seconds: u64,
}

/// What a client asks for when creating a last cache; `None` means "the default".
#[derive(Debug, Clone, Default)]
pub struct LastCacheRequest {
    pub name: Option<String>,
    pub key_columns: Option<Vec<String>>,
    pub value_columns: Option<Vec<String>>,
    pub count: Option<usize>,
    pub ttl_seconds: Option<u64>,
}

/// What a client asks for when creating a distinct cache.
#[derive(Debug, Clone, Default)]
pub struct DistinctCacheRequest {
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub max_cardinality: Option<u64>,
    pub max_age_seconds: Option<u64>,
}

/// Key columns of a last cache: tags, strings, signed and unsigned integers, booleans.
pub fn is_last_cache_key_kind(kind: ColumnKind) -> bool {
    matches!(
        kind,
        ColumnKind::Tag
            | ColumnKind::Field(
                FieldType::String | FieldType::Integer | FieldType::UInteger | FieldType::Boolean
            )
    )
}

/// Columns of a distinct cache: tags and string fields.
pub fn is_distinct_cache_kind(kind: ColumnKind) -> bool {
    matches!(kind, ColumnKind::Tag | ColumnKind::Field(FieldType::String))
}

impl LastCacheDefinition {
    /// The value columns as of `table`'s current schema: the explicit list, or every column
    /// that is neither a key nor `time` (in column order).
    pub fn value_column_ids(&self, table: &TableSchema) -> Vec<ColumnId> {
        match &self.value_columns {
            Some(cols) => cols.clone(),
            None => table
                .columns()
                .iter()
                .filter(|c| c.kind != ColumnKind::Time && !self.key_columns.contains(&c.id))
                .map(|c| c.id)
                .collect(),
        }
    }
}
