//! `pgforce run` serves `/healthz`, `/readyz` and `/metrics` from the daemon: metrics
//! follow the work (records read and written, states, queues, the org's allocation) in a
//! well-formed Prometheus text; readiness fails without telling anonymous callers why; a
//! taken port is refused before any work starts.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pgforce_store::testing::TestDatabase;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::run::{config_file, count, pgforce, seeded_org, wait_for_count};

pub const READ_WRITE_ACCOUNTS: &str = r#"
[[connection.mapping]]
object = "Account"
access = "read_write"
fields = ["Name", "Industry"]
polling_seconds = 1
"#;

/// Starts `pgforce run` on a free port; returns it with the base URL it printed.
pub async fn serving(config: &str) -> (Child, String) {
    serving_with(config, &[]).await
}

/// Starts `pgforce run` on a free port with more environment variables.
pub async fn serving_with(config: &str, env: &[(&str, &str)]) -> (Child, String) {
    serving_with_flags(config, &[], env).await
}

/// Starts `pgforce run` on a free port with more flags and environment variables.
pub async fn serving_with_flags(
    config: &str,
    flags: &[&str],
    env: &[(&str, &str)],
) -> (Child, String) {
    let mut arguments = vec!["run", "--config", config];
    arguments.extend_from_slice(flags);
    let mut command = pgforce(&arguments);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut daemon = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line
                .split_whitespace()
                .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            {
                return url.trim_end_matches("/metrics").to_owned();
            }
        }
        panic!("pgforce run never said where it serves");
    };
    let base = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("pgforce run printed its address within a minute");
    // Keep reading stdout so the daemon never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (daemon, base)
}

async fn get(url: &str) -> (u16, String, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

/// The value of the sample written exactly `series` (name and labels), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// Checks the text format: every sample line is `name{labels} value`, and its family
/// was announced with `# HELP` and `# TYPE` before it.
fn assert_well_formed(text: &str) {
    let mut announced = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap_or_default();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "a known type: {line}"
            );
            announced.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("a sample: {line}"));
        assert!(value.parse::<f64>().is_ok(), "a number: {line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "a metric name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "labels in braces: {line}"
            );
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| announced.contains(*f)))
            .unwrap_or(name);
        assert!(
            announced.contains(family),
            "family announced before its samples: {line}"
        );
    }
}

/// Scrapes until `check` holds (bounded), returning the last text.
async fn metrics_until(base: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, content_type, text) = get(&format!("{base}/metrics")).await;
        assert_eq!(status, 200, "{text}");
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        if check(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn terminate(daemon: &Child) {
    let pid = daemon.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
}

#[tokio::test]
async fn run_serves_health_readiness_and_metrics_that_follow_the_work() {
    let org = seeded_org(30).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let (mut daemon, base) = serving(config.to_str().unwrap()).await;

    let (status, _, body) = get(&format!("{base}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    wait_for_count(&db, "select count(*) from salesforce.account", 30).await;
    let (status, _, body) = get(&format!("{base}/readyz")).await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    let account = r#"connection="main",object="Account""#;
    let loaded = format!(r#"pgforce_records_total{{{account},kind="load",direction="sf_to_pg"}}"#);
    // Rows are Postgres's estimate, which its statistics catch up with within a second
    // or so of the load.
    let rows = format!("pgforce_postgres_rows{{{account}}}");
    let text = metrics_until(&base, "the load and its rows", |t| {
        sample(t, &loaded) == Some(30.0) && sample(t, &rows) == Some(30.0)
    })
    .await;
    assert_well_formed(&text);
    assert!(
        text.lines().any(
            |l| l.starts_with(&format!("pgforce_mapping_state{{{account},state="))
                && l.ends_with(" 1")
        ),
        "the mapping's state: {text}"
    );
    assert!(
        sample(
            &text,
            r#"pgforce_salesforce_api_requests_limit{connection="main"}"#
        )
        .is_some_and(|limit| limit > 0.0),
        "the org's allocation: {text}"
    );

    // Two app inserts reach Salesforce: written records, changes and queues follow.
    db.client()
        .await
        .batch_execute("insert into salesforce.account (name) values ('From PG 1'), ('From PG 2')")
        .await
        .unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name like 'From PG%' and sfid is not null",
        2,
    )
    .await;
    let written =
        format!(r#"pgforce_records_total{{{account},kind="write",direction="pg_to_sf"}}"#);
    let succeeded = r#"pgforce_write_changes_total{connection="main",result="succeeded"}"#;
    let text = metrics_until(&base, "the writes", |t| {
        sample(t, &written) == Some(2.0) && sample(t, succeeded) == Some(2.0)
    })
    .await;
    assert_well_formed(&text);
    for state in ["NEW", "PENDING", "HELD", "FAILED"] {
        assert_eq!(
            sample(
                &text,
                &format!(r#"pgforce_trigger_log_rows{{connection="main",state="{state}"}}"#)
            ),
            Some(0.0),
            "{state}: {text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            r#"pgforce_oldest_unsent_change_seconds{connection="main"}"#
        ),
        Some(0.0)
    );
    assert!(
        sample(&text, r#"pgforce_salesforce_api_calls_total{connection="main",object="",direction="pg_to_sf"}"#)
            .is_some_and(|calls| calls >= 1.0),
        "the writer's API calls: {text}"
    );

    let (status, content_type, body) = get(&format!("{base}/no/such/page")).await;
    assert_eq!(status, 404);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["id"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("/no/such/page"));
    let response = reqwest::Client::new()
        .patch(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["id"], "method_not_allowed", "{body}");

    // The catalog's database goes away: not ready, without Postgres's words for an
    // anonymous caller (the log has them).
    let admin = pgforce_store::testing::connect(&pgforce_store::testing::server_url()).await;
    admin
        .batch_execute(&format!("drop database \"{}\" with (force)", db.name))
        .await
        .unwrap();
    let (status, _, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["id"], "not_ready");
    assert_eq!(
        body["message"], "not ready",
        "no database error text: {body}"
    );

    // Even with its catalog gone, SIGTERM stops it within the shutdown time.
    terminate(&daemon);
    tokio::time::timeout(Duration::from_secs(20), daemon.wait())
        .await
        .expect("pgforce run stopped within 20 s of SIGTERM")
        .unwrap();
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_taken_address_is_refused_before_any_work_naming_it() {
    let org = seeded_org(5).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = pgforce(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &address,
    ])
    .output()
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("could not listen on {address}")) && stderr.contains("--listen"),
        "{stderr}"
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from information_schema.schemata where schema_name = 'salesforce'"
        )
        .await,
        0,
        "no work started"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn listen_off_serves_nothing() {
    let org = seeded_org(5).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let mut daemon = pgforce(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "off",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 5).await;
    terminate(&daemon);
    let output = tokio::time::timeout(Duration::from_secs(20), async {
        let mut stdout = String::new();
        use tokio::io::AsyncReadExt;
        daemon
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .await
            .unwrap();
        daemon.wait().await.unwrap();
        stdout
    })
    .await
    .unwrap();
    assert!(output.contains("syncing 1 mapping"), "{output}");
    assert!(!output.contains("http://"), "nothing served: {output}");
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn tls_cert_and_key_serve_https_only() {
    let org = seeded_org(2).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = std::env::temp_dir().join(format!("{}-tls", db.name));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();

    // A key file that is not one is named before anything starts.
    let output = pgforce(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        cert_path.to_str().unwrap(),
    ])
    .output()
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("TLS private key")
            && stderr.contains("cert.pem"),
        "{stderr}"
    );

    let mut daemon = pgforce(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("pgforce run said where it serves");
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("https://")) {
            break url.trim_end_matches("/metrics").to_owned();
        }
    };
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let answer = trusting
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let plain = base.replace("https://", "http://");
    assert!(
        reqwest::get(format!("{plain}/healthz")).await.is_err(),
        "no plain HTTP on the TLS port"
    );
    terminate(&daemon);
    let _ = daemon.wait().await;
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(config);
}
