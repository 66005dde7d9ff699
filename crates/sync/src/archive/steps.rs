//! The steps of an archive job: select (copy into the archive), verify (compare with
//! Salesforce), delete (in Salesforce, in batches).
//!
//! Each step can be stopped at any point and run again from its start: the select copies
//! by upsert and notes records with `on conflict do nothing`; the verify only reads; the
//! delete takes the records still `copied` and treats "already deleted" answers
//! (`ENTITY_IS_DELETED`, `INVALID_CROSS_REFERENCE_KEY`, `NOT_FOUND`) as done, so a batch
//! sent before a crash but not recorded is recorded on the second try. Every transaction
//! checks the job's fence before it commits.

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use pgforce_salesforce::bulk::JobKind;
use pgforce_salesforce::bulk::ingest::IngestOperation;
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::rest::collections::{MAX_RETRIEVE_IDS, MAX_WRITE_RECORDS, SaveResult};
use pgforce_salesforce::{ApiErrorCode, Client};
use pgforce_store::OwnWrite;
use pgforce_store::Session;
use pgforce_store::archive_table::{self, ArchiveTable};
use pgforce_store::catalog::archive::{self, Job, JobState, Step};
use pgforce_store::catalog::leases::Fence;

use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::reader::row_values;

/// Where a job can be told to stop (a crash simulated at a recorded point, for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// A page of the select was copied and recorded (pages count from 1).
    Copied {
        /// The page.
        page: usize,
    },
    /// A step was finished and the next one recorded.
    StepDone(Step),
    /// A delete batch reached Salesforce, its results not yet recorded.
    DeleteSent {
        /// The batch (from 1).
        batch: usize,
    },
    /// A delete batch's results were recorded.
    DeleteRecorded {
        /// The batch (from 1).
        batch: usize,
    },
}

/// What a run is told as it goes: the step and how many records it has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The step.
    pub step: Step,
    /// Records done in this step so far.
    pub done: u64,
    /// Records the step has to do, when known.
    pub total: Option<u64>,
}

/// What runs a job: the connection's client, its schema and the object's mapping.
pub struct JobTarget<'a> {
    /// The connection's client.
    pub salesforce: &'a Client,
    /// The connection's schema (the archive goes to `<schema>_archive`).
    pub schema: &'a pgforce_store::Ident,
    /// The object's mapping: every mapped field is archived.
    pub mapping: &'a Mapping,
    /// The job's fence, checked in every transaction (`None` only in tests).
    pub fence: Option<&'a Fence>,
    /// Records per transaction and per delete call (at most 200 per delete call).
    pub batch: usize,
}

/// Hooks a run calls: progress, and where to stop (tests).
pub struct Hooks<'a> {
    /// Told after each batch.
    pub progress: &'a mut (dyn FnMut(Progress) + Send),
    /// Asked at each [`Point`]: `true` stops the run there, as a crash would.
    pub stop: &'a mut (dyn FnMut(Point) -> bool + Send),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The job as the catalog holds it afterwards.
    pub job: Job,
    /// Where the run was told to stop, if it was.
    pub stopped_at: Option<Point>,
}

/// The archive table of a mapping.
pub(crate) fn archive_table(
    schema: &pgforce_store::Ident,
    mapping: &Mapping,
) -> Result<ArchiveTable> {
    let shape = mapping.row_shape(schema)?;
    let columns = mapping
        .fields
        .iter()
        .map(|f| pgforce_store::ddl::ColumnSpec {
            name: f.column.clone(),
            pg_type: f.pg_type,
        })
        .collect();
    ArchiveTable::new(schema, shape.table().clone(), columns)
        .map_err(|e| Error::store(&mapping.object, e))
}

/// Runs job `id` from the step it stands at to its end (or to where `hooks` stop it).
pub async fn run_job(
    target: &JobTarget<'_>,
    pg: &mut Session,
    id: i64,
    hooks: &mut Hooks<'_>,
) -> Result<RunOutcome> {
    let object = target.mapping.object.as_str();
    let store = |e| Error::store(object, e);
    let table = archive_table(target.schema, target.mapping)?;
    archive_table::ensure_archive_table(pg, &table)
        .await
        .map_err(store)?;
    loop {
        let job = load(pg, id).await?;
        if job.state.is_final() {
            return Ok(RunOutcome {
                job,
                stopped_at: None,
            });
        }
        let stopped = match job.step {
            Step::Select => select(target, pg, &table, &job, hooks).await?,
            Step::Verify => verify(target, pg, &table, &job, hooks).await?,
            Step::Delete => delete(target, pg, &job, hooks).await?,
            Step::Done => {
                finish(target, pg, &job).await?;
                None
            }
        };
        if let Some(point) = stopped {
            return Ok(RunOutcome {
                job: load(pg, id).await?,
                stopped_at: Some(point),
            });
        }
    }
}

async fn load(pg: &Session, id: i64) -> Result<Job> {
    archive::job(pg, id)
        .await
        .map_err(Error::catalog)?
        .ok_or_else(|| Error::NotFound {
            what: format!("archive job {id} does not exist"),
        })
}

/// Opens a transaction of the job, checked against its fence at commit.
pub(super) async fn begin<'c>(
    pg: &'c mut Session,
    fence: Option<&Fence>,
) -> Result<pgforce_store::OwnTransaction<'c>> {
    OwnWrite::untabled()
        .fenced(fence)
        .begin(pg)
        .await
        .map_err(Error::catalog)
}

/// Moves the job to `next` in one fenced transaction; `true` when the hooks stop there.
async fn advance(
    target: &JobTarget<'_>,
    pg: &mut Session,
    job: &Job,
    next: Step,
    hooks: &mut Hooks<'_>,
) -> Result<Option<Point>> {
    let tx = begin(pg, target.fence).await?;
    archive::set_step(&*tx, job.id, next)
        .await
        .map_err(Error::catalog)?;
    tx.commit("an archive job's step")
        .await
        .map_err(Error::catalog)?;
    let point = Point::StepDone(job.step);
    Ok((hooks.stop)(point).then_some(point))
}

fn salesforce(object: &str) -> impl Fn(pgforce_salesforce::Error) -> Error + '_ {
    move |e| Error::salesforce(object, e)
}

/// Rows of records, or the job fails naming the record and field that cannot be stored.
fn rows_of(
    mapping: &Mapping,
    records: &[Record],
) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    records
        .iter()
        .map(|record| {
            row_values(mapping, record).map_err(|r| {
                format!(
                    "record {} field {}: {} (nothing was deleted)",
                    r.sfid, r.field, r.reason
                )
            })
        })
        .collect()
}

async fn fail(pg: &Session, job: &Job, error: &str) -> Result<Option<Point>> {
    archive::set_state(pg, job.id, JobState::Failed, Some(error))
        .await
        .map_err(Error::catalog)?;
    tracing::error!(job = job.id, object = %job.object, error, "archive job failed");
    Ok(None)
}

/// Step 1: query the matching records and copy them, page by page, each page in one
/// transaction with its records noted as copied.
async fn select(
    target: &JobTarget<'_>,
    pg: &mut Session,
    table: &ArchiveTable,
    job: &Job,
    hooks: &mut Hooks<'_>,
) -> Result<Option<Point>> {
    let mapping = target.mapping;
    // The condition was checked and rewritten when the job was created; it is checked
    // again here, against the describe of today, before it reaches a query.
    let describe = target
        .salesforce
        .describe(&mapping.object)
        .await
        .map_err(salesforce(&mapping.object))?;
    let condition = match super::where_clause::parse(&job.where_clause, &describe) {
        Ok(condition) => condition,
        Err(error) => return fail(pg, job, &error.to_string()).await,
    };
    let soql = format!(
        "SELECT {} FROM {} WHERE {}",
        mapping.select_list(),
        mapping.object,
        condition.to_soql()
    );
    let total = target
        .salesforce
        .count(&format!(
            "SELECT COUNT() FROM {} WHERE {}",
            mapping.object,
            condition.to_soql()
        ))
        .await
        .map_err(salesforce(&mapping.object))?;
    let records = target.salesforce.query(&soql);
    futures_util::pin_mut!(records);
    let mut page_number = 0;
    let mut done = 0u64;
    loop {
        let mut page = Vec::with_capacity(target.batch);
        while page.len() < target.batch {
            match records
                .try_next()
                .await
                .map_err(salesforce(&mapping.object))?
            {
                Some(record) => page.push(record),
                None => break,
            }
        }
        if page.is_empty() {
            break;
        }
        let rows = match rows_of(mapping, &page) {
            Ok(rows) => rows,
            Err(error) => return fail(pg, job, &error).await,
        };
        let sfids: Vec<String> = rows
            .iter()
            .map(|row| row.first().cloned().flatten().unwrap_or_default())
            .collect();
        // The copy and its note in archive_records commit together.
        let tx = begin(pg, target.fence).await?;
        archive_table::store_rows(&*tx, table, job.id, &rows)
            .await
            .map_err(|e| Error::store(&mapping.object, e))?;
        archive::record_copied(&*tx, job.id, &sfids)
            .await
            .map_err(Error::catalog)?;
        archive::refresh_counts(&*tx, job.id, 0)
            .await
            .map_err(Error::catalog)?;
        tx.commit("an archive job's step")
            .await
            .map_err(Error::catalog)?;
        page_number += 1;
        done += rows.len() as u64;
        (hooks.progress)(Progress {
            step: Step::Select,
            done,
            total: Some(total),
        });
        let point = Point::Copied { page: page_number };
        if (hooks.stop)(point) {
            return Ok(Some(point));
        }
    }
    advance(target, pg, job, Step::Verify, hooks).await
}

/// Step 2: every copied record is read again from Salesforce by Id and compared with its
/// archived row; any difference (or a record gone) fails the job before anything is
/// deleted.
async fn verify(
    target: &JobTarget<'_>,
    pg: &mut Session,
    table: &ArchiveTable,
    job: &Job,
    hooks: &mut Hooks<'_>,
) -> Result<Option<Point>> {
    let mapping = target.mapping;
    let fields: Vec<&str> = mapping.fields.iter().map(|f| f.api_name.as_str()).collect();
    let size = target.batch.clamp(1, MAX_RETRIEVE_IDS);
    let mut after = String::new();
    let mut verified = 0i64;
    let mut differing: Vec<String> = Vec::new();
    loop {
        let sfids = archive::records_in(&*pg, job.id, "copied", &after, size as i64, false)
            .await
            .map_err(Error::catalog)?;
        let Some(last) = sfids.last() else { break };
        after.clone_from(last);
        let ids: Vec<&str> = sfids.iter().map(String::as_str).collect();
        let found = target
            .salesforce
            .retrieve_records(&mapping.object, &ids, &fields)
            .await
            .map_err(salesforce(&mapping.object))?;
        let mut present = Vec::new();
        for (sfid, record) in sfids.iter().zip(found) {
            match record {
                Some(record) => present.push(record),
                None => differing.push(format!("{sfid} (no longer in Salesforce)")),
            }
        }
        let rows = match rows_of(mapping, &present) {
            Ok(rows) => rows,
            Err(error) => return fail(pg, job, &error).await,
        };
        let mismatched = archive_table::mismatched(&*pg, table, &rows)
            .await
            .map_err(|e| Error::store(&mapping.object, e))?;
        verified += (rows.len() - mismatched.len()) as i64;
        differing.extend(
            mismatched
                .into_iter()
                .map(|sfid| format!("{sfid} (archived values differ from Salesforce)")),
        );
        (hooks.progress)(Progress {
            step: Step::Verify,
            done: verified as u64,
            total: Some(job.selected as u64),
        });
    }
    archive::refresh_counts(&*pg, job.id, verified)
        .await
        .map_err(Error::catalog)?;
    if !differing.is_empty() {
        let shown: Vec<&str> = differing.iter().take(10).map(String::as_str).collect();
        let error = format!(
            "verify found {} of {} records not archived as Salesforce holds them: {}{}; nothing was deleted (run the job again to copy them afresh)",
            differing.len(),
            job.selected,
            shown.join(", "),
            if differing.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
        return fail(pg, job, &error).await;
    }
    advance(target, pg, job, Step::Delete, hooks).await
}

/// Whether a delete refused with `code` means the record is gone already.
fn already_gone(code: &ApiErrorCode) -> bool {
    matches!(
        code,
        ApiErrorCode::EntityIsDeleted
            | ApiErrorCode::InvalidCrossReferenceKey
            | ApiErrorCode::NotFound
    )
}

/// One record's delete outcome: gone, or refused with why.
enum Deleted {
    Gone,
    Refused(String),
}

fn outcome_of(result: &SaveResult) -> Deleted {
    if result.success || result.errors.iter().any(|e| already_gone(&e.code)) {
        return Deleted::Gone;
    }
    let why: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
    Deleted::Refused(why.join("; "))
}

/// Deletes `ids` with Bulk `hardDelete`; the outcome per Id.
async fn hard_delete(client: &Client, object: &str, ids: &[String]) -> Result<Vec<Deleted>> {
    let sf = salesforce(object);
    let job = client
        .create_ingest_job(object, IngestOperation::HardDelete, None)
        .await
        .map_err(&sf)?;
    let mut csv = String::from("Id\n");
    for id in ids {
        pgforce_salesforce::bulk::csv::push_row(&mut csv, &[Some(id)]);
        csv.push('\n');
    }
    client
        .upload_and_close(&job, Bytes::from(csv))
        .await
        .map_err(&sf)?;
    client
        .wait_for_job(JobKind::Ingest, &job.id, &mut |_| {})
        .await
        .map_err(&sf)?;
    let results = client.ingest_results(&job.id).await.map_err(&sf)?;
    Ok(ids
        .iter()
        .map(|id| {
            let result = results
                .iter()
                .find(|r| r.id.as_deref() == Some(id) || r.row.first() == Some(id));
            match result.map(|r| &r.outcome) {
                Some(Ok(_)) => Deleted::Gone,
                Some(Err(message)) => {
                    let code = message.split(':').next().unwrap_or_default();
                    if already_gone(&ApiErrorCode::parse(code)) {
                        Deleted::Gone
                    } else {
                        Deleted::Refused(message.clone())
                    }
                }
                None => Deleted::Refused("the bulk job returned no result for it".to_owned()),
            }
        })
        .collect())
}

/// Step 3: delete the copied records in Salesforce, a batch per call, each batch's
/// outcomes recorded in one transaction.
async fn delete(
    target: &JobTarget<'_>,
    pg: &mut Session,
    job: &Job,
    hooks: &mut Hooks<'_>,
) -> Result<Option<Point>> {
    let object = target.mapping.object.as_str();
    let size = target.batch.clamp(1, MAX_WRITE_RECORDS);
    let mut after = String::new();
    let mut batch = 0;
    let mut done = 0u64;
    loop {
        let sfids = archive::records_in(&*pg, job.id, "copied", &after, size as i64, true)
            .await
            .map_err(Error::catalog)?;
        let Some(last) = sfids.last() else { break };
        after.clone_from(last);
        batch += 1;
        let outcomes = if job.hard_delete {
            hard_delete(target.salesforce, object, &sfids).await?
        } else {
            let ids: Vec<&str> = sfids.iter().map(String::as_str).collect();
            match target.salesforce.delete_records(&ids, false).await {
                Ok(results) => results.iter().map(outcome_of).collect(),
                Err(failure) => {
                    // Outcomes learned before the failed call are recorded; the rest stay
                    // copied and are sent again when the job resumes.
                    let (error, results) = failure.into_parts();
                    let known: Vec<(String, Deleted)> = sfids
                        .iter()
                        .zip(results)
                        .filter_map(|(sfid, r)| r.map(|r| (sfid.clone(), outcome_of(&r))))
                        .collect();
                    record_batch(target, pg, job, &known).await?;
                    return Err(Error::salesforce(object, error));
                }
            }
        };
        let point = Point::DeleteSent { batch };
        if (hooks.stop)(point) {
            return Ok(Some(point));
        }
        let outcomes: Vec<(String, Deleted)> = sfids.into_iter().zip(outcomes).collect();
        done += outcomes.len() as u64;
        record_batch(target, pg, job, &outcomes).await?;
        (hooks.progress)(Progress {
            step: Step::Delete,
            done,
            total: Some(job.selected as u64),
        });
        let point = Point::DeleteRecorded { batch };
        if (hooks.stop)(point) {
            return Ok(Some(point));
        }
    }
    advance(target, pg, job, Step::Done, hooks).await
}

/// Records a delete batch's outcomes in one fenced transaction.
async fn record_batch(
    target: &JobTarget<'_>,
    pg: &mut Session,
    job: &Job,
    outcomes: &[(String, Deleted)],
) -> Result<()> {
    let gone: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Deleted::Gone))
        .map(|(sfid, _)| sfid.clone())
        .collect();
    let tx = begin(pg, target.fence).await?;
    archive::record_deleted(&*tx, job.id, &gone)
        .await
        .map_err(Error::catalog)?;
    for (sfid, outcome) in outcomes {
        if let Deleted::Refused(why) = outcome {
            archive::record_refused(&*tx, job.id, sfid, why)
                .await
                .map_err(Error::catalog)?;
        }
    }
    archive::refresh_counts(&*tx, job.id, job.verified)
        .await
        .map_err(Error::catalog)?;
    tx.commit("an archive job's step")
        .await
        .map_err(Error::catalog)?;
    Ok(())
}

/// Ends the job: finished, or finished with errors listing the records Salesforce kept.
async fn finish(target: &JobTarget<'_>, pg: &mut Session, job: &Job) -> Result<()> {
    let refused = archive::refused(&*pg, job.id)
        .await
        .map_err(Error::catalog)?;
    let (state, error) = if refused.is_empty() {
        (JobState::Finished, None)
    } else {
        let shown: Vec<String> = refused
            .iter()
            .take(10)
            .map(|(sfid, why)| format!("{sfid}: {why}"))
            .collect();
        (
            JobState::FinishedWithErrors,
            Some(format!(
                "{} records stayed in Salesforce (they are in the archive too): {}",
                refused.len(),
                shown.join("; ")
            )),
        )
    };
    let tx = begin(pg, target.fence).await?;
    archive::set_state(&*tx, job.id, state, error.as_deref())
        .await
        .map_err(Error::catalog)?;
    tx.commit("an archive job's step")
        .await
        .map_err(Error::catalog)?;
    tracing::info!(job = job.id, object = %job.object, state = state.as_str(), "archive job ended");
    Ok(())
}
