//! Job information, states, and waiting for a job to end.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::client::{Call, Client, Idempotency};
use crate::error::{Error, Result};

/// Query or ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// `/jobs/query`.
    Query,
    /// `/jobs/ingest`.
    Ingest,
}

impl JobKind {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Ingest => "ingest",
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum JobState {
    /// Ingest: waiting for its upload.
    Open,
    /// Upload closed (ingest) or query accepted; waiting to run.
    UploadComplete,
    /// Running.
    InProgress,
    /// Done; results can be read.
    JobComplete,
    /// Salesforce gave up on it (`error_message` says why).
    Failed,
    /// Aborted by a client.
    Aborted,
    /// A state this client does not know.
    #[serde(other)]
    Unknown,
}

impl JobState {
    /// Whether the job will not change any more.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::JobComplete | Self::Failed | Self::Aborted)
    }
}

/// A job as Salesforce describes it (the fields a client needs).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// The job's Id (`750…`).
    pub id: String,
    /// Its state.
    pub state: JobState,
    /// The object.
    #[serde(default)]
    pub object: String,
    /// `query`, `queryAll`, `insert`, `update`, `upsert`, `delete` or `hardDelete`.
    #[serde(default)]
    pub operation: String,
    /// Records processed so far.
    #[serde(default)]
    pub number_records_processed: u64,
    /// Records that failed (ingest).
    #[serde(default)]
    pub number_records_failed: u64,
    /// Why the job failed.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Where an ingest job's upload goes (no leading slash).
    #[serde(default)]
    pub content_url: Option<String>,
}

/// How long waiting for a job may take before [`Client::wait_for_job`] gives up.
const JOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// First and longest pause between polls of a job.
const FIRST_POLL: Duration = Duration::from_millis(20);
const LONGEST_POLL: Duration = Duration::from_secs(5);

impl Client {
    pub(crate) fn job_path(&self, kind: JobKind, rest: &str) -> String {
        self.data_path(&format!("/jobs/{}{rest}", kind.path()))
    }

    /// A job's current information.
    pub async fn job(&self, kind: JobKind, id: &str) -> Result<JobInfo> {
        let path = self.job_path(kind, &format!("/{}", crate::rest::segment(id)));
        self.execute(&Call::new(
            Method::GET,
            path.clone(),
            Idempotency::Idempotent,
        ))
        .await?
        .json(&path)
    }

    /// Polls a job (20 ms, doubling to 5 s between polls) until it ends; `progress` hears
    /// each JobInfo. A job that fails or is aborted is an error naming its message.
    pub async fn wait_for_job(
        &self,
        kind: JobKind,
        id: &str,
        progress: &mut (dyn FnMut(&JobInfo) + Send),
    ) -> Result<JobInfo> {
        let started = std::time::Instant::now();
        let mut pause = FIRST_POLL;
        loop {
            let info = self.job(kind, id).await?;
            progress(&info);
            match info.state {
                JobState::JobComplete => return Ok(info),
                JobState::Failed | JobState::Aborted => {
                    return Err(Error::JobFailed {
                        id: info.id.clone(),
                        state: format!("{:?}", info.state),
                        message: info.error_message.clone().unwrap_or_default(),
                    });
                }
                _ => {}
            }
            if started.elapsed() > JOB_TIMEOUT {
                return Err(Error::JobFailed {
                    id: info.id,
                    state: format!("{:?}", info.state),
                    message: format!("still not done after {} s", JOB_TIMEOUT.as_secs()),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_POLL);
        }
    }

    /// Aborts a job.
    pub async fn abort_job(&self, kind: JobKind, id: &str) -> Result<JobInfo> {
        self.set_job_state(kind, id, "Aborted").await
    }

    pub(crate) async fn set_job_state(
        &self,
        kind: JobKind,
        id: &str,
        state: &str,
    ) -> Result<JobInfo> {
        let path = self.job_path(kind, &format!("/{}", crate::rest::segment(id)));
        let mut call = Call::new(Method::PATCH, path.clone(), Idempotency::Idempotent);
        call.json = Some(json!({ "state": state }));
        self.execute(&call).await?.json(&path)
    }

    /// Deletes a job (and its results).
    pub async fn delete_job(&self, kind: JobKind, id: &str) -> Result<()> {
        let path = self.job_path(kind, &format!("/{}", crate::rest::segment(id)));
        self.execute(&Call::new(Method::DELETE, path, Idempotency::Idempotent))
            .await
            .map(|_| ())
    }
}
