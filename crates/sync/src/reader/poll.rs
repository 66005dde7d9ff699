//! Polling: what changed since the cursor, page by page, each page one transaction that
//! advances the cursor (REST pages, or a Bulk query job when many changed).
//!
//! Overlap: Salesforce stamps a record when its transaction writes it, so a long
//! transaction can make a record visible with a stamp older than a cursor that already
//! moved on. Each poll therefore reads again a window before its cursor
//! (`poll_overlap_seconds`) and skips the records whose row already holds that version;
//! the cursor never moves back.
//!
//! Released cursors: Salesforce keeps a limited number of open query cursors per user and
//! answers `INVALID_QUERY_LOCATOR` for one it released. The pages applied so far have moved
//! the cursor, so the poll simply starts over from it.

use std::time::{Duration, Instant};

use futures_util::{StreamExt as _, TryStreamExt as _};
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{Client as Salesforce, soql};
use pgforce_store::catalog::cursors::{self, ReadCursor};
use pgforce_store::catalog::rejected;
use pgforce_store::table::apply::{
    ApplyStatements, already_applied, apply_records, delete_read_record, deleted_since_read,
};
use pgforce_store::{MappingState, OwnWrite, Session as Postgres};
use serde_json::Value;

use super::bulk;
use crate::conflict;
use crate::error::{CURSOR_RESTARTS, Error, Result};

use super::{ReadOutcome, Target, row_values, soql_datetime, text_of};

/// Reads and applies what changed in Salesforce since the cursor, with the default
/// overlap (tests poll one at a time).
#[cfg(feature = "test-support")]
pub async fn poll_once(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
) -> Result<ReadOutcome> {
    poll_with_overlap(sf, pg, target, crate::config::DEFAULT_POLL_OVERLAP).await
}

/// Reads and applies what changed in Salesforce since `overlap` before the cursor.
pub async fn poll_with_overlap(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    overlap: Duration,
) -> Result<ReadOutcome> {
    target.set_state(pg, MappingState::PollingSfChanges).await?;
    let mut outcome = ReadOutcome::default();
    let mut restarts = 0;
    loop {
        match read_changes(sf, pg, target, overlap, &mut outcome).await {
            Err(error) if error.is_cursor_released() && restarts < CURSOR_RESTARTS => {
                restarts += 1;
                tracing::warn!(object = %target.mapping.object, error = %error.chain(), "Salesforce released the poll's query cursor; reading again from where the poll got to");
            }
            result => {
                result?;
                break;
            }
        }
    }
    target.finish(&*pg, &outcome).await?;
    Ok(outcome)
}

/// One pass over the changes since the cursor (less the overlap), adding to `outcome`.
async fn read_changes(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    overlap: Duration,
    outcome: &mut ReadOutcome,
) -> Result<()> {
    let mapping = target.mapping;
    let object = soql::name(&mapping.object).map_err(|e| target.sf_error(e))?;
    let cursor = cursors::load(&*pg, target.mapping_id)
        .await
        .map_err(|e| target.store_error(e))?;
    let filter = match &cursor {
        None => String::new(),
        Some(c) if !overlap.is_zero() => {
            let start = cursors::window_start(&*pg, c, overlap)
                .await
                .map_err(|e| target.store_error(e))?;
            format!(" WHERE SystemModstamp >= {start}")
        }
        Some(c) if c.last_sfid.is_empty() => {
            format!(" WHERE SystemModstamp >= {}", c.system_modstamp)
        }
        Some(c) => format!(
            " WHERE SystemModstamp >= {stamp} AND (SystemModstamp > {stamp} OR Id > {id})",
            stamp = c.system_modstamp,
            id = soql::quote(&c.last_sfid)
        ),
    };
    let has_is_deleted = mapping.fields.iter().any(|f| f.api_name == "IsDeleted");
    let query = format!(
        "SELECT {} FROM {object}{filter} ORDER BY SystemModstamp, Id",
        mapping.select_list()
    );
    let statements = ApplyStatements::new(&mapping.row_shape(target.schema)?);
    let mut pages = changed_pages(sf, pg, target, &query, has_is_deleted, outcome).await?;
    // Where the cursor must stay for the rest of the poll: before the first record whose
    // local change won (see `conflict`), so the record is read again once that change is
    // settled, whether it was sent, refused or ignored.
    let mut hold: Option<ReadCursor> = None;
    while let Some(records) = pages.try_next().await? {
        outcome.api_calls += 1;
        let started = Instant::now();
        tracing::info!(
            "{} QUERY ↷SALESFORCE {} rows",
            mapping.object,
            records.len()
        );
        let tx = OwnWrite::on_table(target.schema, &mapping.table)
            .fenced(target.fence)
            .begin(pg)
            .await
            .map_err(|e| target.store_error(e))?;
        let mut last: Option<ReadCursor> = None;
        let mut changed: Vec<Vec<Option<String>>> = Vec::with_capacity(records.len());
        let page_rejected = outcome.rejected.len();
        let live: Vec<(String, String)> = records
            .iter()
            .filter(|r| r.get("IsDeleted") != Some(&Value::Bool(true)))
            .filter_map(|r| {
                Some((
                    text_of(r, "Id")?.to_owned(),
                    text_of(r, "SystemModstamp")?.to_owned(),
                ))
            })
            .collect();
        // Records the overlap read again (at or before the cursor, or at the stamp of a
        // cursor without an Id: a load's, which reads its whole stamp again) that the table
        // already holds, or that are kept as rejected; those after it are applied unless the
        // row holds a newer version (a re-read of the same version after fields were added
        // fills their columns).
        let overlapped: Vec<(String, String)> = live
            .iter()
            .filter(|(sfid, stamp)| {
                let at = ReadCursor {
                    system_modstamp: soql_datetime(stamp),
                    last_sfid: sfid.clone(),
                };
                cursor.as_ref().is_some_and(|c| {
                    !is_ahead(&at, Some(c))
                        || (c.last_sfid.is_empty() && c.system_modstamp == at.system_modstamp)
                })
            })
            .cloned()
            .collect();
        let mut held = already_applied(&tx, &statements, &overlapped)
            .await
            .map_err(|e| target.store_error(e))?;
        // Records already kept as rejected were reported when first read.
        let overlapped_ids: Vec<&str> = overlapped.iter().map(|(id, _)| id.as_str()).collect();
        held.extend(
            rejected::kept_among(&*tx, target.mapping_id, &overlapped_ids)
                .await
                .map_err(|e| target.store_error(e))?,
        );
        // Records a change event deleted after this page was read stay deleted (an older
        // version never replaces a newer row either: see `apply_records`).
        held.extend(
            deleted_since_read(&tx, &statements, &live)
                .await
                .map_err(|e| target.store_error(e))?,
        );
        let stamps: Vec<(String, String)> = live
            .into_iter()
            .filter(|(sfid, _)| !held.contains(sfid))
            .collect();
        let settled = conflict::settle(&tx, target, &stamps).await?;
        outcome.local_wins += settled.local_wins.len() as u64;
        outcome.superseded += settled.superseded;
        for record in &records {
            let sfid = text_of(record, "Id").unwrap_or_default().to_owned();
            if let Some(stamp) = text_of(record, "SystemModstamp") {
                if hold.is_none() && settled.local_wins.contains(&sfid) {
                    // Without an Id, the next poll reads this whole stamp again.
                    hold = Some(ReadCursor {
                        system_modstamp: soql_datetime(stamp),
                        last_sfid: String::new(),
                    });
                }
                last = Some(ReadCursor {
                    system_modstamp: soql_datetime(stamp),
                    last_sfid: sfid.clone(),
                });
            }
            if record.get("IsDeleted") == Some(&Value::Bool(true)) {
                let removed = delete_read_record(&tx, &statements, &sfid)
                    .await
                    .map_err(|e| target.store_error(e))?;
                outcome.deleted += removed;
                continue;
            }
            if held.contains(&sfid) || settled.local_wins.contains(&sfid) {
                continue;
            }
            match row_values(mapping, record) {
                Ok(values) => changed.push(values),
                Err(rejected) => outcome.rejected.push(rejected),
            }
        }
        outcome.applied += apply_records(&tx, &statements, &changed)
            .await
            .map_err(|e| target.store_error(e))?;
        // Kept before the cursor moves past them, in the same transaction.
        let rejected = &outcome.rejected[page_rejected..];
        super::settle_rejected(&tx, target, &records, &changed, rejected).await?;
        let next = hold.as_ref().or(last.as_ref());
        if let Some(next) = next.filter(|next| is_ahead(next, cursor.as_ref())) {
            // The cursor moves in the transaction that applied these rows (worker
            // contract), and only forward: the overlap's pages lie behind it.
            cursors::save(&*tx, target.mapping_id, next)
                .await
                .map_err(|e| target.store_error(e))?;
        }
        tx.commit("a poll page")
            .await
            .map_err(|e| target.store_error(e))?;
        tracing::info!(
            "{} UPDATE ↓DATABASE {} rows ({:.2} secs)",
            mapping.object,
            records.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Whether `next` lies after `cursor` (by stamp, then Id; stamps share one format).
fn is_ahead(next: &ReadCursor, cursor: Option<&ReadCursor>) -> bool {
    cursor.is_none_or(|c| {
        (next.system_modstamp.as_str(), next.last_sfid.as_str())
            > (c.system_modstamp.as_str(), c.last_sfid.as_str())
    })
}

/// Pages of records changed since the cursor: REST query pages, or, when the first page
/// says more than the mapping's bulk threshold changed, the results of a Bulk API query
/// job running the same query (shaped as REST's records).
async fn changed_pages(
    sf: &Salesforce,
    pg: &Postgres,
    target: &Target<'_>,
    query: &str,
    include_deleted: bool,
    outcome: &mut ReadOutcome,
) -> Result<RecordPages> {
    let mapping = target.mapping.clone();
    let object = mapping.object.clone();
    let sf_error = move |source| Error::salesforce(&object, source);
    let mut rest = Box::pin(sf.query_pages(query, include_deleted));
    let Some(first) = rest.try_next().await.map_err(|e| target.sf_error(e))? else {
        return Ok(Box::pin(futures_util::stream::empty()));
    };
    if first.done || first.total_size <= mapping.spec.bulk_threshold {
        let rest = rest.map(move |page| page.map(|p| p.records).map_err(&sf_error));
        return Ok(Box::pin(
            futures_util::stream::once(async move { Ok(first.records) }).chain(rest),
        ));
    }
    outcome.api_calls += 1;
    tracing::info!(object = %mapping.object, changed = first.total_size, "many changes; reading them through a Bulk API query job");
    target.set_state(pg, MappingState::PollingSfBulk).await?;
    let (job, calls) = bulk::run_query_job(sf, pg, target.mapping_id, query, include_deleted)
        .await
        .map_err(|e| target.sf_error(e))?;
    outcome.api_calls += calls;
    let results = sf.query_job_results(&job, bulk::PAGE_RECORDS);
    Ok(Box::pin(results.map(move |page| {
        page.map_err(&sf_error)
            .and_then(|page| bulk::records(&mapping, &page))
    })))
}

/// A stream of pages of records, whichever API they came through.
type RecordPages = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Vec<Record>>> + Send>>;
