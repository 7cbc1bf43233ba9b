//! Local time for `GROUP BY time()` windows under `tz()` when the zone's UTC offset changes
//! within the query range (feature `plan`): windows are then binned on local (wall-clock)
//! times, where they are evenly spaced, and their starts are turned back into instants.

use std::sync::Arc;

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;
use datafusion::arrow::array::{Array, AsArray, TimestampNanosecondArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampNanosecondType};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `zone`'s offset from UTC at `ns`, in nanoseconds (east positive).
pub(crate) fn offset_ns(zone: Tz, ns: i64) -> i64 {
    let utc = chrono::DateTime::from_timestamp_nanos(ns).naive_utc();
    zone.offset_from_utc_datetime(&utc).fix().local_minus_utc() as i64 * 1_000_000_000
}

/// The wall-clock time in `zone` at instant `ns`, as nanoseconds of a zone-less clock.
pub(crate) fn to_local(zone: Tz, ns: i64) -> i64 {
    ns.saturating_add(offset_ns(zone, ns))
}

/// The instant of wall-clock time `local` in `zone`: the offset is the one in force at that
/// time (looked up twice, as InfluxDB 1.x settles a window start), so a local midnight after
/// a change of offset maps to the instant it names.
pub(crate) fn to_utc(zone: Tz, local: i64) -> i64 {
    let guess = local.saturating_sub(offset_ns(zone, local));
    local.saturating_sub(offset_ns(zone, guess))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    ToLocal,
    ToUtc,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ZoneShift {
    zone: Tz,
    direction: Direction,
    signature: Signature,
}

/// `expr` (a zone-less nanosecond timestamp) as wall-clock time in `zone`.
pub(crate) fn local_time(zone: Tz, expr: Expr) -> Expr {
    udf(zone, Direction::ToLocal).call(vec![expr])
}

/// `expr` (wall-clock time in `zone`) as the instant it names.
pub(crate) fn utc_time(zone: Tz, expr: Expr) -> Expr {
    udf(zone, Direction::ToUtc).call(vec![expr])
}

fn udf(zone: Tz, direction: Direction) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(ZoneShift {
        zone,
        direction,
        signature: Signature::exact(
            vec![DataType::Timestamp(TimeUnit::Nanosecond, None)],
            Volatility::Immutable,
        ),
    }))
}

impl ScalarUDFImpl for ZoneShift {
    fn name(&self) -> &str {
        match self.direction {
            Direction::ToLocal => "influxql_local_time",
            Direction::ToUtc => "influxql_utc_time",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Nanosecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let Some(times) = input.as_primitive_opt::<TimestampNanosecondType>() else {
            return exec_err!(
                "{}: expected a timestamp, got {}",
                self.name(),
                input.data_type()
            );
        };
        let (zone, direction) = (self.zone, self.direction);
        let out: TimestampNanosecondArray = times.unary(|t| match direction {
            Direction::ToLocal => to_local(zone, t),
            Direction::ToUtc => to_utc(zone, t),
        });
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn local_midnights_across_a_change_of_offset() {
        let paris = Tz::Europe__Paris;
        // 2025-03-30: clocks go from +01:00 to +02:00 at 01:00 UTC.
        let mar30 = 1_743_292_800_000_000_000; // 2025-03-30T00:00:00Z
        assert_eq!(to_local(paris, mar30 - 2 * H), mar30 - H);
        assert_eq!(to_local(paris, mar30 + 2 * H), mar30 + 4 * H);
        // Local midnights before and after the change name instants one offset apart.
        assert_eq!(to_utc(paris, mar30), mar30 - H);
        assert_eq!(to_utc(paris, mar30 + 24 * H), mar30 + 22 * H);
        // Round trip where the local time exists once.
        for t in [mar30 - 5 * H, mar30 + 5 * H] {
            assert_eq!(to_utc(paris, to_local(paris, t)), t);
        }
    }
}
