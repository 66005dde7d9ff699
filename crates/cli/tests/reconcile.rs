//! `pgforce reconcile`: drift is reported with a failing exit status and shown by
//! `pgforce status`; `--repair` fixes it and exits 0, and run beside a busy `pgforce run`
//! loses no row.

use std::process::Stdio;
use std::time::Duration;

use pgforce_store::testing::TestDatabase;
use reqwest::Method;
use serde_json::json;
use tokio::sync::watch;

use crate::run::{
    ACCOUNT_MAPPING, config_file, count, pgforce, pgforce_ok, salesforce, seeded_org, stop,
    wait_for_count,
};

#[tokio::test]
async fn reconcile_reports_drift_and_repair_fixes_it() {
    let org = seeded_org(20).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let path = config.to_str().unwrap().to_owned();
    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 20).await;
    stop(daemon).await;
    let clean = pgforce_ok(&["reconcile", "--config", &path]).await;
    assert!(clean.contains("Salesforce and Postgres agree"), "{clean}");

    // Two rows lost in Postgres, one record deleted in Salesforce, both unseen by a daemon.
    db.client()
        .await
        .batch_execute(
            "set xmlbinary = 'hex';
             delete from salesforce.account where id in (select id from salesforce.account order by id limit 2)",
        )
        .await
        .unwrap();
    let sfid: String = db
        .client()
        .await
        .query_one(
            "select sfid from salesforce.account order by id desc limit 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    salesforce(&org).delete("Account", &sfid).await.unwrap();

    let output = pgforce(&["reconcile", "--config", &path])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "drift fails the command: {stdout}"
    );
    assert!(stderr.contains("differ for Account"), "{stderr}");
    let line = stdout.lines().find(|l| l.contains("Account")).unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(2).collect();
    assert_eq!(numbers[..5], ["19", "18", "2", "1", "0"], "{stdout}");
    let status = pgforce_ok(&["status", "--config", &path]).await;
    assert!(
        status.contains("2 missing in postgres, 1 gone from salesforce"),
        "{status}"
    );

    let repaired = pgforce_ok(&["reconcile", "--config", &path, "--repair", "Account"]).await;
    assert!(
        repaired.contains("repaired: 2 read again, 1 deleted"),
        "{repaired}"
    );
    assert!(
        repaired.contains("Salesforce and Postgres agree"),
        "{repaired}"
    );
    assert_eq!(
        count(&db, "select count(*) from salesforce.account").await,
        19
    );
    let status = pgforce_ok(&["status", "--config", &path]).await;
    assert!(!status.contains("drift"), "{status}");
    let _ = std::fs::remove_file(config);
}

/// Accounts mapped read-write, with reconcile reading Salesforce through a Bulk API query
/// job (more than 10 records), as it does on large objects.
const BUSY_ACCOUNTS: &str = r#"bulk_write_threshold = 1000000

[[connection.mapping]]
object = "Account"
access = "read_write"
fields = ["Name", "Industry"]
polling_seconds = 1
bulk_threshold = 10
"#;

/// More Accounts than one REST page holds, so reconcile's snapshot of Salesforce goes
/// through a Bulk API query job, which takes a while.
const SEEDED: u64 = 2500;

#[tokio::test]
async fn repair_beside_a_running_daemon_loses_no_row() {
    let org = seeded_org(SEEDED).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, BUSY_ACCOUNTS);
    let path = config.to_str().unwrap().to_owned();
    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let seeded = i64::try_from(SEEDED).unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", seeded).await;
    // Every Salesforce call takes a while, so the daemon writes sfids back and stores new
    // records while reconcile's snapshot is being taken.
    org.control(Method::PUT, "/faults", Some(json!({ "latencyMs": 300 })))
        .await;
    let (finish, finished) = watch::channel(false);
    // An app inserting rows all along.
    let app = {
        let pg = db.client().await;
        let finished = finished.clone();
        tokio::spawn(async move {
            let mut ids: Vec<i32> = Vec::new();
            while !*finished.borrow() {
                let name = format!("App {}", ids.len());
                let row = pg
                    .query_one(
                        "insert into salesforce.account (name) values ($1) returning id",
                        &[&name],
                    )
                    .await
                    .unwrap();
                ids.push(row.get(0));
                // Paces the workload; nothing waits on this.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            ids
        })
    };
    // Someone creating Accounts in Salesforce all along.
    let remote = {
        let sf = salesforce(&org);
        tokio::spawn(async move {
            let mut created: i64 = 0;
            while !*finished.borrow() {
                let fields = json!({ "Name": format!("Remote {created}") });
                sf.create("Account", &serde_json::from_value(fields).unwrap())
                    .await
                    .unwrap();
                created += 1;
            }
            created
        })
    };

    let repaired = pgforce(&["reconcile", "--config", &path, "--repair"])
        .output()
        .await
        .unwrap();
    finish.send(true).unwrap();
    let app_ids = app.await.unwrap();
    let created = remote.await.unwrap();
    let stdout = String::from_utf8_lossy(&repaired.stdout);
    let stderr = String::from_utf8_lossy(&repaired.stderr);
    assert!(stdout.contains("repaired:"), "{stdout}\n{stderr}");
    // Changes still flowing make the check after the repair differ; nothing else may fail.
    assert!(
        repaired.status.success() || stderr.contains("differ for Account"),
        "{stdout}\n{stderr}"
    );

    org.control(Method::PUT, "/faults", Some(json!({ "latencyMs": 0 })))
        .await;
    wait_for_count(
        &db,
        "select count(*) from salesforce._trigger_log where state in ('NEW', 'PENDING', 'HELD', 'FAILED')",
        0,
    )
    .await;
    let kept: i64 = db
        .client()
        .await
        .query_one(
            "select count(*) from salesforce.account where id = any($1)",
            &[&app_ids],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        kept,
        i64::try_from(app_ids.len()).unwrap(),
        "rows the app inserted were deleted; reconcile said:\n{stdout}"
    );
    let expected = seeded + kept + created;
    wait_for_count(&db, "select count(*) from salesforce.account", expected).await;
    // Every record read back, with its stamp.
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where systemmodstamp is null",
        0,
    )
    .await;
    stop(daemon).await;
    let clean = pgforce_ok(&["reconcile", "--config", &path]).await;
    assert!(clean.contains("Salesforce and Postgres agree"), "{clean}");
    let _ = std::fs::remove_file(config);
}
