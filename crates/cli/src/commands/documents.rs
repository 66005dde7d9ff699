//! `pgforce import` and `pgforce export`: Heroku Connect's mapping export document.
//!
//! The engine does the work (see `pgforce_sync::Engine::import` and `export`): import
//! checks every mapping against the org, creates the tables and keeps the document's
//! `config` objects and `connection` block verbatim in the catalog, so export gives back
//! the same document; running engines sync imported mappings at once.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::{config, output};

/// Options of `pgforce import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
    /// The connection (by name; default: the only one).
    #[arg(long)]
    connection: Option<String>,
    /// The export document to import.
    file: PathBuf,
}

/// Options of `pgforce export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
    /// The connection (by name; default: the only one).
    #[arg(long)]
    connection: Option<String>,
    /// Where to write the document (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Imports an export document into a connection.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, None).await?;
    let connection = engine.pick_connection(args.connection.as_deref())?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let imported = engine
        .import(&connection, &text)
        .await
        .with_context(|| format!("importing {}", args.file.display()))?;
    output::say(&format!(
        "imported {imported} mapping(s) into connection {connection}"
    ));
    Ok(())
}

/// Writes a connection's mappings as an export document.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, None).await?;
    let connection = engine.pick_connection(args.connection.as_deref())?;
    let document = engine.export(&connection).await?;
    let text = serde_json::to_string_pretty(&document).context("writing the document")?;
    match &args.output {
        Some(path) => std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?,
        None => output::say(&text),
    }
    Ok(())
}
