//! `gnomon query`: runs one SQL or InfluxQL query on a running server and prints the result.
//!
//! The server does the formatting (`format=` of `/api/v3/query_sql` and `query_influxql`), so
//! what this prints is byte for byte what an HTTP client gets; the body is copied as it
//! streams in, so a large result never sits whole in the client's memory either.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::json;

use super::client::{CliResult, Client, ConnectionArgs};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Language {
    Sql,
    Influxql,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Pretty,
    Json,
    Jsonl,
    Csv,
    Parquet,
}

impl Format {
    fn param(self) -> &'static str {
        match self {
            Format::Pretty => "pretty",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    conn: ConnectionArgs,
    /// Database to query.
    #[arg(short = 'd', long = "database", env = "GNOMON_DATABASE")]
    database: String,
    /// The query text (or give it with -f/--file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    query: Option<String>,
    /// Read the query text from this file.
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,
    /// Query language.
    #[arg(short = 'l', long, value_enum, default_value = "sql")]
    language: Language,
    /// Output format.
    #[arg(long, value_enum, default_value = "pretty")]
    format: Format,
    /// Write the result to this file instead of stdout (required for parquet).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

pub async fn query(args: QueryArgs) -> CliResult<()> {
    let client = Client::new(&args.conn, "Query")?;
    if args.format == Format::Parquet && args.output.is_none() {
        return Err(client.fail("parquet output is binary: give a file with -o/--output"));
    }
    let text = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| client.fail(format!("reading {}: {e}", path.display())))?,
        (None, None) => unreachable!("clap requires a query or --file"),
    };
    let path = match args.language {
        Language::Sql => "/api/v3/query_sql",
        Language::Influxql => "/api/v3/query_influxql",
    };
    let body = json!({ "db": args.database, "q": text, "format": args.format.param() });
    let mut response = client
        .send(
            client
                .request(Method::POST, path)
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string()),
        )
        .await?;

    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| client.fail(format!("creating {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let write_err = |e: std::io::Error| client.fail(format!("writing the output: {e}"));
    let mut last = None;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| client.fail(format!("reading the response: {e}")))?
    {
        out.write_all(&chunk).map_err(write_err)?;
        if let Some(&b) = chunk.last() {
            last = Some(b);
        }
    }
    // A terminal wants the prompt on its own line; a file gets exactly the server's bytes.
    if args.output.is_none() && last.is_some_and(|b| b != b'\n') {
        out.write_all(b"\n").map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}
