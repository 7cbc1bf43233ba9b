//! Errors of the catalog and how they map onto HTTP status classes.

use crate::names::NameError;
use crate::schema::ColumnKind;
use crate::trigger::TriggerSpecError;

/// Which kind of HTTP status an error calls for (API.md §0.6). The server picks the exact
/// status and body family; the catalog only says which class the condition belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 404
    NotFound,
    /// 409
    Conflict,
    /// 400
    BadRequest,
    /// 422 (limits)
    Unprocessable,
    /// 500
    Internal,
}

/// A resource limit that a schema change would break.
///
/// The messages keep the reference's prefixes (`Adding a new database would exceed limit of`,
/// `Update to schema would exceed number of`) because the HTTP layer turns line errors starting
/// with them into a 422; the rest of the message says what was attempted, the current count, the
/// limit and how to get out of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "Adding a new database would exceed limit of {limit} databases: attempted to create \
         database '{name}' but already have {count} database(s) (limit: {limit}); delete a \
         database or raise --num-database-limit"
    )]
    Databases {
        name: String,
        count: usize,
        limit: usize,
    },
    #[error(
        "Update to schema would exceed number of tables limit: attempted to create table \
         '{table}' in database '{db}' but already have {count} table(s) (limit: {limit}); \
         delete a table or raise --num-table-limit"
    )]
    Tables {
        db: String,
        table: String,
        count: usize,
        limit: usize,
    },
    #[error(
        "Update to schema would exceed number of columns per table limit of {limit} columns: \
         attempted to add column '{column}' to table '{table}' in database '{db}' but it \
         already has {count} tag and field column(s) (limit: {limit}); write fewer distinct \
         tag and field keys or raise --num-total-columns-per-table-limit"
    )]
    Columns {
        db: String,
        table: String,
        column: String,
        count: usize,
        limit: usize,
    },
    #[error(
        "Update to schema would exceed number of tag columns per table limit of {limit} \
         columns: attempted to add tag column '{column}' to table '{table}' in database \
         '{db}' but it already has {count} tag column(s) (limit: {limit}); write fewer \
         distinct tag keys"
    )]
    TagColumns {
        db: String,
        table: String,
        column: String,
        count: usize,
        limit: usize,
    },
}

/// Everything that can go wrong in the catalog.
///
/// Display strings are the messages clients see; where API.md/LINE_PROTOCOL.md give an exact
/// text it is reproduced verbatim.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A resource looked up by name for a configure call (e.g. deleting a database) is missing.
    #[error("the requested resource was not found: {name}")]
    NotFound { name: String },

    #[error("Database not found {name}")]
    DatabaseNotFound { name: String },

    #[error("Table {table} not in DB schema for {db}")]
    TableNotFound { db: String, table: String },

    /// The message is fixed by the reference; `name` is kept for logs and callers.
    #[error("attempted to create a resource that already exists")]
    AlreadyExists { name: String },

    #[error("attempted to modify resource that was already deleted: {name}")]
    AlreadyDeleted { name: String },

    /// A write addressed a soft-deleted database by its (renamed) name.
    #[error("cannot write to soft-deleted database '{name}' - it is marked for deletion")]
    DatabaseDeleted { name: String },

    /// A write addressed a soft-deleted table by its (renamed) name.
    #[error("cannot write to soft-deleted table '{table}' in database '{db}' - it is marked for deletion")]
    TableDeleted { db: String, table: String },

    /// Name rule violations; [`NameError::is_database`] tells the server to use the JSON body.
    #[error(transparent)]
    InvalidName(#[from] NameError),

    /// `time` on a new table, or `__chunk_order` anywhere. The reference uses the same text
    /// for both names.
    #[error("'time' is a reserved column")]
    ReservedColumn { name: String },

    #[error(
        "invalid column type for column '{name}', expected {}, got {}",
        expected.iox_name(),
        got.iox_name()
    )]
    ColumnTypeConflict {
        name: String,
        expected: ColumnKind,
        got: ColumnKind,
    },

    #[error("invalid configuration provided: {0}")]
    InvalidConfiguration(String),

    /// A cache column of a type the cache cannot hold; the message is the reference's.
    #[error("{0}")]
    InvalidCacheColumnType(&'static str),

    #[error(transparent)]
    LimitExceeded(#[from] LimitError),

    #[error("cannot delete internal db")]
    CannotDeleteInternal,

    /// Triggers cannot be created on `_internal`; the text is the reference's.
    #[error("cannot modify internal db")]
    CannotModifyInternal,

    /// An enabled trigger deleted without `force`.
    #[error("Cannot delete running plugin {name}. Disable it first or use --force.")]
    TriggerRunning { name: String },

    /// An unparsable trigger specification string (500 in the reference, API.md §5.12).
    #[error(transparent)]
    TriggerSpec(#[from] TriggerSpecError),

    /// The object store failed, or could not be asked.
    #[error("catalog storage error: {context}: {source}")]
    Storage {
        context: String,
        #[source]
        source: object_store::Error,
    },

    #[error("catalog serialization error: {0}")]
    Serialization(#[from] serde_json::Error),

    /// A persisted object failed verification; `object` names it so an operator can act.
    #[error("catalog is corrupt: {object}: {reason}")]
    Corrupt { object: String, reason: String },

    /// A broken invariant inside the catalog (a bug, not bad input).
    #[error("internal catalog error: {0}")]
    Internal(String),
}

impl CatalogError {
    /// The HTTP status class for this error (API.md §0.6).
    pub fn status_class(&self) -> StatusClass {
        match self {
            CatalogError::NotFound { .. }
            | CatalogError::DatabaseNotFound { .. }
            | CatalogError::TableNotFound { .. } => StatusClass::NotFound,
            CatalogError::AlreadyExists { .. } | CatalogError::AlreadyDeleted { .. } => {
                StatusClass::Conflict
            }
            CatalogError::DatabaseDeleted { .. }
            | CatalogError::TableDeleted { .. }
            | CatalogError::InvalidName(_)
            | CatalogError::ReservedColumn { .. }
            | CatalogError::ColumnTypeConflict { .. }
            | CatalogError::InvalidConfiguration(_)
            | CatalogError::InvalidCacheColumnType(_) => StatusClass::BadRequest,
            CatalogError::LimitExceeded(_) => StatusClass::Unprocessable,
            CatalogError::CannotDeleteInternal
            | CatalogError::CannotModifyInternal
            | CatalogError::TriggerRunning { .. }
            | CatalogError::TriggerSpec(_)
            | CatalogError::Storage { .. }
            | CatalogError::Serialization(_)
            | CatalogError::Corrupt { .. }
            | CatalogError::Internal(_) => StatusClass::Internal,
        }
    }

    /// True for the errors that API.md §0.6 answers with a JSON `{"error": ...}` body instead
    /// of plain text: database-name validation and the limits.
    pub fn uses_json_body(&self) -> bool {
        match self {
            CatalogError::InvalidName(e) => e.is_database(),
            CatalogError::LimitExceeded(_) => true,
            _ => false,
        }
    }

    pub(crate) fn storage(context: impl Into<String>, source: object_store::Error) -> Self {
        CatalogError::Storage {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn corrupt(object: impl ToString, reason: impl Into<String>) -> Self {
        CatalogError::Corrupt {
            object: object.to_string(),
            reason: reason.into(),
        }
    }
}
