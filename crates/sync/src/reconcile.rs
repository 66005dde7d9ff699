//! Does Postgres hold what Salesforce holds? Comparing a mapping's records with its rows,
//! and repairing what differs.
//!
//! Cheap on large objects: only `Id` and `SystemModstamp` are read from Salesforce (through
//! a Bulk API query job above the mapping's bulk threshold) and from Postgres, and
//! compared in memory. A row whose stamp differs from its record's holds other values than
//! Salesforce (older or newer), so it counts as differing. Local changes that never reached
//! Salesforce are read from the trigger log and the rows without `sfid`.
//!
//! Repair: missing and differing records are read again and stored; rows whose record is
//! gone from Salesforce are deleted; rows that never reached Salesforce and failed changes
//! are queued again for the writer.

use std::collections::HashMap;

use futures_util::{StreamExt as _, TryStreamExt as _};
use pgforce_salesforce::{Client as Salesforce, soql};
use pgforce_store::catalog::{mappings, rejected};
use pgforce_store::table::rows;
use pgforce_store::trigger_log::queue;
use pgforce_store::{Access, MappingId, Session as Postgres};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::reader::bulk;
use crate::reader::{Target, refresh_records};

/// How one mapping's two sides differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// Live records in Salesforce.
    pub salesforce_records: u64,
    /// Rows in Postgres.
    pub postgres_rows: u64,
    /// Records with no row (sfids).
    pub missing_in_postgres: Vec<String>,
    /// Rows whose record no longer exists in Salesforce (sfids).
    pub gone_from_salesforce: Vec<String>,
    /// Rows whose `SystemModstamp` is not their record's (sfids).
    pub differing: Vec<String>,
    /// Rows inserted in Postgres that have no `sfid` (row ids).
    pub never_sent: Vec<i32>,
    /// Captured changes not written yet: NEW, PENDING, HELD or FAILED trigger-log rows.
    pub unsent_changes: u64,
    /// Records kept as rejected: read, but their values do not fit their columns.
    pub rejected: u64,
}

impl Drift {
    /// Whether both sides agree.
    pub fn is_clean(&self) -> bool {
        self.missing_in_postgres.is_empty()
            && self.gone_from_salesforce.is_empty()
            && self.differing.is_empty()
            && self.never_sent.is_empty()
            && self.unsent_changes == 0
            && self.rejected == 0
    }

    /// The counts, for the catalog and `pgforce status`.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "salesforce_records": self.salesforce_records,
            "postgres_rows": self.postgres_rows,
            "missing_in_postgres": self.missing_in_postgres.len(),
            "gone_from_salesforce": self.gone_from_salesforce.len(),
            "differing": self.differing.len(),
            "never_sent": self.never_sent.len(),
            "unsent_changes": self.unsent_changes,
            "rejected": self.rejected,
        })
    }
}

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// Records read again and stored.
    pub refreshed: u64,
    /// Rows deleted because their record is gone.
    pub deleted: u64,
    /// Rows and failed changes queued again for the writer.
    pub requeued: u64,
}

/// `2024-01-01T10:00:05.123+0000` or `…123Z` → `2024-01-01T10:00:05.123`.
fn stamp_key(stamp: &str) -> String {
    stamp.chars().take(23).collect()
}

/// `Id → SystemModstamp` of every live record of the mapping's object.
async fn salesforce_stamps(
    sf: &Salesforce,
    pg: &Postgres,
    target: &Target<'_>,
) -> Result<HashMap<String, String>> {
    let mapping = target.mapping;
    let object =
        soql::name(&mapping.object).map_err(|e| Error::config(&mapping.object, e.to_string()))?;
    let query = format!("SELECT Id, SystemModstamp FROM {object}");
    let sf_error = |source| Error::salesforce(&mapping.object, source);
    let mut stamps = HashMap::new();
    let mut pages = Box::pin(sf.query_pages(&query, false));
    let Some(first) = pages.try_next().await.map_err(sf_error)? else {
        return Ok(stamps);
    };
    if !first.done && first.total_size > mapping.spec.bulk_threshold {
        drop(pages);
        let (job, _) = bulk::run_query_job(sf, pg, target.mapping_id, &query, false)
            .await
            .map_err(sf_error)?;
        let mut results = Box::pin(sf.query_job_results(&job, bulk::PAGE_RECORDS));
        while let Some(page) = results.next().await {
            for row in page.map_err(sf_error)?.rows {
                if let [id, stamp, ..] = row.as_slice() {
                    stamps.insert(id.clone(), stamp_key(stamp));
                }
            }
        }
        return Ok(stamps);
    }
    let mut add = |records: &[pgforce_salesforce::rest::Record]| {
        for record in records {
            if let (Some(id), Some(stamp)) = (
                record.get("Id").and_then(|v| v.as_str()),
                record.get("SystemModstamp").and_then(|v| v.as_str()),
            ) {
                stamps.insert(id.to_owned(), stamp_key(stamp));
            }
        }
    };
    add(&first.records);
    while let Some(page) = pages.try_next().await.map_err(sf_error)? {
        add(&page.records);
    }
    Ok(stamps)
}

/// Compares one mapping's records and rows.
pub async fn compare(sf: &Salesforce, pg: &Postgres, target: &Target<'_>) -> Result<Drift> {
    let mapping = target.mapping;
    let (schema, table) = (target.schema, &mapping.table);
    let object = mapping.object.as_str();
    let store = |e| Error::store(object, e);
    let remote = salesforce_stamps(sf, pg, target).await?;
    let rows = rows::stamps(pg, schema, table).await.map_err(store)?;
    let mut drift = Drift {
        salesforce_records: remote.len() as u64,
        postgres_rows: rows.len() as u64,
        ..Drift::default()
    };
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    for row in rows {
        let Some(sfid) = row.sfid else {
            drift.never_sent.push(row.id);
            continue;
        };
        match remote.get(&sfid) {
            None => drift.gone_from_salesforce.push(sfid.clone()),
            Some(remote_stamp) if row.stamp.as_deref() != Some(remote_stamp.as_str()) => {
                drift.differing.push(sfid.clone());
            }
            Some(_) => {}
        }
        seen.insert(sfid);
    }
    drift.missing_in_postgres = remote
        .keys()
        .filter(|id| !seen.contains(*id))
        .cloned()
        .collect();
    drift.missing_in_postgres.sort();
    drift.rejected = rejected::count(pg, target.mapping_id)
        .await
        .map_err(store)?;
    if mapping.spec.access == Access::ReadWrite {
        drift.unsent_changes = queue::unsent_count(pg, schema, table)
            .await
            .map_err(store)?;
        // A row without sfid whose insert is queued or failed is an unsent change, not lost.
        let queued = queue::unsent_inserts(pg, schema, table)
            .await
            .map_err(store)?;
        drift.never_sent.retain(|id| !queued.contains(id));
    }
    Ok(drift)
}

/// Records the drift counts on the mapping (shown by `pgforce status`).
pub async fn record(pg: &Postgres, mapping_id: MappingId, drift: &Drift) -> Result<()> {
    mappings::record_drift(pg, mapping_id, &drift.summary().to_string())
        .await
        .map_err(Error::catalog)
}

/// Repairs what [`compare`] found.
pub async fn repair(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    drift: &Drift,
) -> Result<Repair> {
    let mapping = target.mapping;
    let (schema, table) = (target.schema, &mapping.table);
    let object = mapping.object.as_str();
    let store = |e| Error::store(object, e);
    let mut done = Repair::default();
    let stale: Vec<String> = drift
        .missing_in_postgres
        .iter()
        .chain(&drift.differing)
        .cloned()
        .collect();
    if !stale.is_empty() {
        done.refreshed = refresh_records(sf, pg, target, &stale).await?;
    }
    if !drift.gone_from_salesforce.is_empty() {
        done.deleted = rows::delete_by_sfids(pg, schema, table, &drift.gone_from_salesforce)
            .await
            .map_err(store)?;
    }
    if mapping.spec.access == Access::ReadWrite {
        done.requeued += queue::requeue_failed(&*pg, schema, table)
            .await
            .map_err(store)?;
        done.requeued += queue::capture_inserts(&*pg, schema, table, &drift.never_sent)
            .await
            .map_err(store)?;
    }
    Ok(done)
}
