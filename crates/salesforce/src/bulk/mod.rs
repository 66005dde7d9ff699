//! Bulk API 2.0: query jobs that stream large results page by page, and ingest jobs that
//! write many records in one upload.
//!
//! A job is created, (for ingest) given its CSV and closed, then polled with backoff until
//! it ends ([`Client::wait_for_job`](crate::Client::wait_for_job)). Query results come as
//! a stream of CSV pages ([`Client::query_job_results`](crate::Client::query_job_results)):
//! one page in memory at a time. Ingest results come back per uploaded row, so callers can
//! map every outcome to what they sent.
//!
//! Layout: `job` (JobInfo, states, polling), `query`, `ingest`, `csv` (reading and
//! writing Salesforce's CSV).

pub mod csv;
pub mod ingest;
pub mod job;
pub mod query;

pub use job::{JobInfo, JobKind, JobState};
