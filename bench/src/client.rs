//! Scenario `client`: how fast the Salesforce client streams a large query, and how much
//! CPU it spends doing so.
//!
//! The emulator runs as a separate process (the `pgforce` binary), so this process's CPU
//! time is the client's alone. The baseline, measured in the same run, pages the same
//! query with a bare HTTP client that reads the bytes without parsing them: the gap is the
//! client's own cost (JSON parsing into records, retries bookkeeping, session handling).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::TryStreamExt as _;

use crate::report::{Report, median};

/// Options of the client scenario.
#[derive(Debug, Args)]
pub struct Options {
    /// The `pgforce` binary that serves the emulator.
    #[arg(long, default_value = "target/release/pgforce")]
    emulator_bin: PathBuf,
    /// Accounts to seed and stream.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const SOQL: &str = "SELECT Id, Name, Type, Industry, BillingStreet, BillingCity, BillingState, \
BillingPostalCode, BillingCountry, Phone, Website, AnnualRevenue, NumberOfEmployees, Rating, \
Description, AccountSource, OwnerId, CreatedDate, LastModifiedDate, SystemModstamp FROM Account";

/// CPU seconds (user + system) a process has used, from /proc.
pub fn cpu_seconds(pid: &str) -> f64 {
    let ticks_per_second = 100.0;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let after = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .collect::<Vec<_>>();
            let utime: f64 = after.get(11)?.parse().ok()?;
            let stime: f64 = after.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks_per_second)
        })
        .unwrap_or(0.0)
}

pub struct Emulator {
    pub child: Child,
    pub base: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_emulator(bin: &PathBuf) -> anyhow::Result<Emulator> {
    start_emulator_with(bin, None, &[]).await
}

/// Starts the emulator over HTTP and, with `tls` (`(port, CA file)`), HTTPS as well.
/// `extra` arguments are passed on as they are.
pub async fn start_emulator_with(
    bin: &PathBuf,
    tls: Option<(u16, &std::path::Path)>,
    extra: &[String],
) -> anyhow::Result<Emulator> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut args: Vec<String> = vec![
        "emulator".into(),
        "--port".into(),
        port.to_string(),
        "--api-limit".into(),
        "100000000".into(),
    ];
    match tls {
        None => args.push("--no-tls".into()),
        Some((tls_port, ca)) => {
            args.extend(["--tls-port".into(), tls_port.to_string()]);
            args.extend(["--cert-out".into(), ca.display().to_string()]);
        }
    }
    args.extend(extra.iter().cloned());
    let child = Command::new(bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with cargo build --release -p pgforce)",
                bin.display()
            )
        })?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("{base}/services/data/"))
            .send()
            .await
            .is_ok()
        {
            return Ok(Emulator { child, base });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the emulator at {base} did not answer within 5 seconds")
}

/// Runs the scenario.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let mut report = Report::new("client");
    let emulator = start_emulator(&options.emulator_bin).await?;
    let http = reqwest::Client::new();
    let seeded = http
        .post(format!("{}/__emulator/seed", emulator.base))
        .json(&serde_json::json!({ "Account": options.records }))
        .send()
        .await?;
    if !seeded.status().is_success() {
        bail!("seeding failed: {}", seeded.text().await?);
    }
    let client = crate::scratch::emulator_client(&emulator.base)?;
    let session = client.session().await?;
    let me = std::process::id().to_string();
    let server = emulator.child.id().to_string();

    let mut client_rates = Vec::new();
    let mut client_cpu_shares = Vec::new();
    let mut server_cpu_shares = Vec::new();
    let mut baseline_rates = Vec::new();
    for _ in 0..options.runs {
        let (cpu_before, server_before, started) =
            (cpu_seconds(&me), cpu_seconds(&server), Instant::now());
        let count = client
            .query(SOQL)
            .try_fold(0_usize, |n, _| async move { Ok(n + 1) })
            .await?;
        let wall = started.elapsed().as_secs_f64();
        if count != options.records {
            bail!("streamed {count} records, expected {}", options.records);
        }
        client_rates.push(count as f64 / wall);
        client_cpu_shares.push(100.0 * (cpu_seconds(&me) - cpu_before) / wall);
        server_cpu_shares.push(100.0 * (cpu_seconds(&server) - server_before) / wall);

        let started = Instant::now();
        let mut url = format!(
            "{}/services/data/v62.0/query?q={}",
            emulator.base,
            crate::report::url_encode(SOQL)
        );
        let mut pages = 0;
        loop {
            let body = http
                .get(&url)
                .bearer_auth(token(&session))
                .send()
                .await?
                .bytes()
                .await?;
            pages += 1;
            // Find the next URL without parsing the records.
            let next = find_next_url(&body);
            match next {
                Some(next) => url = format!("{}{next}", emulator.base),
                None => break,
            }
        }
        let expected_pages = options.records.div_ceil(2000);
        if pages != expected_pages {
            bail!("baseline read {pages} pages, expected {expected_pages}");
        }
        baseline_rates.push(options.records as f64 / started.elapsed().as_secs_f64());
    }
    let client_rate = median(&mut client_rates);
    let baseline_rate = median(&mut baseline_rates);
    report.add(
        "records streamed",
        options.records as f64,
        "records",
        "20 fields each",
    );
    report.add(
        "client query stream",
        client_rate,
        "records/s",
        &format!("median of {}", options.runs),
    );
    report.add(
        "raw HTTP paging (baseline)",
        baseline_rate,
        "records/s",
        "bytes only, no parsing",
    );
    report.add("client / baseline", client_rate / baseline_rate, "x", "");
    report.add(
        "client CPU share",
        median(&mut client_cpu_shares),
        "% of a core",
        "this process while streaming",
    );
    report.add(
        "emulator CPU share",
        median(&mut server_cpu_shares),
        "% of a core",
        "server process",
    );
    Ok(report)
}

fn token(session: &pgforce_salesforce::Session) -> String {
    session.bearer_token().to_owned()
}

fn find_next_url(body: &[u8]) -> Option<String> {
    let key = b"\"nextRecordsUrl\":\"";
    let start = body.windows(key.len()).take(200).position(|w| w == key)? + key.len();
    let end = body[start..].iter().position(|b| *b == b'"')? + start;
    std::str::from_utf8(&body[start..end])
        .ok()
        .map(str::to_owned)
}
