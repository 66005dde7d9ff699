//! The OData service on a large table: rows per second of a full scan with server-driven
//! paging and of an indexed filter, each against `psql` reading the same rows in the same
//! run; p50/p99 of single-key reads against the same `select` through tokio-postgres; and
//! the cost of a deep page against the first (keyset paging should keep it flat).
//!
//! The table, `archive.closed_case`, lives in a scratch database in its own schema (as an
//! archive published to Salesforce Connect would), loaded by `generate_series` and
//! analyzed. The engine (Account mapped from an emulator, which the OData service does not
//! read) and the HTTP server run in this process; the service is enabled and the table
//! published through the admin side, as the API does it. Requests go over real HTTP with
//! keep-alive and Basic credentials, one after another.

use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use pgforce_sync::{Access, Engine, ODataSettings};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::client::start_emulator_with;
use crate::report::{Report, median, percentile, url_encode};
use crate::scratch::{BENCH_CONNECTION, ScratchDatabase};
use crate::services::Services;

/// Options of the OData scenario.
#[derive(Debug, Args)]
pub struct Options {
    #[command(flatten)]
    services: Services,
    /// Rows of the published table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Runs of each measure; the report gives their median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Single-key reads per run (one after another).
    #[arg(long, default_value_t = 2_000)]
    key_reads: usize,
    /// The deep page timed against the first (the last page when the table has fewer).
    #[arg(long, default_value_t = 400)]
    deep_page: usize,
}

/// The published relation.
const SCHEMA: &str = "archive";
const TABLE: &str = "closed_case";
/// Its entity set, as the service names it.
const ENTITY_SET: &str = "archive$closed_case";
/// The columns both sides read, in the table's order.
const COLUMNS: &str = "id, name, status, closeddate, amount, description, createddate";
/// The indexed filter: one status in ten, closed in the first of ten years (~1 % of rows).
const FILTER: &str = "status eq 'Closed' and closeddate lt 2020-01-01T00:00:00Z";
const FILTER_SQL: &str = "status = 'Closed' and closeddate < '2020-01-01T00:00:00Z'";
/// Times the first and the deep page are each read.
const PAGE_READS: usize = 20;

/// Runs the scenario.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    if options.runs == 0 || options.rows == 0 {
        bail!("--runs and --rows must be at least 1");
    }
    let emulator = start_emulator_with(&options.services.emulator_bin, None, &[]).await?;
    let db = ScratchDatabase::create(&options.services.database_url, "odata").await?;
    let result = measure(&options, &emulator.base, &db.url).await;
    db.drop().await?;
    result
}

/// Creates and fills the table; returns the seconds it took.
async fn load_table(db_url: &str, rows: u64) -> anyhow::Result<f64> {
    let pg = pgforce_store::connect(db_url).await?;
    let started = Instant::now();
    // Keys look like Salesforce ids; the close date spreads row i over ten years from
    // 2019 by a multiplicative hash, so a year holds a tenth of every status.
    pg.batch_execute(
        "create schema archive;
         create table archive.closed_case (
             id text primary key,
             name text not null,
             status text not null,
             closeddate timestamptz not null,
             amount numeric(12, 2),
             description text,
             createddate timestamptz not null
         )",
    )
    .await
    .context("creating archive.closed_case")?;
    pg.execute(
        "insert into archive.closed_case
         select 'a0B' || lpad(to_hex(i), 15, '0'),
                'Case ' || i,
                (array['New', 'Working', 'Escalated', 'Closed', 'Resolved',
                       'Rejected', 'Duplicate', 'Waiting', 'Reopened', 'Archived'])[1 + i % 10],
                timestamptz '2019-01-01T00:00:00Z' + ((i * 2654435761) % 3650) * interval '1 day'
                    + (i % 86400) * interval '1 second',
                (i % 100000) / 100.0,
                'Closed case ' || i || ' kept in the archive for reporting',
                timestamptz '2015-01-01T00:00:00Z' + (i % 1400) * interval '1 day'
         from generate_series(1::bigint, $1::bigint) as i",
        &[&i64::try_from(rows)?],
    )
    .await
    .context("filling archive.closed_case")?;
    pg.batch_execute(
        "create index closed_case_status_closeddate on archive.closed_case (status, closeddate);
         analyze archive.closed_case",
    )
    .await
    .context("indexing archive.closed_case")?;
    Ok(started.elapsed().as_secs_f64())
}

/// The served service: its root URL and Basic credentials.
struct Service {
    root: String,
    user: String,
    password: String,
}

/// Enables the connection's service, lifts its hourly limit and publishes the table;
/// returns the service as served at `base` (`http://host:port`).
async fn publish(engine: &Engine, base: &str) -> anyhow::Result<Service> {
    let admin = engine.admin();
    let service = admin.odata_service_named(BENCH_CONNECTION).await?;
    let credentials = admin
        .odata_enable(service.id)
        .await?
        .context("the new service was already enabled")?;
    admin
        .odata_settings(
            service.id,
            ODataSettings {
                hourly_request_limit: Some(i32::MAX),
                ..ODataSettings::default()
            },
        )
        .await?;
    admin.odata_publish(service.id, SCHEMA, TABLE).await?;
    Ok(Service {
        root: format!("{base}/odata/v4/{}/", service.slug),
        user: credentials.user,
        password: credentials.password,
    })
}

/// One page of an entity set: only the entities' count and the next link are kept.
#[derive(Deserialize)]
struct Page {
    value: Vec<IgnoredAny>,
    #[serde(rename = "@odata.nextLink")]
    next: Option<String>,
}

impl Service {
    async fn get(
        &self,
        http: &reqwest::Client,
        url: &str,
    ) -> anyhow::Result<impl AsRef<[u8]> + use<>> {
        let response = http
            .get(url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "GET {url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body)
    }

    /// Follows the next links from `first` to the end; returns the rows read and every
    /// page's URL, in order.
    async fn scan(
        &self,
        http: &reqwest::Client,
        first: String,
    ) -> anyhow::Result<(u64, Vec<String>)> {
        let mut rows = 0;
        let mut urls = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next {
            let body = self.get(http, &url).await?;
            let page: Page = serde_json::from_slice(body.as_ref())
                .with_context(|| format!("reading the page at {url}"))?;
            rows += page.value.len() as u64;
            urls.push(url);
            next = page.next;
        }
        Ok((rows, urls))
    }
}

/// `psql` copying `select` to /dev/null; returns the seconds it took (the process's
/// start and its connection included, as a user's `psql` run pays them).
async fn psql_copy(db_url: &str, select: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let output = tokio::process::Command::new("psql")
        .args([
            db_url,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("\\copy ({select}) to '/dev/null'"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .context("running psql (is it on PATH?)")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(seconds)
}

/// A small deterministic generator of keys (xorshift64*), so every run reads the same ones.
struct Keys(u64);

impl Keys {
    fn next(&mut self, rows: u64) -> String {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let i = 1 + self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % rows;
        format!("a0B{i:015x}")
    }
}

#[allow(clippy::too_many_lines)]
async fn measure(options: &Options, base: &str, db_url: &str) -> anyhow::Result<Report> {
    let mut report = Report::new("odata");
    let load_seconds = load_table(db_url, options.rows).await?;
    let connection =
        crate::scratch::account_connection(base, &["Name"], Access::ReadOnly, 3600, 10_000)?;
    let engine = crate::scratch::engine(db_url, connection).await?;
    let server = pgforce_server::Server::bind("127.0.0.1:0").await?;
    let address = server.local_addr()?;
    let service = publish(&engine, &format!("http://{address}")).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(server.serve(engine.clone(), stopped));

    let result = async {
        let http = reqwest::Client::new();
        let pg = pgforce_store::connect(db_url).await?;
        let full_sql = format!("select {COLUMNS} from {SCHEMA}.{TABLE}");
        let filter_sql = format!("{full_sql} where {FILTER_SQL}");
        let expected_filtered: i64 = pg
            .query_one(&format!("select count(*) from {SCHEMA}.{TABLE} where {FILTER_SQL}"), &[])
            .await?
            .get(0);
        let full_url = format!("{}{ENTITY_SET}", service.root);
        let filter_url = format!("{full_url}?$filter={}", url_encode(FILTER));
        // Warm the table's pages and both sides' code paths once, unmeasured.
        psql_copy(db_url, &full_sql).await?;
        let (_, pages) = service.scan(&http, full_url.clone()).await?;

        let by_key = pg
            .prepare(&format!("select {COLUMNS}, 1 from {SCHEMA}.{TABLE} where id = $1"))
            .await?;
        let (mut full_rates, mut full_psql, mut filter_rates, mut filter_psql) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut key_p50, mut key_p99, mut pg_p50, mut pg_p99) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut pages_read = 0;
        for run in 0..options.runs {
            // 1. Full scan with server-driven paging, against psql \copy of the same rows.
            let started = Instant::now();
            let (rows, urls) = service.scan(&http, full_url.clone()).await?;
            let seconds = started.elapsed().as_secs_f64();
            if rows != options.rows {
                bail!("the full scan read {rows} rows of {}", options.rows);
            }
            pages_read = urls.len();
            full_rates.push(rows as f64 / seconds);
            full_psql.push(rows as f64 / psql_copy(db_url, &full_sql).await?);

            // 2. The indexed filter, against psql \copy of the same query.
            let started = Instant::now();
            let (rows, _) = service.scan(&http, filter_url.clone()).await?;
            let seconds = started.elapsed().as_secs_f64();
            if i64::try_from(rows)? != expected_filtered {
                bail!("the filter read {rows} rows where Postgres counts {expected_filtered}");
            }
            filter_rates.push(rows as f64 / seconds);
            filter_psql.push(rows as f64 / psql_copy(db_url, &filter_sql).await?);

            // 3. Single-key reads of random keys, against the same select by key.
            let mut keys = Keys(0x9e37_79b9_7f4a_7c15 ^ (run as u64 + 1));
            let mut odata_ms = Vec::with_capacity(options.key_reads);
            for _ in 0..options.key_reads {
                let url = format!("{}{ENTITY_SET}('{}')", service.root, keys.next(options.rows));
                let started = Instant::now();
                service.get(&http, &url).await?;
                odata_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            let mut keys = Keys(0x9e37_79b9_7f4a_7c15 ^ (run as u64 + 1));
            let mut direct_ms = Vec::with_capacity(options.key_reads);
            for _ in 0..options.key_reads {
                let key = keys.next(options.rows);
                let started = Instant::now();
                let row = pg.query_opt(&by_key, &[&key]).await?;
                direct_ms.push(started.elapsed().as_secs_f64() * 1000.0);
                if row.is_none() {
                    bail!("no row with key {key}");
                }
            }
            key_p50.push(percentile(&mut odata_ms, 50.0));
            key_p99.push(percentile(&mut odata_ms, 99.0));
            pg_p50.push(percentile(&mut direct_ms, 50.0));
            pg_p99.push(percentile(&mut direct_ms, 99.0));
        }

        let runs = options.runs;
        let (full, full_base) = (median(&mut full_rates), median(&mut full_psql));
        report.add(
            "full scan, OData",
            full,
            "rows/s",
            &format!(
                "median of {runs}: GET {ENTITY_SET} following @odata.nextLink, {pages_read} pages of at most 2,000; {} rows, loaded in {load_seconds:.1} s",
                options.rows
            ),
        );
        report.add(
            "full scan, psql \\copy",
            full_base,
            "rows/s",
            &format!("median of {runs}: psql \\copy ({full_sql}) to /dev/null, process start included"),
        );
        report.add(
            "full scan, OData / psql",
            full / full_base,
            "ratio",
            "same run, same rows and columns",
        );
        let (filtered, filtered_base) = (median(&mut filter_rates), median(&mut filter_psql));
        report.add(
            "indexed filter, OData",
            filtered,
            "rows/s",
            &format!("median of {runs}: $filter={FILTER}; {expected_filtered} rows, index on (status, closeddate)"),
        );
        report.add(
            "indexed filter, psql \\copy",
            filtered_base,
            "rows/s",
            &format!("median of {runs}: psql \\copy of the same select where {FILTER_SQL}"),
        );
        report.add(
            "indexed filter, OData / psql",
            filtered / filtered_base,
            "ratio",
            "same run, same rows and columns",
        );
        let key_note = format!(
            "median over {runs} runs of each run's figure; {} random keys one after another",
            options.key_reads
        );
        report.add("key read p50, OData", median(&mut key_p50), "ms", &format!("GET {ENTITY_SET}('<id>'), keep-alive, Basic auth; {key_note}"));
        report.add("key read p99, OData", median(&mut key_p99), "ms", &format!("GET {ENTITY_SET}('<id>'), keep-alive, Basic auth; {key_note}"));
        report.add("key read p50, tokio-postgres", median(&mut pg_p50), "ms", &format!("prepared select … where id = $1 on one session; {key_note}"));
        report.add("key read p99, tokio-postgres", median(&mut pg_p99), "ms", &format!("prepared select … where id = $1 on one session; {key_note}"));

        // The floor under a read by key: the service document costs a request its
        // credential check, usage count and published list, but reads no relation.
        let mut floor_ms = Vec::with_capacity(options.key_reads);
        for _ in 0..options.key_reads {
            let started = Instant::now();
            service.get(&http, &service.root).await?;
            floor_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let floor_note = format!(
            "GET of the service document, {} times one after another: a request's credential check, usage count and published list, no relation read",
            options.key_reads
        );
        report.add("service document p50", percentile(&mut floor_ms, 50.0), "ms", &floor_note);
        report.add("service document p99", percentile(&mut floor_ms, 99.0), "ms", &floor_note);

        // 4. The first page against a deep one, reached by the chain's skiptoken.
        let deep = options.deep_page.clamp(1, pages.len());
        let mut first_ms = Vec::with_capacity(PAGE_READS);
        let mut deep_ms = Vec::with_capacity(PAGE_READS);
        for _ in 0..PAGE_READS {
            for (url, times) in [(&pages[0], &mut first_ms), (&pages[deep - 1], &mut deep_ms)] {
                let started = Instant::now();
                service.get(&http, url).await?;
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let page_note = format!("median of {PAGE_READS} reads of a 2,000-row page, alternating");
        report.add("page 1 of the full scan", median(&mut first_ms), "ms", &page_note);
        report.add(
            &format!("page {deep} of the full scan"),
            median(&mut deep_ms),
            "ms",
            &format!("{page_note}; its $skiptoken from the next-link chain (keyset paging)"),
        );
        Ok(report)
    }
    .await;
    let _ = stop.send(true);
    serving.await.context("the server task")?;
    result
}
