//! The planner end to end on an in-memory database: InfluxQL text → plan → DataFusion → v1
//! JSON. Expected answers follow INFLUXQL.md and InfluxDB 1.x semantics for this data set.
#![cfg(feature = "plan")]

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, DictionaryArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use gnomon_influxql::ast::Statement;
use gnomon_influxql::parse_statement;
use gnomon_influxql::plan::plan_select;
use gnomon_influxql::v1::{series_from_batches, write_statement, Cell, Epoch, Series};

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;

fn tag(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(
        values
            .iter()
            .copied()
            .collect::<DictionaryArray<Int32Type>>(),
    )
}

fn dict() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn time(secs: &[i64]) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(
        secs.iter().map(|s| T0 + s * S).collect::<Vec<_>>(),
    ))
}

/// cpu: host/region tags, usage float; mem: host tag, free integer.
fn database() -> Arc<MemorySchemaProvider> {
    let cpu_schema = Arc::new(Schema::new(vec![
        Field::new("host", dict(), true),
        Field::new("region", dict(), true),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            false,
        ),
        Field::new("usage", DataType::Float64, true),
        Field::new("idle", DataType::Float64, true),
    ]));
    let cpu = RecordBatch::try_new(
        Arc::clone(&cpu_schema),
        vec![
            tag(&[Some("a"), Some("b"), Some("a"), Some("b"), Some("a"), None]),
            tag(&[
                Some("us"),
                Some("us"),
                Some("eu"),
                Some("us"),
                Some("eu"),
                Some("us"),
            ]),
            time(&[0, 1, 2, 61, 62, 63]),
            Arc::new(Float64Array::from(vec![
                Some(0.5),
                Some(1.5),
                Some(2.5),
                Some(3.5),
                None,
                Some(10.0),
            ])),
            Arc::new(Float64Array::from(vec![
                None,
                None,
                None,
                None,
                Some(7.0),
                None,
            ])),
        ],
    )
    .unwrap();
    let mem_schema = Arc::new(Schema::new(vec![
        Field::new("host", dict(), true),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            false,
        ),
        Field::new("free", DataType::Int64, true),
    ]));
    let mem = RecordBatch::try_new(
        Arc::clone(&mem_schema),
        vec![
            tag(&[Some("a"), Some("a")]),
            time(&[3, 4]),
            Arc::new(Int64Array::from(vec![100, 90])),
        ],
    )
    .unwrap();
    let schema = Arc::new(MemorySchemaProvider::new());
    schema
        .register_table(
            "cpu".into(),
            Arc::new(MemTable::try_new(cpu_schema, vec![vec![cpu]]).unwrap()),
        )
        .unwrap();
    schema
        .register_table(
            "mem".into(),
            Arc::new(MemTable::try_new(mem_schema, vec![vec![mem]]).unwrap()),
        )
        .unwrap();
    let _ = StringArray::from(vec!["unused"]);
    schema
}

async fn run(q: &str) -> Result<Vec<Series>, String> {
    let Statement::Select(s) = parse_statement(q).unwrap() else {
        panic!("not a select")
    };
    let db = database();
    let planned = plan_select(&s, db.as_ref() as &dyn SchemaProvider, T0 + 3600 * S)
        .await
        .map_err(|e| e.to_string())?;
    // Gnomon's query planner: it knows the GapFill node GROUP BY time() fill uses.
    let state = gnomon_query::functions::install(
        datafusion::execution::SessionStateBuilder::new().with_default_features(),
    )
    .build();
    let ctx = SessionContext::new_with_state(state);
    let batches = ctx
        .execute_logical_plan(planned.plan)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let grouped = s
        .group_by
        .iter()
        .flatten()
        .any(|d| !matches!(d, gnomon_influxql::ast::Dimension::Time { .. }));
    series_from_batches(&batches, &planned.tag_columns, grouped).map_err(|e| e.to_string())
}

/// The v1 statement JSON with `epoch=s` (seconds relative to T0 are easier to read below).
async fn json(q: &str) -> String {
    let series = run(q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
    let refs: Vec<(&Series, &[Vec<Cell>], bool)> = series
        .iter()
        .map(|s| (s, s.values.as_slice(), false))
        .collect();
    let mut out = String::new();
    write_statement(&mut out, 0, &refs, false, None, Some(Epoch::Second)).unwrap();
    out
}

#[tokio::test]
async fn raw_field() {
    assert_eq!(
        json("SELECT usage FROM cpu WHERE time < 1700000060s").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[[1700000000,0.5],[1700000001,1.5],[1700000002,2.5]]}]}"#
    );
}

#[tokio::test]
async fn rows_without_the_selected_field_are_skipped() {
    assert_eq!(
        json("SELECT idle FROM cpu").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","idle"],"values":[[1700000062,7]]}]}"#
    );
}

#[tokio::test]
async fn star_lists_fields_and_tags_alphabetically() {
    assert_eq!(
        json("SELECT * FROM cpu WHERE time <= 1700000000s").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","host","idle","region","usage"],"values":[[1700000000,"a",null,"us",0.5]]}]}"#
    );
}

#[tokio::test]
async fn tag_filter_and_regex() {
    assert_eq!(
        json("SELECT usage FROM cpu WHERE host = 'a' AND region =~ /^e/").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[[1700000002,2.5]]}]}"#
    );
    assert_eq!(
        json("SELECT usage FROM cpu WHERE host !~ /a|b/").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[[1700000063,10]]}]}"#
    );
}

#[tokio::test]
async fn missing_tag_compares_as_empty_string() {
    assert_eq!(
        json("SELECT usage FROM cpu WHERE host = ''").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[[1700000063,10]]}]}"#
    );
}

#[tokio::test]
async fn field_condition_and_arithmetic() {
    assert_eq!(
        json("SELECT usage * 2 + 1 AS u2 FROM cpu WHERE usage >= 2.5 AND usage < 10").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","u2"],"values":[[1700000002,6],[1700000061,8]]}]}"#
    );
}

#[tokio::test]
async fn group_by_tag_splits_series() {
    assert_eq!(
        json("SELECT usage FROM cpu WHERE time < 1700000060s GROUP BY host").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","usage"],"values":[[1700000000,0.5],[1700000002,2.5]]},{"name":"cpu","tags":{"host":"b"},"columns":["time","usage"],"values":[[1700000001,1.5]]}]}"#
    );
}

#[tokio::test]
async fn several_measurements_give_one_series_each() {
    assert_eq!(
        json("SELECT free, usage FROM cpu, mem WHERE time >= 1700000002s AND time <= 1700000004s")
            .await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","free","usage"],"values":[[1700000002,null,2.5]]},{"name":"mem","columns":["time","free","usage"],"values":[[1700000003,100,null],[1700000004,90,null]]}]}"#
    );
}

#[tokio::test]
async fn regex_measurement_and_unknown_measurement() {
    assert_eq!(
        json("SELECT free FROM /^me/, nothere").await,
        r#"{"statement_id":0,"series":[{"name":"mem","columns":["time","free"],"values":[[1700000003,100],[1700000004,90]]}]}"#
    );
    assert_eq!(json("SELECT v FROM nothere").await, r#"{"statement_id":0}"#);
}

#[tokio::test]
async fn order_desc_limit_offset() {
    assert_eq!(
        json("SELECT usage FROM cpu ORDER BY time DESC LIMIT 2 OFFSET 1").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[[1700000061,3.5],[1700000002,2.5]]}]}"#
    );
    // Per series with GROUP BY.
    assert_eq!(
        json("SELECT usage FROM cpu GROUP BY host LIMIT 1").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","tags":{"host":""},"columns":["time","usage"],"values":[[1700000063,10]]},{"name":"cpu","tags":{"host":"a"},"columns":["time","usage"],"values":[[1700000000,0.5]]},{"name":"cpu","tags":{"host":"b"},"columns":["time","usage"],"values":[[1700000001,1.5]]}]}"#
    );
}

#[tokio::test]
async fn aggregates_without_group_by_time_are_at_epoch_zero() {
    assert_eq!(
        json("SELECT count(usage), sum(usage), mean(usage) FROM cpu WHERE host = 'a'").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","count","sum","mean"],"values":[[0,2,3,1.5]]}]}"#
    );
}

#[tokio::test]
async fn aggregate_over_nothing_gives_no_row() {
    assert_eq!(
        json("SELECT count(usage) FROM cpu WHERE host = 'zzz'").await,
        r#"{"statement_id":0}"#
    );
}

#[tokio::test]
async fn lone_selector_keeps_the_point_time() {
    assert_eq!(
        json("SELECT max(usage) FROM cpu WHERE host = 'a' OR host = 'b'").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","max"],"values":[[1700000061,3.5]]}]}"#
    );
    assert_eq!(
        json("SELECT min(usage) FROM cpu").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","min"],"values":[[1700000000,0.5]]}]}"#
    );
    assert_eq!(
        json("SELECT last(usage) FROM cpu GROUP BY host").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","tags":{"host":""},"columns":["time","last"],"values":[[1700000063,10]]},{"name":"cpu","tags":{"host":"a"},"columns":["time","last"],"values":[[1700000002,2.5]]},{"name":"cpu","tags":{"host":"b"},"columns":["time","last"],"values":[[1700000061,3.5]]}]}"#
    );
    assert_eq!(
        json("SELECT first(usage) FROM cpu WHERE host = 'b'").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","first"],"values":[[1700000001,1.5]]}]}"#
    );
}

#[tokio::test]
async fn group_by_time_windows_start_times() {
    // Windows of 1m aligned to the epoch: T0 = 1700000000 is 20s past a minute boundary
    // (1699999980).
    assert_eq!(
        json("SELECT count(usage), max(usage) FROM cpu WHERE time >= 1700000000s AND time < 1700000100s GROUP BY time(1m) fill(none)").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","count","max"],"values":[[1699999980,3,2.5],[1700000040,2,10]]}]}"#
    );
}

#[tokio::test]
async fn group_by_time_and_tag() {
    assert_eq!(
        json(
            "SELECT mean(usage) FROM cpu WHERE host =~ /./ GROUP BY time(1m, 30s), host fill(none)"
        )
        .await,
        r#"{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","mean"],"values":[[1699999950,1.5]]},{"name":"cpu","tags":{"host":"b"},"columns":["time","mean"],"values":[[1699999950,1.5],[1700000010,3.5]]}]}"#
    );
}

#[tokio::test]
async fn spread_and_median() {
    assert_eq!(
        json("SELECT spread(usage), median(usage) FROM cpu").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","spread","median"],"values":[[0,9.5,2.5]]}]}"#
    );
}

#[tokio::test]
async fn count_distinct() {
    assert_eq!(
        json("SELECT count(distinct(usage)) FROM cpu").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","count"],"values":[[0,5]]}]}"#
    );
}

#[tokio::test]
async fn errors_are_reported_not_guessed() {
    let e = run("SELECT count(usage), usage FROM cpu")
        .await
        .unwrap_err();
    assert!(
        e.contains("mixing aggregate and non-aggregate columns is not supported"),
        "{e}"
    );
    // 1.x answers integral() beside other functions in rows of their own.
    let e = run("SELECT integral(usage), mean(usage) FROM cpu")
        .await
        .unwrap_err();
    assert!(
        e.contains("This feature is not implemented: integral()"),
        "{e}"
    );
    let e = run("SELECT mean(usage) FROM cpu WHERE time >= 0 GROUP BY time(1s)")
        .await
        .unwrap_err();
    assert!(e.contains("too many windows"), "{e}");
    let e = run("SELECT usage FROM cpu SLIMIT 1").await.unwrap_err();
    assert!(e.contains("SLIMIT or SOFFSET"), "{e}");
    let e = run("SELECT holt_winters(mean(usage), 1, 1) FROM cpu GROUP BY time(1m) fill(none)")
        .await
        .unwrap_err();
    assert!(e.contains("Invalid function 'holt_winters'"), "{e}");
}

// Windows of 1m between T0-20s (1699999980) and the bound; data sits in the first two
// windows (see group_by_time_windows_start_times).
const RANGE: &str = "time >= 1700000000s AND time < 1700000200s";

#[tokio::test]
async fn default_fill_is_null_and_count_zero() {
    assert_eq!(
        json(&format!(
            "SELECT count(usage), max(usage) FROM cpu WHERE {RANGE} GROUP BY time(1m)"
        ))
        .await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","count","max"],"values":[[1699999980,3,2.5],[1700000040,2,10],[1700000100,0,null],[1700000160,0,null]]}]}"#
    );
}

#[tokio::test]
async fn fill_with_a_number() {
    assert_eq!(
        json(&format!(
            "SELECT max(usage) FROM cpu WHERE {RANGE} GROUP BY time(1m) fill(-1)"
        ))
        .await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","max"],"values":[[1699999980,2.5],[1700000040,10],[1700000100,-1],[1700000160,-1]]}]}"#
    );
}

#[tokio::test]
async fn fill_previous_per_series() {
    assert_eq!(
        json(&format!("SELECT max(usage) FROM cpu WHERE {RANGE} AND host =~ /./ GROUP BY time(1m), host fill(previous)")).await,
        r#"{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","max"],"values":[[1699999980,2.5],[1700000040,2.5],[1700000100,2.5],[1700000160,2.5]]},{"name":"cpu","tags":{"host":"b"},"columns":["time","max"],"values":[[1699999980,1.5],[1700000040,3.5],[1700000100,3.5],[1700000160,3.5]]}]}"#
    );
}

#[tokio::test]
async fn without_lower_bound_windows_start_at_the_data() {
    // Upper bound defaults to now (T0 + 1h in these tests): 60 windows after the first.
    let series = run("SELECT count(usage) FROM cpu GROUP BY time(1m)")
        .await
        .unwrap();
    assert_eq!(series.len(), 1);
    let rows = &series[0].values;
    assert_eq!(rows[0], vec![Cell::Time(1_699_999_980 * S), Cell::Int(3)]);
    assert_eq!(rows[1], vec![Cell::Time(1_700_000_040 * S), Cell::Int(2)]);
    assert_eq!(
        rows.last().unwrap(),
        &vec![Cell::Time((1_700_003_580) * S), Cell::Int(0)]
    );
    assert_eq!(rows.len(), 61);
}

#[tokio::test]
async fn time_zones() {
    assert_eq!(
        json("SELECT usage FROM cpu WHERE time <= '2023-11-14 22:13:20' tz('UTC')").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[[1700000000,0.5]]}]}"#
    );
    // Hour windows start at local hours: India is 5h30 ahead, so at half past UTC hours.
    assert_eq!(
        json("SELECT count(usage) FROM cpu WHERE time >= 1700000000s AND time < 1700003600s GROUP BY time(1h) tz('Asia/Kolkata')").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","count"],"values":[[1699997400,5],[1700001000,0]]}]}"#
    );
    // 45-minute windows across a one-hour change of offset (Paris, 2025-03-30) would have
    // wall-clock windows that do not exist: refused. Daily and hourly ones are answered.
    let e = run("SELECT count(usage) FROM cpu WHERE time >= '2025-03-29T00:00:00Z' AND time < '2025-04-02T00:00:00Z' GROUP BY time(45m) tz('Europe/Paris')")
        .await
        .unwrap_err();
    assert!(
        e.contains("This feature is not implemented: GROUP BY time() windows no longer than a change of UTC offset in tz('Europe/Paris')"),
        "{e}"
    );
    let e = run("SELECT count(usage) FROM cpu WHERE time >= '2025-03-29T00:00:00Z' AND time < '2025-04-02T00:00:00Z' GROUP BY time(1d, 3h) tz('Europe/Paris')")
        .await
        .unwrap_err();
    assert!(
        e.contains("This feature is not implemented: GROUP BY time() with an offset across a change of UTC offset in tz('Europe/Paris')"),
        "{e}"
    );
    for q in [
        "SELECT count(usage) FROM cpu WHERE time >= '2025-04-01T00:00:00Z' AND time < '2025-04-05T00:00:00Z' GROUP BY time(1d, 3h) tz('Europe/Paris')",
        "SELECT count(usage) FROM cpu WHERE time >= '2025-03-29T00:00:00Z' AND time < '2025-04-02T00:00:00Z' GROUP BY time(1h) tz('Europe/Paris')",
        "SELECT count(usage) FROM cpu WHERE time >= '2025-03-29T00:00:00Z' AND time < '2025-04-02T00:00:00Z' GROUP BY time(1d) tz('Europe/Paris')",
        "SELECT count(usage) FROM cpu WHERE time >= '2025-04-01T00:00:00Z' AND time < '2025-04-05T00:00:00Z' GROUP BY time(45m) tz('Europe/Paris')",
    ] {
        assert!(run(q).await.is_ok(), "{q}");
    }
    // The zone travels with the plan, for the encoder; UTC needs nothing.
    for (q, zone) in [
        (
            "SELECT usage FROM cpu tz('Europe/Paris')",
            Some(gnomon_influxql::Tz::Europe__Paris),
        ),
        ("SELECT usage FROM cpu tz('UTC')", None),
        ("SELECT usage FROM cpu", None),
    ] {
        let Statement::Select(s) = parse_statement(q).unwrap() else {
            unreachable!()
        };
        let planned = plan_select(&s, database().as_ref() as &dyn SchemaProvider, T0)
            .await
            .unwrap();
        assert_eq!(planned.timezone, zone, "{q}");
    }
    let e = run("SELECT usage FROM cpu tz('Nowhere/Special')")
        .await
        .unwrap_err();
    assert!(
        e.contains("unable to find time zone Nowhere/Special"),
        "{e}"
    );
}

// host b's usage: 1.5 at T0+1s, 3.5 at T0+61s.
#[tokio::test]
async fn raw_transformations() {
    assert_eq!(
        json("SELECT difference(usage) FROM cpu WHERE host = 'b'").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","difference"],"values":[[1700000061,2]]}]}"#
    );
    assert_eq!(
        json("SELECT derivative(usage, 1m) FROM cpu WHERE host = 'b'").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","derivative"],"values":[[1700000061,2]]}]}"#
    );
    assert_eq!(
        json("SELECT derivative(usage) FROM cpu WHERE host = 'a'").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","derivative"],"values":[[1700000002,1]]}]}"#
    );
    assert_eq!(
        json("SELECT elapsed(usage, 1s) FROM cpu WHERE host = 'b'").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","elapsed"],"values":[[1700000061,60]]}]}"#
    );
    // usage in time order: 0.5, 1.5, 2.5, 3.5, 10.
    assert_eq!(
        json("SELECT cumulative_sum(usage) FROM cpu").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","cumulative_sum"],"values":[[1700000000,0.5],[1700000001,2],[1700000002,4.5],[1700000061,8],[1700000063,18]]}]}"#
    );
    assert_eq!(
        json("SELECT moving_average(usage, 3) FROM cpu").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","moving_average"],"values":[[1700000002,1.5],[1700000061,2.5],[1700000063,5.333333333333333]]}]}"#
    );
    // Decreases are dropped by the non_negative_ variants; series are separate.
    assert_eq!(
        json("SELECT non_negative_difference(usage) FROM cpu WHERE usage < 5 GROUP BY region")
            .await,
        r#"{"statement_id":0,"series":[{"name":"cpu","tags":{"region":"us"},"columns":["time","non_negative_difference"],"values":[[1700000001,1],[1700000061,2]]}]}"#
    );
}

// Windows of 1m from 1699999980: mean(usage) is 1.5 (3 points), then 6.75 (3.5 and 10), then
// empty windows up to the bound.
#[tokio::test]
async fn transformations_over_windows() {
    // Default fill: empty windows are skipped, not points.
    assert_eq!(
        json(&format!("SELECT difference(mean(usage)), derivative(mean(usage), 1s) FROM cpu WHERE {RANGE} GROUP BY time(1m)")).await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","difference","derivative"],"values":[[1700000040,5.25,0.0875]]}]}"#
    );
    // fill(0) makes them points.
    assert_eq!(
        json(&format!("SELECT non_negative_difference(max(usage)) FROM cpu WHERE {RANGE} GROUP BY time(1m) fill(0)")).await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","non_negative_difference"],"values":[[1700000040,7.5],[1700000160,0]]}]}"#
    );
    assert_eq!(
        json(&format!("SELECT cumulative_sum(count(usage)) FROM cpu WHERE {RANGE} GROUP BY time(1m), host fill(none)")).await,
        r#"{"statement_id":0,"series":[{"name":"cpu","tags":{"host":""},"columns":["time","cumulative_sum"],"values":[[1700000040,1]]},{"name":"cpu","tags":{"host":"a"},"columns":["time","cumulative_sum"],"values":[[1699999980,2]]},{"name":"cpu","tags":{"host":"b"},"columns":["time","cumulative_sum"],"values":[[1699999980,1],[1700000040,2]]}]}"#
    );
}

#[tokio::test]
async fn wildcards_inside_aggregates() {
    assert_eq!(
        json("SELECT count(*) FROM cpu").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","count_idle","count_usage"],"values":[[0,1,5]]}]}"#
    );
    assert_eq!(
        json("SELECT max(/us/) FROM cpu WHERE host = 'b'").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","max_usage"],"values":[[1700000061,3.5]]}]}"#
    );
    // Several selectors have no single point to take the time from.
    assert_eq!(
        json("SELECT max(*) FROM cpu").await,
        r#"{"statement_id":0,"series":[{"name":"cpu","columns":["time","max_idle","max_usage"],"values":[[0,7,10]]}]}"#
    );
}

/// Plans and runs `q`; any answer or error is fine, a panic is not.
fn plan_and_run(q: &str) {
    let Ok(Statement::Select(_)) = parse_statement(q) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = rt.block_on(run(q));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    /// Subqueries, fill(linear), integral() and tz() in random combinations plan and run
    /// without panicking (errors are answers too).
    #[test]
    fn new_features_never_panic(
        outer in proptest::sample::select(&[
            "*", "usage", "max(usage)", "mean(m)", "integral(usage)", "integral(m, 1m)",
            "derivative(m)", "count(free)", "top(usage, 2)", "last(m)",
        ][..]),
        inner in proptest::sample::select(&[
            "usage", "usage AS m", "mean(usage) AS m", "max(idle) AS m, usage",
            "integral(usage) AS m", "*", "free, usage AS m", "count(usage) AS m",
        ][..]),
        from in proptest::sample::select(&["cpu", "mem", "/.*/", "nosuch", "cpu, mem"][..]),
        inner_group in proptest::sample::select(&[
            "", "GROUP BY host", "GROUP BY time(1m)", "GROUP BY time(30s), host fill(linear)",
            "GROUP BY time(1m) fill(0)", "GROUP BY *",
        ][..]),
        outer_where in proptest::sample::select(&[
            "", "WHERE time >= 1700000000s AND time < 1700000400s", "WHERE host = 'a'",
            "WHERE m > 1", "WHERE time < 1700000400s",
        ][..]),
        outer_group in proptest::sample::select(&[
            "", "GROUP BY host", "GROUP BY time(1m)", "GROUP BY time(1h) fill(linear)",
            "GROUP BY time(2m), region fill(previous)",
        ][..]),
        tail in proptest::sample::select(&[
            "", "tz('Asia/Kolkata')", "tz('America/St_Johns')", "LIMIT 2", "ORDER BY time DESC",
        ][..]),
        nest in proptest::bool::ANY,
    ) {
        let source = if nest {
            format!("(SELECT {inner} FROM {from} {inner_group})")
        } else {
            from.to_string()
        };
        plan_and_run(&format!("SELECT {outer} FROM {source} {outer_where} {outer_group} {tail}"));
    }
}
