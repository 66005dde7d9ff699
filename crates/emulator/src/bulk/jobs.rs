//! The job store and the JobInfo documents Salesforce answers with.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use serde_json::{Value as Json, json};

use super::csv::Format;
use crate::datetime;
use crate::org::{ObjectIndex, RecordRef, mint_id};
use crate::query::bind::Projection;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "Open",
            Self::UploadComplete => "UploadComplete",
            Self::InProgress => "InProgress",
            Self::JobComplete => "JobComplete",
            Self::Failed => "Failed",
            Self::Aborted => "Aborted",
        }
    }

    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::JobComplete | Self::Failed | Self::Aborted)
    }
}

/// The outcome of one uploaded row.
#[derive(Debug, Clone)]
pub struct RowResult {
    /// The row's index in the upload.
    pub row: usize,
    /// The record's Id (empty for a failed insert).
    pub id: String,
    /// `Ok(created)` or `Err("CODE:message:fields --")`.
    pub outcome: Result<bool, String>,
}

/// What kind of job, with what it holds.
#[derive(Debug)]
pub enum JobKind {
    Query {
        /// `query` or `queryAll`.
        operation: String,
        query: String,
        object_index: ObjectIndex,
        /// The result, once the job is complete: record numbers and the projection.
        result: Option<(Arc<[u64]>, Arc<Projection>)>,
    },
    Ingest {
        /// `insert`, `update`, `upsert`, `delete` or `hardDelete`.
        operation: String,
        external_id_field: Option<String>,
        /// The uploads received (only one is allowed).
        uploads: Vec<Bytes>,
        /// The upload's header, once processed.
        header: Vec<String>,
        /// The upload's rows, kept for the result CSVs.
        rows: Vec<Vec<String>>,
        results: Vec<RowResult>,
    },
}

/// One job.
#[derive(Debug)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub object: String,
    pub state: JobState,
    /// Who created it (its writes are theirs).
    pub user: RecordRef,
    /// The `changeOrigin` of the call that created it, for its change events.
    pub origin: std::sync::Arc<str>,
    pub created_by: String,
    pub created_date: i64,
    pub system_modstamp: i64,
    pub api_version: String,
    pub format: Format,
    pub column_delimiter: String,
    pub line_ending: String,
    pub records_processed: u64,
    pub records_failed: u64,
    pub error_message: Option<String>,
    pub processing_ms: u64,
}

impl Job {
    /// Whether this is a query job.
    pub fn is_query(&self) -> bool {
        matches!(self.kind, JobKind::Query { .. })
    }

    /// Moves the job to `state`.
    pub fn set_state(&mut self, state: JobState) {
        self.state = state;
        self.system_modstamp = datetime::now_millis();
    }

    /// The JobInfo document (`GET /jobs/{kind}/{id}`).
    pub fn info(&self) -> Json {
        let mut info = json!({
            "id": self.id,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": datetime::format_datetime(self.created_date),
            "systemModstamp": datetime::format_datetime(self.system_modstamp),
            "state": self.state.as_str(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.api_version.parse::<f64>().unwrap_or_default(),
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": self.records_processed,
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
        });
        match &self.kind {
            JobKind::Query { operation, .. } => {
                info["operation"] = json!(operation);
                info["jobType"] = json!("V2Query");
                info["isPkChunkingSupported"] = json!(true);
            }
            JobKind::Ingest {
                operation,
                external_id_field,
                ..
            } => {
                info["operation"] = json!(operation);
                info["jobType"] = json!("V2Ingest");
                info["numberRecordsFailed"] = json!(self.records_failed);
                info["apiActiveProcessingTime"] = json!(self.processing_ms);
                info["apexProcessingTime"] = json!(0);
                info["contentUrl"] = json!(format!(
                    "services/data/v{}/jobs/ingest/{}/batches",
                    self.api_version, self.id
                ));
                if let Some(field) = external_id_field {
                    info["externalIdFieldName"] = json!(field);
                }
            }
        }
        if let Some(message) = &self.error_message {
            info["errorMessage"] = json!(message);
        }
        info
    }
}

/// Every job of the org.
#[derive(Debug, Default)]
pub struct JobStore {
    jobs: HashMap<String, Job>,
    next_number: u64,
    /// Jobs ever created, for the statistics.
    pub created: u64,
}

impl JobStore {
    /// A fresh job id (`750…`).
    pub fn next_id(&mut self) -> String {
        self.next_number += 1;
        self.created += 1;
        mint_id("750", self.next_number)
    }

    pub fn insert(&mut self, job: Job) {
        self.jobs.insert(job.id.clone(), job);
    }

    pub fn get(&self, id: &str) -> Option<&Job> {
        self.jobs.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Job> {
        self.jobs.get_mut(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<Job> {
        self.jobs.remove(id)
    }

    /// Jobs of one kind, oldest first.
    pub fn list(&self, query: bool) -> Vec<&Job> {
        let mut jobs: Vec<&Job> = self
            .jobs
            .values()
            .filter(|j| j.is_query() == query)
            .collect();
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        jobs
    }

    /// Forgets every job (control API reset).
    pub fn clear(&mut self) {
        self.jobs.clear();
    }
}
