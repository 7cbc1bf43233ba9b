//! Encoding one chunk's rows as a Parquet file.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, TimestampNanosecondArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::DataType;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::dedup::{sorted_indices, TIME};
use crate::tail::TailSplitter;
use crate::PersistError;

/// Rows per row group: small enough for statistics to prune within a file, large enough for
/// compression to see long runs.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows reordered and handed to the encoder at a time; bounds the extra memory of a write.
const SLICE_ROWS: usize = 32 * 1024;
/// Rows per data page at most. A query that selects a few series out of a file (by the
/// series ranges of `gnomon-query`) decodes only the pages holding their rows, so a page
/// must hold far fewer rows than a row group: without this limit a column of small deltas
/// fits a 1 MiB page with a million rows, and reading one host's 360 rows decoded all of
/// them. A delta-encoded page is decoded from its start even to skip, so rows read cost the
/// page's rows before them: halving the page halves that. On a compacted hour of TSBS data
/// 16384-row pages cost 2.7% more bytes than 32768-row ones (8192: 6.5%, over issue 3's
/// budget), mostly page headers and statistics and zstd seeing less at a time.
pub const PAGE_ROWS: usize = 16 * 1024;

/// A Parquet file in memory plus what the index records about it.
#[derive(Debug, Clone)]
pub struct EncodedFile {
    pub bytes: Bytes,
    pub min_time: i64,
    pub max_time: i64,
    pub rows: u64,
}

/// Writer settings: zstd (tags uncompressed); dictionaries for tags, strings, booleans and
/// floats (floats fall back to byte-stream-split when a column has too many distinct
/// values); delta encoding without dictionary for `time` and integers; page-level statistics.
pub fn writer_properties(schema: &arrow::datatypes::Schema) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_dictionary_enabled(true);
    for field in schema.fields() {
        let path = ColumnPath::from(field.name().as_str());
        builder = match field.data_type() {
            DataType::Timestamp(..) => builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED),
            // Series-sorted integers change little from row to row: deltas beat dictionaries.
            DataType::Int64 | DataType::UInt64 => builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED),
            DataType::Float64 => builder.set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT),
            // Tags: a dictionary and runs of keys, which zstd does not make smaller (on TSBS
            // data it made most tag columns larger), while every column chunk it compresses
            // costs a reader a compression and a decompression context (parquet-rs builds
            // both per chunk): a query pinning a host read its tag column only to pay that.
            DataType::Dictionary(..) => {
                builder.set_column_compression(path, Compression::UNCOMPRESSED)
            }
            _ => builder,
        };
    }
    builder.build()
}

/// Rows per row group of a compacted file: compacted ranges are read whole more often than
/// they are pruned, and longer runs per series compress better.
pub const COMPACTED_ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Writer settings of compacted files: those of [`writer_properties`] with larger row groups.
pub fn compaction_properties(schema: &arrow::datatypes::Schema) -> WriterProperties {
    writer_properties(schema)
        .into_builder()
        .set_max_row_group_row_count(Some(COMPACTED_ROW_GROUP_ROWS))
        .build()
}

/// Encodes `batch` (one chunk, one row per series and time) sorted by tags then time, each
/// series' newest row in the series tail ([`crate::tail`]).
pub fn encode(batch: &RecordBatch) -> Result<EncodedFile, PersistError> {
    let schema = batch.schema();
    let order = sorted_indices(batch)?;
    let (min_time, max_time) = match batch
        .column_by_name(TIME)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
    {
        Some(t) if !t.is_empty() => (
            arrow::compute::min(t).unwrap_or(i64::MIN),
            arrow::compute::max(t).unwrap_or(i64::MAX),
        ),
        _ => (i64::MIN, i64::MAX),
    };
    let writer = ArrowWriter::try_new(
        Vec::new(),
        Arc::clone(&schema),
        Some(writer_properties(&schema)),
    )?;
    let mut writer = TailSplitter::new(writer, Arc::clone(&schema))?;
    for slice in order.chunks(SLICE_ROWS) {
        let indices = UInt32Array::from(slice.to_vec());
        let columns = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<Result<Vec<_>, _>>()?;
        writer.write(&RecordBatch::try_new(Arc::clone(&schema), columns)?)?;
    }
    let bytes = writer.finish()?;
    Ok(EncodedFile {
        bytes: Bytes::from(bytes),
        min_time,
        max_time,
        rows: batch.num_rows() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Float64Array};
    use arrow::datatypes::{Field, Int32Type, Schema, TimeUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn files_are_sorted_by_tags_then_time_with_a_tail_and_keep_the_arrow_types() {
        let schema = Arc::new(Schema::new(vec![
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
        ]));
        let host: DictionaryArray<Int32Type> = ["b", "a", "b", "a"].into_iter().collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(host),
                Arc::new(TimestampNanosecondArray::from(vec![7, 9, 3, 5])),
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
            ],
        )
        .unwrap();
        let file = encode(&batch).unwrap();
        assert_eq!((file.min_time, file.max_time, file.rows), (3, 9, 4));
        let reader = ParquetRecordBatchReaderBuilder::try_new(file.bytes.clone())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(batches[0].schema(), schema);
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        let rows: Vec<&str> = text.lines().skip(3).collect();
        // Sorted by series then time, except each series' newest row, which is in the tail.
        let expected = [
            ("a", "05 | 4.0"),
            ("b", "03 | 3.0"),
            ("a", "09 | 2.0"),
            ("b", "07 | 1.0"),
        ];
        for (row, (host, rest)) in rows.iter().zip(expected) {
            assert!(
                row.contains(&format!("| {host}    |")) && row.contains(rest),
                "{text}"
            );
        }
        let meta = parquet::file::reader::SerializedFileReader::new(file.bytes).unwrap();
        use parquet::file::reader::FileReader;
        let column = meta.metadata().row_group(0).column(1);
        assert!(column.statistics().is_some(), "time statistics are written");
        // The file records the codec, not its level.
        assert!(matches!(column.compression(), Compression::ZSTD(_)));
        // Tags (dictionaries) are left uncompressed.
        let tag = meta.metadata().row_group(0).column(0);
        assert_eq!(tag.compression(), Compression::UNCOMPRESSED);
    }
}
