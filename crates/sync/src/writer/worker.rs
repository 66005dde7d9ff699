//! The writer of one connection, as a long-running worker.
//!
//! Key concepts:
//! - **Lease.** Only the holder of the connection's writer lease (`writer:<connection>` in
//!   `pgforce.leases`) writes; a second `pgforce run` on the same catalog stands by and
//!   takes over within one lease period if the first dies. The lease is renewed between
//!   passes; a worker that fails to renew it stops writing at once.
//! - **Wake-up.** A LISTEN session on `<schema>.hc_trigger_log` wakes the worker on the
//!   first captured change; it waits a few milliseconds so a burst (one transaction of
//!   many rows) goes out together. A timer is only the safety net.
//! - **Passes.** The worker drains: it runs passes until one finds nothing, then waits.
//!   Transient failures back off exponentially (0.2 s to 30 s); creates in doubt are
//!   settled by [`resume_pending`] before the next pass, as after a crash.
//! - **Errors.** A failed pass leaves its rows PENDING (settled when the session starts
//!   again); the error policy decides whether to start over after a backoff or to park.
//! - **Archive.** Once a minute, processed rows move to the archive and it is pruned.

use std::time::{Duration, Instant};

use pgforce_salesforce::Client;
use pgforce_store::catalog::leases;
use pgforce_store::notify::Listener;
use pgforce_store::trigger_log::archive::archive_processed;
use pgforce_store::{Ident, MappingId, Session};
use tokio::sync::watch;

use super::{ArchivePolicy, Pass, WritePolicy, log_error, resume_pending, run_pass};
use crate::error::Result;
use crate::error_policy::{self, Decision};
use crate::events::{EventBus, LeaseChanged, WritePass};
use crate::mapping::Mapping;
use crate::worker::{Backoff, Exit, LeaseTiming};

/// How long a wake-up waits for the rest of a burst.
const COALESCE: Duration = Duration::from_millis(2);
/// How often processed rows are archived.
const ARCHIVE_EVERY: Duration = Duration::from_secs(60);

/// A read-write mapping the writer sends changes for.
#[derive(Debug, Clone)]
pub(crate) struct WriterMapping {
    /// Its catalog id.
    pub id: MappingId,
    /// The mapping.
    pub mapping: Mapping,
}

/// Everything a connection's writer needs.
#[derive(Debug)]
pub(crate) struct WriteWorker {
    /// Where the catalog and the tables are.
    pub database_url: String,
    /// The connection's name (names the lease).
    pub connection: String,
    pub salesforce: Client,
    pub schema: Ident,
    /// Its read-write mappings that are not paused.
    pub mappings: Vec<WriterMapping>,
    /// Tables of its paused read-write mappings: their changes wait.
    pub waiting: Vec<String>,
    /// Ordered or merged, and what a refused insert stops.
    pub policy: WritePolicy,
    pub archive: ArchivePolicy,
    pub bus: EventBus,
    pub lease: LeaseTiming,
}

/// Why an inner session ended.
enum Ended {
    Stopped,
    /// Lost the database, the listener or the lease: start over.
    Restart,
}

impl WriteWorker {
    /// Writes until `stop` turns true, reconnecting and re-taking the lease as needed.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) -> Result<Exit> {
        let holder = leases::holder_name();
        let lease_name = leases::writer_lease(&self.connection);
        let worker_name = format!("writer {}", self.connection);
        let mut standing_by = false;
        let mut backoff = Backoff::new(self.lease.heartbeat, Duration::from_secs(30));
        loop {
            if *stop.borrow() {
                return Ok(Exit::Stopped);
            }
            let wait = match self
                .session(&holder, &lease_name, &mut standing_by, &mut stop)
                .await
            {
                Ok(Ended::Stopped) => return Ok(Exit::Stopped),
                Ok(Ended::Restart) => {
                    backoff.reset();
                    self.lease.heartbeat
                }
                Err(error) => {
                    let verdict = error_policy::decide(&error);
                    if verdict.decision == Decision::StopMapping {
                        tracing::error!(worker = %worker_name, error = %error.chain(), hint = verdict.hint, "writer stopped");
                        return Ok(Exit::Parked {
                            reason: error.chain(),
                        });
                    }
                    tracing::warn!(worker = %worker_name, error = %error.chain(), hint = verdict.hint, "writer lost its footing; starting over");
                    backoff.next_wait()
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return Ok(Exit::Stopped),
            }
        }
    }

    /// One database session: take the lease, settle PENDING rows, then drain and wait.
    async fn session(
        &self,
        holder: &str,
        lease_name: &str,
        standing_by: &mut bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Ended> {
        let worker_name = format!("writer {}", self.connection);
        let mut pg = pgforce_store::connect(&self.database_url)
            .await
            .map_err(log_error)?;
        if !leases::acquire_or_take_over(&pg, lease_name, holder, self.lease.ttl)
            .await
            .map_err(log_error)?
        {
            if !*standing_by {
                LeaseChanged {
                    worker: &worker_name,
                    held: false,
                }
                .emit();
                *standing_by = true;
            }
            return Ok(Ended::Restart);
        }
        if *standing_by {
            LeaseChanged {
                worker: &worker_name,
                held: true,
            }
            .emit();
        }
        *standing_by = false;
        let channel = pgforce_store::ddl::trigger_log_channel(&self.schema);
        let mut listener = Listener::listen(&self.database_url, &channel)
            .await
            .map_err(log_error)?;
        let mappings: Vec<Mapping> = self.mappings.iter().map(|m| m.mapping.clone()).collect();
        let waiting: Vec<&str> = self.waiting.iter().map(String::as_str).collect();
        let pass = Pass::new(
            &self.salesforce,
            &self.schema,
            &self.policy,
            &mappings,
            &waiting,
        );
        let resumed = resume_pending(&self.salesforce, &mut pg, &self.schema, &mappings).await?;
        if resumed.requeued + resumed.found > 0 {
            tracing::info!(connection = %self.connection, requeued = resumed.requeued, found = resumed.found, "resumed changes a stopped writer left pending");
        }
        tracing::info!(connection = %self.connection, "writer started");
        let catalog_mappings: Vec<(MappingId, String, String)> = self
            .mappings
            .iter()
            .map(|m| {
                (
                    m.id,
                    m.mapping.object.clone(),
                    m.mapping.table.as_str().to_owned(),
                )
            })
            .collect();
        let mut renewed = Instant::now();
        let mut archived: Option<Instant> = None;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            if renewed.elapsed() >= self.lease.heartbeat {
                if !leases::acquire(&pg, lease_name, holder, self.lease.ttl)
                    .await
                    .map_err(log_error)?
                {
                    tracing::warn!(connection = %self.connection, "writer lease lost; stopping writes");
                    return Ok(Ended::Restart);
                }
                renewed = Instant::now();
            }
            if archived.is_none_or(|at| at.elapsed() >= ARCHIVE_EVERY) {
                self.archive(&mut pg).await?;
                archived = Some(Instant::now());
            }
            let started = Instant::now();
            let pass_result = run_pass(&pass, &mut pg).await;
            let outcome = match pass_result {
                Ok(outcome) => outcome,
                Err(error) => {
                    // Rows of the broken pass stay PENDING; the next session settles them.
                    let _ = leases::release(&pg, lease_name, holder).await;
                    return Err(error);
                }
            };
            WritePass {
                connection: &self.connection,
                mappings: &catalog_mappings,
                outcome: &outcome,
                took: started.elapsed(),
            }
            .emit(&self.bus, Some(&pg))
            .await;
            if outcome.in_doubt > 0 {
                resume_pending(&self.salesforce, &mut pg, &self.schema, &mappings).await?;
            }
            let wait = if outcome.retried + outcome.in_doubt > 0 {
                backoff.next_wait()
            } else if outcome.is_idle() {
                backoff.reset();
                self.lease.heartbeat
            } else {
                // More may be waiting: drain before sleeping.
                backoff.reset();
                continue;
            };
            tokio::select! {
                alive = listener.notified(), if !backoff.is_backing_off() => {
                    if !alive {
                        return Ok(Ended::Restart);
                    }
                    tokio::time::sleep(COALESCE).await;
                }
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {
                    let _ = leases::release(&pg, lease_name, holder).await;
                    return Ok(Ended::Stopped);
                }
            }
        }
    }

    /// Moves processed rows to the archive and prunes it.
    async fn archive(&self, pg: &mut Session) -> Result<()> {
        let done = archive_processed(pg, &self.schema, self.archive.after, self.archive.retention)
            .await
            .map_err(log_error)?;
        if done.archived + done.pruned > 0 {
            tracing::debug!(
                archived = done.archived,
                pruned = done.pruned,
                "trigger log archived"
            );
        }
        Ok(())
    }
}
