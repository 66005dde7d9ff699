//! A mapping's reader as a long-running worker: it holds the mapping's lease, loads the
//! mapping when it has never been loaded or a reload was asked for, polls it on its
//! interval (sooner when woken), and hands every failure to the error policy.
//!
//! Key concepts:
//! - **Lease.** `reader:<mapping id>` in `pgforce.leases`, kept by a background keeper so
//!   a long load never lets it lapse; with several `pgforce run` on one catalog each
//!   mapping is read by one of them, and another takes over when it dies.
//! - **Wake-ups.** A change event (or a request to read now) wakes the reader at once
//!   after a quiet spell; under a stream of events woken reads start at least
//!   `WOKEN_READ_GAP` apart, so a burst costs a few reads, not one per change. Only a
//!   reader that holds its lease takes a wake-up ([`ReaderWake::read_now`]): one standing
//!   by could not read, so the caller asks the other processes instead.
//! - **After a load** the first poll runs at once, not a polling interval later: it reads
//!   what changed while the load ran.
//! - **Budget.** Polls stop for the day at the mapping's `max_daily_api_calls`, and while
//!   the org has used 95 % of its daily allocation.
//! - **Failures.** Passing trouble is retried with backoff (1 s doubling to the polling
//!   interval, at most a minute) while the mapping shows the error; trouble the operator
//!   must fix sets `SYSTEM_ERROR` with the whole error chain and parks the worker.
//! - **Schema.** The reader follows its object's schema (see `schema`): it checks it when
//!   it starts, every `schema_check`, after a read that rejected records and when a read
//!   fails on a field. Widened fields widen their columns and the rejected records are
//!   read again; a mapped field gone puts the mapping in `SCHEMA_CHANGED`, where it checks
//!   again at every polling interval instead of reading, and reads every record again
//!   once the field is back.
//! - **Shutdown.** The stop signal is seen between pages: each page is one transaction,
//!   so stopping never leaves one half applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgforce_salesforce::Client;
use pgforce_store::catalog::leases::{Fence, LeaseWatch};
use pgforce_store::catalog::{connections, cursors, leases, mappings, rejected};
use pgforce_store::table::rows;
use pgforce_store::{ConnectionId, Ident, MappingId, MappingState, Session};
use tokio::sync::{Notify, watch};

use super::schema::{self, SchemaCheck};
use super::{ReadOutcome, Target, initial_load, poll_with_overlap, refresh_records};
use crate::error::{Error, Result};
use crate::error_policy::{self, Decision};
use crate::events::{
    EventBus, EventKind, LeaseChanged, ReadDone, ReadFailed, SchemaFollowed, SchemaNews,
};
use crate::mapping::Mapping;
use crate::worker::{Backoff, Exit, LeaseTiming};

/// Woken reads (change events, `pgforce reload`) start at least this long after the
/// previous read started: the first change after a quiet spell is read at once, and a
/// steady stream of events costs at most five reads a second, each reading every change
/// since the last.
const WOKEN_READ_GAP: Duration = Duration::from_millis(200);

/// When a woken reader reads: now, or once the gap since its last read has passed.
fn woken_read_at(last_read: Option<Instant>) -> Instant {
    let now = Instant::now();
    last_read.map_or(now, |at| (at + WOKEN_READ_GAP).max(now))
}

/// How a reader is asked to read at once from elsewhere in its process (change events,
/// `pgforce reload`, nudges from other processes).
#[derive(Debug, Default)]
pub(crate) struct ReaderWake {
    /// Notified to read at once instead of waiting for the interval.
    notify: Notify,
    /// The reader's lease while it runs (set at its start, cleared when it ends): a
    /// wake-up is taken only while the lease may be trusted.
    lease: std::sync::Mutex<Option<LeaseWatch>>,
}

impl ReaderWake {
    /// Asks the reader to read at once; `false` (and nothing asked) when it does not hold
    /// its lease, so the read must be asked of the process that does.
    pub(crate) fn read_now(&self) -> bool {
        let holds = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|lease| lease.fence().is_some());
        if holds {
            self.notify.notify_one();
        }
        holds
    }

    /// Follows the reader's lease (`None`: the reader ended).
    fn follow(&self, lease: Option<LeaseWatch>) {
        *self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = lease;
    }
}

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
    /// Asks it to read at once instead of waiting for the interval.
    pub wake: Arc<ReaderWake>,
    pub lease: LeaseTiming,
    /// How far before its cursor each poll reads again (late commits).
    pub overlap: Duration,
    /// How often the object's describe is compared with the table.
    pub schema_check: Duration,
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
        self.wake.follow(Some(keeper.watch()));
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
            mapping: self.mapping.clone(),
            schema: SchemaWatch::default(),
        };
        let mut next_sync = Instant::now();
        let mut last_read: Option<Instant> = None;
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
                    last_read = Some(Instant::now());
                    match self.tick(&mut state, &fence).await {
                        Tick::Done => next_sync = Instant::now() + interval,
                        Tick::PollNow => next_sync = Instant::now(),
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
                () = self.wake.notify.notified() => next_sync = next_sync.min(woken_read_at(last_read)),
                _ = stop.changed() => {}
            }
        };
        self.wake.follow(None);
        keeper.release().await;
        Ok(exit)
    }

    /// One load or poll under the lease's `fence`, unless the budget says wait; the
    /// object's schema is checked first when that is due.
    async fn tick(&self, state: &mut ReaderState, fence: &Fence) -> Tick {
        let object = self.mapping.object.as_str();
        if let Some(reason) = self.paused(&mut state.budget) {
            tracing::warn!(object, reason = %reason, "polling paused");
            return Tick::Done;
        }
        let started = Instant::now();
        let mut checked = false;
        if state.schema.due(self.schema_check) {
            checked = true;
            match self.follow_schema(state, fence).await {
                Ok(Followed::Waiting) => return Tick::Done,
                Ok(Followed::Current { .. }) => {}
                Err(error) => {
                    return self
                        .failed(state, EventKind::Poll, &error, started.elapsed())
                        .await;
                }
            }
        }
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
                // What changed while a load ran (or since its snapshot) is read at once,
                // not a polling interval later.
                let next = if kind == EventKind::Load {
                    Tick::PollNow
                } else {
                    Tick::Done
                };
                if !outcome.rejected.is_empty() && !checked {
                    // A value too wide for its column may be a field Salesforce widened.
                    return match self.follow_schema(state, fence).await {
                        Ok(_) => next,
                        Err(error) => self.failed(state, kind, &error, took).await,
                    };
                }
                next
            }
            Err((kind, error)) => {
                let decision = error_policy::decide(&error).decision;
                if decision != Decision::CheckSchema || checked {
                    return self.failed(state, kind, &error, took).await;
                }
                state.budget.spend(1);
                ReadFailed {
                    mapping: self.mapping_id,
                    object,
                    kind,
                    error: &error,
                    verdict: error_policy::decide(&error),
                    took,
                }
                .emit(&self.bus, state.pg.as_ref())
                .await;
                match self.follow_schema(state, fence).await {
                    Ok(Followed::Waiting) => Tick::Done,
                    Ok(Followed::Current { changed: true }) => Tick::Retry(Duration::ZERO),
                    // Nothing changed that explains the error: the operator's to look at.
                    Ok(Followed::Current { changed: false }) => {
                        let message = error.chain();
                        self.show(MappingState::SystemError, &message).await;
                        Tick::Park(message)
                    }
                    Err(error) => self.failed(state, kind, &error, took).await,
                }
            }
        }
    }

    /// Hands a failed read to the error policy: shows it, and says when to try again or
    /// that the worker must park.
    async fn failed(
        &self,
        state: &mut ReaderState,
        kind: EventKind,
        error: &Error,
        took: Duration,
    ) -> Tick {
        state.budget.spend(1);
        let verdict = error_policy::decide(error);
        ReadFailed {
            mapping: self.mapping_id,
            object: &self.mapping.object,
            kind,
            error,
            verdict,
            took,
        }
        .emit(&self.bus, state.pg.as_ref())
        .await;
        let message = error.chain();
        match verdict.decision {
            // A field error the schema check did not explain stops the mapping too.
            Decision::StopMapping | Decision::CheckSchema => {
                self.show(MappingState::SystemError, &message).await;
                Tick::Park(message)
            }
            Decision::PauseConnection => {
                self.show_pause(state, error).await;
                Tick::Retry(state.backoff.next_wait())
            }
            Decision::Retry | Decision::FailRecord => {
                self.show_error(state, &message).await;
                Tick::Retry(state.backoff.next_wait())
            }
        }
    }

    /// Checks the object's schema and follows it: widened columns, then the rejected
    /// records read again; `SCHEMA_CHANGED` while mapped fields are gone; every record
    /// read again when they are back.
    async fn follow_schema(&self, state: &mut ReaderState, fence: &Fence) -> Result<Followed> {
        let object = self.mapping.object.as_str();
        let store = |e| Error::store(object, e);
        state.budget.spend(1);
        let mut pg = self.session(state).await?;
        let result =
            schema::check(&self.salesforce, &mut pg, &self.schema, &self.mapping.spec).await;
        state.schema.checked = Some(Instant::now());
        state.schema.again = false;
        let check = match result {
            Ok(check) => check,
            Err(error) => {
                if !pg.is_closed() {
                    state.pg = Some(pg);
                }
                return Err(error);
            }
        };
        let (mapping, widened, refused) = match check {
            SchemaCheck::Changed { problem } => {
                if state.schema.waiting.as_deref() != Some(problem.as_str()) {
                    SchemaFollowed {
                        mapping: self.mapping_id,
                        object,
                        news: SchemaNews::Changed(&problem),
                    }
                    .emit(&self.bus, Some(&pg))
                    .await;
                }
                mappings::set_state(
                    &pg,
                    self.mapping_id,
                    &MappingState::SchemaChanged,
                    Some(&problem),
                )
                .await
                .map_err(store)?;
                state.schema.waiting = Some(problem);
                state.pg = Some(pg);
                return Ok(Followed::Waiting);
            }
            SchemaCheck::Current {
                mapping,
                widened,
                refused,
            } => (mapping, widened, refused),
        };
        let back = state.schema.waiting.take().is_some();
        let changed = back || !widened.is_empty() || mapping.fields != state.mapping.fields;
        state.mapping = *mapping;
        if !widened.is_empty() {
            SchemaFollowed {
                mapping: self.mapping_id,
                object,
                news: SchemaNews::Widened(&widened),
            }
            .emit(&self.bus, Some(&pg))
            .await;
        }
        if let Some((columns, error)) = &refused {
            let verdict = error_policy::decide_widening(error);
            SchemaFollowed {
                mapping: self.mapping_id,
                object,
                news: SchemaNews::NotWidened {
                    columns,
                    error,
                    verdict,
                },
            }
            .emit(&self.bus, Some(&pg))
            .await;
            // Passing trouble: the widening is tried again at the next tick.
            state.schema.again = verdict.decision == Decision::Retry;
        }
        if back {
            SchemaFollowed {
                mapping: self.mapping_id,
                object,
                news: SchemaNews::Back,
            }
            .emit(&self.bus, Some(&pg))
            .await;
            // A field deleted and added again starts empty in Salesforce, without a new
            // SystemModstamp: only reading every record again brings the rows in line.
            cursors::clear(&pg, self.mapping_id).await.map_err(store)?;
            mappings::set_state(&pg, self.mapping_id, &MappingState::Resync, None)
                .await
                .map_err(store)?;
        } else if changed || state.schema.rejected_to_read {
            state.schema.rejected_to_read = true;
            self.retry_rejected(state, &mut pg, fence).await?;
            state.schema.rejected_to_read = false;
        }
        state.pg = Some(pg);
        Ok(Followed::Current { changed })
    }

    /// Reads the mapping's rejected records again by Id and stores those that fit now;
    /// clears the mapping's last error when none is left.
    async fn retry_rejected(
        &self,
        state: &mut ReaderState,
        pg: &mut Session,
        fence: &Fence,
    ) -> Result<()> {
        let object = self.mapping.object.as_str();
        let store = |e| Error::store(object, e);
        let ids = rejected::sfids(&*pg, self.mapping_id)
            .await
            .map_err(store)?;
        if ids.is_empty() {
            return Ok(());
        }
        let target = Target {
            schema: &self.schema,
            mapping: &state.mapping,
            mapping_id: self.mapping_id,
            fence: Some(fence),
        };
        let stored = refresh_records(&self.salesforce, pg, &target, &ids).await?;
        state.budget.spend(ids.len().div_ceil(200) as u64);
        let left = rejected::count(&*pg, self.mapping_id)
            .await
            .map_err(store)?;
        tracing::info!(object, stored, left, "rejected records read again");
        if left == 0 {
            mappings::set_error(&*pg, self.mapping_id, None)
                .await
                .map_err(store)?;
        }
        Ok(())
    }

    /// The worker's database session, opened again when it was lost.
    async fn session(&self, state: &mut ReaderState) -> Result<Session> {
        match state.pg.take() {
            Some(pg) if !pg.is_closed() => Ok(pg),
            _ => pgforce_store::connect(&self.database_url)
                .await
                .map_err(|e| Error::store(&self.mapping.object, e)),
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
        let mut pg = self
            .session(state)
            .await
            .map_err(|e| (EventKind::Poll, e))?;
        let kind = self
            .next_kind(&pg)
            .await
            .map_err(|e| (EventKind::Poll, e))?;
        let target = Target {
            schema: &self.schema,
            mapping: &state.mapping,
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
    /// The mapping as it is read now: as configured, with each field's type as its column
    /// holds it (the last schema check's).
    mapping: Mapping,
    /// Where following the object's schema stands.
    schema: SchemaWatch,
}

/// Where following the object's schema stands.
#[derive(Debug, Default)]
struct SchemaWatch {
    /// When describe was last compared with the table (`None`: not since the start).
    checked: Option<Instant>,
    /// Why the mapping waits in `SCHEMA_CHANGED`, while it does.
    waiting: Option<String>,
    /// Check again at the next tick (a widening failed for a passing reason).
    again: bool,
    /// The schema changed and the rejected records are still to be read again: a read that
    /// failed for a passing reason (a deadlock, a lost answer) is tried at the next check,
    /// which is due at the next tick. Without this, the next check finds the schema
    /// current and the records the old column refused stay refused.
    rejected_to_read: bool,
}

impl SchemaWatch {
    /// Whether the next tick checks the schema before it reads.
    fn due(&self, every: Duration) -> bool {
        self.again
            || self.rejected_to_read
            || self.waiting.is_some()
            || self.checked.is_none_or(|at| at.elapsed() >= every)
    }
}

/// What a schema check means for the reader.
enum Followed {
    /// The mapping can be read (`changed`: its columns or types changed, or its fields
    /// came back).
    Current { changed: bool },
    /// Mapped fields are gone: the mapping waits in `SCHEMA_CHANGED`.
    Waiting,
}

/// How a tick ended.
enum Tick {
    /// Next read after the interval.
    Done,
    /// A load finished: poll at once for what changed while it ran.
    PollNow,
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
