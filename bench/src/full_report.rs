//! Scenario `report`: runs every scenario, each in its own process (so peak memory is its
//! own), and writes `docs/benchmarks.md` and the combined JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;

use crate::report::Report;

/// Options of the report.
#[derive(Debug, Args)]
pub struct Options {
    /// Records for the sync and peers scenarios.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Records updated in the write scenario.
    #[arg(long, default_value_t = 100_000)]
    write_records: usize,
    /// Runs per measurement.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where the Markdown goes.
    #[arg(long, default_value = "docs/benchmarks.md")]
    markdown: std::path::PathBuf,
    /// Run only these scenarios (comma-separated) and take the others' figures from their
    /// last results in bench/results/ (default: run all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// How each scenario is run: name and arguments.
fn plan(options: &Options) -> Vec<(&'static str, Vec<String>)> {
    let (records, writes, runs) = (
        options.records.to_string(),
        options.write_records.to_string(),
        options.runs.to_string(),
    );
    vec![
        (
            "emulator",
            vec![
                "--records".into(),
                records.clone(),
                "--runs".into(),
                "5".into(),
            ],
        ),
        ("client", vec!["--runs".into(), runs.clone()]),
        (
            "sync",
            vec!["--records".into(), records, "--runs".into(), runs.clone()],
        ),
        (
            "events",
            vec![
                "--records".into(),
                "1000".into(),
                "--changes".into(),
                "1000".into(),
                "--rate".into(),
                "20".into(),
                "--idle-seconds".into(),
                "60".into(),
            ],
        ),
        (
            "write",
            vec!["--records".into(), writes, "--runs".into(), runs.clone()],
        ),
        ("server", vec!["--mappings".into(), "1,100,1000".into()]),
        (
            "odata",
            vec![
                "--rows".into(),
                options.records.to_string(),
                "--runs".into(),
                runs.clone(),
            ],
        ),
        (
            "peers",
            vec![
                "--records".into(),
                (options.records / 5).max(20_000).to_string(),
                "--write-records".into(),
                (options.write_records / 2).max(10_000).to_string(),
                "--runs".into(),
                runs,
            ],
        ),
    ]
}

/// What each scenario measures, for the Markdown.
fn describe(scenario: &str) -> &'static str {
    match scenario {
        "emulator" => {
            "The Salesforce emulator itself: memory per record, query paging, collections writes (in-process)."
        }
        "client" => {
            "The Salesforce client: records per second streamed by REST query, against raw HTTP paging in the same run."
        }
        "sync" => {
            "Salesforce → Postgres: initial load (Bulk query job above 10,000 records) against `psql \\copy` of the same rows into the same table; peak memory of the pgforce process; latency from an edit in the org until the row changed, polling every second."
        }
        "events" => {
            "Salesforce → Postgres with change events: latency from sending an edit to the org until a trigger on the mapped table saw it (median and p99 over 1,000 edits at 20 per second), with events over the Pub/Sub API and over CometD (`polling_seconds = 300`, a safety net only), and over Pub/Sub with `apply_events = true` (values stored from the events, no reads), against polling every second without events in the same run; the org's API requests per hour while idle and per 1,000 changes, the edits' own calls left out."
        }
        "write" => {
            "Postgres → Salesforce: latency from commit until the trigger-log row reads SUCCESS; throughput for every row updated in one statement, through sObject Collections and through Bulk ingest, against direct collections calls without a database; API calls per 1,000 records; at 0 ms and 50 ms added per emulator call."
        }
        "server" => {
            "The HTTP server in one process: `/metrics` p50 and p99 over 200 scrapes one after another at 1, 100 and 1,000 mappings (one custom object each in an emulator org; tables created, workers not running), against the exact status a scrape read before it used Postgres's row estimates (a `count(*)` per mapping on empty tables, its least cost; timed in process, 50 times); API requests per second (`GET /api/v3/connections`, a view token, 64 clients at once) and the most pooled Postgres sessions meanwhile (`[database] pool_size` 4)."
        }
        "odata" => {
            "The OData 4.0 service on `archive.closed_case` (text key like an sfid, seven columns, an index on (status, closeddate), loaded by `generate_series` and analyzed), served in process over HTTP with keep-alive and Basic credentials, requests one after another: rows per second of a full scan following `@odata.nextLink` (pages of 2,000) and of an indexed `$filter` (~1 % of rows), each against `psql \\copy` of the same select to /dev/null in the same run; p50/p99 of reads by key (`<set>('<id>')`, random keys) against the same prepared select through tokio-postgres; the first page against a deep one reached by the chain's `$skiptoken` (keyset paging)."
        }
        "peers" => {
            "Side by side on the same emulator data and Postgres: pgforce against a simple-salesforce `query_all` + `COPY` script for the initial load, and against a simple-salesforce script updating 200 records per call for writes. The Singer pair tap-salesforce → target-postgres could not be run: tap-salesforce 2.8.1 logs in only at `login.salesforce.com` or `test.salesforce.com` (hard-coded in `tap_salesforce/salesforce/__init__.py`) and its bulk mode uses Bulk API 1.0, which the emulator does not serve."
        }
        _ => "",
    }
}

/// Runs every scenario and writes the report.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let exe = std::env::current_exe().context("finding the bench binary")?;
    let mut combined = Report::new("report");
    let mut markdown = String::from(
        "# Benchmarks\n\nWritten by `cargo run --release -p pgforce-bench -- report` (build `cargo build --release -p pgforce` first). \
         Every figure is a median of several runs; every ratio is against a baseline measured in the same run, on the same machine, data and PostgreSQL. \
         JSON: `bench/results/<scenario>.json` and `bench/results/latest.json`.\n\n",
    );
    let _ = writeln!(markdown, "Machine: {}.\n", combined.machine);
    for (scenario, args) in plan(&options) {
        let path = format!("bench/results/{scenario}.json");
        if options.only.is_empty() || options.only.iter().any(|o| o == scenario) {
            eprintln!("running {scenario} …");
            let status = Command::new(&exe)
                .arg(scenario)
                .args(&args)
                .args(["--report-path", &path])
                .status()
                .with_context(|| format!("running the {scenario} scenario"))?;
            if !status.success() {
                bail!("the {scenario} scenario failed");
            }
        }
        let report: Report = serde_json::from_str(
            &std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?,
        )
        .with_context(|| format!("parsing {path}"))?;
        let _ = writeln!(markdown, "## {scenario}\n\n{}\n", describe(scenario));
        let _ = writeln!(markdown, "`pgforce-bench {scenario} {}`\n", args.join(" "));
        markdown.push_str("| measure | value | unit | how |\n|---|---:|---|---|\n");
        for row in &report.rows {
            let _ = writeln!(
                markdown,
                "| {} | {:.2} | {} | {} |",
                row.name, row.value, row.unit, row.note
            );
            combined.add(
                &format!("{scenario}: {}", row.name),
                row.value,
                &row.unit,
                &row.note,
            );
        }
        markdown.push('\n');
    }
    markdown.push_str(
        "## Against Heroku Connect's published intervals\n\n\
         Heroku Connect polls Salesforce every 2 to 60 minutes per mapping (default 10; accelerated polling notifies sooner) \
         and reads Postgres changes at most every 10 seconds, otherwise every 2 minutes. \
         pgforce's Salesforce → Postgres latency above is measured with `polling_seconds = 1`; its Postgres → Salesforce latency is \
         the time from commit to Salesforce's acknowledgement, woken by LISTEN/NOTIFY.\n",
    );
    write_file(&options.markdown, &markdown)?;
    Ok(combined)
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
