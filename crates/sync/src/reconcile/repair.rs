//! Repairing a drift in batches, each one transaction of pgforce's own holding the table's
//! sync lock, that decides every row again from what is true inside it (see the module doc
//! of `reconcile`).

use std::collections::HashMap;
use std::time::SystemTime;

use futures_util::TryStreamExt as _;
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{Client as Salesforce, soql};
use pgforce_store::table::RowShape;
use pgforce_store::table::apply::{ApplyStatements, apply_records};
use pgforce_store::table::repair as rows;
use pgforce_store::trigger_log::queue;
use pgforce_store::{Access, OwnTransaction, OwnWrite, Session as Postgres};
use serde_json::Value;

use super::verdict::{self, Lookup, Skip, same_record};
use super::{BATCH, Drift, Repair};
use crate::error::{Error, Result};
use crate::reader::{RejectedRecord, Target, row_values};

/// Repairs what [`super::compare`] found, leaving alone what changed since (counted in
/// [`Repair::left_alone`]): missing and differing records are read again and stored, rows
/// whose record Salesforce reports deleted or does not know are deleted, rows that never
/// reached Salesforce and failed changes are queued again for the writer.
pub async fn repair(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    drift: &Drift,
) -> Result<Repair> {
    let mapping = target.mapping;
    let (schema, table) = (target.schema, &mapping.table);
    let since = drift.snapshot_started_at;
    let mut done = Repair::default();
    let stale: Vec<String> = drift
        .missing_in_postgres
        .iter()
        .chain(&drift.differing)
        .cloned()
        .collect();
    for batch in stale.chunks(BATCH) {
        refresh(sf, pg, target, since, batch, &mut done).await?;
    }
    for batch in drift.gone_from_salesforce.chunks(BATCH) {
        delete_gone(sf, pg, target, since, batch, &mut done).await?;
    }
    if mapping.spec.access == Access::ReadWrite {
        // Setting FAILED changes back to NEW touches no row: the writer sends them in
        // order with whatever else waits.
        done.requeued += queue::requeue_failed(&*pg, schema, table)
            .await
            .map_err(|e| Error::store(&mapping.object, e))?;
        for batch in drift.never_sent.chunks(BATCH) {
            requeue_never_sent(pg, target, since, batch, &mut done).await?;
        }
    }
    let left = &done.left_alone;
    if left.total() > 0 {
        tracing::info!(
            object = %mapping.object,
            still_in_salesforce = left.still_in_salesforce,
            unsent_changes = left.unsent_changes,
            changed_since_snapshot = left.changed_since_snapshot,
            no_longer_in_salesforce = left.no_longer_in_salesforce,
            rejected = left.rejected,
            "repair left rows alone"
        );
    }
    Ok(done)
}

/// Opens a batch: a transaction of pgforce's own holding the table's sync lock, open
/// across the Salesforce reads that decide what it writes.
async fn batch<'c>(pg: &'c mut Postgres, target: &Target<'_>) -> Result<OwnTransaction<'c>> {
    OwnWrite::on_table(target.schema, &target.mapping.table)
        .fenced(target.fence)
        .across_calls()
        .begin(pg)
        .await
        .map_err(|e| Error::store(&target.mapping.object, e))
}

/// `'a01…', 'a02…'` for `WHERE Id IN (…)`.
fn id_list<'a>(ids: impl IntoIterator<Item = &'a String>) -> String {
    ids.into_iter()
        .map(|id| soql::quote(id))
        .collect::<Vec<_>>()
        .join(", ")
}

fn text<'r>(record: &'r Record, field: &str) -> Option<&'r str> {
    record.get(field).and_then(Value::as_str)
}

/// A record read again: its Id, and its values in the mapping's column order (or why they
/// do not fit).
type ReadRecord = (
    String,
    std::result::Result<Vec<Option<String>>, RejectedRecord>,
);

/// Reads missing and differing records again and stores those with no local work.
async fn refresh(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    since: Option<SystemTime>,
    ids: &[String],
    done: &mut Repair,
) -> Result<()> {
    let mapping = target.mapping;
    let (schema, table) = (target.schema, &mapping.table);
    let object_name = mapping.object.as_str();
    let store = |e| Error::store(object_name, e);
    let object = soql::name(object_name).map_err(|e| Error::salesforce(object_name, e))?;
    let shape = mapping.row_shape(schema)?;
    let tx = batch(pg, target).await?;
    // Read under the lock: the reader stores nothing of this table between this read and
    // the write below, so what is written is never older than what it stored.
    let query = format!(
        "SELECT {} FROM {object} WHERE Id IN ({})",
        mapping.select_list(),
        id_list(ids)
    );
    let records: Vec<Record> = sf
        .query(&query)
        .try_collect()
        .await
        .map_err(|e| Error::salesforce(object_name, e))?;
    let read: Vec<ReadRecord> = records
        .iter()
        .filter_map(|r| Some((text(r, "Id")?.to_owned(), row_values(mapping, r))))
        .collect();
    for _ in ids
        .iter()
        .filter(|id| !read.iter().any(|(sfid, _)| same_record(id, sfid)))
    {
        done.left_alone.add(Skip::NoLongerInSalesforce);
    }
    let rows_of = lock_rows_of(&tx, &shape, &read).await.map_err(store)?;
    let sfids: Vec<String> = read.iter().map(|(id, _)| id.clone()).collect();
    let row_ids: Vec<i32> = rows_of.iter().flatten().copied().collect();
    let activity = rows::activity(&*tx, schema, table, &sfids, &row_ids, since)
        .await
        .map_err(store)?;
    let mut accepted = Vec::with_capacity(read.len());
    for ((sfid, values), row) in read.into_iter().zip(rows_of) {
        let change = activity.of(Some(&sfid), row);
        match (verdict::record_to_store(change, values.is_ok()), values) {
            (None, Ok(values)) => accepted.push(values),
            (Some(skip), _) => done.left_alone.add(skip),
            (None, Err(_)) => done.left_alone.add(Skip::Rejected),
        }
    }
    done.refreshed += apply_records(&tx, &ApplyStatements::new(&shape), &accepted)
        .await
        .map_err(store)?;
    tx.commit("records read again by reconcile")
        .await
        .map_err(store)
}

/// For each record read again, the row storing it would change, locked: the row holding
/// its `sfid`, else a row without `sfid` it would be matched to by the upsert field (an
/// app's insert, maybe on its way to Salesforce), else none.
async fn lock_rows_of(
    tx: &OwnTransaction<'_>,
    shape: &RowShape,
    read: &[ReadRecord],
) -> pgforce_store::Result<Vec<Option<i32>>> {
    let sfids: Vec<String> = read.iter().map(|(id, _)| id.clone()).collect();
    let by_sfid: HashMap<String, i32> =
        rows::lock_by_sfids(tx, shape.schema(), shape.table(), &sfids)
            .await?
            .into_iter()
            .filter_map(|row| Some((row.sfid?, row.id)))
            .collect();
    let mut rows: Vec<Option<i32>> = read
        .iter()
        .map(|(id, _)| by_sfid.get(id).copied())
        .collect();
    let (unmatched, values): (Vec<usize>, Vec<Vec<Option<String>>>) = read
        .iter()
        .enumerate()
        .filter(|(n, _)| rows.get(*n).is_some_and(Option::is_none))
        .filter_map(|(n, (_, values))| Some((n, values.as_ref().ok()?.clone())))
        .unzip();
    for (k, id) in rows::lock_by_upsert_field(tx, shape, &values).await? {
        if let Some(row) = unmatched.get(k).and_then(|n| rows.get_mut(*n)) {
            *row = Some(id);
        }
    }
    Ok(rows)
}

/// Asks Salesforce, with `queryAll`, about records by Id; returns what it answered, by
/// the Ids it answered with.
async fn look_up(sf: &Salesforce, object: &str, ids: &[&String]) -> Result<Vec<(String, Lookup)>> {
    let object_name = soql::name(object).map_err(|e| Error::salesforce(object, e))?;
    let query = format!(
        "SELECT Id, IsDeleted FROM {object_name} WHERE Id IN ({})",
        id_list(ids.iter().copied())
    );
    let records: Vec<Record> = sf
        .query_all(&query)
        .try_collect()
        .await
        .map_err(|e| Error::salesforce(object, e))?;
    Ok(records
        .iter()
        .filter_map(|record| {
            let lookup = match record.get("IsDeleted") {
                Some(Value::Bool(true)) => Lookup::Deleted,
                _ => Lookup::Live,
            };
            Some((text(record, "Id")?.to_owned(), lookup))
        })
        .collect())
}

/// Deletes the rows whose record Salesforce reports deleted or does not know.
async fn delete_gone(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    since: Option<SystemTime>,
    sfids: &[String],
    done: &mut Repair,
) -> Result<()> {
    let mapping = target.mapping;
    let (schema, table) = (target.schema, &mapping.table);
    let store = |e| Error::store(&mapping.object, e);
    let tx = batch(pg, target).await?;
    let row_of: HashMap<String, i32> = rows::lock_by_sfids(&tx, schema, table, sfids)
        .await
        .map_err(store)?
        .into_iter()
        .filter_map(|row| Some((row.sfid?, row.id)))
        .collect();
    let row_ids: Vec<i32> = row_of.values().copied().collect();
    let activity = rows::activity(&*tx, schema, table, sfids, &row_ids, since)
        .await
        .map_err(store)?;
    let mut candidates = Vec::new();
    for sfid in sfids {
        let row = row_of.get(sfid).copied();
        match verdict::gone_row(row.is_some(), activity.of(Some(sfid), row)) {
            Some(skip) => done.left_alone.add(skip),
            None => candidates.push(sfid),
        }
    }
    if candidates.is_empty() {
        return Ok(());
    }
    // Asked under the lock: a record undeleted meanwhile is stored by the reader only
    // after this batch, as a new row.
    let found = look_up(sf, &mapping.object, &candidates).await?;
    let mut doomed = Vec::with_capacity(candidates.len());
    for sfid in candidates {
        let lookup = found
            .iter()
            .find(|(id, _)| same_record(sfid, id))
            .map_or(Lookup::Unknown, |(_, lookup)| *lookup);
        match verdict::gone_record(lookup) {
            Some(skip) => done.left_alone.add(skip),
            None => doomed.extend(row_of.get(sfid)),
        }
    }
    done.deleted += rows::delete_rows(&tx, schema, table, &doomed)
        .await
        .map_err(store)?;
    tx.commit("rows whose record is gone").await.map_err(store)
}

/// Queues again, as inserts, the rows that never reached Salesforce and still have no
/// `sfid` and no local work.
async fn requeue_never_sent(
    pg: &mut Postgres,
    target: &Target<'_>,
    since: Option<SystemTime>,
    ids: &[i32],
    done: &mut Repair,
) -> Result<()> {
    let mapping = target.mapping;
    let (schema, table) = (target.schema, &mapping.table);
    let store = |e| Error::store(&mapping.object, e);
    let tx = batch(pg, target).await?;
    let without_sfid: HashMap<i32, bool> = rows::lock_by_ids(&tx, schema, table, ids)
        .await
        .map_err(store)?
        .into_iter()
        .map(|row| (row.id, row.sfid.is_none()))
        .collect();
    let activity = rows::activity(&*tx, schema, table, &[], ids, since)
        .await
        .map_err(store)?;
    let mut queued = Vec::with_capacity(ids.len());
    for id in ids {
        let row = without_sfid.get(id).copied();
        match verdict::never_sent_row(row, activity.of(None, Some(*id))) {
            Some(skip) => done.left_alone.add(skip),
            None => queued.push(*id),
        }
    }
    done.requeued += queue::capture_inserts(&*tx, schema, table, &queued)
        .await
        .map_err(store)?;
    tx.commit("rows queued again by reconcile")
        .await
        .map_err(store)
}
