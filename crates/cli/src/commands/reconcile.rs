//! `pgforce reconcile`: compare each mapping's Salesforce records with its Postgres rows,
//! and with `--repair` fix what differs.
//!
//! The engine does the work (see `pgforce_sync::Engine::reconcile`): repair re-reads
//! missing and differing records, deletes rows whose record Salesforce reports deleted or
//! does not know, and queues local changes again; when no `pgforce run` holds the
//! connection's writer lease, it also sends those changes itself, so a repaired mapping
//! can be checked clean at once. Beside a running `pgforce run` it leaves alone what
//! changed after its snapshot, and says how many rows, and why. `REJECTED` counts the
//! records kept as rejected (read, but not fitting their columns). Exit status 0 only when
//! every mapping compared agrees; the counts are kept on the mapping for `pgforce status`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use pgforce_sync::{Drift, LeftAlone, MappingReconcile, ReconcileRequest};

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
    /// Fix what differs: re-read from Salesforce, delete rows of deleted records, queue
    /// local changes again (safe beside a running `pgforce run`).
    #[arg(long)]
    repair: bool,
    /// Only these objects (API names; default: every mapping).
    objects: Vec<String>,
}

fn row(connection: &str, object: &str, drift: &Drift) -> String {
    format!(
        "{:<10} {:<16} {:>9} {:>9} {:>8} {:>6} {:>9} {:>10} {:>7} {:>8}",
        connection,
        object,
        drift.salesforce_records,
        drift.postgres_rows,
        drift.missing_in_postgres.len(),
        drift.gone_from_salesforce.len(),
        drift.differing.len(),
        drift.never_sent.len(),
        drift.unsent_changes,
        drift.rejected
    )
}

/// `2 still in Salesforce, 1 with unsent changes`: the non-zero reasons.
fn left_alone(left: &LeftAlone) -> String {
    [
        (left.still_in_salesforce, "still in Salesforce"),
        (left.unsent_changes, "with unsent changes"),
        (left.changed_since_snapshot, "changed since the snapshot"),
        (left.no_longer_in_salesforce, "no longer in Salesforce"),
        (left.rejected, "not fitting their columns"),
    ]
    .iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, why)| format!("{count} {why}"))
    .collect::<Vec<_>>()
    .join(", ")
}

fn print_report(report: &MappingReconcile) {
    output::say(&row(&report.connection, &report.object, &report.drift));
    if let (Some(done), Some(after)) = (&report.repaired, &report.after) {
        output::say(&format!(
            "{:<10} {:<16} repaired: {} read again, {} deleted, {} queued for Salesforce",
            "", report.object, done.refreshed, done.deleted, done.requeued
        ));
        if done.left_alone.total() > 0 {
            output::say(&format!(
                "{:<10} {:<16} left alone: {}",
                "",
                report.object,
                left_alone(&done.left_alone)
            ));
        }
        output::say(&row(&report.connection, &report.object, after));
    }
}

/// Compares (and repairs) every selected mapping.
pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    if let Some(name) = &args.connection
        && !config.connections.iter().any(|c| &c.name == name)
    {
        bail!("no connection named {name} in the config");
    }
    let engine = config::open_engine(&config, None).await?;
    engine
        .apply()
        .await
        .context("setting up the configured mappings")?;
    output::say(&format!(
        "{:<10} {:<16} {:>9} {:>9} {:>8} {:>6} {:>9} {:>10} {:>7} {:>8}",
        "CONNECTION",
        "OBJECT",
        "SF ROWS",
        "PG ROWS",
        "MISSING",
        "GONE",
        "DIFFERING",
        "NEVER SENT",
        "UNSENT",
        "REJECTED"
    ));
    let request = ReconcileRequest {
        connection: args.connection.clone(),
        objects: args.objects.clone(),
        repair: args.repair,
    };
    let reports = engine.reconcile(&request, print_report).await?;
    let drifted: Vec<&str> = reports
        .iter()
        .filter(|r| !r.is_clean())
        .map(|r| r.object.as_str())
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_left_alone_are_listed_by_reason_leaving_out_zeroes() {
        let left = LeftAlone {
            still_in_salesforce: 2,
            changed_since_snapshot: 5,
            ..LeftAlone::default()
        };
        assert_eq!(
            left_alone(&left),
            "2 still in Salesforce, 5 changed since the snapshot"
        );
        assert_eq!(left_alone(&LeftAlone::default()), "");
    }
}
