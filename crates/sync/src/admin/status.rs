//! What pgforce is doing, for `pgforce status`, metrics and the API: every mapping's
//! state, counts on both sides, last sync and error, what it is busy with, its drift and
//! the records it keeps as rejected;
//! every writer's holder, queue and the changes it is stuck on.

use pgforce_salesforce::soql;
use pgforce_store::catalog::rejected::{self, RejectedRow};
use pgforce_store::catalog::{connections, status};
use pgforce_store::table::rows;
use pgforce_store::trigger_log::queue::{self, QueueCounts, StuckChange};
use pgforce_store::{ConnectionState, Ident, MappingId, MappingState, Session};

use super::Admin;
use crate::error::{Error, Result};

/// Trigger-log rows listed per connection when its writer is stuck on some.
const STUCK_SHOWN: i64 = 10;

/// Rejected records listed per mapping that has some.
const REJECTED_SHOWN: i64 = 5;

/// Everything `status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Every connection, by name.
    pub connections: Vec<ConnectionStatus>,
    /// Every mapping, by connection and object.
    pub mappings: Vec<MappingStatus>,
    /// Every connection with read-write mappings.
    pub writers: Vec<WriterStatus>,
}

/// One connection's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// Its name.
    pub name: String,
    /// Its state (`IDLE`, `PAUSED`, `PAUSED_API_LIMIT`, `PAUSED_AUTH`, …).
    pub state: ConnectionState,
    /// Why it is paused or in error.
    pub last_error: Option<String>,
}

/// One mapping's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingStatus {
    /// Its catalog id.
    pub id: MappingId,
    /// Its connection.
    pub connection: String,
    /// The mapped object.
    pub object: String,
    /// Its state.
    pub state: MappingState,
    /// Whether it or its connection is paused.
    pub paused: bool,
    /// Records in Salesforce now, when this process can ask.
    pub salesforce_count: Option<u64>,
    /// Rows in Postgres now.
    pub postgres_count: Option<u64>,
    /// When it was last in sync (UTC).
    pub last_sync: Option<String>,
    /// Whole seconds since then.
    pub seconds_since_sync: Option<u64>,
    /// Its last error.
    pub last_error: Option<String>,
    /// What it is busy with (a running Bulk API job).
    pub activity: Option<String>,
    /// Drift kinds with their counts at the last reconcile (non-zero ones).
    pub drift: Vec<(String, u64)>,
    /// When that reconcile ran (UTC).
    pub drift_checked: Option<String>,
    /// Records kept as rejected: read, but their values do not fit their columns.
    pub rejected: u64,
    /// The first of them, oldest first.
    pub rejected_first: Vec<RejectedRow>,
    /// The change-event transport keeping it fresh (`pubsub`, `cometd`); None: polled
    /// only.
    pub events_transport: Option<String>,
    /// When the last change event for it came (UTC).
    pub last_event: Option<String>,
}

/// One connection's writer status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterStatus {
    /// The connection.
    pub connection: String,
    /// Its schema.
    pub schema: String,
    /// The process holding its writer lease.
    pub holder: Option<String>,
    /// The connection's state.
    pub state: ConnectionState,
    /// Why it is paused or in error.
    pub last_error: Option<String>,
    /// Its queue.
    pub queue: QueueCounts,
    /// The first changes it is stuck on.
    pub stuck: Vec<StuckChange>,
}

impl Admin {
    /// The status of every mapping and writer; with `live_counts`, each mapping's record
    /// count in Salesforce too (one COUNT() each, for connections this process can run).
    pub async fn status(&self, live_counts: bool) -> Result<Status> {
        let pg = self.engine.session().await?;
        let catalog = Error::catalog;
        let connection_rows = connections::list(&*pg).await.map_err(catalog)?;
        let mut mappings = Vec::new();
        for report in status::mappings(&*pg).await.map_err(catalog)? {
            let table = Ident::new(&report.schema)
                .and_then(|schema| Ok((schema, Ident::new(&report.table)?)));
            let postgres_count = match &table {
                Ok((schema, table)) => rows::count(&*pg, schema, table).await.ok(),
                Err(_) => None,
            };
            let salesforce_count = if live_counts {
                self.salesforce_count(&connection_rows, &report.connection, &report.object)
                    .await
            } else {
                None
            };
            let rejected = rejected::count(&*pg, report.id).await.map_err(catalog)?;
            let rejected_first = if rejected > 0 {
                rejected::list(&*pg, report.id, REJECTED_SHOWN)
                    .await
                    .map_err(catalog)?
            } else {
                Vec::new()
            };
            let counted = Counted {
                postgres_count,
                salesforce_count,
                rejected,
                rejected_first,
                drift: drift_kinds(report.drift.as_deref()),
            };
            mappings.push(mapping_status(report, counted));
        }
        Ok(Status {
            connections: connection_statuses(connection_rows),
            mappings,
            writers: writer_statuses(&pg, STUCK_SHOWN).await?,
        })
    }

    /// `SELECT COUNT() FROM object` on the connection's org, when this process can log in
    /// to it and the org answers.
    pub(super) async fn salesforce_count(
        &self,
        connections: &[connections::ConnectionRow],
        connection: &str,
        object: &str,
    ) -> Option<u64> {
        let row = connections.iter().find(|c| c.name == connection)?;
        let live = self.engine.live(row).ok()??;
        let object = soql::name(object).ok()?;
        live.salesforce
            .count(&format!("SELECT COUNT() FROM {object}"))
            .await
            .ok()
    }
}

/// The non-zero drift counts of a reconcile summary (JSON object of kind → count).
fn drift_kinds(summary: Option<&str>) -> Vec<(String, u64)> {
    let Some(summary) = summary else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Object(kinds)) = serde_json::from_str(summary) else {
        return Vec::new();
    };
    kinds
        .into_iter()
        .filter_map(|(kind, n)| Some((kind.replace('_', " "), n.as_u64()?)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// What `pgforce status` counts exactly and a scrape estimates or leaves out.
#[derive(Debug, Default)]
pub(super) struct Counted {
    pub postgres_count: Option<u64>,
    pub salesforce_count: Option<u64>,
    pub rejected: u64,
    pub rejected_first: Vec<RejectedRow>,
    pub drift: Vec<(String, u64)>,
}

/// A mapping's status from its catalog report and what was counted of it.
pub(super) fn mapping_status(report: status::MappingReport, counted: Counted) -> MappingStatus {
    MappingStatus {
        id: report.id,
        connection: report.connection,
        object: report.object,
        state: report.state,
        paused: report.paused,
        salesforce_count: counted.salesforce_count,
        postgres_count: counted.postgres_count,
        last_sync: report.last_sync,
        seconds_since_sync: report.seconds_since_sync,
        last_error: report.last_error,
        activity: report.activity,
        drift: counted.drift,
        drift_checked: report.drift_checked,
        rejected: counted.rejected,
        rejected_first: counted.rejected_first,
        events_transport: report.events_transport,
        last_event: report.last_event,
    }
}

/// Every writer's status, with the first `stuck_shown` changes each is stuck on (none
/// read when 0).
pub(super) async fn writer_statuses(pg: &Session, stuck_shown: i64) -> Result<Vec<WriterStatus>> {
    let catalog = Error::catalog;
    let mut writers = Vec::new();
    for writer in status::writers(pg).await.map_err(catalog)? {
        let schema = Ident::new(&writer.schema).map_err(catalog)?;
        let stuck = if stuck_shown > 0 {
            queue::stuck(pg, &schema, stuck_shown)
                .await
                .map_err(catalog)?
        } else {
            Vec::new()
        };
        writers.push(WriterStatus {
            queue: queue::counts(pg, &schema).await.map_err(catalog)?,
            stuck,
            connection: writer.name,
            schema: writer.schema,
            holder: writer.holder,
            state: writer.state,
            last_error: writer.last_error,
        });
    }
    Ok(writers)
}

/// Every connection's status.
pub(super) fn connection_statuses(rows: Vec<connections::ConnectionRow>) -> Vec<ConnectionStatus> {
    rows.into_iter()
        .map(|row| ConnectionStatus {
            name: row.name,
            state: row.state,
            last_error: row.last_error,
        })
        .collect()
}
