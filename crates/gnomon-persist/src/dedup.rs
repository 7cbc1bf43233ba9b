//! Sorting by series (all tag values) then time, and merging rows of the same series and time
//! so that the last write wins per column — the same rule the buffer applies within a chunk,
//! here across sources (files and buffer chunks of one time range).

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{cast, concat_batches, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, Rows, SortField};

/// Name of the time column.
pub const TIME: &str = "time";

/// Columns that identify a series: every tag (dictionary-typed) in schema order.
pub fn tag_columns(schema: &SchemaRef) -> Vec<usize> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f.data_type(), DataType::Dictionary(..)))
        .map(|(i, _)| i)
        .collect()
}

/// Columns that identify a row: the tags ([`tag_columns`]), then `time`.
pub fn key_columns(schema: &SchemaRef) -> Vec<usize> {
    let mut key = tag_columns(schema);
    if let Ok(i) = schema.index_of(TIME) {
        key.push(i);
    }
    key
}

/// A converter to the row format of `columns` of `schema`, for comparing keys.
pub fn key_converter(schema: &SchemaRef, columns: &[usize]) -> Result<RowConverter, ArrowError> {
    RowConverter::new(
        columns
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )
}

/// `batch` with the columns of `schema` (by name): missing columns become nulls, types are
/// cast where they differ (e.g. a file written before a column existed, or read back with
/// plain strings where the table has dictionaries).
pub fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema() == *schema {
        return Ok(batch.clone());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(Arc::clone(c)),
            Some(c) => cast(c, field.data_type()),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}

fn key_rows(batch: &RecordBatch) -> Result<Rows, ArrowError> {
    let schema = batch.schema();
    let key = key_columns(&schema);
    let converter = key_converter(&schema, &key)?;
    let columns: Vec<ArrayRef> = key.iter().map(|&i| Arc::clone(batch.column(i))).collect();
    converter.convert_columns(&columns)
}

/// Row order by series then time; stable, so equal keys keep their input order.
pub fn sorted_indices(batch: &RecordBatch) -> Result<Vec<u32>, ArrowError> {
    let rows = key_rows(batch)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    Ok(order)
}

/// Merges `batches` (oldest write first) into one batch of `schema`, sorted by series then
/// time, with one row per series and time: per column, the last non-null value written.
pub fn merge_last_wins(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch, ArrowError> {
    let aligned = batches
        .iter()
        .map(|b| align(b, schema))
        .collect::<Result<Vec<_>, _>>()?;
    let all = concat_batches(schema, &aligned)?;
    if all.num_rows() == 0 {
        return Ok(all);
    }
    let rows = key_rows(&all)?;
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    // Runs of equal keys, as (start, len) in `order`.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && rows.row(order[i] as usize) == rows.row(order[j] as usize) {
            j += 1;
        }
        if j - i > 1 {
            runs.push((i, j - i));
        }
        i = j;
    }
    let columns = all
        .columns()
        .iter()
        .map(|array| {
            let mut indices: Vec<u32> = Vec::with_capacity(order.len());
            let mut pos = 0;
            for &(start, len) in &runs {
                indices.extend_from_slice(&order[pos..start]);
                let run = &order[start..start + len];
                let pick = run
                    .iter()
                    .rev()
                    .find(|&&r| array.is_valid(r as usize))
                    .unwrap_or(&run[len - 1]);
                indices.push(*pick);
                pos = start + len;
            }
            indices.extend_from_slice(&order[pos..]);
            take(array.as_ref(), &UInt32Array::from(indices), None)
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Float64Array, Int64Array, TimestampNanosecondArray};
    use arrow::datatypes::{Field, Int32Type, Schema, TimeUnit};

    /// A table of tag `host`, `time`, float `u` and integer `v` (shared with the compactor's
    /// tests).
    pub(crate) fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(
                "host",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
            Field::new("u", DataType::Float64, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    pub(crate) fn batch(
        hosts: &[&str],
        times: &[i64],
        u: &[Option<f64>],
        v: &[Option<i64>],
    ) -> RecordBatch {
        let host: DictionaryArray<Int32Type> = hosts.iter().copied().collect();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(host),
                Arc::new(TimestampNanosecondArray::from(times.to_vec())),
                Arc::new(Float64Array::from(u.to_vec())),
                Arc::new(Int64Array::from(v.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn later_batches_win_per_column_and_output_is_sorted() {
        let old = batch(
            &["b", "a", "a"],
            &[5, 2, 1],
            &[Some(1.0), Some(2.0), Some(3.0)],
            &[Some(10), Some(20), Some(30)],
        );
        // Rewrites a@2 with a new u but no v; adds a@3.
        let new = batch(
            &["a", "a"],
            &[2, 3],
            &[Some(9.0), Some(4.0)],
            &[None, Some(40)],
        );
        let merged = merge_last_wins(&schema(), &[old, new]).unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&[merged])
            .unwrap()
            .to_string();
        let expected = "\
+------+-------------------------------+-----+----+
| host | time                          | u   | v  |
+------+-------------------------------+-----+----+
| a    | 1970-01-01T00:00:00.000000001 | 3.0 | 30 |
| a    | 1970-01-01T00:00:00.000000002 | 9.0 | 20 |
| a    | 1970-01-01T00:00:00.000000003 | 4.0 | 40 |
| b    | 1970-01-01T00:00:00.000000005 | 1.0 | 10 |
+------+-------------------------------+-----+----+";
        assert_eq!(text, expected);
    }

    #[test]
    fn align_fills_missing_columns_with_nulls() {
        let narrow = Arc::new(Schema::new(vec![Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            false,
        )]));
        let b = RecordBatch::try_new(
            narrow,
            vec![Arc::new(TimestampNanosecondArray::from(vec![1, 2]))],
        )
        .unwrap();
        let wide = align(&b, &schema()).unwrap();
        assert_eq!(wide.num_columns(), 4);
        assert_eq!(wide.column(0).null_count(), 2);
        assert_eq!(wide.column(2).null_count(), 2);
    }
}
