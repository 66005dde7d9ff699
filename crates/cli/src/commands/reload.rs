//! `pgforce reload OBJECT`: empty a mapping's table and load it again from Salesforce.
//!
//! The table is emptied and the cursor cleared in one transaction (with `xmlbinary =
//! 'hex'`, so the capture triggers log nothing). A running `pgforce run` then finds the
//! mapping without cursor and with an empty table and loads it on its next tick; with
//! `--now` this command loads it itself.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use pgforce_store::Ident;
use pgforce_store::cursor::{clear_cursor, set_mapping_state};

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
    /// Load now instead of leaving it to the running daemon.
    #[arg(long)]
    now: bool,
    /// The object to reload (API name, e.g. Account).
    object: String,
}

/// Empties the table and clears the cursor, then loads it when asked to.
pub async fn run(args: ReloadArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let connection = match (&args.connection, config.connections.as_slice()) {
        (Some(name), all) => all
            .iter()
            .find(|c| &c.name == name)
            .with_context(|| format!("no connection named {name} in the config"))?,
        (None, [only]) => only,
        (None, _) => bail!("the config has several connections; name one with --connection"),
    };
    let mut pg = pgforce_store::connect(&config.database.url)
        .await
        .with_context(|| format!("connecting to {}", output::redact_url(&config.database.url)))?;
    let row = pg
        .query_opt(
            "select m.id, m.table_name from pgforce.mappings m join pgforce.connections c on c.id = m.connection_id
             where c.name = $1 and lower(m.object_name) = lower($2)",
            &[&connection.name, &args.object],
        )
        .await
        .context("reading the catalog (has `pgforce run` set it up?)")?
        .with_context(|| format!("connection {} has no mapping for {}", connection.name, args.object))?;
    let (mapping_id, table): (i64, String) = (row.get(0), row.get(1));
    let schema = Ident::new(&connection.schema)?;
    let table = Ident::new(&table)?;
    let tx = pg.transaction().await.context("starting the reload")?;
    tx.batch_execute(&format!(
        "set local xmlbinary = 'hex'; truncate table {schema}.{table}"
    ))
    .await
    .with_context(|| format!("emptying {schema}.{table}"))?;
    clear_cursor(&tx, mapping_id).await?;
    set_mapping_state(&tx, mapping_id, "RELOAD_TABLE", None).await?;
    tx.commit().await.context("committing the reload")?;
    output::say(&format!(
        "emptied {schema}.{table}; {} will be loaded again",
        args.object
    ));
    if args.now {
        let prepared = pgforce_sync::supervisor::prepare(
            &config.database.url,
            std::slice::from_ref(connection),
        )
        .await?;
        let Some(prepared) = prepared.into_iter().next() else {
            bail!("connection {} was not prepared", connection.name)
        };
        let Some((mapping, id)) = prepared
            .mappings
            .iter()
            .find(|(m, _)| m.object.eq_ignore_ascii_case(&args.object))
        else {
            bail!(
                "{} is in the catalog but not in the config file",
                args.object
            )
        };
        let target = pgforce_sync::reader::Target {
            schema: &prepared.schema,
            mapping,
            mapping_id: *id,
        };
        let total = prepared
            .salesforce
            .count(&format!("SELECT COUNT() FROM {}", mapping.object))
            .await?;
        let bar = output::progress(total, &format!("loading {}", mapping.object));
        let outcome =
            pgforce_sync::reader::initial_load(&prepared.salesforce, &mut pg, &target, &mut |n| {
                bar.set_position(n);
            })
            .await?;
        bar.finish_and_clear();
        output::say(&format!(
            "RELOAD COMPLETE: {} {} rows",
            mapping.object, outcome.applied
        ));
    }
    Ok(())
}
