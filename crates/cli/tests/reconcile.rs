//! `pgforce reconcile`: drift is reported with a failing exit status and shown by
//! `pgforce status`; `--repair` fixes it and exits 0.

use std::process::Stdio;

use pgforce_store::testing::TestDatabase;

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
