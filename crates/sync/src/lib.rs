//! pgforce's sync engine.
//!
//! It owns the mapping model (what to sync, checked against the org), the conversion of
//! Salesforce values into Postgres columns, and the workers that move changes: a reader per
//! mapping (Salesforce → Postgres: initial load and incremental polls) and a writer per
//! connection (Postgres → Salesforce: the trigger log). It talks to Salesforce only
//! through `pgforce-salesforce` and to Postgres only through `pgforce-store`, and follows
//! the worker contract in ARCHITECTURE.md: cursors advance in the transaction that applied
//! the rows, pgforce's own writes never echo back, every error goes through one policy.
//!
//! The one public entry is [`Engine`]: opened on a catalog with the connections a
//! configuration declares, it applies them ([`Engine::apply`]), runs until shutdown
//! ([`Engine::run`]), and offers the operations the command line, the demo, the server
//! and the benchmarks use (add, change, pause, resume, reload and remove mappings and
//! connections, reconcile, import, export, status). Readers and writers are private.
//!
//! Main types: [`Engine`], [`EngineOptions`], [`config::ConnectionConfig`],
//! [`config::MappingConfig`], [`Event`], [`Status`], [`Error`].
//!
//! Layout:
//! - `archive`: archive jobs (copy, verify, delete in Salesforce), their steps and their
//!   WHERE condition.
//! - `engine`: the engine, its supervisor and operations.
//! - `reader`, `writer`: the workers (`worker` holds what they share); `conflict`: last
//!   writer wins when both sides changed a record; `reconcile`: comparing both sides, and
//!   repairing what differs safely beside the running workers.
//! - `mapping`: configured mappings resolved against describe; `hc_json`: Heroku
//!   Connect's mapping export document; `config`: declarations.
//! - `convert`: Salesforce types and values into Postgres (pure); `plan`: ordered and
//!   merged write plans (pure).
//! - `error`, `error_policy`: errors and what each means; `events`: what the engine
//!   reports, each in one wording; `metrics`: its counters, in Prometheus's format;
//!   `notifications`: what operators should hear about, stored and sent to webhooks;
//!   `secrets`: connection secrets sealed at rest under the operator's keys, bound to
//!   their connection or consent.
//! - `testing` (feature `test-support`): the workers' steps, one at a time, for tests.

#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod admin;
mod archive;
mod call_budget;
pub mod config;
mod conflict;
mod convert;
mod engine;
mod error;
mod error_policy;
mod events;
mod fresh;
mod hc_json;
mod mapping;
mod metrics;
mod notifications;
mod outcome;
mod plan;
mod reader;
mod reconcile;
mod secrets;
mod subscriber;
#[cfg(feature = "test-support")]
pub mod testing;
mod worker;
mod writer;

pub use admin::{
    Admin, Authorized, Check, CheckOutcome, ConnectionStatus, ConnectionView, ConsentRequest,
    DESCRIBE_FRESH, Depth, Diagnosis, EXACT_COUNT_BELOW, MappingStatus, MappingView, ODataAccess,
    ODataCredentials, ODataGrant, ODataResource, ODataService, OpenedConsent, ROW_COUNT_FRESH,
    SALESFORCE_COUNT_FRESH, Status, WriterStatus,
};
pub use archive::{Progress as ArchiveProgress, WhereError};
pub use call_budget::{DEFAULT_CALLS_PER_TOKEN_HOUR, Viewer};
pub use config::DEFAULT_BULK_THRESHOLD;
pub use engine::{
    Applied, ArchiveRequest, DEFAULT_POOL_SIZE, Engine, EngineOptions, MappingReconcile,
    ReconcileRequest, ReloadMode, Reloaded, Rotation, UnarchiveRequest, Unarchived,
};
pub use error::{Error, ErrorKind, Result};
pub use events::{Event, EventKind, EventOutcome};
pub use pgforce_store::catalog::archive::{
    Job as ArchiveJob, JobState as ArchiveState, Step as ArchiveStep,
};
pub use pgforce_store::catalog::audit::AuditEntry;
pub use pgforce_store::catalog::notifications::{Filter as NotificationFilter, Notification};
pub use pgforce_store::catalog::odata::Settings as ODataSettings;
pub use pgforce_store::catalog::tokens::{Role, TokenRow};
pub use pgforce_store::trigger_log::queue::{FailedDecision, FailedWrite};
pub use pgforce_store::{Access, ConnectionId, ConnectionState, MappingId, MappingState};
pub use reader::{LoadProgress, ReadOutcome, RejectedRecord};
pub use reconcile::{Drift, LeftAlone, Repair};
pub use secrets::{SecretKey, SecretKeys};
pub use worker::LeaseTiming;
pub use writer::DEFAULT_BULK_WRITE_THRESHOLD;
