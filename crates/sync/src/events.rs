//! What the engine tells about its work, each in one wording.
//!
//! An observable event is a struct here whose `emit` does everything that event means at
//! once: the log line, the row in `pgforce.sync_events`, the metrics (`crate::metrics`),
//! the notification an operator should get (`crate::notifications`) and the [`Event`]
//! sent to subscribers ([`crate::Engine::subscribe`]: the demo, later
//! the dashboard).
//! Workers never write those three themselves, so the same event cannot be worded two
//! ways or recorded in one place and not another.

use std::sync::Arc;
use std::time::Duration;

use pgforce_store::catalog::events::{self as store_events, SyncEvent};
use pgforce_store::ddl::ColumnSpec;
use pgforce_store::{MappingId, Session};
use tokio::sync::broadcast;

pub use pgforce_store::catalog::events::{EventKind, EventOutcome};

use crate::error::Error;
use crate::error_policy::{Decision, Verdict};
use crate::metrics::Metrics;
use crate::notifications::{self, kind};
use crate::outcome::{ReadOutcome, WriteOutcome};
use pgforce_store::catalog::notifications::About;

/// One thing the engine did, as subscribers see it: a sync event row.
pub type Event = SyncEvent;

/// Where events go besides the log: the catalog, the metrics and the subscribers.
#[derive(Debug, Clone)]
pub(crate) struct EventBus {
    sender: broadcast::Sender<Event>,
    metrics: Arc<Metrics>,
}

impl EventBus {
    /// A bus keeping up to `capacity` events for slow subscribers.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
            metrics: Arc::default(),
        }
    }

    /// The counters the events feed.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A new subscriber (it sees events sent from now on).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Records an event in the catalog (when a session is at hand), counts it and tells
    /// subscribers.
    async fn publish(&self, pg: Option<&Session>, event: Event) {
        self.metrics.event(&event);
        if let Some(pg) = pg
            && let Err(error) = store_events::record(pg, &event).await
        {
            tracing::warn!(error = %crate::error::chain(&error), "could not record a sync event");
        }
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }
}

/// A load or poll that finished.
pub(crate) struct ReadDone<'a> {
    pub mapping: MappingId,
    pub object: &'a str,
    pub kind: EventKind,
    pub outcome: &'a ReadOutcome,
    pub took: Duration,
}

impl ReadDone<'_> {
    pub(crate) async fn emit(self, bus: &EventBus, pg: Option<&Session>) {
        let outcome = self.outcome;
        let message = outcome.rejected_summary();
        match &message {
            Some(message) => {
                tracing::error!(object = self.object, error = %message, "records rejected");
            }
            None if outcome.applied + outcome.deleted > 0 => tracing::info!(
                object = self.object,
                kind = self.kind.as_str(),
                applied = outcome.applied,
                deleted = outcome.deleted,
                api_calls = outcome.api_calls,
                took_ms = self.took.as_millis() as u64,
                "records read from Salesforce"
            ),
            None => tracing::debug!(
                object = self.object,
                kind = self.kind.as_str(),
                "nothing changed"
            ),
        }
        let event = Event {
            mapping: self.mapping,
            object: self.object.to_owned(),
            kind: self.kind,
            records: outcome.applied + outcome.deleted,
            api_calls: outcome.api_calls,
            duration: self.took,
            outcome: if outcome.rejected.is_empty() {
                EventOutcome::Ok
            } else {
                EventOutcome::Rejected
            },
            message,
        };
        bus.publish(pg, event).await;
    }
}

/// A load or poll that failed, with what the error policy decided.
pub(crate) struct ReadFailed<'a> {
    pub mapping: MappingId,
    pub object: &'a str,
    pub kind: EventKind,
    pub error: &'a Error,
    pub verdict: Verdict,
    pub took: Duration,
}

impl ReadFailed<'_> {
    pub(crate) async fn emit(self, bus: &EventBus, pg: Option<&Session>) {
        let error = self.error.chain();
        let hint = self.verdict.hint;
        match self.verdict.decision {
            Decision::StopMapping => {
                tracing::error!(object = self.object, error = %error, hint, "mapping stopped");
                let subject = format!("mapping {}", self.object);
                let message = format!("mapping {} stopped: {error} ({hint})", self.object);
                notifications::raise(
                    pg,
                    About::Mapping(self.mapping),
                    kind::MAPPING_ERROR,
                    &subject,
                    &message,
                )
                .await;
            }
            Decision::PauseConnection => {
                tracing::warn!(object = self.object, error = %error, hint, "reading paused; retrying later");
            }
            Decision::CheckSchema => {
                tracing::warn!(object = self.object, error = %error, hint, "read failed on a field; checking the object's schema");
            }
            Decision::Retry | Decision::FailRecord => {
                tracing::warn!(object = self.object, error = %error, hint, "sync failed; retrying");
            }
        }
        let event = Event {
            mapping: self.mapping,
            object: self.object.to_owned(),
            kind: self.kind,
            records: 0,
            api_calls: 1,
            duration: self.took,
            outcome: EventOutcome::Error,
            message: Some(error),
        };
        bus.publish(pg, event).await;
    }
}

/// What following an object's schema changed for its mapping.
pub(crate) enum SchemaNews<'a> {
    /// Columns widened to what Salesforce's fields now hold.
    Widened(&'a [ColumnSpec]),
    /// Columns that needed widening and that Postgres would not widen.
    NotWidened {
        columns: &'a [ColumnSpec],
        error: &'a pgforce_store::Error,
        verdict: Verdict,
    },
    /// Mapped fields are gone or changed beyond their columns: the mapping waits.
    Changed(&'a str),
    /// The fields are back: every record is read again.
    Back,
}

/// A schema check of a mapping's object that changed something.
pub(crate) struct SchemaFollowed<'a> {
    pub mapping: MappingId,
    pub object: &'a str,
    pub news: SchemaNews<'a>,
}

impl SchemaFollowed<'_> {
    pub(crate) async fn emit(self, bus: &EventBus, pg: Option<&Session>) {
        let object = self.object;
        let columns = |columns: &[ColumnSpec]| {
            columns
                .iter()
                .map(|c| format!("{} to {}", c.name.as_str(), c.pg_type))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (outcome, message) = match self.news {
            SchemaNews::Widened(widened) => {
                let message = format!(
                    "Salesforce widened fields: column(s) widened: {}",
                    columns(widened)
                );
                tracing::info!(object, columns = %columns(widened), "columns widened as their fields were in Salesforce");
                (EventOutcome::Ok, message)
            }
            SchemaNews::NotWidened {
                columns: wanted,
                error,
                verdict,
            } => {
                let message = format!(
                    "could not widen column(s) {}: {}",
                    columns(wanted),
                    crate::error::chain(error)
                );
                tracing::warn!(object, error = %message, hint = verdict.hint, "columns not widened");
                (EventOutcome::Error, message)
            }
            SchemaNews::Changed(problem) => {
                tracing::error!(object, error = %problem, "mapping waits for its fields (SCHEMA_CHANGED)");
                let subject = format!("mapping {object}");
                notifications::raise(
                    pg,
                    About::Mapping(self.mapping),
                    kind::SCHEMA_CHANGED,
                    &subject,
                    problem,
                )
                .await;
                (EventOutcome::Error, problem.to_owned())
            }
            SchemaNews::Back => {
                tracing::info!(object, "mapped fields are back; reading every record again");
                (
                    EventOutcome::Ok,
                    "mapped fields are back; reading every record again".to_owned(),
                )
            }
        };
        let event = Event {
            mapping: self.mapping,
            object: object.to_owned(),
            kind: EventKind::Poll,
            records: 0,
            api_calls: 1,
            duration: Duration::ZERO,
            outcome,
            message: Some(message),
        };
        bus.publish(pg, event).await;
    }
}

/// A writer pass that did something, reported per mapping it wrote for.
pub(crate) struct WritePass<'a> {
    pub connection: &'a str,
    /// The connection's read-write mappings: id, object, table.
    pub mappings: &'a [(MappingId, String, String)],
    pub outcome: &'a WriteOutcome,
    pub took: Duration,
}

impl WritePass<'_> {
    pub(crate) async fn emit(self, bus: &EventBus, pg: Option<&Session>) {
        let outcome = self.outcome;
        if outcome.is_idle() {
            return;
        }
        bus.metrics.writer_pass(
            self.connection,
            outcome.api_calls,
            outcome.succeeded,
            outcome.failed,
        );
        if outcome.failed > 0 {
            let subject = format!("connection {}", self.connection);
            let message = format!(
                "Salesforce refused {} change(s) of connection {}; the connection's errors list them",
                outcome.failed, self.connection
            );
            notifications::raise(
                pg,
                About::Connection(self.connection),
                kind::WRITE_ERRORS,
                &subject,
                &message,
            )
            .await;
        }
        let message = (outcome.failed + outcome.held + outcome.retried > 0).then(|| {
            format!(
                "{} failed, {} held back, {} to send again",
                outcome.failed, outcome.held, outcome.retried
            )
        });
        tracing::debug!(
            connection = self.connection,
            succeeded = outcome.succeeded,
            failed = outcome.failed,
            merged = outcome.merged,
            held = outcome.held,
            retried = outcome.retried,
            in_doubt = outcome.in_doubt,
            api_calls = outcome.api_calls,
            took_ms = self.took.as_millis() as u64,
            "writer pass"
        );
        for (mapping, object, table) in self.mappings {
            let records = outcome.by_table.get(table).copied().unwrap_or(0);
            if records == 0 && message.is_none() {
                continue;
            }
            let event = Event {
                mapping: *mapping,
                object: object.clone(),
                kind: EventKind::Write,
                records,
                api_calls: outcome.api_calls,
                duration: self.took,
                outcome: if outcome.failed > 0 {
                    EventOutcome::Rejected
                } else {
                    EventOutcome::Ok
                },
                message: message.clone(),
            };
            bus.publish(pg, event).await;
        }
    }
}

/// A connection's writer paused for an org-wide condition, or resumed after it.
pub(crate) struct ConnectionPaused<'a> {
    pub connection: &'a str,
    /// The connection's read-write mappings: id, object, table.
    pub mappings: &'a [(MappingId, String, String)],
    pub pause: &'a crate::error_policy::Pause,
    /// How long the pause lasted, once it is over.
    pub resumed_after: Option<Duration>,
}

impl ConnectionPaused<'_> {
    pub(crate) async fn emit(self, bus: &EventBus, pg: Option<&Session>) {
        let (outcome, message, duration) = match self.resumed_after {
            None => {
                tracing::warn!(connection = self.connection, state = %self.pause.state, reason = %self.pause.reason, "connection paused: its changes wait until the org answers again");
                let subject = format!("connection {}", self.connection);
                let message = format!(
                    "connection {} paused ({}): {}; its changes wait and are sent once the org answers again",
                    self.connection, self.pause.state, self.pause.reason
                );
                notifications::raise(
                    pg,
                    About::Connection(self.connection),
                    kind::CONNECTION_PAUSED,
                    &subject,
                    &message,
                )
                .await;
                (
                    EventOutcome::Error,
                    format!(
                        "connection paused ({}): {}",
                        self.pause.state, self.pause.reason
                    ),
                    Duration::ZERO,
                )
            }
            Some(after) => {
                tracing::info!(connection = self.connection, state = %self.pause.state, paused_s = after.as_secs(), "connection resumed");
                (
                    EventOutcome::Ok,
                    format!(
                        "connection resumed after {} s ({})",
                        after.as_secs(),
                        self.pause.state
                    ),
                    after,
                )
            }
        };
        for (mapping, object, _) in self.mappings {
            let event = Event {
                mapping: *mapping,
                object: object.clone(),
                kind: EventKind::Write,
                records: 0,
                api_calls: 0,
                duration,
                outcome,
                message: Some(message.clone()),
            };
            bus.publish(pg, event).await;
        }
    }
}

/// A worker took its lease, or lost it to another process.
pub(crate) struct LeaseChanged<'a> {
    /// `reader Account` or `writer main`.
    pub worker: &'a str,
    pub held: bool,
}

impl LeaseChanged<'_> {
    pub(crate) fn emit(self) {
        if self.held {
            tracing::info!(worker = self.worker, "lease held; working");
        } else {
            tracing::info!(
                worker = self.worker,
                "another pgforce holds this work; standing by"
            );
        }
    }
}
