//! Scenario `write`: Postgres → Salesforce, through the engine as `pgforce run` runs it.
//!
//! For each emulator latency (0 ms and 50 ms added per call):
//! - Latency: a row is updated in Postgres (one committed statement, as an app does) and
//!   the time until its trigger-log row reads SUCCESS is measured: commit → captured →
//!   LISTEN wake-up → sent → Salesforce acknowledged → outcome recorded.
//! - Throughput: every one of N rows is updated in one statement and the time from its
//!   commit until all N log rows read SUCCESS gives records per second (the statement's
//!   own time, capture triggers included, is reported beside it). Baseline, same run: the same updates
//!   sent straight with sObject Collections, 200 per call, one call after another, with no
//!   database at all — what a simple sequential client achieves.
//! - Throughput is measured twice: through sObject Collections only, and with runs of
//!   2,000+ changes going as Bulk API ingest jobs (the default).
//! - API calls per 1,000 records, from the emulator's call counter.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use pgforce_salesforce::Client;
use pgforce_salesforce::rest::Record;
use pgforce_sync::{Access, DEFAULT_BULK_WRITE_THRESHOLD};
use serde_json::json;

use crate::client::start_emulator;
use crate::report::{Report, median, percentile};
use crate::scratch::{RunningEngine, ScratchDatabase, account_connection, engine, load};
use crate::services::Services;

/// Options of the write scenario.
#[derive(Debug, Args)]
pub struct Options {
    #[command(flatten)]
    services: Services,
    /// Accounts updated per throughput run.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Throughput runs per latency setting (medians reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Single-row edits whose latency is measured per latency setting.
    #[arg(long, default_value_t = 30)]
    edits: usize,
}

/// Emulator latencies measured, in ms per call.
const LATENCIES_MS: [u64; 2] = [0, 50];

/// Runs the scenario.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let mut report = Report::new("write");
    let emulator = start_emulator(&options.services.emulator_bin).await?;
    let http = reqwest::Client::new();
    http.post(format!("{}/__emulator/seed", emulator.base))
        .json(&json!({ "Account": options.records }))
        .send()
        .await?
        .error_for_status()?;
    let sf = crate::scratch::emulator_client(&emulator.base)?;
    let db = ScratchDatabase::create(&options.services.database_url, "write").await?;
    let result = measure(&options, &sf, &emulator.base, &db.url, &mut report).await;
    db.drop().await?;
    result?;
    Ok(report)
}

async fn set_latency(base: &str, ms: u64) -> anyhow::Result<()> {
    reqwest::Client::new()
        .put(format!("{base}/__emulator/faults"))
        .json(&json!({ "latencyMs": ms }))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

async fn api_calls(base: &str) -> anyhow::Result<f64> {
    let stats: serde_json::Value = reqwest::get(format!("{base}/__emulator/stats"))
        .await?
        .json()
        .await?;
    Ok(stats["api"]["totalCalls"].as_f64().unwrap_or_default())
}

/// The fields the write scenarios map.
const FIELDS: [&str; 4] = ["Name", "Industry", "AnnualRevenue", "Phone"];

async fn measure(
    options: &Options,
    sf: &Client,
    base: &str,
    db_url: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let setup = Setup {
        db_url,
        base,
        fields: &FIELDS,
    };
    let loaded = setup.engine(DEFAULT_BULK_WRITE_THRESHOLD).await?;
    load(&loaded).await?;
    let pg = pgforce_store::connect(db_url).await?;
    // Latencies first, on a quiet database: the throughput runs leave hundreds of
    // thousands of dead tuples for autovacuum, which would slow single commits.
    let worker = setup.start_writer(DEFAULT_BULK_WRITE_THRESHOLD).await?;
    for latency_ms in LATENCIES_MS {
        set_latency(base, latency_ms).await?;
        let label = format!("{latency_ms} ms emulator latency");
        let mut latencies = edit_latencies(&pg, options.edits).await?;
        report.add(
            &format!("PG→SF latency, median ({label})"),
            median(&mut latencies),
            "ms",
            &format!("commit until SUCCESS, {} single-row edits", options.edits),
        );
        report.add(
            &format!("PG→SF latency, p99 ({label})"),
            percentile(&mut latencies, 99.0),
            "ms",
            "",
        );
    }
    worker.stop().await?;
    for latency_ms in LATENCIES_MS {
        set_latency(base, latency_ms).await?;
        let label = format!("{latency_ms} ms emulator latency");
        let mut direct = Vec::new();
        for run in 0..options.runs {
            direct.push(direct_update_rate(sf, &pg, run).await?);
        }
        let direct = median(&mut direct);
        report.add(
            &format!("direct collections updates, baseline ({label})"),
            direct,
            "records/s",
            "same records, 200 per call, sequential, no database",
        );
        for (path, bulk_threshold) in [
            ("sObject Collections", u64::MAX),
            ("Bulk API ingest", DEFAULT_BULK_WRITE_THRESHOLD),
        ] {
            let worker = setup.start_writer(bulk_threshold).await?;
            let (mut rates, mut calls, mut captures) = (Vec::new(), Vec::new(), Vec::new());
            for run in 0..options.runs {
                let before = api_calls(base).await?;
                let (rate, capture_ms) = bulk_update_rate(&pg, options.records, run).await?;
                rates.push(rate);
                captures.push(capture_ms);
                calls.push((api_calls(base).await? - before) * 1000.0 / options.records as f64);
            }
            worker.stop().await?;
            let rate = median(&mut rates);
            report.add(
                &format!("PG→SF throughput, {path} ({label})"),
                rate,
                "records/s",
                &format!(
                    "{} rows updated in one statement; commit until all SUCCESS, median of {}",
                    options.records, options.runs
                ),
            );
            report.add(
                &format!("pgforce / baseline, {path} ({label})"),
                rate / direct,
                "x",
                "",
            );
            report.add(
                &format!("API calls per 1,000 records, {path} ({label})"),
                median(&mut calls),
                "calls",
                "emulator call counter",
            );
            report.add(
                &format!("the app's UPDATE statement itself, {path} ({label})"),
                median(&mut captures),
                "ms",
                "capture triggers included; not in the throughput",
            );
        }
    }
    Ok(())
}

/// What every writer of a scenario works on: Account with `fields`, read-write, never
/// polled while measuring (the poll interval is a day; the engine reads once at start).
pub(crate) struct Setup<'a> {
    pub db_url: &'a str,
    pub base: &'a str,
    pub fields: &'a [&'a str],
}

impl Setup<'_> {
    /// The engine, with runs of `bulk_threshold` changes going as Bulk API ingest jobs.
    pub(crate) async fn engine(&self, bulk_threshold: u64) -> anyhow::Result<pgforce_sync::Engine> {
        let connection = account_connection(
            self.base,
            self.fields,
            Access::ReadWrite,
            86_400,
            bulk_threshold,
        )?;
        engine(self.db_url, connection).await
    }

    /// The engine running, its writer ready for work.
    pub(crate) async fn start_writer(&self, bulk_threshold: u64) -> anyhow::Result<RunningEngine> {
        RunningEngine::start(&self.engine(bulk_threshold).await?).await
    }
}

/// Commits single-row updates one at a time and times each until its log row is SUCCESS.
async fn edit_latencies(pg: &tokio_postgres::Client, edits: usize) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(edits);
    for n in 0..edits {
        let committed = Instant::now();
        let id = i32::try_from(n % 1000)? + 1;
        pg.execute(
            "update salesforce.account set phone = $1 where id = $2",
            &[&format!("+1 555 {n:04} {}", unique_suffix()), &id],
        )
        .await?;
        let newest: i32 = pg
            .query_one("select max(id) from salesforce._trigger_log", &[])
            .await?
            .get(0);
        loop {
            let state: String = pg
                .query_one(
                    "select state::text from salesforce._trigger_log where id = $1",
                    &[&newest],
                )
                .await?
                .get(0);
            if state == "SUCCESS" {
                latencies.push(committed.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if committed.elapsed() > Duration::from_secs(30) {
                let row = pg
                    .query_one(
                        "select action::text, record_id, coalesce(\"values\", ''), coalesce(old, '') from salesforce._trigger_log where id = $1",
                        &[&newest],
                    )
                    .await?;
                bail!(
                    "edit {n} (log row {newest}: {} of row {}, values {}, old {}) was not written within 30 s (state {state})",
                    row.get::<_, String>(0),
                    row.get::<_, i32>(1),
                    row.get::<_, String>(2),
                    row.get::<_, String>(3)
                );
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        // Edits land at different moments relative to the writer's safety-net timer.
        tokio::time::sleep(Duration::from_millis(37 * (n as u64 % 5))).await;
    }
    Ok(latencies)
}

/// Differs on every call, so every edit really changes the row (an unchanged row is not
/// captured: its log row reads IGNORE).
fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Updates every row in one statement and waits until all are written.
pub(crate) async fn bulk_update_rate(
    pg: &tokio_postgres::Client,
    records: usize,
    run: usize,
) -> anyhow::Result<(f64, f64)> {
    let statement = Instant::now();
    let changed = pg
        .execute(
            "update salesforce.account set industry = $1",
            &[&format!("Run {run} {}", unique_suffix())],
        )
        .await?;
    if changed as usize != records {
        bail!("updated {changed} rows, expected {records}");
    }
    let capture_ms = statement.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    loop {
        let open: i64 = pg
            .query_one(
                "select count(*) from salesforce._trigger_log where state in ('NEW', 'PENDING')",
                &[],
            )
            .await?
            .get(0);
        if open == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("{open} updates still unwritten after 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed: i64 = pg
        .query_one(
            "select count(*) from salesforce._trigger_log where state = 'FAILED'",
            &[],
        )
        .await?
        .get(0);
    if failed > 0 {
        bail!("{failed} updates failed");
    }
    Ok((records as f64 / started.elapsed().as_secs_f64(), capture_ms))
}

/// Sends the same kind of updates straight to Salesforce, 200 per call, in sequence.
async fn direct_update_rate(
    sf: &Client,
    pg: &tokio_postgres::Client,
    run: usize,
) -> anyhow::Result<f64> {
    let ids: Vec<String> = pg
        .query("select sfid from salesforce.account order by id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let started = Instant::now();
    for chunk in ids.chunks(200) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|id| {
                serde_json::from_value(
                    json!({ "Id": id, "Industry": format!("Direct {run} {}", unique_suffix()) }),
                )
            })
            .collect::<Result<_, _>>()?;
        let results = sf.update_records("Account", &records, false).await?;
        if results.iter().any(|r| !r.success) {
            bail!("a direct update failed");
        }
    }
    Ok(ids.len() as f64 / started.elapsed().as_secs_f64())
}
