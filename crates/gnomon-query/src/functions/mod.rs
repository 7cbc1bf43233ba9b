//! The time series functions InfluxDB 3 Core adds to SQL, and their planning.
//!
//! - [`selectors`]: `selector_first|last|min|max(value, time)` → `{value, time}`;
//! - [`tz`]: `tz(time[, zone])`;
//! - [`gapfill`]: `date_bin_gapfill`, `locf`, `interpolate`, planned by an analyzer rule
//!   and an extension node.

pub mod gapfill;
pub mod selectors;
pub mod tz;

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::execution::{FunctionRegistry, SessionState, SessionStateBuilder};

const DAY_NS: i64 = 86_400_000_000_000;

/// The length in nanoseconds of a constant `date_bin` interval of fixed length (days and
/// smaller units; a month has no fixed length): `None` for months, non-constants and
/// overflow. The sign is the caller's to check.
pub(crate) fn fixed_stride_ns(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => i64::from(v.days)
            .checked_mul(DAY_NS)?
            .checked_add(v.nanoseconds),
        ScalarValue::IntervalDayTime(Some(v)) => i64::from(v.days)
            .checked_mul(DAY_NS)?
            .checked_add(i64::from(v.milliseconds).checked_mul(1_000_000)?),
        ScalarValue::DurationNanosecond(Some(n)) => Some(*n),
        _ => None,
    }
}

/// The start of the `date_bin` bin holding `t`: `origin + floor((t - origin) / stride) *
/// stride` for a positive `stride`, as DataFusion computes it; `None` on overflow.
pub(crate) fn bin_start(t: i64, stride: i64, origin: i64) -> Option<i64> {
    let bins = t.checked_sub(origin)?.div_euclid(stride);
    origin.checked_add(bins.checked_mul(stride)?)
}

/// Adds the functions, the gap-filling analyzer rule and the query planner to a session
/// under construction.
pub fn install(builder: SessionStateBuilder) -> SessionStateBuilder {
    builder
        .with_query_planner(Arc::new(gapfill::GnomonQueryPlanner))
        .with_physical_optimizer_rule(Arc::new(crate::top_one::TopOnePerPartition))
        .with_physical_optimizer_rule(Arc::new(crate::run_aggregate::RunPartialAggregate))
}

/// Registers the functions, and the gap-filling analyzer rule, on a built session state.
pub fn register(state: &mut SessionState) -> datafusion::error::Result<()> {
    for udf in gapfill::functions() {
        state.register_udf(Arc::new(udf))?;
    }
    state.register_udf(Arc::new(tz::tz()))?;
    for udaf in selectors::all() {
        state.register_udaf(Arc::new(udaf))?;
    }
    state.add_analyzer_rule(Arc::new(gapfill::HandleGapFill));
    Ok(())
}
