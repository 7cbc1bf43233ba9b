//! The series tail: the newest row of every series in a file, kept in the file's last row
//! group.
//!
//! A file holds its rows sorted by series then time, so the newest row of a series is the
//! last of its run, and the runs' last rows are spread over every page of the file: "the
//! last point of every host" had to decode all of it. [`TailSplitter`] writes a file's rows
//! in that order except for those last rows, which it gathers into one final row group (the
//! *tail*, sorted by series) and marks the file with [`SERIES_TAIL_KEY`]. Nothing is stored
//! twice, and the runs of the main row groups keep their length (so compression is
//! unchanged). A reader that wants the newest row per series reads the tail only; one that
//! merges files by series (the compactor) reads the main row groups and the tail as two
//! sorted runs.
//!
//! A file with more than [`MAX_TAIL_ROWS`] series keeps the first ones' last rows in the tail
//! and the rest in place, without the mark: its tail is then just another row group.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::{KeyValue, ParquetMetaData};

use crate::dedup::{key_converter, tag_columns};
use crate::PersistError;

/// Key-value metadata of a file whose last row group holds the newest row of every series in
/// the file (and nothing else).
pub const SERIES_TAIL_KEY: &str = "gnomon.series_tail";
/// More series than this in one file and the tail stops growing (see the module docs).
pub const MAX_TAIL_ROWS: usize = 256 * 1024;

/// The first row of the tail when `metadata` carries the mark; `None` otherwise.
pub fn tail_start(metadata: &ParquetMetaData) -> Option<u64> {
    let marked = metadata
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .any(|kv| kv.key == SERIES_TAIL_KEY);
    let groups = metadata.row_groups();
    let last = groups.last()?;
    marked.then(|| (metadata.file_metadata().num_rows() - last.num_rows()) as u64)
}

/// Writes series-sorted batches to `writer`, holding back each series' last row for the tail.
pub struct TailSplitter {
    writer: ArrowWriter<Vec<u8>>,
    schema: SchemaRef,
    tags: Vec<usize>,
    converter: RowConverter,
    /// The last row seen: whether its series goes on is known only with the next row.
    pending: Option<RecordBatch>,
    tail: Vec<RecordBatch>,
    tail_rows: usize,
    complete: bool,
}

impl TailSplitter {
    pub fn new(writer: ArrowWriter<Vec<u8>>, schema: SchemaRef) -> Result<Self, PersistError> {
        let tags = tag_columns(&schema);
        let converter = key_converter(&schema, &tags)?;
        Ok(Self {
            writer,
            schema,
            tags,
            converter,
            pending: None,
            tail: Vec::new(),
            tail_rows: 0,
            complete: true,
        })
    }

    /// Takes the next rows, in series-then-time order after those already written.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), PersistError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if !self.complete {
            return Ok(self.writer.write(batch)?);
        }
        let rows = match self.pending.take() {
            Some(p) => concat_batches(&self.schema, [&p, batch])?,
            None => batch.clone(),
        };
        let n = rows.num_rows();
        let (main, tail) = if self.tags.is_empty() {
            ((0..n as u32 - 1).collect(), Vec::new())
        } else {
            let columns: Vec<ArrayRef> = self
                .tags
                .iter()
                .map(|&i| Arc::clone(rows.column(i)))
                .collect();
            let keys = self.converter.convert_columns(&columns)?;
            let (mut main, mut tail) = (Vec::with_capacity(n), Vec::new());
            for i in 0..n - 1 {
                if keys.row(i) == keys.row(i + 1) {
                    main.push(i as u32);
                } else {
                    tail.push(i as u32);
                }
            }
            (main, tail)
        };
        self.writer
            .write(&take_record_batch(&rows, &UInt32Array::from(main))?)?;
        if !tail.is_empty() {
            self.tail_rows += tail.len();
            self.tail
                .push(take_record_batch(&rows, &UInt32Array::from(tail))?);
        }
        self.pending = Some(rows.slice(n - 1, 1));
        if self.tail_rows > MAX_TAIL_ROWS {
            // Too many series to be worth it: the rest stays in place, and the file is not
            // marked (its tail no longer holds every series' newest row).
            self.complete = false;
            if let Some(p) = self.pending.take() {
                self.writer.write(&p)?;
            }
        }
        Ok(())
    }

    /// Ends the main row groups, writes the tail and returns the file's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, PersistError> {
        if let Some(p) = self.pending.take() {
            self.tail_rows += 1;
            self.tail.push(p);
        }
        if !self.tail.is_empty() {
            self.writer.flush()?;
            let tail = concat_batches(&self.schema, &self.tail)?;
            self.writer.write(&tail)?;
            if self.complete {
                self.writer.append_key_value_metadata(KeyValue::new(
                    SERIES_TAIL_KEY.into(),
                    "1".to_string(),
                ));
            }
        }
        Ok(self.writer.into_inner()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::tests::{batch, schema};
    use crate::writer::writer_properties;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn the_last_row_of_each_series_moves_to_a_final_row_group() {
        let schema = schema();
        // Three hosts of 5, 1 and 3 rows, handed over in batches that cut series apart.
        let hosts = ["a", "a", "a", "a", "a", "b", "c", "c", "c"];
        let times: Vec<i64> = vec![1, 2, 3, 4, 5, 7, 1, 2, 9];
        let u: Vec<Option<f64>> = (0..9).map(|i| Some(i as f64)).collect();
        let n: Vec<Option<i64>> = (0..9).map(Some).collect();
        let all = batch(&hosts, &times, &u, &n);
        let writer =
            ArrowWriter::try_new(Vec::new(), schema.clone(), Some(writer_properties(&schema)))
                .unwrap();
        let mut splitter = TailSplitter::new(writer, schema.clone()).unwrap();
        for (start, len) in [(0, 2), (2, 4), (6, 1), (7, 2)] {
            splitter.write(&all.slice(start, len)).unwrap();
        }
        let bytes = splitter.finish().unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        assert_eq!(tail_start(builder.metadata()), Some(6));
        let groups = builder.metadata().num_row_groups();
        let read: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        let read = concat_batches(&schema, &read).unwrap();
        let t = read
            .column_by_name("time")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::TimestampNanosecondArray>()
            .unwrap()
            .values()
            .to_vec();
        // Main rows in order without each series' last, then the three last rows.
        assert_eq!(t, vec![1, 2, 3, 4, 1, 2, 5, 7, 9]);
        assert_eq!(groups, 2);
    }
}
