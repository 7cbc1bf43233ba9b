//! Row ranges of tag values in persisted files: how a query that names a few series reads
//! only their rows.
//!
//! Files are sorted by series then time (and compacted files by time slice, then series),
//! so the rows holding one tag value form a few long runs. When a query's filters pin a tag
//! to a set of values (`host = 'a'`, `host IN ('a', 'b')`, `host = 'a' OR host = 'b'`),
//! the scan gives each file a [`ParquetRowSelection`] of those runs (intersected over the
//! pinned tags); the Parquet reader then skips every page outside them, and a file without
//! any of the values is left out of the plan. The filters still run above the scan: the
//! selection only ever removes rows they would reject.
//!
//! The runs of one (file, tag) are found the first time a query needs them, by decoding that
//! one column, and kept in a bounded cache: files are immutable, so an entry never goes stale
//! (a deleted file's entry is just never asked for again).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int32Type, Schema};
use datafusion::common::ScalarValue;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::RowSelection;
use parquet::arrow::async_reader::{
    AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder,
};
use parquet::arrow::ProjectionMask;

use crate::persisted::{FileFacts, FILE_FACTS_ENTRIES};
use crate::time_range::TimeRange;
use crate::time_runs::TimeRuns;

/// A tag pinned to a set of values by a query's filters.
#[derive(Debug, Clone, PartialEq)]
pub struct TagValues {
    pub column: String,
    pub values: Vec<String>,
}

/// The tag constraints in `filters` (conjuncts) on the dictionary-typed columns of `schema`.
pub fn tag_constraints(filters: &[Expr], schema: &Schema) -> Vec<TagValues> {
    let is_tag = |name: &str| {
        schema
            .field_with_name(name)
            .is_ok_and(|f| matches!(f.data_type(), DataType::Dictionary(..)))
    };
    filters
        .iter()
        .flat_map(split_conjunction)
        .filter_map(pinned_values)
        .filter(|c| is_tag(&c.column))
        .collect()
}

/// `col = 'v'`, `col IN ('v', …)` or an `OR` of those on one column.
fn pinned_values(expr: &Expr) -> Option<TagValues> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Eq => {
                let (column, value) = match (column_name(left), string_literal(right)) {
                    (Some(c), Some(v)) => (c, v),
                    _ => (column_name(right)?, string_literal(left)?),
                };
                Some(TagValues {
                    column,
                    values: vec![value],
                })
            }
            Operator::Or => {
                let (mut a, b) = (pinned_values(left)?, pinned_values(right)?);
                if a.column != b.column {
                    return None;
                }
                a.values.extend(b.values);
                Some(a)
            }
            _ => None,
        },
        Expr::InList(list) if !list.negated => Some(TagValues {
            column: column_name(&list.expr)?,
            values: list
                .list
                .iter()
                .map(string_literal)
                .collect::<Option<Vec<_>>>()?,
        }),
        _ => None,
    }
}

fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        _ => None,
    }
}

fn string_literal(expr: &Expr) -> Option<String> {
    fn of(value: &ScalarValue) -> Option<String> {
        match value {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
            ScalarValue::Dictionary(_, inner) => of(inner),
            _ => None,
        }
    }
    match expr {
        Expr::Literal(value, _) => of(value),
        Expr::Cast(c) => string_literal(&c.expr),
        _ => None,
    }
}

/// Where each value of one tag column lies in one file: sorted, disjoint row ranges.
#[derive(Debug, Default)]
pub struct TagRuns {
    rows: u64,
    values: HashMap<String, Vec<Range<u64>>>,
}

/// More runs than this in one (file, tag) and the runs are not kept (the scan reads the
/// whole file, as without an index): a tag with that many runs is not worth it.
const MAX_RUNS: usize = 4 << 20;

impl TagRuns {
    /// Rows in the file.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Every value with its sorted, disjoint row ranges.
    pub(crate) fn values(&self) -> impl Iterator<Item = (&str, &[Range<u64>])> {
        self.values.iter().map(|(v, r)| (v.as_str(), r.as_slice()))
    }

    /// The rows holding any of `values`, sorted and merged.
    fn rows_of(&self, values: &[String]) -> Vec<Range<u64>> {
        let mut ranges: Vec<Range<u64>> = values
            .iter()
            .filter_map(|v| self.values.get(v))
            .flatten()
            .cloned()
            .collect();
        ranges.sort_by_key(|r| r.start);
        merge_adjacent(ranges)
    }

    /// Decodes `column` of the file behind `reader`.
    async fn read(reader: Box<dyn AsyncFileReader + Send>, column: &str) -> Result<Option<Self>> {
        let (rows, stream) = column_batches(reader, column).await?;
        let mut runs = Self {
            rows,
            values: HashMap::new(),
        };
        let Some(mut stream) = stream else {
            // A file written before the column existed: no row has a value.
            return Ok(Some(runs));
        };
        let mut count = 0usize;
        // The value whose run is open, and the row it started at.
        let mut current: Option<(String, u64)> = None;
        let mut at = 0u64;
        while let Some(batch) = stream.try_next().await? {
            let array = batch.column(0);
            let Some(dict) = array.as_dictionary_opt::<Int32Type>() else {
                return Ok(None);
            };
            let values = dict.values().as_string_opt::<i32>().ok_or_else(|| {
                DataFusionError::Internal(format!("tag column {column} is not a string dictionary"))
            })?;
            let keys = dict.keys();
            let mut previous_key: Option<Option<i32>> = None;
            for i in 0..keys.len() {
                let key = keys.is_valid(i).then(|| keys.value(i));
                if previous_key == Some(key) {
                    continue;
                }
                previous_key = Some(key);
                let row = at + i as u64;
                let value = key.map(|k| values.value(k as usize));
                if current.as_ref().map(|(v, _)| v.as_str()) == value {
                    continue;
                }
                if let Some((done, start)) = current.take() {
                    runs.values.entry(done).or_default().push(start..row);
                    count += 1;
                    if count > MAX_RUNS {
                        return Ok(None);
                    }
                }
                current = value.map(|v| (v.to_string(), row));
            }
            at += keys.len() as u64;
        }
        if let Some((done, start)) = current {
            runs.values.entry(done).or_default().push(start..at);
        }
        Ok(Some(runs))
    }
}

/// The row count of the file behind `reader`, and its column `column` alone in large batches
/// (`None` when the file has no such column).
pub(crate) async fn column_batches(
    reader: Box<dyn AsyncFileReader + Send>,
    column: &str,
) -> Result<(u64, Option<ParquetRecordBatchStream<SendReader>>)> {
    let builder = ParquetRecordBatchStreamBuilder::new(SendReader(reader)).await?;
    let rows = builder.metadata().file_metadata().num_rows() as u64;
    let Some(leaf) = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.name() == column)
    else {
        return Ok((rows, None));
    };
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [leaf]);
    let stream = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()?;
    Ok((rows, Some(stream)))
}

/// A boxed reader that is `Send` (parquet implements its trait only for the plain box).
pub(crate) struct SendReader(Box<dyn AsyncFileReader + Send>);

impl AsyncFileReader for SendReader {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        self.0.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        self.0.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<
        'a,
        parquet::errors::Result<Arc<parquet::file::metadata::ParquetMetaData>>,
    > {
        self.0.get_metadata(options)
    }
}

pub(crate) fn merge_adjacent(ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

fn intersect(a: &[Range<u64>], b: &[Range<u64>]) -> Vec<Range<u64>> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let (start, end) = (a[i].start.max(b[j].start), a[i].end.min(b[j].end));
        if start < end {
            out.push(start..end);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// What a file contributes to a scan with tag constraints.
#[derive(Debug)]
pub enum FileRows {
    /// No row can match: leave the file out.
    None,
    /// Every row may match (or the file has no usable runs).
    All,
    /// Only these rows may match: the file's row count, and sorted, disjoint row ranges.
    Some(u64, Vec<Range<u64>>),
}

impl FileRows {
    /// `rows` (sorted, disjoint) of a file of `total` rows.
    pub(crate) fn of(total: u64, rows: Vec<Range<u64>>) -> Self {
        if rows.is_empty() {
            FileRows::None
        } else if rows.len() == 1 && rows[0] == (0..total) {
            FileRows::All
        } else {
            FileRows::Some(total, rows)
        }
    }

    /// The selection a DataFusion scan takes for rows `rows` of a file of `total` rows.
    pub(crate) fn scan_selection(total: u64, rows: &[Range<u64>]) -> ParquetRowSelection {
        ParquetRowSelection::new(RowSelection::from_consecutive_ranges(
            rows.iter().map(|r| r.start as usize..r.end as usize),
            total as usize,
        ))
    }

    /// These rows, and only those with a time in `range` according to `times` (the runs of
    /// the same file).
    pub(crate) fn within(self, times: &TimeRuns, range: TimeRange) -> Self {
        match self {
            FileRows::None => FileRows::None,
            FileRows::All => FileRows::of(times.rows(), times.rows_within(range, None)),
            FileRows::Some(total, rows) => {
                FileRows::of(total, times.rows_within(range, Some(&rows)))
            }
        }
    }
}

/// The runs of every (file, tag) a query asked for (by object path and tag column); `None`
/// for a column with too many runs to keep.
#[derive(Debug)]
pub struct TagRunsCache(FileFacts<(String, String), Option<Arc<TagRuns>>>);

impl Default for TagRunsCache {
    fn default() -> Self {
        Self(FileFacts::new(FILE_FACTS_ENTRIES))
    }
}

impl TagRunsCache {
    pub(crate) async fn runs(
        &self,
        path: &str,
        column: &str,
        open: impl FnOnce() -> Result<Box<dyn AsyncFileReader + Send>>,
    ) -> Result<Option<Arc<TagRuns>>> {
        let key = (path.to_string(), column.to_string());
        self.0
            .get_or_load(&key, async {
                Ok(TagRuns::read(open()?, column).await?.map(Arc::new))
            })
            .await
    }

    /// The rows of the file at `path` that `constraints` (all of them) may match.
    pub async fn file_rows(
        &self,
        path: &str,
        constraints: &[TagValues],
        open: impl Fn() -> Result<Box<dyn AsyncFileReader + Send>>,
    ) -> Result<FileRows> {
        let mut selected: Option<(u64, Vec<Range<u64>>)> = None;
        for constraint in constraints {
            let Some(runs) = self.runs(path, &constraint.column, &open).await? else {
                continue;
            };
            let rows = runs.rows_of(&constraint.values);
            selected = Some(match selected {
                None => (runs.rows, rows),
                Some((total, before)) => (total, intersect(&before, &rows)),
            });
        }
        Ok(match selected {
            None => FileRows::All,
            Some((total, rows)) => FileRows::of(total, rows),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::logical_expr::{col, lit};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new(
                "host",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new("region", DataType::Utf8, true),
        ])
    }

    #[test]
    fn equalities_in_lists_and_ors_on_one_tag_pin_it() {
        let filters = vec![
            col("host").eq(lit("a")).or(col("host").eq(lit("b"))),
            col("host").in_list(vec![lit("c")], false),
            lit("d").eq(col("host")).and(col("region").eq(lit("x"))),
            // Not pinning: a field column, a negation, a range, an OR over two columns.
            col("host").in_list(vec![lit("e")], true),
            col("host").gt(lit("f")),
            col("host").eq(lit("g")).or(col("region").eq(lit("y"))),
        ];
        let found = tag_constraints(&filters, &schema());
        let pinned: Vec<Vec<&str>> = found
            .iter()
            .map(|c| c.values.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(pinned, vec![vec!["a", "b"], vec!["c"], vec!["d"]]);
        assert!(found.iter().all(|c| c.column == "host"));
    }

    #[test]
    fn ranges_merge_and_intersect() {
        assert_eq!(
            merge_adjacent(vec![0..2, 2..4, 6..8, 7..9]),
            vec![0..4, 6..9]
        );
        assert_eq!(
            intersect(&[0..10, 20..30], &[5..25, 28..40]),
            vec![5..10, 20..25, 28..30]
        );
        let runs = TagRuns {
            rows: 100,
            values: HashMap::from([
                ("a".to_string(), vec![0..10, 50..60]),
                ("b".to_string(), vec![Range { start: 10, end: 20 }]),
            ]),
        };
        let want = ["a".to_string(), "b".to_string(), "zz".to_string()];
        assert_eq!(runs.rows_of(&want), vec![0..20, 50..60]);
    }
}
