//! Recording what Salesforce did with a batch: log states and row write-backs in one
//! transaction (worker contract), written with `xmlbinary = 'hex'` so nothing is captured
//! again.
//!
//! - Written: SUCCESS; after an insert the new `sfid` goes into the row and `_hc_lastop`
//!   becomes INSERTED (UPDATED after an update). If the row was deleted while its insert
//!   was in flight, a DELETE of the new record is queued so Salesforce ends up agreeing.
//! - Refused: FAILED with `CODE: message` in `sf_message`; the row gets `_hc_lastop =
//!   'FAILED'` and `_hc_err` = `{"op", "code", "message", "fields"}`.
//! - Retry and in doubt: nothing recorded here; the caller gives the rows back.

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

/// Records a batch's results. Returns the log ids to give back (retry) and those left
/// PENDING because their create may have happened (in doubt).
pub(super) async fn record_results(
    pg: &mut Postgres,
    schema: &Ident,
    mapping: &Mapping,
    batch: &Batch,
    results: &[Sent],
    outcome: &mut WriteOutcome,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let table = &mapping.table;
    let (mut retry, mut in_doubt) = (Vec::new(), Vec::new());
    let tx = pg
        .transaction()
        .await
        .map_err(pg_error("starting to record results"))?;
    tx.batch_execute("set local xmlbinary = 'hex'")
        .await
        .map_err(pg_error("marking the session as pgforce's"))?;
    pgforce_store::sync_lock::lock_table(&tx, schema, table)
        .await
        .map_err(|source| crate::Error::Store {
            object: mapping.object.clone(),
            source,
        })?;
    let log_update = format!(
        "update {schema}._trigger_log set state = $2, sf_message = $3, processed_at = now(),
             processed_tx = txid_current(), updated_at = now(), sfid = coalesce($4, sfid)
         where id = any($1)"
    );
    for ((change, merged), result) in batch.changes.iter().zip(&batch.merged_log_ids).zip(results) {
        let record_id = log_id(change.record_id);
        let ids = vec![log_id(change.log_id)];
        let merged_ids: Vec<i32> = merged.iter().map(|id| log_id(*id)).collect();
        let mut all_ids = ids.clone();
        all_ids.extend(&merged_ids);
        match result {
            Sent::Written(sfid) => {
                let lastop = match change.action {
                    Action::Insert => "INSERTED",
                    Action::Update => "UPDATED",
                    Action::Delete => "DELETED",
                };
                if change.action == Action::Insert {
                    // The reader may have added a row for this new record already.
                    tx.execute(
                        &format!("delete from {schema}.{table} where sfid = $2 and id <> $1"),
                        &[&record_id, sfid],
                    )
                    .await
                    .map_err(pg_error("removing a row read back before its write-back"))?;
                }
                if change.action != Action::Delete {
                    let found = tx
                        .execute(
                            &format!("update {schema}.{table} set sfid = coalesce($2, sfid), _hc_lastop = $3, _hc_err = null where id = $1"),
                            &[&record_id, sfid, &lastop],
                        )
                        .await
                        .map_err(pg_error("writing back a synced row"))?;
                    if found == 0
                        && change.action == Action::Insert
                        && let Some(sfid) = sfid
                    {
                        // Deleted locally while the insert was in flight: delete it there too.
                        tx.execute(
                            &format!(
                                "insert into {schema}._trigger_log (action, table_name, txid, state, record_id, sfid)
                                 values ('DELETE', $1, txid_current(), 'NEW', $2, $3)"
                            ),
                            &[&batch.table, &record_id, sfid],
                        )
                        .await
                        .map_err(pg_error("queueing the delete of a row removed in flight"))?;
                    }
                }
                tx.execute(&log_update, &[&ids, &"SUCCESS", &None::<String>, sfid])
                    .await
                    .map_err(pg_error("marking log rows SUCCESS"))?;
                outcome.succeeded += 1;
                outcome.merged += merged.len() as u64;
                *outcome.by_table.entry(batch.table.clone()).or_default() += 1;
            }
            Sent::Refused(error) => {
                let operation = format!("{:?}", change.action).to_uppercase();
                let detail = json!({ "op": operation, "code": error.code.as_str(), "message": error.message, "fields": error.fields });
                if change.action != Action::Delete {
                    tx.execute(
                        &format!("update {schema}.{table} set _hc_lastop = 'FAILED', _hc_err = $2 where id = $1"),
                        &[&record_id, &detail.to_string()],
                    )
                    .await
                    .map_err(pg_error("writing back a failed row"))?;
                }
                let message = format!("{}: {}", error.code, error.message);
                tx.execute(
                    &log_update,
                    &[&ids, &"FAILED", &Some(message), &None::<String>],
                )
                .await
                .map_err(pg_error("marking log rows FAILED"))?;
                outcome.failed += 1;
                outcome.merged += merged.len() as u64;
                if change.action == Action::Insert {
                    outcome
                        .failed_inserts
                        .insert((batch.table.clone(), change.record_id));
                }
            }
            Sent::Retry(reason) => {
                tracing::warn!(table = %batch.table, log_id = change.log_id, reason = %reason, "will send again");
                retry.extend(all_ids.iter().map(|id| i64::from(*id)));
            }
            Sent::InDoubt(reason) => {
                tracing::warn!(table = %batch.table, log_id = change.log_id, reason = %reason, "create in doubt; checking Salesforce before sending again");
                in_doubt.extend(all_ids.iter().map(|id| i64::from(*id)));
            }
        }
        if !merged_ids.is_empty() && matches!(result, Sent::Written(_) | Sent::Refused(_)) {
            // Folded into the change just recorded and sent as part of it.
            tx.execute(
                &log_update,
                &[&merged_ids, &"MERGED", &None::<String>, &None::<String>],
            )
            .await
            .map_err(pg_error("marking merged log rows"))?;
        }
    }
    tx.commit().await.map_err(pg_error("committing results"))?;
    Ok((retry, in_doubt))
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
