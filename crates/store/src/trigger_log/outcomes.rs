//! Recording what Salesforce did with a wave of changes: log states and row write-backs in
//! one transaction (worker contract), as pgforce's own writes under the table's sync lock
//! (see [`crate::own_write`]).
//!
//! - Written: SUCCESS; after an insert the new `sfid` goes into the row and `_hc_lastop`
//!   becomes INSERTED (UPDATED after an update). A row the reader already added for the
//!   new record is removed. If the row was deleted while its insert was in flight, a
//!   DELETE of the new record is queued so Salesforce ends up agreeing.
//! - Refused: FAILED with the message in `sf_message`; the row gets `_hc_lastop = 'FAILED'`
//!   and `_hc_err`. An update refused because its record was deleted in Salesforce is
//!   IGNORED instead when its row is gone from Postgres too (both sides agree the record
//!   is gone: nothing is left to fix); while the row exists it stays FAILED, as the two
//!   sides disagree.
//!
//! Every step is one set-based statement over arrays (`unnest`), so recording a batch of
//! 200 costs a handful of round trips, not hundreds.

use std::collections::HashSet;

use tokio_postgres::{Client, Transaction};

use super::{log_table, stored_ids};
use crate::Ident;
use crate::catalog::leases::Fence;
use crate::ddl::table_columns;
use crate::error::{Context as _, Result};
use crate::own_write::OwnWrite;
use crate::states::{LastOp, LogAction, LogState};

fn stored_id(id: i64) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX)
}

/// Column-wise arrays of what to write for one table.
#[derive(Debug, Default)]
pub struct Recording {
    /// Log rows: id, state, message, sfid.
    log_ids: Vec<i32>,
    log_states: Vec<String>,
    log_messages: Vec<Option<String>>,
    log_sfids: Vec<Option<String>>,
    /// Rows written: id, sfid, `_hc_lastop`.
    written_ids: Vec<i32>,
    written_sfids: Vec<Option<String>>,
    written_lastops: Vec<String>,
    /// Rows refused: id, `_hc_err`.
    refused_ids: Vec<i32>,
    refused_errors: Vec<String>,
    /// Inserted rows and their new Ids (duplicates to remove, rows gone to check).
    inserted_ids: Vec<i32>,
    inserted_sfids: Vec<String>,
    /// Log rows of updates refused because the record is deleted: IGNORED if their row
    /// is gone too.
    deleted_update_ids: Vec<i32>,
    /// Records deleted in Salesforce by these outcomes.
    deleted_sfids: Vec<String>,
    /// Bulk API jobs whose outcomes these are: forgotten with them.
    finished_jobs: Vec<String>,
}

impl Recording {
    /// Adds another recording of the same table.
    pub fn extend(&mut self, other: Self) {
        self.log_ids.extend(other.log_ids);
        self.log_states.extend(other.log_states);
        self.log_messages.extend(other.log_messages);
        self.log_sfids.extend(other.log_sfids);
        self.written_ids.extend(other.written_ids);
        self.written_sfids.extend(other.written_sfids);
        self.written_lastops.extend(other.written_lastops);
        self.refused_ids.extend(other.refused_ids);
        self.refused_errors.extend(other.refused_errors);
        self.inserted_ids.extend(other.inserted_ids);
        self.inserted_sfids.extend(other.inserted_sfids);
        self.deleted_update_ids.extend(other.deleted_update_ids);
        self.deleted_sfids.extend(other.deleted_sfids);
        self.finished_jobs.extend(other.finished_jobs);
    }

    /// The outcomes are those of a Bulk API job: it is forgotten in the same transaction.
    pub fn finishes_job(&mut self, job_id: &str) {
        self.finished_jobs.push(job_id.to_owned());
    }

    /// Sets the final state of log rows.
    pub fn log(
        &mut self,
        ids: &[i64],
        state: &LogState,
        message: Option<&str>,
        sfid: Option<&str>,
    ) {
        for id in ids {
            self.log_ids.push(stored_id(*id));
            self.log_states.push(state.as_str().to_owned());
            self.log_messages.push(message.map(str::to_owned));
            self.log_sfids.push(sfid.map(str::to_owned));
        }
    }

    /// A record the app's delete removed from Salesforce. A row the reader stored for it
    /// meanwhile (from a page read before the delete, as the app's row went with the
    /// delete) goes too, and the record is remembered as deleted, so no page read before
    /// the delete brings a row back that the app would see, edit, and have refused.
    pub fn deleted(&mut self, sfid: &str) {
        self.deleted_sfids.push(sfid.to_owned());
    }

    /// A row whose change Salesforce applied (`sfid` after an insert).
    pub fn written(&mut self, record_id: i64, action: LogAction, sfid: Option<&str>) {
        let lastop = match action {
            LogAction::Insert => LastOp::Inserted,
            LogAction::Update => LastOp::Updated,
            // The row is gone: nothing to write back.
            LogAction::Delete => return,
        };
        self.written_ids.push(stored_id(record_id));
        self.written_sfids.push(sfid.map(str::to_owned));
        self.written_lastops.push(lastop.as_str().to_owned());
        if action == LogAction::Insert
            && let Some(sfid) = sfid
        {
            self.inserted_ids.push(stored_id(record_id));
            self.inserted_sfids.push(sfid.to_owned());
        }
    }

    /// The Ids of the records this recording says were created.
    pub fn created_sfids(&self) -> &[String] {
        &self.inserted_sfids
    }

    /// A row whose change Salesforce refused; `error_json` goes to `_hc_err`.
    pub fn refused(&mut self, record_id: i64, error_json: String) {
        self.refused_ids.push(stored_id(record_id));
        self.refused_errors.push(error_json);
    }

    /// Log rows (already logged FAILED) of updates refused because their record is
    /// deleted in Salesforce: they become IGNORED if their row is gone from Postgres too.
    pub fn refused_as_deleted(&mut self, log_ids: &[i64]) {
        self.deleted_update_ids
            .extend(log_ids.iter().map(|id| stored_id(*id)));
    }
}

/// Columns a read-back row never gives the app's row: the row's own identity and sync state.
const OWN_COLUMNS: [&str; 4] = ["id", "sfid", "_hc_lastop", "_hc_err"];

/// Folds rows the reader added for new records (read back before their write-back) into
/// the rows that made them: `ids` are the app's rows, `sfids` their new records' Ids.
///
/// The read-back row goes, and the app's row takes what it read: the stamp (the poll that
/// read it has moved past it) and every value it holds, so what Salesforce set on create
/// (CreatedDate, auto-numbers, defaults, trigger-set values) is not lost. Kept as they are:
/// a column the app changed since, in a change not yet sent (NEW, PENDING or HELD update),
/// as that change is newer than the create and the writer still sends it; and a column
/// the read-back row leaves empty, as the reader never fills some columns (relationship
/// external-id columns, columns of the app's own), and those must not be wiped.
pub(super) async fn fold_read_back(
    tx: &Transaction<'_>,
    schema: &Ident,
    table: &Ident,
    ids: &[i32],
    sfids: &[String],
) -> Result<u64> {
    // Most recordings find no read-back row: one look by the indexed sfid spares them the
    // column list and the fold (a resume adopting hundreds of creates one by one).
    let read_back = tx
        .query_opt(
            &format!(
                "select 1 from {schema}.{table} t join unnest($1::int[], $2::text[]) u(id, sfid)
                     on t.sfid = u.sfid and t.id <> u.id
                 limit 1"
            ),
            &[&ids, &sfids],
        )
        .await
        .context(|| {
            format!("looking for rows of {schema}.{table} read back before their write-back")
        })?;
    if read_back.is_none() {
        return Ok(0);
    }
    let columns: Vec<Ident> = table_columns(tx, schema, table)
        .await?
        .into_iter()
        .filter(|c| !OWN_COLUMNS.contains(&c.name.as_str()))
        .map(|c| Ident::new(&c.name))
        .collect::<Result<_>>()?;
    let names: Vec<&str> = columns.iter().map(Ident::as_str).collect();
    let log = log_table(schema);
    let assignments: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(n, c)| {
            format!(
                "{c} = case when ($3::text[])[{}] = any(r.touched) then t.{c} else coalesce(r.{c}, t.{c}) end",
                n + 1
            )
        })
        .collect();
    let statement = format!(
        "with read_back as (
             delete from {schema}.{table} t using unnest($1::int[], $2::text[]) u(id, sfid)
             where t.sfid = u.sfid and t.id <> u.id
             returning u.id as app_id, t.*),
         touched as (
             select r.app_id, coalesce(array_agg(k.key) filter (where k.key is not null), '{{}}') as keys
             from read_back r
             left join {log} l on l.record_id = r.app_id and l.table_name = $4
                 and l.action = $5 and l.state = any($6)
             left join lateral skeys(l.\"values\"::hstore) k(key) on true
             group by r.app_id)
         update {schema}.{table} t set {}
         from (select r.*, k.keys as touched from read_back r join touched k using (app_id)) r
         where t.id = r.app_id",
        assignments.join(", ")
    );
    let unsent = LogState::texts(&[LogState::New, LogState::Pending, LogState::Held]);
    tx.execute(
        &statement,
        &[
            &ids,
            &sfids,
            &names,
            &table.as_str(),
            &LogAction::Update.as_str(),
            &unsent,
        ],
    )
    .await
    .context(|| format!("folding rows of {schema}.{table} read back before their write-back"))
}

/// Removes the rows still holding records the app's deletes removed from Salesforce (the
/// reader stored them from a page read before the delete) and remembers the records as
/// deleted, as a delete told by a change event is, so that a page read before the delete
/// and applied after it does not store them again (`crate::table::apply`).
async fn forget_deleted_records(
    tx: &Transaction<'_>,
    schema: &Ident,
    table: &Ident,
    sfids: &[String],
) -> Result<()> {
    tx.execute(
        &format!("delete from {schema}.{table} where sfid = any($1)"),
        &[&sfids],
    )
    .await
    .context(|| format!("removing rows of {schema}.{table} whose records the app deleted"))?;
    tx.execute(
        "insert into pgforce.deleted_records (schema_name, table_name, sfid)
         select $1, $2, unnest($3::text[])
         on conflict (schema_name, table_name, sfid) do update set deleted_at = now()",
        &[&schema.as_str(), &table.as_str(), &sfids],
    )
    .await
    .context(|| format!("remembering the records of {schema}.{table} the app deleted"))?;
    Ok(())
}

/// Times a write-back starts over after it met a row the reader stored meanwhile.
pub(super) const RECORD_ATTEMPTS: u32 = 3;

/// Writes a recording for `table` in one transaction, committed only while the lease
/// behind `fence` holds.
///
/// The reader may be storing one of the new records at the same moment, read back before
/// its write-back: its row is not committed when this transaction looks for read-back
/// rows, so the write-back of that sfid waits on it and then meets the sfid's unique index.
/// The transaction then starts over (it wrote nothing), and this time folds the reader's
/// row into the app's.
pub async fn record(
    client: &mut Client,
    schema: &Ident,
    table: &Ident,
    rec: &Recording,
    fence: Option<&Fence>,
) -> Result<()> {
    for attempt in 1.. {
        match record_once(client, schema, table, rec, fence).await {
            Err(error) if attempt < RECORD_ATTEMPTS && met_a_read_back_row(&error) => {
                tracing::info!(table = %table, attempt, "a new record was stored by the reader while its Id was written back; writing again to fold its row");
            }
            outcome => return outcome,
        }
    }
    unreachable!("the attempts above end in a return")
}

/// Whether `error` is the sfid's unique index refusing a write-back: a row with that sfid
/// appeared meanwhile.
pub(super) fn met_a_read_back_row(error: &crate::Error) -> bool {
    error.sqlstate() == Some(tokio_postgres::error::SqlState::UNIQUE_VIOLATION.code())
}

async fn record_once(
    client: &mut Client,
    schema: &Ident,
    table: &Ident,
    rec: &Recording,
    fence: Option<&Fence>,
) -> Result<()> {
    let log = log_table(schema);
    // Not waiting for the flush is safe: an outcome lost in a database crash leaves its
    // rows PENDING, and resuming them checks Salesforce before sending anything again.
    let tx = OwnWrite::on_table(schema, table)
        .relaxed()
        .fenced(fence)
        .begin(client)
        .await?;
    let (ids, sfids) = (&rec.inserted_ids, &rec.inserted_sfids);
    if !ids.is_empty() {
        // The reader may have added a row for a new record already.
        fold_read_back(&tx, schema, table, ids, sfids).await?;
    }
    let (ids, sfids, lastops) = (&rec.written_ids, &rec.written_sfids, &rec.written_lastops);
    let mut found = HashSet::new();
    if !ids.is_empty() {
        let rows = tx
            .query(
                &format!(
                    "update {schema}.{table} t set sfid = coalesce(u.sfid, t.sfid), _hc_lastop = u.lastop, _hc_err = null
                     from unnest($1::int[], $2::text[], $3::text[]) u(id, sfid, lastop) where t.id = u.id
                     returning t.id"
                ),
                &[ids, sfids, lastops],
            )
            .await
            .context(|| format!("writing back synced rows of {schema}.{table}"))?;
        found.extend(rows.iter().map(|r| r.get::<_, i32>(0)));
    }
    let (gone_ids, gone_sfids): (Vec<i32>, Vec<String>) = rec
        .inserted_ids
        .iter()
        .zip(&rec.inserted_sfids)
        .filter(|(id, _)| !found.contains(*id))
        .map(|(id, sfid)| (*id, sfid.clone()))
        .unzip();
    if !gone_ids.is_empty() {
        // Deleted locally while the insert was in flight: delete the new records too.
        tx.execute(
            &format!(
                "insert into {log} (action, table_name, txid, state, record_id, sfid)
                 select $4, $1, txid_current(), $5, u.id, u.sfid from unnest($2::int[], $3::text[]) u(id, sfid)"
            ),
            &[
                &table.as_str(),
                &gone_ids,
                &gone_sfids,
                &LogAction::Delete.as_str(),
                &LogState::New.as_str(),
            ],
        )
        .await
        .context(|| format!("queueing deletes of {schema}.{table} rows removed in flight"))?;
    }
    let (ids, errors) = (&rec.refused_ids, &rec.refused_errors);
    if !ids.is_empty() {
        tx.execute(
            &format!(
                "update {schema}.{table} t set _hc_lastop = $3, _hc_err = u.err
                 from unnest($1::int[], $2::text[]) u(id, err) where t.id = u.id"
            ),
            &[ids, errors, &LastOp::Failed.as_str()],
        )
        .await
        .context(|| format!("writing back failed rows of {schema}.{table}"))?;
    }
    let (ids, states, messages, sfids) = (
        &rec.log_ids,
        &rec.log_states,
        &rec.log_messages,
        &rec.log_sfids,
    );
    if !ids.is_empty() {
        tx.execute(
            &format!(
                "update {log} l set state = u.state, sf_message = u.message,
                     sfid = coalesce(u.sfid, l.sfid), processed_at = now(),
                     processed_tx = txid_current(), updated_at = now()
                 from unnest($1::int[], $2::text[], $3::text[], $4::text[]) u(id, state, message, sfid)
                 where l.id = u.id"
            ),
            &[ids, states, messages, sfids],
        )
        .await
        .context(|| format!("recording outcomes in {log}"))?;
    }
    if !rec.deleted_sfids.is_empty() {
        forget_deleted_records(&tx, schema, table, &rec.deleted_sfids).await?;
    }
    if !rec.deleted_update_ids.is_empty() {
        tx.execute(
            &format!(
                "update {log} l set state = $2,
                     sf_message = 'pgforce: the record was deleted in Salesforce and its row is gone from Postgres too; nothing left to update ('
                         || l.sf_message || ')'
                 where l.id = any($1)
                   and not exists (select 1 from {schema}.{table} t where t.id = l.record_id)"
            ),
            &[&rec.deleted_update_ids, &LogState::Ignored.as_str()],
        )
        .await
        .context(|| format!("ignoring updates of {schema}.{table} rows deleted on both sides"))?;
    }
    if !rec.finished_jobs.is_empty() {
        tx.execute(
            "delete from pgforce.writer_jobs where job_id = any($1)",
            &[&rec.finished_jobs],
        )
        .await
        .context(|| format!("forgetting the bulk jobs of {schema}.{table} just recorded"))?;
    }
    tx.commit(&format!("the outcomes of {schema}.{table}"))
        .await
}

/// Sets a final state on log rows no call was made for (committed only while the lease
/// behind `fence` holds).
pub async fn mark(
    client: &mut Client,
    schema: &Ident,
    ids: &[i64],
    state: &LogState,
    message: Option<&str>,
    fence: Option<&Fence>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let log = log_table(schema);
    let tx = OwnWrite::untabled().fenced(fence).begin(client).await?;
    tx.execute(
        &format!(
            "update {log} set state = $2, sf_message = $3, processed_at = now(), updated_at = now()
                 where id = any($1)"
        ),
        &[&stored_ids(ids), &state.as_str(), &message],
    )
    .await
    .context(|| format!("marking rows of {log} {state}"))?;
    tx.commit(&format!("rows of {log} marked {state}")).await
}
