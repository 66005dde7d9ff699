//! Bulk API 2.0 ingest jobs.

use bytes::Bytes;
use reqwest::Method;
use serde_json::json;

use super::csv::parse;
use super::job::{JobInfo, JobKind};
use crate::client::{Call, Client, Idempotency};
use crate::error::{Error, Result};

/// What an ingest job does to each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOperation {
    /// Create records.
    Insert,
    /// Update records by `Id`.
    Update,
    /// Upsert by an external id field.
    Upsert,
    /// Delete by `Id` (to the recycle bin).
    Delete,
    /// Delete by `Id`, skipping the recycle bin.
    HardDelete,
}

impl IngestOperation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Upsert => "upsert",
            Self::Delete => "delete",
            Self::HardDelete => "hardDelete",
        }
    }
}

/// The outcome of one uploaded row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResult {
    /// The record's Id (`None` for a failed insert).
    pub id: Option<String>,
    /// `Ok(created)`, or Salesforce's `CODE:message:fields --`.
    pub outcome: std::result::Result<bool, String>,
    /// The row as uploaded, in upload column order.
    pub row: Vec<String>,
}

impl Client {
    /// Creates an ingest job (`external_id_field` for upserts).
    pub async fn create_ingest_job(
        &self,
        object: &str,
        operation: IngestOperation,
        external_id_field: Option<&str>,
    ) -> Result<JobInfo> {
        let path = self.job_path(JobKind::Ingest, "");
        let mut body = json!({
            "object": object,
            "operation": operation.as_str(),
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        if let Some(field) = external_id_field {
            body["externalIdFieldName"] = json!(field);
        }
        let mut call = Call::new(Method::POST, path.clone(), Idempotency::Idempotent);
        call.json = Some(body);
        self.execute(&call).await?.json(&path)
    }

    /// Uploads the job's CSV (once per job) and closes it, so Salesforce starts.
    pub async fn upload_and_close(&self, job: &JobInfo, csv: Bytes) -> Result<JobInfo> {
        self.upload(job, csv).await?;
        self.close_ingest_job(&job.id).await
    }

    /// Uploads the job's CSV, once per job. Nothing is processed until the job is closed.
    pub async fn upload(&self, job: &JobInfo, csv: Bytes) -> Result<()> {
        let path = match &job.content_url {
            Some(url) => format!("/{}", url.trim_start_matches('/')),
            None => self.job_path(
                JobKind::Ingest,
                &format!("/{}/batches", crate::rest::segment(&job.id)),
            ),
        };
        // A second PUT would fail the job: never resent after an unknown outcome.
        let mut call = Call::new(Method::PUT, path, Idempotency::NotIdempotent);
        call.raw = Some((csv, "text/csv"));
        self.execute(&call).await.map(|_| ())
    }

    /// Closes an ingest job's upload: from now on Salesforce processes it.
    pub async fn close_ingest_job(&self, id: &str) -> Result<JobInfo> {
        self.set_job_state(JobKind::Ingest, id, "UploadComplete")
            .await
    }

    /// The rows of an ingest job Salesforce never processed (a job that failed or was
    /// aborted partway), each as uploaded, in upload column order.
    pub async fn unprocessed_records(&self, id: &str) -> Result<Vec<Vec<String>>> {
        let path = self.job_path(
            JobKind::Ingest,
            &format!("/{}/unprocessedrecords/", crate::rest::segment(id)),
        );
        let mut call = Call::new(Method::GET, path.clone(), Idempotency::Idempotent);
        call.accept = "text/csv";
        let page = parse(&self.execute(&call).await?.body, &path)?;
        Ok(page.rows)
    }

    /// Every row's result of a completed ingest job: successes, then failures.
    pub async fn ingest_results(&self, id: &str) -> Result<Vec<IngestResult>> {
        let mut results = Vec::new();
        for (resource, succeeded) in [("successfulResults", true), ("failedResults", false)] {
            let path = self.job_path(
                JobKind::Ingest,
                &format!("/{}/{resource}/", crate::rest::segment(id)),
            );
            let mut call = Call::new(Method::GET, path.clone(), Idempotency::Idempotent);
            call.accept = "text/csv";
            let page = parse(&self.execute(&call).await?.body, &path)?;
            let (first, second) = (page.header.first(), page.header.get(1));
            if first.map(String::as_str) != Some("sf__Id") || second.is_none() {
                return Err(Error::UnexpectedResponse {
                    path,
                    status: 200,
                    detail: format!(
                        "result header {:?} lacks sf__Id and its outcome",
                        page.header
                    ),
                });
            }
            for mut row in page.rows {
                let rest = row.split_off(2.min(row.len()));
                let id = row.first().filter(|id| !id.is_empty()).cloned();
                let second = row.get(1).cloned().unwrap_or_default();
                let outcome = if succeeded {
                    Ok(second.eq_ignore_ascii_case("true"))
                } else {
                    Err(second)
                };
                results.push(IngestResult {
                    id,
                    outcome,
                    row: rest,
                });
            }
        }
        Ok(results)
    }
}
