//! Running the catalog: a reader per mapping and a writer per connection with read-write
//! mappings, started, stopped and restarted as the catalog changes, until shutdown.
//!
//! Key concepts:
//! - **Desired and running.** Each round reads the catalog and works out which workers
//!   should run, each with a fingerprint of what it was started from (the revisions of its
//!   rows). A worker whose fingerprint changed is stopped and started again; one no longer
//!   wanted (its mapping paused or removed) is stopped.
//! - **Rounds** run when the catalog notifies a change (`pgforce_catalog` channel), when a
//!   worker ends, and every `catalog_poll` as a safety net.
//! - **Failures.** A worker that fails (or panics) is logged and started again after a
//!   backoff (1 s doubling to a minute). One the error policy parks (the operator must
//!   act) stays stopped until its catalog row changes. A mapping that cannot be resolved
//!   against the org shows `BAD_CONFIG` with the reason until it changes.
//! - **Shutdown.** Every worker is told to stop and awaited; none is left detached.
//! - **Housekeeping.** At start and every hour after a round, sync events older than the
//!   engine's `events_retention` are deleted.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgforce_store::catalog::connections::ConnectionRow;
use pgforce_store::catalog::mappings::{self, MappingRow};
use pgforce_store::catalog::{CATALOG_CHANNEL, NUDGE_CHANNEL, archive, connections, events};
use pgforce_store::notify::Listener;
use pgforce_store::{Access, ConnectionId, MappingId, MappingState, Session};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Engine;
use super::setup::{LiveConnection, LiveMapping};
use crate::archive::ArchiveWorker;
use crate::config::ChangeEvents;
use crate::error::{Error, Result};
use crate::error_policy::{self, Decision};
use crate::reader::schema;
use crate::reader::{ReaderWake, ReaderWorker};
use crate::subscriber::{EventTarget, SubscriberWorker};
use crate::worker::{Backoff, Exit};
use crate::writer::{WriteWorker, WriterMapping};

/// Which worker: a mapping's reader or a connection's writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WorkerKey {
    Reader(MappingId),
    Writer(ConnectionId),
    Subscriber(ConnectionId),
    Archive(i64),
}

/// A worker that should run, and how to start it.
struct Wanted {
    fingerprint: String,
    start: Starter,
}

enum Starter {
    Reader(Box<ReaderWorker>),
    Writer(Box<WriteWorker>),
    Subscriber(Box<SubscriberWorker>),
    Archive(Box<ArchiveWorker>),
}

/// A worker that runs (or is stopping).
struct Running {
    fingerprint: String,
    stop: watch::Sender<bool>,
}

/// What the supervisor knows between rounds.
#[derive(Default)]
struct Supervision {
    running: HashMap<WorkerKey, Running>,
    /// Task ids of running workers, to tell which one panicked.
    tasks: HashMap<tokio::task::Id, WorkerKey>,
    /// Workers the error policy stopped, with the fingerprint they stopped at.
    parked: HashMap<WorkerKey, String>,
    /// Workers that failed, and when they may start again.
    retry: HashMap<WorkerKey, (Instant, Backoff)>,
    /// Mappings resolved against the org, by id and the revisions they were resolved at.
    resolved: HashMap<MappingId, (String, LiveMapping)>,
    /// Mappings that do not fit the org, with the revisions they were checked at.
    bad_config: HashMap<MappingId, String>,
    /// Connections already reported as not runnable here.
    foreign: HashSet<ConnectionId>,
}

type Outcome = (WorkerKey, Result<Exit>);

/// How often old sync events are deleted (and once at start).
const PRUNE_EVENTS_EVERY: Duration = Duration::from_secs(3600);

/// Runs the catalog until `shutdown` turns true.
pub(super) async fn run(engine: &Engine, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    let poll = engine.shared.options.catalog_poll;
    let mut listener = listen(engine).await;
    let mut state = Supervision::default();
    let mut workers: JoinSet<Outcome> = JoinSet::new();
    let mut prune_at = Instant::now();
    let nudges = tokio::spawn(relay_nudges(engine.clone()));
    loop {
        if *shutdown.borrow() {
            break;
        }
        match engine.catalog_session().await {
            Ok(pg) => {
                if let Err(error) = round(engine, &pg, &mut state, &mut workers).await {
                    tracing::warn!(error = %error.chain(), "could not read the catalog; trying again");
                }
                if Instant::now() >= prune_at {
                    prune_events(engine, &pg).await;
                    prune_at = Instant::now() + PRUNE_EVENTS_EVERY;
                }
            }
            Err(error) => {
                tracing::warn!(error = %error.chain(), "could not reach the catalog; trying again");
            }
        }
        let next_retry = state
            .retry
            .values()
            .map(|(at, _)| at.saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(poll)
            .min(poll);
        tokio::select! {
            notified = notified(&mut listener) => {
                if !notified {
                    listener = listen(engine).await;
                }
                // Let a burst of catalog changes settle into one round.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some(finished) = workers.join_next_with_id() => ended(engine, &mut state, finished),
            () = tokio::time::sleep(next_retry) => {}
            _ = shutdown.changed() => {}
        }
    }
    stop_all(engine, &mut state, &mut workers).await;
    nudges.abort();
    Ok(())
}

/// Wakes the readers running here that a subscriber elsewhere asks to read (NOTIFY on
/// `pgforce_nudge`); listens again when the session is lost.
async fn relay_nudges(engine: Engine) {
    loop {
        match Listener::listen(&engine.shared.database_url, NUDGE_CHANNEL).await {
            Ok(mut listener) => {
                while listener.notified().await {
                    for payload in listener.take_payloads() {
                        if let Ok(id) = payload.parse::<i64>() {
                            engine.read_now(MappingId::from(id));
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), "cannot listen for read requests from other processes; their readers are woken by polls only");
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Tells every worker to stop and waits for them, at most the engine's shutdown time;
/// workers still running then are abandoned (their transactions roll back with their
/// sessions; what they had in flight is settled by the next start).
async fn stop_all(engine: &Engine, state: &mut Supervision, workers: &mut JoinSet<Outcome>) {
    for running in state.running.values() {
        let _ = running.stop.send(true);
    }
    let deadline = tokio::time::Instant::now() + engine.shared.options.shutdown;
    loop {
        match tokio::time::timeout_at(deadline, workers.join_next_with_id()).await {
            Ok(Some(finished)) => ended(engine, state, finished),
            Ok(None) => return,
            Err(_) => {
                let keys: Vec<String> = state.running.keys().map(|k| format!("{k:?}")).collect();
                tracing::warn!(workers = %keys.join(", "), "workers did not stop in time; abandoning them");
                workers.shutdown().await;
                return;
            }
        }
    }
}

/// Deletes sync events older than the engine's retention. A failure is logged and left
/// for the next hour's attempt: old events take room but stop nothing.
async fn prune_events(engine: &Engine, pg: &Session) {
    let retention = engine.shared.options.events_retention;
    match events::prune(pg, retention).await {
        Ok(0) => {}
        Ok(deleted) => {
            tracing::info!(
                deleted,
                retention_days = retention.as_secs() / 86_400,
                "old sync events deleted"
            );
        }
        Err(error) => {
            tracing::warn!(error = %crate::error::chain(&error), "could not delete old sync events; trying again in an hour");
        }
    }
}

/// A LISTEN session on the catalog channel, or none (the poll then does the work).
async fn listen(engine: &Engine) -> Option<Listener> {
    match Listener::listen(&engine.shared.database_url, CATALOG_CHANNEL).await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(error = %crate::error::chain(&error), "cannot listen for catalog changes; reading it every few seconds");
            None
        }
    }
}

/// Waits for a catalog notification; `false` when the session is gone. Without a
/// session, never returns.
async fn notified(listener: &mut Option<Listener>) -> bool {
    match listener {
        Some(listener) => listener.notified().await,
        None => std::future::pending().await,
    }
}

/// One round: work out what should run, stop what should not, start what should.
async fn round(
    engine: &Engine,
    pg: &Session,
    state: &mut Supervision,
    workers: &mut JoinSet<Outcome>,
) -> Result<()> {
    let wanted = wanted_workers(engine, pg, state).await?;
    for (key, running) in &state.running {
        let keep = wanted
            .get(key)
            .is_some_and(|w| w.fingerprint == running.fingerprint);
        if !keep {
            let _ = running.stop.send(true);
        }
    }
    state.parked.retain(|key, fingerprint| {
        wanted
            .get(key)
            .is_some_and(|w| w.fingerprint == *fingerprint)
    });
    let now = Instant::now();
    for (key, wanted) in wanted {
        let blocked = state.running.contains_key(&key)
            || state.parked.contains_key(&key)
            || state.retry.get(&key).is_some_and(|(at, _)| *at > now);
        if blocked {
            continue;
        }
        start(engine, state, workers, key, wanted);
    }
    Ok(())
}

/// Starts one worker with its own stop signal.
fn start(
    engine: &Engine,
    state: &mut Supervision,
    workers: &mut JoinSet<Outcome>,
    key: WorkerKey,
    wanted: Wanted,
) {
    let (stop, stopped) = watch::channel(false);
    let handle = match wanted.start {
        Starter::Reader(worker) => {
            let wakes = Arc::clone(&engine.shared);
            let mapping = worker.mapping_id;
            lock(&wakes.wakes).insert(mapping, Arc::clone(&worker.wake));
            workers.spawn(async move { (key, worker.run(stopped).await) })
        }
        Starter::Writer(worker) => workers.spawn(async move { (key, worker.run(stopped).await) }),
        Starter::Subscriber(worker) => {
            workers.spawn(async move { (key, worker.run(stopped).await) })
        }
        Starter::Archive(worker) => workers.spawn(async move { (key, worker.run(stopped).await) }),
    };
    state.tasks.insert(handle.id(), key);
    state.running.insert(
        key,
        Running {
            fingerprint: wanted.fingerprint,
            stop,
        },
    );
}

/// Handles a worker that ended: forgotten when stopped, parked when the policy says so,
/// started again after a backoff when it failed or panicked.
fn ended(
    engine: &Engine,
    state: &mut Supervision,
    finished: std::result::Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
) {
    let (key, result) = match finished {
        Ok((id, (key, result))) => {
            state.tasks.remove(&id);
            (key, result.map_err(|e| e.chain()))
        }
        Err(join_error) => {
            let Some(key) = state.tasks.remove(&join_error.id()) else {
                return;
            };
            (key, Err(format!("the worker panicked: {join_error}")))
        }
    };
    if let WorkerKey::Reader(mapping) = key {
        lock(&engine.shared.wakes).remove(&mapping);
    }
    let Some(running) = state.running.remove(&key) else {
        return;
    };
    match result {
        Ok(Exit::Stopped) => {
            state.retry.remove(&key);
        }
        Ok(Exit::Parked { reason }) => {
            tracing::error!(worker = ?key, reason = %reason, "worker stopped until its configuration changes");
            state.parked.insert(key, running.fingerprint);
        }
        Err(reason) => {
            let wait = retry_later(state, key);
            tracing::error!(worker = ?key, error = %reason, retry_in_ms = wait.as_millis() as u64, "worker failed; starting it again");
        }
    }
}

/// Schedules another attempt at `key` after a growing wait (1 s doubling to a minute);
/// returns the wait.
fn retry_later(state: &mut Supervision, key: WorkerKey) -> Duration {
    let (at, backoff) = state.retry.entry(key).or_insert_with(|| {
        (
            Instant::now(),
            Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        )
    });
    let wait = backoff.next_wait();
    *at = Instant::now() + wait;
    wait
}

/// The workers the catalog asks for, each with its fingerprint.
async fn wanted_workers(
    engine: &Engine,
    pg: &Session,
    state: &mut Supervision,
) -> Result<HashMap<WorkerKey, Wanted>> {
    let catalog = Error::catalog;
    let all_connections = connections::list(pg).await.map_err(catalog)?;
    let all_mappings = mappings::list(pg, None).await.map_err(catalog)?;
    let open_jobs = archive::open_jobs(pg).await.map_err(catalog)?;
    let mut wanted = HashMap::new();
    for connection in all_connections.iter().filter(|c| !c.paused) {
        let live = match engine.live(connection) {
            Ok(Some(live)) => live,
            Ok(None) => {
                if state.foreign.insert(connection.id) {
                    tracing::info!(connection = %connection.name, "no credentials for this connection here; another pgforce runs it");
                }
                continue;
            }
            Err(error) => {
                tracing::error!(connection = %connection.name, error = %error.chain(), "connection cannot run");
                continue;
            }
        };
        let rows: Vec<&MappingRow> = all_mappings
            .iter()
            .filter(|m| m.connection == connection.id)
            .collect();
        let mut writable = Vec::new();
        let mut waiting = Vec::new();
        let mut subscribed: HashMap<String, Vec<EventTarget>> = HashMap::new();
        // The revisions of the mappings the subscriber serves: it holds a copy of each
        // (whether it applies events, the table's shape), so any change restarts it.
        let mut served = Vec::new();
        for row in rows {
            let resolved = if row.paused {
                None
            } else {
                resolve_cached(engine, pg, state, connection, &live, row).await
            };
            let Some(mapping) = resolved else {
                if row.access == Access::ReadWrite {
                    waiting.push(row.table.clone());
                }
                continue;
            };
            for job in open_jobs
                .iter()
                .filter(|j| j.connection_id == connection.id)
                .filter(|j| j.object.eq_ignore_ascii_case(&mapping.mapping.object))
            {
                wanted.insert(
                    WorkerKey::Archive(job.id),
                    Wanted {
                        fingerprint: format!("{}/{}", connection.revision, row.revision),
                        start: Starter::Archive(Box::new(ArchiveWorker {
                            database_url: engine.shared.database_url.clone(),
                            salesforce: live.salesforce.clone(),
                            schema: live.schema.clone(),
                            mapping: mapping.mapping.clone(),
                            job: job.id,
                            lease: engine.shared.options.lease,
                        })),
                    },
                );
            }
            if row.access == Access::ReadWrite {
                writable.push(mapping.clone());
            }
            served.push(format!("{}@{}", row.id, row.revision));
            let applies = live.config.apply_events
                && row.access == Access::ReadOnly
                && mapping.mapping.references.is_empty();
            subscribed
                .entry(mapping.mapping.object.clone())
                .or_default()
                .push(EventTarget {
                    id: row.id,
                    apply: applies.then(|| Box::new(mapping.mapping.clone())),
                    written: written_fields(row.access, &mapping),
                });
            wanted.insert(
                WorkerKey::Reader(row.id),
                Wanted {
                    fingerprint: format!("{}/{}", connection.revision, row.revision),
                    start: Starter::Reader(Box::new(reader(engine, &live, mapping))),
                },
            );
        }
        if !writable.is_empty() {
            let fingerprint = writer_fingerprint(connection, &writable, &waiting);
            wanted.insert(
                WorkerKey::Writer(connection.id),
                Wanted {
                    fingerprint,
                    start: Starter::Writer(Box::new(writer(engine, &live, writable, waiting))),
                },
            );
        }
        if live.config.change_events != ChangeEvents::Off && !subscribed.is_empty() {
            served.sort();
            wanted.insert(
                WorkerKey::Subscriber(connection.id),
                Wanted {
                    fingerprint: format!("{}|{}", connection.revision, served.join(",")),
                    start: Starter::Subscriber(Box::new(subscriber(engine, &live, subscribed))),
                },
            );
        }
    }
    let live_ids: HashSet<MappingId> = all_mappings.iter().map(|m| m.id).collect();
    state.resolved.retain(|id, _| live_ids.contains(id));
    state.bad_config.retain(|id, _| live_ids.contains(id));
    Ok(wanted)
}

/// The fields pgforce sends when it updates a record of `mapping` (none for a read-only
/// mapping).
fn written_fields(access: Access, mapping: &LiveMapping) -> BTreeSet<String> {
    if access != Access::ReadWrite {
        return BTreeSet::new();
    }
    mapping
        .mapping
        .fields
        .iter()
        .filter(|f| f.updateable)
        .filter_map(|f| f.in_events.changed_field_name(&f.api_name))
        .collect()
}

/// A writer's fingerprint: its connection's revision and its mappings' settings (not their
/// revisions, which also grow with reload requests the writer does not care about).
fn writer_fingerprint(
    connection: &ConnectionRow,
    writable: &[LiveMapping],
    waiting: &[String],
) -> String {
    let mut parts: Vec<String> = writable
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m.row.id,
                m.row.settings.as_deref().unwrap_or_default()
            )
        })
        .collect();
    parts.sort();
    format!(
        "{}|{}|{}",
        connection.revision,
        parts.join(","),
        waiting.join(",")
    )
}

/// A mapping checked against the org, once per revision. A mapping that does not fit the
/// org is shown `BAD_CONFIG`; one that cannot be checked now (the org unreachable) is
/// tried again next round.
async fn resolve_cached(
    engine: &Engine,
    pg: &Session,
    state: &mut Supervision,
    connection: &ConnectionRow,
    live: &LiveConnection,
    row: &MappingRow,
) -> Option<LiveMapping> {
    let fingerprint = format!("{}/{}", connection.revision, row.revision);
    if let Some((at, resolved)) = state.resolved.get(&row.id)
        && *at == fingerprint
    {
        let mut resolved = resolved.clone();
        resolved.row = row.clone();
        return Some(resolved);
    }
    let key = WorkerKey::Reader(row.id);
    if state.bad_config.get(&row.id) == Some(&fingerprint)
        || state
            .retry
            .get(&key)
            .is_some_and(|(at, _)| *at > Instant::now())
    {
        return None;
    }
    match engine.live_mapping(live, row).await {
        Ok(resolved) => {
            state
                .resolved
                .insert(row.id, (fingerprint, resolved.clone()));
            Some(resolved)
        }
        Err(error) => {
            if let Some(problem) = schema::gone_from_org(pg, &live.schema, &row.table, &error).await
            {
                // Fields it synced are gone from the org: it waits for them (or for a
                // change of the mapping), checked again after a backoff.
                tracing::error!(object = %row.object, error = %problem, "mapping waits for its fields (SCHEMA_CHANGED)");
                if let Err(error) =
                    mappings::set_state(pg, row.id, &MappingState::SchemaChanged, Some(&problem))
                        .await
                {
                    tracing::warn!(error = %crate::error::chain(&error), "could not record the mapping's state");
                }
                retry_later(state, key);
                return None;
            }
            let verdict = error_policy::decide(&error);
            let message = error.chain();
            if verdict.decision == Decision::StopMapping {
                tracing::error!(object = %row.object, error = %message, hint = verdict.hint, "mapping cannot run");
                if let Err(error) =
                    mappings::set_state(pg, row.id, &MappingState::BadConfig, Some(&message)).await
                {
                    tracing::warn!(error = %crate::error::chain(&error), "could not record the mapping's state");
                }
                state.bad_config.insert(row.id, fingerprint);
            } else {
                tracing::warn!(object = %row.object, error = %message, hint = verdict.hint, "cannot check the mapping against the org now; trying again");
                retry_later(state, key);
            }
            None
        }
    }
}

fn reader(engine: &Engine, live: &LiveConnection, mapping: LiveMapping) -> ReaderWorker {
    let shared = &engine.shared;
    ReaderWorker {
        database_url: shared.database_url.clone(),
        salesforce: live.salesforce.clone(),
        schema: live.schema.clone(),
        mapping_id: mapping.row.id,
        connection_id: live.id,
        mapping: mapping.mapping,
        bus: shared.bus.clone(),
        progress: Some(engine.load_progress_sink(mapping.row.id)),
        wake: Arc::new(ReaderWake::default()),
        lease: shared.options.lease,
        overlap: std::time::Duration::from_secs(live.config.poll_overlap_seconds),
        schema_check: shared.options.schema_check,
    }
}

fn writer(
    engine: &Engine,
    live: &LiveConnection,
    writable: Vec<LiveMapping>,
    waiting: Vec<String>,
) -> WriteWorker {
    let shared = &engine.shared;
    WriteWorker {
        database_url: shared.database_url.clone(),
        connection: live.name().to_owned(),
        connection_id: Some(live.id),
        salesforce: live.salesforce.clone(),
        schema: live.schema.clone(),
        mappings: writable
            .into_iter()
            .map(|m| WriterMapping {
                id: m.row.id,
                mapping: m.mapping,
            })
            .collect(),
        waiting,
        policy: live.config.write_policy(),
        archive: live.config.archive_policy(),
        bus: shared.bus.clone(),
        lease: shared.options.lease,
    }
}

fn subscriber(
    engine: &Engine,
    live: &LiveConnection,
    objects: HashMap<String, Vec<EventTarget>>,
) -> SubscriberWorker {
    let shared = &engine.shared;
    let local = engine.clone();
    SubscriberWorker {
        database_url: shared.database_url.clone(),
        salesforce: live.salesforce.clone(),
        connection_id: live.id,
        connection: live.name().to_owned(),
        mode: live.config.change_events,
        pubsub_endpoint: live.config.pubsub_endpoint.clone(),
        schema: live.schema.clone(),
        objects,
        wake_local: Arc::new(move |mapping| local.read_now(mapping)),
        lease: shared.options.lease,
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
