//! The `gnomon` binary: command-line parsing and process wiring.
//!
//! `gnomon serve` builds the object store, loads the catalog, opens the write buffer (which
//! replays the WAL), starts the query engine and serves HTTP until SIGINT or SIGTERM, then
//! flushes the WAL before exiting. This crate owns flags, environment variables, logging
//! set-up and the order of start-up and shutdown; everything else lives in the library crates.

mod cli;
mod serve;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the write path allocates and frees many short-lived
/// vectors per request, and glibc's allocator showed up at ~10% of write CPU in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "gnomon",
    version,
    about = "Gnomon: a time series database that speaks the InfluxDB 3 Core HTTP API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<serve::ServeArgs>),
    /// Create a database, table, last_cache, distinct_cache or trigger on a running server.
    Create(cli::manage::CreateArgs),
    /// Delete a database, table, last_cache, distinct_cache or trigger on a running server.
    Delete(cli::manage::DeleteArgs),
    /// Update a database's retention period on a running server.
    Update(cli::manage::UpdateArgs),
    /// Show databases, tables, last_caches, distinct_caches or plugins of a running server.
    Show(cli::manage::ShowArgs),
    /// Run a SQL or InfluxQL query on a running server.
    Query(cli::query::QueryArgs),
    /// Write line protocol (an argument, a file or stdin) to a running server.
    Write(cli::write::WriteArgs),
    /// Start a stopped processing-engine trigger.
    Enable(cli::engine::ToggleArgs),
    /// Stop a processing-engine trigger (it stays defined).
    Disable(cli::engine::ToggleArgs),
    /// Run a plugin once on test input without applying its writes.
    Test(cli::engine::TestArgs),
    /// Install Python packages into the server's plugin environment.
    Install(cli::engine::InstallArgs),
}

/// Prints a client command's failure on stderr and exits with status 1.
fn exit_on_error(result: Result<(), cli::client::CliError>) -> anyhow::Result<()> {
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(1);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Create(args) => exit_on_error(cli::manage::run(cli::manage::create(args))),
        Command::Delete(args) => exit_on_error(cli::manage::run(cli::manage::delete(args))),
        Command::Update(args) => exit_on_error(cli::manage::run(cli::manage::update(args))),
        Command::Show(args) => exit_on_error(cli::manage::run(cli::manage::show(args))),
        Command::Query(args) => exit_on_error(cli::manage::run(cli::query::query(args))),
        Command::Write(args) => exit_on_error(cli::manage::run(cli::write::write(args))),
        Command::Enable(args) => exit_on_error(cli::manage::run(cli::engine::enable(args))),
        Command::Disable(args) => exit_on_error(cli::manage::run(cli::engine::disable(args))),
        Command::Test(args) => exit_on_error(cli::manage::run(cli::engine::test(args))),
        Command::Install(args) => exit_on_error(cli::manage::run(cli::engine::install(args))),
    }
}
