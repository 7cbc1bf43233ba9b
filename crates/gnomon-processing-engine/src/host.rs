//! What plugins may ask of the server, as a trait so that this crate needs neither the query
//! engine nor HTTP.

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

/// The database operations behind `influxdb3_local.write*` and `influxdb3_local.query`.
/// Implemented by the server; errors are the texts the server would answer with.
#[async_trait]
pub trait PluginHost: Send + Sync + 'static {
    /// Writes line protocol to `db` (created if missing) with nanosecond precision and
    /// `accept_partial = false`; lines without a timestamp get the current time.
    async fn write_lp(&self, db: &str, lines: &str, no_sync: bool) -> Result<(), String>;

    /// Runs SQL against `db` with `$name` parameters bound to string values.
    async fn query(
        &self,
        db: &str,
        sql: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Vec<RecordBatch>, String>;
}
