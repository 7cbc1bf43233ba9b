//! The newest row per tag value, reading the newest sources first.
//!
//! [`crate::top_one::TopOneExec`] keeps the newest row of every key, but still reads every
//! row of the table: over a day of data, nearly all of them are older rows of keys whose
//! newest row is elsewhere. When the key is one tag and the order is `time DESC`, and the
//! `TopOneExec` reads a table scan directly (no filter in between), [`NewestFirst`] reads
//! instead only the rows that can win:
//!
//! - the scan's sources (buffer batches, Parquet files) are visited newest time range first;
//!   sources with overlapping time ranges form one step;
//! - in a step, a source contributes only the rows of values no newer step has seen: a
//!   buffer batch by filtering on its dictionary keys, a file by a row selection from its tag
//!   runs ([`crate::series_ranges`]) — restricted to the file's series tail when it has one,
//!   since the tail holds the newest row of every series in the file;
//! - a file whose values were all seen is not read at all.
//!
//! The rows found are a superset of the winners; `TopOneExec` picks among them as it would
//! among all rows.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, TimestampNanosecondArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Int32Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{collect, ExecutionPlan};
use gnomon_persist::ParquetFile;
use parquet::arrow::arrow_reader::RowSelection;

use crate::persisted::PersistedFiles;
use crate::series_ranges::merge_adjacent;

const TIME: &str = "time";

/// One source of the scan.
#[derive(Debug, Clone)]
enum Source {
    File {
        file: Arc<ParquetFile>,
        partitioned: Box<PartitionedFile>,
        persisted: PersistedFiles,
    },
    /// A buffered batch (all table columns) and the scan's projection of it.
    Batch {
        batch: RecordBatch,
        projection: Option<Vec<usize>>,
    },
}

/// A scan that [`crate::top_one::TopOneExec`] can read newest first.
#[derive(Debug, Clone)]
pub struct NewestFirst {
    /// The key tag's name.
    key: String,
    sources: Vec<(i64, i64, Source)>,
    /// How the scan read its files (projection, reader), to read the selected rows alike.
    file_config: Option<FileScanConfig>,
}

impl NewestFirst {
    /// The sources of `plan` when it is a bare table scan (possibly repartitioned) whose
    /// column `key` is a tag and whose `time` column is the one ordered by.
    pub fn find(plan: &Arc<dyn ExecutionPlan>, key: &str) -> Option<Self> {
        let mut found = Self {
            key: key.to_string(),
            sources: Vec::new(),
            file_config: None,
        };
        found.collect(plan).then_some(found)
    }

    fn collect(&mut self, plan: &Arc<dyn ExecutionPlan>) -> bool {
        if let Some(r) = plan.downcast_ref::<RepartitionExec>() {
            return self.collect(r.input());
        }
        if let Some(c) = plan.downcast_ref::<CoalescePartitionsExec>() {
            return self.collect(c.input());
        }
        if let Some(u) = plan.downcast_ref::<UnionExec>() {
            return u.inputs().iter().all(|i| self.collect(i));
        }
        let Some(exec) = plan.downcast_ref::<DataSourceExec>() else {
            return false;
        };
        let source = exec.data_source();
        if let Some(config) = source.downcast_ref::<FileScanConfig>() {
            if self.file_config.is_some() {
                return false;
            }
            for partitioned in config.file_groups.iter().flat_map(|g| g.iter()) {
                let (Some(file), Some(persisted)) = (
                    partitioned.extensions.get_arc::<ParquetFile>(),
                    partitioned.extensions.get::<PersistedFiles>(),
                ) else {
                    return false;
                };
                // A file already narrowed by a selection came with filters: not ours.
                if partitioned
                    .extensions
                    .get::<ParquetRowSelection>()
                    .is_some()
                {
                    return false;
                }
                self.sources.push((
                    file.min_time,
                    file.max_time,
                    Source::File {
                        file: Arc::clone(&file),
                        partitioned: Box::new(partitioned.clone()),
                        persisted: persisted.clone(),
                    },
                ));
            }
            self.file_config = Some(config.clone());
            return true;
        }
        if let Some(memory) = source.downcast_ref::<MemorySourceConfig>() {
            for batch in memory.partitions().iter().flatten() {
                let Some(times) = batch
                    .column_by_name(TIME)
                    .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
                else {
                    return false;
                };
                let (Some(min), Some(max)) =
                    (arrow::compute::min(times), arrow::compute::max(times))
                else {
                    continue;
                };
                if !matches!(
                    batch
                        .schema()
                        .field_with_name(&self.key)
                        .map(|f| f.data_type().clone()),
                    Ok(DataType::Dictionary(..))
                ) {
                    return false;
                }
                self.sources.push((
                    min,
                    max,
                    Source::Batch {
                        batch: batch.clone(),
                        projection: memory.projection().clone(),
                    },
                ));
            }
            return true;
        }
        false
    }

    /// The rows that may be the newest of their key, in the scan's output schema.
    pub async fn candidates(&self, context: Arc<TaskContext>) -> Result<Vec<RecordBatch>> {
        let mut sources = self.sources.clone();
        sources.sort_by_key(|(_, max, _)| std::cmp::Reverse(*max));
        let mut seen: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        let mut selected: Vec<PartitionedFile> = Vec::new();
        let mut i = 0;
        while i < sources.len() {
            // One step: sources overlapping in time with the newest one left, transitively.
            let mut step_min = sources[i].0;
            let mut j = i + 1;
            while j < sources.len() && sources[j].1 >= step_min {
                step_min = step_min.min(sources[j].0);
                j += 1;
            }
            let mut step_seen: HashSet<String> = HashSet::new();
            for (_, _, source) in &sources[i..j] {
                match source {
                    Source::Batch { batch, projection } => {
                        if let Some(rows) = self.unseen_rows(batch, &seen, &mut step_seen)? {
                            out.push(match projection {
                                Some(p) => rows.project(p)?,
                                None => rows,
                            });
                        }
                    }
                    Source::File {
                        file,
                        partitioned,
                        persisted,
                    } => {
                        if let Some(p) = self
                            .unseen_file_rows(file, partitioned, persisted, &seen, &mut step_seen)
                            .await?
                        {
                            selected.push(p);
                        }
                    }
                }
            }
            seen.extend(step_seen);
            i = j;
        }
        if let (Some(config), false) = (&self.file_config, selected.is_empty()) {
            let mut config = config.clone();
            let partitions = context.session_config().target_partitions();
            config.file_groups = PersistedFiles::spread(selected, partitions);
            let plan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
            out.extend(collect(plan, context).await?);
        }
        Ok(out)
    }

    /// The rows of `batch` whose key value is not in `seen`; records its values in `step`.
    fn unseen_rows(
        &self,
        batch: &RecordBatch,
        seen: &HashSet<String>,
        step: &mut HashSet<String>,
    ) -> Result<Option<RecordBatch>> {
        let column = batch
            .column_by_name(&self.key)
            .ok_or_else(|| DataFusionError::Internal(format!("no column {}", self.key)))?;
        let dict = column.as_dictionary_opt::<Int32Type>().ok_or_else(|| {
            DataFusionError::Internal(format!("tag {} is not a dictionary", self.key))
        })?;
        let values = dict.values().as_string::<i32>();
        let fresh: Vec<bool> = (0..values.len())
            .map(|k| !seen.contains(values.value(k)))
            .collect();
        let mut used = vec![false; values.len()];
        let keep: BooleanArray = dict
            .keys()
            .iter()
            .map(|k| {
                Some(k.is_some_and(|k| {
                    used[k as usize] = true;
                    fresh[k as usize]
                }))
            })
            .collect();
        for (k, _) in used.iter().enumerate().filter(|(_, u)| **u) {
            step.insert(values.value(k).to_string());
        }
        if keep.true_count() == 0 {
            return Ok(None);
        }
        Ok(Some(filter_record_batch(batch, &keep)?))
    }

    /// `partitioned` with a selection of the rows of values not in `seen` (in the series tail
    /// when the file has one); records the file's values in `step`. `None` when no row is
    /// needed.
    async fn unseen_file_rows(
        &self,
        file: &ParquetFile,
        partitioned: &PartitionedFile,
        persisted: &PersistedFiles,
        seen: &HashSet<String>,
        step: &mut HashSet<String>,
    ) -> Result<Option<PartitionedFile>> {
        let open = || persisted.open(file);
        let Some(runs) = persisted.tag_runs.runs(&file.path, &self.key, open).await? else {
            // No runs (too many): the whole file, and nothing known to skip later.
            return Ok(Some(partitioned.clone()));
        };
        let metadata = persisted.open(file)?.get_metadata(None).await?;
        let tail = gnomon_persist::tail::tail_start(&metadata);
        let total = runs.rows();
        let mut wanted: Vec<Range<u64>> = Vec::new();
        for (value, ranges) in runs.values() {
            if seen.contains(value) {
                continue;
            }
            step.insert(value.to_string());
            match tail {
                Some(start) => wanted.extend(
                    ranges
                        .iter()
                        .filter(|r| r.end > start)
                        .map(|r| r.start.max(start)..r.end),
                ),
                None => wanted.extend(ranges.iter().cloned()),
            }
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        wanted.sort_by_key(|r| r.start);
        let wanted = merge_adjacent(wanted);
        let mut narrowed = partitioned.clone();
        narrowed.extensions.insert(ParquetRowSelection::new(
            RowSelection::from_consecutive_ranges(
                wanted.into_iter().map(|r| r.start as usize..r.end as usize),
                total as usize,
            ),
        ));
        Ok(Some(narrowed))
    }
}
