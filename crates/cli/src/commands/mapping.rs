//! `pgforce mapping` and `pgforce connection`: change what is synced while pgforce runs.
//!
//! Each subcommand asks the engine, which writes the catalog; a running `pgforce run` (on
//! this machine or another sharing the catalog) picks the change up within moments,
//! without a restart: an added mapping is loaded and polled, a paused one stops and its
//! changes wait, a resumed one carries on, a removed one stops for good (its table and
//! rows stay).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use pgforce_sync::Access;
use pgforce_sync::config::MappingConfig;

use crate::{config, output};

/// Options of `pgforce mapping`.
#[derive(Debug, Args)]
pub struct MappingArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml", global = true)]
    config: PathBuf,
    /// The connection (by name; default: the only one).
    #[arg(long, global = true)]
    connection: Option<String>,
    #[command(subcommand)]
    action: MappingAction,
}

/// What to do to a mapping.
#[derive(Debug, Subcommand)]
enum MappingAction {
    /// Add a mapping (or change one): checked against the org, its table created.
    Add(AddArgs),
    /// Pause a mapping: it is no longer read and its changes wait.
    Pause {
        /// The object (API name).
        object: String,
    },
    /// Resume a paused mapping (or one stopped by an error).
    Resume {
        /// The object (API name).
        object: String,
    },
    /// Remove a mapping: its table and rows stay, nothing is synced any more.
    Remove {
        /// The object (API name).
        object: String,
    },
}

/// Options of `pgforce mapping add`.
#[derive(Debug, Args)]
struct AddArgs {
    /// The object (API name).
    object: String,
    /// Fields to sync, comma-separated (API names).
    #[arg(long, value_delimiter = ',', required = true)]
    fields: Vec<String>,
    /// `read_only` or `read_write`.
    #[arg(long, default_value = "read_only", value_parser = parse_access)]
    access: Access,
    /// Seconds between polls (default 600).
    #[arg(long)]
    polling_seconds: Option<u64>,
    /// An External ID field to match and upsert by.
    #[arg(long)]
    upsert_field: Option<String>,
}

fn parse_access(text: &str) -> Result<Access, String> {
    Access::parse(text).ok_or_else(|| format!("expected read_only or read_write, got {text:?}"))
}

/// Carries out a `pgforce mapping` subcommand.
pub async fn run(args: MappingArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, None).await?;
    let connection = engine.pick_connection(args.connection.as_deref())?;
    match args.action {
        MappingAction::Add(add) => {
            let mut settings = serde_json::json!({
                "object": add.object,
                "access": add.access,
                "fields": add.fields,
            });
            if let Some(seconds) = add.polling_seconds {
                settings["polling_seconds"] = seconds.into();
            }
            if let Some(field) = &add.upsert_field {
                settings["upsert_field"] = field.clone().into();
            }
            let mapping: MappingConfig =
                serde_json::from_value(settings).context("building the mapping's settings")?;
            let id = engine.put_mapping(&connection, mapping).await?;
            output::say(&format!(
                "mapping {} of connection {connection} registered (id {id})",
                add.object
            ));
        }
        MappingAction::Pause { object } => {
            engine.pause_mapping(&connection, &object).await?;
            output::say(&format!("mapping {object} paused"));
        }
        MappingAction::Resume { object } => {
            engine.resume_mapping(&connection, &object).await?;
            output::say(&format!("mapping {object} resumed"));
        }
        MappingAction::Remove { object } => {
            engine.remove_mapping(&connection, &object).await?;
            output::say(&format!(
                "mapping {object} removed; its table and rows stay"
            ));
        }
    }
    Ok(())
}

/// Options of `pgforce connection`.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    action: ConnectionAction,
}

/// What to do to a connection.
#[derive(Debug, Subcommand)]
enum ConnectionAction {
    /// Pause a connection: none of its mappings is read or written until it is resumed.
    Pause {
        /// The connection (by name).
        name: String,
    },
    /// Resume a paused connection.
    Resume {
        /// The connection (by name).
        name: String,
    },
}

/// Carries out a `pgforce connection` subcommand.
pub async fn connection(args: ConnectionArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, None).await?;
    match args.action {
        ConnectionAction::Pause { name } => {
            engine.pause_connection(&name).await?;
            output::say(&format!("connection {name} paused"));
        }
        ConnectionAction::Resume { name } => {
            engine.resume_connection(&name).await?;
            output::say(&format!("connection {name} resumed"));
        }
    }
    Ok(())
}
