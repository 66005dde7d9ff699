//! A mapping's reader as a long-running worker: it holds the mapping's lease, loads the
//! mapping when it has never been loaded or a reload was asked for, polls it on its
//! interval (sooner when woken), and hands every failure to the error policy.
//!
//! Key concepts:
//! - **Lease.** `reader:<mapping id>` in `pgforce.leases`, kept by a background keeper so
//!   a long load never lets it lapse; with several `pgforce run` on one catalog each
//!   mapping is read by one of them, and another takes over when it dies.
//! - **Budget.** Polls stop for the day at the mapping's `max_daily_api_calls`, and while
//!   the org has used 95 % of its daily allocation.
//! - **Failures.** Passing trouble is retried with backoff (1 s doubling to the polling
//!   interval, at most a minute) while the mapping shows the error; trouble the operator
//!   must fix sets `SYSTEM_ERROR` with the whole error chain and parks the worker.
//! - **Shutdown.** The stop signal is seen between pages: each page is one transaction,
//!   so stopping never leaves one half applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgforce_salesforce::Client;
use pgforce_store::catalog::leases::Fence;
use pgforce_store::catalog::{connections, cursors, leases, mappings};
use pgforce_store::table::rows;
use pgforce_store::{ConnectionId, Ident, MappingId, MappingState, Session};
use tokio::sync::{Notify, watch};

use super::{ReadOutcome, Target, initial_load, poll_with_overlap};
use crate::error::{Error, Result};
use crate::error_policy::{self, Decision};
use crate::events::{EventBus, EventKind, LeaseChanged, ReadDone, ReadFailed};
use crate::mapping::Mapping;
use crate::worker::{Backoff, Exit, LeaseTiming};

/// Told how far loads have got: `(object, records loaded so far, done)`.
pub type LoadProgress = Arc<dyn Fn(&str, u64, bool) + Send + Sync>;

/// Polls pause while the org has used this share of its daily API allocation.
const ORG_USAGE_CEILING_PERCENT: u64 = 95;

/// Everything a mapping's reader needs.
pub(crate) struct ReaderWorker {
    /// Where the catalog and the tables are.
    pub database_url: String,
    pub salesforce: Client,
    pub schema: Ident,
    pub mapping: Mapping,
    pub mapping_id: MappingId,
    /// The mapping's connection, whose state shows an org-wide pause.
    pub connection_id: ConnectionId,
    pub bus: EventBus,
    /// Where load progress goes (the CLI's progress bars).
    pub progress: Option<LoadProgress>,
    /// Notified to read at once instead of waiting for the interval.
    pub wake: Arc<Notify>,
    pub lease: LeaseTiming,
    /// How far before its cursor each poll reads again (late commits).
    pub overlap: Duration,
}

impl ReaderWorker {
    /// Reads until `stop` turns true or the mapping must stop.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) -> Result<Exit> {
        let keeper = leases::LeaseKeeper::start(
            &self.database_url,
            &leases::reader_lease(self.mapping_id),
            &leases::holder_name(),
            self.lease.ttl,
            self.lease.heartbeat,
        );
        let worker_name = format!("reader {}", self.mapping.object);
        let interval = Duration::from_secs(self.mapping.spec.polling_seconds.max(1));
        let mut state = ReaderState {
            pg: None,
            budget: DailyBudget::default(),
            backoff: Backoff::new(
                Duration::from_secs(1),
                interval.min(Duration::from_secs(60)),
            ),
            showed_pause: false,
        };
        let mut next_sync = Instant::now();
        let mut standing_by = true;
        let exit = loop {
            if *stop.borrow() {
                break Exit::Stopped;
            }
            if let Some(fence) = keeper.fence() {
                if standing_by {
                    LeaseChanged {
                        worker: &worker_name,
                        held: true,
                    }
                    .emit();
                    standing_by = false;
                    next_sync = Instant::now();
                }
                if Instant::now() >= next_sync {
                    match self.tick(&mut state, &fence).await {
                        Tick::Done => next_sync = Instant::now() + interval,
                        Tick::Retry(wait) => next_sync = Instant::now() + wait,
                        Tick::Park(reason) => break Exit::Parked { reason },
                    }
                }
            } else if !standing_by {
                LeaseChanged {
                    worker: &worker_name,
                    held: false,
                }
                .emit();
                standing_by = true;
            }
            let wait = next_sync
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(100), self.lease.heartbeat);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => next_sync = Instant::now(),
                _ = stop.changed() => {}
            }
        };
        keeper.release().await;
        Ok(exit)
    }

    /// One load or poll under the lease's `fence`, unless the budget says wait.
    async fn tick(&self, state: &mut ReaderState, fence: &Fence) -> Tick {
        let object = self.mapping.object.as_str();
        if let Some(reason) = self.paused(&mut state.budget) {
            tracing::warn!(object, reason = %reason, "polling paused");
            return Tick::Done;
        }
        let started = Instant::now();
        let result = self.sync_once(state, fence).await;
        let took = started.elapsed();
        match result {
            Ok((kind, outcome)) => {
                state.budget.spend(outcome.api_calls);
                state.backoff.reset();
                if state.showed_pause {
                    state.showed_pause = false;
                    self.lift_pause(state).await;
                }
                ReadDone {
                    mapping: self.mapping_id,
                    object,
                    kind,
                    outcome: &outcome,
                    took,
                }
                .emit(&self.bus, state.pg.as_ref())
                .await;
                Tick::Done
            }
            Err((kind, error)) => {
                state.budget.spend(1);
                let verdict = error_policy::decide(&error);
                ReadFailed {
                    mapping: self.mapping_id,
                    object,
                    kind,
                    error: &error,
                    verdict,
                    took,
                }
                .emit(&self.bus, state.pg.as_ref())
                .await;
                let message = error.chain();
                match verdict.decision {
                    Decision::StopMapping => {
                        self.show(MappingState::SystemError, &message).await;
                        Tick::Park(message)
                    }
                    Decision::PauseConnection => {
                        self.show_pause(state, &error).await;
                        Tick::Retry(state.backoff.next_wait())
                    }
                    Decision::Retry | Decision::FailRecord => {
                        self.show_error(state, &message).await;
                        Tick::Retry(state.backoff.next_wait())
                    }
                }
            }
        }
    }

    /// Puts the mapping in `state` with `message`, on a fresh session (the worker's own
    /// may be what failed).
    async fn show(&self, state: MappingState, message: &str) {
        match pgforce_store::connect(&self.database_url).await {
            Ok(pg) => {
                if let Err(error) =
                    mappings::set_state(&pg, self.mapping_id, &state, Some(message)).await
                {
                    tracing::warn!(error = %crate::error::chain(&error), "could not record the mapping's state");
                }
            }
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), "could not record the mapping's state");
            }
        }
    }

    /// Shows a failure being retried on the mapping, when the database is reachable.
    async fn show_error(&self, state: &ReaderState, message: &str) {
        if let Some(pg) = &state.pg
            && let Err(error) = mappings::set_error(pg, self.mapping_id, Some(message)).await
        {
            tracing::debug!(error = %crate::error::chain(&error), "could not record the mapping's last error");
        }
    }

    /// Shows an org-wide condition on the connection (its readers and writer all wait for
    /// it) and on the mapping.
    async fn show_pause(&self, state: &mut ReaderState, error: &Error) {
        let Some(pause) = error_policy::pause_of(error) else {
            return;
        };
        self.show_error(state, &pause.reason).await;
        if let Some(pg) = &state.pg {
            match connections::set_state(pg, self.connection_id, &pause.state, Some(&pause.reason))
                .await
            {
                Ok(()) => state.showed_pause = true,
                Err(error) => {
                    tracing::debug!(error = %crate::error::chain(&error), "could not record the connection's state");
                }
            }
        }
    }

    /// The org answers again: lifts the pause this reader showed (unless an operator's
    /// pause or another state replaced it meanwhile).
    async fn lift_pause(&self, state: &ReaderState) {
        if let Some(pg) = &state.pg
            && let Err(error) = connections::lift_org_pause(pg, self.connection_id).await
        {
            tracing::debug!(error = %crate::error::chain(&error), "could not record that the connection resumed");
        }
    }

    /// Why this tick should not call Salesforce: the mapping's daily budget is spent, or
    /// the org is close to its daily allocation.
    fn paused(&self, budget: &mut DailyBudget) -> Option<String> {
        let max = self.mapping.spec.max_daily_api_calls;
        if budget.used() >= max {
            return Some(format!("max_daily_api_calls ({max}) reached for today"));
        }
        let usage = self.salesforce.api_usage()?;
        (usage.used * 100 >= usage.limit * ORG_USAGE_CEILING_PERCENT).then(|| {
            format!(
                "the org has used {}/{} API requests today",
                usage.used, usage.limit
            )
        })
    }

    /// Loads the mapping if it never was or a reload was asked for, else polls it.
    async fn sync_once(
        &self,
        state: &mut ReaderState,
        fence: &Fence,
    ) -> std::result::Result<(EventKind, ReadOutcome), (EventKind, Error)> {
        let object = self.mapping.object.as_str();
        let mut pg = match state.pg.take() {
            Some(pg) if !pg.is_closed() => pg,
            _ => pgforce_store::connect(&self.database_url)
                .await
                .map_err(|e| (EventKind::Poll, Error::store(object, e)))?,
        };
        let kind = self
            .next_kind(&pg)
            .await
            .map_err(|e| (EventKind::Poll, e))?;
        let target = Target {
            schema: &self.schema,
            mapping: &self.mapping,
            mapping_id: self.mapping_id,
            fence: Some(fence),
        };
        let result = match kind {
            EventKind::Load => {
                let report = |done: u64, finished: bool| {
                    if let Some(progress) = &self.progress {
                        progress(object, done, finished);
                    }
                };
                let outcome = initial_load(&self.salesforce, &mut pg, &target, &mut |done| {
                    report(done, false);
                })
                .await;
                report(outcome.as_ref().map_or(0, |o| o.applied), true);
                outcome
            }
            EventKind::Poll | EventKind::Write => {
                poll_with_overlap(&self.salesforce, &mut pg, &target, self.overlap).await
            }
        };
        // A session that failed mid-work may be unusable; a new one is opened next time.
        if result.is_ok() || !pg.is_closed() {
            state.pg = Some(pg);
        }
        result.map(|outcome| (kind, outcome)).map_err(|e| (kind, e))
    }

    /// A load when a reload was asked for, or when the mapping has no cursor and its table
    /// is empty (never loaded); otherwise a poll (without a cursor but with rows — fields
    /// were added — the poll reads every record and fills the new columns in place).
    async fn next_kind(&self, pg: &Session) -> Result<EventKind> {
        let object = self.mapping.object.as_str();
        let store = |e| Error::store(object, e);
        if mappings::reload_requested(pg, self.mapping_id)
            .await
            .map_err(store)?
        {
            return Ok(EventKind::Load);
        }
        if cursors::load(pg, self.mapping_id)
            .await
            .map_err(store)?
            .is_some()
        {
            return Ok(EventKind::Poll);
        }
        let rows = rows::count(pg, &self.schema, &self.mapping.table)
            .await
            .map_err(store)?;
        Ok(if rows == 0 {
            EventKind::Load
        } else {
            EventKind::Poll
        })
    }
}

/// What a reader keeps between ticks.
struct ReaderState {
    /// The worker's database session, reopened after it is lost.
    pg: Option<Session>,
    /// Calls this mapping has made today.
    budget: DailyBudget,
    /// Waits between failed attempts.
    backoff: Backoff,
    /// Whether this reader showed an org-wide pause on its connection.
    showed_pause: bool,
}

/// How a tick ended.
enum Tick {
    /// Next read after the interval.
    Done,
    /// Failed for a passing reason: try again after this wait.
    Retry(Duration),
    /// The operator must act.
    Park(String),
}

/// API calls a mapping has used today (UTC), against its `max_daily_api_calls`.
#[derive(Debug, Default)]
struct DailyBudget {
    day: u64,
    calls: u64,
}

impl DailyBudget {
    fn today() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400)
    }

    /// Calls used today, starting afresh at UTC midnight.
    fn used(&mut self) -> u64 {
        let today = Self::today();
        if self.day != today {
            *self = Self {
                day: today,
                calls: 0,
            };
        }
        self.calls
    }

    fn spend(&mut self, calls: u64) {
        self.used();
        self.calls += calls;
    }
}
