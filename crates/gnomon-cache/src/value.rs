//! Values as the caches hold them, read out of a [`TableBatch`] row by row.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, StringDictionaryBuilder,
    UInt64Builder,
};
use arrow::datatypes::Int32Type;
use gnomon_catalog::{ColumnKind, FieldType};
use gnomon_write_buffer::batch::{BatchColumn, ColumnData, NULL_TAG};

/// A key column value: hashable and ordered (no floats). `Null` when the row had none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Str(Arc<str>),
}

/// A borrowed [`KeyValue`] for lookups without allocating. Variants and their order match
/// `KeyValue` so that the derived hashes agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Str(&'a str),
}

impl hashbrown::Equivalent<KeyValue> for KeyRef<'_> {
    fn equivalent(&self, key: &KeyValue) -> bool {
        match (self, key) {
            (KeyRef::Null, KeyValue::Null) => true,
            (KeyRef::Bool(a), KeyValue::Bool(b)) => a == b,
            (KeyRef::Int(a), KeyValue::Int(b)) => a == b,
            (KeyRef::UInt(a), KeyValue::UInt(b)) => a == b,
            (KeyRef::Str(a), KeyValue::Str(b)) => *a == &**b,
            _ => false,
        }
    }
}

impl From<&KeyRef<'_>> for KeyValue {
    fn from(k: &KeyRef<'_>) -> Self {
        match *k {
            KeyRef::Null => KeyValue::Null,
            KeyRef::Bool(b) => KeyValue::Bool(b),
            KeyRef::Int(i) => KeyValue::Int(i),
            KeyRef::UInt(u) => KeyValue::UInt(u),
            KeyRef::Str(s) => KeyValue::Str(Arc::from(s)),
        }
    }
}

/// A cached field (or non-key tag) value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(Arc<str>),
}

/// Reads row values of one batch column.
pub(crate) fn key_at(column: &BatchColumn, row: usize) -> KeyRef<'_> {
    fn valid(v: &Option<Vec<bool>>, row: usize) -> bool {
        v.as_ref().is_none_or(|v| v[row])
    }
    match &column.data {
        ColumnData::Tag { dictionary, keys } => match keys[row] {
            NULL_TAG => KeyRef::Null,
            k => KeyRef::Str(&dictionary[k as usize]),
        },
        ColumnData::String { values, valid: v } if valid(v, row) => KeyRef::Str(&values[row]),
        ColumnData::Integer { values, valid: v } if valid(v, row) => KeyRef::Int(values[row]),
        ColumnData::UInteger { values, valid: v } if valid(v, row) => KeyRef::UInt(values[row]),
        ColumnData::Boolean { values, valid: v } if valid(v, row) => KeyRef::Bool(values[row]),
        // Floats are never keys (the catalog refuses them); nulls are null.
        _ => KeyRef::Null,
    }
}

pub(crate) fn value_at(column: &BatchColumn, row: usize) -> Option<Value> {
    fn valid(v: &Option<Vec<bool>>, row: usize) -> bool {
        v.as_ref().is_none_or(|v| v[row])
    }
    match &column.data {
        ColumnData::Tag { dictionary, keys } => match keys[row] {
            NULL_TAG => None,
            k => Some(Value::Str(Arc::from(dictionary[k as usize].as_str()))),
        },
        ColumnData::Float { values, valid: v } => valid(v, row).then(|| Value::Float(values[row])),
        ColumnData::Integer { values, valid: v } => valid(v, row).then(|| Value::Int(values[row])),
        ColumnData::UInteger { values, valid: v } => {
            valid(v, row).then(|| Value::UInt(values[row]))
        }
        ColumnData::Boolean { values, valid: v } => valid(v, row).then(|| Value::Bool(values[row])),
        ColumnData::String { values, valid: v } => {
            valid(v, row).then(|| Value::Str(Arc::from(values[row].as_str())))
        }
    }
}

impl From<&KeyValue> for Option<Value> {
    fn from(k: &KeyValue) -> Self {
        match k {
            KeyValue::Null => None,
            KeyValue::Bool(b) => Some(Value::Bool(*b)),
            KeyValue::Int(i) => Some(Value::Int(*i)),
            KeyValue::UInt(u) => Some(Value::UInt(*u)),
            KeyValue::Str(s) => Some(Value::Str(Arc::clone(s))),
        }
    }
}

/// Builds the Arrow array of a column of `kind` (tags as `Dictionary(Int32, Utf8)`, like the
/// table). A value of another type than the column's is written as null; the catalog never
/// changes a column's type, so this does not happen.
pub(crate) fn build_array<'a>(
    kind: ColumnKind,
    values: impl Iterator<Item = Option<&'a Value>>,
) -> ArrayRef {
    match kind {
        ColumnKind::Tag => {
            let mut b = StringDictionaryBuilder::<Int32Type>::new();
            for v in values {
                match v {
                    Some(Value::Str(s)) => {
                        b.append_value(&**s);
                    }
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        ColumnKind::Field(FieldType::String) => {
            let mut b = StringBuilder::new();
            for v in values {
                match v {
                    Some(Value::Str(s)) => b.append_value(&**s),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        ColumnKind::Field(FieldType::Float) => {
            let mut b = Float64Builder::new();
            for v in values {
                b.append_option(match v {
                    Some(Value::Float(f)) => Some(*f),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnKind::Field(FieldType::Integer) | ColumnKind::Time => {
            let mut b = Int64Builder::new();
            for v in values {
                b.append_option(match v {
                    Some(Value::Int(i)) => Some(*i),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnKind::Field(FieldType::UInteger) => {
            let mut b = UInt64Builder::new();
            for v in values {
                b.append_option(match v {
                    Some(Value::UInt(u)) => Some(*u),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnKind::Field(FieldType::Boolean) => {
            let mut b = BooleanBuilder::new();
            for v in values {
                b.append_option(match v {
                    Some(Value::Bool(x)) => Some(*x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
    }
}
