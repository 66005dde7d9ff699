//! `pgforce.archive_jobs` and `pgforce.archive_records`: archive jobs and how far each of
//! their records went.
//!
//! A job moves through its steps (select → verify → delete → done); the step is written
//! in the transaction that finishes the one before, so a job stopped anywhere resumes at
//! the step it stood in. Each record's state (copied → deleted, or restored later) is
//! written in the same transaction as what made it so: its copy into the archive table, or
//! Salesforce's answer to its delete. Transactions of a job run under its lease
//! ([`archive_lease`]) and call [`super::leases::check`] before committing.

use tokio_postgres::GenericClient;

use crate::ConnectionId;
use crate::error::{Context as _, Error, Result};

/// How archive job lease names begin: `archive:<job id>`.
pub const ARCHIVE_PREFIX: &str = "archive:";

/// The lease of an archive job.
pub fn archive_lease(job: i64) -> String {
    format!("{ARCHIVE_PREFIX}{job}")
}

/// Where a job stands overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a worker.
    Pending,
    /// A worker is on it (or was, and it resumes).
    Running,
    /// Every record copied, verified and deleted.
    Finished,
    /// Done, but some records stayed in Salesforce for reasons of their own (listed).
    FinishedWithErrors,
    /// Stopped: verification found a difference, or the job cannot go on; nothing more
    /// is deleted.
    Failed,
}

impl JobState {
    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Finished => "finished",
            Self::FinishedWithErrors => "finished_with_errors",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "finished" => Self::Finished,
            "finished_with_errors" => Self::FinishedWithErrors,
            "failed" => Self::Failed,
            other => {
                return Err(Error::Catalog {
                    what: format!("archive job state {other:?} is unknown to this version"),
                });
            }
        })
    }

    /// Whether the job is over (nothing resumes it).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Finished | Self::FinishedWithErrors | Self::Failed
        )
    }
}

/// The step a job is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Querying Salesforce and copying into the archive table.
    Select,
    /// Comparing the archive with Salesforce.
    Verify,
    /// Deleting in Salesforce.
    Delete,
    /// Nothing left to do.
    Done,
}

impl Step {
    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Select => "select",
            Self::Verify => "verify",
            Self::Delete => "delete",
            Self::Done => "done",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "select" => Self::Select,
            "verify" => Self::Verify,
            "delete" => Self::Delete,
            "done" => Self::Done,
            other => {
                return Err(Error::Catalog {
                    what: format!("archive job step {other:?} is unknown to this version"),
                });
            }
        })
    }
}

/// One archive job as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// The connection it archives from.
    pub connection_id: ConnectionId,
    /// The object's API name.
    pub object: String,
    /// The condition as the operator gave it (validated before the job was created).
    pub where_clause: String,
    /// Whether deletes skip the recycle bin (Bulk hardDelete).
    pub hard_delete: bool,
    /// Where it stands overall.
    pub state: JobState,
    /// The step it is at.
    pub step: Step,
    /// Records copied into the archive.
    pub selected: i64,
    /// Records verified against Salesforce.
    pub verified: i64,
    /// Records deleted in Salesforce (or found already gone).
    pub deleted: i64,
    /// Records Salesforce refused to delete for reasons of their own.
    pub failed: i64,
    /// Why it failed or what stayed behind.
    pub error: Option<String>,
}

const JOB_COLUMNS: &str = "id, connection_id, object, where_clause, hard_delete, state, step, \
                           selected, verified, deleted, failed, error";

fn job_of(row: &tokio_postgres::Row) -> Result<Job> {
    Ok(Job {
        id: row.get(0),
        connection_id: ConnectionId::from(row.get::<_, i64>(1)),
        object: row.get(2),
        where_clause: row.get(3),
        hard_delete: row.get(4),
        state: JobState::parse(row.get(5))?,
        step: Step::parse(row.get(6))?,
        selected: row.get(7),
        verified: row.get(8),
        deleted: row.get(9),
        failed: row.get(10),
        error: row.get(11),
    })
}

/// Records a new pending job; returns it.
pub async fn create_job(
    client: &impl GenericClient,
    connection: ConnectionId,
    object: &str,
    where_clause: &str,
    hard_delete: bool,
) -> Result<Job> {
    let sql = format!(
        "insert into pgforce.archive_jobs (connection_id, object, where_clause, hard_delete)
         values ($1, $2, $3, $4) returning {JOB_COLUMNS}"
    );
    let row = client
        .query_one(
            &sql,
            &[&connection.get(), &object, &where_clause, &hard_delete],
        )
        .await
        .context(|| format!("recording an archive job of {object}"))?;
    let job = job_of(&row)?;
    // Running engines take the job up at once.
    client
        .execute(
            "select pg_notify($1, $2)",
            &[&super::CATALOG_CHANNEL, &format!("archive_jobs:{}", job.id)],
        )
        .await
        .context(|| format!("announcing archive job {}", job.id))?;
    Ok(job)
}

/// The job `id`, if it exists.
pub async fn job(client: &impl GenericClient, id: i64) -> Result<Option<Job>> {
    let sql = format!("select {JOB_COLUMNS} from pgforce.archive_jobs where id = $1");
    client
        .query_opt(&sql, &[&id])
        .await
        .context(|| format!("reading archive job {id}"))?
        .as_ref()
        .map(job_of)
        .transpose()
}

/// Jobs not yet over, oldest first (what `pgforce run` takes up).
pub async fn open_jobs(client: &impl GenericClient) -> Result<Vec<Job>> {
    let sql = format!(
        "select {JOB_COLUMNS} from pgforce.archive_jobs
         where state in ('pending', 'running') order by id"
    );
    client
        .query(&sql, &[])
        .await
        .context(|| "listing open archive jobs".to_owned())?
        .iter()
        .map(job_of)
        .collect()
}

/// The latest jobs of every connection, newest first (for the dashboard and the API).
pub async fn recent_jobs(client: &impl GenericClient, limit: i64) -> Result<Vec<Job>> {
    let sql = format!("select {JOB_COLUMNS} from pgforce.archive_jobs order by id desc limit $1");
    client
        .query(&sql, &[&limit])
        .await
        .context(|| "listing archive jobs".to_owned())?
        .iter()
        .map(job_of)
        .collect()
}

/// Moves job `id` to `step` (and state running).
pub async fn set_step(client: &impl GenericClient, id: i64, step: Step) -> Result<()> {
    client
        .execute(
            "update pgforce.archive_jobs set step = $2, state = 'running', updated_at = now()
             where id = $1",
            &[&id, &step.as_str()],
        )
        .await
        .context(|| format!("moving archive job {id} to step {}", step.as_str()))?;
    Ok(())
}

/// Ends job `id` (or pauses it with an error while it stays `running`): its state and
/// error text.
pub async fn set_state(
    client: &impl GenericClient,
    id: i64,
    state: JobState,
    error: Option<&str>,
) -> Result<()> {
    client
        .execute(
            "update pgforce.archive_jobs set state = $2, error = $3, updated_at = now()
             where id = $1",
            &[&id, &state.as_str(), &error],
        )
        .await
        .context(|| format!("setting archive job {id} to {}", state.as_str()))?;
    Ok(())
}

/// Refreshes the job's counts from its records (`verified` as given).
pub async fn refresh_counts(client: &impl GenericClient, id: i64, verified: i64) -> Result<()> {
    client
        .execute(
            "update pgforce.archive_jobs j set
                 selected = (select count(*) from pgforce.archive_records r where r.job_id = j.id),
                 deleted = (select count(*) from pgforce.archive_records r
                            where r.job_id = j.id and r.state = 'deleted'),
                 failed = (select count(*) from pgforce.archive_records r
                           where r.job_id = j.id and r.state = 'copied' and r.error is not null),
                 verified = $2, updated_at = now()
             where j.id = $1",
            &[&id, &verified],
        )
        .await
        .context(|| format!("counting the records of archive job {id}"))?;
    Ok(())
}

/// Notes records as copied into the archive by job `id` (a record already noted keeps
/// its state).
pub async fn record_copied(client: &impl GenericClient, id: i64, sfids: &[String]) -> Result<()> {
    client
        .execute(
            "insert into pgforce.archive_records (job_id, sfid)
             select $1, unnest($2::varchar[]) on conflict do nothing",
            &[&id, &sfids],
        )
        .await
        .context(|| format!("recording copied records of archive job {id}"))?;
    Ok(())
}

/// Notes records as deleted in Salesforce.
pub async fn record_deleted(client: &impl GenericClient, id: i64, sfids: &[String]) -> Result<()> {
    client
        .execute(
            "update pgforce.archive_records set state = 'deleted', error = null
             where job_id = $1 and sfid = any($2::varchar[])",
            &[&id, &sfids],
        )
        .await
        .context(|| format!("recording deleted records of archive job {id}"))?;
    Ok(())
}

/// Notes that Salesforce refused to delete a record, and why (it stays `copied`).
pub async fn record_refused(
    client: &impl GenericClient,
    id: i64,
    sfid: &str,
    error: &str,
) -> Result<()> {
    client
        .execute(
            "update pgforce.archive_records set error = $3 where job_id = $1 and sfid = $2",
            &[&id, &sfid, &error],
        )
        .await
        .context(|| format!("recording a refused delete of {sfid} in archive job {id}"))?;
    Ok(())
}

/// Up to `limit` records of job `id` in `state`, by `sfid` after `after` (keyset paging;
/// `""` for the first page). With `untried`, only those no delete was refused for.
pub async fn records_in(
    client: &impl GenericClient,
    id: i64,
    state: &str,
    after: &str,
    limit: i64,
    untried: bool,
) -> Result<Vec<String>> {
    Ok(client
        .query(
            "select sfid from pgforce.archive_records
             where job_id = $1 and state = $2 and sfid > $3 and (not $5 or error is null)
             order by sfid limit $4",
            &[&id, &state, &after, &limit, &untried],
        )
        .await
        .context(|| format!("reading the {state} records of archive job {id}"))?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// The records Salesforce refused to delete, with why.
pub async fn refused(client: &impl GenericClient, id: i64) -> Result<Vec<(String, String)>> {
    Ok(client
        .query(
            "select sfid, error from pgforce.archive_records
             where job_id = $1 and state = 'copied' and error is not null order by sfid",
            &[&id],
        )
        .await
        .context(|| format!("reading the refused deletes of archive job {id}"))?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// A record being restored by `unarchive`: its job and `sfid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restoring {
    /// The job that archived it.
    pub job: i64,
    /// Its Id before it was archived.
    pub sfid: String,
    /// When its create was sent, moved back by the clock margin (ISO 8601, UTC).
    pub since: String,
}

/// Notes that creates of these `(job, sfid)` records are about to be sent (committed
/// before the call, so a crash leaves them `restoring`: in doubt).
pub async fn mark_restoring(client: &impl GenericClient, records: &[(i64, String)]) -> Result<()> {
    let jobs: Vec<i64> = records.iter().map(|(job, _)| *job).collect();
    let sfids: Vec<&str> = records.iter().map(|(_, sfid)| sfid.as_str()).collect();
    client
        .execute(
            "update pgforce.archive_records r set state = 'restoring', restore_started = now(), error = null
             from unnest($1::bigint[], $2::varchar[]) as t(job_id, sfid)
             where r.job_id = t.job_id and r.sfid = t.sfid",
            &[&jobs, &sfids],
        )
        .await
        .context(|| "recording creates about to be sent by unarchive".to_owned())?;
    Ok(())
}

/// Records of `object` on `connection` whose create may have reached Salesforce without
/// its answer being recorded, with when it was sent less `margin_seconds`.
pub async fn restoring(
    client: &impl GenericClient,
    connection: ConnectionId,
    object: &str,
    margin_seconds: f64,
) -> Result<Vec<Restoring>> {
    Ok(client
        .query(
            "select r.job_id, r.sfid,
                    to_char((r.restore_started - make_interval(secs => $3)) at time zone 'UTC',
                            'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             from pgforce.archive_records r join pgforce.archive_jobs j on j.id = r.job_id
             where j.connection_id = $1 and lower(j.object) = lower($2) and r.state = 'restoring'
             order by r.sfid",
            &[&connection.get(), &object, &margin_seconds],
        )
        .await
        .context(|| format!("reading the restores in doubt of {object}"))?
        .iter()
        .map(|row| Restoring {
            job: row.get(0),
            sfid: row.get(1),
            since: row.get(2),
        })
        .collect())
}

/// Records that archived record `sfid` of `job` lives again in Salesforce as `new_sfid`.
pub async fn record_restored(
    client: &impl GenericClient,
    job: i64,
    sfid: &str,
    new_sfid: &str,
) -> Result<()> {
    client
        .execute(
            "update pgforce.archive_records set state = 'restored', new_sfid = $3, error = null
             where job_id = $1 and sfid = $2",
            &[&job, &sfid, &new_sfid],
        )
        .await
        .context(|| format!("recording the restore of {sfid} as {new_sfid}"))?;
    Ok(())
}

/// Records that Salesforce refused to re-create `sfid` of `job`, and why (it stays
/// archived).
pub async fn record_restore_refused(
    client: &impl GenericClient,
    job: i64,
    sfid: &str,
    error: &str,
) -> Result<()> {
    client
        .execute(
            "update pgforce.archive_records set state = 'deleted', error = $3
             where job_id = $1 and sfid = $2",
            &[&job, &sfid, &error],
        )
        .await
        .context(|| format!("recording the refused restore of {sfid}"))?;
    Ok(())
}

/// The new Ids of restored records among `sfids` (old Id → new Id).
pub async fn new_ids(
    client: &impl GenericClient,
    sfids: &[String],
) -> Result<std::collections::HashMap<String, String>> {
    Ok(client
        .query(
            "select sfid, new_sfid from pgforce.archive_records
             where sfid = any($1::varchar[]) and state = 'restored' and new_sfid is not null",
            &[&sfids],
        )
        .await
        .context(|| "reading the new Ids of restored records".to_owned())?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// Which of these Salesforce Ids are already the new Id of a restored record.
pub async fn new_ids_taken(
    client: &impl GenericClient,
    ids: &[String],
) -> Result<std::collections::HashSet<String>> {
    Ok(client
        .query(
            "select new_sfid from pgforce.archive_records where new_sfid = any($1::varchar[])",
            &[&ids],
        )
        .await
        .context(|| "reading the Ids restored records took".to_owned())?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Records moved by every archive job of one connection's object, and its jobs by state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// The connection's name.
    pub connection: String,
    /// The object.
    pub object: String,
    /// Records copied into the archive.
    pub selected: i64,
    /// Records verified against Salesforce.
    pub verified: i64,
    /// Records deleted in Salesforce.
    pub deleted: i64,
    /// Records Salesforce refused to delete.
    pub failed: i64,
    /// Records re-created by unarchive.
    pub restored: i64,
    /// Jobs by state (`pending`, `running`, …).
    pub jobs: Vec<(String, i64)>,
}

/// Every connection's and object's archive totals (for `/metrics`).
pub async fn totals(client: &impl GenericClient) -> Result<Vec<Totals>> {
    let rows = client
        .query(
            "select c.name, j.object, sum(j.selected)::bigint, sum(j.verified)::bigint,
                    sum(j.deleted)::bigint, sum(j.failed)::bigint,
                    (select count(*) from pgforce.archive_records r
                     join pgforce.archive_jobs k on k.id = r.job_id
                     where k.connection_id = c.id and k.object = j.object and r.state = 'restored'),
                    array_agg(j.state)
             from pgforce.archive_jobs j join pgforce.connections c on c.id = j.connection_id
             group by c.id, c.name, j.object order by c.name, j.object",
            &[],
        )
        .await
        .context(|| "reading archive totals".to_owned())?;
    Ok(rows
        .iter()
        .map(|row| {
            let states: Vec<String> = row.get(7);
            let mut jobs: Vec<(String, i64)> = Vec::new();
            for state in states {
                match jobs.iter_mut().find(|(s, _)| *s == state) {
                    Some((_, n)) => *n += 1,
                    None => jobs.push((state, 1)),
                }
            }
            Totals {
                connection: row.get(0),
                object: row.get(1),
                selected: row.get(2),
                verified: row.get(3),
                deleted: row.get(4),
                failed: row.get(5),
                restored: row.get(6),
                jobs,
            }
        })
        .collect())
}
