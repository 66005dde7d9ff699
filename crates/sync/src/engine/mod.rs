//! The engine: the one public entry to everything pgforce does.
//!
//! Key concepts:
//! - **The catalog is the source of truth** for connections and mappings. Declarations
//!   (a configuration file's connections, an import, a run-time addition) are applied to
//!   it; [`Engine::run`] follows it, picking up every change without a restart.
//! - **Secrets stay with the process that declared them.** The catalog keeps a
//!   connection's settings without its password, client secret or refresh token; an
//!   engine runs the connections it has credentials for (declared in its configuration,
//!   or added through it) and leaves the others to the processes that have them.
//! - **Secrets go only to allowed hosts.** Every Salesforce client is built with
//!   [`EngineOptions::allowed_hosts`] (Salesforce's own, plus the configuration's
//!   `[security] allowed_login_hosts`); a connection naming another host is refused when
//!   it is declared, created or changed, and never logged in to.
//! - **Sessions.** Requests, scrapes and command steps borrow a catalog session from a
//!   bounded pool (`[database] pool_size`) and give it back, reset, when done; workers,
//!   the supervisor's rounds and notifications open their own, so a burst of requests
//!   can neither exhaust Postgres nor starve them.
//! - **Operations** (add, change, pause, resume, reload, remove, reconcile, import,
//!   export, status) change the catalog through the same code whether or not a daemon
//!   runs: a running engine, here or in another process on the same catalog, notices.
//!
//! Layout: `setup` (declarations → catalog, resolving mappings against the org),
//! `supervisor` (running a worker per mapping and per connection, following the catalog),
//! `operations` (run-time changes, reload), `reconciling`, `documents` (Heroku Connect
//! import/export), `status`, `scrape` (metrics), `describe` (connections, mappings,
//! failed writes and tokens for the management API), `validate` (diagnosing a connection),
//! `authorize` (the OAuth web-server flow), `rotation` (kept secrets sealed again under the
//! operator's first key), `expiry` (deleting expired sessions, consents and diagnoses).

mod archiving;
mod connections;
mod documents;
mod expiry;
mod operations;
mod reconciling;
mod rotation;
mod setup;
mod supervisor;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pgforce_salesforce::Client;
use pgforce_store::catalog::connections::ConnectionRow;
use pgforce_store::{ConnectionId, MappingId, Pool, PoolOptions, PooledSession, Session};
use tokio::sync::{broadcast, watch};

pub use operations::{ReloadMode, Reloaded};
pub use reconciling::{MappingReconcile, ReconcileRequest};
pub use rotation::Rotation;
pub use setup::Applied;

use crate::config::ConnectionConfig;
use crate::error::{Error, Result};
use crate::events::{Event, EventBus};
use crate::reader::LoadProgress;
use crate::worker::LeaseTiming;

pub(crate) use crate::config::DEFAULT_SCHEMA_CHECK_SECONDS;

/// How an engine runs (not what it syncs: that is the catalog's).
#[derive(Clone)]
pub struct EngineOptions {
    /// Told how far loads have got (the CLI's progress bars).
    pub load_progress: Option<LoadProgress>,
    /// How often the catalog is read again when no notification came (default 5 s).
    pub catalog_poll: Duration,
    /// Lease lifetime and renewal of every worker.
    pub lease: LeaseTiming,
    /// How long workers have to stop at shutdown before they are abandoned.
    pub shutdown: Duration,
    /// How long `pgforce.sync_events` keeps events (default 31 days); the supervisor
    /// deletes older ones at start and every hour.
    pub events_retention: Duration,
    /// How often each reader compares its object's describe with its table (default ten
    /// minutes; also at its start, after a read rejected records, and when a read fails on
    /// a field).
    pub schema_check: Duration,
    /// Where notifications are delivered (none by default: they are only stored).
    pub webhooks: Vec<crate::config::WebhookConfig>,
    /// The keys that seal and open the secrets of connections created through the API:
    /// the first seals, each opens what it sealed (none: such connections cannot be
    /// created, nor run by this process).
    pub secret_keys: Option<crate::SecretKeys>,
    /// The hosts connections may log in to besides Salesforce's own (the configuration
    /// file's `[security] allowed_login_hosts`): credentials and tokens go nowhere else.
    pub allowed_hosts: pgforce_salesforce::AllowedHosts,
    /// The most catalog sessions the engine's pool keeps open for API requests, scrapes
    /// and commands (default 4; at least 1). Workers open their own sessions besides.
    pub pool_size: usize,
    /// How long a request waits for a pooled session before it fails as the pool being
    /// exhausted (default [`pgforce_store::POOL_WAIT`]).
    pub pool_wait: Duration,
    /// Salesforce calls (record counts, describes) one API token's requests may cause per
    /// hour (default [`crate::call_budget::DEFAULT_CALLS_PER_TOKEN_HOUR`]).
    pub calls_per_token_hour: u32,
}

pub use crate::config::DEFAULT_POOL_SIZE;
pub use archiving::{ArchiveRequest, UnarchiveRequest, Unarchived};

impl EngineOptions {
    /// The options a configuration file's `[engine]` asks for.
    pub fn from_config(runtime: &crate::config::RuntimeConfig) -> Self {
        Self {
            lease: LeaseTiming::from_seconds(runtime.lease_seconds),
            shutdown: Duration::from_secs(runtime.shutdown_seconds),
            events_retention: days(runtime.events_retention_days),
            schema_check: Duration::from_secs(runtime.schema_check_seconds.max(1)),
            ..Self::default()
        }
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            load_progress: None,
            catalog_poll: Duration::from_secs(5),
            lease: LeaseTiming::default(),
            shutdown: Duration::from_secs(30),
            events_retention: days(crate::config::RuntimeConfig::default().events_retention_days),
            schema_check: Duration::from_secs(DEFAULT_SCHEMA_CHECK_SECONDS),
            webhooks: Vec::new(),
            secret_keys: None,
            allowed_hosts: pgforce_salesforce::AllowedHosts::salesforce(),
            pool_size: DEFAULT_POOL_SIZE,
            pool_wait: pgforce_store::POOL_WAIT,
            calls_per_token_hour: crate::call_budget::DEFAULT_CALLS_PER_TOKEN_HOUR,
        }
    }
}

/// `n` days as a duration.
fn days(n: u64) -> Duration {
    Duration::from_secs(n.saturating_mul(86_400))
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("load_progress", &self.load_progress.is_some())
            .field("catalog_poll", &self.catalog_poll)
            .field("lease", &self.lease)
            .field("shutdown", &self.shutdown)
            .field("events_retention", &self.events_retention)
            .field("schema_check", &self.schema_check)
            .field("webhooks", &self.webhooks.len())
            .field("secret_keys", &self.secret_keys)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("pool_size", &self.pool_size)
            .field("pool_wait", &self.pool_wait)
            .field("calls_per_token_hour", &self.calls_per_token_hour)
            .finish()
    }
}

/// pgforce's engine. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("connections", &self.connection_names())
            .finish_non_exhaustive()
    }
}

/// Salesforce clients by connection name, with the settings they were built from.
type Clients = std::sync::Mutex<HashMap<String, (String, Client)>>;

/// The org's API usage as each of `clients` last saw it.
fn api_usage_of(clients: &Clients) -> Vec<(String, pgforce_salesforce::ApiUsage)> {
    clients
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter_map(|(name, (_, client))| Some((name.clone(), client.api_usage()?)))
        .collect()
}

/// What every clone of an engine shares.
pub(crate) struct Shared {
    database_url: String,
    /// Sessions lent to API requests, scrapes and commands (bounded); workers do not
    /// borrow from it.
    pool: Pool,
    pub(crate) options: EngineOptions,
    /// Connections declared to this process, with their secrets (by name). Declarations
    /// from the configuration file come first; run-time additions are appended.
    declared: std::sync::RwLock<Vec<ConnectionConfig>>,
    /// Salesforce clients by connection name, with the settings they were built from.
    clients: Arc<Clients>,
    /// Nudges for readers running in this process.
    wakes: std::sync::Mutex<HashMap<MappingId, Arc<crate::reader::ReaderWake>>>,
    /// What the API's views keep between requests (counts, describes) and the Salesforce
    /// calls each token may still cause.
    pub(crate) views: crate::admin::Kept,
    /// Records loaded so far by loads running in this process, by mapping.
    loading: Arc<std::sync::Mutex<HashMap<MappingId, u64>>>,
    pub(crate) bus: EventBus,
}

impl Engine {
    /// An engine on the catalog at `database_url` (migrated to this version), with the
    /// connections `declared` (a configuration file's; not applied to the catalog until
    /// [`Engine::apply`]). Makes no Salesforce call.
    pub async fn open(
        database_url: &str,
        declared: Vec<ConnectionConfig>,
        options: EngineOptions,
    ) -> Result<Self> {
        let pool = Pool::new(
            database_url,
            PoolOptions {
                size: options.pool_size,
                wait: options.pool_wait,
            },
        )
        .map_err(Error::catalog)?;
        let mut pg = pgforce_store::connect(database_url)
            .await
            .map_err(Error::catalog)?;
        pgforce_store::catalog::migrate(&mut pg)
            .await
            .map_err(Error::catalog)?;
        let calls_per_token_hour = options.calls_per_token_hour;
        Ok(Self {
            shared: Arc::new(Shared {
                database_url: database_url.to_owned(),
                pool,
                options,
                declared: std::sync::RwLock::new(declared),
                clients: Arc::default(),
                wakes: std::sync::Mutex::default(),
                views: crate::admin::Kept::new(calls_per_token_hour),
                loading: Arc::default(),
                bus: EventBus::new(1024),
            }),
        })
    }

    /// Syncs every connection this engine has credentials for, following the catalog,
    /// until `shutdown` turns true.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) -> Result<()> {
        let webhooks = self.shared.options.webhooks.clone();
        let clients = Arc::clone(&self.shared.clients);
        let notifier = tokio::spawn(crate::notifications::run(
            self.shared.database_url.clone(),
            Arc::new(move || api_usage_of(&clients)),
            webhooks,
            shutdown.clone(),
        ));
        let purger = tokio::spawn(expiry::run(self.clone(), shutdown.clone()));
        let result = supervisor::run(self, shutdown).await;
        notifier.abort();
        // A poller: it just stops (each of its deletes is one statement, whole or undone),
        // even when stuck reaching an unreachable catalog.
        purger.abort();
        if let Err(error) = purger.await
            && error.is_panic()
        {
            tracing::warn!(error = %error, "the task deleting expired rows panicked");
        }
        result
    }

    /// Whether this engine can work now: its catalog answers and is migrated (for
    /// readiness probes). The error says what is wrong.
    pub async fn ready(&self) -> Result<()> {
        let pg = self.session().await?;
        pgforce_store::catalog::check(&pg)
            .await
            .map_err(Error::catalog)
    }

    /// Events from now on (loads, polls, writer passes, failures).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.bus.subscribe()
    }

    /// Records a load running in this process has stored so far for `mapping` (none when
    /// no load of it runs here).
    pub fn load_progress(&self, mapping: MappingId) -> Option<u64> {
        self.shared
            .loading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&mapping)
            .copied()
    }

    /// Where a reader of `mapping` reports its load's progress: this engine's record of
    /// it, then the configured callback (the CLI's progress bars).
    pub(crate) fn load_progress_sink(&self, mapping: MappingId) -> LoadProgress {
        let loading = Arc::clone(&self.shared.loading);
        let configured = self.shared.options.load_progress.clone();
        Arc::new(move |object: &str, done: u64, finished: bool| {
            {
                let mut loading = loading
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if finished {
                    loading.remove(&mapping);
                } else {
                    loading.insert(mapping, done);
                }
            }
            if let Some(progress) = &configured {
                progress(object, done, finished);
            }
        })
    }

    /// Asks a mapping's reader, if it runs in this process and holds its lease, to read at
    /// once. `false` when no reader here can read it (none runs here, or it stands by while
    /// another process holds the lease): ask the others (`pgforce_nudge`).
    pub fn read_now(&self, mapping: MappingId) -> bool {
        let wake = self
            .shared
            .wakes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&mapping)
            .cloned();
        wake.is_some_and(|wake| wake.read_now())
    }

    /// Names of the connections declared to this engine.
    pub fn connection_names(&self) -> Vec<String> {
        self.declared().iter().map(|c| c.name.clone()).collect()
    }

    /// The connection an operation means: the one named, or the only one declared.
    pub fn pick_connection(&self, name: Option<&str>) -> Result<String> {
        let names = self.connection_names();
        match (name, names.as_slice()) {
            (Some(name), _) => Ok(name.to_owned()),
            (None, [only]) => Ok(only.clone()),
            (None, []) => Err(Error::NotFound {
                what: "no connection is declared".to_owned(),
            }),
            (None, _) => Err(Error::NotFound {
                what: "several connections are declared; name one".to_owned(),
            }),
        }
    }

    fn declared(&self) -> Vec<ConnectionConfig> {
        self.shared
            .declared
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Keeps a connection declared at run time (replacing one of the same name).
    fn remember(&self, config: ConnectionConfig) {
        let mut declared = self
            .shared
            .declared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        declared.retain(|c| c.name != config.name);
        declared.push(config);
    }

    /// A session of its own on the catalog's database, for the engine's background tasks
    /// (the supervisor's rounds, notifications): they keep working while every pooled
    /// session is lent.
    pub(crate) async fn catalog_session(&self) -> Result<Session> {
        pgforce_store::connect(&self.shared.database_url)
            .await
            .map_err(Error::catalog)
    }

    /// Catalog sessions the engine's pool has open now (idle or lent), and its size.
    pub fn pool_sessions(&self) -> (usize, usize) {
        (
            self.shared.pool.open_sessions(),
            self.shared.pool.max_size(),
        )
    }

    /// The org's API usage as each connection's client last saw it.
    pub(crate) fn api_usage(&self) -> Vec<(String, pgforce_salesforce::ApiUsage)> {
        api_usage_of(&self.shared.clients)
    }

    /// A session lent by the engine's pool, for short work (a request, a scrape, a
    /// command step). It goes back when dropped; nothing a borrower sets outlives it.
    pub(crate) async fn session(&self) -> Result<PooledSession> {
        self.shared.pool.get().await.map_err(Error::catalog)
    }

    /// A connection's full configuration: its declaration here (with secrets), else its
    /// catalog settings when they suffice to log in (a JWT key file, say). `None` when
    /// this process cannot run it.
    pub(crate) fn configuration(&self, row: &ConnectionRow) -> Option<ConnectionConfig> {
        if let Some(declared) = self.declared().into_iter().find(|c| c.name == row.name) {
            return Some(declared);
        }
        let mut config: ConnectionConfig = serde_json::from_str(row.settings.as_deref()?).ok()?;
        config.name.clone_from(&row.name);
        config.schema.clone_from(&row.schema);
        if let Some(sealed) = &row.sealed_secrets {
            let keys = self.shared.options.secret_keys.as_ref()?;
            let owner = crate::secrets::Owner::Connection(row.id);
            let sealed = crate::secrets::Sealed::of(sealed);
            if let Err(error) = crate::secrets::unseal_into(keys, owner, &sealed, &mut config) {
                tracing::warn!(connection = %row.name, error = %error, "could not open the connection's secrets; not running it here");
                return None;
            }
        }
        config
            .client_config(self.allowed_hosts())
            .ok()
            .map(|_| config)
    }

    /// The catalog row of connection `id`.
    pub(crate) async fn connection_row(
        &self,
        pg: &Session,
        id: ConnectionId,
    ) -> Result<ConnectionRow> {
        pgforce_store::catalog::connections::get(pg, id)
            .await
            .map_err(Error::catalog)?
            .ok_or_else(|| Error::NotFound {
                what: format!("no connection with id {id}"),
            })
    }

    /// The hosts this engine's connections may log in to.
    pub(crate) fn allowed_hosts(&self) -> &pgforce_salesforce::AllowedHosts {
        &self.shared.options.allowed_hosts
    }

    /// The Salesforce client of a connection, built once per settings.
    fn client(&self, config: &ConnectionConfig) -> Result<Client> {
        // Settings and secrets (hashed): new credentials for a name make a new client.
        let fingerprint = format!(
            "{}{}",
            serde_json::to_string(config).unwrap_or_default(),
            crate::secrets::digest(config)
        );
        let mut clients = self
            .shared
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((built_from, client)) = clients.get(&config.name)
            && *built_from == fingerprint
        {
            return Ok(client.clone());
        }
        let client = Client::new(config.client_config(self.allowed_hosts())?).map_err(|e| {
            Error::Connection {
                connection: config.name.clone(),
                problem: e.to_string(),
            }
        })?;
        clients.insert(config.name.clone(), (fingerprint, client.clone()));
        Ok(client)
    }
}
