//! Unarchive: archived records re-created in Salesforce, children re-linked, and removed
//! from the archive.
//!
//! Every createable mapped field is sent (external ids included, so they are kept). A
//! lookup that points at a record restored earlier (any archived object: restore parents
//! first, then their children) is rewritten to the parent's new Id before the child is
//! created; the old Id → new Id pairs stay in `pgforce.archive_records`. Live children in
//! Salesforce cannot point at an archived parent: Salesforce cleared or deleted them with
//! it.
//!
//! Creates are not idempotent, so a create in doubt must never be sent twice blindly.
//! Each batch is marked `restoring` in the catalog (committed) before its call; a run that
//! finds records still `restoring` looks for them first, as the writer does for its own
//! creates in doubt (`writer::resume`): records created since the call (less a clock
//! margin) carrying every value sent, not already taken. A match is adopted as the
//! restored record; the others are sent again.

use std::collections::HashSet;

use pgforce_salesforce::Client;
use pgforce_salesforce::rest::collections::MAX_WRITE_RECORDS;
use pgforce_store::archive_table::{self, ArchivedRow};
use pgforce_store::catalog::archive;
use pgforce_store::catalog::leases::Fence;
use pgforce_store::ddl::PgType;
use pgforce_store::{ConnectionId, Session};

use super::steps::{archive_table, begin};
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::plan::{Action, Change};
use crate::writer::{CLOCK_MARGIN_SECONDS, candidates, record_for, same_values};

/// What to restore.
pub struct UnarchiveTarget<'a> {
    /// The connection's client.
    pub salesforce: &'a Client,
    /// The connection's id.
    pub connection: ConnectionId,
    /// The connection's schema.
    pub schema: &'a pgforce_store::Ident,
    /// The object's mapping (what is sent: its createable fields).
    pub mapping: &'a Mapping,
    /// Only the records this job archived (default: every archived record of the object).
    pub job: Option<i64>,
    /// Records per create call (at most 200).
    pub batch: usize,
    /// The fence every transaction checks (`None` only in tests).
    pub fence: Option<&'a Fence>,
}

/// What an unarchive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unarchived {
    /// Records created again.
    pub restored: u64,
    /// Creates in doubt found done in Salesforce (adopted, not sent again).
    pub found: u64,
    /// Records Salesforce refused to create, with why (they stay archived).
    pub refused: Vec<(String, String)>,
}

/// Restores the archived records of the target; `stop_after_send` is asked after each
/// create call (batches from 1) and `true` stops right there, before the answer is
/// recorded, as a crash would (tests).
pub async fn unarchive(
    target: &UnarchiveTarget<'_>,
    pg: &mut Session,
    stop_after_send: &mut (dyn FnMut(usize) -> bool + Send),
) -> Result<Unarchived> {
    let mapping = target.mapping;
    let store = |e| Error::store(&mapping.object, e);
    let table = archive_table(target.schema, mapping)?;
    archive_table::ensure_archive_table(pg, &table)
        .await
        .map_err(store)?;
    let mut done = Unarchived::default();
    settle_in_doubt(target, pg, &table, &mut done).await?;
    let size = target.batch.clamp(1, MAX_WRITE_RECORDS) as i64;
    let mut after = String::new();
    let mut batch = 0;
    loop {
        let rows = archive_table::rows_after(&*pg, &table, target.job, &after, size)
            .await
            .map_err(store)?;
        let Some(last) = rows.last() else { break };
        after.clone_from(&last.sfid);
        batch += 1;
        let records = relinked(pg, mapping, &rows).await?;
        let marked: Vec<(i64, String)> = rows.iter().map(|r| (r.job, r.sfid.clone())).collect();
        // Committed before the call: a crash from here on leaves them in doubt.
        let tx = begin(pg, target.fence).await?;
        archive::mark_restoring(&*tx, &marked)
            .await
            .map_err(Error::catalog)?;
        tx.commit("marking creates in doubt")
            .await
            .map_err(Error::catalog)?;
        let answer = target
            .salesforce
            .create_records(&mapping.object, &records, false)
            .await;
        if stop_after_send(batch) {
            return Ok(done);
        }
        let (results, failure) = match answer {
            Ok(results) => (results.into_iter().map(Some).collect(), None),
            Err(failure) => {
                let (error, results) = failure.into_parts();
                (results, Some(error))
            }
        };
        let tx = begin(pg, target.fence).await?;
        let mut gone = Vec::new();
        for (row, result) in rows.iter().zip(&results) {
            match result {
                Some(result) if result.success => {
                    let new_sfid = result.id.clone().unwrap_or_default();
                    archive::record_restored(&*tx, row.job, &row.sfid, &new_sfid)
                        .await
                        .map_err(Error::catalog)?;
                    gone.push(row.sfid.clone());
                }
                Some(result) => {
                    let why: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
                    let why = why.join("; ");
                    archive::record_restore_refused(&*tx, row.job, &row.sfid, &why)
                        .await
                        .map_err(Error::catalog)?;
                    done.refused.push((row.sfid.clone(), why));
                }
                // In doubt: stays `restoring`, looked for on the next run.
                None => {}
            }
        }
        archive_table::remove_rows(&*tx, &table, &gone)
            .await
            .map_err(store)?;
        tx.commit("recording restored records")
            .await
            .map_err(Error::catalog)?;
        done.restored += gone.len() as u64;
        if let Some(error) = failure {
            return Err(Error::salesforce(&mapping.object, error));
        }
    }
    Ok(done)
}

/// The records to create for `rows`: createable fields, lookups to restored records
/// rewritten to their new Ids.
async fn relinked(
    pg: &Session,
    mapping: &Mapping,
    rows: &[ArchivedRow],
) -> Result<Vec<pgforce_salesforce::rest::Record>> {
    let lookups: Vec<&str> = mapping
        .fields
        .iter()
        .filter(|f| f.api_name != "Id" && f.pg_type == PgType::Varchar(18))
        .map(|f| f.column.as_str())
        .collect();
    let old: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            lookups
                .iter()
                .filter_map(|c| r.values.get(*c).cloned().flatten())
        })
        .collect();
    let new_ids = archive::new_ids(pg, &old).await.map_err(Error::catalog)?;
    Ok(rows
        .iter()
        .map(|row| {
            let mut change = change_of(mapping, row);
            for column in &lookups {
                if let Some(Some(value)) = change.values.get_mut(*column)
                    && let Some(new) = new_ids.get(value.as_str())
                {
                    value.clone_from(new);
                }
            }
            record_for(mapping, &change)
        })
        .collect())
}

fn change_of(mapping: &Mapping, row: &ArchivedRow) -> Change {
    Change {
        log_id: 0,
        table: mapping.table.as_str().to_owned(),
        action: Action::Insert,
        record_id: 0,
        sfid: None,
        values: row.values.clone(),
    }
}

/// Looks for the records a previous run may have created without recording it; adopts
/// those found, leaves the others to be sent again.
async fn settle_in_doubt(
    target: &UnarchiveTarget<'_>,
    pg: &mut Session,
    table: &archive_table::ArchiveTable,
    done: &mut Unarchived,
) -> Result<()> {
    let mapping = target.mapping;
    let in_doubt = archive::restoring(
        &*pg,
        target.connection,
        &mapping.object,
        CLOCK_MARGIN_SECONDS,
    )
    .await
    .map_err(Error::catalog)?;
    if in_doubt.is_empty() {
        return Ok(());
    }
    let sfids: Vec<String> = in_doubt.iter().map(|r| r.sfid.clone()).collect();
    let rows = archive_table::rows_of(&*pg, table, &sfids)
        .await
        .map_err(|e| Error::store(&mapping.object, e))?;
    let records = relinked(pg, mapping, &rows).await?;
    let pending: Vec<(Change, String)> = rows
        .iter()
        .map(|row| {
            let since = in_doubt
                .iter()
                .find(|r| r.sfid == row.sfid)
                .map(|r| r.since.clone())
                .unwrap_or_default();
            (change_of(mapping, row), since)
        })
        .collect();
    let since = pending
        .iter()
        .map(|(_, s)| s.clone())
        .min()
        .unwrap_or_default();
    let changes: Vec<&Change> = pending.iter().map(|(change, _)| change).collect();
    let found = candidates(target.salesforce, mapping, &changes, &since).await?;
    // Records restored already own their new Ids: never adopted twice.
    let found_ids: Vec<String> = found
        .iter()
        .filter_map(|r| r.get("Id")?.as_str().map(str::to_owned))
        .collect();
    let mut taken: HashSet<String> = archive::new_ids_taken(&*pg, &found_ids)
        .await
        .map_err(Error::catalog)?;
    let tx = begin(pg, target.fence).await?;
    let mut gone = Vec::new();
    for (row, wanted) in rows.iter().zip(&records) {
        let adopted = found.iter().find_map(|record| {
            let id = record.get("Id")?.as_str()?;
            (!taken.contains(id) && same_values(mapping, wanted, record)).then_some(id)
        });
        if let Some(new_sfid) = adopted {
            taken.insert(new_sfid.to_owned());
            archive::record_restored(&*tx, row.job, &row.sfid, new_sfid)
                .await
                .map_err(Error::catalog)?;
            gone.push(row.sfid.clone());
        }
    }
    archive_table::remove_rows(&*tx, table, &gone)
        .await
        .map_err(|e| Error::store(&mapping.object, e))?;
    tx.commit("adopting restores found in Salesforce")
        .await
        .map_err(Error::catalog)?;
    done.found += gone.len() as u64;
    done.restored += gone.len() as u64;
    Ok(())
}
