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
use pgforce_store::ddl::Access;
use serde::Serialize;
use tokio_postgres::Client as Postgres;

use crate::bulk_read;
use crate::error::{Error, Result};
use crate::mapping::Mapping;
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
}

impl Drift {
    /// Whether both sides agree.
    pub fn is_clean(&self) -> bool {
        self.missing_in_postgres.is_empty()
            && self.gone_from_salesforce.is_empty()
            && self.differing.is_empty()
            && self.never_sent.is_empty()
            && self.unsent_changes == 0
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

fn pg_error(object: &str, context: &str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let (object, context) = (object.to_owned(), context.to_owned());
    move |source| Error::Postgres {
        object,
        context,
        source,
    }
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
    let object = soql::name(&mapping.object).map_err(|e| target_error(mapping, e))?;
    let query = format!("SELECT Id, SystemModstamp FROM {object}");
    let sf_error = |source| Error::Salesforce {
        object: mapping.object.clone(),
        source: Box::new(source),
    };
    let mut stamps = HashMap::new();
    let mut pages = Box::pin(sf.query_pages(&query, false));
    let Some(first) = pages.try_next().await.map_err(sf_error)? else {
        return Ok(stamps);
    };
    if !first.done && first.total_size > mapping.spec.bulk_threshold {
        drop(pages);
        let (job, _) = bulk_read::run_query_job(sf, pg, target.mapping_id, &query, false)
            .await
            .map_err(sf_error)?;
        let mut results = Box::pin(sf.query_job_results(&job, bulk_read::PAGE_RECORDS));
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

fn target_error(mapping: &Mapping, error: impl std::fmt::Display) -> Error {
    Error::Config {
        object: mapping.object.clone(),
        problem: error.to_string(),
    }
}

/// Compares one mapping's records and rows.
pub async fn compare(sf: &Salesforce, pg: &Postgres, target: &Target<'_>) -> Result<Drift> {
    let mapping = target.mapping;
    let (schema, table) = (target.schema, &mapping.table);
    let object = mapping.object.as_str();
    let remote = salesforce_stamps(sf, pg, target).await?;
    let rows = pg
        .query(
            &format!(
                "select id, sfid::text, to_char(systemmodstamp, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')
                 from {schema}.{table}"
            ),
            &[],
        )
        .await
        .map_err(pg_error(object, "reading the rows' Ids and stamps"))?;
    let mut drift = Drift {
        salesforce_records: remote.len() as u64,
        postgres_rows: rows.len() as u64,
        ..Drift::default()
    };
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    for row in &rows {
        let (id, sfid, stamp): (i32, Option<String>, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        let Some(sfid) = sfid else {
            drift.never_sent.push(id);
            continue;
        };
        match remote.get(&sfid) {
            None => drift.gone_from_salesforce.push(sfid.clone()),
            Some(remote_stamp) if stamp.as_deref() != Some(remote_stamp.as_str()) => {
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
    if mapping.spec.access == Access::ReadWrite {
        drift.unsent_changes = pg
            .query_one(
                &format!(
                    "select count(*) from {schema}._trigger_log
                     where table_name = $1 and state in ('NEW', 'PENDING', 'HELD', 'FAILED')"
                ),
                &[&table.as_str()],
            )
            .await
            .map_err(pg_error(object, "counting unsent changes"))?
            .get::<_, i64>(0)
            .try_into()
            .unwrap_or_default();
        // A row without sfid whose insert is queued or failed is an unsent change, not lost.
        let queued: Vec<i32> = pg
            .query(
                &format!(
                    "select distinct record_id from {schema}._trigger_log
                     where table_name = $1 and action = 'INSERT' and state in ('NEW', 'PENDING', 'HELD', 'FAILED')"
                ),
                &[&table.as_str()],
            )
            .await
            .map_err(pg_error(object, "reading queued inserts"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        drift.never_sent.retain(|id| !queued.contains(id));
    }
    Ok(drift)
}

/// Records the drift counts on the mapping (shown by `pgforce status`).
pub async fn record(pg: &Postgres, mapping_id: i64, drift: &Drift) -> Result<()> {
    pg.execute(
        "update pgforce.mappings set drift = $2::text::jsonb || jsonb_build_object('checked_at', now()) where id = $1",
        &[&mapping_id, &drift.summary().to_string()],
    )
    .await
    .map_err(pg_error("(catalog)", "recording drift"))
    .map(|_| ())
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
        let tx = pg
            .transaction()
            .await
            .map_err(pg_error(object, "starting the repair"))?;
        tx.batch_execute("set local xmlbinary = 'hex'")
            .await
            .map_err(pg_error(object, "marking the session as pgforce's"))?;
        done.deleted = tx
            .execute(
                &format!("delete from {schema}.{table} where sfid = any($1)"),
                &[&drift.gone_from_salesforce],
            )
            .await
            .map_err(pg_error(object, "deleting rows whose record is gone"))?;
        tx.commit()
            .await
            .map_err(pg_error(object, "committing the repair"))?;
    }
    if mapping.spec.access == Access::ReadWrite {
        let log = format!("{schema}._trigger_log");
        done.requeued += pg
            .execute(
                &format!("update {log} set state = 'NEW', updated_at = now() where table_name = $1 and state = 'FAILED'"),
                &[&table.as_str()],
            )
            .await
            .map_err(pg_error(object, "queueing failed changes again"))?;
        if !drift.never_sent.is_empty() {
            done.requeued += pg
                .execute(
                    &format!(
                        "select {schema}.hc_capture_insert_from_row(hstore(t.*), $1) from {schema}.{table} t
                         where t.id = any($2) and t.sfid is null"
                    ),
                    &[&table.as_str(), &drift.never_sent],
                )
                .await
                .map_err(pg_error(object, "queueing rows that never reached Salesforce"))?;
        }
    }
    Ok(done)
}
