//! `pgforce reload OBJECT`: empty a mapping's table and load it again from Salesforce.
//!
//! The reload is asked of the engine: the mapping's reader (in a running `pgforce run`,
//! here or elsewhere on the same catalog) empties and loads the table in one transaction
//! with its cursor. With `--now` this command waits for it, loading here when no running
//! pgforce reads the mapping.

use std::path::PathBuf;

use clap::Args;
use pgforce_sync::{ReloadMode, Reloaded};

use crate::{config, output};

/// Options of `pgforce reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
    /// The connection (by name; default: the only one).
    #[arg(long)]
    connection: Option<String>,
    /// Load now and wait, instead of leaving it to the running daemon.
    #[arg(long)]
    now: bool,
    /// The object to reload (API name, e.g. Account).
    object: String,
}

/// Asks for the reload; with `--now`, waits for it.
pub async fn run(args: ReloadArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, None).await?;
    let connection = engine.pick_connection(args.connection.as_deref())?;
    let mode = if args.now {
        ReloadMode::Now(Some(output::load_progress()))
    } else {
        ReloadMode::Request
    };
    match engine.reload(&connection, &args.object, mode).await? {
        Reloaded::Requested => output::say(&format!(
            "{} will be emptied and loaded again by the running pgforce",
            args.object
        )),
        Reloaded::Done { object, rows, .. } => {
            output::say(&format!("RELOAD COMPLETE: {object} {rows} rows"));
        }
    }
    Ok(())
}
