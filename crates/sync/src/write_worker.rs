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
//! - **Archive.** Once a minute, processed rows move to the archive and it is pruned.

use std::time::{Duration, Instant};

use pgforce_salesforce::Client;
use pgforce_store::cursor::{SyncEvent, record_event};
use pgforce_store::notify::Listener;
use pgforce_store::{Ident, lease};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::writer::{WriteOutcome, WritePolicy, archive_processed, resume_pending, write_once};

/// How long a writer lease lasts without renewal.
const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the lease is renewed (and the safety-net poll runs).
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a wake-up waits for the rest of a burst.
const COALESCE: Duration = Duration::from_millis(2);
/// How often processed rows are archived.
const ARCHIVE_EVERY: Duration = Duration::from_secs(60);

/// Everything a connection's writer needs.
#[derive(Debug)]
pub struct WriteWorker {
    /// Where the catalog and the tables are.
    pub database_url: String,
    /// The connection's name (names the lease).
    pub connection: String,
    /// Its Salesforce client.
    pub salesforce: Client,
    /// Its schema.
    pub schema: Ident,
    /// Its read-write mappings, with their catalog ids.
    pub mappings: Vec<(Mapping, i64)>,
    /// Ordered or merged, and what a refused insert stops.
    pub policy: WritePolicy,
    /// How long processed rows stay in the live log.
    pub archive_after: Duration,
    /// How long the archive keeps rows.
    pub archive_retention: Duration,
}

/// Why an inner session ended.
enum Ended {
    Shutdown,
    /// Lost the database, the listener or the lease: start over.
    Restart,
}

impl WriteWorker {
    /// Writes until `shutdown` turns true, reconnecting and re-taking the lease as needed.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let holder = lease::holder_name();
        let lease_name = format!("writer:{}", self.connection);
        let mut standing_by = false;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            match self
                .session(&holder, &lease_name, &mut standing_by, &mut shutdown)
                .await
            {
                Ok(Ended::Shutdown) => return Ok(()),
                Ok(Ended::Restart) => {}
                Err(error) if error.is_retryable() => {
                    tracing::warn!(connection = %self.connection, error = %error, "writer lost its footing; starting over");
                }
                Err(error) => {
                    tracing::error!(connection = %self.connection, error = %error, "writer stopped");
                    return Err(error);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// One database session: take the lease, settle PENDING rows, then drain and wait.
    async fn session(
        &self,
        holder: &str,
        lease_name: &str,
        standing_by: &mut bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Ended> {
        let store = |source| Error::Store {
            object: "(writer)".to_owned(),
            source,
        };
        let mut pg = pgforce_store::connect(&self.database_url)
            .await
            .map_err(store)?;
        if !lease::acquire_or_take_over(&pg, lease_name, holder, LEASE_TTL)
            .await
            .map_err(store)?
        {
            if !*standing_by {
                let other = lease::holder(&pg, lease_name).await.map_err(store)?;
                tracing::info!(connection = %self.connection, holder = ?other, "another pgforce writes this connection; standing by");
                *standing_by = true;
            }
            return Ok(Ended::Restart);
        }
        *standing_by = false;
        let channel = pgforce_store::ddl::trigger_log_channel(&self.schema);
        let mut listener = Listener::listen(&self.database_url, &channel)
            .await
            .map_err(store)?;
        let mappings: Vec<Mapping> = self.mappings.iter().map(|(m, _)| m.clone()).collect();
        let resumed = resume_pending(&self.salesforce, &mut pg, &self.schema, &mappings).await?;
        if resumed.requeued + resumed.found > 0 {
            tracing::info!(connection = %self.connection, requeued = resumed.requeued, found = resumed.found, "resumed changes a stopped writer left pending");
        }
        tracing::info!(connection = %self.connection, "writer started");
        let mut renewed = Instant::now();
        let mut archived = Instant::now() - ARCHIVE_EVERY;
        let mut backoff = Duration::ZERO;
        loop {
            if renewed.elapsed() >= HEARTBEAT {
                if !lease::acquire(&pg, lease_name, holder, LEASE_TTL)
                    .await
                    .map_err(store)?
                {
                    tracing::warn!(connection = %self.connection, "writer lease lost; stopping writes");
                    return Ok(Ended::Restart);
                }
                renewed = Instant::now();
            }
            if archived.elapsed() >= ARCHIVE_EVERY {
                let done = archive_processed(
                    &mut pg,
                    &self.schema,
                    self.archive_after,
                    self.archive_retention,
                )
                .await?;
                if done.archived + done.pruned > 0 {
                    tracing::debug!(
                        archived = done.archived,
                        pruned = done.pruned,
                        "trigger log archived"
                    );
                }
                archived = Instant::now();
            }
            let started = Instant::now();
            let pass = write_once(
                &self.salesforce,
                &mut pg,
                &self.schema,
                &mappings,
                &self.policy,
            )
            .await;
            let outcome = match pass {
                Ok(outcome) => outcome,
                Err(error) => {
                    // Rows of the broken pass stay PENDING; the next session settles them.
                    let _ = lease::release(&pg, lease_name, holder).await;
                    return Err(error);
                }
            };
            self.record(&pg, &outcome, started.elapsed()).await;
            if outcome.in_doubt > 0 {
                resume_pending(&self.salesforce, &mut pg, &self.schema, &mappings).await?;
            }
            let wait = if outcome.retried + outcome.in_doubt > 0 {
                backoff = (backoff * 2).clamp(Duration::from_millis(200), Duration::from_secs(30));
                backoff
            } else if outcome.is_idle() {
                backoff = Duration::ZERO;
                HEARTBEAT
            } else {
                // More may be waiting: drain before sleeping.
                backoff = Duration::ZERO;
                continue;
            };
            tokio::select! {
                alive = listener.notified(), if backoff.is_zero() => {
                    if !alive {
                        return Ok(Ended::Restart);
                    }
                    tokio::time::sleep(COALESCE).await;
                }
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {
                    let _ = lease::release(&pg, lease_name, holder).await;
                    return Ok(Ended::Shutdown);
                }
            }
        }
    }

    /// Appends a pass that did something to the sync event log, per mapping.
    async fn record(&self, pg: &tokio_postgres::Client, outcome: &WriteOutcome, took: Duration) {
        if outcome.is_idle() {
            return;
        }
        let message = (outcome.failed + outcome.held + outcome.retried > 0).then(|| {
            format!(
                "{} failed, {} held back, {} to send again",
                outcome.failed, outcome.held, outcome.retried
            )
        });
        for (mapping, id) in &self.mappings {
            let records = outcome
                .by_table
                .get(mapping.table.as_str())
                .copied()
                .unwrap_or(0);
            if records == 0 && message.is_none() {
                continue;
            }
            let event = SyncEvent {
                mapping: *id,
                kind: "write",
                direction: "pg_to_sf",
                records: i64::try_from(records).unwrap_or(i64::MAX),
                api_calls: i64::try_from(outcome.api_calls).unwrap_or(i64::MAX),
                duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
                outcome: if outcome.failed > 0 { "rejected" } else { "ok" },
                message: message.as_deref(),
            };
            if let Err(error) = record_event(pg, &event).await {
                tracing::warn!(error = %error, "could not record a sync event");
            }
        }
    }
}
