//! `gnomon write`: sends line protocol from an argument, a file or stdin to a running server.
//!
//! Large inputs go in batches (at most `--batch-lines` points or `--max-request-size` bytes
//! per request), cut only where the server's own splitter ends a line, so no line is ever
//! split across requests and the server's line numbers can be shifted back to positions in
//! the whole input. Input is read as it is sent: a file bigger than memory is fine.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::Value;

use super::client::{CliError, CliResult, Client, ConnectionArgs};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Precision {
    Auto,
    #[value(alias = "s")]
    Second,
    #[value(alias = "ms")]
    Millisecond,
    #[value(alias = "us", alias = "u")]
    Microsecond,
    #[value(alias = "ns", alias = "n")]
    Nanosecond,
}

impl Precision {
    fn param(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::Second => "second",
            Precision::Millisecond => "millisecond",
            Precision::Microsecond => "microsecond",
            Precision::Nanosecond => "nanosecond",
        }
    }
}

#[derive(Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    conn: ConnectionArgs,
    /// Database to write to (created by the server on first write).
    #[arg(short = 'd', long = "database", env = "GNOMON_DATABASE")]
    database: String,
    /// Line protocol to write; without it (and without --file) it is read from stdin.
    #[arg(conflicts_with = "file")]
    line_protocol: Option<String>,
    /// Read line protocol from this file.
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,
    /// Precision of the timestamps (default: the server's, `auto`).
    #[arg(short = 'p', long, value_enum)]
    precision: Option<Precision>,
    /// Write the valid lines of a request even when some are rejected (otherwise a bad line
    /// rejects its whole request).
    #[arg(long)]
    accept_partial: bool,
    /// Do not wait for the WAL to be persisted before the server answers.
    #[arg(long)]
    no_sync: bool,
    /// Most bytes per request (a single longer line is sent alone).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_request_size: usize,
    /// Most points (non-blank, non-comment lines) per request.
    #[arg(long, default_value_t = 10_000)]
    batch_lines: usize,
    /// Print nothing on success.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// Counts over the whole input.
#[derive(Default)]
struct Tally {
    written: u64,
    rejected: u64,
}

/// Cuts a byte stream into batches of whole lines.
struct Batcher<R> {
    input: R,
    buf: Vec<u8>,
    eof: bool,
    max_bytes: usize,
    max_points: usize,
}

/// One request's worth of input.
struct Batch {
    bytes: Vec<u8>,
    points: u64,
}

impl<R: Read> Batcher<R> {
    fn next(&mut self) -> std::io::Result<Option<Batch>> {
        let mut want = self.max_bytes;
        loop {
            while !self.eof && self.buf.len() < want {
                let start = self.buf.len();
                self.buf
                    .resize(start + (want - start).clamp(64 * 1024, 1 << 20), 0);
                let n = self.input.read(&mut self.buf[start..])?;
                self.buf.truncate(start + n);
                self.eof = n == 0;
            }
            if self.buf.is_empty() {
                return Ok(None);
            }
            let (mut pos, mut points) = (0, 0u64);
            loop {
                let (line, next) = match gnomon_line_protocol::line_end(&self.buf, pos) {
                    Some(end) => (&self.buf[pos..end], end + 1),
                    // The last line is complete only at the end of the input.
                    None if self.eof => (&self.buf[pos..], self.buf.len()),
                    None => break,
                };
                points += u64::from(gnomon_line_protocol::is_point_line(line));
                pos = next;
                if pos >= self.buf.len()
                    || pos >= self.max_bytes
                    || points >= self.max_points as u64
                {
                    break;
                }
            }
            if pos == 0 {
                // One line longer than the buffer: read on until it ends.
                want = self.buf.len() * 2;
                continue;
            }
            let rest = self.buf.split_off(pos);
            let bytes = std::mem::replace(&mut self.buf, rest);
            return Ok(Some(Batch { bytes, points }));
        }
    }
}

pub async fn write(args: WriteArgs) -> CliResult<()> {
    let client = Client::new(&args.conn, "Write")?;
    let (input, total): (Box<dyn Read>, Option<u64>) = match (&args.line_protocol, &args.file) {
        (Some(lp), _) => (
            Box::new(std::io::Cursor::new(lp.clone().into_bytes())),
            None,
        ),
        (None, Some(path)) => {
            let file = std::fs::File::open(path)
                .map_err(|e| client.fail(format!("opening {}: {e}", path.display())))?;
            let len = file.metadata().ok().map(|m| m.len());
            (Box::new(file), len)
        }
        (None, None) => (Box::new(std::io::stdin().lock()), None),
    };
    let mut batcher = Batcher {
        input,
        buf: Vec::new(),
        eof: false,
        max_bytes: args.max_request_size.max(1),
        max_points: args.batch_lines.max(1),
    };

    let progress = if std::io::stderr().is_terminal() && !args.quiet {
        match total {
            Some(len) => ProgressBar::new(len).with_style(
                ProgressStyle::with_template(
                    "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("valid progress template"),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {binary_bytes} {binary_bytes_per_sec}")
                    .expect("valid progress template"),
            ),
        }
    } else {
        ProgressBar::hidden()
    };

    let mut query = vec![
        ("db", args.database.clone()),
        ("accept_partial", args.accept_partial.to_string()),
        ("no_sync", args.no_sync.to_string()),
    ];
    if let Some(p) = args.precision {
        query.push(("precision", p.param().to_string()));
    }

    let mut tally = Tally::default();
    let mut failure: Option<CliError> = None;
    loop {
        let batch = match batcher.next() {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) => {
                failure = Some(client.fail(format!("reading the input: {e}")));
                break;
            }
        };
        let len = batch.bytes.len() as u64;
        // Only comments or blank lines: the server would answer "incoming write was empty".
        if batch.points > 0 {
            let offset = tally.written + tally.rejected;
            match send_batch(&client, &query, batch, offset, &progress, &mut tally).await {
                Ok(()) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        progress.inc(len);
    }
    progress.finish_and_clear();

    if failure.is_none() && tally.written + tally.rejected == 0 {
        failure = Some(client.fail("no line protocol to write (the input has no points)"));
    }
    if !args.quiet || failure.is_some() || tally.rejected > 0 {
        let summary = format!(
            "{} lines written, {} rejected",
            tally.written, tally.rejected
        );
        if failure.is_some() || tally.rejected > 0 {
            eprintln!("{summary}");
        } else {
            println!("{summary}");
        }
    }
    match failure {
        Some(e) => Err(e),
        None if tally.rejected > 0 => Err(client.fail(format!(
            "{} line{} rejected",
            tally.rejected,
            if tally.rejected == 1 {
                " was"
            } else {
                "s were"
            }
        ))),
        None => Ok(()),
    }
}

/// Sends one batch and adds its outcome to `tally`; `offset` is the number of points before
/// it, added to the server's (per-request) line numbers.
async fn send_batch(
    client: &Client,
    query: &[(&str, String)],
    batch: Batch,
    offset: u64,
    progress: &ProgressBar,
    tally: &mut Tally,
) -> CliResult<()> {
    let points = batch.points;
    let response = client
        .request(Method::POST, "/api/v3/write_lp")
        .query(query)
        .body(batch.bytes)
        .send()
        .await
        .map_err(|e| {
            client.fail(format!(
                "could not reach the server: {e} ({} lines written before)",
                tally.written
            ))
        })?;
    let status = response.status();
    if status.is_success() {
        tally.written += points;
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_str(&body).ok();
    match parsed.as_ref().and_then(|v| v.get("data")) {
        // accept_partial: the valid lines were written; `data` lists the others.
        Some(Value::Array(errors)) => {
            for e in errors {
                progress.suspend(|| report_line_error(e, offset));
            }
            let rejected = (errors.len() as u64).min(points);
            tally.rejected += rejected;
            tally.written += points - rejected;
            Ok(())
        }
        // Not partial: the first bad line rejected the whole request; later batches are not
        // sent, so that what was written is exactly the input up to this batch.
        Some(error @ Value::Object(_)) => {
            progress.suspend(|| report_line_error(error, offset));
            tally.rejected += points;
            Err(client.fail(format!(
                "the server rejected a request of {points} lines because of the line above; \
                 nothing from it or after it was written (use --accept-partial to write the \
                 valid lines)"
            )))
        }
        _ => Err(client.server_error(status, &body)),
    }
}

fn report_line_error(error: &Value, offset: u64) {
    let line = error
        .get("line_number")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        + offset;
    let message = error
        .get("error_message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)");
    let original = error
        .get("original_line")
        .and_then(Value::as_str)
        .unwrap_or("");
    eprintln!("line {line}: {message}: {original}");
}
