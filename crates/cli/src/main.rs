//! The `pgforce` command line: parse, wire, run, exit. Logic lives in the library crates.

/// mimalloc keeps the emulator's millions of small strings compact (no per-allocation
/// header) and returns freed memory, where the system allocator would hold on to it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;
mod config;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// pgforce keeps a Salesforce org and a PostgreSQL database in sync, both ways.
#[derive(Debug, Parser)]
#[command(name = "pgforce", version, about)]
struct Cli {
    /// Log lines on stderr as `text` (coloured on a terminal) or `json` (one object per
    /// line, for log shippers).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = output::LogFormat::Text,
        env = "PGFORCE_LOG_FORMAT"
    )]
    log_format: output::LogFormat,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// See pgforce work: a local org synced into Postgres, with a change shown arriving.
    Demo(commands::demo::DemoArgs),
    /// Sync the configured orgs and databases until stopped.
    Run(commands::run::RunArgs),
    /// Add, change, pause, resume or remove a mapping while pgforce runs.
    Mapping(commands::mapping::MappingArgs),
    /// Pause or resume a connection while pgforce runs.
    Connection(commands::mapping::ConnectionArgs),
    /// Import a Heroku Connect mapping export document into a connection.
    Import(commands::documents::ImportArgs),
    /// Write a connection's mappings as a Heroku Connect mapping export document.
    Export(commands::documents::ExportArgs),
    /// Empty a mapping's table and load it again from Salesforce.
    Reload(commands::reload::ReloadArgs),
    /// Move records matching a condition out of Salesforce into an archive table.
    Archive(commands::archive::ArchiveArgs),
    /// Re-create archived records in Salesforce.
    Unarchive(commands::archive::UnarchiveArgs),
    /// Compare each mapping's Salesforce records with its Postgres rows (--repair fixes).
    Reconcile(commands::reconcile::ReconcileArgs),
    /// Show every mapping's state, row count, last sync and last error.
    Status(commands::status::StatusArgs),
    /// Create, list and revoke the management API's tokens.
    Token(commands::token::TokenArgs),
    /// A connection's OData 4.0 service for Salesforce Connect: enable, disable, reset,
    /// publish, unpublish, show.
    #[command(name = "odata")]
    OData(commands::odata::ODataArgs),
    /// Generate or rotate the key that seals connection secrets.
    Key(commands::key::KeyArgs),
    /// Run a local Salesforce org (the bundled emulator) over HTTP and HTTPS.
    Emulator(commands::emulator::EmulatorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return output::fail(&anyhow::Error::new(error).context("starting the async runtime"));
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Emulator(args) => commands::emulator::run(args).await,
            Command::Demo(args) => commands::demo::run(args).await,
            Command::Run(args) => commands::run::run(args).await,
            Command::Status(args) => commands::status::run(args).await,
            Command::Reload(args) => commands::reload::run(args).await,
            Command::Reconcile(args) => commands::reconcile::run(args).await,
            Command::Archive(args) => commands::archive::run(args).await,
            Command::Unarchive(args) => commands::archive::unarchive(args).await,
            Command::Mapping(args) => commands::mapping::run(args).await,
            Command::Token(args) => commands::token::run(args).await,
            Command::OData(args) => commands::odata::run(args).await,
            Command::Key(args) => commands::key::run(args).await,
            Command::Connection(args) => commands::mapping::connection(args).await,
            Command::Import(args) => commands::documents::import(args).await,
            Command::Export(args) => commands::documents::export(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => output::fail(&error),
    }
}
