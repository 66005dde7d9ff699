//! Running the configured connections: set up every mapping, then one reader per
//! mapping that loads it once and polls it on its interval, and one writer per connection
//! with read-write mappings ([`crate::write_worker`]), until shutdown.
//!
//! Key concepts:
//! - **Fail fast on configuration.** [`prepare`] logs in, describes every mapped object
//!   and resolves every mapping before any worker starts, so a wrong object or field stops
//!   `pgforce run` at once with the mapping and field named.
//! - **Leases.** Each reader holds `reader:<mapping id>` in `pgforce.leases` (15 s,
//!   renewed every 2 s): with several `pgforce run` on one catalog each mapping is read by
//!   one of them, and another takes over when it dies.
//! - **Shutdown.** Workers watch one channel; a worker finishes the poll page it is
//!   applying (each page is one transaction) and then stops. Workers live in a `JoinSet`
//!   that [`run`] awaits.
//! - **Errors.** Retryable ones (network, 5xx, lost database connection) are logged and
//!   retried on the next interval; others put the mapping in `SYSTEM_ERROR` with the
//!   message and stop its worker.

use std::time::{Duration, Instant};

use pgforce_salesforce::{ApiErrorCode, Client};
use pgforce_store::cursor::{
    SyncEvent, clear_cursor, ensure_connection, ensure_mapping, imported_mappings, load_cursor,
    record_event, set_mapping_state,
};
use pgforce_store::ddl::{Access, TableChange, create_mapped_table, ensure_connection_schema};
use pgforce_store::{Ident, lease};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::ConnectionConfig;
use crate::error::{Error, Result};
use crate::hc_json;
use crate::mapping::Mapping;
use crate::reader::{ReadOutcome, Target, initial_load, poll_once};
use crate::write_worker::WriteWorker;
use crate::writer::WritePolicy;

/// A connection ready to run: logged in, mappings resolved, tables in place.
#[derive(Debug)]
pub struct PreparedConnection {
    /// The connection's name.
    pub name: String,
    /// Its Salesforce client.
    pub salesforce: Client,
    /// Its schema.
    pub schema: Ident,
    /// Its mappings with their catalog ids.
    pub mappings: Vec<(Mapping, i64)>,
    /// How its writer groups changes.
    pub write_policy: WritePolicy,
    /// How long processed trigger-log rows stay before they are archived.
    pub archive_after: Duration,
    /// How long the archive keeps rows.
    pub archive_retention: Duration,
}

fn config_error(object: &str, problem: String) -> Error {
    Error::Config {
        object: object.to_owned(),
        problem,
    }
}

/// Checks and sets up every connection: catalog, schemas, tables, catalog rows.
pub async fn prepare(
    database_url: &str,
    connections: &[ConnectionConfig],
) -> Result<Vec<PreparedConnection>> {
    let store = |source| Error::Store {
        object: "catalog".to_owned(),
        source,
    };
    let mut pg = pgforce_store::connect(database_url).await.map_err(store)?;
    pgforce_store::catalog::migrate(&mut pg)
        .await
        .map_err(store)?;
    let mut prepared = Vec::with_capacity(connections.len());
    for connection in connections {
        let connection = &with_imported_mappings(&pg, connection).await?;
        let config = connection
            .client_config()
            .map_err(|problem| config_error("(connection)", problem))?;
        let salesforce =
            Client::new(config).map_err(|e| config_error("(connection)", e.to_string()))?;
        let schema = Ident::new(&connection.schema).map_err(|e| {
            config_error(
                "(connection)",
                format!("connection {}: schema: {e}", connection.name),
            )
        })?;
        let mut mappings = Vec::with_capacity(connection.mappings.len());
        for mapping in &connection.mappings {
            let spec = mapping
                .spec(&connection.name)
                .map_err(|problem| config_error(&mapping.object, problem))?;
            let describe =
                salesforce
                    .describe(&mapping.object)
                    .await
                    .map_err(|source| match source.code() {
                        Some(ApiErrorCode::NotFound) => config_error(
                            &mapping.object,
                            format!("object {} does not exist in the org", mapping.object),
                        ),
                        _ => Error::Salesforce {
                            object: mapping.object.clone(),
                            source: Box::new(source),
                        },
                    })?;
            mappings.push(Mapping::resolve(spec, &describe)?);
        }
        let store = |object: &str| {
            let object = object.to_owned();
            move |source| Error::Store { object, source }
        };
        ensure_connection_schema(&pg, &schema)
            .await
            .map_err(store("(schema)"))?;
        let connection_id = ensure_connection(&pg, &connection.name, schema.as_str())
            .await
            .map_err(store("(connection)"))?;
        let mut registered = Vec::with_capacity(mappings.len());
        for mapping in mappings {
            let change = create_mapped_table(&mut pg, &mapping.table_spec(&schema))
                .await
                .map_err(store(&mapping.object))?;
            let read_write = mapping.spec.access == Access::ReadWrite;
            let id = ensure_mapping(
                &pg,
                connection_id,
                &mapping.object,
                mapping.table.as_str(),
                read_write,
            )
            .await
            .map_err(store(&mapping.object))?;
            if let TableChange::Altered(added) = &change
                && !added.is_empty()
            {
                // New columns: forget the cursor but keep the rows, so the next pass
                // re-reads every record and fills the new columns in place (ids kept).
                let names: Vec<&str> = added.iter().map(Ident::as_str).collect();
                tracing::info!(object = %mapping.object, columns = %names.join(", "), "fields added; back-filling");
                clear_cursor(&pg, id)
                    .await
                    .map_err(store(&mapping.object))?;
                set_mapping_state(&pg, id, "RESYNC", None)
                    .await
                    .map_err(store(&mapping.object))?;
            }
            registered.push((mapping, id));
        }
        prepared.push(PreparedConnection {
            name: connection.name.clone(),
            salesforce,
            schema,
            mappings: registered,
            write_policy: WritePolicy {
                algorithm: connection.write_algorithm,
                on_insert_failure: connection.on_insert_failure,
                bulk_threshold: connection.bulk_write_threshold,
            },
            archive_after: Duration::from_secs(connection.archive_after_seconds),
            archive_retention: Duration::from_secs(
                connection.archive_retention_days.saturating_mul(86_400),
            ),
        });
    }
    Ok(prepared)
}

/// The connection with the mappings imported into the catalog added (the config file's
/// own mapping of an object wins over an imported one).
async fn with_imported_mappings(
    pg: &tokio_postgres::Client,
    connection: &ConnectionConfig,
) -> Result<ConnectionConfig> {
    let imported = imported_mappings(pg, &connection.name)
        .await
        .map_err(|source| Error::Store {
            object: "(catalog)".to_owned(),
            source,
        })?;
    let mut merged = connection.clone();
    for (object, config) in imported {
        if merged
            .mappings
            .iter()
            .any(|m| m.object.eq_ignore_ascii_case(&object))
        {
            continue;
        }
        let config: serde_json::Value = serde_json::from_str(&config).map_err(|e| {
            config_error(&object, format!("imported configuration is not JSON: {e}"))
        })?;
        let config = config.as_object().ok_or_else(|| {
            config_error(
                &object,
                "imported configuration is not an object".to_owned(),
            )
        })?;
        merged.mappings.push(
            hc_json::mapping_config(&object, config)
                .map_err(|problem| config_error(&object, problem))?,
        );
    }
    Ok(merged)
}

/// Told how far initial loads have got: `(object, records loaded so far, done)`.
pub type LoadProgress = std::sync::Arc<dyn Fn(&str, u64, bool) + Send + Sync>;

/// Runs a reader per mapping and a writer per connection with read-write mappings, until
/// `shutdown` turns true.
pub async fn run(
    database_url: &str,
    connections: Vec<PreparedConnection>,
    shutdown: watch::Receiver<bool>,
    progress: Option<LoadProgress>,
) -> Result<()> {
    let mut workers = JoinSet::new();
    for connection in connections {
        let writable: Vec<(Mapping, i64)> = connection
            .mappings
            .iter()
            .filter(|(m, _)| m.spec.access == Access::ReadWrite)
            .cloned()
            .collect();
        if !writable.is_empty() {
            let writer = WriteWorker {
                database_url: database_url.to_owned(),
                connection: connection.name.clone(),
                salesforce: connection.salesforce.clone(),
                schema: connection.schema.clone(),
                mappings: writable,
                policy: connection.write_policy,
                archive_after: connection.archive_after,
                archive_retention: connection.archive_retention,
            };
            workers.spawn(writer.run(shutdown.clone()));
        }
        for (mapping, id) in connection.mappings {
            let worker = Worker {
                database_url: database_url.to_owned(),
                pg: None,
                budget: DailyBudget::default(),
                mapping_max_daily_calls: mapping.spec.max_daily_api_calls,
                progress: progress.clone(),
                salesforce: connection.salesforce.clone(),
                schema: connection.schema.clone(),
                mapping,
                mapping_id: id,
            };
            workers.spawn(worker.run(shutdown.clone()));
        }
    }
    while let Some(finished) = workers.join_next().await {
        if let Ok(Err(error)) = finished {
            tracing::error!(error = %error, "a mapping stopped");
        }
    }
    Ok(())
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

/// How long a reader lease lasts without renewal, and how often it is renewed.
const LEASE_TTL: Duration = Duration::from_secs(15);
const LEASE_HEARTBEAT: Duration = Duration::from_secs(2);

/// Polls pause while the org has used this share of its daily API allocation.
const ORG_USAGE_CEILING_PERCENT: u64 = 95;

struct Worker {
    database_url: String,
    /// Calls this mapping has made today; polls stop at `max_daily_api_calls`.
    budget: DailyBudget,
    /// The mapping's `max_daily_api_calls`.
    mapping_max_daily_calls: u64,
    /// Where load progress goes (the CLI's progress bars).
    progress: Option<LoadProgress>,
    /// The worker's database connection, reopened after it is lost.
    pg: Option<tokio_postgres::Client>,
    salesforce: Client,
    schema: Ident,
    mapping: Mapping,
    mapping_id: i64,
}

impl Worker {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let object = self.mapping.object.clone();
        let interval = Duration::from_secs(self.mapping.spec.polling_seconds.max(1));
        let keeper = lease::LeaseKeeper::start(
            &self.database_url,
            &format!("reader:{}", self.mapping_id),
            &lease::holder_name(),
            LEASE_TTL,
            LEASE_HEARTBEAT,
        );
        let mut next_sync = Instant::now();
        let mut standing_by = true;
        loop {
            if *shutdown.borrow() {
                keeper.release().await;
                return Ok(());
            }
            if keeper.is_held() {
                if standing_by {
                    tracing::debug!(object = %object, "reader lease held");
                    standing_by = false;
                    next_sync = Instant::now();
                }
                if Instant::now() >= next_sync {
                    next_sync = Instant::now() + interval;
                    if let Err(error) = self.tick(&object).await {
                        keeper.release().await;
                        return Err(error);
                    }
                }
            } else if !standing_by {
                tracing::info!(object = %object, "another pgforce reads this mapping; standing by");
                standing_by = true;
            }
            let wait = next_sync
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(100), LEASE_HEARTBEAT);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {
                    keeper.release().await;
                    return Ok(());
                }
            }
        }
    }

    /// One load or poll, unless paused. `Err` only when the mapping must stop (its state
    /// is then SYSTEM_ERROR with the message); retryable failures wait for the next tick.
    async fn tick(&mut self, object: &str) -> Result<()> {
        if let Some(reason) = self.paused() {
            tracing::warn!(object = %object, reason = %reason, "polling paused");
            return Ok(());
        }
        let started = Instant::now();
        let result = self.sync_once().await;
        self.record(&result, started.elapsed()).await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.is_retryable() => {
                tracing::warn!(object = %object, error = %error, "sync failed; retrying next interval");
                Ok(())
            }
            Err(error) => {
                tracing::error!(object = %object, error = %error, "mapping stopped");
                if let Ok(pg) = pgforce_store::connect(&self.database_url).await {
                    let source = std::error::Error::source(&error)
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    let message = format!("{error}: {source}");
                    let _ = set_mapping_state(&pg, self.mapping_id, "SYSTEM_ERROR", Some(&message))
                        .await;
                }
                Err(error)
            }
        }
    }

    /// Why this tick should not call Salesforce: the mapping's daily budget is spent, or
    /// the org is close to its daily allocation.
    fn paused(&mut self) -> Option<String> {
        let max = self.mapping_max_daily_calls;
        if self.budget.used() >= max {
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

    /// Spends the calls on the budget and appends the outcome to the sync event log.
    async fn record(&mut self, result: &Result<(&'static str, ReadOutcome)>, took: Duration) {
        let (kind, records, calls, outcome, message) = match result {
            Ok((kind, o)) => {
                let message = o.rejected.first().map(|r| {
                    format!(
                        "{} rejected; first {} {}: {}",
                        o.rejected.len(),
                        r.sfid,
                        r.field,
                        r.reason
                    )
                });
                let outcome = if o.rejected.is_empty() {
                    "ok"
                } else {
                    "rejected"
                };
                (*kind, o.applied + o.deleted, o.api_calls, outcome, message)
            }
            Err(error) => ("poll", 0, 1, "error", Some(error.to_string())),
        };
        self.budget.spend(calls);
        let Some(pg) = &self.pg else { return };
        let event = SyncEvent {
            mapping: self.mapping_id,
            kind,
            direction: "sf_to_pg",
            records: i64::try_from(records).unwrap_or(i64::MAX),
            api_calls: i64::try_from(calls).unwrap_or(i64::MAX),
            duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
            outcome,
            message: message.as_deref(),
        };
        if let Err(error) = record_event(pg, &event).await {
            tracing::warn!(error = %error, "could not record a sync event");
        }
    }

    /// Loads the mapping if it never was, else polls it.
    async fn sync_once(&mut self) -> Result<(&'static str, ReadOutcome)> {
        let store = |source| Error::Store {
            object: self.mapping.object.clone(),
            source,
        };
        let mut pg = match self.pg.take() {
            Some(pg) if !pg.is_closed() => pg,
            _ => pgforce_store::connect(&self.database_url)
                .await
                .map_err(store)?,
        };
        let result = self.sync_with(&mut pg).await;
        if result.is_ok() {
            self.pg = Some(pg);
        }
        result
    }

    async fn sync_with(
        &self,
        pg: &mut tokio_postgres::Client,
    ) -> Result<(&'static str, ReadOutcome)> {
        let store = |source| Error::Store {
            object: self.mapping.object.clone(),
            source,
        };
        let target = Target {
            schema: &self.schema,
            mapping: &self.mapping,
            mapping_id: self.mapping_id,
        };
        let cursor = load_cursor(&*pg, self.mapping_id).await.map_err(store)?;
        if cursor.is_none() {
            let count: i64 = pg
                .query_one(
                    &format!(
                        "select count(*) from {}.{}",
                        self.schema, self.mapping.table
                    ),
                    &[],
                )
                .await
                .map_err(|source| Error::Postgres {
                    object: self.mapping.object.clone(),
                    context: "counting rows".to_owned(),
                    source,
                })?
                .get(0);
            if count == 0 {
                let object = self.mapping.object.clone();
                let report = |done: u64, finished: bool| {
                    if let Some(progress) = &self.progress {
                        progress(&object, done, finished);
                    }
                };
                let outcome = initial_load(&self.salesforce, pg, &target, &mut |done| {
                    report(done, false);
                })
                .await;
                report(outcome.as_ref().map_or(0, |o| o.applied), true);
                return outcome.map(|o| ("load", o));
            }
        }
        poll_once(&self.salesforce, pg, &target)
            .await
            .map(|o| ("poll", o))
    }
}
