//! Sending planned batches: waves of calls in flight together, bulk runs, holding back
//! what depends on a refused insert, and recording each wave's outcomes.

use std::collections::{HashSet, VecDeque};

use pgforce_salesforce::Client as Salesforce;
use pgforce_store::{Ident, LogState, Session as Postgres};

use crate::config::{OnInsertFailure, WriteAlgorithm};
use crate::error::Result;
use crate::mapping::Mapping;
use crate::plan::{self, Action, Batch, Change};

use super::bulk_job::{self, JobOutcome};
use super::{Pass, WriteOutcome, bulk, claim, record, send, server_errors};

/// A wave's batches with their mappings and their answers (results, calls made).
pub(super) type SentWave<'m> = Vec<((Batch, &'m Mapping), (Vec<send::Sent>, u64))>;

/// Records a wave's answers in one transaction (forgetting the bulk job they come from,
/// if any). `true` when the pass must stop: some changes must be sent again, so they and
/// everything planned after them went back to NEW.
pub(super) async fn record_wave(
    pass: &Pass<'_>,
    pg: &mut Postgres,
    mut wave: SentWave<'_>,
    job: Option<&str>,
    pending: &mut VecDeque<Batch>,
    outcome: &mut WriteOutcome,
) -> Result<bool> {
    if let Some(errors) = pass.server_errors {
        server_errors::judge(&mut wave, errors);
    }
    let mut back = Vec::new();
    let mut stop = false;
    let mut recording = pgforce_store::trigger_log::outcomes::Recording::default();
    for ((batch, mapping), (results, calls)) in &wave {
        outcome.api_calls += calls;
        let (batch_recording, retry, in_doubt) = record::prepare(mapping, batch, results, outcome);
        recording.extend(batch_recording);
        outcome.in_doubt += in_doubt.len() as u64;
        stop |= !retry.is_empty() || !in_doubt.is_empty();
        back.extend(retry);
    }
    if let Some(job) = job {
        recording.finishes_job(job);
    }
    if let Some(((_, mapping), _)) = wave.first() {
        // One transaction for the whole wave: its batches share a table.
        let written = match pass.fence() {
            Ok(fence) => record::write(pg, pass.schema, mapping, &recording, fence.as_ref()).await,
            Err(lost) => Err(lost),
        };
        if let Err(error) = written {
            super::stale::report_if_fenced(pass, pg, mapping, &recording, &error).await;
            return Err(error);
        }
        for ((batch, mapping), (results, _)) in &wave {
            let written = results
                .iter()
                .filter(|sent| matches!(sent, send::Sent::Written(_)))
                .count();
            tracing::info!(
                "{} {} ↑SALESFORCE {written} of {} rows",
                mapping.object,
                batch.action.as_str(),
                results.len()
            );
        }
    }
    if stop {
        back.extend(pending.iter().flat_map(log_ids));
        pending.clear();
        claim::unclaim(pass, pg, &back).await?;
        outcome.retried += back.len() as u64;
    }
    Ok(stop)
}

/// What became of a run meant for a bulk job.
pub(super) enum RunSent<'m> {
    /// Answers to record (none when everything was held back), and the job they come
    /// from, forgotten when they are recorded. When the job failed partway (`fell_back`),
    /// the rows it never processed are at the front of `pending`, to go through
    /// collections.
    Answers {
        wave: SentWave<'m>,
        job: Option<String>,
        fell_back: bool,
    },
    /// The job could not start: the run's batches are back at the front of `pending`, to
    /// go through collections.
    FellBack,
    /// The writer must stop while the job runs: its rows stay PENDING and the job is kept
    /// for the next writer.
    LeftRunning,
}

/// Sends a run through one Bulk API ingest job (see `bulk_job`).
pub(super) async fn send_run<'m>(
    pass: &Pass<'m>,
    pg: &mut Postgres,
    run: Vec<Batch>,
    pending: &mut VecDeque<Batch>,
    outcome: &mut WriteOutcome,
) -> Result<RunSent<'m>> {
    let Some(mapping) = run
        .first()
        .and_then(|b| pass.by_table.get(b.table.as_str()).copied())
    else {
        // Unmapped: the collections path marks it FAILED.
        for batch in run.into_iter().rev() {
            pending.push_front(batch);
        }
        return Ok(RunSent::FellBack);
    };
    let mut prepared = Vec::with_capacity(run.len());
    for batch in run {
        if let Some(mut batch) = hold_dependents(pass, pg, outcome, batch).await? {
            if batch.action != Action::Insert {
                fill_sfids(pg, pass.schema, mapping, &mut batch).await?;
            }
            prepared.push(batch);
        }
    }
    let Some(joined) = bulk::join(&prepared) else {
        return Ok(RunSent::Answers {
            wave: Vec::new(),
            job: None,
            fell_back: false,
        });
    };
    let sendable = |c: &Change| joined.action == Action::Insert || c.sfid.is_some();
    let to_send = Batch {
        changes: joined
            .changes
            .iter()
            .filter(|c| sendable(c))
            .cloned()
            .collect(),
        ..joined.clone()
    };
    pass.fence()?;
    match bulk_job::run_job(pass, pg, mapping, &to_send).await? {
        JobOutcome::Ran {
            sent,
            calls,
            job_id,
        } => {
            // Rows the job never processed go through collections, in this pass.
            let mut answers = sent.into_iter();
            let mut answered = Batch {
                changes: Vec::new(),
                merged_log_ids: Vec::new(),
                ..joined.clone()
            };
            let (mut results, mut unprocessed) = (Vec::new(), Vec::new());
            for (change, merged) in joined.changes.into_iter().zip(joined.merged_log_ids) {
                let result = match sendable(&change) {
                    true => answers.next().unwrap_or_else(|| {
                        Some(send::Sent::Retry("no answer for this record".to_owned()))
                    }),
                    false => Some(send::Sent::Refused(send::refusal(
                        "the row has no sfid: its insert never reached Salesforce",
                    ))),
                };
                match result {
                    Some(result) => {
                        answered.changes.push(change);
                        answered.merged_log_ids.push(merged);
                        results.push(result);
                    }
                    None => unprocessed.push(change),
                }
            }
            if !answered.changes.is_empty() {
                outcome.bulk_jobs += 1;
            }
            let fell_back = !unprocessed.is_empty();
            if fell_back {
                tracing::warn!(
                    "BULK write batch to {} ended after {} of its rows. Will fall back to REST sObject Collections for the {} others",
                    mapping.object,
                    answered.changes.len(),
                    unprocessed.len()
                );
                outcome.bulk_fallbacks += 1;
                for batch in plan::ordered(unprocessed).batches.into_iter().rev() {
                    pending.push_front(batch);
                }
            }
            Ok(RunSent::Answers {
                wave: vec![((answered, mapping), (results, calls))],
                job: Some(job_id),
                fell_back,
            })
        }
        JobOutcome::NotStarted(reason) => {
            tracing::warn!(
                "BULK write batch to {} ended due to {reason}. Will fall back to REST sObject Collections",
                mapping.object
            );
            outcome.bulk_fallbacks += 1;
            for batch in prepared.into_iter().rev() {
                pending.push_front(batch);
            }
            Ok(RunSent::FellBack)
        }
        JobOutcome::LeftRunning => Ok(RunSent::LeftRunning),
    }
}

/// Takes the next batches that may be in flight together: the same table and action, no
/// record in two of them, at most `limit`. Batches of unmapped tables are marked FAILED
/// and changes held back behind refused inserts are set aside on the way.
pub(super) async fn next_wave<'m>(
    pass: &Pass<'m>,
    pg: &mut Postgres,
    pending: &mut VecDeque<Batch>,
    limit: usize,
    outcome: &mut WriteOutcome,
) -> Result<Vec<(Batch, &'m Mapping)>> {
    let mut wave: Vec<(Batch, &Mapping)> = Vec::new();
    let mut records: HashSet<i64> = HashSet::new();
    while wave.len() < limit {
        let Some(next) = pending.front() else { break };
        if let Some((first, _)) = wave.first()
            && (next.table != first.table
                || next.action != first.action
                || next.changes.iter().any(|c| records.contains(&c.record_id)))
        {
            break;
        }
        let Some(batch) = pending.pop_front() else {
            break;
        };
        let Some(mapping) = pass.by_table.get(batch.table.as_str()).copied() else {
            let ids = log_ids(&batch);
            let message = format!("pgforce: table {} is not mapped read-write", batch.table);
            let fence = pass.fence()?;
            record::mark(
                pg,
                pass.schema,
                &ids,
                &LogState::Failed,
                Some(&message),
                fence.as_ref(),
            )
            .await?;
            outcome.failed += batch.changes.len() as u64;
            continue;
        };
        let Some(mut batch) = hold_dependents(pass, pg, outcome, batch).await? else {
            continue;
        };
        if batch.action != Action::Insert {
            fill_sfids(pg, pass.schema, mapping, &mut batch).await?;
        }
        records.extend(batch.changes.iter().map(|c| c.record_id));
        wave.push((batch, mapping));
    }
    Ok(wave)
}

/// Every log row a batch carries, merged ones included.
pub(super) fn log_ids(batch: &Batch) -> Vec<i64> {
    batch
        .changes
        .iter()
        .map(|c| c.log_id)
        .chain(batch.merged_log_ids.iter().flatten().copied())
        .collect()
}

/// Under ordered writes, takes out of a batch the changes of records whose insert was
/// refused earlier in this pass (or everything, with `block_queue`) and holds them back.
pub(super) async fn hold_dependents(
    pass: &Pass<'_>,
    pg: &mut Postgres,
    outcome: &mut WriteOutcome,
    mut batch: Batch,
) -> Result<Option<Batch>> {
    let policy = pass.policy;
    if policy.algorithm != WriteAlgorithm::Ordered || outcome.failed_inserts.is_empty() {
        return Ok(Some(batch));
    }
    let blocked = |change: &Change| match policy.on_insert_failure {
        OnInsertFailure::BlockQueue => true,
        OnInsertFailure::HoldDependents => {
            outcome
                .failed_inserts
                .contains(&(change.table.clone(), change.record_id))
                || (change.action == Action::Insert
                    && pass.links.iter().any(|link| {
                        link.child_table == change.table
                            && change.values.get(&link.child_column).is_some_and(|value| {
                                value.as_ref().is_some_and(|v| {
                                    outcome
                                        .failed_keys
                                        .contains(&(link.parent_table.clone(), v.clone()))
                                })
                            })
                    }))
        }
    };
    let (held, kept): (Vec<Change>, Vec<Change>) = batch.changes.drain(..).partition(blocked);
    if !held.is_empty() {
        let ids: Vec<i64> = held.iter().map(|c| c.log_id).collect();
        let message = "pgforce: held back until the failed insert of this record or its parent \
                       is fixed and re-queued";
        let fence = pass.fence()?;
        record::mark(
            pg,
            pass.schema,
            &ids,
            &LogState::Held,
            Some(message),
            fence.as_ref(),
        )
        .await?;
        outcome.held += ids.len() as u64;
    }
    batch.merged_log_ids.truncate(kept.len());
    batch.changes = kept;
    Ok((!batch.changes.is_empty()).then_some(batch))
}

/// Fills the `sfid` of changes captured before their record's insert was written.
pub(super) async fn fill_sfids(
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
    batch: &mut Batch,
) -> Result<()> {
    let missing: Vec<i32> = batch
        .changes
        .iter()
        .filter(|c| c.sfid.is_none())
        .filter_map(|c| i32::try_from(c.record_id).ok())
        .collect();
    if missing.is_empty() || batch.action == Action::Delete {
        return Ok(());
    }
    let sfids = claim::current_sfids(pg, schema, mapping, &missing).await?;
    for change in &mut batch.changes {
        if change.sfid.is_none() {
            change.sfid = sfids.get(&change.record_id).cloned();
        }
    }
    Ok(())
}

/// Sends a batch. Updates and deletes of rows without an `sfid` (their insert never
/// reached Salesforce) are refused without a call; the rest go in one call. Returns the
/// results and the calls made.
pub(super) async fn send_batch(
    sf: &Salesforce,
    mapping: &Mapping,
    batch: &Batch,
) -> (Vec<send::Sent>, u64) {
    let sendable = |c: &Change| batch.action == Action::Insert || c.sfid.is_some();
    let to_send = Batch {
        changes: batch
            .changes
            .iter()
            .filter(|c| sendable(c))
            .cloned()
            .collect(),
        ..batch.clone()
    };
    let mut answers = Vec::new().into_iter();
    let mut calls = 0;
    if !to_send.changes.is_empty() {
        calls = 1;
        answers = send::send(sf, mapping, &to_send).await.into_iter();
    }
    let results = batch
        .changes
        .iter()
        .map(|change| match sendable(change) {
            true => answers
                .next()
                .unwrap_or_else(|| send::Sent::Retry("no answer for this record".to_owned())),
            false => send::Sent::Refused(send::refusal(
                "the row has no sfid: its insert never reached Salesforce",
            )),
        })
        .collect();
    (results, calls)
}
