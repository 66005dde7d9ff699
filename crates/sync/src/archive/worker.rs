//! The archive job worker `pgforce run` starts for each open job of a connection it
//! runs: it takes the job's lease (waiting while another process holds it), runs the job
//! from the step it stands at, and stops between batches when told to.
//!
//! Errors follow the engine's one policy: passing ones (timeouts, an exhausted API limit,
//! a lost lease) end the worker with an error and the supervisor starts it again after a
//! backoff, the job resuming where it stood; errors the operator must fix fail the job
//! with the reason. The error text is kept on the job either way, for the status.

use pgforce_salesforce::Client;
use pgforce_store::Ident;
use pgforce_store::catalog::archive::{self, JobState};
use pgforce_store::catalog::leases::{self, LeaseKeeper};
use tokio::sync::watch;

use super::steps::{Hooks, JobTarget, run_job};
use crate::error::{Error, Result};
use crate::error_policy::{self, Decision};
use crate::mapping::Mapping;
use crate::worker::{Exit, LeaseTiming};

/// Records per transaction and per delete call for jobs run by `pgforce run`.
pub(crate) const WORKER_BATCH: usize = 200;

/// One open archive job, as the supervisor starts it.
pub(crate) struct ArchiveWorker {
    /// Where the catalog and the archive tables are.
    pub database_url: String,
    /// The connection's client.
    pub salesforce: Client,
    /// The connection's schema.
    pub schema: Ident,
    /// The archived object's mapping.
    pub mapping: Mapping,
    /// The job.
    pub job: i64,
    /// Lease lifetime and renewal.
    pub lease: LeaseTiming,
}

impl ArchiveWorker {
    /// Runs the job until it ends or `stop` turns true.
    pub(crate) async fn run(self, stop: watch::Receiver<bool>) -> Result<Exit> {
        let keeper = LeaseKeeper::start(
            &self.database_url,
            &archive::archive_lease(self.job),
            &leases::holder_name(),
            self.lease.ttl,
            self.lease.heartbeat,
        );
        let exit = self.work(&keeper, stop).await;
        keeper.release().await;
        exit
    }

    async fn work(&self, keeper: &LeaseKeeper, mut stop: watch::Receiver<bool>) -> Result<Exit> {
        // Waits for the lease: another process may run this job.
        let fence = loop {
            if *stop.borrow() {
                return Ok(Exit::Stopped);
            }
            if let Some(fence) = keeper.fence() {
                break fence;
            }
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(self.lease.heartbeat) => {}
            }
        };
        let mut pg = pgforce_store::connect(&self.database_url)
            .await
            .map_err(Error::catalog)?;
        let target = JobTarget {
            salesforce: &self.salesforce,
            schema: &self.schema,
            mapping: &self.mapping,
            fence: Some(&fence),
            batch: WORKER_BATCH,
        };
        let mut progress = |_| {};
        let stopping = stop.clone();
        // Asked between batches and steps: a shutdown stops the job at the next one, with
        // everything before it committed.
        let mut stop_here = move |_| *stopping.borrow();
        let mut hooks = Hooks {
            progress: &mut progress,
            stop: &mut stop_here,
        };
        match run_job(&target, &mut pg, self.job, &mut hooks).await {
            Ok(_) => Ok(Exit::Stopped),
            Err(error) => {
                let text = error.chain();
                let verdict = error_policy::decide(&error);
                if verdict.decision == Decision::StopMapping {
                    archive::set_state(&pg, self.job, JobState::Failed, Some(&text))
                        .await
                        .map_err(Error::catalog)?;
                    return Ok(Exit::Parked { reason: text });
                }
                archive::set_state(&pg, self.job, JobState::Running, Some(&text))
                    .await
                    .map_err(Error::catalog)?;
                tracing::warn!(job = self.job, error = %text, hint = verdict.hint, "archive job interrupted; it resumes");
                Err(error)
            }
        }
    }
}
