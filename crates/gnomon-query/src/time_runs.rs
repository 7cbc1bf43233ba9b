//! Evenly spaced times in persisted files: exact time selections, and `time` values without
//! decoding the column.
//!
//! Files are sorted by series then time, and most series are sampled at a fixed interval, so
//! a file's `time` column is a few long arithmetic progressions: one per series, or one per
//! stretch between gaps. Kept per file ([`TimeRuns`], found by decoding the column once, the
//! first time a query with a time range reads the file), they give:
//! - the rows of a time range, exactly: a run's rows in a range are contiguous and computed
//!   from its first time and step. A 5-minute window over 4000 series in a file of 8 hours
//!   reads 1/96 of its rows instead of all of them (every page holds whole series, so page
//!   statistics cannot skip any);
//! - the `time` values of selected rows ([`TimeRuns::times`]), so the direct path does not
//!   read the column at all.
//!
//! A file whose times are irregular (more than [`SMALL_FILE_RUNS`] runs, of fewer than
//! [`MIN_AVERAGE_RUN`] rows on average) keeps no runs, and its queries read `time` as before.

use std::ops::Range;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampNanosecondType};
use datafusion::error::Result;
use futures::TryStreamExt;
use parquet::arrow::async_reader::AsyncFileReader;

use crate::series_ranges::column_batches;
use crate::time_range::TimeRange;

/// The name of the time column.
pub(crate) const TIME: &str = "time";

/// Runs shorter than this on average and a file keeps none (about 1 byte of memory per row
/// at this length)...
const MIN_AVERAGE_RUN: u64 = 32;
/// ...beyond this many runs, which any file may keep (8 KiB): a small file holds short runs
/// (a 10-minute chunk has a run or two per series, and its series tail).
const SMALL_FILE_RUNS: u64 = 256;

/// Consecutive rows whose times are `first`, `first + step`, `first + 2 step`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeRun {
    start: u64,
    len: u64,
    first: i64,
    /// Positive, or 0 for a run of one row.
    step: i64,
}

impl TimeRun {
    fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Offsets in the run of its rows with a time in `[min, max]`.
    fn offsets_within(&self, min: i64, max: i64) -> Range<u64> {
        if self.step == 0 {
            return if (min..=max).contains(&self.first) {
                0..1
            } else {
                0..0
            };
        }
        let len = self.len as i128;
        // The first offset at or above `min`, and one past the last at or below `max`
        // (in i128: bounds may be far from the run's times).
        let below = |t: i64| (t as i128 - self.first as i128).div_euclid(self.step as i128);
        let lo = match (min as i128 - self.first as i128).rem_euclid(self.step as i128) {
            0 => below(min),
            _ => below(min) + 1,
        }
        .clamp(0, len);
        let hi = (below(max) + 1).clamp(0, len);
        if lo < hi {
            lo as u64..hi as u64
        } else {
            0..0
        }
    }

    fn time_at(&self, offset: u64) -> i64 {
        // The true value is a time of the run, so it fits; the product alone may not (a run
        // from near `i64::MIN` to near `i64::MAX`), and wrapping arithmetic still lands on it.
        self.first
            .wrapping_add(self.step.wrapping_mul(offset as i64))
    }
}

/// A file's `time` column as runs of evenly spaced times, in row order.
#[derive(Debug, Default)]
pub(crate) struct TimeRuns {
    runs: Vec<TimeRun>,
}

impl TimeRuns {
    /// Rows in the file.
    pub(crate) fn rows(&self) -> u64 {
        self.runs.last().map_or(0, TimeRun::end)
    }

    fn push(&mut self, time: i64) {
        if let Some(run) = self.runs.last_mut() {
            let step = time.checked_sub(run.time_at(run.len - 1));
            let extends = match (run.len, step) {
                (1, Some(step)) => step > 0,
                (_, step) => step == Some(run.step),
            };
            if let (true, Some(step)) = (extends, step) {
                run.step = step;
                run.len += 1;
                return;
            }
        }
        self.runs.push(TimeRun {
            start: self.rows(),
            len: 1,
            first: time,
            step: 0,
        });
    }

    /// The runs of `times` (a whole file's column, in row order), or `None` when they are too
    /// short on average to be worth keeping.
    #[cfg(test)]
    fn of(times: impl IntoIterator<Item = i64>) -> Option<Self> {
        let mut runs = Self::default();
        for time in times {
            runs.push(time);
        }
        runs.worth_keeping().then_some(runs)
    }

    fn worth_keeping(&self) -> bool {
        (self.runs.len() as u64).saturating_sub(SMALL_FILE_RUNS) * MIN_AVERAGE_RUN <= self.rows()
    }

    /// Decodes the `time` column of the file behind `reader`: `None` when the file has no
    /// nanosecond time column without nulls, or its times are too irregular.
    pub(crate) async fn read(reader: Box<dyn AsyncFileReader + Send>) -> Result<Option<Self>> {
        let (_, Some(mut stream)) = column_batches(reader, TIME).await? else {
            return Ok(None);
        };
        let mut runs = Self::default();
        while let Some(batch) = stream.try_next().await? {
            let column = batch.column(0);
            if !matches!(
                column.data_type(),
                DataType::Timestamp(TimeUnit::Nanosecond, _)
            ) || column.null_count() > 0
            {
                return Ok(None);
            }
            for &time in column.as_primitive::<TimestampNanosecondType>().values() {
                runs.push(time);
            }
            // Checked as it grows, so a very irregular file stops early.
            if runs.runs.len() > 1024 && !runs.worth_keeping() {
                return Ok(None);
            }
        }
        Ok(runs.worth_keeping().then_some(runs))
    }

    /// The rows among `rows` (sorted, disjoint; every row when `None`) with a time in
    /// `range`: sorted, disjoint, adjacent ones merged. Only the runs overlapping `rows` are
    /// looked at (a file holds thousands; a query of one series needs a few).
    pub(crate) fn rows_within(
        &self,
        range: TimeRange,
        rows: Option<&[Range<u64>]>,
    ) -> Vec<Range<u64>> {
        let all = 0..self.rows();
        let mut out: Vec<Range<u64>> = Vec::new();
        for wanted in rows.unwrap_or(std::slice::from_ref(&all)) {
            let first = self.runs.partition_point(|run| run.end() <= wanted.start);
            for run in self.runs[first..]
                .iter()
                .take_while(|run| run.start < wanted.end)
            {
                let offsets = run.offsets_within(range.min, range.max);
                let start = (run.start + offsets.start).max(wanted.start);
                let end = (run.start + offsets.end).min(wanted.end);
                if start >= end {
                    continue;
                }
                match out.last_mut() {
                    Some(last) if last.end == start => last.end = end,
                    _ => out.push(start..end),
                }
            }
        }
        out
    }

    /// Appends the times of `rows` (within the file) to `out`, in row order.
    pub(crate) fn times(&self, rows: Range<u64>, out: &mut Vec<i64>) {
        let mut at = self.runs.partition_point(|run| run.end() <= rows.start);
        let mut row = rows.start;
        while row < rows.end {
            let Some(run) = self.runs.get(at) else {
                return;
            };
            let stop = run.end().min(rows.end);
            out.extend((row - run.start..stop - run.start).map(|offset| run.time_at(offset)));
            row = stop;
            at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: i64, max: i64) -> TimeRange {
        TimeRange { min, max }
    }

    /// Every row whose time is in `[min, max]`, by looking at each.
    fn rows_by_scan(times: &[i64], min: i64, max: i64) -> Vec<u64> {
        (0..times.len() as u64)
            .filter(|&r| (min..=max).contains(&times[r as usize]))
            .collect()
    }

    fn flatten(ranges: &[Range<u64>]) -> Vec<u64> {
        ranges.iter().flat_map(|r| r.clone()).collect()
    }

    /// Two series of 10 s samples, one with a gap and a late odd point, one starting
    /// before the first ends; times repeat across series.
    fn sample() -> Vec<i64> {
        let mut times: Vec<i64> = (0..50).map(|i| 1_000 + i * 10).collect();
        times.extend((0..30).map(|i| 2_000 + i * 10));
        times.push(2_295);
        times.extend((0..60).map(|i| 990 + i * 10));
        times.push(i64::MAX);
        times
    }

    #[test]
    fn runs_follow_steps_gaps_and_series() {
        let runs = TimeRuns::of(sample()).unwrap();
        let found: Vec<(u64, u64, i64, i64)> = runs
            .runs
            .iter()
            .map(|r| (r.start, r.len, r.first, r.step))
            .collect();
        assert_eq!(
            found,
            vec![
                (0, 50, 1_000, 10),
                (50, 30, 2_000, 10),
                (80, 1, 2_295, 0),
                (81, 60, 990, 10),
                (141, 1, i64::MAX, 0),
            ]
        );
        assert_eq!(runs.rows(), 142);
    }

    #[test]
    fn rows_within_a_range_are_exactly_those_a_scan_finds() {
        let times = sample();
        let runs = TimeRuns::of(times.clone()).unwrap();
        let bounds = [
            i64::MIN,
            0,
            990,
            995,
            1_000,
            1_005,
            1_290,
            1_490,
            1_500,
            2_000,
            2_290,
            2_295,
            2_296,
            i64::MAX - 1,
            i64::MAX,
        ];
        for &min in &bounds {
            for &max in &bounds {
                let ranges = runs.rows_within(range(min, max), None);
                assert_eq!(
                    flatten(&ranges),
                    rows_by_scan(&times, min, max),
                    "[{min}, {max}]"
                );
                assert!(ranges.windows(2).all(|w| w[0].end < w[1].start));
                // Among some rows only: cut inside runs, across runs, at the ends.
                let some = [0..3, 10..60, 79..82, 100..101, 130..142];
                let want: Vec<u64> = rows_by_scan(&times, min, max)
                    .into_iter()
                    .filter(|r| some.iter().any(|s| s.contains(r)))
                    .collect();
                assert_eq!(
                    flatten(&runs.rows_within(range(min, max), Some(&some))),
                    want,
                    "[{min}, {max}] among {some:?}"
                );
            }
        }
    }

    #[test]
    fn times_of_any_rows_are_the_column_values() {
        let times = sample();
        let runs = TimeRuns::of(times.clone()).unwrap();
        for rows in [0..142, 0..1, 49..51, 79..82, 100..142, 141..142, 60..60] {
            let mut out = Vec::new();
            runs.times(rows.clone(), &mut out);
            assert_eq!(
                out,
                times[rows.start as usize..rows.end as usize],
                "{rows:?}"
            );
        }
    }

    #[test]
    fn times_at_the_ends_of_the_range_stay_exact() {
        let step = i64::MAX / 2 + 1;
        // One run from i64::MIN over three steps of 2^62 (its span does not fit an i64).
        let times = vec![i64::MIN, i64::MIN + step, 0, step, -5, i64::MAX - 1];
        let runs = TimeRuns::of(times.clone()).unwrap();
        let mut out = Vec::new();
        runs.times(0..times.len() as u64, &mut out);
        assert_eq!(out, times);
        for (min, max) in [
            (i64::MIN, i64::MAX),
            (-1, 1),
            (i64::MIN, i64::MIN),
            (1, i64::MAX),
        ] {
            assert_eq!(
                flatten(&runs.rows_within(range(min, max), None)),
                rows_by_scan(&times, min, max),
                "[{min}, {max}]"
            );
        }
    }

    #[test]
    fn irregular_times_keep_no_runs() {
        // Decreasing times: every row is a run of its own.
        assert!(TimeRuns::of((0..10_000).rev()).is_none());
        // Steps that never repeat make runs of two.
        assert!(TimeRuns::of((0..10_000i64).map(|i| i * i)).is_none());
        assert!(TimeRuns::of((0..10_000i64).map(|i| i * 7)).is_some());
        assert!(TimeRuns::of(Vec::new()).is_some());
        // A small file keeps its runs however short.
        assert!(TimeRuns::of((0..200).rev()).is_some());
    }
}
