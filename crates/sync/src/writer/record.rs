//! What Salesforce's answers come to: the states and write-backs to record for a wave,
//! which the store writes in one transaction (`pgforce_store::trigger_log::outcomes`).
//!
//! - Written: SUCCESS, with the new `sfid` after an insert. After a delete, a row the
//!   reader stored for the record meanwhile goes too, and the record is remembered as
//!   deleted so that no page read before the delete stores it again.
//! - Refused: FAILED with `CODE: message` in `sf_message`; the row's `_hc_err` gets
//!   `{"op", "code", "message", "fields"}`. A delete refused with `ENTITY_IS_DELETED` is
//!   SUCCESS: the record is gone, as asked. An update refused with it is IGNORED if its
//!   row is gone from Postgres too (the store checks in the recording's transaction).
//! - Retry and in doubt: nothing recorded; the caller gives the rows back (retry) or
//!   leaves them PENDING to be checked (in doubt; a create Salesforce may still be running
//!   is listed in [`WriteOutcome::still_running`]).

use pgforce_salesforce::ApiErrorCode;
use pgforce_store::catalog::leases::Fence;
use pgforce_store::trigger_log::outcomes::{self, Recording};
use pgforce_store::{Ident, LogState, Session as Postgres};
use serde_json::json;

use super::send::Sent;
use super::{WriteOutcome, log_error};
use crate::error::Result;
use crate::mapping::Mapping;
use crate::plan::{Action, Batch};

/// What a batch's results come to: the recording to [`write`], the log ids to give back
/// (retry) and those left PENDING because their create may have happened (in doubt).
pub(super) fn prepare(
    mapping: &Mapping,
    batch: &Batch,
    results: &[Sent],
    outcome: &mut WriteOutcome,
) -> (Recording, Vec<i64>, Vec<i64>) {
    let (mut retry, mut in_doubt) = (Vec::new(), Vec::new());
    let (mut first_retry, mut first_doubt): (Option<&String>, Option<&String>) = (None, None);
    let mut rec = Recording::default();
    let deleted = Sent::Written(None);
    for ((change, merged), result) in batch.changes.iter().zip(&batch.merged_log_ids).zip(results) {
        let own = [change.log_id];
        let result = if already_deleted(change.action, result) {
            &deleted
        } else {
            result
        };
        match result {
            Sent::Written(sfid) => {
                if change.action == Action::Delete
                    && let Some(gone) = change.sfid.as_deref()
                {
                    rec.deleted(gone);
                }
                rec.written(change.record_id, change.action, sfid.as_deref());
                rec.log(&own, &LogState::Success, None, sfid.as_deref());
                rec.log(merged, &LogState::Merged, None, None);
                outcome.succeeded += 1;
                outcome.merged += merged.len() as u64;
                *outcome.by_table.entry(batch.table.clone()).or_default() += 1;
            }
            Sent::Refused(error) => {
                if change.action != Action::Delete {
                    let detail = json!({
                        "op": change.action.as_str(),
                        "code": error.code.as_str(),
                        "message": error.message,
                        "fields": error.fields,
                    });
                    rec.refused(change.record_id, detail.to_string());
                }
                let message = format!("{}: {}", error.code, error.message);
                rec.log(&own, &LogState::Failed, Some(&message), None);
                if change.action == Action::Update && error.code == ApiErrorCode::EntityIsDeleted {
                    rec.refused_as_deleted(&own);
                }
                rec.log(merged, &LogState::Merged, None, None);
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
                first_retry.get_or_insert(reason);
                retry.extend(own.iter().chain(merged));
            }
            Sent::InDoubt(reason) => {
                first_doubt.get_or_insert(reason);
                in_doubt.extend(own.iter().chain(merged));
            }
            Sent::StillRunning(reason) => {
                first_doubt.get_or_insert(reason);
                in_doubt.extend(own.iter().chain(merged));
                outcome.still_running.extend(own.iter().chain(merged));
            }
            Sent::ServerError {
                reason,
                in_doubt: doubt,
                ..
            } => {
                // Sent again, alone from now on (see `server_errors`).
                if *doubt {
                    first_doubt.get_or_insert(reason);
                    in_doubt.extend(own.iter().chain(merged));
                } else {
                    first_retry.get_or_insert(reason);
                    retry.extend(own.iter().chain(merged));
                }
            }
            Sent::Stopped(reason) => {
                // Nothing was written and no record caused it: the change waits.
                outcome
                    .refused_call
                    .get_or_insert_with(|| (mapping.object.clone(), reason.clone()));
                retry.extend(own.iter().chain(merged));
            }
            Sent::Paused(pause) => {
                // Nothing was written: the change goes back to wait, like a retry.
                outcome.paused.get_or_insert_with(|| pause.clone());
                retry.extend(own.iter().chain(merged));
            }
        }
    }
    // One line per batch, never one per record.
    if let Some(reason) = first_retry {
        tracing::warn!(table = %batch.table, changes = retry.len(), reason = %reason, "will send again");
    }
    if let Some(reason) = first_doubt {
        tracing::warn!(table = %batch.table, changes = in_doubt.len(), reason = %reason, "creates in doubt; checking Salesforce before sending again");
    }
    (rec, retry, in_doubt)
}

/// A delete refused because the record is deleted already (a resend after a lost answer,
/// or a delete a writer that lost its lease still sent): what it asked for is done.
fn already_deleted(action: Action, result: &Sent) -> bool {
    matches!(result, Sent::Refused(error)
        if action == Action::Delete && error.code == ApiErrorCode::EntityIsDeleted)
}

/// Writes a recording of `mapping`'s table in one transaction, committed only under the
/// lease behind `fence`.
pub(super) async fn write(
    pg: &mut Postgres,
    schema: &Ident,
    mapping: &Mapping,
    rec: &Recording,
    fence: Option<&Fence>,
) -> Result<()> {
    outcomes::record(pg, schema, &mapping.table, rec, fence)
        .await
        .map_err(log_error)
}

/// Sets a final state on log rows no call was made for.
pub(super) async fn mark(
    pg: &mut Postgres,
    schema: &Ident,
    ids: &[i64],
    state: &LogState,
    message: Option<&str>,
    fence: Option<&Fence>,
) -> Result<()> {
    outcomes::mark(pg, schema, ids, state, message, fence)
        .await
        .map_err(log_error)
}
