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
//!   settled by [`resume_pending`] before the next pass, as after a crash — except a
//!   create the client gave up waiting for (a timeout): Salesforce may still be running
//!   it, so it stays PENDING, and the later changes of its record wait, until the
//!   client's timeout has passed again plus a margin. So do the creates another writer
//!   was sending when it died or froze (saved in `pgforce.creates_in_flight` before each
//!   wave leaves). Other records' changes go on.
//! - **Errors.** A failed pass leaves its rows PENDING (settled when the session starts
//!   again); the error policy decides whether to start over after a backoff or to park.
//! - **Archive.** Once a minute, processed rows move to the archive and it is pruned.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgforce_salesforce::Client;
use pgforce_store::catalog::leases::{self, LeaseKeeper};
use pgforce_store::notify::Listener;
use pgforce_store::trigger_log::archive::archive_processed;
use pgforce_store::trigger_log::in_flight;
use pgforce_store::trigger_log::resume::LeftAlone;
use pgforce_store::{ConnectionId, Ident, MappingId, Session};
use tokio::sync::watch;

use super::bulk_job::settle_left_jobs;
use super::pause::Waited;
use super::{
    ArchivePolicy, Pass, ServerErrors, WritePolicy, log_error, resume_pending, run_pass,
    settle_stale_creates, still_running_hold,
};
use crate::error::Result;
use crate::error_policy::{self, Decision, Pause, pause_of};
use crate::events::{EventBus, LeaseChanged, WritePass};
use crate::mapping::Mapping;
use crate::worker::{Backoff, Exit, LeaseTiming};

/// How long a wake-up waits for the rest of a burst.
const COALESCE: Duration = Duration::from_millis(2);
/// How often processed rows are archived.
const ARCHIVE_EVERY: Duration = Duration::from_secs(60);

/// Creates the client gave up waiting for, or a writer that died mid-call was sending, and
/// when each may be checked: Salesforce may still be running them until then. Kept across
/// the worker's sessions; each session adds those other writers left (saved in
/// `pgforce.creates_in_flight` before they were sent).
#[derive(Debug, Default)]
struct StillRunning {
    due: BTreeMap<i64, Instant>,
}

impl StillRunning {
    fn add(&mut self, log_ids: &[i64], due: Instant) {
        for id in log_ids {
            self.due.insert(*id, due);
        }
    }

    /// Whether some create may be checked now.
    fn any_due(&self, now: Instant) -> bool {
        self.due.values().any(|due| *due <= now)
    }

    /// The creates not to check yet.
    fn not_due(&self, now: Instant) -> Vec<i32> {
        self.due
            .iter()
            .filter(|(_, due)| **due > now)
            .filter_map(|(id, _)| i32::try_from(*id).ok())
            .collect()
    }

    /// Forgets the creates checked (those due at `now`).
    fn checked(&mut self, now: Instant) {
        self.due.retain(|_, due| *due > now);
    }

    /// How long until the next create may be checked.
    fn next_in(&self, now: Instant) -> Option<Duration> {
        self.due
            .values()
            .min()
            .map(|due| due.saturating_duration_since(now))
    }
}

/// A read-write mapping the writer sends changes for.
#[derive(Debug, Clone)]
pub(crate) struct WriterMapping {
    /// Its catalog id.
    pub id: MappingId,
    /// The mapping.
    pub mapping: Mapping,
}

/// Everything a connection's writer needs (no `Debug`: it holds the database URL).
pub(crate) struct WriteWorker {
    /// Where the catalog and the tables are.
    pub database_url: String,
    /// The connection's name (names the lease).
    pub connection: String,
    /// Its catalog id, where its state is shown (`None` in tests without a catalog row).
    pub connection_id: Option<ConnectionId>,
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
    /// Lost the database or the listener: start over.
    Restart,
    /// The org cannot be used for now: wait it out, then start over.
    Paused(Pause),
}

impl WriteWorker {
    /// Writes until `stop` turns true; stands by while another process holds the lease,
    /// reconnects and starts over after failures.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) -> Result<Exit> {
        let keeper = LeaseKeeper::start(
            &self.database_url,
            &leases::writer_lease(&self.connection),
            &leases::holder_name(),
            self.lease.ttl,
            self.lease.heartbeat,
        );
        let exit = self.work(&keeper, &mut stop).await;
        keeper.release().await;
        exit
    }

    async fn work(&self, keeper: &LeaseKeeper, stop: &mut watch::Receiver<bool>) -> Result<Exit> {
        let worker_name = format!("writer {}", self.connection);
        let mut held: Option<bool> = None;
        let mut backoff = Backoff::new(self.lease.heartbeat, Duration::from_secs(30));
        let mut still_running = StillRunning::default();
        let server_errors = ServerErrors::default();
        loop {
            if *stop.borrow() {
                return Ok(Exit::Stopped);
            }
            let holds = keeper.is_held();
            // Announced once per change, once the keeper has tried for the lease.
            if held != Some(holds) && keeper.has_tried() {
                LeaseChanged {
                    worker: &worker_name,
                    held: holds,
                }
                .emit();
                held = Some(holds);
            }
            let wait = if !holds {
                Duration::from_millis(100).max(self.lease.heartbeat / 4)
            } else {
                let ended = match self
                    .session(keeper, stop, &mut still_running, &server_errors)
                    .await
                {
                    Err(error) => match pause_of(&error) {
                        Some(pause) => Ok(Ended::Paused(pause)),
                        None => Err(error),
                    },
                    ended => ended,
                };
                match ended {
                    Ok(Ended::Stopped) => return Ok(Exit::Stopped),
                    Ok(Ended::Restart) => {
                        backoff.reset();
                        self.lease.heartbeat
                    }
                    Ok(Ended::Paused(pause)) => {
                        let salesforce = self.salesforce.clone();
                        match self.wait_out(&pause, &salesforce, keeper, stop).await {
                            Waited::Stopped => return Ok(Exit::Stopped),
                            Waited::Resumed | Waited::LeaseLost => Duration::ZERO,
                        }
                    }
                    Err(error) => {
                        let verdict = error_policy::decide(&error);
                        // The writer does not follow schema changes (the readers do):
                        // a field error it cannot place stops it as the operator's to fix.
                        if matches!(
                            verdict.decision,
                            Decision::StopMapping | Decision::CheckSchema
                        ) {
                            tracing::error!(worker = %worker_name, error = %error.chain(), hint = verdict.hint, "writer stopped");
                            return Ok(Exit::Parked {
                                reason: error.chain(),
                            });
                        }
                        tracing::warn!(worker = %worker_name, error = %error.chain(), hint = verdict.hint, "writer lost its footing; starting over");
                        backoff.next_wait()
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return Ok(Exit::Stopped),
            }
        }
    }

    /// One database session under the lease: settle PENDING rows, then drain and wait.
    /// Between passes it stops as soon as it is told to, however much is waiting.
    async fn session(
        &self,
        keeper: &LeaseKeeper,
        stop: &mut watch::Receiver<bool>,
        still_running: &mut StillRunning,
        server_errors: &ServerErrors,
    ) -> Result<Ended> {
        let mut pg = pgforce_store::connect(&self.database_url)
            .await
            .map_err(log_error)?;
        let channel = pgforce_store::ddl::trigger_log_channel(&self.schema);
        let mut listener = Listener::listen(&self.database_url, &channel)
            .await
            .map_err(log_error)?;
        let mappings: Vec<Mapping> = self.mappings.iter().map(|m| m.mapping.clone()).collect();
        let waiting: Vec<&str> = self.waiting.iter().map(String::as_str).collect();
        // Every request this session sends leaves only while the lease may be trusted,
        // checked at the last moment: a process frozen between its pass's checks and a
        // request (a pause, a VM migration) finds on waking that it may no longer send.
        let watch = keeper.watch();
        let lease = keeper.name().to_owned();
        let salesforce = self.salesforce.guarded(Arc::new(move || {
            watch
                .fence()
                .is_none()
                .then(|| format!("lease {lease} is no longer held"))
        }));
        let pass = Pass::new(&salesforce, &self.schema, &self.policy, &mappings, &waiting)
            .under(keeper, &self.connection)
            .stopped_by(stop.clone())
            .counting(server_errors);
        // Jobs a stopped writer left are read first: their rows are PENDING but must not
        // be sent again.
        if !settle_left_jobs(&pass, &mut pg).await? {
            return Ok(Ended::Stopped);
        }
        // Creates a writer that died mid-call was sending: Salesforce may still be
        // running them.
        let left = in_flight::unsettled(&pg, &self.schema, keeper.holder())
            .await
            .map_err(log_error)?;
        let now = Instant::now();
        for (log_id, settles_in) in left {
            still_running.add(&[i64::from(log_id)], now + settles_in);
        }
        let held = still_running.not_due(now);
        let resumed = self.resume(&pass, &mut pg, &mappings, &held).await?;
        still_running.checked(now);
        if resumed.requeued + resumed.found > 0 {
            tracing::info!(connection = %self.connection, requeued = resumed.requeued, found = resumed.found, "resumed changes a stopped writer left pending");
        }
        tracing::info!(connection = %self.connection, "writer started");
        let catalog_mappings = self.catalog_mappings();
        let mut archived: Option<Instant> = None;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            if *stop.borrow() {
                return Ok(Ended::Stopped);
            }
            if archived.is_none_or(|at| at.elapsed() >= ARCHIVE_EVERY) {
                self.archive(&mut pg).await?;
                archived = Some(Instant::now());
            }
            settle_stale_creates(&pass, &mut pg).await?;
            let started = Instant::now();
            // Rows of a broken pass stay PENDING; the next session settles them.
            let outcome = run_pass(&pass, &mut pg).await?;
            WritePass {
                connection: &self.connection,
                mappings: &catalog_mappings,
                outcome: &outcome,
                took: started.elapsed(),
            }
            .emit(&self.bus, Some(&pg))
            .await;
            if let Some(pause) = outcome.paused {
                return Ok(Ended::Paused(pause));
            }
            let now = Instant::now();
            still_running.add(
                &outcome.still_running,
                now + still_running_hold(&self.salesforce),
            );
            if outcome.in_doubt > 0 || still_running.any_due(now) {
                // Creates Salesforce may still be running stay PENDING (their records'
                // later changes wait); the rest are checked now.
                let held = still_running.not_due(now);
                self.resume(&pass, &mut pg, &mappings, &held).await?;
                still_running.checked(now);
            }
            // A pass that wrote something goes on at once even when some changes must be
            // sent again (a share of records locked, a few calls failed): under steady
            // faults, backing off after every partial pass would leave the queue growing.
            // Only a pass that got nothing through backs off.
            let got_through = outcome.succeeded + outcome.failed > 0;
            let wait = if outcome.retried + outcome.in_doubt > 0 && !got_through {
                backoff.next_wait()
            } else if outcome.is_idle() {
                backoff.reset();
                self.lease.heartbeat
            } else {
                // More may be waiting: drain before sleeping.
                backoff.reset();
                continue;
            };
            let wait = still_running
                .next_in(Instant::now())
                .map_or(wait, |next| wait.min(next));
            tokio::select! {
                alive = listener.notified(), if !backoff.is_backing_off() => {
                    if !alive {
                        return Ok(Ended::Restart);
                    }
                    tokio::time::sleep(COALESCE).await;
                }
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return Ok(Ended::Stopped),
            }
        }
    }

    /// Settles the PENDING rows of the connection's trigger log under the pass's lease, but
    /// those of paused mappings and the creates `held` (Salesforce may still run them).
    async fn resume(
        &self,
        pass: &Pass<'_>,
        pg: &mut Session,
        mappings: &[Mapping],
        held: &[i32],
    ) -> Result<super::resume::ResumeOutcome> {
        let fence = pass.fence()?;
        let left = LeftAlone {
            tables: pass.waiting,
            log_ids: held,
        };
        resume_pending(pass.sf, pg, &self.schema, mappings, left, fence.as_ref()).await
    }

    /// The read-write mappings as events name them: id, object, table.
    pub(super) fn catalog_mappings(&self) -> Vec<(MappingId, String, String)> {
        self.mappings
            .iter()
            .map(|m| {
                (
                    m.id,
                    m.mapping.object.clone(),
                    m.mapping.table.as_str().to_owned(),
                )
            })
            .collect()
    }

    /// Moves processed rows to the archive and prunes it; forgets settled creates in flight.
    async fn archive(&self, pg: &mut Session) -> Result<()> {
        let done = archive_processed(pg, &self.schema, self.archive.after, self.archive.retention)
            .await
            .map_err(log_error)?;
        in_flight::forget_settled(&*pg, &self.schema)
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
