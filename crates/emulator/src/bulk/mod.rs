//! Bulk API 2.0: query jobs and ingest jobs.
//!
//! Jobs live in memory ([`JobStore`]) and move through Salesforce's states in the
//! background, so a client must poll as it would against a real org: a query job is
//! `UploadComplete`, then `InProgress`, then `JobComplete` with its result kept as record
//! numbers (pages are rendered as CSV when asked for, like query cursors); an ingest job is
//! `Open` until its one CSV upload is closed with `UploadComplete`, then runs every row
//! through the same validation and write path as sObject Collections, in internal batches
//! of 10,000, and keeps one result per row for the result endpoints.
//!
//! Layout: `jobs` (the store and the JobInfo JSON), `csv` (Salesforce's CSV conventions,
//! both ways), `ingest` (turning an upload into writes).

pub mod csv;
pub mod ingest;
pub mod jobs;

pub use jobs::{Job, JobStore};
