//! The v1 `/query` result shape (feature `plan`): rows of a planned SELECT split into series,
//! and their JSON text exactly as InfluxDB writes it (key order, omitted keys, number and time
//! formatting).

use std::fmt::Write;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampNanosecondType, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;

use crate::plan::MEASUREMENT_COLUMN;

/// One value of a v1 result.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// Nanoseconds since the epoch.
    Time(i64),
    /// Nanoseconds since the epoch, written in a zone (`tz()`) when written as text.
    LocalTime(i64, chrono_tz::Tz),
}

/// One v1 series: rows sharing measurement and `GROUP BY` tag values.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// `None` when the query has no `GROUP BY` tags (the key is then omitted).
    pub tags: Option<Vec<(String, String)>>,
    pub columns: Vec<String>,
    pub values: Vec<Vec<Cell>>,
}

/// The `epoch` parameter: integer timestamps in this unit instead of RFC 3339 strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epoch {
    Nanosecond,
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
}

impl Epoch {
    pub fn from_param(s: &str) -> Option<Self> {
        Some(match s {
            "ns" => Self::Nanosecond,
            "u" | "µ" => Self::Microsecond,
            "ms" => Self::Millisecond,
            "s" => Self::Second,
            "m" => Self::Minute,
            "h" => Self::Hour,
            "d" => Self::Day,
            "w" => Self::Week,
            _ => return None,
        })
    }

    /// `ns` converted; minutes and longer are whole seconds divided down (truncating).
    pub fn convert(self, ns: i64) -> i64 {
        match self {
            Self::Nanosecond => ns,
            Self::Microsecond => ns / 1_000,
            Self::Millisecond => ns / 1_000_000,
            Self::Second => ns / 1_000_000_000,
            Self::Minute => ns / 1_000_000_000 / 60,
            Self::Hour => ns / 1_000_000_000 / 3600,
            Self::Day => ns / 1_000_000_000 / 86_400,
            Self::Week => ns / 1_000_000_000 / 604_800,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Go's JSON encoder refuses infinities, and InfluxDB reports that for the whole response.
    #[error("json: unsupported value: {0}")]
    Unsupported(&'static str),
    #[error("unsupported column type {0}")]
    Type(DataType),
}

fn cell(array: &dyn Array, row: usize) -> Result<Cell, EncodeError> {
    if array.is_null(row) {
        return Ok(Cell::Null);
    }
    Ok(match array.data_type() {
        DataType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt64 => Cell::UInt(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        DataType::Utf8 => Cell::Str(array.as_string::<i32>().value(row).to_string()),
        DataType::Utf8View => Cell::Str(array.as_string_view().value(row).to_string()),
        DataType::LargeUtf8 => Cell::Str(array.as_string::<i64>().value(row).to_string()),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Cell::Time(array.as_primitive::<TimestampNanosecondType>().value(row))
        }
        DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
            let d = array.as_dictionary::<Int32Type>();
            let key = d.keys().value(row) as usize;
            Cell::Str(d.values().as_string::<i32>().value(key).to_string())
        }
        DataType::Null => Cell::Null,
        other => return Err(EncodeError::Type(other.clone())),
    })
}

/// Splits planned rows into series. `tag_columns` are the `GROUP BY` tags; with
/// `group_by_tags` false (or no tag columns, as 1.x omits an empty tag set) the series carry
/// no `tags` key.
pub fn series_from_batches(
    batches: &[RecordBatch],
    tag_columns: &[String],
    group_by_tags: bool,
) -> Result<Vec<Series>, EncodeError> {
    let mut out: Vec<Series> = Vec::new();
    let mut current_key: Option<(String, Vec<String>)> = None;
    for batch in batches {
        let schema = batch.schema();
        let m_idx = schema.index_of(MEASUREMENT_COLUMN).ok();
        let tag_idx: Vec<usize> = tag_columns
            .iter()
            .filter_map(|t| schema.index_of(t).ok())
            .collect();
        let value_idx: Vec<usize> = (0..schema.fields().len())
            .filter(|i| Some(*i) != m_idx && !tag_idx.contains(i))
            .collect();
        let columns: Vec<String> = value_idx
            .iter()
            .map(|i| schema.field(*i).name().clone())
            .collect();
        for row in 0..batch.num_rows() {
            let name = match m_idx {
                Some(i) => match cell(batch.column(i).as_ref(), row)? {
                    Cell::Str(s) => s,
                    _ => String::new(),
                },
                None => String::new(),
            };
            let mut tags = Vec::with_capacity(tag_idx.len());
            for i in &tag_idx {
                tags.push(match cell(batch.column(*i).as_ref(), row)? {
                    Cell::Str(s) => s,
                    _ => String::new(),
                });
            }
            let key = (name, tags);
            if current_key.as_ref() != Some(&key) {
                let mut pairs: Vec<(String, String)> = tag_idx
                    .iter()
                    .map(|i| schema.field(*i).name().clone())
                    .zip(key.1.iter().cloned())
                    .collect();
                pairs.sort();
                out.push(Series {
                    name: key.0.clone(),
                    tags: (group_by_tags && !pairs.is_empty()).then_some(pairs),
                    columns: columns.clone(),
                    values: Vec::new(),
                });
                current_key = Some(key);
            }
            let mut values = Vec::with_capacity(value_idx.len());
            for i in &value_idx {
                values.push(cell(batch.column(*i).as_ref(), row)?);
            }
            out.last_mut().expect("pushed above").values.push(values);
        }
    }
    Ok(out)
}

/// Rewrites the series' times to be written in `zone` (the query's `tz()`).
pub fn in_zone(series: &mut [Series], zone: chrono_tz::Tz) {
    for s in series {
        for row in &mut s.values {
            for c in row {
                if let Cell::Time(ns) = *c {
                    *c = Cell::LocalTime(ns, zone);
                }
            }
        }
    }
}

/// RFC 3339 in `zone` with its offset (`+05:30`), fractions as [`format_time`] writes them.
pub fn format_time_in(ns: i64, zone: chrono_tz::Tz) -> String {
    use chrono::Offset;
    use chrono::TimeZone;
    let utc = format_time(ns);
    let instant = chrono::DateTime::from_timestamp_nanos(ns);
    let offset = zone.offset_from_utc_datetime(&instant.naive_utc()).fix();
    let local = instant.with_timezone(&offset);
    // Same date-time layout and fraction as the UTC text, local fields and the offset.
    let fraction = utc
        .trim_end_matches('Z')
        .split_once('.')
        .map(|(_, f)| format!(".{f}"))
        .unwrap_or_default();
    let secs = offset.local_minus_utc();
    if secs == 0 {
        // Go's RFC 3339 layout writes a zero offset as `Z`, whatever the zone.
        return utc;
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let secs = secs.abs();
    format!(
        "{}{fraction}{sign}{:02}:{:02}",
        local.format("%Y-%m-%dT%H:%M:%S"),
        secs / 3600,
        secs % 3600 / 60
    )
}

/// RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits, whichever is exact.
pub fn format_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000) as u32;
    let dt = chrono::DateTime::from_timestamp(secs, frac).unwrap_or_default();
    let base = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    if frac == 0 {
        format!("{base}Z")
    } else if frac.is_multiple_of(1_000_000) {
        format!("{base}.{:03}Z", frac / 1_000_000)
    } else if frac.is_multiple_of(1_000) {
        format!("{base}.{:06}Z", frac / 1_000)
    } else {
        format!("{base}.{frac:09}Z")
    }
}

/// A float the way Go's `encoding/json` writes it, with InfluxDB's integral floats as integers.
pub fn format_float(v: f64) -> Result<String, EncodeError> {
    if v.is_nan() {
        return Ok("null".into());
    }
    if v.is_infinite() {
        return Err(EncodeError::Unsupported(if v > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        }));
    }
    if v.fract() == 0.0 && v.abs() < 9.223_372_036_854_776e18 {
        return Ok((v as i64).to_string());
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').expect("exponent form");
        let exp = if exp.starts_with('-') {
            exp.to_string()
        } else {
            format!("+{exp}")
        };
        return Ok(format!("{mantissa}e{exp}"));
    }
    Ok(v.to_string())
}

fn write_str(out: &mut String, s: &str) {
    out.push_str(&serde_json_escape(s));
}

fn serde_json_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn write_cell(out: &mut String, c: &Cell, epoch: Option<Epoch>) -> Result<(), EncodeError> {
    match c {
        Cell::Null => out.push_str("null"),
        Cell::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Cell::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::UInt(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::Float(v) => out.push_str(&format_float(*v)?),
        Cell::Str(s) => write_str(out, s),
        Cell::Time(ns) => match epoch {
            Some(e) => {
                let _ = write!(out, "{}", e.convert(*ns));
            }
            None => write_str(out, &format_time(*ns)),
        },
        Cell::LocalTime(ns, zone) => match epoch {
            Some(e) => {
                let _ = write!(out, "{}", e.convert(*ns));
            }
            None => write_str(out, &format_time_in(*ns, *zone)),
        },
    }
    Ok(())
}

/// Appends one series object (`partial` only when true).
pub fn write_series(
    out: &mut String,
    s: &Series,
    rows: &[Vec<Cell>],
    epoch: Option<Epoch>,
    partial: bool,
) -> Result<(), EncodeError> {
    out.push('{');
    let mut first = true;
    if !s.name.is_empty() {
        out.push_str("\"name\":");
        write_str(out, &s.name);
        first = false;
    }
    if let Some(tags) = &s.tags {
        if !first {
            out.push(',');
        }
        out.push_str("\"tags\":{");
        for (i, (k, v)) in tags.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(out, k);
            out.push(':');
            write_str(out, v);
        }
        out.push('}');
        first = false;
    }
    if !first {
        out.push(',');
    }
    out.push_str("\"columns\":[");
    for (i, c) in s.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, c);
    }
    out.push(']');
    if !rows.is_empty() {
        out.push_str(",\"values\":[");
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            for (j, c) in row.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                write_cell(out, c, epoch)?;
            }
            out.push(']');
        }
        out.push(']');
    }
    if partial {
        out.push_str(",\"partial\":true");
    }
    out.push('}');
    Ok(())
}

/// The result object of one statement: `statement_id`, then `series` (if any), `partial`
/// (if true), `error` (if any).
pub fn write_statement(
    out: &mut String,
    statement_id: usize,
    series: &[(&Series, &[Vec<Cell>], bool)],
    partial: bool,
    error: Option<&str>,
    epoch: Option<Epoch>,
) -> Result<(), EncodeError> {
    let _ = write!(out, "{{\"statement_id\":{statement_id}");
    if !series.is_empty() {
        out.push_str(",\"series\":[");
        for (i, (s, rows, p)) in series.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_series(out, s, rows, epoch, *p)?;
        }
        out.push(']');
    }
    if partial {
        out.push_str(",\"partial\":true");
    }
    if let Some(e) = error {
        out.push_str(",\"error\":");
        write_str(out, e);
    }
    out.push('}');
    Ok(())
}

/// v1 CSV: `name,tags,<columns>` header, then one line per row; timestamps always integers.
pub fn write_csv_series(out: &mut String, s: &Series, epoch: Option<Epoch>, header: bool) {
    if header {
        out.push_str("name,tags");
        for c in &s.columns {
            out.push(',');
            out.push_str(&csv_field(c));
        }
        out.push('\n');
    }
    let tags = s
        .tags
        .as_ref()
        .map(|t| {
            t.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    for row in &s.values {
        out.push_str(&csv_field(&s.name));
        out.push(',');
        out.push_str(&csv_field(&tags));
        for c in row {
            out.push(',');
            match c {
                Cell::Null => {}
                Cell::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Cell::Int(v) => {
                    let _ = write!(out, "{v}");
                }
                Cell::UInt(v) => {
                    let _ = write!(out, "{v}");
                }
                Cell::Float(v) => out.push_str(&csv_float(*v)),
                Cell::Str(v) => out.push_str(&csv_field(v)),
                Cell::Time(ns) | Cell::LocalTime(ns, _) => {
                    let _ = write!(out, "{}", epoch.unwrap_or(Epoch::Nanosecond).convert(*ns));
                }
            }
        }
        out.push('\n');
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Plain decimal, never exponent form (`0.9`, `82`, `1000000000000000000000`).
fn csv_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        assert_eq!(format_float(82.0).unwrap(), "82");
        assert_eq!(format_float(0.9).unwrap(), "0.9");
        assert_eq!(format_float(-2.5).unwrap(), "-2.5");
        assert_eq!(
            format_float(7.307059979368068e43).unwrap(),
            "7.307059979368068e+43"
        );
        assert_eq!(format_float(1e-7).unwrap(), "1e-7");
        assert_eq!(format_float(1e20).unwrap(), "100000000000000000000");
        assert_eq!(format_float(f64::NAN).unwrap(), "null");
        assert_eq!(
            format_float(f64::INFINITY).unwrap_err().to_string(),
            "json: unsupported value: +Inf"
        );
    }

    #[test]
    fn times_with_minimal_fraction_groups() {
        assert_eq!(
            format_time(2_998_574_931_000_000_000),
            "2065-01-07T17:28:51Z"
        );
        assert_eq!(format_time(123), "1970-01-01T00:00:00.000000123Z");
        assert_eq!(format_time(1_500_000_000), "1970-01-01T00:00:01.500Z");
        assert_eq!(format_time(1_000_001_000), "1970-01-01T00:00:01.000001Z");
        assert_eq!(format_time(-1_000_000_000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn times_in_a_zone() {
        use chrono_tz::Tz;
        let t = 1_700_000_000_500_000_000;
        assert_eq!(
            format_time_in(t, Tz::Asia__Kolkata),
            "2023-11-15T03:43:20.500+05:30"
        );
        assert_eq!(
            format_time_in(t, Tz::America__St_Johns),
            "2023-11-14T18:43:20.500-03:30"
        );
        // The offset at that instant (London kept +01:00 all year in 1970); a zero offset
        // is `Z`, as Go writes it.
        assert_eq!(
            format_time_in(0, Tz::Europe__London),
            "1970-01-01T01:00:00+01:00"
        );
        assert_eq!(
            format_time_in(1_700_000_000_000_000_000, Tz::Europe__London),
            "2023-11-14T22:13:20Z"
        );
        let mut series = vec![Series {
            name: "cpu".into(),
            tags: None,
            columns: vec!["time".into(), "v".into()],
            values: vec![vec![Cell::Time(t), Cell::Int(1)]],
        }];
        in_zone(&mut series, Tz::Asia__Kolkata);
        assert_eq!(
            series[0].values[0],
            vec![Cell::LocalTime(t, Tz::Asia__Kolkata), Cell::Int(1)]
        );
    }

    #[test]
    fn epochs() {
        let ns = 1_700_000_000_123_456_789;
        assert_eq!(Epoch::from_param("ns").unwrap().convert(ns), ns);
        assert_eq!(
            Epoch::from_param("u").unwrap().convert(ns),
            1_700_000_000_123_456
        );
        assert_eq!(
            Epoch::from_param("µ").unwrap().convert(ns),
            1_700_000_000_123_456
        );
        assert_eq!(
            Epoch::from_param("ms").unwrap().convert(ns),
            1_700_000_000_123
        );
        assert_eq!(Epoch::from_param("s").unwrap().convert(ns), 1_700_000_000);
        assert_eq!(
            Epoch::from_param("m").unwrap().convert(ns),
            1_700_000_000 / 60
        );
        assert_eq!(
            Epoch::from_param("h").unwrap().convert(ns),
            1_700_000_000 / 3600
        );
        assert_eq!(
            Epoch::from_param("d").unwrap().convert(ns),
            1_700_000_000 / 86_400
        );
        assert_eq!(
            Epoch::from_param("w").unwrap().convert(ns),
            1_700_000_000 / 604_800
        );
        assert_eq!(Epoch::from_param("us"), None);
    }

    #[test]
    fn series_object_key_order_and_omissions() {
        let s = Series {
            name: "cpu".into(),
            tags: Some(vec![("host".into(), "a".into())]),
            columns: vec!["time".into(), "usage".into()],
            values: vec![vec![
                Cell::Time(1_700_000_000_000_000_000),
                Cell::Float(0.5),
            ]],
        };
        let mut out = String::new();
        write_statement(
            &mut out,
            0,
            &[(&s, &s.values, false)],
            false,
            None,
            Some(Epoch::Second),
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","usage"],"values":[[1700000000,0.5]]}]}"#
        );
        let mut out = String::new();
        write_statement(&mut out, 1, &[], false, Some("boom"), None).unwrap();
        assert_eq!(out, r#"{"statement_id":1,"error":"boom"}"#);
        let mut out = String::new();
        write_series(&mut out, &s, &[], None, true).unwrap();
        assert_eq!(
            out,
            r#"{"name":"cpu","tags":{"host":"a"},"columns":["time","usage"],"partial":true}"#
        );
    }

    #[test]
    fn csv_rows() {
        let s = Series {
            name: "cpu".into(),
            tags: Some(vec![("a".into(), "1".into()), ("b".into(), "x,y".into())]),
            columns: vec!["time".into(), "v".into(), "s".into()],
            values: vec![vec![
                Cell::Time(5),
                Cell::Float(1e21),
                Cell::Str("q\"".into()),
            ]],
        };
        let mut out = String::new();
        write_csv_series(&mut out, &s, None, true);
        assert_eq!(
            out,
            "name,tags,time,v,s\ncpu,\"a=1,b=x,y\",5,1000000000000000000000,\"q\"\"\"\n"
        );
    }
}
