//! Bad input: each case names what is wrong and the error `pgforce run` must give, and
//! no secret ever reaches the output — not in errors, not in a full run's debug log.

use std::process::Stdio;
use std::time::Duration;

use pgforce_emulator::testing::TestOrg;
use pgforce_store::testing::TestDatabase;

use crate::run::{ACCOUNT_MAPPING, config_file, pgforce, wait_for_count};

/// Secrets the emulator is started with; none may ever be printed.
const PASSWORD: &str = "Zebra-s3cret-991";
const CLIENT_SECRET: &str = "Okapi-s3cret-552";

async fn org_with_secrets() -> TestOrg {
    TestOrg::start_with(pgforce_emulator::EmulatorConfig {
        password: PASSWORD.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        ..Default::default()
    })
    .await
}

/// Writes the config with the org's client secret in place of the default one.
fn config_for(org: &TestOrg, db: &TestDatabase, mappings: &str) -> std::path::PathBuf {
    let path = config_file(org, db, mappings);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "client_secret = \"pgforce\"",
        &format!("client_secret = \"{CLIENT_SECRET}\""),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn assert_no_secret(output: &str) {
    for secret in [PASSWORD, CLIENT_SECRET] {
        assert!(
            !output.contains(secret),
            "a secret appeared in the output:\n{output}"
        );
    }
}

/// Runs `pgforce run` on a config text expected to fail; returns stderr.
async fn failing_run(config: &std::path::Path, password: &str) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        pgforce(&["run", "--config", config.to_str().unwrap()])
            .env("PGFORCE_TEST_SF_PASSWORD", password)
            .output(),
    )
    .await
    .expect("a bad configuration fails fast")
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(!output.status.success(), "should fail: {stdout}{stderr}");
    assert_no_secret(&stdout);
    assert_no_secret(&stderr);
    stderr
}

#[tokio::test]
async fn each_bad_input_fails_naming_what_is_wrong() {
    let org = org_with_secrets().await;
    let db = TestDatabase::create().await;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown field",
            ACCOUNT_MAPPING.replace("\"AnnualRevenue\"", "\"Revenue__c\""),
            "mapping Account: field Revenue__c does not exist on Account",
        ),
        (
            "unknown object",
            ACCOUNT_MAPPING.replace("object = \"Account\"", "object = \"Nope__c\""),
            "object Nope__c does not exist in the org",
        ),
        (
            "object name that would need quoting",
            ACCOUNT_MAPPING.replace(
                "object = \"Account\"",
                "object = \"Account\\\"; drop table x; --\"",
            ),
            "is not a valid Salesforce name",
        ),
        (
            "field name that is not a Salesforce name",
            ACCOUNT_MAPPING.replace("\"Industry\"", "\"Industry, (SELECT Id FROM User)\""),
            "is not a valid Salesforce field name",
        ),
        (
            "upsert field that is not an External ID",
            format!("{ACCOUNT_MAPPING}upsert_field = \"Name\"\n"),
            "upsert field Name is not an External ID field",
        ),
        (
            "unknown setting",
            ACCOUNT_MAPPING.replace("polling_seconds = 1", "polling_seconds = 1\nspeed = 3"),
            "unknown field `speed`",
        ),
        (
            "polling interval of zero",
            ACCOUNT_MAPPING.replace("polling_seconds = 1", "polling_seconds = 0"),
            "polling_seconds must be at least 1",
        ),
        (
            "query page size outside Salesforce's range",
            format!("query_batch_size = 50\n{ACCOUNT_MAPPING}"),
            "query_batch_size must be between 200 and 2000 (Salesforce's range), got 50",
        ),
        (
            "request timeout too short to trust",
            format!("request_timeout_seconds = 2\n{ACCOUNT_MAPPING}"),
            "request_timeout_seconds must be between 10 and 600, got 2",
        ),
        (
            "malformed TOML",
            ACCOUNT_MAPPING.replace("fields = [", "fields = [[["),
            "is not valid TOML",
        ),
    ];
    for (what, mapping, expected) in cases {
        let config = config_for(&org, &db, &mapping);
        let stderr = failing_run(&config, PASSWORD).await;
        assert!(
            stderr.contains(expected),
            "{what}: {stderr:?} should contain {expected:?}"
        );
        let _ = std::fs::remove_file(config);
    }

    // Wrong credentials: the login error, without the password tried.
    let config = config_for(&org, &db, ACCOUNT_MAPPING);
    let stderr = failing_run(&config, "Wrong-pa55word-777").await;
    assert!(
        stderr.contains("invalid_grant") || stderr.contains("authentication failure"),
        "{stderr}"
    );
    assert!(!stderr.contains("Wrong-pa55word-777"), "{stderr}");

    // An unreachable database: named, with no password in the URL shown.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&db.url, "postgres://app:Db-pa55word@127.0.0.1:1/nowhere");
    std::fs::write(&config, text).unwrap();
    let stderr = failing_run(&config, PASSWORD).await;
    assert!(stderr.contains("connecting to PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("Db-pa55word"), "{stderr}");
    let _ = std::fs::remove_file(config);

    // An org at its API limit.
    org.control(
        reqwest::Method::PUT,
        "/limits",
        Some(serde_json::json!({ "dailyApiRequests": 100, "used": 100 })),
    )
    .await;
    let config = config_for(&org, &db, ACCOUNT_MAPPING);
    let stderr = failing_run(&config, PASSWORD).await;
    assert!(
        stderr.contains("API request limit is exhausted"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_full_run_logs_no_secret_even_at_debug_level() {
    let org = org_with_secrets().await;
    org.control(
        reqwest::Method::POST,
        "/seed",
        Some(serde_json::json!({ "Account": 30 })),
    )
    .await;
    let db = TestDatabase::create().await;
    let config = config_for(&org, &db, ACCOUNT_MAPPING);
    let mut daemon = pgforce(&["run", "--config", config.to_str().unwrap()])
        .env("PGFORCE_TEST_SF_PASSWORD", PASSWORD)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 30).await;
    // Force a re-login mid-run: the refresh path must not log secrets either.
    org.control(reqwest::Method::POST, "/sessions/expire", None)
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    daemon.start_kill().unwrap();
    let output = daemon.wait_with_output().await.unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("DEBUG"), "debug logging was on");
    assert!(
        all.contains("logging in again"),
        "the session was renewed:\n{all}"
    );
    assert_no_secret(&all);
    let _ = std::fs::remove_file(config);
}
