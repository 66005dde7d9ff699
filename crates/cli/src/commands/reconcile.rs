//! `pgforce reconcile`: compare each mapping's Salesforce records with its Postgres rows,
//! and with `--repair` fix what differs.
//!
//! The comparison itself is `pgforce_sync::reconcile`. Repair re-reads missing and
//! differing records, deletes rows whose record is gone and queues local changes again;
//! when no `pgforce run` holds the connection's writer lease, it also sends those changes
//! itself, so a repaired mapping can be checked clean at once. Exit status 0 only when
//! every mapping compared agrees; the counts are kept on the mapping for `pgforce status`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use pgforce_store::lease;
use pgforce_sync::reader::Target;
use pgforce_sync::reconcile::{Drift, compare, record, repair};
use pgforce_sync::supervisor::PreparedConnection;
use pgforce_sync::writer::write_once;

use crate::{config, output};

/// Options of `pgforce reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
    /// Only this connection (by name).
    #[arg(long)]
    connection: Option<String>,
    /// Fix what differs: re-read from Salesforce, queue local changes again.
    #[arg(long)]
    repair: bool,
    /// Only these objects (API names; default: every mapping).
    objects: Vec<String>,
}

fn row(connection: &str, object: &str, drift: &Drift) -> String {
    format!(
        "{:<10} {:<16} {:>9} {:>9} {:>8} {:>6} {:>9} {:>10} {:>7}",
        connection,
        object,
        drift.salesforce_records,
        drift.postgres_rows,
        drift.missing_in_postgres.len(),
        drift.gone_from_salesforce.len(),
        drift.differing.len(),
        drift.never_sent.len(),
        drift.unsent_changes
    )
}

/// Compares (and repairs) every selected mapping.
pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let connections: Vec<_> = config
        .connections
        .iter()
        .filter(|c| args.connection.as_ref().is_none_or(|name| &c.name == name))
        .cloned()
        .collect();
    if connections.is_empty() {
        bail!(
            "no connection named {} in the config",
            args.connection.as_deref().unwrap_or_default()
        );
    }
    let prepared = pgforce_sync::supervisor::prepare(&config.database.url, &connections)
        .await
        .context("setting up the configured mappings")?;
    let mut pg = pgforce_store::connect(&config.database.url)
        .await
        .with_context(|| format!("connecting to {}", output::redact_url(&config.database.url)))?;
    output::say(&format!(
        "{:<10} {:<16} {:>9} {:>9} {:>8} {:>6} {:>9} {:>10} {:>7}",
        "CONNECTION",
        "OBJECT",
        "SF ROWS",
        "PG ROWS",
        "MISSING",
        "GONE",
        "DIFFERING",
        "NEVER SENT",
        "UNSENT"
    ));
    let mut drifted = Vec::new();
    for connection in &prepared {
        for (mapping, mapping_id) in &connection.mappings {
            if !args.objects.is_empty()
                && !args
                    .objects
                    .iter()
                    .any(|o| o.eq_ignore_ascii_case(&mapping.object))
            {
                continue;
            }
            let target = Target {
                schema: &connection.schema,
                mapping,
                mapping_id: *mapping_id,
            };
            let mut drift = compare(&connection.salesforce, &pg, &target).await?;
            record(&pg, *mapping_id, &drift).await?;
            output::say(&row(&connection.name, &mapping.object, &drift));
            if args.repair && !drift.is_clean() {
                let done = repair(&connection.salesforce, &mut pg, &target, &drift).await?;
                output::say(&format!(
                    "{:<10} {:<16} repaired: {} read again, {} deleted, {} queued for Salesforce",
                    "", mapping.object, done.refreshed, done.deleted, done.requeued
                ));
                if done.requeued > 0 {
                    send_queued(connection, &mut pg).await?;
                }
                drift = compare(&connection.salesforce, &pg, &target).await?;
                record(&pg, *mapping_id, &drift).await?;
                output::say(&row(&connection.name, &mapping.object, &drift));
            }
            if !drift.is_clean() {
                drifted.push(mapping.object.clone());
            }
        }
    }
    if !drifted.is_empty() {
        bail!(
            "Salesforce and Postgres differ for {}{}",
            drifted.join(", "),
            if args.repair {
                ""
            } else {
                " (run with --repair to fix)"
            }
        );
    }
    output::say("Salesforce and Postgres agree");
    Ok(())
}

/// Sends queued changes now when no daemon writes this connection.
async fn send_queued(
    connection: &PreparedConnection,
    pg: &mut tokio_postgres::Client,
) -> anyhow::Result<()> {
    let name = format!("writer:{}", connection.name);
    let holder = lease::holder_name();
    if !lease::acquire(pg, &name, &holder, Duration::from_secs(60)).await? {
        output::say("a running pgforce writes this connection; it sends the queued changes");
        return Ok(());
    }
    let mappings: Vec<_> = connection
        .mappings
        .iter()
        .filter(|(m, _)| m.spec.access == pgforce_store::ddl::Access::ReadWrite)
        .map(|(m, _)| m.clone())
        .collect();
    let result = async {
        loop {
            let outcome = write_once(
                &connection.salesforce,
                pg,
                &connection.schema,
                &mappings,
                &connection.write_policy,
            )
            .await?;
            if outcome.is_idle() || outcome.retried > 0 {
                return anyhow::Ok(());
            }
        }
    }
    .await;
    lease::release(pg, &name, &holder).await?;
    result
}
