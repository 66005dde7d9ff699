//! What every scenario sets up: a database created for one benchmark run and dropped
//! after it, and the engine on it with Account mapped from the emulator.

use anyhow::Context;
use pgforce_salesforce::{AllowedHosts, Client, ClientConfig};
use pgforce_sync::config::ConnectionConfig;
use pgforce_sync::{Engine, EngineOptions, ReloadMode, Reloaded};

/// A fresh database on the server of `DATABASE_URL`.
pub struct ScratchDatabase {
    admin: tokio_postgres::Client,
    name: String,
    /// Its connection URL.
    pub url: String,
}

impl ScratchDatabase {
    /// Creates `pgforce_bench_<scenario>_<pid>` (dropping a leftover of that name first).
    pub async fn create(server_url: &str, scenario: &str) -> anyhow::Result<Self> {
        let (server, _) = server_url
            .rsplit_once('/')
            .context("DATABASE_URL must end with a database name")?;
        let name = format!("pgforce_bench_{scenario}_{}", std::process::id());
        let admin = pgforce_store::connect(server_url).await?;
        // One statement per call: DROP/CREATE DATABASE cannot run in a transaction block.
        admin
            .batch_execute(&format!("drop database if exists {name}"))
            .await?;
        admin
            .batch_execute(&format!("create database {name}"))
            .await?;
        Ok(Self {
            admin,
            url: format!("{server}/{name}"),
            name,
        })
    }

    /// Drops the database, disconnecting whoever still uses it.
    pub async fn drop(self) -> anyhow::Result<()> {
        self.admin
            .batch_execute(&format!(
                "drop database if exists {} with (force)",
                self.name
            ))
            .await
            .context("dropping the benchmark database")
    }
}

/// The benchmarks' connection to the emulator at `base`: Account with `fields`.
pub fn account_connection(
    base: &str,
    fields: &[&str],
    access: pgforce_sync::Access,
    polling_seconds: u64,
    bulk_write_threshold: u64,
) -> anyhow::Result<ConnectionConfig> {
    serde_json::from_value(serde_json::json!({
        "name": BENCH_CONNECTION,
        "schema": "salesforce",
        "login_url": base,
        "auth": "password",
        "username": "admin@example.com",
        "password": "pgforce",
        "client_id": "pgforce",
        "client_secret": "pgforce",
        "bulk_write_threshold": bulk_write_threshold,
        // Polling alone unless a scenario turns events on (the `events` scenario does).
        "change_events": "off",
        // Loads and polls alike: the benchmarks measure what pgforce run does.
        "mapping": [{
            "object": "Account",
            "access": access,
            "fields": fields,
            "polling_seconds": polling_seconds,
            "max_daily_api_calls": u64::MAX,
        }],
    }))
    .context("building the benchmark's connection")
}

/// The connection every scenario declares.
pub const BENCH_CONNECTION: &str = "bench";

/// Salesforce's hosts and this machine's loopback names on any port: where the
/// benchmarks' emulators listen (their HTTP and Pub/Sub APIs).
pub fn emulator_hosts() -> anyhow::Result<AllowedHosts> {
    AllowedHosts::with_extra(&["127.0.0.1", "localhost"]).map_err(anyhow::Error::msg)
}

/// A client of the emulator at `base`, logged in as its administrator.
pub fn emulator_client(base: &str) -> anyhow::Result<Client> {
    let mut config = ClientConfig::new(base, crate::report::emulator_credentials());
    config.allowed_hosts = emulator_hosts()?;
    Ok(Client::new(config)?)
}

/// Opens the engine on `url` with `connection` and applies it (schema, table, catalog).
pub async fn engine(url: &str, connection: ConnectionConfig) -> anyhow::Result<Engine> {
    let options = EngineOptions {
        allowed_hosts: emulator_hosts()?,
        ..EngineOptions::default()
    };
    let engine = Engine::open(url, vec![connection], options).await?;
    engine.apply().await?;
    Ok(engine)
}

/// Loads Account into its table now (the table emptied first), as `pgforce reload --now`
/// does; returns the rows loaded and the API calls they took.
pub async fn load(engine: &Engine) -> anyhow::Result<(u64, u64)> {
    match engine
        .reload(BENCH_CONNECTION, "Account", ReloadMode::Now(None))
        .await?
    {
        Reloaded::Done {
            rows,
            api_calls: Some(calls),
            ..
        } => Ok((rows, calls)),
        other => anyhow::bail!("the load was not done here: {other:?}"),
    }
}

/// An engine running as `pgforce run` runs it, and the switch that stops it.
pub struct RunningEngine {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<pgforce_sync::Result<()>>,
}

impl RunningEngine {
    /// Starts `engine` and waits until Account's reader has read once (so its first poll
    /// does not fall into what is measured next).
    pub async fn start(engine: &Engine) -> anyhow::Result<Self> {
        let mut events = engine.subscribe();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn({
            let engine = engine.clone();
            async move { engine.run(stopped).await }
        });
        let read = async {
            loop {
                match events.recv().await {
                    Ok(event) if event.kind != pgforce_sync::EventKind::Write => return Ok(()),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        anyhow::bail!("the engine stopped before reading")
                    }
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(600), read)
            .await
            .context("the engine's first read took more than ten minutes")??;
        Ok(Self { stop, task })
    }

    /// Stops the engine and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await??;
        Ok(())
    }
}
