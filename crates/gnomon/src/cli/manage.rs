//! `gnomon create|delete|show …`: databases, tables, last-value and distinct-value caches;
//! the `trigger` and `plugins` variants hand over to [`super::engine`].

use std::io::{BufRead, Write};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{CliError, CliResult, Client, ConnectionArgs};

/// `-d/--database`.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArg {
    /// Database to operate on.
    #[arg(short = 'd', long = "database", env = "GNOMON_DATABASE")]
    pub database: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    conn: ConnectionArgs,
    #[command(subcommand)]
    what: CreateCommand,
}

#[derive(Debug, Subcommand)]
enum CreateCommand {
    /// Create a database.
    Database {
        name: String,
        /// How long data is kept, e.g. `30d` (default: forever).
        #[arg(long)]
        retention_period: Option<String>,
    },
    /// Create a table with its tags and typed fields.
    Table {
        name: String,
        #[command(flatten)]
        db: DatabaseArg,
        /// Tag columns, comma separated.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Fields as `name:type`, comma separated; types: int64, uint64, float64, utf8, bool.
        #[arg(long, value_delimiter = ',', value_parser = parse_field)]
        fields: Vec<(String, String)>,
    },
    /// Create a last-value cache.
    #[command(name = "last_cache", alias = "last-cache")]
    LastCache {
        /// Cache name (default: derived from the table and key columns).
        name: Option<String>,
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(short = 't', long)]
        table: String,
        /// Key columns, comma separated (default: the table's tags).
        #[arg(long, value_delimiter = ',')]
        key_columns: Option<Vec<String>>,
        /// Value columns, comma separated (default: every other column).
        #[arg(long, value_delimiter = ',')]
        value_columns: Option<Vec<String>>,
        /// Rows kept per key (1-10).
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// How long a row stays after it was cached, e.g. `4 hours`.
        #[arg(long, default_value = "4 hours", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Create a distinct-value cache.
    #[command(name = "distinct_cache", alias = "distinct-cache")]
    DistinctCache {
        /// Cache name (default: derived from the table and columns).
        name: Option<String>,
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(short = 't', long)]
        table: String,
        /// Columns, as a hierarchy from the first to the last, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        columns: Vec<String>,
        /// Most distinct combinations kept.
        #[arg(long, default_value_t = 100_000)]
        max_cardinality: u64,
        /// Combinations whose newest data is older than this are dropped, e.g. `1d`.
        #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
        max_age: Duration,
    },
    /// Create a processing-engine trigger (runs a plugin on writes, on a schedule or on
    /// requests to `/api/v3/engine/<path>`).
    Trigger(super::engine::CreateTrigger),
}

fn parse_field(s: &str) -> Result<(String, String), String> {
    let (name, ty) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected name:type, got {s:?}"))?;
    match ty {
        "int64" | "uint64" | "float64" | "utf8" | "bool" => Ok((name.into(), ty.into())),
        _ => Err(format!(
            "unknown field type {ty:?}: use int64, uint64, float64, utf8 or bool"
        )),
    }
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    conn: ConnectionArgs,
    #[command(subcommand)]
    what: UpdateCommand,
}

#[derive(Debug, Subcommand)]
enum UpdateCommand {
    /// Change a database's retention period.
    Database {
        #[command(flatten)]
        db: DatabaseArg,
        /// How long data is kept, e.g. `30d`; `none` keeps it forever.
        #[arg(long, required = true)]
        retention_period: String,
    },
}

/// `gnomon update database -d <db> --retention-period <duration|none>`.
pub async fn update(args: UpdateArgs) -> CliResult<()> {
    let client = Client::new(&args.conn, "Update")?;
    match args.what {
        UpdateCommand::Database {
            db,
            retention_period,
        } => {
            let period = match retention_period.as_str() {
                "none" => Value::Null,
                other => Value::String(other.to_string()),
            };
            let body = json!({ "db": db.database, "retention_period": period });
            client
                .send(
                    client
                        .request(Method::PUT, "/api/v3/configure/database")
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.to_string()),
                )
                .await?;
            println!("Database {:?} updated successfully", db.database);
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    conn: ConnectionArgs,
    #[command(subcommand)]
    what: DeleteCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum HardDelete {
    Never,
    Now,
    Default,
}

impl HardDelete {
    fn param(self) -> &'static str {
        match self {
            HardDelete::Never => "never",
            HardDelete::Now => "now",
            HardDelete::Default => "default",
        }
    }
}

#[derive(Debug, Subcommand)]
enum DeleteCommand {
    /// Soft-delete a database (its name becomes free at once).
    Database {
        name: String,
        /// When the data is removed.
        #[arg(long, value_enum)]
        hard_delete: Option<HardDelete>,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Soft-delete a table.
    Table {
        name: String,
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long, value_enum)]
        hard_delete: Option<HardDelete>,
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Delete a last-value cache.
    #[command(name = "last_cache", alias = "last-cache")]
    LastCache {
        name: String,
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(short = 't', long)]
        table: String,
    },
    /// Delete a distinct-value cache.
    #[command(name = "distinct_cache", alias = "distinct-cache")]
    DistinctCache {
        name: String,
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(short = 't', long)]
        table: String,
    },
    /// Delete a processing-engine trigger.
    Trigger(super::engine::DeleteTrigger),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Pretty,
    Json,
    Jsonl,
    Csv,
    Parquet,
}

impl OutputFormat {
    fn param(self) -> &'static str {
        match self {
            OutputFormat::Pretty => "pretty",
            OutputFormat::Json => "json",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Csv => "csv",
            OutputFormat::Parquet => "parquet",
        }
    }
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    conn: ConnectionArgs,
    #[command(subcommand)]
    what: ShowCommand,
}

/// `--format` and `--output` of the `show` commands.
#[derive(Debug, Args)]
struct OutputArgs {
    #[arg(long, value_enum, default_value = "pretty")]
    format: OutputFormat,
    /// Write the result to this file instead of stdout (required for parquet).
    #[arg(short = 'o', long)]
    output: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ShowCommand {
    /// List databases.
    #[command(alias = "database")]
    Databases {
        #[command(flatten)]
        out: OutputArgs,
        /// Include soft-deleted databases.
        #[arg(long)]
        show_deleted: bool,
    },
    /// List the tables of a database.
    #[command(alias = "table")]
    Tables {
        #[command(flatten)]
        db: DatabaseArg,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// List the last-value caches of a database.
    #[command(name = "last_caches", alias = "last_cache", alias = "last-caches")]
    LastCaches {
        #[command(flatten)]
        db: DatabaseArg,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// List the distinct-value caches of a database.
    #[command(
        name = "distinct_caches",
        alias = "distinct_cache",
        alias = "distinct-caches"
    )]
    DistinctCaches {
        #[command(flatten)]
        db: DatabaseArg,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// List the processing-engine triggers of a database and their plugins.
    #[command(alias = "plugin", alias = "triggers")]
    Plugins {
        #[command(flatten)]
        db: DatabaseArg,
        #[command(flatten)]
        out: OutputArgs,
    },
}

#[cfg(test)]
impl CreateArgs {
    pub fn into_trigger(self) -> Option<super::engine::CreateTrigger> {
        match self.what {
            CreateCommand::Trigger(t) => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
impl DeleteArgs {
    pub fn into_trigger(self) -> Option<super::engine::DeleteTrigger> {
        match self.what {
            DeleteCommand::Trigger(t) => Some(t),
            _ => None,
        }
    }
}

pub async fn create(args: CreateArgs) -> CliResult<()> {
    let client = Client::new(&args.conn, "Create")?;
    match args.what {
        CreateCommand::Database {
            name,
            retention_period,
        } => {
            let mut body = json!({ "db": name });
            if let Some(rp) = retention_period {
                body["retention_period"] = Value::String(rp);
            }
            client
                .send(
                    client
                        .request(Method::POST, "/api/v3/configure/database")
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.to_string()),
                )
                .await?;
            println!("Database {name:?} created successfully");
        }
        CreateCommand::Table {
            name,
            db,
            tags,
            fields,
        } => {
            let fields: Vec<Value> = fields
                .iter()
                .map(|(n, t)| json!({ "name": n, "type": t }))
                .collect();
            let body = json!({ "db": db.database, "table": name, "tags": tags, "fields": fields });
            client
                .send(
                    client
                        .request(Method::POST, "/api/v3/configure/table")
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.to_string()),
                )
                .await?;
            println!("Table {:?}.{name:?} created successfully", db.database);
        }
        CreateCommand::LastCache {
            name,
            db,
            table,
            key_columns,
            value_columns,
            count,
            ttl,
        } => {
            let mut body = json!({
                "db": db.database, "table": table, "count": count, "ttl": ttl.as_secs(),
            });
            if let Some(name) = name {
                body["name"] = Value::String(name);
            }
            if let Some(k) = key_columns {
                body["key_columns"] = json!(k);
            }
            if let Some(v) = value_columns {
                body["value_columns"] = json!(v);
            }
            let response = client
                .send(
                    client
                        .request(Method::POST, "/api/v3/configure/last_cache")
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.to_string()),
                )
                .await?;
            let text = response.text().await.unwrap_or_default();
            println!("new cache created: {text}");
        }
        CreateCommand::DistinctCache {
            name,
            db,
            table,
            columns,
            max_cardinality,
            max_age,
        } => {
            let mut body = json!({
                "db": db.database, "table": table, "columns": columns,
                "max_cardinality": max_cardinality, "max_age": max_age.as_secs(),
            });
            if let Some(name) = name {
                body["name"] = Value::String(name);
            }
            let response = client
                .send(
                    client
                        .request(Method::POST, "/api/v3/configure/distinct_cache")
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.to_string()),
                )
                .await?;
            let text = response.text().await.unwrap_or_default();
            println!("new cache created: {text}");
        }
        CreateCommand::Trigger(trigger) => super::engine::create_trigger(&client, trigger).await?,
    }
    Ok(())
}

/// Asks on stderr and reads one line from stdin; anything but `yes` refuses.
fn confirm(client: &Client, what: &str) -> CliResult<()> {
    eprint!("Are you sure you want to delete {what}? Enter 'yes' to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| client.fail(format!("reading the confirmation: {e}")))?;
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(client.fail("not confirmed; nothing was deleted (pass --yes to skip the question)"))
    }
}

pub async fn delete(args: DeleteArgs) -> CliResult<()> {
    let client = Client::new(&args.conn, "Delete")?;
    match args.what {
        DeleteCommand::Database {
            name,
            hard_delete,
            yes,
        } => {
            if !yes {
                confirm(&client, &format!("database {name:?}"))?;
            }
            let mut query = vec![("db", name.clone())];
            if let Some(h) = hard_delete {
                query.push(("hard_delete_at", h.param().into()));
            }
            client
                .send(
                    client
                        .request(Method::DELETE, "/api/v3/configure/database")
                        .query(&query),
                )
                .await?;
            println!("Database {name:?} deleted successfully");
        }
        DeleteCommand::Table {
            name,
            db,
            hard_delete,
            yes,
        } => {
            if !yes {
                confirm(&client, &format!("table {:?}.{name:?}", db.database))?;
            }
            let mut query = vec![("db", db.database.clone()), ("table", name.clone())];
            if let Some(h) = hard_delete {
                query.push(("hard_delete_at", h.param().into()));
            }
            client
                .send(
                    client
                        .request(Method::DELETE, "/api/v3/configure/table")
                        .query(&query),
                )
                .await?;
            println!("Table {:?}.{name:?} deleted successfully", db.database);
        }
        DeleteCommand::LastCache { name, db, table } => {
            let query = [
                ("db", db.database),
                ("table", table),
                ("name", name.clone()),
            ];
            client
                .send(
                    client
                        .request(Method::DELETE, "/api/v3/configure/last_cache")
                        .query(&query),
                )
                .await?;
            println!("last cache deleted successfully: {name}");
        }
        DeleteCommand::DistinctCache { name, db, table } => {
            let query = [
                ("db", db.database),
                ("table", table),
                ("name", name.clone()),
            ];
            client
                .send(
                    client
                        .request(Method::DELETE, "/api/v3/configure/distinct_cache")
                        .query(&query),
                )
                .await?;
            println!("distinct cache deleted successfully: {name}");
        }
        DeleteCommand::Trigger(trigger) => super::engine::delete_trigger(&client, trigger).await?,
    }
    Ok(())
}

/// Prints (or saves) a response body; parquet only to a file.
async fn output(client: &Client, response: reqwest::Response, out: &OutputArgs) -> CliResult<()> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| client.fail(format!("reading the response: {e}")))?;
    match &out.output {
        Some(path) => std::fs::write(path, &bytes)
            .map_err(|e| client.fail(format!("writing {}: {e}", path.display()))),
        None if matches!(out.format, OutputFormat::Parquet) => {
            Err(client.fail("parquet output is binary: give a file with -o/--output"))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|_| {
                    if bytes.last() != Some(&b'\n') && !bytes.is_empty() {
                        stdout.write_all(b"\n")
                    } else {
                        Ok(())
                    }
                })
                .map_err(|e| client.fail(format!("writing the output: {e}")))
        }
    }
}

async fn sql(client: &Client, db: &str, q: &str, out: &OutputArgs) -> CliResult<()> {
    let body = json!({ "db": db, "q": q, "format": out.format.param() });
    let response = client
        .send(
            client
                .request(Method::POST, "/api/v3/query_sql")
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string()),
        )
        .await?;
    output(client, response, out).await
}

pub async fn show(args: ShowArgs) -> CliResult<()> {
    let client = Client::new(&args.conn, "Show")?;
    match args.what {
        ShowCommand::Databases { out, show_deleted } => {
            let mut query = vec![("format", out.format.param().to_string())];
            if show_deleted {
                query.push(("show_deleted", "true".into()));
            }
            let response = client
                .send(
                    client
                        .request(Method::GET, "/api/v3/configure/database")
                        .query(&query),
                )
                .await?;
            output(&client, response, &out).await
        }
        ShowCommand::Tables { db, out } => {
            sql(
                &client,
                &db.database,
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = 'iox' ORDER BY table_name",
                &out,
            )
            .await
        }
        ShowCommand::LastCaches { db, out } => {
            sql(
                &client,
                &db.database,
                "SELECT * FROM system.last_caches ORDER BY \"table\", name",
                &out,
            )
            .await
        }
        ShowCommand::DistinctCaches { db, out } => {
            sql(
                &client,
                &db.database,
                "SELECT * FROM system.distinct_caches ORDER BY \"table\", name",
                &out,
            )
            .await
        }
        ShowCommand::Plugins { db, out } => {
            sql(&client, &db.database, super::engine::SHOW_PLUGINS_SQL, &out).await
        }
    }
}

/// Runs a client command on a small runtime of its own.
pub fn run<F: std::future::Future<Output = CliResult<()>>>(command: F) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError {
            message: format!("starting the client runtime: {e}"),
        })?;
    runtime.block_on(command)
}
