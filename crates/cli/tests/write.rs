//! `pgforce run` with a read-write mapping: an app's inserts, updates and deletes reach
//! Salesforce, `pgforce status` shows the writer, and a writer killed mid-batch restarts
//! without creating any record twice or losing any change.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use pgforce_emulator::testing::TestOrg;
use pgforce_store::testing::TestDatabase;
use reqwest::Method;
use tokio::process::Child;

use crate::run::{
    config_file, count, pgforce, pgforce_ok, salesforce, seeded_org, stop, wait_for_count,
    wait_for_count_within,
};

/// Accounts mapped read-write; writes stay on sObject Collections (bulk writes are
/// covered by the engine's tests), so a kill can land between calls.
const WRITABLE_ACCOUNTS: &str = r#"bulk_write_threshold = 1000000
request_timeout_seconds = 10

[[connection.mapping]]
object = "Account"
access = "read_write"
fields = ["Name", "Industry"]
polling_seconds = 1
"#;

async fn names_in_salesforce(org: &TestOrg, like: &str) -> Vec<String> {
    let soql = format!("SELECT Name FROM Account WHERE Name LIKE '{like}' ORDER BY Name");
    salesforce(org)
        .query(&soql)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r["Name"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (bounded) until Salesforce has exactly `expected` accounts named like `like`.
async fn wait_for_salesforce(org: &TestOrg, like: &str, expected: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let names = names_in_salesforce(org, like).await;
        if names.len() == expected {
            return names;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Salesforce has {} accounts like {like} ({names:?}), expected {expected}",
            names.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An org with `accounts` Accounts, a database, a config mapping them read-write, and
/// `pgforce run` on it once its initial load is done.
async fn running(accounts: u64) -> (TestOrg, TestDatabase, PathBuf, Child) {
    let org = seeded_org(accounts).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, WRITABLE_ACCOUNTS);
    let daemon = pgforce(&["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let expected = i64::try_from(accounts).unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", expected).await;
    (org, db, config, daemon)
}

#[tokio::test]
async fn app_changes_reach_salesforce_through_the_daemon() {
    let (org, db, config, daemon) = running(20).await;
    let path = config.to_str().unwrap().to_owned();
    let pg = db.client().await;

    pg.batch_execute(
        "insert into salesforce.account (name, industry) values ('App One', 'Banking'), ('App Two', 'Energy')",
    )
    .await
    .unwrap();
    assert_eq!(
        wait_for_salesforce(&org, "App %", 2).await,
        ["App One", "App Two"]
    );
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name like 'App %' and sfid is not null",
        2,
    )
    .await;

    pg.batch_execute(
        "update salesforce.account set name = 'App One, renamed' where name = 'App One';
         delete from salesforce.account where name = 'App Two';",
    )
    .await
    .unwrap();
    assert_eq!(
        wait_for_salesforce(&org, "App %", 1).await,
        ["App One, renamed"]
    );

    // A refused change shows in status with Salesforce's reason; the rest keep flowing.
    pg.batch_execute("insert into salesforce.account (industry) values ('Banking')")
        .await
        .unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce._trigger_log where state = 'FAILED'",
        1,
    )
    .await;
    let status = pgforce_ok(&["status", "--config", &path]).await;
    assert!(status.contains("writer main: held by"), "{status}");
    assert!(status.contains("REQUIRED_FIELD_MISSING"), "{status}");
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_writer_killed_mid_batch_restarts_without_duplicates_or_losses() {
    let (org, db, config, daemon) = running(5).await;
    let path = config.to_str().unwrap().to_owned();
    stop(daemon).await;

    // 3,000 app inserts (no upsert field: a resent create would duplicate), written
    // slowly so the kill lands while batches are in flight.
    let pg = db.client().await;
    pg.batch_execute(
        "insert into salesforce.account (name) select 'Bulk ' || lpad(n::text, 4, '0') from generate_series(1, 3000) n",
    )
    .await
    .unwrap();
    org.control(
        Method::PUT,
        "/faults",
        Some(serde_json::json!({ "latencyMs": 40 })),
    )
    .await;
    let mut daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let written = "select count(*) from salesforce._trigger_log where state = 'SUCCESS'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count(&db, written).await < 600 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    let after_kill = count(&db, written).await;
    assert!(
        after_kill < 3000,
        "the kill landed mid-run ({after_kill} written)"
    );

    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let names = wait_for_salesforce(&org, "Bulk %", 3000).await;
    let mut distinct = names.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 3000, "no record created twice");
    wait_for_count(
        &db,
        "select count(*) from salesforce._trigger_log where state in ('NEW', 'PENDING')",
        0,
    )
    .await;
    assert_eq!(
        count(
            &db,
            "select count(distinct sfid) from salesforce.account where name like 'Bulk %'"
        )
        .await,
        3000,
        "every row has its own record"
    );
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_writer_killed_while_salesforce_still_runs_its_creates_sends_none_of_them_twice() {
    let (org, db, config, daemon) = running(5).await;
    let path = config.to_str().unwrap().to_owned();
    // Salesforce takes 10 s to commit each call, and finishes it after its client has gone.
    org.control(
        Method::PUT,
        "/faults",
        Some(serde_json::json!({ "commitDelayRate": 1.0, "commitDelayMs": 10000 })),
    )
    .await;
    db.client()
        .await
        .batch_execute(
            "insert into salesforce.account (name) select 'Late ' || lpad(n::text, 2, '0') from generate_series(1, 50) n",
        )
        .await
        .unwrap();
    // Claimed, then sent at once: a second later the call is in Salesforce's hands.
    wait_for_count(
        &db,
        "select count(*) from salesforce._trigger_log where state = 'PENDING'",
        50,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Killed while the call runs; the next writer starts before Salesforce has committed.
    let mut daemon = daemon;
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    let committed = tokio::time::Instant::now() + Duration::from_secs(10);
    org.control(Method::PUT, "/faults", Some(serde_json::json!({})))
        .await;
    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    // Checked once Salesforce can no longer be running the call: the timeout again plus
    // 10 s after the wave left.
    wait_for_count_within(
        &db,
        "select count(*) from salesforce._trigger_log where state <> 'SUCCESS'",
        0,
        Duration::from_secs(60),
    )
    .await;
    // Once the killed writer's call has committed, whatever else was sent.
    tokio::time::sleep_until(committed).await;
    let names = names_in_salesforce(&org, "Late %").await;
    let mut distinct = names.clone();
    distinct.dedup();
    assert_eq!(
        (names.len(), distinct.len()),
        (50, 50),
        "each create reached Salesforce once"
    );
    assert_eq!(
        count(
            &db,
            "select count(distinct sfid) from salesforce.account where name like 'Late %'"
        )
        .await,
        50
    );
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}
