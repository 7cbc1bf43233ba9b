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

use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

/// Adds the functions, the gap-filling analyzer rule and the query planner to a session
/// under construction.
pub fn install(builder: SessionStateBuilder) -> SessionStateBuilder {
    builder.with_query_planner(Arc::new(gapfill::GnomonQueryPlanner))
}

/// Registers the functions on a built session, and the analyzer rule.
pub fn register(ctx: &SessionContext) {
    for udf in gapfill::functions() {
        ctx.register_udf(udf);
    }
    ctx.register_udf(tz::tz());
    for udaf in selectors::all() {
        ctx.register_udaf(udaf);
    }
    ctx.add_analyzer_rule(Arc::new(gapfill::HandleGapFill));
}
