//! Test support (feature `test-support`): the workers' steps one at a time.
//!
//! The engine runs readers and writers itself; integration tests that prove what one load,
//! poll or writer pass does (against a real Postgres and the emulator) call the steps
//! directly through this module. Nothing outside tests uses it.

use pgforce_salesforce::Client;
use pgforce_store::{Ident, MappingId};
use tokio::sync::watch;

pub use crate::archive::steps::{
    Hooks as ArchiveHooks, JobTarget as ArchiveTarget, Point as ArchivePoint,
    RunOutcome as ArchiveOutcome, run_job as run_archive_job,
};
pub use crate::archive::unarchive::{UnarchiveTarget, Unarchived, unarchive};
pub use crate::mapping::{Mapping, MappingSpec};
pub use crate::reader::{Target, initial_load, poll_once, poll_with_overlap, refresh_records};
pub use crate::reconcile::{compare, record, repair};
pub use crate::writer::{
    MAX_SERVER_ERROR_ATTEMPTS, ResumeOutcome, WriteOutcome, WritePolicy, resume_pending, write_once,
};
pub use pgforce_store::trigger_log::archive::archive_processed;

use crate::events::EventBus;
use crate::worker::{Exit, LeaseTiming};
use crate::writer::{ArchivePolicy, WriteWorker, WriterMapping};

/// Runs a connection's writer as `pgforce run` does (lease, LISTEN, passes) until
/// `shutdown` turns true.
pub async fn run_writer(
    database_url: String,
    connection: String,
    salesforce: Client,
    schema: Ident,
    mappings: Vec<(Mapping, MappingId)>,
    policy: WritePolicy,
    shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    let writer = TestWriter {
        database_url,
        connection,
        salesforce,
        schema,
        mappings,
        waiting: Vec::new(),
        policy,
    };
    run_writer_with(writer, shutdown).await
}

/// A connection's writer as the engine builds it, for [`run_writer_with`].
pub struct TestWriter {
    /// Where the catalog and the tables are.
    pub database_url: String,
    /// The connection's name (names the lease).
    pub connection: String,
    /// The connection's client.
    pub salesforce: Client,
    /// The connection's schema.
    pub schema: Ident,
    /// Its running read-write mappings.
    pub mappings: Vec<(Mapping, MappingId)>,
    /// Tables of its paused read-write mappings: their changes wait.
    pub waiting: Vec<String>,
    /// Ordered or merged, and what a refused insert stops.
    pub policy: WritePolicy,
}

/// Runs `writer` as `pgforce run` does until `shutdown` turns true (a paused mapping's
/// table among its waiting ones, say).
pub async fn run_writer_with(
    writer: TestWriter,
    shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    let worker = WriteWorker {
        database_url: writer.database_url,
        connection: writer.connection,
        connection_id: None,
        salesforce: writer.salesforce,
        schema: writer.schema,
        mappings: writer
            .mappings
            .into_iter()
            .map(|(mapping, id)| WriterMapping { id, mapping })
            .collect(),
        waiting: writer.waiting,
        policy: writer.policy,
        archive: ArchivePolicy::default(),
        bus: EventBus::new(16),
        lease: LeaseTiming::default(),
    };
    match worker.run(shutdown).await? {
        Exit::Stopped => Ok(()),
        Exit::Parked { reason } => Err(crate::Error::NotFound { what: reason }),
    }
}

/// Checks an archive job's condition against the org and records the job, as
/// `Engine::create_archive` does (the connection's schema is `salesforce`).
pub async fn create_archive_job(
    salesforce: &Client,
    pg: &pgforce_store::Session,
    connection: pgforce_store::ConnectionId,
    mapping: &Mapping,
    where_clause: &str,
    hard_delete: bool,
) -> crate::Result<pgforce_store::catalog::archive::Job> {
    let schema = Ident::new("salesforce").map_err(crate::Error::catalog)?;
    crate::archive::create_job(
        salesforce,
        pg,
        connection,
        &schema,
        mapping,
        where_clause,
        hard_delete,
    )
    .await
}
