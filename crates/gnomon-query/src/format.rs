//! Encoding of query results into the wire formats of the query API, batch by batch.
//!
//! [`ResultEncoder::push`] turns each record batch into bytes as soon as it is produced, so a
//! large result streams out without being held whole in memory. The one exception is `pretty`,
//! whose column widths depend on every row: it buffers (it is meant for people, not for
//! millions of rows).

use std::io::Write;
use std::sync::Arc;

use arrow::csv::WriterBuilder as CsvWriterBuilder;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::json::writer::{JsonArray, LineDelimited, Writer as JsonWriter, WriterBuilder};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parking_lot::Mutex;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// A result format of the query API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    JsonLines,
    Csv,
    Pretty,
    Parquet,
}

impl Format {
    /// The `format=` parameter values (lower-case only, as InfluxDB 3 Core).
    pub fn from_param(s: &str) -> Option<Format> {
        Some(match s {
            "json" => Format::Json,
            "jsonl" | "json_lines" => Format::JsonLines,
            "csv" => Format::Csv,
            "pretty" => Format::Pretty,
            "parquet" => Format::Parquet,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::JsonLines => "application/jsonl",
            Format::Csv => "text/csv",
            Format::Pretty => "text/plain; charset=utf-8",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// A `Write` whose bytes are taken out after each batch.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.lock()))
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum State {
    Json(JsonWriter<SharedBuf, JsonArray>),
    JsonLines(JsonWriter<SharedBuf, LineDelimited>),
    Csv(Option<arrow::csv::Writer<SharedBuf>>),
    Pretty(Vec<RecordBatch>),
    Parquet(Option<ArrowWriter<SharedBuf>>),
}

/// Encodes a stream of record batches in one format.
pub struct ResultEncoder {
    buf: SharedBuf,
    state: State,
}

impl ResultEncoder {
    pub fn new(format: Format) -> Self {
        let buf = SharedBuf::default();
        let json = || WriterBuilder::new().with_explicit_nulls(false);
        let state = match format {
            Format::Json => State::Json(json().build(buf.clone())),
            Format::JsonLines => State::JsonLines(json().build(buf.clone())),
            Format::Csv => State::Csv(None),
            Format::Pretty => State::Pretty(Vec::new()),
            Format::Parquet => State::Parquet(None),
        };
        Self { buf, state }
    }

    /// Encodes one batch; returns the bytes ready to send (possibly none).
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Bytes, ArrowError> {
        match &mut self.state {
            State::Json(w) => w.write(batch)?,
            State::JsonLines(w) => w.write(batch)?,
            State::Csv(w) => w
                .get_or_insert_with(|| {
                    CsvWriterBuilder::new()
                        .with_header(true)
                        .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.f".to_string())
                        .build(self.buf.clone())
                })
                .write(batch)?,
            State::Pretty(batches) => batches.push(batch.clone()),
            State::Parquet(w) => {
                if batch.num_rows() > 0 {
                    let writer = match w {
                        Some(w) => w,
                        None => w.insert(parquet_writer(self.buf.clone(), batch.schema())?),
                    };
                    writer.write(batch)?;
                }
            }
        }
        Ok(self.buf.take())
    }

    /// Ends the stream; returns the closing bytes.
    pub fn finish(mut self) -> Result<Bytes, ArrowError> {
        match &mut self.state {
            State::Json(w) => w.finish()?,
            State::JsonLines(w) => w.finish()?,
            State::Csv(_) => {}
            State::Pretty(batches) => {
                let text = if batches.is_empty() {
                    "++\n++".to_string()
                } else {
                    arrow::util::pretty::pretty_format_batches(batches)?.to_string()
                };
                self.buf
                    .write_all(text.as_bytes())
                    .map_err(ArrowError::from)?;
            }
            State::Parquet(w) => {
                if let Some(w) = w.take() {
                    w.close()
                        .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
                }
            }
        }
        Ok(self.buf.take())
    }
}

fn parquet_writer(buf: SharedBuf, schema: SchemaRef) -> Result<ArrowWriter<SharedBuf>, ArrowError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    ArrowWriter::try_new(buf, schema, Some(props))
        .map_err(|e| ArrowError::ExternalError(Box::new(e)))
}

/// Encodes whole batches at once (tests, CLI).
pub fn encode_all(format: Format, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut enc = ResultEncoder::new(format);
    let mut out = Vec::new();
    for b in batches {
        out.extend_from_slice(&enc.push(b)?);
    }
    out.extend_from_slice(&enc.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("host", DataType::Utf8, true),
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
            Field::new("usage", DataType::Float64, true),
            Field::new("n", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(TimestampNanosecondArray::from(vec![0, 1_500_000_000])),
                Arc::new(Float64Array::from(vec![Some(1.0), Some(f64::NAN)])),
                Arc::new(Int64Array::from(vec![None, Some(-3)])),
            ],
        )
        .unwrap()
    }

    fn text(format: Format, batches: &[RecordBatch]) -> String {
        String::from_utf8(encode_all(format, batches).unwrap()).unwrap()
    }

    #[test]
    fn json_omits_nulls_and_renders_time_without_zone() {
        assert_eq!(
            text(Format::Json, &[batch()]),
            r#"[{"host":"a","time":"1970-01-01T00:00:00","usage":1.0},{"time":"1970-01-01T00:00:01.500","usage":null,"n":-3}]"#
        );
        assert_eq!(text(Format::Json, &[]), "[]");
    }

    #[test]
    fn jsonl_one_object_per_line() {
        let t = text(Format::JsonLines, &[batch(), batch()]);
        assert_eq!(t.lines().count(), 4);
        assert!(t.ends_with('\n'));
        assert_eq!(text(Format::JsonLines, &[]), "");
    }

    #[test]
    fn csv_header_and_rows() {
        assert_eq!(
            text(Format::Csv, &[batch()]),
            "host,time,usage,n\na,1970-01-01T00:00:00,1.0,\n,1970-01-01T00:00:01.500,NaN,-3\n"
        );
        assert_eq!(text(Format::Csv, &[]), "");
    }

    #[test]
    fn pretty_empty_and_table() {
        assert_eq!(text(Format::Pretty, &[]), "++\n++");
        let t = text(Format::Pretty, &[batch()]);
        assert!(t.starts_with("+------+"), "{t}");
        assert!(!t.ends_with('\n'));
    }

    #[test]
    fn parquet_round_trips_and_is_empty_without_rows() {
        let bytes = encode_all(Format::Parquet, &[batch()]).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            Bytes::from(bytes),
            1024,
        )
        .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 2);
        assert!(encode_all(Format::Parquet, &[]).unwrap().is_empty());
    }
}
