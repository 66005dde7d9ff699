//! Scenario `peers`: pgforce against what a team would otherwise script, on the same
//! emulator data and the same Postgres, in the same run.
//!
//! - Initial load: pgforce (through a Bulk query job above 10,000 records) against a
//!   simple-salesforce `query_all_iter` + psycopg `COPY` script (bench/peers/load.py) into
//!   a table of the same columns.
//! - Writes: every row updated, pgforce's writer (Bulk ingest for runs of 2,000+) against
//!   a simple-salesforce script sending the same update 200 records per collections call
//!   (bench/peers/update.py), at 0 ms and at 50 ms added per call.
//!
//! The Singer pair tap-salesforce → target-postgres is not compared: tap-salesforce 2.8.1
//! logs in at `https://login.salesforce.com` or `https://test.salesforce.com` only
//! (hard-coded in `tap_salesforce/salesforce/__init__.py`), and its bulk mode speaks Bulk
//! API 1.0 (`/services/async/…`), which the emulator does not serve; it cannot be pointed
//! at the emulator without changing its code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use pgforce_sync::DEFAULT_BULK_WRITE_THRESHOLD;
use serde_json::{Value, json};

use crate::client::start_emulator_with;
use crate::report::{Report, median};
use crate::scratch::{ScratchDatabase, load};
use crate::services::Services;
use crate::write::{Setup, bulk_update_rate};

/// Options of the peers scenario.
#[derive(Debug, Args)]
pub struct Options {
    #[command(flatten)]
    services: Services,
    /// Accounts loaded.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Accounts updated in the write comparison (the first ones of the load).
    #[arg(long, default_value_t = 50_000)]
    write_records: usize,
    /// Runs of each measurement (medians reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const FIELDS: [&str; 7] = [
    "Name",
    "Industry",
    "AnnualRevenue",
    "Phone",
    "Website",
    "BillingCity",
    "Rating",
];

/// The peers' Python, in bench/peers/.venv (created and filled on first use).
fn python() -> anyhow::Result<PathBuf> {
    let dir = Path::new("bench/peers");
    let venv = dir.join(".venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("creating bench/peers/.venv (needs python3 with venv)")?;
        if !status.success() {
            bail!("python3 -m venv bench/peers/.venv failed");
        }
    }
    let stamp = venv.join(".requirements");
    let wanted = std::fs::read_to_string(dir.join("requirements.txt"))
        .context("reading bench/peers/requirements.txt")?;
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(dir.join("requirements.txt"))
            .status()
            .context("installing the peers' packages")?;
        if !status.success() {
            bail!("pip install -r bench/peers/requirements.txt failed");
        }
        std::fs::write(&stamp, wanted)?;
    }
    Ok(python)
}

/// How to run the peers' scripts.
struct Peer {
    python: PathBuf,
    /// The emulator's HTTPS URL.
    login_url: String,
    /// Its certificate authority.
    ca: PathBuf,
}

/// Runs a peer script; returns its one-line JSON answer.
fn run_peer(peer: &Peer, script: &str, args: &[&str]) -> anyhow::Result<Value> {
    let output = Command::new(&peer.python)
        .arg(Path::new("bench/peers").join(script))
        .arg(&peer.login_url)
        .args(args)
        .env("REQUESTS_CA_BUNDLE", &peer.ca)
        .env("CURL_CA_BUNDLE", &peer.ca)
        .output()
        .with_context(|| format!("running bench/peers/{script}"))?;
    if !output.status.success() {
        bail!(
            "bench/peers/{script} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("bench/peers/{script} printed {line:?}"))
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

/// Runs the scenario.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let mut report = Report::new("peers");
    let python = python()?;
    // simple-salesforce speaks HTTPS only: the emulator serves both, the peers trust its CA.
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let ca = std::env::temp_dir().join(format!("pgforce-bench-peers-{}.pem", std::process::id()));
    let emulator =
        start_emulator_with(&options.services.emulator_bin, Some((tls_port, &ca)), &[]).await?;
    let https = format!("https://localhost:{tls_port}");
    reqwest::Client::new()
        .post(format!("{}/__emulator/seed", emulator.base))
        .json(&json!({ "Account": options.records }))
        .send()
        .await?
        .error_for_status()
        .context("seeding the org")?;
    let db = ScratchDatabase::create(&options.services.database_url, "peers").await?;
    let peer = Peer {
        python,
        login_url: https,
        ca,
    };
    let result = measure(&options, &peer, &emulator.base, &db.url, &mut report).await;
    let _ = std::fs::remove_file(&peer.ca);
    db.drop().await?;
    result?;
    Ok(report)
}

async fn measure(
    options: &Options,
    peer: &Peer,
    base: &str,
    db_url: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let setup = Setup {
        db_url,
        base,
        fields: &FIELDS,
    };
    let engine = setup.engine(DEFAULT_BULK_WRITE_THRESHOLD).await?;
    let pg = pgforce_store::connect(db_url).await?;
    pg.batch_execute(
        "create table public.peer_account (like salesforce.account including defaults)",
    )
    .await?;
    let mut peer_fields = vec!["Id"];
    peer_fields.extend(FIELDS);
    let credentials = ["admin@example.com", "pgforce", "pgforce", "pgforce"];

    let (mut ours, mut theirs, mut our_calls, mut their_calls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.runs {
        let started = Instant::now();
        let (rows, calls) = load(&engine).await?;
        ours.push(rows as f64 / started.elapsed().as_secs_f64());
        our_calls.push(calls as f64);
        pg.batch_execute("truncate public.peer_account").await?;
        let mut args: Vec<&str> = credentials.to_vec();
        args.extend([db_url, "public.peer_account"]);
        args.extend(&peer_fields);
        let peer = run_peer(peer, "load.py", &args)?;
        let records = peer["records"].as_f64().unwrap_or_default();
        if records as usize != options.records {
            bail!(
                "the peer loaded {records} records, expected {}",
                options.records
            );
        }
        theirs.push(records / peer["seconds"].as_f64().unwrap_or(f64::MAX));
        their_calls.push(peer["calls"].as_f64().unwrap_or_default());
    }
    let (ours, theirs) = (median(&mut ours), median(&mut theirs));
    let note = format!(
        "{} Accounts x {} fields, median of {}",
        options.records,
        FIELDS.len(),
        options.runs
    );
    report.add("initial load, pgforce", ours, "records/s", &note);
    report.add(
        "initial load, simple-salesforce query_all + COPY",
        theirs,
        "records/s",
        &note,
    );
    report.add(
        "initial load, pgforce / simple-salesforce",
        ours / theirs,
        "x",
        "",
    );
    report.add(
        "initial load API calls, pgforce",
        median(&mut our_calls),
        "calls",
        "Bulk query job",
    );
    report.add(
        "initial load API calls, simple-salesforce",
        median(&mut their_calls),
        "calls",
        "REST pages of 2,000",
    );

    // Writes: only the first write_records rows, so both sides send the same changes.
    pg.batch_execute(&format!(
        "set xmlbinary = 'hex';
         delete from salesforce.account where id not in
             (select id from salesforce.account order by id limit {});
         set xmlbinary = 'base64'",
        options.write_records
    ))
    .await?;
    let ids: Vec<String> = pg
        .query("select sfid from salesforce.account", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if ids.len() != options.write_records {
        bail!(
            "{} rows kept for the write comparison, expected {}",
            ids.len(),
            options.write_records
        );
    }
    for latency in [0_u64, 50] {
        set_latency(base, latency).await?;
        let label = format!("{latency} ms emulator latency");
        let writer = setup.start_writer(DEFAULT_BULK_WRITE_THRESHOLD).await?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for run in 0..options.runs {
            let (rate, _) = bulk_update_rate(&pg, ids.len(), run).await?;
            ours.push(rate);
            let mut args: Vec<&str> = credentials.to_vec();
            let peer_value = format!("Peer {latency}-{run}");
            let count = ids.len().to_string();
            args.push(&peer_value);
            args.push(&count);
            let peer = run_peer(peer, "update.py", &args)?;
            theirs.push(
                peer["records"].as_f64().unwrap_or_default()
                    / peer["seconds"].as_f64().unwrap_or(f64::MAX),
            );
        }
        writer.stop().await?;
        let (ours, theirs) = (median(&mut ours), median(&mut theirs));
        let note = format!(
            "{} records each: pgforce from the commit of one UPDATE until all written; the peer 200 per call",
            ids.len()
        );
        report.add(
            &format!("writes, pgforce ({label})"),
            ours,
            "records/s",
            &note,
        );
        report.add(
            &format!("writes, simple-salesforce batches of 200 ({label})"),
            theirs,
            "records/s",
            "",
        );
        report.add(
            &format!("writes, pgforce / simple-salesforce ({label})"),
            ours / theirs,
            "x",
            "",
        );
    }
    Ok(())
}
