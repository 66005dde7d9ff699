//! The HTTP server under load: what a `/metrics` scrape costs as mappings grow, how many
//! API requests one process answers per second, and how many Postgres sessions it takes
//! to do so (the pool's bound, `[database] pool_size`).
//!
//! Each mapping count gets its own emulator org (one custom object per mapping, from a
//! generated schema file) and its own scratch database; the engine applies the mappings
//! (schema, tables, catalog) and the server serves it in this process. The engine's
//! workers do not run: a scrape reads the catalog and the tables' statistics whether or
//! not they do, and a thousand readers polling would measure the emulator instead.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use pgforce_sync::{Engine, EngineOptions, Role};

use crate::client::start_emulator_with;
use crate::report::Report;
use crate::scratch::ScratchDatabase;
use crate::services::Services;

/// Options of the server scenario.
#[derive(Debug, Args)]
pub struct Options {
    #[command(flatten)]
    services: Services,
    /// Mapping counts to scrape at (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    mappings: Vec<usize>,
    /// Scrapes timed at each mapping count (one after another).
    #[arg(long, default_value_t = 200)]
    scrapes: usize,
    /// API requests sent for the throughput figure.
    #[arg(long, default_value_t = 5_000)]
    api_requests: usize,
    /// Clients sending them at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// Runs the scenario.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let mut report = Report::new("server");
    for &count in &options.mappings {
        let schema = schema_file(count)?;
        let emulator = start_emulator_with(
            &options.services.emulator_bin,
            None,
            &["--schema".to_owned(), schema.display().to_string()],
        )
        .await?;
        let db = ScratchDatabase::create(&options.services.database_url, &format!("server{count}"))
            .await?;
        let result = measure(&options, count, &emulator.base, &db.url, &mut report).await;
        db.drop().await?;
        std::fs::remove_file(&schema).ok();
        result?;
    }
    Ok(report)
}

/// One custom object per mapping, `Bench0000__c` …, each with a name.
fn object(i: usize) -> String {
    format!("Bench{i:04}__c")
}

/// Writes the schema file of `count` objects; returns its path.
fn schema_file(count: usize) -> anyhow::Result<PathBuf> {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if count > DIGITS.len() * DIGITS.len() {
        bail!("at most {} mappings", DIGITS.len() * DIGITS.len());
    }
    let objects: Vec<_> = (0..count)
        .map(|i| {
            let prefix = format!(
                "b{}{}",
                char::from(DIGITS[i / DIGITS.len()]),
                char::from(DIGITS[i % DIGITS.len()])
            );
            serde_json::json!({
                "name": object(i),
                "keyPrefix": prefix,
                "fields": [{ "name": "Name", "type": "string", "length": 80, "nameField": true }],
            })
        })
        .collect();
    let path = std::env::temp_dir().join(format!(
        "pgforce-bench-server-{}-{count}.json",
        std::process::id()
    ));
    std::fs::write(&path, serde_json::json!({ "objects": objects }).to_string())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

async fn measure(
    options: &Options,
    count: usize,
    base: &str,
    db_url: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mappings: Vec<_> = (0..count)
        .map(|i| {
            serde_json::json!({
                "object": object(i),
                "access": "read_only",
                "fields": ["Name"],
                "polling_seconds": 3600,
            })
        })
        .collect();
    let connection = serde_json::from_value(serde_json::json!({
        "name": crate::scratch::BENCH_CONNECTION,
        "schema": "salesforce",
        "login_url": base,
        "auth": "password",
        "username": "admin@example.com",
        "password": "pgforce",
        "client_id": "pgforce",
        "client_secret": "pgforce",
        "change_events": "off",
        "mapping": mappings,
    }))
    .context("building the benchmark's connection")?;
    let engine_options = EngineOptions {
        allowed_hosts: crate::scratch::emulator_hosts()?,
        ..EngineOptions::default()
    };
    let engine = Engine::open(db_url, vec![connection], engine_options).await?;
    let started = Instant::now();
    engine.apply().await?;
    let setup = started.elapsed().as_secs_f64();

    let server = pgforce_server::Server::bind("127.0.0.1:0").await?;
    let address = server.local_addr()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(server.serve(engine.clone(), stopped));
    let base = format!("http://{address}");
    let http = reqwest::Client::new();

    let result = async {
        let mut scrape_ms = Vec::with_capacity(options.scrapes);
        for i in 0..options.scrapes + 5 {
            let started = Instant::now();
            let response = http.get(format!("{base}/metrics")).send().await?;
            if !response.status().is_success() {
                bail!("/metrics answered {}", response.status());
            }
            response.bytes().await?;
            // The first few warm the pool and the catalog's caches.
            if i >= 5 {
                scrape_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        scrape_ms.sort_by(f64::total_cmp);
        let note = format!(
            "{} scrapes one after another; {count} mappings applied in {setup:.1} s",
            options.scrapes
        );
        report.add(
            &format!("/metrics p50 at {count} mappings"),
            percentile(&scrape_ms, 0.50),
            "ms",
            &note,
        );
        report.add(
            &format!("/metrics p99 at {count} mappings"),
            percentile(&scrape_ms, 0.99),
            "ms",
            &note,
        );
        // What a scrape read before it used estimates: every mapping's exact status, a
        // `count(*)` and a rejected-records count each (a session from the pool here;
        // before the pool, each scrape also opened its own).
        let exact_runs = options.scrapes.min(50);
        let mut exact_ms = Vec::with_capacity(exact_runs);
        for _ in 0..exact_runs {
            let started = Instant::now();
            engine.admin().status(false).await?;
            exact_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        exact_ms.sort_by(f64::total_cmp);
        let before = format!(
            "before: the exact status the scrape read until estimates, {exact_runs} times in process; the tables are empty, so count(*) costs its least"
        );
        report.add(
            &format!("exact status p50 at {count} mappings"),
            percentile(&exact_ms, 0.50),
            "ms",
            &before,
        );
        report.add(
            &format!("exact status p99 at {count} mappings"),
            percentile(&exact_ms, 0.99),
            "ms",
            &before,
        );
        deep_views(options, count, &engine, &base, report).await?;
        if count == options.mappings.iter().copied().min().unwrap_or(count) {
            api_throughput(options, &engine, &base, db_url, report).await?;
        }
        Ok(())
    }
    .await;
    let _ = stop.send(true);
    serving.await.context("the server task")?;
    result
}

/// `GET /api/v3/connections?deep=true` with a view token: the first (which asks Salesforce
/// for each mapping's record count, as far as the token's hourly budget goes), then p50 and
/// p99 of those after it (counts kept for 30 s; row counts in a few statements).
async fn deep_views(
    options: &Options,
    count: usize,
    engine: &Engine,
    base: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let token = engine
        .admin()
        .create_token(&format!("deep-{count}"), Role::View, None)
        .await?;
    let http = reqwest::Client::new();
    let view = || async {
        let started = Instant::now();
        let response = http
            .get(format!("{base}/api/v3/connections?deep=true"))
            .bearer_auth(&token)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("the deep view answered {}", response.status());
        }
        response.bytes().await?;
        Ok::<_, anyhow::Error>(started.elapsed().as_secs_f64() * 1000.0)
    };
    let first = view().await?;
    report.add(
        &format!("first deep view at {count} mappings"),
        first,
        "ms",
        "GET /api/v3/connections?deep=true, view token: asks Salesforce each mapping's count (up to the token's 600 calls an hour)",
    );
    let runs = options.scrapes.min(50);
    let mut deep_ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        deep_ms.push(view().await?);
    }
    deep_ms.sort_by(f64::total_cmp);
    let note = format!(
        "{runs} deep views one after another after the first: Salesforce counts kept 30 s, rows counted exactly in a few statements"
    );
    report.add(
        &format!("deep view p50 at {count} mappings"),
        percentile(&deep_ms, 0.50),
        "ms",
        &note,
    );
    report.add(
        &format!("deep view p99 at {count} mappings"),
        percentile(&deep_ms, 0.99),
        "ms",
        &note,
    );
    Ok(())
}

/// API requests per second with a view token on `GET /api/v3/connections`, and the most
/// Postgres sessions the pool held meanwhile.
async fn api_throughput(
    options: &Options,
    engine: &Engine,
    base: &str,
    db_url: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let token = engine
        .admin()
        .create_token("bench", Role::View, None)
        .await?;
    let monitor = pgforce_store::connect(db_url).await?;
    let peak = Arc::new(AtomicI64::new(0));
    let (done, mut finished) = tokio::sync::watch::channel(false);
    let sampler = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                if let Ok(row) = monitor
                    .query_one(
                        "select count(*) from pg_stat_activity where datname = current_database() and application_name = $1",
                        &[&pgforce_store::POOL_APPLICATION_NAME],
                    )
                    .await
                {
                    peak.fetch_max(row.get(0), Ordering::Relaxed);
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = finished.changed() => return,
                }
            }
        })
    };
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicI64::new(0));
    let total = i64::try_from(options.api_requests).unwrap_or(i64::MAX);
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency {
        let (http, next, token) = (http.clone(), Arc::clone(&next), token.clone());
        let url = format!("{base}/api/v3/connections");
        clients.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let response = http.get(&url).bearer_auth(&token).send().await?;
                if !response.status().is_success() {
                    bail!("GET /api/v3/connections answered {}", response.status());
                }
                response.bytes().await?;
            }
            Ok(())
        });
    }
    while let Some(outcome) = clients.join_next().await {
        outcome??;
    }
    let rate = options.api_requests as f64 / started.elapsed().as_secs_f64();
    let _ = done.send(true);
    sampler.await?;
    report.add(
        "API requests per second",
        rate,
        "req/s",
        &format!(
            "GET /api/v3/connections with a view token, {} clients at once, one process",
            options.concurrency
        ),
    );
    let (_, size) = engine.pool_sessions();
    report.add(
        "pooled Postgres sessions during the API load",
        peak.load(Ordering::Relaxed) as f64,
        "sessions",
        &format!("most seen in pg_stat_activity; pool_size {size}"),
    );
    Ok(())
}

/// The value below which `share` of the sorted `values` fall.
fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * share).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
