//! The initial load (and a reload): the whole object into its table, in one transaction
//! that also sets the cursor and marks a requested reload done; pages come from REST or
//! from a Bulk query job and are copied with COPY. Local work stays: rows not sent yet
//! and rows with unsent changes are kept (see `pgforce_store::table::load`).

use std::time::Instant;

use futures_util::{StreamExt as _, TryStreamExt as _};
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{Client as Salesforce, soql};
use pgforce_store::catalog::cursors::{self, ReadCursor};
use pgforce_store::catalog::{mappings, rejected};
use pgforce_store::table::load::Load;
use pgforce_store::{MappingState, Session as Postgres};

use super::bulk;
use crate::convert::push_copy_field;
use crate::error::{Error, Result};
use crate::mapping::Mapping;

use super::{ReadOutcome, RejectedRecord, Target, rejections, row_values, soql_datetime, text_of};

/// Loads the whole object into its table (keeping local work) and sets the cursor.
pub async fn initial_load(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ReadOutcome> {
    let mapping = target.mapping;
    let object = soql::name(&mapping.object).map_err(|e| target.sf_error(e))?;
    let shape = mapping.row_shape(target.schema)?;
    target.set_state(pg, MappingState::ReloadTable).await?;
    let newest_soql = format!(
        "SELECT Id, SystemModstamp FROM {object} ORDER BY SystemModstamp DESC, Id DESC LIMIT 1"
    );
    let newest: Vec<Record> = sf
        .query_all(&newest_soql)
        .try_collect()
        .await
        .map_err(|e| target.sf_error(e))?;
    let newest_stamp = newest
        .first()
        .and_then(|r| text_of(r, "SystemModstamp"))
        .map(soql_datetime);

    let soql = format!("SELECT {} FROM {object}", mapping.select_list());
    let mut outcome = ReadOutcome {
        api_calls: 1,
        ..ReadOutcome::default()
    };
    // The first page says how many records there are; above the threshold they come
    // through a Bulk API query job instead, run to completion before the load's
    // transaction starts.
    let mut rest: RestPages = Box::pin(sf.query_pages(&soql, false));
    let first = rest.try_next().await.map_err(|e| target.sf_error(e))?;
    outcome.api_calls += 1;
    let source = match first {
        Some(page) if !page.done && page.total_size > mapping.spec.bulk_threshold => {
            drop(rest);
            target.set_state(pg, MappingState::WaitBulkLoad).await?;
            let (id, calls) = bulk::run_query_job(sf, pg, target.mapping_id, &soql, false)
                .await
                .map_err(|e| target.sf_error(e))?;
            outcome.api_calls += calls;
            target.set_state(pg, MappingState::LoadingBulkJob).await?;
            mappings::set_activity(
                &*pg,
                target.mapping_id,
                &format!("loading the results of bulk query job {id}"),
            )
            .await
            .map_err(|e| target.store_error(e))?;
            LoadSource::Bulk(id)
        }
        first => LoadSource::Rest(first, rest),
    };

    let mut load = Load::begin(pg, &shape, target.fence)
        .await
        .map_err(|e| target.store_error(e))?;
    // Pages are fetched and turned into COPY text on their own task while the previous
    // page is copied: a one-slot channel keeps at most two pages in memory.
    let (pages_tx, mut pages) = tokio::sync::mpsc::channel(1);
    let fetcher = tokio::spawn(fetch_load_pages(
        sf.clone(),
        mapping.clone(),
        source,
        pages_tx,
    ));
    // Leaving the loop early (an error, a cancelled load) stops the fetcher too.
    let _fetcher = AbortOnDrop(fetcher);
    while let Some(page) = pages.recv().await.transpose()? {
        let started = Instant::now();
        outcome.api_calls += page.calls;
        outcome.rejected.extend(page.rejected);
        load.copy_page(page.text)
            .await
            .map_err(|e| target.store_error(e))?;
        outcome.applied += page.rows;
        tracing::info!(
            "{} INSERT ↓DATABASE {} rows ({:.2} secs)",
            mapping.object,
            page.rows,
            started.elapsed().as_secs_f64()
        );
        progress(outcome.applied);
    }
    let left_out = load.merge().await.map_err(|e| target.store_error(e))?;
    // Records left out for kept rows are read again by the polls, from the oldest of them.
    let start = match (newest_stamp, left_out.oldest_stamp) {
        (Some(newest), Some(oldest)) => Some(newest.min(oldest)),
        (newest, oldest) => newest.or(oldest),
    };
    if let Some(stamp) = start {
        // The cursor starts at the newest record that existed when the load began (or the
        // oldest one left out), with no Id: the first poll re-reads that whole stamp, so
        // nothing changed during the load is missed. Same transaction as the rows (worker
        // contract).
        let cursor = ReadCursor {
            system_modstamp: stamp,
            last_sfid: String::new(),
        };
        cursors::save(load.transaction(), target.mapping_id, &cursor)
            .await
            .map_err(|e| target.store_error(e))?;
    }
    // The load read every record: those it did not reject were stored (or are gone).
    // Kept in the load's transaction, with its rows and cursor.
    let kept: Vec<&str> = outcome.rejected.iter().map(|r| r.sfid.as_str()).collect();
    rejected::keep_only(load.transaction(), target.mapping_id, &kept)
        .await
        .map_err(|e| target.store_error(e))?;
    rejected::record(
        load.transaction(),
        target.mapping_id,
        &rejections(&outcome.rejected),
    )
    .await
    .map_err(|e| target.store_error(e))?;
    // A reload asked for is done when this commits, not before.
    mappings::finish_reload(load.transaction(), target.mapping_id)
        .await
        .map_err(|e| target.store_error(e))?;
    load.commit().await.map_err(|e| target.store_error(e))?;
    if left_out.records > 0 {
        tracing::info!(object = %mapping.object, records = left_out.records, "records whose rows have local changes not sent yet were left as they are; polls read them again once the changes are settled");
    }
    target.finish(&*pg, &outcome).await?;
    Ok(outcome)
}

/// One page of a load, ready for COPY.
struct LoadPage {
    text: String,
    rows: u64,
    rejected: Vec<RejectedRecord>,
    /// Calls it took that were not counted yet.
    calls: u64,
}

/// REST query pages as a boxed stream.
type RestPages = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = std::result::Result<
                    pgforce_salesforce::rest::query::QueryPage,
                    pgforce_salesforce::Error,
                >,
            > + Send,
    >,
>;

/// Where a load's records come from.
enum LoadSource {
    /// REST query pages: the first (already fetched and counted) and the rest.
    Rest(
        Option<pgforce_salesforce::rest::query::QueryPage>,
        RestPages,
    ),
    /// The results of a completed Bulk API query job.
    Bulk(String),
}

/// Fetches the load's pages (REST query pages, or the results of a completed Bulk query
/// job) and sends them as COPY text; stops at the first error, which it sends on.
async fn fetch_load_pages(
    sf: Salesforce,
    mapping: Mapping,
    source: LoadSource,
    pages: tokio::sync::mpsc::Sender<Result<LoadPage>>,
) {
    let object = mapping.object.clone();
    let sf_error = |source| Error::salesforce(&object, source);
    match source {
        LoadSource::Bulk(job) => {
            let mut results = Box::pin(sf.query_job_results(&job, bulk::PAGE_RECORDS));
            while let Some(page) = results.next().await {
                let page = page.map_err(sf_error).and_then(|page| {
                    let mut rejected = Vec::new();
                    bulk::copy_text(&mapping, &page, &mut rejected).map(|(text, rows)| LoadPage {
                        text,
                        rows,
                        rejected,
                        calls: 1,
                    })
                });
                if !forward(&pages, page).await {
                    return;
                }
            }
        }
        LoadSource::Rest(first, mut rest) => {
            if let Some(first) = first {
                let mut page = copy_text_of(&mapping, &first);
                page.calls = 0;
                if !forward(&pages, Ok(page)).await {
                    return;
                }
            }
            while let Some(page) = rest.next().await {
                let page = page
                    .map_err(sf_error)
                    .map(|page| copy_text_of(&mapping, &page));
                if !forward(&pages, page).await {
                    return;
                }
            }
        }
    }
}

/// Sends a page on; `false` when the load stopped listening or the page was an error.
async fn forward(
    pages: &tokio::sync::mpsc::Sender<Result<LoadPage>>,
    page: Result<LoadPage>,
) -> bool {
    let failed = page.is_err();
    pages.send(page).await.is_ok() && !failed
}

/// A REST page's records as COPY text; records that do not fit are reported.
fn copy_text_of(mapping: &Mapping, page: &pgforce_salesforce::rest::query::QueryPage) -> LoadPage {
    let mut load = LoadPage {
        text: String::with_capacity(page.records.len() * 256),
        rows: 0,
        rejected: Vec::new(),
        calls: 1,
    };
    for record in &page.records {
        match row_values(mapping, record) {
            Ok(values) => {
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        load.text.push('\t');
                    }
                    push_copy_field(&mut load.text, value.as_deref());
                }
                load.text.push('\n');
                load.rows += 1;
            }
            Err(rejected) => load.rejected.push(rejected),
        }
    }
    load
}

/// Aborts a task when dropped, so no fetch outlives the load that started it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
