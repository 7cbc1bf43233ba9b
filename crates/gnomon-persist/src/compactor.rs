//! Compaction: the small files of older time ranges of a table merged into larger ones.
//!
//! - **What is merged** ([`plan`]): files whose chunk ranges overlap always go together (so
//!   the "last write wins" order between them survives), as *clusters*. Clusters of a UTC day
//!   that ended are packed, in time order, into groups of at most the target size; in the
//!   current day, clusters of each hour that ended are packed the same way. A row is thus
//!   rewritten at most twice (hour, then day). A group of one file is left alone.
//! - **How** ([`merge`]): a streaming k-way merge of the inputs (each sorted by series then
//!   time; a file with a series tail is two such runs, its main row groups and its tail)
//!   into one file sorted the same way, with its own series tail ([`crate::tail`]); rows of
//!   equal series and time are merged, per column the value of the newest file that has one
//!   winning. Memory: the compressed inputs, one decoded batch per run and one output slice.
//! - **Not time-sliced**: an output stays sorted by series over its whole time range. Cut
//!   into time slices (row groups per slice) it would prune by time, but on TSBS data
//!   30-minute slices cost 60% more bytes per row and 4-hour slices 10%: delta encoding pays
//!   for every jump from one series' values to the next, and shorter runs mean more jumps.
//! - **Publishing** is the persister's: one snapshot record adds the new file and removes the
//!   inputs (the index swaps in one step); the inputs are deleted from the store later, once no
//!   query holds them.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, TimestampNanosecondArray};
use arrow::compute::interleave;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows};
use bytes::Bytes;
use gnomon_catalog::{DbId, TableId};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::dedup::{align, key_columns, key_converter, TIME};
use crate::index::ParquetFile;
use crate::writer::EncodedFile;
use crate::PersistError;

const HOUR_NS: i64 = 3_600 * 1_000_000_000;
const DAY_NS: i64 = 24 * HOUR_NS;
/// Rows decoded from an input at a time.
const READ_BATCH_ROWS: usize = 2 * 1024;
/// Rows handed to the Parquet writer at a time.
const OUTPUT_SLICE_ROWS: usize = 32 * 1024;

/// Files to merge into one: one table, oldest write first.
#[derive(Debug, Clone)]
pub struct CompactionGroup {
    pub db_id: DbId,
    pub table_id: TableId,
    pub files: Vec<Arc<ParquetFile>>,
}

/// Chooses what to merge. `settled_before`: chunks ending after it may still get regular
/// snapshots and are not touched (unless `force`). With `force`, every day counts as ended.
pub fn plan(
    files: Vec<Arc<ParquetFile>>,
    settled_before: i64,
    target_bytes: u64,
    force: bool,
) -> Vec<CompactionGroup> {
    let mut tables: BTreeMap<(DbId, TableId), Vec<Arc<ParquetFile>>> = BTreeMap::new();
    for f in files {
        tables.entry((f.db_id, f.table_id)).or_default().push(f);
    }
    let mut groups = Vec::new();
    for ((db_id, table_id), mut files) in tables {
        files.sort_by_key(|f| (f.chunk_start, f.snapshot));
        // Clusters of overlapping chunk ranges.
        let mut clusters: Vec<(i64, i64, Vec<Arc<ParquetFile>>)> = Vec::new();
        for f in files {
            match clusters.last_mut() {
                Some((_, end, members)) if f.chunk_start < *end => {
                    *end = (*end).max(f.chunk_end);
                    members.push(f);
                }
                _ => clusters.push((f.chunk_start, f.chunk_end, vec![f])),
            }
        }
        // Buckets: an ended day, or an ended hour of the current day.
        let mut buckets: BTreeMap<i64, Vec<Vec<Arc<ParquetFile>>>> = BTreeMap::new();
        for (start, end, members) in clusters {
            let day = start.div_euclid(DAY_NS) * DAY_NS;
            let hour = start.div_euclid(HOUR_NS) * HOUR_NS;
            let bucket = if force || (day + DAY_NS <= settled_before && end <= settled_before) {
                day
            } else if hour + HOUR_NS <= settled_before && end <= settled_before {
                hour
            } else {
                continue;
            };
            buckets.entry(bucket).or_default().push(members);
        }
        for (_, clusters) in buckets {
            let mut group: Vec<Arc<ParquetFile>> = Vec::new();
            let mut bytes = 0u64;
            let mut emit = |group: &mut Vec<Arc<ParquetFile>>| {
                if group.len() > 1 {
                    let mut files = std::mem::take(group);
                    files.sort_by_key(|f| (f.snapshot, f.chunk_start));
                    groups.push(CompactionGroup {
                        db_id,
                        table_id,
                        files,
                    });
                }
                group.clear();
            };
            for members in clusters {
                let size: u64 = members.iter().map(|f| f.size_bytes).sum();
                if !group.is_empty() && bytes + size > target_bytes {
                    emit(&mut group);
                    bytes = 0;
                }
                bytes += size;
                group.extend(members);
            }
            emit(&mut group);
        }
    }
    groups
}

/// One decoded batch of an input with its sort keys.
struct Source {
    batch: RecordBatch,
    keys: Rows,
}

/// Where an input stands: its reader, its current source and row.
struct Cursor {
    reader: ParquetRecordBatchReader,
    source: usize,
    row: usize,
}

/// The next non-empty batch of `reader`, aligned to `schema`, appended to `sources`.
fn load(
    schema: &SchemaRef,
    key: &[usize],
    converter: &RowConverter,
    sources: &mut Vec<Option<Source>>,
    reader: &mut ParquetRecordBatchReader,
) -> Result<Option<usize>, PersistError> {
    for batch in reader.by_ref() {
        let batch = align(&batch?, schema)?;
        if batch.num_rows() == 0 {
            continue;
        }
        let columns: Vec<ArrayRef> = key.iter().map(|&i| Arc::clone(batch.column(i))).collect();
        let keys = converter.convert_columns(&columns)?;
        sources.push(Some(Source { batch, keys }));
        return Ok(Some(sources.len() - 1));
    }
    Ok(None)
}

struct Merger {
    schema: SchemaRef,
    key: Vec<usize>,
    converter: RowConverter,
    /// Decoded batches still referenced by a cursor or by rows not yet written.
    sources: Vec<Option<Source>>,
    cursors: Vec<Cursor>,
    /// Min-heap of cursor indices by (current key, cursor index).
    heap: Vec<usize>,
}

impl Merger {
    fn key_of(&self, source: usize, row: usize) -> arrow::row::Row<'_> {
        self.sources[source]
            .as_ref()
            .expect("live source")
            .keys
            .row(row)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (ca, cb) = (&self.cursors[a], &self.cursors[b]);
        match self
            .key_of(ca.source, ca.row)
            .cmp(&self.key_of(cb.source, cb.row))
        {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            // Equal keys: the older input first, so the newest comes last in a run.
            std::cmp::Ordering::Equal => a < b,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if l < n && self.less(self.heap[l], self.heap[smallest]) {
                smallest = l;
            }
            if r < n && self.less(self.heap[r], self.heap[smallest]) {
                smallest = r;
            }
            if smallest == i {
                return;
            }
            self.heap.swap(i, smallest);
            i = smallest;
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(self.heap[i], self.heap[parent]) {
                return;
            }
            self.heap.swap(i, parent);
            i = parent;
        }
    }

    /// Moves the heap's top cursor one row on.
    fn advance_top(&mut self) -> Result<(), PersistError> {
        let top = self.heap[0];
        let cursor = &mut self.cursors[top];
        cursor.row += 1;
        let len = self.sources[cursor.source]
            .as_ref()
            .expect("live source")
            .batch
            .num_rows();
        if cursor.row >= len {
            let Merger {
                schema,
                key,
                converter,
                sources,
                cursors,
                ..
            } = self;
            let next = load(schema, key, converter, sources, &mut cursors[top].reader);
            match next? {
                Some(source) => {
                    self.cursors[top].source = source;
                    self.cursors[top].row = 0;
                }
                None => {
                    let last = self.heap.pop().expect("non-empty heap");
                    if self.heap.is_empty() {
                        return Ok(());
                    }
                    self.heap[0] = last;
                }
            }
        }
        self.sift_down(0);
        Ok(())
    }

    /// Builds the output rows of `picks` (runs of equal keys merged) and forgets the sources
    /// no cursor needs any more.
    fn take_output(
        &mut self,
        picks: &[(usize, usize)],
        runs: &[(usize, usize)],
    ) -> Result<RecordBatch, PersistError> {
        let mut used: Vec<usize> = picks.iter().map(|&(s, _)| s).collect();
        used.sort_unstable();
        used.dedup();
        let slot = |s: usize| used.binary_search(&s).expect("used source");
        let columns = (0..self.schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> = used
                    .iter()
                    .map(|&s| {
                        self.sources[s]
                            .as_ref()
                            .expect("live source")
                            .batch
                            .column(c)
                            .as_ref()
                    })
                    .collect();
                let mut indices = Vec::with_capacity(picks.len());
                let mut pos = 0;
                for &(start, len) in runs {
                    indices.extend(picks[pos..start].iter().map(|&(s, r)| (slot(s), r)));
                    let run = &picks[start..start + len];
                    let &(s, r) = run
                        .iter()
                        .rev()
                        .find(|&&(s, r)| arrays[slot(s)].is_valid(r))
                        .unwrap_or(&run[len - 1]);
                    indices.push((slot(s), r));
                    pos = start + len;
                }
                indices.extend(picks[pos..].iter().map(|&(s, r)| (slot(s), r)));
                interleave(&arrays, &indices)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let current: Vec<usize> = self.cursors.iter().map(|c| c.source).collect();
        for s in used {
            if !current.contains(&s) {
                self.sources[s] = None;
            }
        }
        Ok(batch)
    }
}

/// Merges `inputs` (Parquet files of one table, each sorted by series then time, oldest write
/// first) into one file of `schema` sorted the same way, one row per series and time.
pub fn merge(
    schema: &SchemaRef,
    inputs: Vec<Bytes>,
    properties: WriterProperties,
) -> Result<EncodedFile, PersistError> {
    let key = key_columns(schema);
    let converter = key_converter(schema, &key)?;
    let mut merger = Merger {
        schema: Arc::clone(schema),
        key,
        converter,
        sources: Vec::new(),
        cursors: Vec::new(),
        heap: Vec::new(),
    };
    // Each input is one sorted run, or two when it has a series tail (main row groups, then
    // the tail); the runs of one input never share a key, and keep the input's place in the
    // order (older input first on equal keys).
    let mut runs = Vec::new();
    for bytes in inputs {
        // The footer parsed once for both runs.
        let metadata = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::default())?;
        let groups = metadata.metadata().num_row_groups();
        let run = |row_groups: Vec<usize>| {
            ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), metadata.clone())
                .with_row_groups(row_groups)
        };
        match crate::tail::tail_start(metadata.metadata()) {
            Some(_) if groups > 1 => {
                runs.push(run((0..groups - 1).collect()));
                runs.push(run(vec![groups - 1]));
            }
            _ => runs.push(run((0..groups).collect())),
        }
    }
    for builder in runs {
        let mut reader = builder.with_batch_size(READ_BATCH_ROWS).build()?;
        let Merger {
            schema,
            key,
            converter,
            sources,
            ..
        } = &mut merger;
        if let Some(source) = load(schema, key, converter, sources, &mut reader)? {
            merger.cursors.push(Cursor {
                reader,
                source,
                row: 0,
            });
            let i = merger.cursors.len() - 1;
            merger.heap.push(i);
            let at = merger.heap.len() - 1;
            merger.sift_up(at);
        }
    }

    let writer = ArrowWriter::try_new(Vec::new(), Arc::clone(schema), Some(properties))?;
    let mut writer = crate::tail::TailSplitter::new(writer, Arc::clone(schema))?;
    let (mut min_time, mut max_time, mut rows) = (i64::MAX, i64::MIN, 0u64);
    let mut write = |batch: RecordBatch| -> Result<(), PersistError> {
        if let Some(t) = batch
            .column_by_name(TIME)
            .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        {
            if let (Some(lo), Some(hi)) = (arrow::compute::min(t), arrow::compute::max(t)) {
                min_time = min_time.min(lo);
                max_time = max_time.max(hi);
            }
        }
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
        Ok(())
    };

    // Output rows as (source, row); `runs` are (start, len) in `picks` of equal keys.
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(OUTPUT_SLICE_ROWS + 1);
    let mut runs: Vec<(usize, usize)> = Vec::new();
    while let Some(&top) = merger.heap.first() {
        let (source, row) = (merger.cursors[top].source, merger.cursors[top].row);
        let same = picks
            .last()
            .is_some_and(|&(ps, pr)| merger.key_of(ps, pr) == merger.key_of(source, row));
        if same {
            match runs.last_mut() {
                Some((start, len)) if *start + *len == picks.len() => *len += 1,
                _ => runs.push((picks.len() - 1, 2)),
            }
        } else if picks.len() >= OUTPUT_SLICE_ROWS {
            // Only between keys: a run is never split over two slices.
            write(merger.take_output(&picks, &runs)?)?;
            picks.clear();
            runs.clear();
        }
        picks.push((source, row));
        merger.advance_top()?;
    }
    if !picks.is_empty() {
        write(merger.take_output(&picks, &runs)?)?;
    }
    let bytes = writer.finish()?;
    if rows == 0 {
        (min_time, max_time) = (i64::MIN, i64::MAX);
    }
    Ok(EncodedFile {
        bytes: Bytes::from(bytes),
        min_time,
        max_time,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::merge_last_wins;
    use crate::writer::{encode, writer_properties};

    const MIN: i64 = 60 * 1_000_000_000;

    fn file(path: &str, start: i64, end: i64, snapshot: u64, size: u64) -> Arc<ParquetFile> {
        Arc::new(ParquetFile {
            path: path.into(),
            db_id: 1,
            table_id: 2,
            chunk_start: start,
            chunk_end: end,
            min_time: start,
            max_time: end - 1,
            row_count: 1,
            size_bytes: size,
            max_wal_sequence: snapshot,
            snapshot,
            chunk_watermarks: Vec::new(),
        })
    }

    fn paths(g: &CompactionGroup) -> Vec<&str> {
        g.files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn ended_days_merge_up_to_the_target_size_keeping_overlaps_together() {
        let day = 19_000 * DAY_NS;
        let files = vec![
            file("a", day, day + 10 * MIN, 1, 40),
            file("b", day + 10 * MIN, day + 20 * MIN, 2, 40),
            // A compacted hour plus a late write inside it: one cluster of 70 bytes.
            file("c", day + 60 * MIN, day + 120 * MIN, 5, 60),
            file("d", day + 70 * MIN, day + 80 * MIN, 7, 10),
            file("e", day + 130 * MIN, day + 140 * MIN, 3, 10),
            // Another table: alone, untouched.
            Arc::new(ParquetFile {
                table_id: 3,
                ..(*file("x", day, day + 10 * MIN, 1, 1)).clone()
            }),
        ];
        let groups = plan(files, day + 2 * DAY_NS, 100, false);
        let all: Vec<Vec<&str>> = groups.iter().map(paths).collect();
        assert_eq!(all, vec![vec!["a", "b"], vec!["e", "c", "d"]]);
        assert!(groups.iter().all(|g| g.table_id == 2));
    }

    #[test]
    fn the_current_day_merges_ended_hours_only_and_force_takes_everything() {
        let day = 19_000 * DAY_NS;
        let files = vec![
            file("a", day, day + 10 * MIN, 1, 1),
            file("b", day + 10 * MIN, day + 20 * MIN, 2, 1),
            file("c", day + 60 * MIN, day + 70 * MIN, 3, 1),
            file("d", day + 70 * MIN, day + 80 * MIN, 4, 1),
        ];
        // Hour 1 has not settled yet.
        let groups = plan(files.clone(), day + 100 * MIN, 1 << 30, false);
        assert_eq!(
            groups.iter().map(paths).collect::<Vec<_>>(),
            vec![vec!["a", "b"]]
        );
        let groups = plan(files, day + 100 * MIN, 1 << 30, true);
        assert_eq!(
            groups.iter().map(paths).collect::<Vec<_>>(),
            vec![vec!["a", "b", "c", "d"]]
        );
    }

    use crate::dedup::tests::{batch, schema};

    #[test]
    fn merge_equals_the_in_memory_last_write_wins_merge() {
        // Three "files": the second rewrites some rows of the first (u only), the third adds
        // new hosts and times; enough rows to cross read-batch and output-slice boundaries.
        let mut inputs = Vec::new();
        let mut batches = Vec::new();
        for (f, hosts) in [(0, 40), (1, 20), (2, 60)] {
            let mut h = Vec::new();
            let mut t = Vec::new();
            let mut u = Vec::new();
            let mut n = Vec::new();
            for host in 0..hosts {
                for p in 0..2_000 {
                    if f == 1 && p % 3 != 0 {
                        continue;
                    }
                    h.push(format!("h{host:03}"));
                    t.push(p as i64 * 10 + if f == 2 { 5 } else { 0 });
                    u.push(Some((f * 1_000_000 + host * 1_000 + p) as f64));
                    n.push(if f == 1 { None } else { Some(p as i64) });
                }
            }
            let hs: Vec<&str> = h.iter().map(String::as_str).collect();
            let b = batch(&hs, &t, &u, &n);
            inputs.push(encode(&b).unwrap().bytes);
            batches.push(b);
        }
        let schema = schema();
        let merged = merge(&schema, inputs, writer_properties(&schema)).unwrap();
        let expected = merge_last_wins(&schema, &batches).unwrap();
        assert_eq!(merged.rows, expected.num_rows() as u64);
        let builder = ParquetRecordBatchReaderBuilder::try_new(merged.bytes).unwrap();
        // The inputs had series tails (read as a second sorted run each); so has the output:
        // one row per series (60 hosts) at the end.
        let tail = crate::tail::tail_start(builder.metadata()).expect("a series tail");
        assert_eq!(tail, expected.num_rows() as u64 - 60);
        let read: Vec<RecordBatch> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
        let read = arrow::compute::concat_batches(&schema, &read).unwrap();
        let tail_times = read
            .slice(tail as usize, 60)
            .column_by_name(TIME)
            .unwrap()
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap()
            .values()
            .to_vec();
        // Every host's newest row: 19_995 from file 2 (all 60 hosts write there last).
        assert!(tail_times.iter().all(|&t| t == 19_995), "{tail_times:?}");
        assert_eq!(merge_last_wins(&schema, &[read]).unwrap(), expected);
        assert_eq!(merged.min_time, 0);
        assert_eq!(merged.max_time, 19_995);
    }
}
