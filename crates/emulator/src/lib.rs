//! A Salesforce API emulator: an in-memory org served over real HTTP and HTTPS.
//!
//! It speaks Salesforce's wire formats — OAuth 2.0 and SOAP login, REST describe, CRUD,
//! upsert by external id, sObject Collections, SOQL query/queryAll with paging,
//! getUpdated/getDeleted, limits, and the Pub/Sub API (gRPC) for Change Data Capture — so
//! any Salesforce client works against it unchanged.
//! pgforce's tests, benchmarks and `pgforce demo` run against it; anyone can use it as a
//! local Salesforce for their own integration tests.
//!
//! It never talks to a real Salesforce and does not depend on pgforce's client: the two
//! must agree with Salesforce, not with each other.
//!
//! Main types: [`Emulator`] (build one from an [`EmulatorConfig`], then [`Emulator::run`]),
//! [`FaultConfig`], [`WorkloadSpec`].
//!
//! Layout:
//! - `org`: schema, records, validation and write rules.
//! - `soql`: the SOQL parser; `query`: binding, execution, cursors, rendering.
//! - `api`: the Salesforce-facing HTTP API; `control`: the `/__emulator` control API.
//! - `connect`: Salesforce Connect (External Data Sources of type OData 4.0 and their
//!   external objects, answered by callouts).
//! - `events`: the org's change log; `cometd`: the Streaming API (CDC and PushTopics).
//! - `sessions`, `usage`, `faults`, `stats`: per-org services the API consults.
//! - `seed`, `workload`: realistic data and a live editing workload.
//! - `pubsub`: the Pub/Sub API (gRPC over HTTP/2 and TLS: the tonic service generated in
//!   `pgforce-pubsub-proto`, Avro with apache-avro) on its own listener.
//! - `server`, `tls`: listeners, connections and the emulator's certificate.

#![deny(clippy::print_stdout, clippy::print_stderr)]
#![recursion_limit = "256"]

mod api;
mod bulk;
mod cometd;
mod config;
mod connect;
mod control;
mod datetime;
mod error;
pub mod events;
mod faults;
mod header_case;
pub mod org;
mod pubsub;
mod query;
mod seed;
mod server;
mod sessions;
mod soql;
mod state;
mod stats;
mod tls;
mod usage;
mod uuid;
mod workload;

#[cfg(feature = "test-support")]
pub mod testing;

use std::future::Future;
use std::sync::Arc;

use axum::Router;

pub use config::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_NUMBER, DEFAULT_PASSWORD,
    DEFAULT_PUBSUB_KEEPALIVE, DEFAULT_PUBSUB_PORT, DEFAULT_REFRESH_TOKEN, DEFAULT_USERNAME,
    EmulatorConfig, LATEST_API_VERSION,
};
pub use control::CONTROL_PREFIX;
pub use faults::FaultConfig;
pub use org::{SchemaError, SchemaFile};
pub use seed::{SeedPlan, demo_plan};
pub use server::Listeners;
pub use tls::{TlsError, TlsIdentity, generate as generate_tls_identity};
pub use workload::WorkloadSpec;

use state::Shared;

/// The whole HTTP application: Salesforce API plus control API.
fn app(shared: Arc<Shared>) -> Router {
    api::router()
        .merge(cometd::router())
        .nest(CONTROL_PREFIX, control::router())
        .with_state(shared)
}

/// Why an emulator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the schema is not valid")]
    Schema(#[from] SchemaError),
    #[error("seeding the org failed: {0}")]
    Seed(String),
    #[error("fault settings: {0}")]
    Faults(String),
}

/// An emulated org, ready to serve.
#[derive(Debug, Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl Emulator {
    /// Builds an org from a configuration; fault rates outside 0–1 and other settings out of
    /// range are refused, naming the setting.
    pub fn new(config: EmulatorConfig) -> Result<Self, Error> {
        config.faults.validate().map_err(Error::Faults)?;
        Ok(Self {
            shared: Arc::new(Shared::new(config)?),
        })
    }

    /// Creates realistic records; returns how many of each object were created.
    pub fn seed(&self, plan: &SeedPlan) -> Result<Vec<(String, usize)>, Error> {
        seed::seed(&self.shared, plan).map_err(Error::Seed)
    }

    /// Parses a schema file's JSON text.
    pub fn parse_schema_file(text: &str) -> Result<SchemaFile, SchemaError> {
        org::Schema::parse_file(text)
    }

    /// Starts the workload generator (users editing the org) in the background; it stops
    /// when the emulator stops.
    pub async fn start_workload(&self, spec: WorkloadSpec) -> Result<(), String> {
        self.shared
            .workload
            .start(Arc::clone(&self.shared), spec)
            .await
    }

    /// Serves on the given listeners until `shutdown` completes.
    pub async fn run(&self, listeners: Listeners, shutdown: impl Future<Output = ()>) {
        server::run(Arc::clone(&self.shared), listeners, shutdown).await;
    }

    /// Serves the Pub/Sub API (gRPC over HTTP/2 and TLS) on `listener` until `shutdown`
    /// completes, with the HTTPS listener's TLS identity (`tls`; its ALPN is set to `h2`).
    pub async fn run_pubsub(
        &self,
        listener: tokio::net::TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()>,
    ) {
        pubsub::serve(Arc::clone(&self.shared), listener, tls, shutdown).await;
    }
}
