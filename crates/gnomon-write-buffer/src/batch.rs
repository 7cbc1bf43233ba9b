//! The validated, columnar form of one write request: what the WAL stores and what the buffer
//! applies.
//!
//! A [`WriteBatch`] is self-contained: tag values are kept as strings (deduplicated within the
//! batch through a batch-local dictionary) rather than as ids of the buffer's dictionaries,
//! so that replaying it after a restart does not depend on any in-memory state. Encoding uses
//! `postcard` (varint integers), which keeps a TSBS line at a few tens of bytes in the WAL.

use gnomon_catalog::{ColumnId, DbId, TableId};
use serde::{Deserialize, Serialize};

use crate::WriteBufferError;

/// Marks a null entry in [`ColumnData::Tag::keys`].
pub const NULL_TAG: u32 = u32::MAX;

/// All rows of one write request for one database, grouped by table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteBatch {
    pub db_id: DbId,
    pub tables: Vec<TableBatch>,
}

/// The rows of one table in a write, column by column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableBatch {
    pub table_id: TableId,
    /// Nanoseconds since the epoch, one per row.
    pub time: Vec<i64>,
    /// Every column that at least one row of this batch set; `len()` of each equals `time.len()`.
    pub columns: Vec<BatchColumn>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchColumn {
    pub column_id: ColumnId,
    pub data: ColumnData,
}

/// Values of one column. `valid` is `None` when every row has a value; otherwise it holds one
/// flag per row, and the value slot of an invalid row holds a default that must be ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnData {
    Tag {
        /// Distinct values of this column in this batch.
        dictionary: Vec<String>,
        /// Per row: index into `dictionary`, or [`NULL_TAG`].
        keys: Vec<u32>,
    },
    Float {
        values: Vec<f64>,
        valid: Option<Vec<bool>>,
    },
    Integer {
        values: Vec<i64>,
        valid: Option<Vec<bool>>,
    },
    UInteger {
        values: Vec<u64>,
        valid: Option<Vec<bool>>,
    },
    Boolean {
        values: Vec<bool>,
        valid: Option<Vec<bool>>,
    },
    String {
        values: Vec<String>,
        valid: Option<Vec<bool>>,
    },
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Tag { keys, .. } => keys.len(),
            ColumnData::Float { values, .. } => values.len(),
            ColumnData::Integer { values, .. } => values.len(),
            ColumnData::UInteger { values, .. } => values.len(),
            ColumnData::Boolean { values, .. } => values.len(),
            ColumnData::String { values, .. } => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TableBatch {
    pub fn row_count(&self) -> usize {
        self.time.len()
    }
}

impl WriteBatch {
    pub fn row_count(&self) -> usize {
        self.tables.iter().map(TableBatch::row_count).sum()
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain vectors and strings cannot fail.
        postcard::to_stdvec(self).expect("WriteBatch is always serialisable")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WriteBufferError> {
        postcard::from_bytes(bytes).map_err(|e| WriteBufferError::CorruptBatch(e.to_string()))
    }
}

impl gnomon_wal::WalPayload for WriteBatch {
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        WriteBatch::decode(bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let batch = WriteBatch {
            db_id: 3,
            tables: vec![TableBatch {
                table_id: 7,
                time: vec![1, 2, 3],
                columns: vec![
                    BatchColumn {
                        column_id: 1,
                        data: ColumnData::Tag {
                            dictionary: vec!["a".into(), "b".into()],
                            keys: vec![0, NULL_TAG, 1],
                        },
                    },
                    BatchColumn {
                        column_id: 2,
                        data: ColumnData::Float {
                            values: vec![1.5, 0.0, f64::INFINITY],
                            valid: Some(vec![true, false, true]),
                        },
                    },
                    BatchColumn {
                        column_id: 3,
                        data: ColumnData::String {
                            values: vec!["x".into(), "".into(), "z\n".into()],
                            valid: None,
                        },
                    },
                ],
            }],
        };
        let bytes = batch.encode();
        assert_eq!(WriteBatch::decode(&bytes).unwrap(), batch);
        assert!(WriteBatch::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
