//! Scenario `sync`: Salesforce → Postgres.
//!
//! - Initial load of N Accounts (15 fields; above 10,000 through a Bulk API query job) from the emulator (a separate process) into a
//!   fresh database: records per second, against the baseline of `psql \copy` loading the
//!   very same rows into the very same (emptied) table in the same run; and pgforce's peak
//!   resident memory (VmHWM of this process, which only runs the client and the reader).
//! - Latency with `polling_seconds = 1`: the engine runs as `pgforce run` runs it;
//!   records are edited in the org at random moments and the time until the change is
//!   visible in Postgres is measured.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use pgforce_salesforce::Client;
use pgforce_sync::{Access, DEFAULT_BULK_THRESHOLD, DEFAULT_BULK_WRITE_THRESHOLD};

use crate::client::start_emulator;
use crate::report::{Report, median, percentile};
use crate::scratch::{RunningEngine, ScratchDatabase, account_connection, engine, load};
use crate::services::Services;

/// Options of the sync scenario.
#[derive(Debug, Args)]
pub struct Options {
    #[command(flatten)]
    services: Services,
    /// Accounts to load.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Runs of the load and of the baseline (medians reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Edits whose latency is measured.
    #[arg(long, default_value_t = 20)]
    edits: usize,
}

const FIELDS: [&str; 15] = [
    "Name",
    "Type",
    "Industry",
    "AnnualRevenue",
    "NumberOfEmployees",
    "BillingStreet",
    "BillingCity",
    "BillingState",
    "BillingPostalCode",
    "BillingCountry",
    "Phone",
    "Website",
    "Rating",
    "OwnerId",
    "CreatedDate",
];

/// Runs the scenario.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let mut report = Report::new("sync");
    let emulator = start_emulator(&options.services.emulator_bin).await?;
    reqwest::Client::new()
        .post(format!("{}/__emulator/seed", emulator.base))
        .json(&serde_json::json!({ "Account": options.records }))
        .send()
        .await?
        .error_for_status()
        .context("seeding the org")?;
    let sf = crate::scratch::emulator_client(&emulator.base)?;

    let db = ScratchDatabase::create(&options.services.database_url, "sync").await?;
    let result = measure(&options, &sf, &emulator.base, &db.url, &mut report).await;
    db.drop().await?;
    result?;
    Ok(report)
}

async fn measure(
    options: &Options,
    sf: &Client,
    base: &str,
    db_url: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let connection = account_connection(
        base,
        &FIELDS,
        Access::ReadOnly,
        1,
        DEFAULT_BULK_WRITE_THRESHOLD,
    )?;
    let engine = engine(db_url, connection).await?;
    let pg = pgforce_store::connect(db_url).await?;

    let rss_before = crate::report::proc_status_bytes("VmHWM:");
    let mut load_rates = Vec::new();
    let mut load_calls = Vec::new();
    for _ in 0..options.runs {
        let started = Instant::now();
        let (rows, calls) = load(&engine).await?;
        load_calls.push(calls as f64);
        if rows != options.records as u64 {
            bail!("loaded {rows} records, expected {}", options.records);
        }
        load_rates.push(rows as f64 / started.elapsed().as_secs_f64());
    }
    let peak = crate::report::proc_status_bytes("VmHWM:");

    // Baseline: the same rows, exported to a file, loaded into the same table by psql.
    // The mapping's columns: Id, SystemModstamp and IsDeleted, then the fields.
    let columns: Vec<String> = ["sfid", "systemmodstamp", "isdeleted"]
        .into_iter()
        .map(str::to_owned)
        .chain(FIELDS.iter().map(|f| f.to_lowercase()))
        .collect();
    let file = std::env::temp_dir().join(format!("pgforce_bench_{}.tsv", std::process::id()));
    let export = format!(
        "\\copy (select {} from salesforce.account) to '{}'",
        columns.join(", "),
        file.display()
    );
    psql(db_url, &[&export])?;
    let mut copy_rates = Vec::new();
    for _ in 0..options.runs {
        pg.batch_execute("truncate salesforce.account").await?;
        let started = Instant::now();
        let load = format!(
            "\\copy salesforce.account ({}) from '{}'",
            columns.join(", "),
            file.display()
        );
        // As pgforce's own writes do, so the capture trigger skips the rows in both loads.
        psql(db_url, &["set xmlbinary = 'hex'", &load])?;
        copy_rates.push(options.records as f64 / started.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_file(&file);
    let load_rate = median(&mut load_rates);
    let copy = median(&mut copy_rates);
    report.add(
        "initial load",
        load_rate,
        "records/s",
        &format!(
            "{} Accounts x 15 fields, median of {}",
            options.records, options.runs
        ),
    );
    report.add(
        "psql \\copy of the same rows (baseline)",
        copy,
        "records/s",
        "same table, same run",
    );
    report.add("load / \\copy", load_rate / copy, "x", "");
    report.add(
        "API calls per load",
        median(&mut load_calls),
        "calls",
        if options.records as u64 > DEFAULT_BULK_THRESHOLD {
            "through a Bulk API query job (above 10,000 records)"
        } else {
            "REST query pages"
        },
    );
    report.add(
        "peak memory (pgforce process)",
        peak as f64 / 1_048_576.0,
        "MiB",
        &format!(
            "VmHWM; {:.0} MiB before loading",
            rss_before as f64 / 1_048_576.0
        ),
    );

    // Reload so the table is pgforce's again, then measure poll latency.
    load(&engine).await?;
    let running = RunningEngine::start(&engine).await?;
    let latencies = poll_latency(options, sf, &pg).await;
    running.stop().await?;
    let mut samples = latencies?;
    report.add(
        "SF→PG latency, median",
        median(&mut samples),
        "ms",
        &format!("polling_seconds = 1, {} edits", options.edits),
    );
    report.add(
        "SF→PG latency, p99",
        percentile(&mut samples, 99.0),
        "ms",
        "",
    );
    Ok(())
}

/// Runs psql commands in one session (each its own `-c`).
fn psql(url: &str, commands: &[&str]) -> anyhow::Result<()> {
    let mut args = vec![url, "-v", "ON_ERROR_STOP=1", "-q"];
    for command in commands {
        args.extend(["-c", command]);
    }
    let status = Command::new("psql")
        .args(&args)
        .status()
        .context("running psql (install the PostgreSQL client)")?;
    if !status.success() {
        bail!("psql failed: {}", commands.join("; "));
    }
    Ok(())
}

/// Edits records in the org while the engine polls every second; the time from each edit
/// until Postgres shows it.
async fn poll_latency(
    options: &Options,
    sf: &Client,
    reader: &tokio_postgres::Client,
) -> anyhow::Result<Vec<f64>> {
    let ids: Vec<String> = reader
        .query(
            "select sfid from salesforce.account limit $1",
            &[&(options.edits as i64)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut latencies = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        // Edits land at different moments of the poll interval.
        tokio::time::sleep(Duration::from_millis(137 * (n as u64 % 7) + 50)).await;
        let name = format!("latency probe {n}");
        let fields = serde_json::from_value(serde_json::json!({ "Name": name }))?;
        let edited = Instant::now();
        sf.update("Account", id, &fields).await?;
        loop {
            let seen: String = reader
                .query_one("select name from salesforce.account where sfid = $1", &[id])
                .await?
                .get(0);
            if seen == name {
                latencies.push(edited.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if edited.elapsed() > Duration::from_secs(30) {
                bail!("edit {n} did not arrive within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(latencies)
}
