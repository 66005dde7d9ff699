//! Org-wide trouble pauses, it never fails: with the org's daily API allocation spent, or
//! the connection's refresh token refused, queued changes wait (none FAILED), the
//! connection shows `PAUSED_API_LIMIT` / `PAUSED_AUTH` in `pgforce status`, and once the
//! org answers again every change reaches Salesforce without anyone touching pgforce.

use std::process::Stdio;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use pgforce_emulator::testing::TestOrg;
use pgforce_store::testing::TestDatabase;
use reqwest::Method;

use crate::run::{config_file, count, pgforce, pgforce_ok, salesforce, stop, wait_for_count};

/// Accounts mapped read-write, polled every second.
const ACCOUNTS: &str = r#"
[[connection.mapping]]
object = "Account"
access = "read_write"
fields = ["Name"]
polling_seconds = 1
"#;

/// The connection's state in the catalog.
const STATE: &str = "select count(*) from pgforce.connections where state = ";

/// Updates every Account row's name to `prefix` and its id.
async fn rename_all(db: &TestDatabase, prefix: &str) {
    db.client()
        .await
        .execute("update salesforce.account set name = $1 || id", &[&prefix])
        .await
        .unwrap();
}

/// Waits (bounded) until Salesforce holds `expected` Accounts named like `prefix%`.
async fn wait_for_names(org: &TestOrg, prefix: &str, expected: usize) {
    let sf = salesforce(org);
    let soql = format!("SELECT Name FROM Account WHERE Name LIKE '{prefix}%'");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let names: Vec<_> = sf.query(&soql).try_collect().await.unwrap();
        if names.len() == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {expected} updates reached Salesforce",
            names.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn no_failures(db: &TestDatabase) {
    assert_eq!(
        count(
            db,
            "select count(*) from salesforce._trigger_log where state = 'FAILED'"
        )
        .await,
        0,
        "no change fails for an org-wide condition"
    );
}

#[tokio::test]
async fn an_exhausted_api_limit_pauses_the_connection_and_every_update_lands_once_it_is_back() {
    let org = crate::run::seeded_org(50).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNTS);
    let path = config.to_str().unwrap().to_owned();
    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 50).await;

    // The org's allocation is spent; the app goes on changing rows.
    org.control(
        Method::PUT,
        "/limits",
        Some(serde_json::json!({ "dailyApiRequests": 100000, "used": 100000 })),
    )
    .await;
    rename_all(&db, "Limited ").await;
    wait_for_count(&db, &format!("{STATE}'PAUSED_API_LIMIT'"), 1).await;
    let status = pgforce_ok(&["status", "--config", &path]).await;
    assert!(
        status.contains("connection main: PAUSED_API_LIMIT"),
        "{status}"
    );
    no_failures(&db).await;
    assert_eq!(
        count(
            &db,
            "select count(*) from salesforce._trigger_log where state = 'NEW'"
        )
        .await,
        50,
        "the changes wait"
    );
    // The state is shown first; the event log and the notification follow it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(&db, "select count(*) from pgforce.sync_events where message like 'connection paused (PAUSED_API_LIMIT)%'").await < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pause is in the event log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(&db, "select count(*) from pgforce.notifications where event_type = 'connection-paused' and message like '%PAUSED_API_LIMIT%'").await,
        1,
        "one notification tells the operator"
    );

    // The allocation is back: the writer notices by itself.
    org.control(
        Method::PUT,
        "/limits",
        Some(serde_json::json!({ "dailyApiRequests": 100000, "used": 0 })),
    )
    .await;
    wait_for_names(&org, "Limited ", 50).await;
    wait_for_count(&db, &format!("{STATE}'IDLE'"), 1).await;
    wait_for_count(
        &db,
        "select count(*) from salesforce._trigger_log where state = 'SUCCESS'",
        50,
    )
    .await;
    no_failures(&db).await;
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_refused_refresh_token_pauses_the_connection_and_every_update_lands_once_it_is_valid() {
    let org = crate::run::seeded_org(30).await;
    let db = TestDatabase::create().await;
    // Logged in with a refresh token, as orgs authorised through OAuth are.
    let config = config_file(&org, &db, ACCOUNTS);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "auth = \"password\"",
        &format!(
            "auth = \"refresh_token\"\nrefresh_token = \"{}\"",
            pgforce_emulator::DEFAULT_REFRESH_TOKEN
        ),
    );
    std::fs::write(&config, text).unwrap();
    let path = config.to_str().unwrap().to_owned();
    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 30).await;

    // The token is revoked (sessions end with it); the app goes on changing rows.
    org.control(Method::POST, "/credentials/revoke", None).await;
    rename_all(&db, "Revoked ").await;
    wait_for_count(&db, &format!("{STATE}'PAUSED_AUTH'"), 1).await;
    let status = pgforce_ok(&["status", "--config", &path]).await;
    assert!(status.contains("connection main: PAUSED_AUTH"), "{status}");
    no_failures(&db).await;

    org.control(Method::POST, "/credentials/restore", None)
        .await;
    wait_for_names(&org, "Revoked ", 30).await;
    wait_for_count(&db, &format!("{STATE}'IDLE'"), 1).await;
    no_failures(&db).await;
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}
