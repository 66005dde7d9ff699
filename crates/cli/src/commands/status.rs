//! `pgforce status`: every mapping's state, row counts, last sync, last error, what it
//! is busy with (a running Bulk API job) and the records it keeps as rejected (read, but
//! not fitting their columns: the count and the first few); then each connection's
//! writer: who holds it, its
//! queue by state, and the changes it is stuck on (FAILED and HELD trigger-log rows with
//! Salesforce's message).

use std::path::PathBuf;

use clap::Args;
use pgforce_sync::{ConnectionState, MappingStatus, WriterStatus};

use crate::{config, output};

/// Options of `pgforce status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The configuration file (for the database URL and credentials).
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
}

/// Prints the status table.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, None).await?;
    let status = engine.admin().status(true).await?;
    output::say(&format!(
        "{:<10} {:<16} {:<20} {:>9} {:>9} {:<20} {}",
        "CONNECTION", "OBJECT", "STATE", "SF ROWS", "PG ROWS", "LAST SYNC", "LAST ERROR"
    ));
    for mapping in &status.mappings {
        print_mapping(mapping);
        print_rejected(mapping);
    }
    for connection in &status.connections {
        if connection.state != ConnectionState::Idle {
            output::say("");
            output::say(&format!(
                "connection {}: {}{}",
                connection.name,
                connection.state,
                connection
                    .last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    for writer in &status.writers {
        print_writer(writer);
    }
    Ok(())
}

fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "?".to_owned(), |n| n.to_string())
}

fn print_mapping(mapping: &MappingStatus) {
    let state = if mapping.paused {
        format!("{} (paused)", mapping.state)
    } else {
        mapping.state.to_string()
    };
    output::say(&format!(
        "{:<10} {:<16} {:<20} {:>9} {:>9} {:<20} {}",
        mapping.connection,
        mapping.object,
        state,
        count(mapping.salesforce_count),
        count(mapping.postgres_count),
        mapping.last_sync.as_deref().unwrap_or("-"),
        mapping.last_error.as_deref().unwrap_or_default()
    ));
    if let Some(activity) = &mapping.activity {
        output::say(&format!("{:<10} ↳ {activity}", ""));
    }
    if let Some(transport) = &mapping.events_transport {
        output::say(&format!(
            "{:<10} ↳ change events: {transport}, last at {}",
            "",
            mapping.last_event.as_deref().unwrap_or("-")
        ));
    }
    if !mapping.drift.is_empty() {
        let kinds: Vec<String> = mapping
            .drift
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        output::say(&format!(
            "{:<10} ↳ drift at the last reconcile ({}): {}",
            "",
            mapping.drift_checked.as_deref().unwrap_or_default(),
            kinds.join(", ")
        ));
    }
}

/// The mapping's rejected records: how many, and the first few with field and reason.
fn print_rejected(mapping: &MappingStatus) {
    if mapping.rejected == 0 {
        return;
    }
    output::say(&format!(
        "{:<10} ↳ {} rejected record(s) not stored (pgforce.rejected_records):",
        "", mapping.rejected
    ));
    for record in &mapping.rejected_first {
        output::say(&format!(
            "{:<10}   {} field {}: {} (seen {} time(s), last {})",
            "", record.sfid, record.field, record.reason, record.times_seen, record.last_seen
        ));
    }
}

fn print_writer(writer: &WriterStatus) {
    let queue = &writer.queue;
    output::say("");
    output::say(&format!(
        "writer {}: {}; queue: {} new, {} pending, {} held back, {} failed",
        writer.connection,
        writer
            .holder
            .as_ref()
            .map_or_else(|| "not running".to_owned(), |h| format!("held by {h}")),
        queue.new,
        queue.pending,
        queue.held,
        queue.failed
    ));
    for change in &writer.stuck {
        output::say(&format!(
            "  {:<6} {}.{} row {} {}: {}",
            change.state,
            writer.schema,
            change.table,
            change.record_id.unwrap_or_default(),
            change.action,
            change.message
        ));
    }
}
