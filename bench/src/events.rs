//! Scenario `events`: how fast a Salesforce change reaches Postgres, and what it costs in
//! API calls, with change events over the Pub/Sub API, over CometD, and with polling
//! every second (the baseline, measured in the same run against the same emulator).
//!
//! For each mode a fresh database loads the same Accounts, the engine runs as `pgforce
//! run` runs it (event modes with `polling_seconds = 300`, so the safety-net poll never
//! falls inside the measurement; one of them with `apply_events = true`), and then:
//! - **idle**: nothing changes for `--idle-seconds`; the org's API request count before
//!   and after gives the calls per hour spent while idle;
//! - **changes**: `--changes` edits at `--rate` per second; a trigger on the mapped table
//!   stamps when each edit became visible in Postgres (`clock_timestamp()`), against the
//!   moment the edit was sent (so the figure includes the edit call itself); median and
//!   p99, and the org's API requests per 1,000 changes (the benchmark's own edit calls
//!   subtracted).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::Args;
use pgforce_salesforce::Client;
use pgforce_sync::{Access, DEFAULT_BULK_WRITE_THRESHOLD};

use crate::client::start_emulator_with;
use crate::report::{Report, median, percentile};
use crate::scratch::{RunningEngine, ScratchDatabase, account_connection, engine, load};
use crate::services::Services;

/// Options of the events scenario.
#[derive(Debug, Args)]
pub struct Options {
    #[command(flatten)]
    services: Services,
    /// Accounts in the org (the edits cycle through them).
    #[arg(long, default_value_t = 1_000)]
    records: usize,
    /// Edits whose latency is measured, per mode.
    #[arg(long, default_value_t = 1_000)]
    changes: usize,
    /// Edits per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Seconds of idleness whose API calls are counted, per mode.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
}

/// One way changes reach Postgres.
#[derive(Debug, Clone, Copy)]
enum Mode {
    PubSub,
    Cometd,
    /// Pub/Sub with `apply_events = true`: values stored from the events, no reads.
    Applied,
    Polling,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::PubSub => "Pub/Sub events",
            Self::Cometd => "CometD events",
            Self::Applied => "Pub/Sub events applied",
            Self::Polling => "polling every second",
        }
    }
}

/// What one mode measured.
struct Measured {
    latencies_ms: Vec<f64>,
    idle_calls_per_hour: f64,
    calls_per_thousand: f64,
}

/// Runs the scenario.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    if options.records < options.changes {
        bail!(
            "--records ({}) must be at least --changes ({}): each edit needs its own record, or an edit overtaken by the next one on the same record is never seen",
            options.records,
            options.changes
        );
    }
    let mut report = Report::new("events");
    let tls_port = free_port()?;
    let pubsub_port = free_port()?;
    let ca_file = std::env::temp_dir().join(format!("pgforce_bench_ca_{}.pem", std::process::id()));
    let pubsub_flag = ["--pubsub-port".to_owned(), pubsub_port.to_string()];
    let emulator = start_emulator_with(
        &options.services.emulator_bin,
        Some((tls_port, &ca_file)),
        &pubsub_flag,
    )
    .await?;
    reqwest::Client::new()
        .post(format!("{}/__emulator/seed", emulator.base))
        .json(&serde_json::json!({ "Account": options.records }))
        .send()
        .await?
        .error_for_status()
        .context("seeding the org")?;
    let sf = crate::scratch::emulator_client(&emulator.base)?;
    let endpoints = Endpoints {
        base: emulator.base.clone(),
        pubsub: format!("localhost:{pubsub_port}"),
        ca_file,
    };
    for mode in [Mode::PubSub, Mode::Cometd, Mode::Applied, Mode::Polling] {
        let db = ScratchDatabase::create(&options.services.database_url, "events").await?;
        let measured = measure(&options, mode, &sf, &endpoints, &db.url).await;
        db.drop().await?;
        let mut measured = measured.with_context(|| format!("measuring {}", mode.label()))?;
        let how = match mode {
            Mode::Polling => "polling_seconds = 1, change_events = off".to_owned(),
            Mode::Applied => "apply_events = true, polling_seconds = 300".to_owned(),
            _ => "polling_seconds = 300 (safety net only)".to_owned(),
        };
        report.add(
            &format!("SF→PG latency, median, {}", mode.label()),
            median(&mut measured.latencies_ms),
            "ms",
            &format!("{} edits at {}/s; {how}", options.changes, options.rate),
        );
        report.add(
            &format!("SF→PG latency, p99, {}", mode.label()),
            percentile(&mut measured.latencies_ms, 99.0),
            "ms",
            "",
        );
        report.add(
            &format!("API calls per hour idle, {}", mode.label()),
            measured.idle_calls_per_hour,
            "calls/h",
            &format!(
                "org's API request count over {} s idle, scaled to an hour",
                options.idle_seconds
            ),
        );
        report.add(
            &format!("API calls per 1,000 changes, {}", mode.label()),
            measured.calls_per_thousand,
            "calls",
            "org's API requests during the edits, the edits' own calls subtracted",
        );
    }
    Ok(report)
}

/// Where the engine reaches the emulator.
struct Endpoints {
    base: String,
    pubsub: String,
    ca_file: PathBuf,
}

async fn measure(
    options: &Options,
    mode: Mode,
    sf: &Client,
    endpoints: &Endpoints,
    db_url: &str,
) -> anyhow::Result<Measured> {
    let polling_seconds = if matches!(mode, Mode::Polling) {
        1
    } else {
        300
    };
    let mut connection = account_connection(
        &endpoints.base,
        &["Name"],
        Access::ReadOnly,
        polling_seconds,
        DEFAULT_BULK_WRITE_THRESHOLD,
    )?;
    connection.apply_events = matches!(mode, Mode::Applied);
    connection.change_events = match mode {
        Mode::PubSub | Mode::Applied => pgforce_sync::config::ChangeEvents::Pubsub,
        Mode::Cometd => pgforce_sync::config::ChangeEvents::Cometd,
        Mode::Polling => pgforce_sync::config::ChangeEvents::Off,
    };
    connection.pubsub_endpoint.clone_from(&endpoints.pubsub);
    connection.ca_file = Some(endpoints.ca_file.display().to_string());
    let engine = engine(db_url, connection).await?;
    load(&engine).await?;
    let pg = pgforce_store::connect(db_url).await?;
    pg.batch_execute(
        "create table public.bench_seen (name text primary key, seen_at timestamptz not null);
         create function public.bench_seen() returns trigger language plpgsql as $$
         begin
           insert into public.bench_seen values (new.name, clock_timestamp()) on conflict do nothing;
           return new;
         end $$;
         create trigger bench_seen after insert or update on salesforce.account
           for each row when (new.name like 'probe %') execute function public.bench_seen();",
    )
    .await
    .context("creating the visibility trigger")?;
    let running = RunningEngine::start(&engine).await?;
    let result = async {
        if !matches!(mode, Mode::Polling) {
            wait_for_events(&pg).await?;
        }
        let ids: Vec<String> = pg
            .query("select sfid from salesforce.account order by sfid", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        warm_up(sf, &pg, ids.first().context("no Accounts were loaded")?).await?;
        let idle_calls_per_hour = idle_calls(options, &endpoints.base).await? * 3600.0
            / options.idle_seconds.max(1) as f64;
        let (sent, calls_per_thousand) = edit(options, sf, &endpoints.base, &ids).await?;
        let latencies_ms = arrivals(&pg, &sent, polling_seconds).await?;
        anyhow::Ok(Measured {
            latencies_ms,
            idle_calls_per_hour,
            calls_per_thousand,
        })
    }
    .await;
    running.stop().await?;
    result
}

/// Waits until the mapping shows events flowing (its `events_transport` set).
async fn wait_for_events(pg: &tokio_postgres::Client) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let transport: Option<String> = pg
            .query_one("select events_transport from pgforce.mappings", &[])
            .await?
            .get(0);
        if transport.is_some() {
            // The subscription is open; give its first long poll a moment to be held.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("change events did not start flowing within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One edit read before measuring: the first read after a load reads the load's last
/// stamp again, which is not what the measurement is about.
async fn warm_up(sf: &Client, pg: &tokio_postgres::Client, id: &str) -> anyhow::Result<()> {
    let fields = serde_json::from_value(serde_json::json!({ "Name": "warm-up" }))?;
    sf.update("Account", id, &fields).await?;
    let started = Instant::now();
    loop {
        let name: String = pg
            .query_one(
                "select name from salesforce.account where sfid = $1",
                &[&id],
            )
            .await?
            .get(0);
        if name == "warm-up" {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the warm-up edit did not arrive within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The org's API requests counted so far.
async fn api_requests(base: &str) -> anyhow::Result<f64> {
    let stats: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/__emulator/stats"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    stats["usage"]["used"]
        .as_f64()
        .context("the emulator's stats carry no usage.used")
}

/// API requests made while nothing changes for `idle_seconds`.
async fn idle_calls(options: &Options, base: &str) -> anyhow::Result<f64> {
    let before = api_requests(base).await?;
    tokio::time::sleep(Duration::from_secs(options.idle_seconds)).await;
    Ok(api_requests(base).await? - before)
}

/// Sends the edits at the set rate; returns each edit's name with the moment it was sent,
/// and the org's API requests per 1,000 edits other than the edits themselves.
async fn edit(
    options: &Options,
    sf: &Client,
    base: &str,
    ids: &[String],
) -> anyhow::Result<(Vec<(String, SystemTime)>, f64)> {
    if ids.is_empty() {
        bail!("no Accounts were loaded");
    }
    let before = api_requests(base).await?;
    let own_before = sf.calls_made();
    let started = Instant::now();
    let every = Duration::from_secs_f64(1.0 / options.rate.max(0.001));
    let mut sent = Vec::with_capacity(options.changes);
    for n in 0..options.changes {
        let due = started + every * u32::try_from(n).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        let name = format!("probe {n}");
        let fields = serde_json::from_value(serde_json::json!({ "Name": name }))?;
        let at = SystemTime::now();
        sf.update("Account", &ids[n % ids.len()], &fields).await?;
        sent.push((name, at));
    }
    // Let the last changes be read before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let others = api_requests(base).await? - before - (sf.calls_made() - own_before) as f64;
    Ok((sent, others * 1000.0 / options.changes.max(1) as f64))
}

/// Waits until every edit is visible, then the latency of each in milliseconds.
async fn arrivals(
    pg: &tokio_postgres::Client,
    sent: &[(String, SystemTime)],
    polling_seconds: u64,
) -> anyhow::Result<Vec<f64>> {
    let deadline = Instant::now() + Duration::from_secs(60 + polling_seconds);
    loop {
        let seen: i64 = pg
            .query_one("select count(*) from public.bench_seen", &[])
            .await?
            .get(0);
        if seen as usize >= sent.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {seen} of {} edits reached Postgres", sent.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = pg
        .query(
            "select name, extract(epoch from seen_at)::float8 from public.bench_seen",
            &[],
        )
        .await?;
    let seen: std::collections::HashMap<String, f64> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    sent.iter()
        .map(|(name, at)| {
            let sent_at = at.duration_since(SystemTime::UNIX_EPOCH)?.as_secs_f64();
            let seen_at = seen
                .get(name)
                .with_context(|| format!("edit {name} was never seen"))?;
            Ok((seen_at - sent_at) * 1000.0)
        })
        .collect()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
