//! `pgforce.writer_jobs`: Bulk API ingest jobs a writer started and has not recorded yet.
//!
//! A job is saved before it is closed (once closed, Salesforce may process it whatever
//! happens to the writer) and forgotten in the transaction that records its outcomes, so
//! at any moment a job either has its rows PENDING and its entry here, or its outcomes
//! recorded and no entry. A writer starting up reads the results of the jobs left here
//! instead of sending their rows again.

use tokio_postgres::GenericClient;

use crate::Ident;
use crate::error::{Context as _, Result};

/// A job and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterJob {
    /// Salesforce's job Id.
    pub job_id: String,
    /// The mapped table.
    pub table: String,
    /// The trigger-log rows it carries, in upload order.
    pub log_ids: Vec<i32>,
    /// Each uploaded row's key (its values joined), in upload order.
    pub row_keys: Vec<String>,
}

/// Saves a job before it is closed.
pub async fn save(client: &impl GenericClient, schema: &Ident, job: &WriterJob) -> Result<()> {
    client
        .execute(
            "insert into pgforce.writer_jobs (job_id, schema_name, table_name, log_ids, row_keys)
             values ($1, $2, $3, $4, $5)",
            &[
                &job.job_id,
                &schema.as_str(),
                &job.table,
                &job.log_ids,
                &job.row_keys,
            ],
        )
        .await
        .context(|| format!("keeping bulk job {} of {schema}", job.job_id))
        .map(|_| ())
}

/// The jobs writers of `schema` left unrecorded, oldest first.
pub async fn unrecorded(client: &impl GenericClient, schema: &Ident) -> Result<Vec<WriterJob>> {
    let rows = client
        .query(
            "select job_id, table_name, log_ids, row_keys from pgforce.writer_jobs
             where schema_name = $1 order by created_at",
            &[&schema.as_str()],
        )
        .await
        .context(|| format!("reading the bulk jobs writers of {schema} left"))?;
    Ok(rows
        .iter()
        .map(|row| WriterJob {
            job_id: row.get(0),
            table: row.get(1),
            log_ids: row.get(2),
            row_keys: row.get(3),
        })
        .collect())
}

/// Forgets a job (its outcomes recorded, or it never started).
pub async fn forget(client: &impl GenericClient, job_id: &str) -> Result<()> {
    client
        .execute(
            "delete from pgforce.writer_jobs where job_id = $1",
            &[&job_id],
        )
        .await
        .context(|| format!("forgetting bulk job {job_id}"))
        .map(|_| ())
}
