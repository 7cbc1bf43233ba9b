//! The two common time-series query shapes give the answers of their plain SQL definitions,
//! whichever sources hold the rows (Parquet files, the buffer, both, overlapping ones):
//!
//! * A. bucket aggregates pinned to tags: `SELECT date_bin(..) AS b, <aggs> FROM t WHERE
//!   <tag pins> AND <time bounds> GROUP BY 1 ORDER BY 1 [DESC] [LIMIT k]`;
//! * B. filtered scans pinned to tags: `SELECT * | cols FROM t WHERE <field comparison> AND
//!   <tag pins> AND <time bounds> ORDER BY time`.
//!
//! Every expected answer is computed here, in Rust, from the rows written (last write wins
//! per series, time and column). `direct_path_serves_the_common_shapes` also checks that the
//! direct executor (which computes these shapes from the sources without DataFusion's
//! physical plan) served them.

mod common;

use std::collections::BTreeMap;

use common::{chrono_like, Server};
use serde_json::Value;

/// 2023-11-14T22:00:00Z: the first row's time (s).
const T0: i64 = 1_699_999_200;
const HOUR: i64 = 3600;
/// Seconds between two rows of a series.
const STEP: i64 = 20;
const HOSTS: [&str; 4] = ["host_0", "host_1", "host_2", "host_3"];
const DCS: [&str; 2] = ["dc_a", "dc_b"];

// ------------------------------------------------------------------------------------------
// the rows and what the table holds
// ------------------------------------------------------------------------------------------

/// The field values of one line (a missing field is `None`) or of one stored row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Fields {
    u: Option<f64>,
    n: Option<i64>,
    extra: Option<f64>,
    k: Option<i64>,
}

/// One line written: series (host, dc), time (s), fields.
#[derive(Clone, Debug)]
struct Write {
    host: &'static str,
    dc: &'static str,
    t: i64,
    f: Fields,
}

fn line(w: &Write) -> String {
    let mut fields = Vec::new();
    if let Some(u) = w.f.u {
        fields.push(format!("u={u}"));
    }
    if let Some(n) = w.f.n {
        fields.push(format!("n={n}i"));
    }
    if let Some(e) = w.f.extra {
        fields.push(format!("extra={e}"));
    }
    if let Some(k) = w.f.k {
        fields.push(format!("k={k}i"));
    }
    assert!(!fields.is_empty(), "a line needs a field: {w:?}");
    format!(
        "cpu,host={},dc={} {} {}",
        w.host,
        w.dc,
        fields.join(","),
        w.t
    )
}

/// The table's rows by (time, host, dc): per column, the last value written. The key order
/// is the order of `ORDER BY time` (no two series share a time, see [`generated`]).
#[derive(Clone, Default)]
struct Truth {
    rows: BTreeMap<(i64, &'static str, &'static str), Fields>,
}

impl Truth {
    fn apply(&mut self, writes: &[Write]) {
        for w in writes {
            let row = self.rows.entry((w.t, w.host, w.dc)).or_default();
            // A line sets the fields it names and leaves the others as they were.
            if w.f.u.is_some() {
                row.u = w.f.u;
            }
            if w.f.n.is_some() {
                row.n = w.f.n;
            }
            if w.f.extra.is_some() {
                row.extra = w.f.extra;
            }
            if w.f.k.is_some() {
                row.k = w.f.k;
            }
        }
    }
}

fn series() -> impl Iterator<Item = (usize, &'static str, &'static str)> {
    HOSTS
        .iter()
        .flat_map(|h| DCS.iter().map(move |d| (*h, *d)))
        .enumerate()
        .map(|(i, (h, d))| (i, h, d))
}

/// 8 series × 3 hours at 20 s. Series `i` writes at offset `i` s inside each step, so no two
/// series share a time (late writes use offsets 10..18), except that the last series writes
/// at offset 8 one step in 16 at random, so files hold irregular times among the even ones.
/// `n` is missing at random and for 10-minute stretches of `host_1`; `extra` only exists
/// from the second hour on.
fn generated() -> Vec<Write> {
    let mut state = 11u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as i64
    };
    let mut out = Vec::new();
    for step in 0..(3 * HOUR / STEP) {
        for (i, host, dc) in series() {
            let r = next();
            let jitter = (i == 7 && (r >> 8) % 16 == 0) as i64;
            let t = T0 + step * STEP + i as i64 + jitter;
            let quiet = host == "host_1"
                && ((T0 + 1800..T0 + 2400).contains(&t) || (T0 + 9000..T0 + 9600).contains(&t));
            out.push(Write {
                host,
                dc,
                t,
                f: Fields {
                    u: Some((r % 1000) as f64 / 10.0),
                    n: (!quiet && r % 7 != 0).then_some((r / 1000) % 120 - 20),
                    extra: (t >= T0 + HOUR && r % 5 != 0).then(|| ((r / 13) % 400) as f64 / 4.0),
                    k: None,
                },
            });
        }
    }
    out
}

fn write(server: &Server, db: &str, writes: &[Write], truth: &mut Truth) {
    let body: Vec<String> = writes.iter().map(line).collect();
    server.write_ok(db, body.join("\n"), "precision=s");
    truth.apply(writes);
}

fn snapshot(server: &Server) {
    server
        .post("/api/v3/gnomon/snapshot", "")
        .expect_status(200);
}

/// The first hour persisted (without `extra`), then the second (the column appears), the
/// third left in the buffer.
fn setup(args: &[&str]) -> (Server, &'static str, Truth) {
    let server = Server::start(args);
    let db = "direct";
    let mut truth = Truth::default();
    let all = generated();
    for hour in 0..3 {
        let part: Vec<Write> = all
            .iter()
            .filter(|w| (T0 + hour * HOUR..T0 + (hour + 1) * HOUR).contains(&w.t))
            .cloned()
            .collect();
        write(&server, db, &part, &mut truth);
        if hour < 2 {
            snapshot(&server);
        }
    }
    let files = server.sql(db, "SELECT count(*) AS c FROM system.parquet_files");
    assert!(
        files[0]["c"].as_i64().unwrap() >= 2,
        "two hours are persisted: {files:?}"
    );
    (server, db, truth)
}

// ------------------------------------------------------------------------------------------
// query pieces: windows, pins, fields
// ------------------------------------------------------------------------------------------

/// Time bounds: each side absent, inclusive or exclusive (seconds).
#[derive(Clone, Copy, Debug)]
struct Window {
    lo: Option<(i64, bool)>,
    hi: Option<(i64, bool)>,
}

/// `[lo, hi)`.
fn w(lo: i64, hi: i64) -> Window {
    Window {
        lo: Some((lo, true)),
        hi: Some((hi, false)),
    }
}

/// `(lo, hi]`.
fn w_open(lo: i64, hi: i64) -> Window {
    Window {
        lo: Some((lo, false)),
        hi: Some((hi, true)),
    }
}

impl Window {
    fn sql(&self) -> String {
        let mut parts = Vec::new();
        if let Some((t, incl)) = self.lo {
            let op = if incl { ">=" } else { ">" };
            parts.push(format!("time {op} '{}Z'", chrono_like(t)));
        }
        if let Some((t, incl)) = self.hi {
            let op = if incl { "<=" } else { "<" };
            parts.push(format!("time {op} '{}Z'", chrono_like(t)));
        }
        parts.join(" AND ")
    }

    fn contains(&self, t: i64) -> bool {
        let lo = self
            .lo
            .is_none_or(|(b, incl)| if incl { t >= b } else { t > b });
        let hi = self
            .hi
            .is_none_or(|(b, incl)| if incl { t <= b } else { t < b });
        lo && hi
    }
}

/// How a list of values is written in SQL.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// `tag = 'a'` (one value).
    Eq,
    /// `tag IN ('a', 'b')`.
    In,
    /// `(tag = 'a' OR tag = 'b')`.
    Or,
}

fn pin_sql(tag: &str, values: &[&str], style: Style) -> String {
    match style {
        Style::Eq => {
            assert_eq!(values.len(), 1);
            format!("{tag} = '{}'", values[0])
        }
        Style::In => {
            let list: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
            format!("{tag} IN ({})", list.join(", "))
        }
        Style::Or => {
            let list: Vec<String> = values.iter().map(|v| format!("{tag} = '{v}'")).collect();
            format!("({})", list.join(" OR "))
        }
    }
}

/// Tag pins: hosts, and optionally data centres.
#[derive(Clone, Debug)]
struct Pin {
    hosts: Vec<&'static str>,
    host_style: Style,
    dcs: Option<(Vec<&'static str>, Style)>,
}

fn host(h: &'static str) -> Pin {
    Pin {
        hosts: vec![h],
        host_style: Style::Eq,
        dcs: None,
    }
}

fn hosts(hs: &[&'static str], style: Style) -> Pin {
    Pin {
        hosts: hs.to_vec(),
        host_style: style,
        dcs: None,
    }
}

impl Pin {
    fn and_dc(mut self, dcs: &[&'static str], style: Style) -> Pin {
        self.dcs = Some((dcs.to_vec(), style));
        self
    }

    fn sql(&self) -> String {
        let mut s = pin_sql("host", &self.hosts, self.host_style);
        if let Some((dcs, style)) = &self.dcs {
            s.push_str(" AND ");
            s.push_str(&pin_sql("dc", dcs, *style));
        }
        s
    }

    fn keeps(&self, host: &str, dc: &str) -> bool {
        self.hosts.contains(&host) && self.dcs.as_ref().is_none_or(|(dcs, _)| dcs.contains(&dc))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    U,
    N,
    Extra,
    K,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::U => "u",
            Field::N => "n",
            Field::Extra => "extra",
            Field::K => "k",
        }
    }

    fn is_int(self) -> bool {
        matches!(self, Field::N | Field::K)
    }

    /// The value as f64 (exact for the small integers written).
    fn get(self, f: &Fields) -> Option<f64> {
        match self {
            Field::U => f.u,
            Field::N => f.n.map(|n| n as f64),
            Field::Extra => f.extra,
            Field::K => f.k.map(|k| k as f64),
        }
    }

    fn cell(self, v: f64) -> Cell {
        if self.is_int() {
            Cell::Int(v as i64)
        } else {
            Cell::Float(v)
        }
    }
}

// ------------------------------------------------------------------------------------------
// answers: a canonical form for comparing JSON rows with the oracle's
// ------------------------------------------------------------------------------------------

/// An expected value; nulls are simply left out of a row (the JSON format omits them).
#[derive(Clone, Debug)]
enum Cell {
    Int(i64),
    Float(f64),
    Str(String),
}

fn round(v: f64) -> f64 {
    let r = (v * 1e6).round() / 1e6;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

fn cell_text(c: &Cell) -> String {
    match c {
        Cell::Int(i) => format!("{i}"),
        Cell::Float(f) => format!("{:.6}", round(*f)),
        Cell::Str(s) => format!("{s:?}"),
    }
}

/// A JSON row as column → text, nulls left out; integers stay integers (an integer where a
/// float is expected, or the reverse, shows as a difference).
fn canon(row: &Value) -> BTreeMap<String, String> {
    let obj = row
        .as_object()
        .unwrap_or_else(|| panic!("row is not an object: {row}"));
    obj.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let text = match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => format!("{n}"),
                Value::Number(n) => format!("{:.6}", round(n.as_f64().unwrap())),
                Value::String(s) => format!("{s:?}"),
                other => panic!("unexpected JSON value {other} in {row}"),
            };
            (k.clone(), text)
        })
        .collect()
}

type Expected = Vec<BTreeMap<String, String>>;

fn expected_row(cells: Vec<(&str, Option<Cell>)>) -> BTreeMap<String, String> {
    cells
        .into_iter()
        .filter_map(|(k, c)| c.map(|c| (k.to_string(), cell_text(&c))))
        .collect()
}

#[track_caller]
fn check(server: &Server, db: &str, sql: &str, want: &Expected) {
    let got: Expected = server.sql(db, sql).iter().map(canon).collect();
    if got != *want {
        let first = got
            .iter()
            .zip(want)
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{sql}\n{} rows, {} expected; first difference at row {first}:\n  got  {:?}\n  want {:?}",
            got.len(),
            want.len(),
            got.get(first),
            want.get(first)
        );
    }
}

// ------------------------------------------------------------------------------------------
// shape A: bucket aggregates
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Agg {
    Max(Field),
    Min(Field),
    Sum(Field),
    Count(Field),
    CountStar,
    Avg(Field),
}

impl Agg {
    fn sql(self) -> String {
        match self {
            Agg::Max(f) => format!("max({})", f.name()),
            Agg::Min(f) => format!("min({})", f.name()),
            Agg::Sum(f) => format!("sum({})", f.name()),
            Agg::Count(f) => format!("count({})", f.name()),
            Agg::CountStar => "count(*)".to_string(),
            Agg::Avg(f) => format!("avg({})", f.name()),
        }
    }

    /// The aggregate over the rows of one bucket (nulls skipped; null when no value).
    fn eval(self, rows: &[&Fields]) -> Option<Cell> {
        let values = |f: Field| -> Vec<f64> { rows.iter().filter_map(|r| f.get(r)).collect() };
        match self {
            Agg::Max(f) => values(f).into_iter().reduce(f64::max).map(|v| f.cell(v)),
            Agg::Min(f) => values(f).into_iter().reduce(f64::min).map(|v| f.cell(v)),
            Agg::Sum(f) => values(f)
                .into_iter()
                .reduce(|a, b| a + b)
                .map(|v| f.cell(v)),
            Agg::Count(f) => Some(Cell::Int(values(f).len() as i64)),
            Agg::CountStar => Some(Cell::Int(rows.len() as i64)),
            Agg::Avg(f) => {
                let v = values(f);
                (!v.is_empty()).then(|| Cell::Float(v.iter().sum::<f64>() / v.len() as f64))
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Item {
    Bucket,
    Agg(Agg),
}

/// A shape-A query: the select list (alias, item), in order.
/// A query of the tests and its definition's answer.
trait Query {
    fn sql(&self) -> String;
    fn expected(&self, truth: &Truth) -> Expected;

    /// Runs the query and compares its answer with the definition's; the rows expected.
    #[track_caller]
    fn check(&self, server: &Server, db: &str, truth: &Truth) -> usize {
        let want = self.expected(truth);
        check(server, db, &self.sql(), &want);
        want.len()
    }
}

#[derive(Clone, Debug)]
struct Buckets {
    /// The interval as SQL text and in seconds.
    every: (&'static str, i64),
    origin: Option<i64>,
    items: Vec<(&'static str, Item)>,
    pin: Pin,
    window: Window,
    desc: bool,
    limit: Option<usize>,
    /// `GROUP BY <alias>` instead of the bucket's position.
    by_alias: bool,
}

/// The usual select list: the bucket first, then every aggregate of `f`.
fn all_aggs(f: Field) -> Vec<(&'static str, Item)> {
    vec![
        ("b", Item::Bucket),
        ("mx", Item::Agg(Agg::Max(f))),
        ("mn", Item::Agg(Agg::Min(f))),
        ("sm", Item::Agg(Agg::Sum(f))),
        ("ct", Item::Agg(Agg::Count(f))),
        ("rows", Item::Agg(Agg::CountStar)),
        ("av", Item::Agg(Agg::Avg(f))),
    ]
}

fn buckets(every: (&'static str, i64), f: Field, pin: Pin, window: Window) -> Buckets {
    Buckets {
        every,
        origin: None,
        items: all_aggs(f),
        pin,
        window,
        desc: false,
        limit: None,
        by_alias: false,
    }
}

const MINUTE: (&str, i64) = ("1 minute", 60);
const SEVEN: (&str, i64) = ("7 minutes", 420);
const ONE_HOUR: (&str, i64) = ("1 hour", 3600);

impl Query for Buckets {
    fn sql(&self) -> String {
        let bucket = match self.origin {
            None => format!("date_bin(INTERVAL '{}', time)", self.every.0),
            Some(o) => format!(
                "date_bin(INTERVAL '{}', time, '{}Z')",
                self.every.0,
                chrono_like(o)
            ),
        };
        let mut key = String::new();
        let select: Vec<String> = self
            .items
            .iter()
            .enumerate()
            .map(|(i, (alias, item))| {
                let expr = match item {
                    Item::Bucket => {
                        key = if self.by_alias {
                            format!("\"{alias}\"")
                        } else {
                            format!("{}", i + 1)
                        };
                        bucket.clone()
                    }
                    Item::Agg(a) => a.sql(),
                };
                format!("{expr} AS \"{alias}\"")
            })
            .collect();
        let mut sql = format!(
            "SELECT {} FROM cpu WHERE {}",
            select.join(", "),
            self.pin.sql()
        );
        let window = self.window.sql();
        if !window.is_empty() {
            sql.push_str(&format!(" AND {window}"));
        }
        sql.push_str(&format!(" GROUP BY {key} ORDER BY {key}"));
        if self.desc {
            sql.push_str(" DESC");
        }
        if let Some(k) = self.limit {
            sql.push_str(&format!(" LIMIT {k}"));
        }
        sql
    }

    fn expected(&self, truth: &Truth) -> Expected {
        let origin = self.origin.unwrap_or(0);
        let every = self.every.1;
        let mut groups: BTreeMap<i64, Vec<&Fields>> = BTreeMap::new();
        for ((t, host, dc), f) in &truth.rows {
            if self.pin.keeps(host, dc) && self.window.contains(*t) {
                let b = origin + (t - origin).div_euclid(every) * every;
                groups.entry(b).or_default().push(f);
            }
        }
        let mut out: Vec<(&i64, &Vec<&Fields>)> = groups.iter().collect();
        if self.desc {
            out.reverse();
        }
        out.truncate(self.limit.unwrap_or(usize::MAX));
        out.into_iter()
            .map(|(b, rows)| {
                expected_row(
                    self.items
                        .iter()
                        .map(|(alias, item)| {
                            let cell = match item {
                                Item::Bucket => Some(Cell::Str(chrono_like(*b))),
                                Item::Agg(a) => a.eval(rows),
                            };
                            (*alias, cell)
                        })
                        .collect(),
                )
            })
            .collect()
    }
}

// ------------------------------------------------------------------------------------------
// shape B: filtered scans
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

/// A shape-B query: `cols` `None` is `SELECT *`.
#[derive(Clone, Debug)]
struct Scan {
    cols: Option<Vec<&'static str>>,
    field: Field,
    op: Op,
    /// The literal as written in SQL (`90.0`, `50`) and its value.
    value: (&'static str, f64),
    pin: Pin,
    window: Window,
}

fn scan(field: Field, op: Op, value: (&'static str, f64), pin: Pin, window: Window) -> Scan {
    Scan {
        cols: None,
        field,
        op,
        value,
        pin,
        window,
    }
}

impl Query for Scan {
    fn sql(&self) -> String {
        let cols = self.cols.as_ref().map_or("*".to_string(), |c| c.join(", "));
        let op = match self.op {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        };
        let mut sql = format!(
            "SELECT {cols} FROM cpu WHERE {} {op} {} AND {}",
            self.field.name(),
            self.value.0,
            self.pin.sql()
        );
        let window = self.window.sql();
        if !window.is_empty() {
            sql.push_str(&format!(" AND {window}"));
        }
        sql.push_str(" ORDER BY time");
        sql
    }

    fn expected(&self, truth: &Truth) -> Expected {
        let x = self.value.1;
        truth
            .rows
            .iter()
            .filter(|((t, host, dc), f)| {
                self.pin.keeps(host, dc)
                    && self.window.contains(*t)
                    && self.field.get(f).is_some_and(|v| match self.op {
                        Op::Gt => v > x,
                        Op::Ge => v >= x,
                        Op::Lt => v < x,
                        Op::Le => v <= x,
                    })
            })
            .map(|((t, host, dc), f)| {
                let all = [
                    ("dc", Some(Cell::Str(dc.to_string()))),
                    ("extra", f.extra.map(Cell::Float)),
                    ("host", Some(Cell::Str(host.to_string()))),
                    ("k", f.k.map(Cell::Int)),
                    ("n", f.n.map(Cell::Int)),
                    ("time", Some(Cell::Str(chrono_like(*t)))),
                    ("u", f.u.map(Cell::Float)),
                ];
                expected_row(
                    all.into_iter()
                        .filter(|(c, _)| self.cols.as_ref().is_none_or(|cols| cols.contains(c)))
                        .collect(),
                )
            })
            .collect()
    }
}

// ------------------------------------------------------------------------------------------
// windows of the setup
// ------------------------------------------------------------------------------------------

/// Inside the first hour: one snapshot's files.
fn in_files() -> Window {
    w(T0 + 610, T0 + 3000)
}

/// Across the first two hours: files of two snapshots.
fn across_files() -> Window {
    w_open(T0 + 3000, T0 + 5000)
}

/// Inside the third hour: the buffer only.
fn in_buffer() -> Window {
    w(T0 + 2 * HOUR + 250, T0 + 2 * HOUR + 3100)
}

/// From the first hour's files into the buffer.
fn spanning() -> Window {
    w(T0 + 1000, T0 + 2 * HOUR + 1500)
}

/// After every row.
fn empty() -> Window {
    w(T0 + 5 * HOUR, T0 + 6 * HOUR)
}

fn windows() -> [Window; 4] {
    [in_files(), across_files(), in_buffer(), spanning()]
}

// ------------------------------------------------------------------------------------------
// the tests
// ------------------------------------------------------------------------------------------

/// Shape A over files only, the buffer only and both; 1 minute, 7 minutes (buckets not
/// aligned to the window) and 1 hour; an explicit origin; DESC with LIMIT; empty answers;
/// nulls; integer and float fields; another select order and aliases.
#[test]
fn bucket_aggregates_match_the_definition() {
    let (server, db, truth) = setup(&[]);
    let mut answered = 0;

    for window in windows() {
        for every in [MINUTE, SEVEN, ONE_HOUR] {
            for f in [Field::U, Field::N] {
                answered += buckets(every, f, host("host_2"), window).check(&server, db, &truth);
            }
        }
        // Several series merged into each bucket: IN, OR, two tags.
        for pin in [
            hosts(&["host_0", "host_3"], Style::In),
            hosts(&["host_1", "host_2"], Style::Or),
            host("host_3").and_dc(&["dc_b"], Style::Eq),
            hosts(&["host_0", "host_1", "nope"], Style::In).and_dc(&["dc_a", "dc_b"], Style::Or),
        ] {
            answered += buckets(SEVEN, Field::U, pin, window).check(&server, db, &truth);
        }
    }

    // Every kind of bound, and one side only.
    for window in [
        w_open(T0 + 900, T0 + 2 * HOUR + 900),
        Window {
            lo: Some((T0 + 2 * HOUR + 2000, false)),
            hi: None,
        },
        Window {
            lo: None,
            hi: Some((T0 + 1250, true)),
        },
    ] {
        answered += buckets(MINUTE, Field::N, host("host_0"), window).check(&server, db, &truth);
    }

    // An explicit origin: not on a minute, and after every row (buckets before it).
    for origin in [T0 + 3 * 60 + 30, T0 + 10 * HOUR + 17] {
        for window in windows() {
            let q = Buckets {
                origin: Some(origin),
                ..buckets(SEVEN, Field::U, host("host_1"), window)
            };
            answered += q.check(&server, db, &truth);
        }
    }

    // Newest buckets first, limited; a limit larger than the answer.
    for (window, limit) in [
        (spanning(), 5),
        (in_buffer(), 3),
        (in_files(), 1),
        (across_files(), 1000),
    ] {
        let q = Buckets {
            desc: true,
            limit: Some(limit),
            ..buckets(
                MINUTE,
                Field::U,
                hosts(&["host_2", "host_3"], Style::Or),
                window,
            )
        };
        let n = q.check(&server, db, &truth);
        assert!(n > 0 && n <= limit, "{}", q.sql());
        answered += n;
    }
    let q = Buckets {
        desc: true,
        ..buckets(ONE_HOUR, Field::N, host("host_2"), spanning())
    };
    answered += q.check(&server, db, &truth);

    // Empty answers: a window after the data, a window whose start is after its end, a
    // pinned value that does not exist (alone and beside one that does not match the other
    // tag).
    for (pin, window) in [
        (host("host_1"), empty()),
        (host("host_1"), w(T0 + 2000, T0 + 1000)),
        (host("nope"), spanning()),
        (host("host_1").and_dc(&["dc_z"], Style::Eq), spanning()),
    ] {
        let q = buckets(MINUTE, Field::U, pin, window);
        assert_eq!(q.check(&server, db, &truth), 0, "{}", q.sql());
    }

    // Buckets where `n` has no value (host_1's quiet stretches, in a file and in the
    // buffer): max/min/sum/avg null, count 0, count(*) not.
    for window in [w(T0 + 1700, T0 + 2500), w(T0 + 8900, T0 + 9700)] {
        let q = buckets(
            MINUTE,
            Field::N,
            host("host_1").and_dc(&["dc_a"], Style::Eq),
            window,
        );
        let want = q.expected(&truth);
        assert!(
            want.iter()
                .any(|r| r.get("ct").map(String::as_str) == Some("0")
                    && !r.contains_key("mx")
                    && !r.contains_key("av")),
            "the window has buckets without values"
        );
        answered += q.check(&server, db, &truth);
    }

    // Another select order, aliases, the bucket grouped by its alias.
    for window in windows() {
        let q = Buckets {
            items: vec![
                ("Rows", Item::Agg(Agg::CountStar)),
                ("mean n", Item::Agg(Agg::Avg(Field::N))),
                ("hour", Item::Bucket),
                ("top", Item::Agg(Agg::Max(Field::U))),
            ],
            ..buckets(
                ONE_HOUR,
                Field::U,
                hosts(&["host_0", "host_2"], Style::In),
                window,
            )
        };
        answered += q.check(&server, db, &truth);
        let q = Buckets {
            items: vec![
                ("peak", Item::Agg(Agg::Max(Field::U))),
                ("total", Item::Agg(Agg::Sum(Field::N))),
                ("start", Item::Bucket),
                ("low", Item::Agg(Agg::Min(Field::N))),
                ("c", Item::Agg(Agg::Count(Field::N))),
            ],
            origin: Some(T0 + 45),
            desc: true,
            limit: Some(4),
            by_alias: true,
            ..buckets(SEVEN, Field::U, host("host_3"), window)
        };
        answered += q.check(&server, db, &truth);
    }
    assert!(answered > 500, "the queries returned rows: {answered}");
}

/// Shape B: `SELECT *` and projections with a float or integer comparison (null rows are
/// not returned), one host or several (rows of several series ordered by time).
#[test]
fn filtered_scans_match_the_definition() {
    let (server, db, truth) = setup(&[]);
    let mut answered = 0;
    for window in windows() {
        for pin in [
            host("host_1"),
            hosts(&["host_0", "host_3"], Style::In),
            hosts(&["host_2", "host_1"], Style::Or),
            host("host_2").and_dc(&["dc_a"], Style::Eq),
        ] {
            answered += scan(Field::U, Op::Gt, ("90.0", 90.0), pin.clone(), window)
                .check(&server, db, &truth);
            // `n` is null in host_1's quiet stretches and at random.
            answered += scan(Field::N, Op::Ge, ("50", 50.0), pin.clone(), window)
                .check(&server, db, &truth);
            let q = Scan {
                cols: Some(vec!["time", "host", "n"]),
                ..scan(Field::N, Op::Lt, ("0", 0.0), pin.clone(), window)
            };
            answered += q.check(&server, db, &truth);
            let q = Scan {
                cols: Some(vec!["u", "time", "dc"]),
                ..scan(Field::U, Op::Le, ("2.5", 2.5), pin, window)
            };
            answered += q.check(&server, db, &truth);
        }
    }
    // The comparison's own value is on the boundary of some rows (u = 90.0 exists).
    assert!(truth.rows.values().any(|f| f.u == Some(90.0)));
    answered += scan(
        Field::U,
        Op::Ge,
        ("90.0", 90.0),
        hosts(&HOSTS, Style::In),
        Window { lo: None, hi: None },
    )
    .check(&server, db, &truth);
    // Every kind of bound.
    answered += scan(
        Field::U,
        Op::Gt,
        ("80", 80.0),
        host("host_3"),
        w_open(T0 + 1000 + 6, T0 + 2 * HOUR + 506),
    )
    .check(&server, db, &truth);
    // Empty answers.
    for (pin, window) in [
        (host("host_1"), empty()),
        (host("nope"), spanning()),
        (host("host_1"), w(T0 + 3000, T0 + 2000)),
    ] {
        let q = scan(Field::U, Op::Gt, ("90.0", 90.0), pin, window);
        assert_eq!(q.check(&server, db, &truth), 0, "{}", q.sql());
    }
    assert!(answered > 500, "the queries returned rows: {answered}");
}

/// Late rows into a time range already persisted (same series and times with new values,
/// some naming only some fields, and new times) and into the buffer: the newest value per
/// series, time and column wins in both shapes, whether the overlap is a file and the
/// buffer or two files.
#[test]
fn late_writes_win_in_both_shapes() {
    let (server, db, mut truth) = setup(&[]);
    let late = |pass: i64| -> Vec<Write> {
        let mut out = Vec::new();
        for (i, host, dc) in series().filter(|(i, _, _)| i % 3 != 1) {
            for (k, range) in [
                T0 + 1200..T0 + 1500,
                T0 + HOUR - 100..T0 + HOUR + 200,
                T0 + 2 * HOUR + 600..T0 + 2 * HOUR + 700,
            ]
            .into_iter()
            .enumerate()
            {
                for step in (range.start - T0) / STEP..(range.end - T0) / STEP {
                    let t = T0 + step * STEP + i as i64;
                    let v = (step * 7 + i as i64 * 3 + pass * 11 + k as i64) % 40;
                    // Existing times: a new u always; n and extra only sometimes (the
                    // others keep their stored values).
                    out.push(Write {
                        host,
                        dc,
                        t,
                        f: Fields {
                            u: Some(80.0 + v as f64 / 2.0),
                            n: (v % 3 == 0).then_some(60 + v),
                            extra: (v % 4 == 1).then_some(v as f64 / 8.0),
                            k: None,
                        },
                    });
                    // A new time (offset 10.. : no other series' time) with `n` alone.
                    if v % 2 == 0 {
                        out.push(Write {
                            host,
                            dc,
                            t: t + 10,
                            f: Fields {
                                n: Some(v - 5),
                                ..Fields::default()
                            },
                        });
                    }
                    // An existing time where only `n` changes.
                    if v % 5 == 2 {
                        out.push(Write {
                            host,
                            dc,
                            t: t + STEP,
                            f: Fields {
                                n: Some(-v),
                                ..Fields::default()
                            },
                        });
                    }
                }
            }
        }
        out
    };
    let queries = |truth: &Truth| {
        let mut answered = 0;
        for window in [
            w(T0 + 1100, T0 + 1600),
            w(T0 + HOUR - 300, T0 + HOUR + 300),
            w(T0 + 2 * HOUR + 500, T0 + 2 * HOUR + 800),
            spanning(),
        ] {
            for pin in [
                host("host_0"),
                hosts(&["host_0", "host_2", "host_3"], Style::In),
                host("host_2").and_dc(&["dc_b"], Style::Eq),
            ] {
                for f in [Field::U, Field::N, Field::Extra] {
                    answered += buckets(MINUTE, f, pin.clone(), window).check(&server, db, truth);
                }
                answered += buckets(SEVEN, Field::N, pin.clone(), window).check(&server, db, truth);
                answered += scan(Field::U, Op::Ge, ("90.0", 90.0), pin.clone(), window)
                    .check(&server, db, truth);
                answered += scan(Field::N, Op::Ge, ("50", 50.0), pin.clone(), window)
                    .check(&server, db, truth);
                answered += Scan {
                    cols: Some(vec!["time", "n", "u"]),
                    ..scan(Field::N, Op::Lt, ("0", 0.0), pin, window)
                }
                .check(&server, db, truth);
            }
        }
        answered
    };

    let before = truth.clone();
    // A file and the buffer overlap.
    write(&server, db, &late(0), &mut truth);
    assert!(truth.rows.len() > before.rows.len(), "new times were added");
    assert!(
        before
            .rows
            .iter()
            .any(|(key, f)| truth.rows[key].u != f.u && truth.rows[key].n == f.n),
        "some rows changed u alone"
    );
    assert!(queries(&truth) > 100);
    // Two files overlap.
    snapshot(&server);
    assert!(queries(&truth) > 100);
    // Two files and the buffer overlap.
    write(&server, db, &late(1), &mut truth);
    assert!(queries(&truth) > 100);
}

/// A column that older files do not have (`extra`, from the second hour on) reads as null
/// there; a column first written into rows already persisted (`k`, late writes into a file's
/// range and into the buffer) is merged into those rows.
#[test]
fn a_column_added_later_reads_in_both_shapes() {
    let (server, db, mut truth) = setup(&[]);
    // `k` is queried only once it exists (an unknown column is a planning error).
    let queries = |truth: &Truth, with_k: bool| {
        let fields: &[Field] = if with_k {
            &[Field::Extra, Field::K]
        } else {
            &[Field::Extra]
        };
        let mut answered = 0;
        for window in windows() {
            for pin in [host("host_1"), hosts(&["host_2", "host_3"], Style::Or)] {
                for &f in fields {
                    for every in [SEVEN, ONE_HOUR] {
                        answered +=
                            buckets(every, f, pin.clone(), window).check(&server, db, truth);
                    }
                }
                answered += scan(Field::Extra, Op::Gt, ("90.0", 90.0), pin.clone(), window)
                    .check(&server, db, truth);
                if with_k {
                    answered += scan(Field::K, Op::Ge, ("3", 3.0), pin.clone(), window)
                        .check(&server, db, truth);
                }
                answered += Scan {
                    cols: Some(if with_k {
                        vec!["time", "extra", "k"]
                    } else {
                        vec!["time", "extra", "u"]
                    }),
                    ..scan(Field::U, Op::Gt, ("95.0", 95.0), pin, window)
                }
                .check(&server, db, truth);
            }
        }
        answered
    };
    // The first hour's buckets have `extra` count 0.
    let first_hour = buckets(ONE_HOUR, Field::Extra, host("host_1"), spanning()).expected(&truth);
    assert_eq!(first_hour[0].get("ct").map(String::as_str), Some("0"));
    assert!(queries(&truth, false) > 50);

    // `k` set on existing rows of host_2 and host_3 in the first hour (a file without the
    // column) and in the third (the buffer).
    let k_rows: Vec<Write> = truth
        .rows
        .keys()
        .filter(|(t, h, _)| {
            (*h == "host_2" || *h == "host_3")
                && ((T0 + 1500..T0 + 2700).contains(t) || (T0 + 2 * HOUR + 300..).contains(t))
                && t % 3 != 0
        })
        .map(|(t, h, d)| Write {
            host: h,
            dc: d,
            t: *t,
            f: Fields {
                k: Some(t % 11),
                ..Fields::default()
            },
        })
        .collect();
    write(&server, db, &k_rows, &mut truth);
    assert!(queries(&truth, true) > 100);
    snapshot(&server);
    assert!(queries(&truth, true) > 100);
}

/// Each shape run many times with other pinned values and windows: the plan cache serves
/// the repeats (from the second sighting of a shape) and every answer stays right.
#[test]
fn repeated_shapes_stay_right() {
    let (server, db, truth) = setup(&["--log-filter", "info,gnomon_query=debug"]);
    let windows = [
        in_files(),
        in_buffer(),
        spanning(),
        across_files(),
        empty(),
        w(T0 + 2000, T0 + 1000),
    ];
    for run in 0..8 {
        let window = windows[run % windows.len()];
        let a = HOSTS[run % 4];
        let b = HOSTS[(run + 1 + run / 4) % 4];
        let dc = DCS[run % 2];
        buckets(MINUTE, Field::U, host(a), window).check(&server, db, &truth);
        buckets(SEVEN, Field::N, hosts(&[a, b], Style::In), window).check(&server, db, &truth);
        Buckets {
            desc: true,
            limit: Some(run + 1),
            ..buckets(MINUTE, Field::U, hosts(&[a, b], Style::Or), window)
        }
        .check(&server, db, &truth);
        buckets(
            ONE_HOUR,
            Field::Extra,
            host(b).and_dc(&[dc], Style::Eq),
            window,
        )
        .check(&server, db, &truth);
        scan(Field::U, Op::Gt, ("90.0", 90.0), host(a), window).check(&server, db, &truth);
        scan(
            Field::N,
            Op::Ge,
            ("50", 50.0),
            hosts(&[a, b], Style::In),
            window,
        )
        .check(&server, db, &truth);
        Scan {
            cols: Some(vec!["time", "host", "u"]),
            ..scan(
                Field::U,
                Op::Lt,
                ("5.0", 5.0),
                hosts(&[b, a], Style::Or),
                window,
            )
        }
        .check(&server, db, &truth);
    }
    let log = server.log();
    assert!(
        log.contains("query shape planned cached=true") && log.contains("cached_plan=true"),
        "the repeats ran from cached plans:\n{log}"
    );
}

/// The direct executor serves both shape families (its debug event says `served directly`),
/// and its answers are the definitions'.
#[test]
fn direct_path_serves_the_common_shapes() {
    let (server, db, truth) = setup(&["--log-filter", "info,gnomon_query=debug"]);
    let served = || server.log().matches("served directly").count();
    let start = served();
    for window in windows() {
        for pin in [
            host("host_1"),
            hosts(&["host_0", "host_2"], Style::In),
            hosts(&["host_0", "host_3"], Style::Or),
        ] {
            buckets(SEVEN, Field::U, pin.clone(), window).check(&server, db, &truth);
            buckets(MINUTE, Field::N, pin, window).check(&server, db, &truth);
        }
    }
    let after_a = served();
    assert!(
        after_a > start,
        "no bucket aggregate (shape A) was served directly ({} debug events logged)",
        server.log().matches("gnomon_query").count()
    );
    for window in windows() {
        for pin in [host("host_1"), hosts(&["host_0", "host_2"], Style::In)] {
            scan(Field::U, Op::Gt, ("90.0", 90.0), pin.clone(), window).check(&server, db, &truth);
            Scan {
                cols: Some(vec!["time", "host", "n"]),
                ..scan(Field::N, Op::Ge, ("50", 50.0), pin, window)
            }
            .check(&server, db, &truth);
        }
    }
    assert!(
        served() > after_a,
        "no filtered scan (shape B) was served directly ({after_a} events before, {} after)",
        served()
    );
    // The persisted hours' times are evenly spaced but for a few points: their runs give
    // the `time` column of the rows read.
    assert!(
        server
            .log()
            .lines()
            .any(|l| l.contains("served directly") && !l.contains("computed_times=0")),
        "no file read took its times from its time runs: {}",
        server
            .log()
            .lines()
            .filter(|l| l.contains("served directly"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
