//! Postgres → Salesforce: one pass of the writer over a connection's trigger log.
//!
//! Data flow: claim NEW log rows in id order, marking them PENDING ([`claim`]); plan them
//! ([`crate::plan`]: ordered or merged); send each batch with sObject Collections
//! ([`send`]); record every outcome with the row's write-back in one transaction per batch
//! ([`record`]). Around the pass: [`resume`] settles rows a crash left PENDING, and the
//! worker archives processed rows (`pgforce_store::trigger_log::archive`).
//!
//! Layout: `worker` (the writer as a long-running worker: lease, LISTEN, backoff),
//! `claim`, `send`, `record` (one change's trip), `wave` (batches in flight together,
//! bulk runs, holding back dependents), `bulk` and `bulk_job` (ingest jobs), `links` and `merged`
//! (dependencies between tables, merged-write extras), `resume`.
//!
//! Bulk: under ordered writes, a run of at least `bulk_threshold` changes of one table
//! and action goes as one Bulk API ingest job ([`bulk`], [`bulk_job`]). The job is kept in
//! the catalog while it runs; what it processed is recorded as such even when it fails
//! partway, and only the rows it never processed go through collections. A writer that
//! stops while a job runs leaves it to the next, which reads its results first.
//!
//! Throughput: up to [`MAX_CALLS_IN_FLIGHT`] calls at once, for consecutive batches of one
//! table and action that touch different records; their outcomes are recorded in plan
//! order.
//!
//! Shutdown: the stop signal is checked before every wave (and while a bulk job runs);
//! a writer told to stop gives the batches it has not sent back to NEW, so it stops within
//! one wave whatever its backlog and leaves no create in doubt.
//!
//! Errors of a whole call that need the operator (the API disabled, a mapped field hidden
//! from the user, a proxy's refusal) fail no change: the pass gives its changes back and
//! ends with the error, and the worker stops (parks) as the error policy says.
//!
//! Ordering: changes of one record are never reordered. When a change must be retried
//! (transient failure), it and every change planned after it go back to NEW and the pass
//! ends, so the next pass sends them again in capture order. Under ordered writes a
//! refused insert holds back the later changes of its record (or, with `block_queue`,
//! everything after it) until it is fixed and re-queued.

mod bulk;
mod bulk_job;
mod claim;
mod links;
mod merged;
mod pause;
mod record;
mod resume;
mod send;
mod server_errors;
mod stale;
mod wave;
mod worker;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::watch;

use pgforce_salesforce::Client as Salesforce;
use pgforce_store::catalog::leases::{Fence, LeaseKeeper};
use pgforce_store::trigger_log::claim::{HoldRule, ParentLink};
use pgforce_store::trigger_log::in_flight;
use pgforce_store::{Ident, LogState, Session as Postgres};

#[cfg(feature = "test-support")]
pub use resume::ResumeOutcome;
pub use resume::resume_pending;
pub(crate) use resume::{CLOCK_MARGIN_SECONDS, candidates, same_values};
pub(crate) use send::record_for;
#[cfg(feature = "test-support")]
pub use server_errors::MAX_SERVER_ERROR_ATTEMPTS;
pub(crate) use server_errors::ServerErrors;
pub(crate) use stale::settle_stale_creates;
pub(crate) use worker::{WriteWorker, WriterMapping};

use links::parent_links;
use merged::{parent_depths, retry_failed_inserts};
use wave::{RunSent, next_wave, record_wave, send_batch, send_run};

use crate::config::{OnInsertFailure, WriteAlgorithm};
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::plan::{self, Action, Batch};

pub use crate::config::{ArchivePolicy, DEFAULT_BULK_WRITE_THRESHOLD, WritePolicy};

impl WritePolicy {
    /// What a refused insert holds back, when it holds anything back (ordered writes).
    fn hold_rule(&self) -> Option<HoldRule> {
        match (self.algorithm, self.on_insert_failure) {
            (WriteAlgorithm::Merged, _) => None,
            (WriteAlgorithm::Ordered, OnInsertFailure::HoldDependents) => {
                Some(HoldRule::HoldDependents)
            }
            (WriteAlgorithm::Ordered, OnInsertFailure::BlockQueue) => Some(HoldRule::BlockQueue),
        }
    }
}

/// The most log rows one pass claims.
const CLAIM_LIMIT: i64 = 10_000;

/// Calls in flight at once (batches of one table and action touching different records).
pub const MAX_CALLS_IN_FLIGHT: usize = 4;

/// How long after the client's request timeout a create it let go of (a timeout, or a
/// writer that died mid-call) is checked: by then Salesforce has had the whole timeout
/// again to finish it.
const STILL_RUNNING_MARGIN: Duration = Duration::from_secs(10);

pub use crate::outcome::WriteOutcome;

/// A trigger-log store error, as the engine reports it.
pub(crate) fn log_error(source: pgforce_store::Error) -> Error {
    Error::Store {
        what: "the trigger log".to_owned(),
        source,
    }
}

/// What every step of a pass needs: the connection's client and schema, its policy, its
/// read-write mappings by table, and the lease it works under.
pub(crate) struct Pass<'a> {
    pub sf: &'a Salesforce,
    pub schema: &'a Ident,
    pub policy: &'a WritePolicy,
    pub mappings: &'a [Mapping],
    pub by_table: HashMap<&'a str, &'a Mapping>,
    pub links: Vec<ParentLink>,
    /// Tables whose changes wait (their mapping is paused): never claimed.
    pub waiting: &'a [&'a str],
    /// The connection's writer lease and the connection's name (`None`: a pass no lease
    /// guards, as in tests).
    pub lease: Option<(&'a LeaseKeeper, &'a str)>,
    /// Turns true when the writer must stop: a pass waiting on a bulk job leaves it to
    /// the next writer instead of holding the shutdown up.
    pub stop: Option<watch::Receiver<bool>>,
    /// The writer's counts of calls failed with a server error per change (`None`: no
    /// bound, as in one-off passes).
    pub server_errors: Option<&'a ServerErrors>,
}

impl<'a> Pass<'a> {
    pub(crate) fn new(
        sf: &'a Salesforce,
        schema: &'a Ident,
        policy: &'a WritePolicy,
        mappings: &'a [Mapping],
        waiting: &'a [&'a str],
    ) -> Self {
        Self {
            sf,
            schema,
            policy,
            mappings,
            by_table: mappings.iter().map(|m| (m.table.as_str(), m)).collect(),
            links: parent_links(mappings),
            waiting,
            lease: None,
            stop: None,
            server_errors: None,
        }
    }

    /// The same pass, counting server errors per change in `errors`.
    pub(crate) fn counting(mut self, errors: &'a ServerErrors) -> Self {
        self.server_errors = Some(errors);
        self
    }

    /// The same pass under `connection`'s writer lease.
    pub(crate) fn under(mut self, lease: &'a LeaseKeeper, connection: &'a str) -> Self {
        self.lease = Some((lease, connection));
        self
    }

    /// The same pass, told to stop by `stop`.
    pub(crate) fn stopped_by(mut self, stop: watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Whether the writer was told to stop.
    pub(crate) fn must_stop(&self) -> bool {
        self.stop.as_ref().is_some_and(|stop| *stop.borrow())
    }

    /// Sleeps for `pause`, or less when the writer is told to stop meanwhile.
    pub(crate) async fn pause(&self, pause: Duration) {
        match self.stop.clone() {
            None => tokio::time::sleep(pause).await,
            Some(mut stop) => {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// The fence every commit of the pass carries, checked before each Salesforce call:
    /// a lease that can no longer be trusted stops the pass before it sends anything.
    pub(crate) fn fence(&self) -> Result<Option<Fence>> {
        match self.lease {
            None => Ok(None),
            Some((lease, _)) => lease.fence().map(Some).ok_or_else(|| Error::LeaseLost {
                lease: lease.name().to_owned(),
            }),
        }
    }
}

/// Runs one pass: claim, plan, send, record (tests run passes one at a time).
#[cfg(feature = "test-support")]
pub async fn write_once(
    sf: &Salesforce,
    pg: &mut Postgres,
    schema: &Ident,
    mappings: &[Mapping],
    policy: &WritePolicy,
) -> Result<WriteOutcome> {
    run_pass(&Pass::new(sf, schema, policy, mappings, &[]), pg).await
}

/// How long after a create leaves Salesforce may still be running it: the client's request
/// timeout (by then Salesforce has had the whole timeout again, the client having given
/// up at its end) plus a margin.
pub(crate) fn still_running_hold(sf: &Salesforce) -> Duration {
    sf.config().request_timeout + STILL_RUNNING_MARGIN
}

/// Who saves creates in flight when no lease guards the pass (one-off passes in tests).
const UNLEASED: &str = "unleased";

/// Saves the wave's plain creates before they leave, so that if this writer dies mid-call
/// the one that comes next waits for them, then looks for them in Salesforce — and for no
/// other create (see `pgforce_store::trigger_log::in_flight`). Upserts can be sent again
/// safely.
async fn save_creates_in_flight(
    pass: &Pass<'_>,
    pg: &Postgres,
    wave: &[(Batch, &Mapping)],
    fence: Option<&Fence>,
) -> Result<()> {
    let creates: Vec<i32> = wave
        .iter()
        .filter(|(batch, mapping)| {
            batch.action == Action::Insert && mapping.upsert_column.is_none()
        })
        .flat_map(|(batch, _)| wave::log_ids(batch))
        .filter_map(|id| i32::try_from(id).ok())
        .collect();
    if creates.is_empty() {
        return Ok(());
    }
    in_flight::save(
        pg,
        pass.schema,
        fence.map_or(UNLEASED, |fence| fence.holder.as_str()),
        &creates,
        still_running_hold(pass.sf),
    )
    .await
    .map_err(log_error)
}

/// Runs one pass with everything it needs.
pub(crate) async fn run_pass(pass: &Pass<'_>, pg: &mut Postgres) -> Result<WriteOutcome> {
    let (schema, policy) = (pass.schema, pass.policy);
    let (mut changes, held) = claim::claim(pass, pg, CLAIM_LIMIT).await?;
    let mut outcome = WriteOutcome {
        held,
        ..WriteOutcome::default()
    };
    if changes.is_empty() {
        return Ok(outcome);
    }
    if policy.algorithm == WriteAlgorithm::Merged {
        retry_failed_inserts(pg, schema, &pass.by_table, &mut changes).await?;
    }
    let plan = match (policy.algorithm, policy.on_insert_failure) {
        // Blocking the queue holds every later change behind a refused insert: capture
        // order, strictly.
        (WriteAlgorithm::Ordered, OnInsertFailure::BlockQueue) => plan::ordered(changes),
        (WriteAlgorithm::Ordered, OnInsertFailure::HoldDependents) => {
            plan::grouped(changes, &upsert_columns(pass.mappings))
        }
        (WriteAlgorithm::Merged, _) => plan::merged(changes, &parent_depths(pass.mappings)),
    };
    let fence = pass.fence()?;
    record::mark(
        pg,
        schema,
        &plan.cancelled_log_ids,
        &LogState::Merged,
        None,
        fence.as_ref(),
    )
    .await?;
    outcome.merged += plan.cancelled_log_ids.len() as u64;
    let in_flight = match (policy.algorithm, policy.on_insert_failure) {
        // Blocking the queue means nothing may pass a refused insert: one call at a time.
        (WriteAlgorithm::Ordered, OnInsertFailure::BlockQueue) => 1,
        _ => MAX_CALLS_IN_FLIGHT,
    };
    let batches = match pass.server_errors {
        // A change whose call failed with a server error goes alone: if it is the cause,
        // it fails on its own and the rest go on.
        Some(errors) => server_errors::isolate(plan.batches, errors),
        None => plan.batches,
    };
    let mut pending: VecDeque<Batch> = batches.into();
    let mut bulk_allowed = policy.algorithm == WriteAlgorithm::Ordered;
    while !pending.is_empty() {
        if pass.must_stop() {
            // Told to stop: what was not sent goes back to NEW rather than holding the
            // shutdown up for the rest of the pass (or being cut off mid-call).
            give_back(pass, pg, &mut pending, &mut outcome).await?;
            break;
        }
        let run = bulk_allowed
            .then(|| bulk::take_run(&mut pending, policy.bulk_threshold))
            .flatten();
        let (wave, job) = match run {
            Some(run) => match send_run(pass, pg, run, &mut pending, &mut outcome).await? {
                RunSent::Answers {
                    wave,
                    job,
                    fell_back,
                } => {
                    bulk_allowed &= !fell_back;
                    (wave, job)
                }
                RunSent::FellBack => {
                    // The run is back at the front, for collections.
                    bulk_allowed = false;
                    continue;
                }
                RunSent::LeftRunning => {
                    // The job's rows stay PENDING for the next writer; what was planned
                    // after it goes back to NEW.
                    give_back(pass, pg, &mut pending, &mut outcome).await?;
                    break;
                }
            },
            None => {
                let wave = next_wave(pass, pg, &mut pending, in_flight, &mut outcome).await?;
                // Nothing is sent under a lease that can no longer be trusted.
                let fence = pass.fence()?;
                save_creates_in_flight(pass, pg, &wave, fence.as_ref()).await?;
                let answers = join_all(
                    wave.iter()
                        .map(|(batch, mapping)| send_batch(pass.sf, mapping, batch)),
                )
                .await;
                (wave.into_iter().zip(answers).collect(), None)
            }
        };
        if record_wave(pass, pg, wave, job.as_deref(), &mut pending, &mut outcome).await? {
            break;
        }
    }
    match outcome.refused_call {
        Some((object, reason)) => Err(Error::Config {
            object,
            problem: format!(
                "Salesforce refused a whole call, so the writer stopped and no change was failed for it (they wait): {reason}"
            ),
        }),
        None => Ok(outcome),
    }
}

/// Each table's upsert column, for grouping (see [`plan::grouped`]).
fn upsert_columns(mappings: &[Mapping]) -> HashMap<String, String> {
    mappings
        .iter()
        .filter_map(|m| {
            let column = m.upsert_column.as_ref()?;
            Some((m.table.as_str().to_owned(), column.as_str().to_owned()))
        })
        .collect()
}

/// Returns the batches not sent yet to NEW, to be sent in order by a later pass.
async fn give_back(
    pass: &Pass<'_>,
    pg: &mut Postgres,
    pending: &mut VecDeque<Batch>,
    outcome: &mut WriteOutcome,
) -> Result<()> {
    let back: Vec<i64> = pending.drain(..).flat_map(|b| wave::log_ids(&b)).collect();
    claim::unclaim(pass, pg, &back).await?;
    outcome.retried += back.len() as u64;
    Ok(())
}

/// Sends what waits in a connection's trigger log now, from this process, when no writer
/// holds the connection's lease (a command run without a daemon): passes until one finds
/// nothing or must wait to retry, under the lease (kept in the background meanwhile).
/// `false` when a running writer holds the lease (it sends the changes itself).
pub(crate) async fn drain_here(
    pass: Pass<'_>,
    pg: &mut Postgres,
    database_url: &str,
    connection: &str,
    timing: crate::worker::LeaseTiming,
) -> Result<bool> {
    use pgforce_store::catalog::leases;
    let keeper = LeaseKeeper::start(
        database_url,
        &leases::writer_lease(connection),
        &leases::holder_name(),
        timing.ttl,
        timing.heartbeat,
    );
    if keeper.wait_held(timing.heartbeat * 2).await.is_none() {
        return Ok(false);
    }
    let pass = pass.under(&keeper, connection);
    let drained = async {
        loop {
            let outcome = run_pass(&pass, pg).await?;
            if outcome.is_idle() || outcome.retried > 0 {
                return Ok(());
            }
        }
    }
    .await;
    keeper.release().await;
    drained.map(|()| true)
}
