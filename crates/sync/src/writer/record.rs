//! Recording what Salesforce did with a batch: log states and row write-backs in one
//! transaction (worker contract), written with `xmlbinary = 'hex'` so nothing is captured
//! again, under the table's sync lock (see `pgforce_store::sync_lock`).
//!
//! - Written: SUCCESS; after an insert the new `sfid` goes into the row and `_hc_lastop`
//!   becomes INSERTED (UPDATED after an update). A row the reader already added for the
//!   new record is removed. If the row was deleted while its insert was in flight, a
//!   DELETE of the new record is queued so Salesforce ends up agreeing.
//! - Refused: FAILED with `CODE: message` in `sf_message`; the row gets `_hc_lastop =
//!   'FAILED'` and `_hc_err` = `{"op", "code", "message", "fields"}`.
//! - Retry and in doubt: nothing recorded here; the caller gives the rows back.
//!
//! Every step is one set-based statement over arrays (`unnest`), so recording a batch of
//! 200 costs a handful of round trips, not hundreds.

use std::collections::HashSet;

use pgforce_store::Ident;
use serde_json::json;
use tokio_postgres::Client as Postgres;

use super::send::Sent;
use super::{WriteOutcome, pg_error};
use crate::error::Result;
use crate::mapping::Mapping;
use crate::plan::{Action, Batch};

fn log_id(id: i64) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX)
}

/// Column-wise arrays of what to write, built from batches' results.
#[derive(Default)]
pub(super) struct Recording {
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
}

impl Recording {
    /// Adds another batch's recording (batches of one wave share a table).
    pub(super) fn extend(&mut self, other: Self) {
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
    }

    fn log(&mut self, ids: &[i32], state: &str, message: Option<String>, sfid: Option<String>) {
        for id in ids {
            self.log_ids.push(*id);
            self.log_states.push(state.to_owned());
            self.log_messages.push(message.clone());
            self.log_sfids.push(sfid.clone());
        }
    }
}

/// What a batch's results come to: the recording to [`write`], the log ids to give back
/// (retry) and those left PENDING because their create may have happened (in doubt).
pub(super) fn prepare(
    mapping: &Mapping,
    batch: &Batch,
    results: &[Sent],
    outcome: &mut WriteOutcome,
) -> (Recording, Vec<i64>, Vec<i64>) {
    let (mut retry, mut in_doubt) = (Vec::new(), Vec::new());
    let mut rec = Recording::default();
    for ((change, merged), result) in batch.changes.iter().zip(&batch.merged_log_ids).zip(results) {
        let record_id = log_id(change.record_id);
        let own = [log_id(change.log_id)];
        let merged: Vec<i32> = merged.iter().map(|id| log_id(*id)).collect();
        match result {
            Sent::Written(sfid) => {
                let lastop = match change.action {
                    Action::Insert => "INSERTED",
                    Action::Update => "UPDATED",
                    Action::Delete => "DELETED",
                };
                if change.action != Action::Delete {
                    rec.written_ids.push(record_id);
                    rec.written_sfids.push(sfid.clone());
                    rec.written_lastops.push(lastop.to_owned());
                }
                if change.action == Action::Insert
                    && let Some(sfid) = sfid
                {
                    rec.inserted_ids.push(record_id);
                    rec.inserted_sfids.push(sfid.clone());
                }
                rec.log(&own, "SUCCESS", None, sfid.clone());
                rec.log(&merged, "MERGED", None, None);
                outcome.succeeded += 1;
                outcome.merged += merged.len() as u64;
                *outcome.by_table.entry(batch.table.clone()).or_default() += 1;
            }
            Sent::Refused(error) => {
                let operation = format!("{:?}", change.action).to_uppercase();
                if change.action != Action::Delete {
                    let detail = json!({ "op": operation, "code": error.code.as_str(), "message": error.message, "fields": error.fields });
                    rec.refused_ids.push(record_id);
                    rec.refused_errors.push(detail.to_string());
                }
                rec.log(
                    &own,
                    "FAILED",
                    Some(format!("{}: {}", error.code, error.message)),
                    None,
                );
                rec.log(&merged, "MERGED", None, None);
                outcome.failed += 1;
                outcome.merged += merged.len() as u64;
                if change.action == Action::Insert {
                    outcome
                        .failed_inserts
                        .insert((batch.table.clone(), change.record_id));
                    if let Some(Some(key)) = mapping
                        .upsert_column
                        .as_ref()
                        .and_then(|column| change.values.get(column.as_str()))
                    {
                        outcome
                            .failed_keys
                            .insert((batch.table.clone(), key.clone()));
                    }
                }
            }
            Sent::Retry(reason) => {
                tracing::warn!(table = %batch.table, log_id = change.log_id, reason = %reason, "will send again");
                retry.extend(own.iter().chain(&merged).map(|id| i64::from(*id)));
            }
            Sent::InDoubt(reason) => {
                tracing::warn!(table = %batch.table, log_id = change.log_id, reason = %reason, "create in doubt; checking Salesforce before sending again");
                in_doubt.extend(own.iter().chain(&merged).map(|id| i64::from(*id)));
            }
        }
    }
    (rec, retry, in_doubt)
}

/// Writes a recording in one transaction.
pub(super) async fn write(
    pg: &mut Postgres,
    schema: &Ident,
    mapping: &Mapping,
    table_name: &str,
    rec: &Recording,
) -> Result<()> {
    let table = &mapping.table;
    let tx = pg
        .transaction()
        .await
        .map_err(pg_error("starting to record results"))?;
    // Not waiting for the flush is safe: an outcome lost in a database crash leaves its
    // rows PENDING, and resuming them checks Salesforce before sending anything again.
    tx.batch_execute("set local xmlbinary = 'hex'; set local synchronous_commit = off")
        .await
        .map_err(pg_error("marking the session as pgforce's"))?;
    pgforce_store::sync_lock::lock_table(&tx, schema, table)
        .await
        .map_err(|source| crate::Error::Store {
            object: mapping.object.clone(),
            source,
        })?;
    let (ids, sfids) = (&rec.inserted_ids, &rec.inserted_sfids);
    if !ids.is_empty() {
        // The reader may have added a row for a new record already.
        tx.execute(
            &format!(
                "delete from {schema}.{table} t using unnest($1::int[], $2::text[]) u(id, sfid)
                 where t.sfid = u.sfid and t.id <> u.id"
            ),
            &[ids, sfids],
        )
        .await
        .map_err(pg_error("removing rows read back before their write-back"))?;
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
            .map_err(pg_error("writing back synced rows"))?;
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
                "insert into {schema}._trigger_log (action, table_name, txid, state, record_id, sfid)
                 select 'DELETE', $1, txid_current(), 'NEW', u.id, u.sfid from unnest($2::int[], $3::text[]) u(id, sfid)"
            ),
            &[&table_name, &gone_ids, &gone_sfids],
        )
        .await
        .map_err(pg_error("queueing deletes of rows removed in flight"))?;
    }
    let (ids, errors) = (&rec.refused_ids, &rec.refused_errors);
    if !ids.is_empty() {
        tx.execute(
            &format!(
                "update {schema}.{table} t set _hc_lastop = 'FAILED', _hc_err = u.err
                 from unnest($1::int[], $2::text[]) u(id, err) where t.id = u.id"
            ),
            &[ids, errors],
        )
        .await
        .map_err(pg_error("writing back failed rows"))?;
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
                "update {schema}._trigger_log l set state = u.state, sf_message = u.message,
                     sfid = coalesce(u.sfid, l.sfid), processed_at = now(),
                     processed_tx = txid_current(), updated_at = now()
                 from unnest($1::int[], $2::text[], $3::text[], $4::text[]) u(id, state, message, sfid)
                 where l.id = u.id"
            ),
            &[ids, states, messages, sfids],
        )
        .await
        .map_err(pg_error("recording trigger log outcomes"))?;
    }
    tx.commit().await.map_err(pg_error("committing results"))
}

/// Sets a state on log rows no call was made for.
pub(super) async fn mark(
    pg: &Postgres,
    schema: &Ident,
    ids: &[i64],
    state: &str,
    message: Option<&str>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<i32> = ids.iter().map(|id| log_id(*id)).collect();
    pg.execute(
        &format!(
            "update {schema}._trigger_log set state = $2, sf_message = $3, processed_at = now(), updated_at = now()
             where id = any($1)"
        ),
        &[&ids, &state, &message],
    )
    .await
    .map_err(pg_error("marking trigger log rows"))
    .map(|_| ())
}
