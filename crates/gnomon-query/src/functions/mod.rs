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

use datafusion::execution::{FunctionRegistry, SessionState, SessionStateBuilder};

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
