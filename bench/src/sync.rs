//! Scenario `sync`: Salesforce → Postgres.
//!
//! - Initial load of N Accounts (15 fields; above 10,000 through a Bulk API query job) from the emulator (a separate process) into a
//!   fresh database: records per second, against the baseline of `psql \copy` loading the
//!   very same rows into the very same (emptied) table in the same run; and pgforce's peak
//!   resident memory (VmHWM of this process, which only runs the client and the reader).
//! - Latency with `polling_seconds = 1`: a poller polls every second, as `pgforce run`
//!   does; records are edited in the org at random moments and the time until the change
//!   is visible in Postgres is measured.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use pgforce_salesforce::{Client, ClientConfig};
use pgforce_store::Ident;
use pgforce_store::ddl::Access;
use pgforce_sync::mapping::Mapping;
use pgforce_sync::reader::{Target, initial_load, poll_once};

use crate::client::start_emulator;
use crate::report::{Report, median, percentile};
use crate::scratch::{MappedAccount, ScratchDatabase};
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
    let credentials = crate::report::emulator_credentials();
    let sf = Client::new(ClientConfig::new(emulator.base.clone(), credentials))?;

    let db = ScratchDatabase::create(&options.services.database_url, "sync").await?;
    let result = measure(&options, &sf, &db.url, &mut report).await;
    db.drop().await?;
    result?;
    Ok(report)
}

async fn measure(
    options: &Options,
    sf: &Client,
    db_url: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (mut pg, account) = MappedAccount::create(db_url, sf, &FIELDS, Access::ReadOnly).await?;
    let target = account.target();

    let rss_before = crate::report::proc_status_bytes("VmHWM:");
    let mut load_rates = Vec::new();
    let mut load_calls = Vec::new();
    for _ in 0..options.runs {
        let started = Instant::now();
        let outcome = initial_load(sf, &mut pg, &target, &mut |_| {}).await?;
        load_calls.push(outcome.api_calls as f64);
        if outcome.applied != options.records as u64 {
            bail!(
                "loaded {} records, expected {}",
                outcome.applied,
                options.records
            );
        }
        load_rates.push(outcome.applied as f64 / started.elapsed().as_secs_f64());
    }
    let peak = crate::report::proc_status_bytes("VmHWM:");

    // Baseline: the same rows, exported to a file, loaded into the same table by psql.
    let columns: Vec<String> = account
        .mapping
        .fields
        .iter()
        .map(|f| f.column.as_str().to_owned())
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
    let load = median(&mut load_rates);
    let copy = median(&mut copy_rates);
    report.add(
        "initial load",
        load,
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
    report.add("load / \\copy", load / copy, "x", "");
    report.add(
        "API calls per load",
        median(&mut load_calls),
        "calls",
        if options.records as u64 > pgforce_sync::mapping::DEFAULT_BULK_THRESHOLD {
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
    initial_load(sf, &mut pg, &target, &mut |_| {}).await?;
    let latencies = poll_latency(
        options,
        sf,
        db_url,
        &account.schema,
        &account.mapping,
        account.mapping_id,
    )
    .await?;
    let mut samples = latencies;
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

async fn poll_latency(
    options: &Options,
    sf: &Client,
    db_url: &str,
    schema: &Ident,
    mapping: &Mapping,
    mapping_id: i64,
) -> anyhow::Result<Vec<f64>> {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let poller = {
        let (sf, db_url, schema, mapping) = (
            sf.clone(),
            db_url.to_owned(),
            schema.clone(),
            mapping.clone(),
        );
        tokio::spawn(async move {
            let mut pg = pgforce_store::connect(&db_url).await?;
            let target = Target {
                schema: &schema,
                mapping: &mapping,
                mapping_id,
            };
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = ticker.tick() => { poll_once(&sf, &mut pg, &target).await?; }
                    _ = stopped.changed() => return anyhow::Ok(()),
                }
            }
        })
    };
    let reader = pgforce_store::connect(db_url).await?;
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
    let _ = stop.send(true);
    poller.await??;
    Ok(latencies)
}
