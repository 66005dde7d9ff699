//! The snapshot: the database's time, every record's `Id` and `SystemModstamp`, every
//! row's `sfid` and stamp, in that order, compared in memory.

use std::collections::{HashMap, HashSet};

use futures_util::{StreamExt as _, TryStreamExt as _};
use pgforce_salesforce::{Client as Salesforce, soql};
use pgforce_store::catalog::rejected;
use pgforce_store::table::{repair as repair_rows, rows};
use pgforce_store::trigger_log::queue;
use pgforce_store::{Access, Session as Postgres};

use super::Drift;
use crate::error::{Error, Result};
use crate::reader::Target;
use crate::reader::bulk;

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

/// Compares one mapping's records and rows. The drift notes when the comparison began
/// (the database's time, before Salesforce is read), for [`super::repair`].
pub async fn compare(sf: &Salesforce, pg: &Postgres, target: &Target<'_>) -> Result<Drift> {
    let mapping = target.mapping;
    let (schema, table) = (target.schema, &mapping.table);
    let object = mapping.object.as_str();
    let store = |e| Error::store(object, e);
    let started = repair_rows::database_time(pg).await.map_err(store)?;
    let remote = salesforce_stamps(sf, pg, target).await?;
    let rows = rows::stamps(pg, schema, table).await.map_err(store)?;
    let mut drift = Drift {
        snapshot_started_at: Some(started),
        salesforce_records: remote.len() as u64,
        postgres_rows: rows.len() as u64,
        ..Drift::default()
    };
    let mut seen = HashSet::with_capacity(rows.len());
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
