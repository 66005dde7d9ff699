//! A Bulk API ingest job's life, so that no row is sent twice and none is lost whatever
//! happens to the job or the writer.
//!
//! Data flow: create the job and upload its CSV (if either fails nothing was processed:
//! the run falls back to collections) → keep the job in the catalog with its trigger-log
//! rows and each row's key (`pgforce_store::trigger_log::jobs`) → close it (from now on
//! Salesforce may process it whatever happens here) → wait for it, watching the stop
//! signal and the lease → read its successful, failed and unprocessed rows and match each
//! to its change by key. A job that failed partway keeps the results of what it processed:
//! those rows are recorded as such, only unprocessed ones are sent again, and a row found
//! in no list is in doubt (a create is looked for before it is sent again), never resent
//! blindly. The job is forgotten in the transaction that records its outcomes.
//!
//! A writer that stops while a job runs (shutdown, lease lost, crash) leaves its rows
//! PENDING and the job in the catalog; the next writer reads the job's results
//! ([`settle_left_jobs`]) before anything else, instead of sending its rows again. A job
//! whose mapping is paused is kept, its rows PENDING, until the mapping runs again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pgforce_salesforce::bulk::csv::push_row;
use pgforce_salesforce::bulk::ingest::IngestOperation;
use pgforce_salesforce::bulk::{JobInfo, JobKind, JobState};
use pgforce_salesforce::{Client as Salesforce, Error as SfError};
use pgforce_store::trigger_log::claim::pending_rows;
use pgforce_store::trigger_log::jobs::{self, WriterJob};
use pgforce_store::{LogAction, Session as Postgres};

use super::bulk::{record_error, row_key, upload, upload_key};
use super::send::Sent;
use super::{Pass, claim, log_error, record};
use crate::error::{Error, Result};
use crate::error_policy::{self, Decision};
use crate::mapping::Mapping;
use crate::plan::{Action, Batch};

/// First pause between polls of a job, doubling to [`LONGEST_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(20);
const LONGEST_POLL: Duration = Duration::from_secs(5);
/// How long a job may run before it is aborted (and what it processed is recorded).
const JOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// What became of a run sent as a job.
pub(super) enum JobOutcome {
    /// The job ran, wholly or in part: per change what became of it (`None`: the job
    /// never processed it, so it can be sent another way), the calls made, its Id.
    Ran {
        sent: Vec<Option<Sent>>,
        calls: u64,
        job_id: String,
    },
    /// Nothing was processed (the job could not be created, uploaded or closed): the run
    /// goes through collections.
    NotStarted(SfError),
    /// The writer must stop, or lost its lease, while the job runs: its rows stay PENDING
    /// and the job is kept for the next writer.
    LeftRunning,
}

/// Sends `batch` (every change sendable) as one ingest job.
pub(super) async fn run_job(
    pass: &Pass<'_>,
    pg: &Postgres,
    mapping: &Mapping,
    batch: &Batch,
) -> Result<JobOutcome> {
    let sf = pass.sf;
    let (operation, external_id) = match (batch.action, mapping.spec.upsert_field.as_deref()) {
        (Action::Insert, Some(field)) => (IngestOperation::Upsert, Some(field)),
        (Action::Insert, None) => (IngestOperation::Insert, None),
        (Action::Update, _) => (IngestOperation::Update, None),
        (Action::Delete, _) => (IngestOperation::Delete, None),
    };
    let (header, rows) = upload(mapping, batch);
    let mut csv = String::with_capacity(rows.len() * 128);
    push_row(&mut csv, &header.iter().map(Some).collect::<Vec<_>>());
    for row in &rows {
        push_row(&mut csv, row);
    }
    let job = match sf
        .create_ingest_job(&mapping.object, operation, external_id)
        .await
    {
        Ok(job) => job,
        Err(error) => return Ok(JobOutcome::NotStarted(error)),
    };
    if let Err(error) = sf.upload(&job, csv.into()).await {
        // An upload is only processed once the job is closed: nothing happened.
        let _ = sf.abort_job(JobKind::Ingest, &job.id).await;
        return Ok(JobOutcome::NotStarted(error));
    }
    let kept = WriterJob {
        job_id: job.id.clone(),
        table: batch.table.clone(),
        log_ids: batch.changes.iter().map(|c| stored(c.log_id)).collect(),
        row_keys: rows.iter().map(|r| upload_key(r)).collect(),
    };
    jobs::save(pg, pass.schema, &kept)
        .await
        .map_err(log_error)?;
    let mut calls = 2;
    pass.fence()?;
    // Whatever the close call answered, the job's state says whether it took: an answer
    // lost on the way, or a retry refused because the first attempt closed the job, must
    // not make the run go through collections while the job processes it.
    let closing = sf.close_ingest_job(&job.id).await.err();
    calls += 1;
    let Some((done, polls)) = wait(pass, &job.id).await? else {
        return Ok(JobOutcome::LeftRunning);
    };
    calls += polls;
    if done.state == JobState::Open {
        // The close never took: the job holds its upload unprocessed.
        let _ = sf.abort_job(JobKind::Ingest, &job.id).await;
        jobs::forget(pg, &job.id).await.map_err(log_error)?;
        return Ok(JobOutcome::NotStarted(closing.unwrap_or(
            SfError::JobFailed {
                id: job.id,
                state: "Open".to_owned(),
                message: "the job was never closed".to_owned(),
            },
        )));
    }
    let (sent, result_calls) = results(sf, &done, &kept.row_keys, batch, mapping).await?;
    Ok(JobOutcome::Ran {
        sent,
        calls: calls + result_calls,
        job_id: done.id,
    })
}

fn stored(id: i64) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX)
}

/// Polls a job until it ends (`Some`: its last info and the polls made), aborting it when
/// it runs longer than [`JOB_TIMEOUT`]. `None` when the writer must stop or its lease can
/// no longer be trusted meanwhile: the job goes on without it.
async fn wait(pass: &Pass<'_>, id: &str) -> Result<Option<(JobInfo, u64)>> {
    let started = Instant::now();
    let mut pause = FIRST_POLL;
    let mut polls = 0;
    loop {
        if pass.must_stop() || pass.fence().is_err() {
            return Ok(None);
        }
        let info = pass
            .sf
            .job(JobKind::Ingest, id)
            .await
            .map_err(|e| Error::salesforce("(bulk job)", e))?;
        polls += 1;
        if info.state.is_final() || info.state == JobState::Open {
            return Ok(Some((info, polls)));
        }
        if started.elapsed() > JOB_TIMEOUT {
            tracing::warn!(
                job = id,
                "bulk job still running after six hours; aborting it and recording what it did"
            );
            let aborted = pass
                .sf
                .abort_job(JobKind::Ingest, id)
                .await
                .map_err(|e| Error::salesforce("(bulk job)", e))?;
            return Ok(Some((aborted, polls + 1)));
        }
        pass.pause(pause).await;
        pause = (pause * 2).min(LONGEST_POLL);
    }
}

/// What a finished job did with each change: its successful and failed rows, and
/// (`None`) its unprocessed ones, free to be sent again. A row in none of the lists is in
/// doubt.
async fn results(
    sf: &Salesforce,
    job: &JobInfo,
    keys: &[String],
    batch: &Batch,
    mapping: &Mapping,
) -> Result<(Vec<Option<Sent>>, u64)> {
    let sf_error = |e| Error::salesforce(&mapping.object, e);
    if job.state != JobState::JobComplete {
        tracing::warn!(
            job = %job.id,
            state = ?job.state,
            message = job.error_message.as_deref().unwrap_or_default(),
            "bulk job ended early; recording what it processed, sending the rest again"
        );
    }
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, key) in keys.iter().enumerate().rev() {
        by_key.entry(key.as_str()).or_default().push(index);
    }
    // Outer `None`: in no list yet; inner `None`: unprocessed.
    let mut sent: Vec<Option<Option<Sent>>> = vec![None; keys.len()];
    let mut take = |key: String| by_key.get_mut(key.as_str()).and_then(Vec::pop);
    for result in sf.ingest_results(&job.id).await.map_err(sf_error)? {
        let Some(index) = take(row_key(&result.row)) else {
            continue;
        };
        sent[index] = Some(Some(match result.outcome {
            Ok(_) => Sent::Written(result.id),
            Err(text) => {
                let error = record_error(&text);
                match error_policy::decide_record(&error) {
                    Decision::Retry => Sent::Retry(format!("{}: {}", error.code, error.message)),
                    _ => Sent::Refused(error),
                }
            }
        }));
    }
    for row in sf.unprocessed_records(&job.id).await.map_err(sf_error)? {
        if let Some(index) = take(row_key(&row)) {
            sent[index] = Some(None);
        }
    }
    // Results, failures and unprocessed rows: three calls.
    let calls = 3;
    let unknown = sent.iter().filter(|s| s.is_none()).count();
    if unknown > 0 {
        tracing::warn!(job = %job.id, rows = unknown, "bulk job gave no result for some rows; they are in doubt");
    }
    let creates = batch.action == Action::Insert && mapping.spec.upsert_field.is_none();
    let in_doubt = || {
        let reason = format!("bulk job {} gave no result for this row", job.id);
        if creates {
            Sent::InDoubt(reason)
        } else {
            Sent::Retry(reason)
        }
    };
    Ok((
        sent.into_iter()
            .map(|s| s.unwrap_or_else(|| Some(in_doubt())))
            .collect(),
        calls,
    ))
}

/// Reads the results of the jobs a stopped writer left and records them, before anything
/// else is sent. Returns `false` when the writer must stop meanwhile (a job still runs).
pub(super) async fn settle_left_jobs(pass: &Pass<'_>, pg: &mut Postgres) -> Result<bool> {
    for job in jobs::unrecorded(&*pg, pass.schema)
        .await
        .map_err(log_error)?
    {
        let rows = pending_rows(&*pg, pass.schema, &job.log_ids)
            .await
            .map_err(log_error)?;
        if rows.is_empty() {
            // Recorded already, or its rows were set aside with their mapping: nothing to
            // read.
            jobs::forget(&*pg, &job.job_id).await.map_err(log_error)?;
            continue;
        }
        let Some(mapping) = pass.by_table.get(job.table.as_str()).copied() else {
            // Its mapping is paused: the job is kept, its rows stay PENDING, and it is read
            // when the mapping runs again. Forgetting it would send its creates twice.
            tracing::info!(job = %job.job_id, table = %job.table, "keeping a bulk job of a paused mapping until it runs again");
            continue;
        };
        tracing::info!(job = %job.job_id, rows = rows.len(), "reading a bulk job a stopped writer left");
        let Some((done, _)) = wait(pass, &job.job_id).await? else {
            return Ok(false);
        };
        if done.state == JobState::Open {
            let _ = pass.sf.abort_job(JobKind::Ingest, &job.job_id).await;
            jobs::forget(&*pg, &job.job_id).await.map_err(log_error)?;
            continue;
        }
        let mut changes = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let at = job.log_ids.iter().position(|id| *id == row.log_id);
            if let Some(key) = at.and_then(|at| job.row_keys.get(at)) {
                keys.push(key.clone());
                changes.push(claim::change_of(pg, pass, row).await?);
            }
        }
        let batch = Batch {
            table: job.table.clone(),
            action: changes.first().map_or(LogAction::Update, |c| c.action),
            merged_log_ids: vec![Vec::new(); changes.len()],
            changes,
        };
        let (answers, _) = results(pass.sf, &done, &keys, &batch, mapping).await?;
        let reason = format!("bulk job {} did not process this row", job.job_id);
        let sent: Vec<Sent> = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Sent::Retry(reason.clone())))
            .collect();
        let mut outcome = super::WriteOutcome::default();
        let (mut recording, retry, in_doubt) =
            record::prepare(mapping, &batch, &sent, &mut outcome);
        recording.finishes_job(&job.job_id);
        let fence = pass.fence()?;
        record::write(pg, pass.schema, mapping, &recording, fence.as_ref()).await?;
        // Rows to send again, and creates in doubt, wait for the resume that follows.
        tracing::info!(job = %job.job_id, written = outcome.succeeded, refused = outcome.failed, again = retry.len(), in_doubt = in_doubt.len(), "recorded a bulk job a stopped writer left");
    }
    Ok(true)
}
