//! Records that make Salesforce fail every call they are in.
//!
//! A call that fails as a whole with a server error (500 `UNKNOWN_EXCEPTION`: an internal
//! error, which a record's trigger may cause every time) is retried like any passing
//! trouble. But when one record causes it, retrying the call as it is would never end and
//! would hold back every change behind it. So the writer counts, per change, the calls
//! that failed so: a change with a failure behind it is sent alone from then on, and a
//! change that has failed [`MAX_SERVER_ERROR_ATTEMPTS`] times, the last ones alone,
//! becomes FAILED with Salesforce's message, and the rest of the queue goes on.
//!
//! The counts live in the writer's memory, across its sessions: a process that restarts
//! starts counting again (the bound still holds for each process).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::plan::Batch;

use super::send::Sent;
use super::wave::SentWave;

/// How many calls failing with a server error a change gets before it is FAILED.
pub const MAX_SERVER_ERROR_ATTEMPTS: u32 = 5;

/// Per change (log id), the calls that failed with a server error.
#[derive(Debug, Default)]
pub(crate) struct ServerErrors {
    /// Guards the counts; held only for a lookup or an update, never across a call.
    counts: Mutex<HashMap<i64, u32>>,
}

impl ServerErrors {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<i64, u32>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call with `log_id` in it failed with a server error before.
    pub(crate) fn suspect(&self, log_id: i64) -> bool {
        self.counts().contains_key(&log_id)
    }

    /// Counts one more failure of `log_id`; returns how many it has had.
    fn failed(&self, log_id: i64) -> u32 {
        let mut counts = self.counts();
        let count = counts.entry(log_id).or_default();
        *count += 1;
        *count
    }

    /// Forgets `log_id` (it got another answer).
    fn forget(&self, log_id: i64) {
        self.counts().remove(&log_id);
    }
}

/// Splits batches so that every suspect change goes alone; the others keep their order
/// and their company.
pub(super) fn isolate(batches: Vec<Batch>, errors: &ServerErrors) -> Vec<Batch> {
    let mut isolated = Vec::with_capacity(batches.len());
    for batch in batches {
        if !batch.changes.iter().any(|c| errors.suspect(c.log_id)) {
            isolated.push(batch);
            continue;
        }
        let empty = || Batch {
            table: batch.table.clone(),
            action: batch.action,
            changes: Vec::new(),
            merged_log_ids: Vec::new(),
        };
        let mut group = empty();
        for (change, merged) in batch.changes.iter().zip(&batch.merged_log_ids) {
            if errors.suspect(change.log_id) {
                if !group.changes.is_empty() {
                    isolated.push(std::mem::replace(&mut group, empty()));
                }
                let mut alone = empty();
                alone.changes.push(change.clone());
                alone.merged_log_ids.push(merged.clone());
                isolated.push(alone);
            } else {
                group.changes.push(change.clone());
                group.merged_log_ids.push(merged.clone());
            }
        }
        if !group.changes.is_empty() {
            isolated.push(group);
        }
    }
    isolated
}

/// Counts the server errors of a wave's answers; a change sent alone that reaches the
/// bound is refused with Salesforce's error (FAILED), and a change that got any other
/// answer is forgotten.
pub(super) fn judge(wave: &mut SentWave<'_>, errors: &ServerErrors) {
    for ((batch, _), (results, _)) in wave.iter_mut() {
        let alone = batch.changes.len() == 1;
        for (change, result) in batch.changes.iter().zip(results.iter_mut()) {
            let Sent::ServerError { error, .. } = result else {
                errors.forget(change.log_id);
                continue;
            };
            if errors.failed(change.log_id) >= MAX_SERVER_ERROR_ATTEMPTS && alone {
                tracing::warn!(table = %batch.table, log_id = change.log_id, attempts = MAX_SERVER_ERROR_ATTEMPTS, code = %error.code, "a change failed every call it was in; failing it");
                *result = Sent::Refused(error.clone());
                errors.forget(change.log_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Change};

    fn batch(log_ids: &[i64]) -> Batch {
        Batch {
            table: "account".to_owned(),
            action: Action::Insert,
            changes: log_ids
                .iter()
                .map(|id| Change {
                    log_id: *id,
                    table: "account".to_owned(),
                    action: Action::Insert,
                    record_id: *id,
                    sfid: None,
                    values: Default::default(),
                })
                .collect(),
            merged_log_ids: vec![Vec::new(); log_ids.len()],
        }
    }

    fn ids(batches: &[Batch]) -> Vec<Vec<i64>> {
        batches
            .iter()
            .map(|b| b.changes.iter().map(|c| c.log_id).collect())
            .collect()
    }

    #[test]
    fn suspects_go_alone_and_the_others_keep_their_order() {
        let errors = ServerErrors::default();
        errors.failed(2);
        errors.failed(4);
        let isolated = isolate(vec![batch(&[1, 2, 3, 4]), batch(&[5, 6])], &errors);
        assert_eq!(
            ids(&isolated),
            [vec![1], vec![2], vec![3], vec![4], vec![5, 6]]
        );
        errors.forget(2);
        assert!(!errors.suspect(2) && errors.suspect(4));
    }
}
