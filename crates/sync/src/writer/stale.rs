//! Records a writer created after it lost its lease, and what becomes of them (plain
//! creates only: an upsert sent again by the writer that took over finds the record a late
//! upsert created by its external id).
//!
//! A writer checks its lease right before each request leaves; a process frozen in the
//! instant between that check and the bytes reaching the socket still sends its request
//! when it wakes, after another process took the lease over and sent the same rows again.
//! Such a writer cannot record the outcome (the fence refuses it); it reports the Ids it
//! created instead ([`report_if_fenced`]). The connection's current writer — the only one
//! that adopts records, so nothing races it — deletes each reported record that no row
//! owns ([`settle_stale_creates`]); a record the current writer adopted as its own is kept.

use std::collections::BTreeMap;

use pgforce_store::catalog::stale_creates::{self, StaleCreate};
use pgforce_store::trigger_log::outcomes::Recording;
use pgforce_store::trigger_log::resume::owned_sfids;
use pgforce_store::{Error as StoreError, Session as Postgres};

use super::{Pass, log_error};
use crate::error::{Error, Result};
use crate::mapping::Mapping;

/// After recording failed: when the lease had moved on (this process's clock says it can
/// no longer be trusted, or the fence refused the commit), reports the records the wave
/// created, so the current writer can remove them.
pub(super) async fn report_if_fenced(
    pass: &Pass<'_>,
    pg: &Postgres,
    mapping: &Mapping,
    recording: &Recording,
    error: &Error,
) {
    let fenced = match error {
        Error::LeaseLost { .. } => true,
        Error::Store { source, .. } => source.is_fenced(),
        _ => false,
    };
    // Only plain creates: a record an upsert created late is the one the writer that took
    // over finds by the external id when it sends the row again, never a second record.
    let (Some((_, connection)), true, None) = (pass.lease, fenced, &mapping.upsert_column) else {
        return;
    };
    let created = recording.created_sfids();
    if created.is_empty() {
        return;
    }
    match stale_creates::report(pg, connection, mapping.table.as_str(), created).await {
        Ok(()) => tracing::warn!(
            connection,
            table = %mapping.table,
            records = created.len(),
            "created records after losing the lease; reported them to the writer that took over"
        ),
        Err(error) => tracing::error!(
            connection,
            table = %mapping.table,
            records = created.len(),
            error = %crate::error::chain(&error),
            "created records after losing the lease and could not report them"
        ),
    }
}

/// Deletes the reported records no row owns; keeps (and marks) those a row owns. Runs
/// under the lease, between passes. Returns how many records were deleted.
pub(crate) async fn settle_stale_creates(pass: &Pass<'_>, pg: &mut Postgres) -> Result<u64> {
    let Some((_, connection)) = pass.lease else {
        return Ok(0);
    };
    let reports = stale_creates::open(&*pg, connection)
        .await
        .map_err(log_error)?;
    let mut by_table: BTreeMap<String, Vec<StaleCreate>> = BTreeMap::new();
    for report in reports {
        by_table
            .entry(report.table.clone())
            .or_default()
            .push(report);
    }
    let mut deleted = 0;
    for (table, reports) in by_table {
        let Some(mapping) = pass.by_table.get(table.as_str()).copied() else {
            let ids: Vec<i64> = reports.iter().map(|r| r.id).collect();
            handled(pg, &ids, "unmapped").await?;
            continue;
        };
        deleted += settle_table(pass, pg, mapping, &reports).await?;
    }
    if deleted > 0 {
        tracing::warn!(
            connection,
            records = deleted,
            "deleted records a writer created after losing its lease (their rows were sent again)"
        );
    }
    Ok(deleted)
}

async fn settle_table(
    pass: &Pass<'_>,
    pg: &mut Postgres,
    mapping: &Mapping,
    reports: &[StaleCreate],
) -> Result<u64> {
    let sfids: Vec<&str> = reports.iter().map(|r| r.sfid.as_str()).collect();
    let owned = owned_sfids(&*pg, pass.schema, &mapping.table, &sfids)
        .await
        .map_err(|e| Error::store(&mapping.object, e))?;
    let (kept, orphans): (Vec<&StaleCreate>, Vec<&StaleCreate>) =
        reports.iter().partition(|r| owned.contains(&r.sfid));
    handled(pg, &kept.iter().map(|r| r.id).collect::<Vec<_>>(), "owned").await?;
    let mut deleted = 0;
    for chunk in orphans.chunks(pgforce_salesforce::rest::collections::MAX_WRITE_RECORDS) {
        pass.fence()?;
        let ids: Vec<&str> = chunk.iter().map(|r| r.sfid.as_str()).collect();
        let results = pass
            .sf
            .delete_records(&ids, false)
            .await
            .map_err(|e| Error::salesforce(&mapping.object, e.into_error()))?;
        // Deleted now, or gone already: either way nothing duplicates the row any more.
        let done: Vec<i64> = chunk
            .iter()
            .zip(&results)
            .filter(|(_, result)| {
                result.success
                    || result.errors.iter().any(|e| {
                        matches!(
                            e.code,
                            pgforce_salesforce::ApiErrorCode::EntityIsDeleted
                                | pgforce_salesforce::ApiErrorCode::NotFound
                                | pgforce_salesforce::ApiErrorCode::InvalidCrossReferenceKey
                        )
                    })
            })
            .map(|(report, _)| report.id)
            .collect();
        deleted += done.len() as u64;
        handled(pg, &done, "deleted").await?;
    }
    Ok(deleted)
}

async fn handled(pg: &Postgres, ids: &[i64], outcome: &str) -> Result<()> {
    stale_creates::handled(pg, ids, outcome)
        .await
        .map_err(|e: StoreError| log_error(e))
}
