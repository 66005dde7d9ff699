//! pgforce's benchmark harness: named scenarios that print a table and write JSON.
//!
//! Each scenario measures its own baseline in the same run and reports medians of several
//! runs, so figures compare like with like on whatever machine runs them.

/// mimalloc keeps the emulator's millions of small strings compact (no per-allocation
/// header) and returns freed memory, where the system allocator would hold on to it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod client;
mod emulator;
mod events;
mod full_report;
mod odata;
mod peers;
mod report;
mod scratch;
mod server;
mod services;
mod sync;
mod write;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "pgforce-bench", about = "pgforce benchmarks")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Where to write the JSON report.
    #[arg(long, global = true, default_value = "bench/results/latest.json")]
    report_path: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// The Salesforce emulator: memory per record, query paging and collections writes.
    Emulator(emulator::Options),
    /// The Salesforce client: records per second streamed by query, and its CPU share.
    Client(client::Options),
    /// Salesforce → Postgres: initial load vs `psql \copy`, peak memory, poll latency.
    Sync(sync::Options),
    /// Postgres → Salesforce: write latency and throughput vs direct collections calls.
    Write(write::Options),
    /// Salesforce → Postgres latency and API calls with Pub/Sub events, CometD events and
    /// polling every second.
    Events(events::Options),
    /// pgforce against simple-salesforce scripts on the same data (Python, bench/peers).
    Peers(peers::Options),
    /// The HTTP server: `/metrics` p50/p99 at 1, 100 and 1,000 mappings, API requests per
    /// second on one process and the pool's Postgres sessions.
    Server(server::Options),
    /// The OData service on a 1M-row table: full scan and indexed filter rows per second
    /// against `psql`, single-key read p50/p99 against tokio-postgres, deep page cost.
    Odata(odata::Options),
    /// Every scenario, then docs/benchmarks.md and bench/results/latest.json.
    Report(full_report::Options),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(async {
        match cli.scenario {
            Scenario::Emulator(options) => emulator::run(options).await,
            Scenario::Events(options) => events::run(options).await,
            Scenario::Client(options) => client::run(options).await,
            Scenario::Sync(options) => sync::run(options).await,
            Scenario::Write(options) => write::run(options).await,
            Scenario::Peers(options) => peers::run(options).await,
            Scenario::Server(options) => server::run(options).await,
            Scenario::Odata(options) => odata::run(options).await,
            Scenario::Report(options) => full_report::run(options).await,
        }
    })?;
    report.print();
    report.write(&cli.report_path)?;
    Ok(())
}
