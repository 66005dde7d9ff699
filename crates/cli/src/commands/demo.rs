//! `pgforce demo`: see pgforce work in one command.
//!
//! Starts the bundled emulator in-process with a realistic seeded org, uses `DATABASE_URL`
//! or the local PostgreSQL (creating a `pgforce_demo` database), and hands the engine a
//! configuration mapping Account, Contact and Opportunity read-write — the same engine
//! `pgforce run` drives, with its leases, events and error policy. Once the loads are
//! done it edits an Account in the org and shows the change arriving in Postgres, and
//! renames another Account in Postgres, as an app would, and shows the change arriving in
//! Salesforce, each with its latency. Without `--exit` it keeps syncing both ways, with
//! the emulator's workload generator editing the org, until Ctrl-C.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use pgforce_emulator::{
    Emulator, EmulatorConfig, Listeners, WorkloadSpec, demo_plan, generate_tls_identity,
};
use pgforce_salesforce::{AllowedHosts, Client, ClientConfig, Credentials, SecretString};
use pgforce_store::table::probe;
use pgforce_store::{Ident, Session};
use pgforce_sync::config::ConnectionConfig;
use pgforce_sync::{Engine, EngineOptions, Event, EventKind, EventOutcome, MappingId, ReloadMode};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use crate::output;

/// Where the demo database lives unless `DATABASE_URL` says otherwise.
const DEFAULT_DEMO_URL: &str = "postgres://postgres@127.0.0.1:5432/pgforce_demo";

/// Objects the demo maps, with their fields.
const DEMO_MAPPINGS: [(&str, &[&str]); 3] = [
    (
        "Account",
        &[
            "Name",
            "Type",
            "Industry",
            "AnnualRevenue",
            "NumberOfEmployees",
            "BillingCity",
            "BillingCountry",
            "Phone",
            "Website",
            "CreatedDate",
        ],
    ),
    (
        "Contact",
        &[
            "FirstName",
            "LastName",
            "Name",
            "Email",
            "Phone",
            "Title",
            "AccountId",
            "CreatedDate",
        ],
    ),
    (
        "Opportunity",
        &[
            "Name",
            "StageName",
            "Amount",
            "CloseDate",
            "Probability",
            "AccountId",
            "CreatedDate",
        ],
    ),
];

/// Where the demo serves its dashboard unless `--listen` says otherwise.
const DEFAULT_DEMO_LISTEN: &str = "127.0.0.1:8780";

/// How long the tour waits for anything before it gives up.
const PATIENCE: Duration = Duration::from_secs(120);

/// Options of `pgforce demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// End after the tour instead of syncing until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Database URL (default: $DATABASE_URL, else the local pgforce_demo database).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DEMO_URL, hide_env_values = true)]
    database_url: String,
    /// Where the dashboard and the management API are served (`off`: not served).
    #[arg(long, default_value = DEFAULT_DEMO_LISTEN)]
    listen: String,
}

impl std::fmt::Debug for DemoArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoArgs")
            .field("exit", &self.exit)
            .field("listen", &self.listen)
            .field(
                "database_url",
                &pgforce_store::redact_conninfo(&self.database_url),
            )
            .finish()
    }
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let emulator = Emulator::new(EmulatorConfig::default()).context("building the demo org")?;
    let seeded = emulator
        .seed(&demo_plan())
        .context("seeding the demo org")?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("opening a port for the emulator")?;
    let base = format!(
        "http://{}",
        listener
            .local_addr()
            .context("reading the emulator's address")?
    );
    // The Pub/Sub API is gRPC over TLS: the org gets a certificate of its own CA, which
    // the demo's connection trusts.
    let identity = generate_tls_identity().context("making the emulator's certificate")?;
    let pubsub_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("opening a port for the emulator's Pub/Sub API")?;
    let events = DemoEvents {
        pubsub_endpoint: format!(
            "localhost:{}",
            pubsub_listener
                .local_addr()
                .context("reading the Pub/Sub address")?
                .port()
        ),
        ca_file: std::env::temp_dir().join(format!("pgforce-demo-ca-{}.pem", std::process::id())),
    };
    std::fs::write(&events.ca_file, &identity.ca_pem)
        .with_context(|| format!("writing {}", events.ca_file.display()))?;
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn({
        let emulator = emulator.clone();
        async move {
            let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let listeners = Listeners {
                http: Some(listener),
                https: None,
            };
            tokio::join!(
                emulator.run(listeners, until_stopped(stopped.clone())),
                emulator.run_pubsub(
                    pubsub_listener,
                    identity.server_config,
                    until_stopped(stopped)
                ),
            );
        }
    });
    let summary: Vec<String> = seeded.iter().map(|(o, n)| format!("{n} {o}")).collect();
    output::say(&format!(
        "Salesforce emulator at {base} with {}",
        summary.join(", ")
    ));

    let result = tour(&args, &emulator, &base, &events, started).await;
    let _ = stop.send(true);
    let _ = server.await;
    let _ = std::fs::remove_file(&events.ca_file);
    result
}

/// Where the demo's connection takes change events from: the emulator's Pub/Sub API.
struct DemoEvents {
    pubsub_endpoint: String,
    ca_file: std::path::PathBuf,
}

/// The demo's connection: the emulator's org, the three mappings, kept fresh by change
/// events over the Pub/Sub API (polled every minute as a safety net).
fn demo_connection(base: &str, events: &DemoEvents) -> anyhow::Result<ConnectionConfig> {
    let mappings: Vec<serde_json::Value> = DEMO_MAPPINGS
        .iter()
        .map(|(object, fields)| {
            serde_json::json!({
                "object": object,
                "access": "read_write",
                "fields": fields,
                "polling_seconds": 60,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "name": "demo",
        "schema": "salesforce",
        "login_url": base,
        "auth": "password",
        "username": pgforce_emulator::DEFAULT_USERNAME,
        "password": pgforce_emulator::DEFAULT_PASSWORD,
        "client_id": pgforce_emulator::DEFAULT_CLIENT_ID,
        "client_secret": pgforce_emulator::DEFAULT_CLIENT_SECRET,
        "change_events": "pubsub",
        "pubsub_endpoint": events.pubsub_endpoint,
        "ca_file": events.ca_file.display().to_string(),
        "mapping": mappings,
    }))
    .context("building the demo's configuration")
}

async fn tour(
    args: &DemoArgs,
    emulator: &Emulator,
    base: &str,
    events_from: &DemoEvents,
    started: Instant,
) -> anyhow::Result<()> {
    let (pg, created) = pgforce_store::connect_creating(&args.database_url)
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL at {} (start it, or set DATABASE_URL)",
                pgforce_store::redact_conninfo(&args.database_url)
            )
        })?;
    if created {
        output::say("created the demo database");
    }
    output::say(&format!(
        "PostgreSQL: {}",
        pgforce_store::redact_conninfo(&args.database_url)
    ));
    let options = EngineOptions {
        load_progress: Some(output::load_progress()),
        allowed_hosts: emulator_hosts(base, events_from)?,
        ..EngineOptions::default()
    };
    let engine = Engine::open(
        &args.database_url,
        vec![demo_connection(base, events_from)?],
        options,
    )
    .await
    .context("opening the demo's catalog")?;
    engine
        .apply()
        .await
        .context("setting up the demo's mappings")?;
    // Every tour starts from a fresh load, also on a database an earlier tour filled, and
    // from the newest events of this tour's new org.
    for (object, _) in DEMO_MAPPINGS {
        engine.reload("demo", object, ReloadMode::Request).await?;
    }
    engine.forget_change_event_position("demo").await?;
    let mut events = engine.subscribe();
    let (stop_engine, engine_stopped) = watch::channel(false);
    let dashboard = serve_the_dashboard(&args.listen, &engine, &engine_stopped).await?;
    let running = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run(engine_stopped).await }
    });
    let result = async {
        let ids = show_the_loads(&engine, &mut events, started).await?;
        let sf = salesforce(base, events_from)?;
        let account = *ids.get("Account").context("the Account mapping")?;
        let latency = show_a_change(&engine, &mut events, &sf, &pg, account).await?;
        output::say(&format!(
            "Salesforce → Postgres latency: {} ms (edit in the org until the row changed here)",
            latency.as_millis()
        ));
        let latency = show_a_write(&sf, &pg).await?;
        output::say(&format!(
            "Postgres → Salesforce latency: {} ms (commit in Postgres until Salesforce had it)",
            latency.as_millis()
        ));
        if args.exit {
            return Ok(());
        }
        keep_syncing(emulator, &mut events).await
    }
    .await;
    let _ = stop_engine.send(true);
    running
        .await
        .context("waiting for the engine to stop")?
        .context("running the sync engine")?;
    if let Some(dashboard) = dashboard {
        let _ = dashboard.await;
    }
    result
}

/// Serves the dashboard and the management API at `listen` (unless `off`) until the
/// engine stops, and tells where, with a view token (valid a day) to log in with.
async fn serve_the_dashboard(
    listen: &str,
    engine: &Engine,
    stopped: &watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if listen == "off" {
        return Ok(None);
    }
    let server = pgforce_server::Server::bind(listen)
        .await
        .context("serving the demo's dashboard (pass --listen 127.0.0.1:0 for any free port, or --listen off)")?;
    let address = server
        .local_addr()
        .context("reading the dashboard's address")?;
    let name = format!(
        "demo-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    );
    let token = engine
        .admin()
        .create_token(&name, pgforce_sync::Role::View, Some(1))
        .await
        .context("creating the demo's view token")?;
    output::say(&format!(
        "Dashboard: http://{address}/dashboard (log in with the view token {token}; the API answers it too, at http://{address}/api/v3)"
    ));
    Ok(Some(tokio::spawn(
        server.serve(engine.clone(), stopped.clone()),
    )))
}

/// Waits until every mapping is loaded, telling each load as it ends; returns the
/// mappings' ids by object.
async fn show_the_loads(
    engine: &Engine,
    events: &mut broadcast::Receiver<Event>,
    started: Instant,
) -> anyhow::Result<HashMap<String, MappingId>> {
    let ids: HashMap<String, MappingId> = engine
        .admin()
        .status(false)
        .await?
        .mappings
        .into_iter()
        .map(|m| (m.object, m.id))
        .collect();
    let mut loaded = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while loaded < ids.len() {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .context("the initial loads did not finish in time")?
            .context("the engine stopped")?;
        if event.kind != EventKind::Load {
            continue;
        }
        if event.outcome == EventOutcome::Error {
            bail!(
                "loading {} failed: {}",
                event.object,
                event.message.unwrap_or_default()
            );
        }
        loaded += 1;
        output::say(&format!(
            "{:<12} {:>6} rows loaded into salesforce.{} ({:.2} s)",
            event.object,
            event.records,
            event.object.to_lowercase(),
            event.duration.as_secs_f64()
        ));
    }
    output::say(&format!(
        "initial sync done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(ids)
}

/// The demo org's own listeners (its HTTP API and its Pub/Sub API): the only hosts
/// besides Salesforce's the demo's connection may log in to.
fn emulator_hosts(base: &str, events: &DemoEvents) -> anyhow::Result<AllowedHosts> {
    let api = base.trim_start_matches("http://");
    AllowedHosts::with_extra(&[api, events.pubsub_endpoint.as_str()])
        .map_err(anyhow::Error::msg)
        .context("allowing the demo org's addresses")
}

/// A client of the demo org, for the tour's own edits.
fn salesforce(base: &str, events: &DemoEvents) -> anyhow::Result<Client> {
    let credentials = Credentials::Password {
        client_id: pgforce_emulator::DEFAULT_CLIENT_ID.to_owned(),
        client_secret: SecretString::from(pgforce_emulator::DEFAULT_CLIENT_SECRET),
        username: pgforce_emulator::DEFAULT_USERNAME.to_owned(),
        password: SecretString::from(pgforce_emulator::DEFAULT_PASSWORD),
    };
    let mut config = ClientConfig::new(base, credentials);
    config.allowed_hosts = emulator_hosts(base, events)?;
    Client::new(config).context("building the Salesforce client")
}

fn account_table() -> anyhow::Result<(Ident, Ident, Ident)> {
    Ok((
        Ident::new("salesforce")?,
        Ident::new("account")?,
        Ident::new("name")?,
    ))
}

/// Edits one Account in the org and nudges its reader until Postgres has the change.
async fn show_a_change(
    engine: &Engine,
    events: &mut broadcast::Receiver<Event>,
    sf: &Client,
    pg: &Session,
    account: MappingId,
) -> anyhow::Result<Duration> {
    let transport = events_flowing(engine, account).await?;
    caught_up(events, account).await;
    output::say(&format!(
        "change events flowing over {transport}: the next poll is a minute away"
    ));
    let (schema, table, name) = account_table()?;
    let row = probe::sample(pg, &schema, &table, &name, 0)
        .await?
        .context("the account table is empty")?;
    let new_name = format!("{} (edited in Salesforce)", row.value.unwrap_or_default());
    let mut fields = pgforce_salesforce::rest::Record::new();
    fields.insert(
        "Name".to_owned(),
        serde_json::Value::String(new_name.clone()),
    );
    let edited = Instant::now();
    sf.update("Account", &row.sfid, &fields)
        .await
        .context("editing the account in the org")?;
    output::say(&format!(
        "edited Account {} in Salesforce: Name = {new_name:?}",
        row.sfid
    ));
    while edited.elapsed() < PATIENCE {
        let now = probe::value_of(pg, &schema, &table, &name, &row.sfid).await?;
        if now.as_deref() == Some(new_name.as_str()) {
            let latency = edited.elapsed();
            output::say(&format!(
                "salesforce.account row {} now reads Name = {new_name:?}",
                row.sfid
            ));
            return Ok(latency);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("the edit did not arrive in Postgres in time")
}

/// Waits until change events keep the mapping fresh; returns their transport.
async fn events_flowing(engine: &Engine, mapping: MappingId) -> anyhow::Result<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = engine.admin().status(false).await?;
        if let Some(transport) = status
            .mappings
            .into_iter()
            .find(|m| m.id == mapping)
            .and_then(|m| m.events_transport)
        {
            return Ok(transport);
        }
        if Instant::now() > deadline {
            bail!("change events did not start flowing in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most two seconds) for the read every mapping makes once its events start
/// flowing, which catches up with what changed before the subscription: the edit that
/// follows then measures how fast one change arrives, not that read.
async fn caught_up(events: &mut broadcast::Receiver<Event>, mapping: MappingId) {
    while events.try_recv().is_ok() {}
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if event.mapping == mapping && event.kind == EventKind::Poll {
            return;
        }
    }
}

/// Renames one Account in Postgres, as an app would, and waits until Salesforce has it.
async fn show_a_write(sf: &Client, pg: &Session) -> anyhow::Result<Duration> {
    let (schema, table, name) = account_table()?;
    let row = probe::sample(pg, &schema, &table, &name, 1)
        .await?
        .context("the account table has fewer than two rows")?;
    let new_name = format!("{} (edited in Postgres)", row.value.unwrap_or_default());
    let committed = Instant::now();
    probe::set_value(pg, &schema, &table, &name, row.id, &new_name).await?;
    output::say(&format!(
        "updated salesforce.account row {} in Postgres: name = {new_name:?}",
        row.id
    ));
    while committed.elapsed() < PATIENCE {
        let record = sf
            .get("Account", &row.sfid, Some(&["Name"]))
            .await
            .context("reading the account in the org")?;
        if record.get("Name").and_then(|n| n.as_str()) == Some(new_name.as_str()) {
            let latency = committed.elapsed();
            output::say(&format!(
                "Account {} in Salesforce now reads Name = {new_name:?}",
                row.sfid
            ));
            return Ok(latency);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("the edit did not reach Salesforce in time")
}

/// Lets the emulator's users edit the org and tells what the engine moves, until Ctrl-C.
async fn keep_syncing(
    emulator: &Emulator,
    events: &mut broadcast::Receiver<Event>,
) -> anyhow::Result<()> {
    output::say("syncing both ways while the emulator's users edit the org; Ctrl-C to stop");
    emulator
        .start_workload(WorkloadSpec {
            rate_per_second: 5.0,
            ..WorkloadSpec::default()
        })
        .await
        .map_err(|message| anyhow::anyhow!("starting the emulator's workload: {message}"))?;
    let shutdown = crate::commands::emulator::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            event = events.recv() => match event {
                Ok(event) if event.records > 0 => {
                    let direction = match event.kind {
                        EventKind::Write => "written to Salesforce",
                        EventKind::Load | EventKind::Poll => "read from Salesforce",
                    };
                    output::say(&format!("{:<12} {} {direction}", event.object, event.records));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    output::say("stopped");
    Ok(())
}
