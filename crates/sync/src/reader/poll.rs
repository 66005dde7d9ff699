//! Polling: what changed since the cursor, page by page, each page one transaction that
//! advances the cursor (REST pages, or a Bulk query job when many changed).

use std::time::Instant;

use futures_util::{StreamExt as _, TryStreamExt as _};
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{Client as Salesforce, soql};
use pgforce_store::catalog::cursors::{self, ReadCursor};
use pgforce_store::table::apply::{ApplyStatements, apply_records, delete_record};
use pgforce_store::{MappingState, OwnWrite, Session as Postgres};
use serde_json::Value;

use super::bulk;
use crate::conflict;
use crate::error::{Error, Result};

use super::{ReadOutcome, Target, row_values, soql_datetime, text_of};

/// Reads and applies what changed in Salesforce since the cursor.
pub async fn poll_once(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
) -> Result<ReadOutcome> {
    let mapping = target.mapping;
    let object = soql::name(&mapping.object).map_err(|e| target.sf_error(e))?;
    target.set_state(pg, MappingState::PollingSfChanges).await?;
    let cursor = cursors::load(&*pg, target.mapping_id)
        .await
        .map_err(|e| target.store_error(e))?;
    let filter = match &cursor {
        None => String::new(),
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
    let mut outcome = ReadOutcome::default();
    let mut pages = changed_pages(sf, pg, target, &query, has_is_deleted, &mut outcome).await?;
    // Where the cursor must stay for the rest of the poll: before the first record whose
    // local change was in flight when it was read (see `conflict`).
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
        let stamps: Vec<(String, String)> = records
            .iter()
            .filter(|r| r.get("IsDeleted") != Some(&Value::Bool(true)))
            .filter_map(|r| {
                Some((
                    text_of(r, "Id")?.to_owned(),
                    text_of(r, "SystemModstamp")?.to_owned(),
                ))
            })
            .collect();
        let settled = conflict::settle(&tx, target, &stamps).await?;
        outcome.local_wins += settled.local_wins.len() as u64;
        outcome.superseded += settled.superseded;
        for record in &records {
            let sfid = text_of(record, "Id").unwrap_or_default().to_owned();
            if let Some(stamp) = text_of(record, "SystemModstamp") {
                if hold.is_none() && settled.in_flight.contains(&sfid) {
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
                let removed = delete_record(&tx, &statements, &sfid)
                    .await
                    .map_err(|e| target.store_error(e))?;
                outcome.deleted += removed;
                continue;
            }
            if settled.local_wins.contains(&sfid) {
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
        if let Some(cursor) = hold.as_ref().or(last.as_ref()) {
            // The cursor moves in the transaction that applied these rows (worker contract).
            cursors::save(&*tx, target.mapping_id, cursor)
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
    target.finish(&*pg, &outcome).await?;
    Ok(outcome)
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
