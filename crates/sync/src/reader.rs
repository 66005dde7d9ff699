//! Salesforce → Postgres: the initial load and incremental polls of one mapping.
//!
//! Data flow:
//! - **Initial load**: note the newest `SystemModstamp` in the org, then stream the
//!   object page by page and COPY each page into the table, all in one transaction that
//!   also sets the cursor to that noted stamp. A crash rolls the whole load back; changes
//!   made while it ran have later stamps and arrive with the first poll. Memory holds one
//!   page.
//! - **Poll**: queryAll the records with `(SystemModstamp, Id)` after the cursor, ordered
//!   by both, so ties on one stamp across a page boundary are neither skipped nor
//!   repeated; each page is applied (matched by `sfid`, then by the upsert field when the
//!   row has no `sfid` yet; deleted records removed) in one transaction that advances the
//!   cursor to its last record. Records with unsent local changes follow the
//!   last-writer-wins rule of [`crate::conflict`].
//!
//! All writes run with `xmlbinary = 'hex'`, so the capture triggers skip them and nothing
//! echoes back to Salesforce.

use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _, TryStreamExt as _};
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{Client as Salesforce, soql};
use pgforce_store::Ident;
use pgforce_store::cursor::{
    ReadCursor, load_cursor, save_cursor, set_mapping_activity, set_mapping_state,
};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client as Postgres, Transaction};

use crate::bulk_read;
use crate::conflict;
use crate::convert::{push_copy_field, to_pg_text};
use crate::error::{Error, Result};
use crate::mapping::Mapping;

/// A record that could not be stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    /// The record's Id.
    pub sfid: String,
    /// The field at fault.
    pub field: String,
    /// Why its value does not fit.
    pub reason: String,
}

/// What one load or poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Records inserted or updated.
    pub applied: u64,
    /// Rows deleted because their record was deleted in Salesforce.
    pub deleted: u64,
    /// Records not stored, reported on the mapping.
    pub rejected: Vec<RejectedRecord>,
    /// Salesforce API calls made (one per query page, plus the load's newest-record query).
    pub api_calls: u64,
    /// Records changed on both sides whose newer local change was kept (not applied).
    pub local_wins: u64,
    /// Local changes superseded by newer Salesforce changes (set to IGNORED).
    pub superseded: u64,
}

/// The target of one mapping: where its rows and cursor live.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The connection's schema.
    pub schema: &'a Ident,
    /// The mapping.
    pub mapping: &'a Mapping,
    /// Its catalog id.
    pub mapping_id: i64,
}

impl Target<'_> {
    fn object(&self) -> &str {
        &self.mapping.object
    }

    fn sf_error(&self, source: pgforce_salesforce::Error) -> Error {
        Error::Salesforce {
            object: self.object().to_owned(),
            source: Box::new(source),
        }
    }

    fn store_error(&self, source: pgforce_store::Error) -> Error {
        Error::Store {
            object: self.object().to_owned(),
            source,
        }
    }

    fn pg_error(&self, context: &str) -> impl FnOnce(tokio_postgres::Error) -> Error + '_ {
        let context = context.to_owned();
        move |source| Error::Postgres {
            object: self.object().to_owned(),
            context,
            source,
        }
    }

    /// Records the outcome on the mapping: DATA_SYNCED, with the first rejected record
    /// as the mapping's last error when some were rejected.
    async fn finish(&self, pg: &Postgres, outcome: &ReadOutcome) -> Result<()> {
        let error = outcome.rejected.first().map(|r| {
            format!(
                "{} record(s) could not be stored; first: {} field {}: {}",
                outcome.rejected.len(),
                r.sfid,
                r.field,
                r.reason
            )
        });
        if let Some(error) = &error {
            tracing::error!(object = self.object(), error = %error, "records rejected");
        }
        set_mapping_state(pg, self.mapping_id, "DATA_SYNCED", error.as_deref())
            .await
            .map_err(|e| self.store_error(e))
    }
}

/// The SOQL datetime literal for a `SystemModstamp` Salesforce sent (`…+0000` → `…Z`).
fn soql_datetime(stamp: &str) -> String {
    stamp
        .strip_suffix("+0000")
        .map_or_else(|| stamp.to_owned(), |s| format!("{s}Z"))
}

fn text_of<'r>(record: &'r Record, field: &str) -> Option<&'r str> {
    record.get(field).and_then(Value::as_str)
}

/// The Postgres text of every mapped field of a record, in mapping order, or why not.
fn row_values(
    mapping: &Mapping,
    record: &Record,
) -> std::result::Result<Vec<Option<String>>, RejectedRecord> {
    let sfid = text_of(record, "Id").unwrap_or_default();
    mapping
        .fields
        .iter()
        .map(|field| {
            let value = record.get(&field.api_name).unwrap_or(&Value::Null);
            to_pg_text(value, &field.api_name, field.pg_type).map_err(|rejected| RejectedRecord {
                sfid: sfid.to_owned(),
                field: rejected.field,
                reason: rejected.reason,
            })
        })
        .collect()
}

/// Loads the whole object into its (emptied) table and sets the cursor.
pub async fn initial_load(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ReadOutcome> {
    let mapping = target.mapping;
    let object = soql::name(&mapping.object).map_err(|e| target.sf_error(e))?;
    set_mapping_state(&*pg, target.mapping_id, "RELOAD_TABLE", None)
        .await
        .map_err(|e| target.store_error(e))?;
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
            set_mapping_state(&*pg, target.mapping_id, "WAIT_BULK_LOAD", None)
                .await
                .map_err(|e| target.store_error(e))?;
            let (id, calls) = bulk_read::run_query_job(sf, pg, target.mapping_id, &soql, false)
                .await
                .map_err(|e| target.sf_error(e))?;
            outcome.api_calls += calls;
            set_mapping_state(&*pg, target.mapping_id, "LOADING_BULK_JOB", None)
                .await
                .map_err(|e| target.store_error(e))?;
            set_mapping_activity(
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

    let (schema, table) = (target.schema, &mapping.table);
    let columns: Vec<String> = mapping
        .fields
        .iter()
        .map(|f| f.column.to_string())
        .collect();
    let copy_sql = format!("copy {schema}.{table} ({}) from stdin", columns.join(", "));
    let tx = pg
        .transaction()
        .await
        .map_err(target.pg_error("starting the load transaction"))?;
    tx.batch_execute(&format!(
        "set local xmlbinary = 'hex'; truncate table {schema}.{table}"
    ))
    .await
    .map_err(target.pg_error("emptying the table for the load"))?;
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
        copy_page(&tx, &copy_sql, page.text)
            .await
            .map_err(target.pg_error("copying a page into the table"))?;
        outcome.applied += page.rows;
        tracing::info!(
            "{} INSERT ↓DATABASE {} rows ({:.2} secs)",
            mapping.object,
            page.rows,
            started.elapsed().as_secs_f64()
        );
        progress(outcome.applied);
    }
    if let Some(stamp) = newest_stamp {
        // The cursor starts at the newest record that existed when the load began, with no
        // Id: the first poll re-reads that whole stamp, so nothing changed during the load
        // is missed. Same transaction as the rows (worker contract).
        let cursor = ReadCursor {
            system_modstamp: stamp,
            last_sfid: String::new(),
        };
        save_cursor(&tx, target.mapping_id, &cursor)
            .await
            .map_err(|e| target.store_error(e))?;
    }
    tx.commit()
        .await
        .map_err(target.pg_error("committing the load"))?;
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
    let sf_error = |source| Error::Salesforce {
        object: object.clone(),
        source: Box::new(source),
    };
    match source {
        LoadSource::Bulk(job) => {
            let mut results = Box::pin(sf.query_job_results(&job, bulk_read::PAGE_RECORDS));
            while let Some(page) = results.next().await {
                let page = page.map_err(sf_error).and_then(|page| {
                    let mut rejected = Vec::new();
                    bulk_read::copy_text(&mapping, &page, &mut rejected)
                        .map(|(text, rows)| LoadPage {
                            text,
                            rows,
                            rejected,
                            calls: 1,
                        })
                        .map_err(|problem| Error::Config {
                            object: object.clone(),
                            problem,
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

async fn copy_page(
    tx: &Transaction<'_>,
    copy_sql: &str,
    buffer: String,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in::<_, Bytes>(copy_sql).await?;
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from(buffer)).await?;
    sink.as_mut().finish().await
}

/// The statements that apply one changed record, prepared per poll.
struct Statements {
    update_by_sfid: String,
    update_by_key: Option<String>,
    insert: String,
    delete: String,
}

impl Statements {
    fn new(schema: &Ident, mapping: &Mapping) -> Self {
        let table = &mapping.table;
        // Parameter 1 is the sfid; parameters 2.. follow the mapped fields after Id.
        let others: Vec<(usize, &crate::mapping::MappedField)> = mapping
            .fields
            .iter()
            .filter(|f| f.api_name != "Id")
            .enumerate()
            .map(|(i, f)| (i + 2, f))
            .collect();
        let cast = |n: usize, f: &crate::mapping::MappedField| format!("${n}::text::{}", f.pg_type);
        let assignments: Vec<String> = others
            .iter()
            .map(|(n, f)| format!("{} = {}", f.column, cast(*n, f)))
            .collect();
        let columns: Vec<String> = others.iter().map(|(_, f)| f.column.to_string()).collect();
        let values: Vec<String> = others.iter().map(|(n, f)| cast(*n, f)).collect();
        let update_by_key = mapping.upsert_column.as_ref().and_then(|key| {
            let (n, f) = others.iter().find(|(_, f)| &f.column == key)?;
            Some(format!(
                "update {schema}.{table} set sfid = $1, {} where sfid is null and {key} = {}",
                assignments.join(", "),
                cast(*n, f)
            ))
        });
        Self {
            update_by_sfid: format!(
                "update {schema}.{table} set {} where sfid = $1",
                assignments.join(", ")
            ),
            update_by_key,
            insert: format!(
                "insert into {schema}.{table} (sfid, {}) values ($1, {})",
                columns.join(", "),
                values.join(", ")
            ),
            delete: format!("delete from {schema}.{table} where sfid = $1"),
        }
    }
}

/// Reads and applies what changed in Salesforce since the cursor.
pub async fn poll_once(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
) -> Result<ReadOutcome> {
    let mapping = target.mapping;
    let object = soql::name(&mapping.object).map_err(|e| target.sf_error(e))?;
    set_mapping_state(&*pg, target.mapping_id, "POLLING_SF_CHANGES", None)
        .await
        .map_err(|e| target.store_error(e))?;
    let cursor = load_cursor(&*pg, target.mapping_id)
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
    let statements = Statements::new(target.schema, mapping);
    let mut outcome = ReadOutcome::default();
    let mut pages = changed_pages(sf, pg, target, &query, has_is_deleted, &mut outcome).await?;
    while let Some(records) = pages.try_next().await? {
        outcome.api_calls += 1;
        let started = Instant::now();
        tracing::info!(
            "{} QUERY ↷SALESFORCE {} rows",
            mapping.object,
            records.len()
        );
        let tx = apply_transaction(pg, target).await?;
        let mut last: Option<ReadCursor> = None;
        let mut changed: Vec<Vec<Option<String>>> = Vec::with_capacity(records.len());
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
        let settled = conflict::settle(&tx, target.schema, &mapping.table, &stamps)
            .await
            .map_err(target.pg_error("settling changes made on both sides"))?;
        outcome.local_wins += settled.local_wins.len() as u64;
        outcome.superseded += settled.superseded;
        for record in &records {
            let sfid = text_of(record, "Id").unwrap_or_default().to_owned();
            if let Some(stamp) = text_of(record, "SystemModstamp") {
                last = Some(ReadCursor {
                    system_modstamp: soql_datetime(stamp),
                    last_sfid: sfid.clone(),
                });
            }
            if record.get("IsDeleted") == Some(&Value::Bool(true)) {
                let removed = tx
                    .execute(&statements.delete, &[&sfid])
                    .await
                    .map_err(target.pg_error("deleting a row"))?;
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
            .map_err(target.pg_error("applying changed records"))?;
        if let Some(cursor) = &last {
            // The cursor moves in the transaction that applied these rows (worker contract).
            save_cursor(&tx, target.mapping_id, cursor)
                .await
                .map_err(|e| target.store_error(e))?;
        }
        tx.commit()
            .await
            .map_err(target.pg_error("committing a poll page"))?;
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
    let sf_error = move |source| Error::Salesforce {
        object: object.clone(),
        source: Box::new(source),
    };
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
    set_mapping_state(pg, target.mapping_id, "POLLING_SF_BULK", None)
        .await
        .map_err(|e| target.store_error(e))?;
    let (job, calls) = bulk_read::run_query_job(sf, pg, target.mapping_id, query, include_deleted)
        .await
        .map_err(|e| target.sf_error(e))?;
    outcome.api_calls += calls;
    let object = mapping.object.clone();
    let results = sf.query_job_results(&job, bulk_read::PAGE_RECORDS);
    Ok(Box::pin(results.map(move |page| {
        page.map_err(&sf_error).and_then(|page| {
            bulk_read::records(&mapping, &page).map_err(|problem| Error::Config {
                object: object.clone(),
                problem,
            })
        })
    })))
}

/// A stream of pages of records, whichever API they came through.
type RecordPages = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Vec<Record>>> + Send>>;

/// A transaction for applying records read from Salesforce: pgforce's own (nothing is
/// captured) and holding the table's sync lock (the writer may be writing back Ids of
/// records it created, see `sync_lock`).
async fn apply_transaction<'c>(
    pg: &'c mut Postgres,
    target: &Target<'_>,
) -> Result<Transaction<'c>> {
    let tx = pg
        .transaction()
        .await
        .map_err(target.pg_error("starting a transaction to apply records"))?;
    tx.batch_execute("set local xmlbinary = 'hex'")
        .await
        .map_err(target.pg_error("marking the session as pgforce's"))?;
    pgforce_store::sync_lock::lock_table(&tx, target.schema, &target.mapping.table)
        .await
        .map_err(|e| target.store_error(e))?;
    Ok(tx)
}

/// The values of one record as statement parameters.
fn params(values: &[Option<String>]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// Applies a page of changed records: updates by `sfid` all sent at once (the driver
/// pipelines them on the connection), then, for records no row matched, an update by the
/// upsert field on a row without `sfid`, else an insert. Returns how many were applied.
async fn apply_records(
    tx: &Transaction<'_>,
    statements: &Statements,
    records: &[Vec<Option<String>>],
) -> std::result::Result<u64, tokio_postgres::Error> {
    let update = tx.prepare(&statements.update_by_sfid).await?;
    let updates = records.iter().map(|values| {
        let update = &update;
        async move { tx.execute(update, &params(values)).await }
    });
    let matched = futures_util::future::try_join_all(updates).await?;
    for (values, rows) in records.iter().zip(matched) {
        if rows > 0 {
            continue;
        }
        if let Some(by_key) = &statements.update_by_key
            && tx.execute(by_key, &params(values)).await? > 0
        {
            continue;
        }
        tx.execute(&statements.insert, &params(values)).await?;
    }
    Ok(records.len() as u64)
}

/// Reads the given records again from Salesforce and stores them as they are there,
/// whatever the cursor says (reconcile's repair). Returns how many were stored.
pub async fn refresh_records(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    ids: &[String],
) -> Result<u64> {
    let mapping = target.mapping;
    let object = soql::name(&mapping.object).map_err(|e| target.sf_error(e))?;
    let statements = Statements::new(target.schema, mapping);
    let mut stored = 0;
    // 200 Ids keep the SOQL text well under Salesforce's length limit.
    for chunk in ids.chunks(200) {
        let list: Vec<String> = chunk.iter().map(|id| soql::quote(id)).collect();
        let query = format!(
            "SELECT {} FROM {object} WHERE Id IN ({})",
            mapping.select_list(),
            list.join(", ")
        );
        let records: Vec<Record> = sf
            .query(&query)
            .try_collect()
            .await
            .map_err(|e| target.sf_error(e))?;
        let mut rows = Vec::with_capacity(records.len());
        for record in &records {
            if let Ok(values) = row_values(mapping, record) {
                rows.push(values);
            }
        }
        let tx = apply_transaction(pg, target).await?;
        stored += apply_records(&tx, &statements, &rows)
            .await
            .map_err(target.pg_error("storing refreshed records"))?;
        tx.commit()
            .await
            .map_err(target.pg_error("committing refreshed records"))?;
    }
    Ok(stored)
}
