//! The patched `parquet` (vendor/parquet, see the workspace manifest) skips delta-encoded
//! values by adding up their deltas instead of computing each one. A wrong sum shifts every
//! value read after a skip, so these tests read delta-encoded columns through row selections
//! that skip into, across and out of pages, miniblocks and blocks, and compare each value with
//! a plain read of the whole column (which never skips).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int32Array, Int64Array, RecordBatch};
use arrow::datatypes::{Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Encoding;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::properties::WriterProperties;

const ROWS: usize = 20_000;

/// A seeded generator (no dependency needed for reproducible noise).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Columns whose miniblocks take every kind of delta: small noise around a level (narrow bit
/// widths, negative minimum delta), constant stretches (bit width 0, minimum delta 0), evenly
/// spaced stretches (bit width 0, minimum delta not 0), deltas spanning the whole type (they
/// wrap while encoding and decoding), and nulls.
fn columns(seed: u64) -> Vec<(&'static str, ArrayRef)> {
    let mut rng = Lcg(seed);
    let mut level = 0i64;
    let walk: Vec<i64> = (0..ROWS)
        .map(|i| {
            level = match (i / 700) % 4 {
                0 => level + rng.below(21) as i64 - 10,
                1 => level,
                2 => level + 10_000_000_000,
                _ => level - 3,
            };
            level
        })
        .collect();
    let extremes: Vec<i64> = (0..ROWS)
        .map(|i| match rng.below(4) {
            0 => i64::MIN + i as i64,
            1 => i64::MAX - i as i64,
            _ => rng.next() as i64,
        })
        .collect();
    let narrow: Vec<Option<i32>> = (0..ROWS)
        .map(|i| match i % 97 {
            0 => None,
            _ if i % 3000 < 1500 => Some(i32::MAX - rng.below(5) as i32),
            _ => Some(i32::MIN + (i as i32) * 7),
        })
        .collect();
    vec![
        ("walk", Arc::new(Int64Array::from(walk)) as ArrayRef),
        ("extremes", Arc::new(Int64Array::from(extremes))),
        ("narrow", Arc::new(Int32Array::from(narrow))),
    ]
}

/// The columns as a file of delta-encoded pages of at most `page_rows` rows.
fn file(columns: &[(&'static str, ArrayRef)], page_rows: usize) -> Bytes {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        columns.iter().map(|(_, a)| Arc::clone(a)).collect(),
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_encoding(Encoding::DELTA_BINARY_PACKED)
        .set_data_page_row_count_limit(page_rows)
        .set_write_batch_size(page_rows.min(1024))
        .set_max_row_group_row_count(Some(ROWS / 2))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let out = Bytes::from(out);
    // The skips under test are those of delta-encoded pages, and of more than one page.
    let metadata = ParquetRecordBatchReaderBuilder::try_new_with_options(
        out.clone(),
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
    )
    .unwrap()
    .metadata()
    .clone();
    for chunk in metadata.row_groups().iter().flat_map(|g| g.columns()) {
        let encodings: Vec<Encoding> = chunk.encodings().collect();
        assert!(
            encodings.contains(&Encoding::DELTA_BINARY_PACKED),
            "{encodings:?}"
        );
    }
    let pages = metadata.offset_index().expect("page index")[0][0]
        .page_locations()
        .len();
    assert!(pages * page_rows >= ROWS / 2 && pages > 1, "{pages} pages");
    out
}

/// Reads `file` through `selection`, every column concatenated.
fn read(file: &Bytes, selection: Option<RowSelection>) -> Vec<ArrayRef> {
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file.clone())
        .unwrap()
        .with_batch_size(777);
    if let Some(selection) = selection {
        builder = builder.with_row_selection(selection);
    }
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    (0..schema.fields().len())
        .map(|c| {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow::compute::concat(&parts).unwrap()
        })
        .collect()
}

/// Random runs of skipped and selected rows, and the selected row numbers.
fn selection(rng: &mut Lcg, longest: u64) -> (RowSelection, Vec<u32>) {
    let mut selectors = Vec::new();
    let mut rows = Vec::new();
    let mut at = 0usize;
    while at < ROWS {
        let skip = (rng.below(longest) as usize).min(ROWS - at);
        selectors.push(RowSelector::skip(skip));
        at += skip;
        let take = (1 + rng.below(longest / 4 + 1) as usize).min(ROWS - at);
        if take > 0 {
            selectors.push(RowSelector::select(take));
            rows.extend((at..at + take).map(|r| r as u32));
            at += take;
        }
    }
    (RowSelection::from(selectors), rows)
}

fn assert_selected_rows_match_a_full_read(page_rows: usize, longest_skip: u64, seed: u64) {
    let columns = columns(seed);
    let file = file(&columns, page_rows);
    let whole = read(&file, None);
    for (column, (name, written)) in whole.iter().zip(&columns) {
        assert_eq!(column.as_ref(), written.as_ref(), "{name} read whole");
    }
    let mut rng = Lcg(seed ^ 0x5eed);
    for round in 0..8 {
        let (selection, rows) = selection(&mut rng, longest_skip);
        let got = read(&file, Some(selection));
        let indices = arrow::array::UInt32Array::from(rows);
        for (c, (name, _)) in columns.iter().enumerate() {
            let want = arrow::compute::take(whole[c].as_ref(), &indices, None).unwrap();
            assert_eq!(
                got[c].as_ref(),
                want.as_ref(),
                "{name}: round {round}, pages of {page_rows} rows, skips up to {longest_skip}"
            );
        }
    }
}

#[test]
fn short_skips_inside_miniblocks_read_the_right_values() {
    assert_selected_rows_match_a_full_read(4096, 40, 1);
}

#[test]
fn skips_across_miniblocks_and_blocks_read_the_right_values() {
    assert_selected_rows_match_a_full_read(4096, 900, 2);
}

#[test]
fn skips_across_pages_and_row_groups_read_the_right_values() {
    assert_selected_rows_match_a_full_read(1024, 6000, 3);
}
