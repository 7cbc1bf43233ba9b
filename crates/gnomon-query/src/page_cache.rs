//! Decompressed pages of persisted files, kept for the direct path's reads.
//!
//! Files are sorted by series, then time, so a narrow window over every series (TSBS'
//! `groupby-orderby-limit`: five minutes of 4000 hosts) selects a few rows from every page
//! of a column, and each such query decompressed the column's every page again to decode a
//! few dozen rows of each: zstd was about 40% of that query's CPU. The delta-encoded
//! integers and times of series-sorted data barely compress further (zstd saves about 10% on
//! TSBS' fields), so a column's pages kept decompressed cost about what they cost in the
//! file. The idea is ClickHouse's "uncompressed cache".
//!
//! Only the direct path ([`crate::direct`]: small queries) reads through this cache, and it
//! keeps only the pages a query needed, so a dashboard's repeated narrow queries stay cached
//! while DataFusion's large scans, which go around it, cannot flush it. Entries are whole
//! column chunks (one column of one row group) holding the pages read so far, evicted least
//! recently used first within a byte budget (`--page-cache-size`). Files are never rewritten
//! under the same path (compaction writes new ones), so a removed file's pages just age out.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use gnomon_persist::cache::Lru;
use parking_lot::Mutex;
use std::collections::HashMap;

use crate::delta_pages::{self, PIECE_VALUES};
use parquet::arrow::arrow_reader::{RowGroups, RowSelection};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::basic::Type as PhysicalType;
use parquet::column::page::{Page, PageIterator, PageMetadata, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::page_index::offset_index::PageLocation;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;

/// Average rows per run of selected or skipped rows under which parquet may read a
/// selection as a mask (every row between the first and last selected one) rather than run
/// by run; parquet's own threshold is 32.
const MASK_RUN_ROWS: usize = 64;

#[derive(Clone, PartialEq, Eq, Hash)]
struct ChunkKey {
    file: Arc<str>,
    row_group: usize,
    column: usize,
}

/// Bytes a kept page costs besides its buffer (the page's own fields, its row count).
const PAGE_OVERHEAD: usize = 128;

/// A data page as kept: one or more pieces (see [`delta_pages`]), each with its rows.
#[derive(Clone)]
struct Kept {
    pieces: Arc<[(usize, Page)]>,
    /// Kept whole as read, to be cut into pieces if it is read again. Cutting costs about
    /// one skip through the page: a page read once (a query of a few random series) is
    /// not worth it, a page read again (the same window on every series, a dashboard) is.
    uncut: bool,
}

impl Kept {
    fn bytes(&self) -> usize {
        self.pieces
            .iter()
            .map(|(_, p)| p.buffer().len() + PAGE_OVERHEAD)
            .sum()
    }
}

/// The pages of one column chunk read so far (`None`: not read yet).
#[derive(Clone, Default)]
struct ChunkPages {
    dictionary: Option<Page>,
    data: Vec<Option<Kept>>,
    bytes: usize,
}

impl ChunkPages {
    fn empty(pages: usize) -> Self {
        Self {
            data: vec![None; pages],
            ..Self::default()
        }
    }
}

/// A size-bounded, least-recently-used cache of decompressed Parquet pages.
pub struct PageCache {
    chunks: Mutex<Lru<ChunkKey, Arc<ChunkPages>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache")
            .field("capacity", &self.capacity_bytes())
            .field("used", &self.used_bytes())
            .finish()
    }
}

impl PageCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            chunks: Mutex::new(Lru::new(capacity_bytes)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Pages served from memory.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Pages read and decompressed.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn used_bytes(&self) -> usize {
        self.chunks.lock().used()
    }

    pub fn capacity_bytes(&self) -> usize {
        self.chunks.lock().capacity()
    }

    /// The pages of the leaf columns `columns` of row group `row_group` of `file` that the
    /// rows `inside` (row numbers within the row group, sorted and disjoint; every row when
    /// `None`) lie in: from the cache, the rest read through `reader`, decompressed and
    /// kept. `None` when the file has no offset index (pages cannot be found without
    /// reading the chunk).
    pub(crate) async fn load(
        &self,
        reader: &mut (dyn AsyncFileReader + Send),
        file: &str,
        metadata: &Arc<ParquetMetaData>,
        row_group: usize,
        columns: &[usize],
        inside: Option<&[Range<usize>]>,
    ) -> Result<Option<LoadedPages>> {
        let Some(offsets) = metadata.offset_index().and_then(|o| o.get(row_group)) else {
            return Ok(None);
        };
        let group = metadata.row_group(row_group);
        let group_rows = group.num_rows() as usize;
        let file: Arc<str> = Arc::from(file);
        let mut chunks = Vec::with_capacity(columns.len());
        for &column in columns {
            let Some(locations) = offsets.get(column).map(|o| o.page_locations()) else {
                return Ok(None);
            };
            let key = ChunkKey {
                file: Arc::clone(&file),
                row_group,
                column,
            };
            let cached = self
                .chunks
                .lock()
                .get(&key)
                .filter(|c| c.data.len() == locations.len())
                .unwrap_or_else(|| Arc::new(ChunkPages::empty(locations.len())));
            let wanted = wanted_pages(locations, group_rows, inside);
            let dictionary = dictionary_location(group.column(column).byte_range().0, locations);
            chunks.push(Chunk {
                key,
                locations,
                wanted,
                dictionary,
                cached,
            });
        }

        // Every missing page of every column in one read.
        let mut ranges = Vec::new();
        for chunk in &chunks {
            for location in chunk.missing() {
                let start = location.offset as u64;
                ranges.push(start..start + location.compressed_page_size as u64);
            }
        }
        let fetched = FetchedBytes::new(&ranges, reader.get_byte_ranges(ranges.clone()).await?);

        let mut pages = HashMap::with_capacity(chunks.len());
        for chunk in chunks {
            let column = chunk.key.column;
            let (kept, read, changed) = chunk.complete(&fetched, group, group_rows)?;
            self.hits
                .fetch_add((chunk.wanted_count() - read) as u64, Ordering::Relaxed);
            self.misses.fetch_add(read as u64, Ordering::Relaxed);
            let loaded = LoadedChunk {
                pages: Arc::clone(&kept),
                has_dictionary: chunk.wanted_dictionary(),
                rows: chunk.rows(group_rows),
            };
            if changed {
                let size = kept.bytes;
                self.chunks.lock().insert(chunk.key, kept, size);
            }
            pages.insert(column, loaded);
        }
        Ok(Some(LoadedPages {
            metadata: Arc::clone(metadata),
            row_group,
            pages,
        }))
    }
}

/// One column chunk being loaded.
struct Chunk<'a> {
    key: ChunkKey,
    locations: &'a [PageLocation],
    wanted: Vec<bool>,
    dictionary: Option<PageLocation>,
    cached: Arc<ChunkPages>,
}

impl Chunk<'_> {
    fn wanted_count(&self) -> usize {
        self.wanted.iter().filter(|w| **w).count() + usize::from(self.wanted_dictionary())
    }

    /// Parquet's column reader reads a chunk's dictionary page even to skip every row.
    fn wanted_dictionary(&self) -> bool {
        self.dictionary.is_some()
    }

    fn rows(&self, group_rows: usize) -> Arc<[usize]> {
        (0..self.locations.len())
            .map(|i| page_rows(self.locations, i, group_rows))
            .collect()
    }

    /// The wanted pages not cached yet, dictionary first.
    fn missing(&self) -> impl Iterator<Item = &PageLocation> + '_ {
        let dictionary = self
            .dictionary
            .as_ref()
            .filter(|_| self.cached.dictionary.is_none());
        let data = self
            .locations
            .iter()
            .zip(&self.wanted)
            .zip(&self.cached.data)
            .filter(|((_, wanted), cached)| **wanted && cached.is_none())
            .map(|((location, _), _)| location);
        dictionary.into_iter().chain(data)
    }

    /// Whether page `index` is wanted, kept whole and may be cut now.
    fn to_cut(&self, index: usize, cuttable: bool) -> bool {
        cuttable && self.wanted[index] && self.cached.data[index].as_ref().is_some_and(|k| k.uncut)
    }

    /// The cached pages, the missing ones decompressed from `fetched` and the kept ones
    /// read again cut into pieces; how many pages were decompressed, and whether anything
    /// changed.
    fn complete(
        &self,
        fetched: &FetchedBytes,
        group: &RowGroupMetaData,
        group_rows: usize,
    ) -> Result<(Arc<ChunkPages>, usize, bool)> {
        let descriptor = group.column(self.key.column).column_descr();
        // Flat integer columns: their delta-encoded pages are cut into pieces.
        let cuttable =
            descriptor.physical_type() == PhysicalType::INT64 && descriptor.max_rep_level() == 0;
        let missing = self.missing().next().is_some();
        let to_cut: Vec<usize> = (0..self.locations.len())
            .filter(|&i| self.to_cut(i, cuttable))
            .collect();
        if !missing && to_cut.is_empty() {
            return Ok((Arc::clone(&self.cached), 0, false));
        }
        let mut pages = ChunkPages::clone(&self.cached);
        for index in to_cut {
            let Some(kept) = pages.data[index].as_mut() else {
                continue;
            };
            kept.uncut = false;
            if let Some(pieces) =
                delta_pages::split(&kept.pieces[0].1, descriptor.max_def_level(), PIECE_VALUES)
            {
                pages.bytes -= kept.bytes();
                kept.pieces = Arc::from(pieces);
                pages.bytes += kept.bytes();
            }
        }
        if !missing {
            return Ok((Arc::new(pages), 0, true));
        }
        let mut reader = SerializedPageReader::new(
            Arc::new(fetched.clone()),
            group.column(self.key.column),
            group_rows,
            Some(self.locations.to_vec()),
        )?;
        let mut read = 0;
        let mut index = 0;
        while let Some(next) = reader.peek_next_page()? {
            let want = if next.is_dict {
                self.wanted_dictionary() && pages.dictionary.is_none()
            } else {
                index += 1;
                self.wanted[index - 1] && pages.data[index - 1].is_none()
            };
            if !want {
                reader.skip_next_page()?;
                continue;
            }
            let page = reader
                .get_next_page()?
                .ok_or_else(|| ParquetError::General("a peeked page is missing".into()))?;
            read += 1;
            if next.is_dict {
                pages.bytes += page.buffer().len() + PAGE_OVERHEAD;
                pages.dictionary = Some(page);
                continue;
            }
            let rows = page_rows(self.locations, index - 1, group_rows);
            let kept = Kept {
                pieces: Arc::from([(rows, page)]),
                uncut: cuttable,
            };
            pages.bytes += kept.bytes();
            pages.data[index - 1] = Some(kept);
        }
        Ok((Arc::new(pages), read, true))
    }
}

/// Rows in page `index` of a row group of `group_rows` rows.
fn page_rows(locations: &[PageLocation], index: usize, group_rows: usize) -> usize {
    let end = locations
        .get(index + 1)
        .map_or(group_rows, |l| l.first_row_index as usize);
    end - locations[index].first_row_index as usize
}

/// The dictionary page of a chunk starting at `chunk_start`: whatever precedes its first
/// data page (as parquet's own page reader finds it).
fn dictionary_location(chunk_start: u64, locations: &[PageLocation]) -> Option<PageLocation> {
    let first = locations.first()?;
    (first.offset as u64 != chunk_start).then(|| PageLocation {
        offset: chunk_start as i64,
        compressed_page_size: (first.offset as u64 - chunk_start) as i32,
        first_row_index: 0,
    })
}

/// Which data pages hold any row of `inside` (all when `None`), as parquet's reader finds
/// them (`RowSelection::scan_ranges`). When the runs are short enough for parquet to read
/// the selection as a mask, every page between the first and last selected row.
fn wanted_pages(
    locations: &[PageLocation],
    group_rows: usize,
    inside: Option<&[Range<usize>]>,
) -> Vec<bool> {
    let Some(inside) = inside else {
        return vec![true; locations.len()];
    };
    let runs = 2 * inside.len() + 1;
    let spans: Vec<Range<usize>> = match (inside.first(), inside.last()) {
        (Some(first), Some(last)) if group_rows / runs < MASK_RUN_ROWS => {
            std::iter::once(first.start..last.end).collect()
        }
        _ => inside.to_vec(),
    };
    let selected =
        RowSelection::from_consecutive_ranges(spans.into_iter(), group_rows).scan_ranges(locations);
    // Both in page order.
    let mut selected = selected.iter().map(|r| r.start).peekable();
    locations
        .iter()
        .map(|l| selected.next_if_eq(&(l.offset as u64)).is_some())
        .collect()
}

/// Byte ranges of a file read for one load, served to parquet's page reader.
#[derive(Clone)]
struct FetchedBytes {
    /// (start, bytes), sorted by start.
    pieces: Arc<Vec<(u64, Bytes)>>,
}

impl FetchedBytes {
    fn new(ranges: &[Range<u64>], bytes: Vec<Bytes>) -> Self {
        let mut pieces: Vec<(u64, Bytes)> = ranges.iter().map(|r| r.start).zip(bytes).collect();
        pieces.sort_by_key(|(start, _)| *start);
        Self {
            pieces: Arc::new(pieces),
        }
    }
}

impl Length for FetchedBytes {
    fn len(&self) -> u64 {
        self.pieces
            .last()
            .map_or(0, |(start, bytes)| start + bytes.len() as u64)
    }
}

impl ChunkReader for FetchedBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        use bytes::Buf;
        let (from, piece) = self.find(start)?;
        Ok(piece.slice(from..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        let (from, piece) = self.find(start)?;
        if from + length > piece.len() {
            return Err(ParquetError::General(format!(
                "bytes {start}..{} were not read",
                start + length as u64
            )));
        }
        Ok(piece.slice(from..from + length))
    }
}

impl FetchedBytes {
    /// The piece holding byte `offset`, and where in it that byte is.
    fn find(&self, offset: u64) -> Result<(usize, &Bytes)> {
        let i = self.pieces.partition_point(|(start, _)| *start <= offset);
        i.checked_sub(1)
            .map(|i| &self.pieces[i])
            .filter(|(start, piece)| offset < start + piece.len() as u64)
            .map(|(start, piece)| ((offset - start) as usize, piece))
            .ok_or_else(|| ParquetError::General(format!("byte {offset} was not read")))
    }
}

/// Loaded pages of some columns of one row group, as parquet's [`RowGroups`] for
/// `ParquetRecordBatchReader::try_new_with_row_groups`.
pub(crate) struct LoadedPages {
    metadata: Arc<ParquetMetaData>,
    row_group: usize,
    /// Per leaf column.
    pages: HashMap<usize, LoadedChunk>,
}

struct LoadedChunk {
    pages: Arc<ChunkPages>,
    has_dictionary: bool,
    /// Each data page's rows.
    rows: Arc<[usize]>,
}

impl RowGroups for LoadedPages {
    fn num_rows(&self) -> usize {
        self.metadata.row_group(self.row_group).num_rows() as usize
    }

    fn column_chunks(&self, i: usize) -> Result<Box<dyn PageIterator>> {
        let loaded = self
            .pages
            .get(&i)
            .ok_or_else(|| ParquetError::General(format!("column {i} was not loaded")))?;
        let reader: Box<dyn PageReader> = Box::new(MemoryPages {
            chunk: Arc::clone(&loaded.pages),
            rows: Arc::clone(&loaded.rows),
            dictionary_next: loaded.has_dictionary,
            page: 0,
            piece: 0,
        });
        Ok(Box::new(OneChunk(Some(reader))))
    }

    fn row_groups(&self) -> Box<dyn Iterator<Item = &RowGroupMetaData> + '_> {
        Box::new(std::iter::once(self.metadata.row_group(self.row_group)))
    }

    fn metadata(&self) -> &ParquetMetaData {
        &self.metadata
    }
}

/// The pages of one column chunk, in memory, handed out one at a time; a page not loaded
/// (one the selection skips whole) can only be skipped.
struct MemoryPages {
    chunk: Arc<ChunkPages>,
    /// Each data page's rows.
    rows: Arc<[usize]>,
    dictionary_next: bool,
    /// The next data page, and the next piece of it.
    page: usize,
    piece: usize,
}

impl MemoryPages {
    fn advance(&mut self) {
        if self.dictionary_next {
            self.dictionary_next = false;
            return;
        }
        match self.chunk.data.get(self.page) {
            Some(Some(kept)) if self.piece + 1 < kept.pieces.len() => self.piece += 1,
            Some(_) => (self.page, self.piece) = (self.page + 1, 0),
            None => {}
        }
    }
}

impl Iterator for MemoryPages {
    type Item = Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for MemoryPages {
    fn get_next_page(&mut self) -> Result<Option<Page>> {
        let page = if self.dictionary_next {
            self.chunk.dictionary.clone()
        } else {
            match self.chunk.data.get(self.page) {
                None => return Ok(None),
                Some(kept) => kept.as_ref().map(|k| k.pieces[self.piece].1.clone()),
            }
        };
        self.advance();
        page.map(Some).ok_or_else(|| {
            ParquetError::General("a page outside the selected rows was read".into())
        })
    }

    fn peek_next_page(&mut self) -> Result<Option<PageMetadata>> {
        if self.dictionary_next {
            return Ok(Some(PageMetadata {
                num_rows: None,
                num_levels: None,
                is_dict: true,
            }));
        }
        let Some(kept) = self.chunk.data.get(self.page) else {
            return Ok(None);
        };
        let rows = match kept {
            Some(kept) => kept.pieces[self.piece].0,
            None => self.rows[self.page],
        };
        Ok(Some(PageMetadata {
            num_rows: Some(rows),
            num_levels: None,
            is_dict: false,
        }))
    }

    fn skip_next_page(&mut self) -> Result<()> {
        self.advance();
        Ok(())
    }
}

/// A [`PageIterator`] over one column chunk.
struct OneChunk(Option<Box<dyn PageReader>>);

impl Iterator for OneChunk {
    type Item = Result<Box<dyn PageReader>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.take().map(Ok)
    }
}

impl PageIterator for OneChunk {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persisted::InMemoryReader;
    use arrow::array::{
        ArrayRef, DictionaryArray, Float64Array, Int64Array, RecordBatch, RecordBatchReader,
        StringArray,
    };
    use arrow::compute::concat_batches;
    use arrow::datatypes::{DataType, Field, Int32Type, Schema};
    use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, RowSelection};
    use parquet::arrow::{parquet_to_arrow_field_levels, ArrowWriter, ProjectionMask};
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

    /// A deterministic pseudo-random sequence.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 17
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const ROWS: usize = 300_000;

    /// A file as Gnomon writes it (three row groups of 16 384-row pages) whose columns
    /// make every kind of page: a nullable integer with narrow noise, constant and evenly
    /// spaced stretches, deltas spanning the whole type, runs of nulls and scattered nulls;
    /// a required integer of evenly spaced times; floats; a dictionary-encoded tag.
    fn file() -> (Bytes, RecordBatch) {
        let mut rng = Lcg(7);
        let mut value = 0i64;
        let noisy: Int64Array = (0..ROWS)
            .map(|row| {
                value = match (row / 5000) % 6 {
                    0 => value.wrapping_add(rng.below(21) as i64 - 10),
                    1 => value,
                    2 => value.wrapping_add(1000),
                    3 => (rng.next() as i64).wrapping_mul(if rng.below(2) == 0 {
                        i64::MAX / 8
                    } else {
                        -3
                    }),
                    _ => value.wrapping_add(rng.below(300) as i64 - 150),
                };
                let null = (row / 5000) % 7 == 5 || (row % 13 == 0 && (row / 5000) % 3 == 0);
                (!null).then_some(value)
            })
            .collect();
        let times: Int64Array = (0..ROWS as i64)
            .map(|row| Some(row * 10 + (row / 40_000) * 7))
            .collect();
        let floats: Float64Array = (0..ROWS).map(|row| Some(row as f64 / 7.0)).collect();
        let tags: DictionaryArray<Int32Type> = (0..ROWS)
            .map(|row| Some(format!("host_{}", row / 2880)))
            .collect::<StringArray>()
            .iter()
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("noisy", DataType::Int64, true),
            Field::new("times", DataType::Int64, false),
            Field::new("floats", DataType::Float64, true),
            Field::new(
                "tag",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(noisy),
            Arc::new(times),
            Arc::new(floats),
            Arc::new(tags),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        let properties = gnomon_persist::writer::writer_properties(&schema);
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        (Bytes::from(out), batch)
    }

    /// Sorted, disjoint ranges of `rows` rows: single rows, short and long runs, runs
    /// across pages, and stretches of every other row (read as a mask by parquet).
    fn ranges(rng: &mut Lcg, rows: usize) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut at = rng.below(20_000);
        while at < rows {
            let length = match rng.below(4) {
                0 => 1,
                1 => 1 + rng.below(40),
                2 => 1 + rng.below(40_000),
                _ => {
                    for row in (at..rows.min(at + 400)).step_by(2) {
                        out.push(row..row + 1);
                    }
                    at += 400 + rng.below(30_000);
                    continue;
                }
            };
            out.push(at..rows.min(at + length));
            at += length + 1 + rng.below(30_000);
        }
        out
    }

    /// `columns` of the rows `inside` of row group `group`, through `cache`.
    fn read(
        cache: &PageCache,
        bytes: &Bytes,
        metadata: &Arc<ParquetMetaData>,
        group: usize,
        columns: &[usize],
        inside: Option<&[Range<usize>]>,
    ) -> RecordBatch {
        let mut reader = InMemoryReader {
            bytes: bytes.clone(),
        };
        let loaded = futures::executor::block_on(cache.load(
            &mut reader,
            "file",
            metadata,
            group,
            columns,
            inside,
        ))
        .unwrap()
        .expect("the file has an offset index");
        let parquet_schema = metadata.file_metadata().schema_descr();
        let arrow_schema = parquet::arrow::parquet_to_arrow_schema(
            parquet_schema,
            metadata.file_metadata().key_value_metadata(),
        )
        .unwrap();
        let mask = ProjectionMask::leaves(parquet_schema, columns.iter().copied());
        let levels =
            parquet_to_arrow_field_levels(parquet_schema, mask, Some(arrow_schema.fields()))
                .unwrap();
        let rows = metadata.row_group(group).num_rows() as usize;
        let selection = inside
            .map(|inside| RowSelection::from_consecutive_ranges(inside.iter().cloned(), rows));
        let reader =
            ParquetRecordBatchReader::try_new_with_row_groups(&levels, &loaded, 1000, selection)
                .unwrap();
        let schema = reader.schema();
        let batches: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().unwrap();
        concat_batches(&schema, &batches).unwrap()
    }

    /// The rows `inside` of row group `group` of `batch` (row groups of `group_rows`),
    /// columns `columns`.
    fn expected(
        batch: &RecordBatch,
        group_start: usize,
        group_rows: usize,
        columns: &[usize],
        inside: Option<&[Range<usize>]>,
    ) -> RecordBatch {
        let batch = batch.project(columns).unwrap();
        let all: Vec<Range<usize>> = std::iter::once(0..group_rows).collect();
        let parts: Vec<RecordBatch> = inside
            .unwrap_or(&all)
            .iter()
            .map(|r| batch.slice(group_start + r.start, r.len()))
            .collect();
        concat_batches(&batch.schema(), &parts).unwrap()
    }

    fn cut_pages(cache: &PageCache) -> usize {
        let chunks = cache.chunks.lock();
        chunks
            .values()
            .flat_map(|chunk| chunk.data.iter().flatten())
            .filter(|kept| kept.pieces.len() > 1)
            .count()
    }

    #[test]
    fn reads_through_the_cache_equal_whole_reads() {
        let (bytes, batch) = file();
        let metadata = Arc::new(
            ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Required)
                .parse_and_finish(&bytes)
                .unwrap(),
        );
        assert!(metadata.num_row_groups() >= 2, "several row groups");
        let roomy = PageCache::new(1 << 30);
        // Holds a few chunks at most: pages are evicted and read again.
        let tight = PageCache::new(200_000);
        let mut rng = Lcg(42);
        for round in 0..60 {
            let group = rng.below(metadata.num_row_groups());
            let group_start: usize = (0..group)
                .map(|g| metadata.row_group(g).num_rows() as usize)
                .sum();
            let group_rows = metadata.row_group(group).num_rows() as usize;
            let mut columns: Vec<usize> = (0..4).filter(|_| rng.below(2) == 0).collect();
            if columns.is_empty() {
                columns.push(rng.below(4));
            }
            let inside = match round % 10 {
                0 => None,
                // Every other row: parquet reads such a selection as a mask.
                5 => Some((0..group_rows).step_by(2).map(|r| r..r + 1).collect()),
                _ => Some(ranges(&mut rng, group_rows)),
            };
            let want = expected(&batch, group_start, group_rows, &columns, inside.as_deref());
            for cache in [&roomy, &tight] {
                // Twice: the second read finds the pages kept and cuts them.
                for _ in 0..2 {
                    let got = read(cache, &bytes, &metadata, group, &columns, inside.as_deref());
                    assert_eq!(got.num_rows(), want.num_rows(), "round {round}");
                    for (g, w) in got.columns().iter().zip(want.columns()) {
                        // Dictionaries compare by value (parquet rebuilds them).
                        let plain = |a: &ArrayRef| match a.data_type() {
                            DataType::Dictionary(..) => {
                                arrow::compute::cast(a, &DataType::Utf8).unwrap()
                            }
                            _ => Arc::clone(a),
                        };
                        assert!(plain(g) == plain(w), "round {round}, {columns:?}");
                    }
                }
            }
        }
        assert!(roomy.hits() > 0 && roomy.misses() > 0);
        assert!(cut_pages(&roomy) > 0, "pages read again were cut");
        assert!(tight.used_bytes() <= tight.capacity_bytes());
        assert!(tight.misses() > roomy.misses(), "the tight cache evicted");
    }
}
