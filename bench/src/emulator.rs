//! Scenario `emulator`: how large an org the emulator holds and how fast it serves it.
//!
//! Seeds N Accounts in-process (about twenty populated fields each), reads the memory the
//! org takes from the process's resident set, then over HTTP on loopback measures: a
//! 2,000-record page on indexed filters (SystemModstamp range, Id list, external id),
//! records per second when paging a whole SystemModstamp-ordered query, and the latency
//! and records per second of 200-record collections creates and updates. The baseline is a
//! call that does no work (the versions list), measured in the same run.

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use pgforce_emulator::{Emulator, EmulatorConfig, Listeners};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::report::{Report, median, percentile};

/// Options of the emulator scenario.
#[derive(Debug, Args)]
pub struct Options {
    /// Accounts to seed.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Runs of each timed measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Collections calls per run.
    #[arg(long, default_value_t = 50)]
    collections_calls: usize,
}

const SCHEMA: &str = r#"{"extend": {"Account": [
  {"name": "External_Id__c", "type": "string", "length": 40, "externalId": true, "unique": true}]}}"#;

const FIELDS: &str = "Id, Name, Type, Industry, BillingStreet, BillingCity, BillingState, BillingPostalCode, \
BillingCountry, Phone, Website, AnnualRevenue, NumberOfEmployees, Rating, Description, AccountSource, \
External_Id__c, OwnerId, CreatedDate, SystemModstamp";

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(body)
    }

    async fn query(&self, soql: &str) -> anyhow::Result<Value> {
        let encoded: String = crate::report::url_encode(soql);
        self.get(&format!("/services/data/v62.0/query?q={encoded}"))
            .await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("{path}: {status}: {body}");
        }
        Ok(body)
    }
}

async fn timed<T>(
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(f64, T)> {
    let started = Instant::now();
    let value = f.await?;
    Ok((started.elapsed().as_secs_f64() * 1000.0, value))
}

/// Runs the scenario.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let mut report = Report::new("emulator");
    let schema = Emulator::parse_schema_file(SCHEMA).context("bench schema")?;
    let emulator = Emulator::new(EmulatorConfig {
        schema_files: vec![schema],
        daily_api_limit: u64::MAX,
        ..EmulatorConfig::default()
    })?;
    let before = crate::report::proc_status_bytes("VmRSS:");
    let started = Instant::now();
    let seeded = tokio::task::spawn_blocking({
        let emulator = emulator.clone();
        let count = options.records;
        move || emulator.seed(&vec![("Account".to_owned(), count)])
    })
    .await??;
    let seed_seconds = started.elapsed().as_secs_f64();
    let org_bytes = crate::report::proc_status_bytes("VmRSS:").saturating_sub(before);
    let records = seeded.first().map_or(0, |(_, n)| *n);
    report.add(
        "accounts seeded",
        records as f64,
        "records",
        &format!("in {seed_seconds:.1} s"),
    );
    report.add(
        "org memory",
        org_bytes as f64 / 1_048_576.0,
        "MiB",
        "resident set growth while seeding",
    );
    report.add(
        "memory per record",
        org_bytes as f64 / records.max(1) as f64,
        "bytes",
        "",
    );

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let emulator = emulator.clone();
        async move {
            emulator
                .run(
                    Listeners {
                        http: Some(listener),
                        https: None,
                    },
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
        }
    });
    let http = reqwest::Client::builder().build()?;
    let token: Value = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "pgforce"),
            ("client_secret", "pgforce"),
            ("username", "admin@example.com"),
            ("password", "pgforce"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let client = Client {
        http,
        base,
        token: token["access_token"]
            .as_str()
            .context("access token")?
            .to_owned(),
    };

    let sample = client.query("SELECT Id FROM Account LIMIT 1").await?;
    let sample_id = sample["records"][0]["Id"]
        .as_str()
        .context("a record")?
        .to_owned();
    let sample = client
        .get(&format!(
            "/services/data/v62.0/sobjects/Account/{sample_id}"
        ))
        .await?;
    let populated = sample.as_object().map_or(0, |r| {
        r.iter()
            .filter(|(k, v)| *k != "attributes" && !v.is_null())
            .count()
    });
    report.add(
        "populated fields per record",
        populated as f64,
        "fields",
        "of one sampled record, system fields included",
    );

    let mut baseline = Vec::new();
    for _ in 0..options.runs * 10 {
        baseline.push(timed(client.get("/services/data/")).await?.0);
    }
    let baseline_ms = median(&mut baseline);
    report.add(
        "no-op call (baseline)",
        baseline_ms,
        "ms",
        "median, GET /services/data/",
    );

    // Indexed filters returning one 2,000-record page.
    let newest: Value = client
        .query("SELECT SystemModstamp FROM Account ORDER BY SystemModstamp DESC LIMIT 1")
        .await?;
    let newest_stamp = newest["records"][0]["SystemModstamp"]
        .as_str()
        .context("a stamp")?
        .replace("+0000", "Z");
    let ids: Value = client
        .query("SELECT Id, External_Id__c FROM Account LIMIT 200")
        .await?;
    let id_list: Vec<String> = ids["records"]
        .as_array()
        .context("records")?
        .iter()
        .filter_map(|r| r["Id"].as_str())
        .map(|i| format!("'{i}'"))
        .collect();
    let key = ids["records"][0]["External_Id__c"]
        .as_str()
        .context("an external id")?
        .to_owned();
    let indexed = [
        (
            "page on SystemModstamp filter",
            format!(
                "SELECT {FIELDS} FROM Account WHERE SystemModstamp >= {newest_stamp} ORDER BY SystemModstamp, Id LIMIT 2000"
            ),
        ),
        (
            "page on Id IN (200 ids)",
            format!(
                "SELECT {FIELDS} FROM Account WHERE Id IN ({})",
                id_list.join(",")
            ),
        ),
        (
            "page on external id",
            format!("SELECT {FIELDS} FROM Account WHERE External_Id__c = '{key}'"),
        ),
    ];
    for (name, soql) in indexed {
        let mut samples = Vec::new();
        for _ in 0..options.runs {
            samples.push(timed(client.query(&soql)).await?.0);
        }
        report.add(
            name,
            median(&mut samples),
            "ms",
            &format!("median of {}", options.runs),
        );
    }

    // Paging a whole SystemModstamp-ordered query.
    let mut rates = Vec::new();
    let mut page_ms = Vec::new();
    let mut first_page_ms = Vec::new();
    for _ in 0..options.runs.min(3) {
        let started = Instant::now();
        let (first_ms, mut page) = timed(client.query(&format!("SELECT {FIELDS} FROM Account WHERE SystemModstamp >= 2000-01-01T00:00:00Z ORDER BY SystemModstamp, Id"))).await?;
        first_page_ms.push(first_ms);
        let mut seen = page["records"].as_array().map_or(0, Vec::len);
        while let Some(next) = page["nextRecordsUrl"].as_str().map(str::to_owned) {
            let (ms, next_page) = timed(client.get(&next)).await?;
            page_ms.push(ms);
            seen += next_page["records"].as_array().map_or(0, Vec::len);
            page = next_page;
        }
        if seen != records {
            bail!("paged {seen} records, expected {records}");
        }
        rates.push(seen as f64 / started.elapsed().as_secs_f64());
    }
    report.add(
        "query paging",
        median(&mut rates),
        "records/s",
        "median of runs, whole object, 20 fields",
    );
    report.add(
        "first page (runs the query)",
        median(&mut first_page_ms),
        "ms",
        "median",
    );
    report.add(
        "next page, median",
        median(&mut page_ms),
        "ms",
        "2,000 records",
    );
    report.add("next page, p99", percentile(&mut page_ms, 99.0), "ms", "");

    // Collections writes.
    let mut create_ms = Vec::new();
    let mut update_ms = Vec::new();
    let mut n = 0_u64;
    for _ in 0..options.collections_calls {
        let records: Vec<Value> = (0..200)
            .map(|_| {
                n += 1;
                json!({ "attributes": { "type": "Account" }, "Name": format!("Bench {n}"), "Industry": "Banking",
                        "AnnualRevenue": 1000.0, "External_Id__c": format!("BENCH-{n}") })
            })
            .collect();
        let (ms, results) = timed(client.send(
            reqwest::Method::POST,
            "/services/data/v62.0/composite/sobjects",
            &json!({ "allOrNone": false, "records": records }),
        ))
        .await?;
        create_ms.push(ms);
        let updates: Vec<Value> = results
            .as_array()
            .context("results")?
            .iter()
            .filter_map(|r| r["id"].as_str())
            .map(|id| json!({ "attributes": { "type": "Account" }, "id": id, "Rating": "Hot" }))
            .collect();
        update_ms.push(
            timed(client.send(
                reqwest::Method::PATCH,
                "/services/data/v62.0/composite/sobjects",
                &json!({ "records": updates }),
            ))
            .await?
            .0,
        );
    }
    let create_median = median(&mut create_ms);
    let update_median = median(&mut update_ms);
    report.add(
        "collections create (200)",
        create_median,
        "ms",
        "median per call",
    );
    report.add(
        "collections update (200)",
        update_median,
        "ms",
        "median per call",
    );
    report.add(
        "collections create rate",
        200.0 * 1000.0 / create_median,
        "records/s",
        "one client, sequential",
    );
    report.add(
        "collections update rate",
        200.0 * 1000.0 / update_median,
        "records/s",
        "one client, sequential",
    );
    report.add(
        "create call / baseline",
        create_median / baseline_ms.max(f64::MIN_POSITIVE),
        "x",
        "",
    );

    let _ = stop.send(());
    let _ = server.await;
    Ok(report)
}
