//! The state every request handler shares.
//!
//! Locks are std locks held only inside synchronous sections, never across an `.await`
//! (clippy's `await_holding_lock` is denied). The org's lock is the only one that matters
//! for throughput: reads share it, writes take it alone.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::bulk::JobStore;
use crate::cometd::Clients;
use crate::config::EmulatorConfig;
use crate::connect::ConnectStore;
use crate::faults::FaultConfig;
use crate::faults::script::FaultScript;
use crate::org::{AdminUser, Org, Schema, SchemaError};
use crate::query::CursorStore;
use crate::sessions::Sessions;
use crate::stats::Stats;
use crate::usage::ApiUsage;
use crate::workload::Workload;

/// Everything one emulator holds.
#[derive(Debug)]
pub struct Shared {
    pub config: EmulatorConfig,
    /// The org's records. Reads in parallel; writes serialised (monotonic SystemModstamp).
    org: RwLock<Org>,
    /// Issued access and refresh tokens.
    sessions: Mutex<Sessions>,
    /// Open query cursors.
    cursors: Mutex<CursorStore>,
    /// Bulk API 2.0 jobs.
    jobs: Mutex<JobStore>,
    /// Faults in force; read on every request, changed by the control API.
    faults: RwLock<FaultConfig>,
    /// One-shot faults still to happen; every data call may take one, the control API
    /// appends and clears them. Taken before the org's lock when both are needed, never
    /// while holding it.
    fault_script: Mutex<FaultScript>,
    pub usage: ApiUsage,
    pub stats: Stats,
    pub workload: Workload,
    /// CometD clients and their subscriptions. Taken before the org's lock when both are
    /// needed, never while holding it.
    cometd: Mutex<Clients>,
    /// External Data Sources, external objects and their callout logs. Never held across a
    /// callout; taken after the org's lock when both are needed (describeGlobal), never before.
    connect: Mutex<ConnectStore>,
    /// Bumped to cut every open event stream (CometD connects, Pub/Sub subscriptions)
    /// mid-way; streams watch it and end when it changes.
    stream_cuts: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// A new org from a configuration.
    pub fn new(config: EmulatorConfig) -> Result<Self, SchemaError> {
        let schema = Schema::with_files(&config.schema_files)?;
        let admin = AdminUser {
            username: config.username.clone(),
            email: if config.username.contains('@') {
                config.username.clone()
            } else {
                "admin@example.com".to_owned()
            },
            first_name: "Ada".to_owned(),
            last_name: "Admin".to_owned(),
        };
        Ok(Self {
            org: RwLock::new(Org::new(schema, &admin, config.org_number)),
            sessions: Mutex::new(Sessions::new(
                config.session_lifetime,
                &config.refresh_token,
            )),
            cursors: Mutex::new(CursorStore::default()),
            jobs: Mutex::new(JobStore::default()),
            faults: RwLock::new(config.faults.clone()),
            fault_script: Mutex::new(FaultScript::default()),
            usage: ApiUsage::new(config.daily_api_limit),
            stats: Stats::default(),
            workload: Workload::default(),
            cometd: Mutex::new(Clients::default()),
            connect: Mutex::new(ConnectStore::default()),
            stream_cuts: tokio::sync::watch::channel(0).0,
            config,
        })
    }

    /// Shared read access to the org.
    pub fn org(&self) -> RwLockReadGuard<'_, Org> {
        self.org.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Exclusive write access to the org.
    pub fn org_mut(&self) -> RwLockWriteGuard<'_, Org> {
        self.org.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token store.
    pub fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cursor store.
    pub fn cursors(&self) -> MutexGuard<'_, CursorStore> {
        self.cursors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Bulk API job store.
    pub fn jobs(&self) -> MutexGuard<'_, JobStore> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The faults in force now.
    pub fn faults(&self) -> FaultConfig {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The CometD clients.
    pub fn cometd(&self) -> MutexGuard<'_, Clients> {
        self.cometd.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Salesforce Connect store.
    pub fn connect(&self) -> MutexGuard<'_, ConnectStore> {
        self.connect.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The scripted one-shot faults.
    pub fn fault_script(&self) -> MutexGuard<'_, FaultScript> {
        self.fault_script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every open event stream now (fault injection: a stream cut mid-way).
    pub fn cut_streams(&self) {
        self.stream_cuts.send_modify(|n| *n += 1);
    }

    /// Changes when [`Shared::cut_streams`] is called; an open stream selects on it.
    pub fn stream_cuts(&self) -> tokio::sync::watch::Receiver<u64> {
        self.stream_cuts.subscribe()
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: FaultConfig) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = faults;
    }
}
