//! `pgforce import` and `pgforce export`: Heroku Connect's mapping export document.
//!
//! Import checks every mapping against the org (objects, fields, upsert fields), creates
//! the tables, and keeps each mapping's `config` object and the `connection` block
//! verbatim in the catalog; `pgforce run` then syncs the imported mappings too. Export
//! writes the connection's mappings — imported ones exactly as imported, the config
//! file's in the same shape — so import followed by export gives back the same document.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use pgforce_store::cursor::{
    connection_document, imported_mappings, save_connection_document, save_mapping_config,
};
use pgforce_sync::config::ConnectionConfig;
use pgforce_sync::hc_json::{self, HcMapping};
use serde_json::{Value, json};

use crate::config::{self, Config};
use crate::output;

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

fn pick<'c>(config: &'c Config, name: Option<&String>) -> anyhow::Result<&'c ConnectionConfig> {
    match (name, config.connections.as_slice()) {
        (Some(name), all) => all
            .iter()
            .find(|c| &c.name == name)
            .with_context(|| format!("no connection named {name} in the config")),
        (None, [only]) => Ok(only),
        (None, _) => bail!("the config has several connections; name one with --connection"),
    }
}

/// Imports an export document into a connection.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let connection = pick(&config, args.connection.as_ref())?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let document = hc_json::parse(&text)
        .map_err(|problem| anyhow::anyhow!("{}: {problem}", args.file.display()))?;
    let imported = ConnectionConfig {
        mappings: document
            .mappings
            .iter()
            .map(|m| hc_json::mapping_config(&m.object_name, &m.config))
            .collect::<Result<_, _>>()
            .map_err(|problem| anyhow::anyhow!("{}: {problem}", args.file.display()))?,
        ..connection.clone()
    };
    let prepared =
        pgforce_sync::supervisor::prepare(&config.database.url, std::slice::from_ref(&imported))
            .await
            .with_context(|| format!("checking {} against the org", args.file.display()))?;
    let pg = pgforce_store::connect(&config.database.url).await?;
    for mapping in &document.mappings {
        let id = prepared
            .iter()
            .flat_map(|c| c.mappings.iter())
            .find(|(m, _)| m.object.eq_ignore_ascii_case(&mapping.object_name))
            .map(|(_, id)| *id)
            .with_context(|| format!("mapping {} was not set up", mapping.object_name))?;
        save_mapping_config(&pg, id, &Value::Object(mapping.config.clone()).to_string()).await?;
    }
    if let Some(block) = &document.connection {
        save_connection_document(&pg, &connection.name, &block.to_string()).await?;
    }
    output::say(&format!(
        "imported {} mapping(s) into connection {}",
        document.mappings.len(),
        connection.name
    ));
    Ok(())
}

/// Writes a connection's mappings as an export document.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let connection = pick(&config, args.connection.as_ref())?;
    let pg = pgforce_store::connect(&config.database.url).await?;
    let mut mappings: Vec<HcMapping> = connection
        .mappings
        .iter()
        .map(|m| HcMapping {
            object_name: m.object.clone(),
            config: hc_json::config_object(m),
        })
        .collect();
    for (object, text) in imported_mappings(&pg, &connection.name).await? {
        if mappings
            .iter()
            .any(|m| m.object_name.eq_ignore_ascii_case(&object))
        {
            continue;
        }
        let Value::Object(config) =
            serde_json::from_str(&text).context("reading an imported mapping")?
        else {
            bail!("the imported configuration of {object} is not a JSON object");
        };
        mappings.push(HcMapping {
            object_name: object,
            config,
        });
    }
    let block = match connection_document(&pg, &connection.name).await? {
        Some(text) => {
            serde_json::from_str(&text).context("reading the imported connection block")?
        }
        None => json!({
            "app_name": "pgforce",
            "api_version": connection.api_version,
            "name": format!("pgforce:DATABASE_URL:{}", connection.schema),
            "features": {},
        }),
    };
    let text = serde_json::to_string_pretty(&hc_json::document(block, &mappings))
        .context("writing the document")?;
    match &args.output {
        Some(path) => std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?,
        None => output::say(&text),
    }
    Ok(())
}
