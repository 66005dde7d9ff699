//! A connection's change-event subscriber as a long-running worker: it holds the
//! connection's subscriber lease, keeps one stream open (reopening it with backoff), wakes
//! the readers of the mappings its events concern and records where it stands.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pgforce_salesforce::Client;
use pgforce_salesforce::streaming::{EventBatch, ReplayId, StartAt, StreamError};
use pgforce_store::catalog::leases::{self, Fence};
use pgforce_store::catalog::subscriptions::{self, Transport};
use pgforce_store::{ConnectionId, Ident, MappingId, OwnWrite, Session};
use tokio::sync::watch;

use super::apply::{self, EventTarget};
use super::stream::{self, Stream};
use super::topics::{Coverage, Waker};
use crate::config::ChangeEvents;
use crate::error::Result;
use crate::worker::{Backoff, Exit, LeaseTiming};

/// Wakes a mapping's reader if it runs in this process and holds its lease; `false` when
/// no reader here can read it.
pub(crate) type WakeLocal = Arc<dyn Fn(MappingId) -> bool + Send + Sync>;

/// Whether Postgres refused a statement for good: it named an error outside the classes
/// that pass (40 transaction rollback, 53 insufficient resources, 57 operator
/// intervention, 08 connection exception). Errors without a SQLSTATE (a lost session, a
/// lost lease) are not.
fn refused_for_good(error: &pgforce_store::Error) -> bool {
    error
        .sqlstate()
        .is_some_and(|code| !["40", "53", "57", "08"].iter().any(|c| code.starts_with(c)))
}

/// Everything a connection's subscriber needs.
pub(crate) struct SubscriberWorker {
    pub database_url: String,
    pub salesforce: Client,
    pub connection_id: ConnectionId,
    /// The connection's name, for log lines.
    pub connection: String,
    pub mode: ChangeEvents,
    pub pubsub_endpoint: String,
    /// The connection's schema.
    pub schema: Ident,
    /// The mapped objects and the mappings of each.
    pub objects: HashMap<String, Vec<EventTarget>>,
    pub wake_local: WakeLocal,
    pub lease: LeaseTiming,
}

/// Why a stream ended.
enum Ended {
    Stopped,
    /// Open a new stream now (the lease changed hands, or the replay id expired).
    Reopen,
    Failed(StreamError),
}

impl SubscriberWorker {
    /// Subscribes until `stop` turns true.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) -> Result<Exit> {
        let keeper = leases::LeaseKeeper::start(
            &self.database_url,
            &leases::subscriber_lease(self.connection_id),
            &leases::holder_name(),
            self.lease.ttl,
            self.lease.heartbeat,
        );
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let mut coverage: Option<Coverage> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            let Some(fence) = keeper.fence() else {
                // Taken as soon as the keeper gets it (at start, at once): events must
                // flow as early as the readers' loads end.
                tokio::select! {
                    _ = keeper.wait_held(self.lease.heartbeat) => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            let coverage = match &mut coverage {
                Some(coverage) => coverage,
                None => coverage.insert(self.select_objects().await),
            };
            let wait = match self
                .subscribe(&fence, &keeper, &mut stop, &mut backoff, coverage)
                .await
            {
                Ended::Stopped => break,
                Ended::Reopen => Duration::ZERO,
                Ended::Failed(error) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(connection = %self.connection, error = %error, retry_in_s = wait.as_secs(), "change events are not flowing; polling alone until they do");
                    self.show_transport(None, None).await;
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        // Only the holder speaks for the mappings: a standby stopping must not blank what
        // the holder shows.
        if keeper.fence().is_some() {
            self.show_transport(None, None).await;
        }
        keeper.release().await;
        Ok(Exit::Stopped)
    }

    /// Selects every mapped object for Change Data Capture. An object Salesforce refuses
    /// (beyond the org's allocation, or not supported) gets its events from a PushTopic
    /// instead (see `topics`).
    async fn select_objects(&self) -> Coverage {
        let mut coverage = Coverage::default();
        for object in self.objects.keys() {
            if let Err(error) = self.salesforce.select_for_change_data_capture(object).await {
                tracing::warn!(connection = %self.connection, object = %object, error = %error, "could not select the object for Change Data Capture; trying a PushTopic");
                coverage
                    .fall_back(&self.salesforce, &self.connection, object)
                    .await;
            }
        }
        coverage
    }

    /// The mappings of `object`.
    fn mappings_of(&self, object: &str) -> Vec<MappingId> {
        self.objects
            .get(object)
            .into_iter()
            .flatten()
            .map(|t| t.id)
            .collect()
    }

    /// Opens a stream (trying each transport in turn) and takes its events in until it
    /// ends.
    async fn subscribe(
        &self,
        fence: &Fence,
        keeper: &leases::LeaseKeeper,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
        coverage: &Coverage,
    ) -> Ended {
        let mut pg = match pgforce_store::connect(&self.database_url).await {
            Ok(pg) => pg,
            Err(error) => {
                return Ended::Failed(StreamError::Transport(format!(
                    "cannot reach the catalog: {}",
                    crate::error::chain(&error)
                )));
            }
        };
        let (mut stream, start) = match self.open(&pg).await {
            Ok(opened) => opened,
            Err(error) => return Ended::Failed(error),
        };
        let transport = stream.transport();
        tracing::info!(connection = %self.connection, transport = transport.as_str(), "change events flowing");
        self.show_transport(Some(transport), Some(coverage)).await;
        if start == StartAt::Latest {
            self.read_the_gap(&pg).await;
        }
        // Objects beyond the Change Data Capture allocation listen on their topics while
        // this stream runs (dropping the set ends them).
        let waker = Waker {
            wake_local: Arc::clone(&self.wake_local),
            database_url: Arc::from(self.database_url.as_str()),
            connection: Arc::from(self.connection.as_str()),
        };
        let _topics = coverage.listen(&self.salesforce, |o| self.mappings_of(o), &waker);
        let lease = keeper.watch();
        let mut lease_check = tokio::time::interval(self.lease.heartbeat);
        loop {
            // The wait for the next batch is never dropped half-way (an answer being read
            // would be lost with it); only stopping or losing the lease ends it.
            let next = stream.next();
            tokio::pin!(next);
            let batch = loop {
                tokio::select! {
                    batch = &mut next => break batch,
                    _ = stop.changed() => return Ended::Stopped,
                    _ = lease_check.tick() => {
                        if lease.fence().as_ref() != Some(fence) {
                            return Ended::Reopen;
                        }
                    }
                }
            };
            match batch {
                Ok(batch) => {
                    backoff.reset();
                    if let Err(error) = self.take_in(&mut pg, fence, transport, batch).await {
                        return Ended::Failed(StreamError::Transport(format!(
                            "cannot record change events: {}",
                            crate::error::chain(&error)
                        )));
                    }
                }
                Err(StreamError::ReplayExpired(detail)) => {
                    self.replay_expired(&pg, &detail).await;
                    return Ended::Reopen;
                }
                Err(error) => return Ended::Failed(error),
            }
        }
    }

    /// Opens a stream on the first transport that works, after the stored replay id;
    /// returns it with where it started.
    async fn open(&self, pg: &Session) -> std::result::Result<(Stream, StartAt), StreamError> {
        let stored = subscriptions::load(pg, self.connection_id)
            .await
            .map_err(|e| StreamError::Transport(crate::error::chain(&e)))?;
        let mut last_error = StreamError::Unavailable("change events are off".to_owned());
        for &transport in stream::transports(self.mode) {
            // A replay id means something only to the transport that handed it out.
            let start = match &stored {
                Some(s) if s.transport == transport => s
                    .replay_id
                    .clone()
                    .map_or(StartAt::Latest, |id| StartAt::After(ReplayId(id))),
                _ => StartAt::Latest,
            };
            let opened = stream::open(
                transport,
                &self.salesforce,
                &self.pubsub_endpoint,
                start.clone(),
            )
            .await;
            match opened {
                Ok(stream) => return Ok((stream, start)),
                Err(StreamError::ReplayExpired(detail)) => {
                    self.replay_expired(pg, &detail).await;
                    return stream::open(
                        transport,
                        &self.salesforce,
                        &self.pubsub_endpoint,
                        StartAt::Latest,
                    )
                    .await
                    .map(|stream| (stream, StartAt::Latest));
                }
                Err(error) => {
                    tracing::info!(connection = %self.connection, transport = transport.as_str(), error = %error, "change-event transport not available");
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    /// A subscription that starts from the newest events (no stored replay id: the first
    /// start, a switch of transport, an expired id) carries nothing committed before it was
    /// established, such as changes made between a mapping's load and now: every mapping it
    /// serves reads once.
    async fn read_the_gap(&self, pg: &Session) {
        tracing::debug!(connection = %self.connection, "subscription starts from the newest events; every mapping reads once");
        for target in self.objects.values().flatten() {
            self.wake(pg, target.id).await;
        }
    }

    /// The stored replay id is gone from Salesforce: events in between may be lost, so
    /// every mapping reads from its cursor, and the subscription starts from the newest.
    async fn replay_expired(&self, pg: &Session, detail: &str) {
        tracing::warn!(connection = %self.connection, detail = %detail, "stored replay id expired; every mapping reads from its cursor and events start again from the newest");
        if let Err(error) = subscriptions::forget_replay(pg, self.connection_id).await {
            tracing::warn!(connection = %self.connection, error = %crate::error::chain(&error), "could not forget the expired replay id");
        }
        for target in self.objects.values().flatten() {
            self.wake(pg, target.id).await;
        }
    }

    /// Applies what the batch carries (mappings with `apply_events`) or wakes the readers
    /// it concerns, and records the replay id it reached in the same transaction. When
    /// Postgres refuses what the events carry for good (an app's trigger raises, a column
    /// no longer fits), the batch is recorded again without storing anything, and the
    /// readers read those records instead, so one refused record never stops the
    /// connection's events.
    async fn take_in(
        &self,
        pg: &mut Session,
        fence: &Fence,
        transport: Transport,
        batch: EventBatch,
    ) -> pgforce_store::Result<()> {
        let replay = batch
            .latest_replay_id
            .clone()
            .or_else(|| batch.events.last().map(|e| e.replay_id.clone()));
        if batch.events.is_empty() && replay.is_none() {
            return Ok(());
        }
        let replay = replay.as_ref().map(|r| r.0.as_slice());
        let outcome = match self
            .record(pg, fence, transport, &batch, replay, true)
            .await
        {
            Ok(outcome) => outcome,
            Err(error) if refused_for_good(&error) => {
                tracing::warn!(connection = %self.connection, error = %crate::error::chain(&error), "postgres refused what change events carried; their mappings read the records instead");
                self.record(pg, fence, transport, &batch, replay, false)
                    .await?
            }
            Err(error) => return Err(error),
        };
        // Woken after the commit: a reader woken before it could read ahead of the rows
        // the events stored, and stamp them older.
        for mapping in &outcome.wake {
            self.wake(pg, *mapping).await;
        }
        if outcome.applied > 0 {
            tracing::debug!(connection = %self.connection, records = outcome.applied, "stored from change events");
        }
        Ok(())
    }

    /// One transaction: what the batch carries stored (when `store_values`) or routed to
    /// the readers, and the replay id it reached recorded.
    async fn record(
        &self,
        pg: &mut Session,
        fence: &Fence,
        transport: Transport,
        batch: &EventBatch,
        replay: Option<&[u8]>,
        store_values: bool,
    ) -> pgforce_store::Result<apply::Outcome> {
        let received = i64::try_from(batch.events.len()).unwrap_or(i64::MAX);
        let tx = OwnWrite::untabled().fenced(Some(fence)).begin(pg).await?;
        let outcome = apply::apply(
            &tx,
            &self.schema,
            &self.objects,
            &batch.events,
            store_values,
        )
        .await?;
        let concerned: Vec<MappingId> = outcome.concerned.iter().copied().collect();
        subscriptions::record_events(
            &*tx,
            self.connection_id,
            transport,
            replay,
            received,
            &concerned,
        )
        .await?;
        tx.commit("recording change events").await?;
        Ok(outcome)
    }

    /// Wakes a reader here when it holds its lease, else through the catalog (a NOTIFY on
    /// `pgforce_nudge` reaches the process whose reader holds it).
    async fn wake(&self, pg: &Session, mapping: MappingId) {
        if (self.wake_local)(mapping) {
            return;
        }
        if let Err(error) = subscriptions::nudge(pg, mapping).await {
            tracing::warn!(connection = %self.connection, mapping = %mapping, error = %crate::error::chain(&error), "could not wake the reader; its next poll reads the change");
        }
    }

    /// Shows on the mappings' rows whether events keep them fresh: `transport` on those
    /// Change Data Capture covers (by `coverage`; all when `None`), or nothing on all.
    async fn show_transport(&self, transport: Option<Transport>, coverage: Option<&Coverage>) {
        let mappings: Vec<MappingId> = self
            .objects
            .iter()
            .filter(|(object, _)| coverage.is_none_or(|c| c.by_change_data_capture(object)))
            .flat_map(|(_, targets)| targets.iter().map(|t| t.id))
            .collect();
        let shown = async {
            let pg = pgforce_store::connect(&self.database_url).await?;
            subscriptions::show_transport(&pg, &mappings, transport).await
        };
        if let Err(error) = shown.await {
            tracing::warn!(connection = %self.connection, error = %crate::error::chain(&error), "could not show the change-event transport on the mappings");
        }
    }
}
