//! The catalog is the source of truth: a mapping added, paused, resumed and removed while
//! `pgforce run` runs is picked up without a restart, and one whose settings do not fit
//! the org is shown `BAD_CONFIG` while the others go on.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use pgforce_emulator::testing::TestOrg;
use pgforce_store::testing::TestDatabase;

use crate::run::{
    ACCOUNT_MAPPING, config_file, count, pgforce, pgforce_ok, salesforce, stop, wait_for_count,
};

/// An org with 20 Accounts and 30 Contacts, and `pgforce run` syncing Account from it;
/// returns the config file's path and the daemon once Account is loaded.
async fn running() -> (TestOrg, TestDatabase, PathBuf, tokio::process::Child) {
    let org = TestOrg::start().await;
    org.control(
        reqwest::Method::POST,
        "/seed",
        Some(serde_json::json!({ "Account": 20, "Contact": 30 })),
    )
    .await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let daemon = pgforce(&["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 20).await;
    (org, db, config, daemon)
}

#[tokio::test]
async fn mappings_added_paused_resumed_and_removed_at_run_time_are_picked_up_without_a_restart() {
    let (org, db, config, daemon) = running().await;
    let path = config.to_str().unwrap().to_owned();

    // Added: the running daemon loads it and writes its changes.
    let added = pgforce_ok(&[
        "mapping",
        "--config",
        &path,
        "add",
        "Contact",
        "--fields",
        "LastName,Email",
        "--access",
        "read_write",
        "--polling-seconds",
        "1",
    ])
    .await;
    assert!(
        added.contains("mapping Contact of connection main registered"),
        "{added}"
    );
    wait_for_count(&db, "select count(*) from salesforce.contact", 30).await;
    let reader_lease = "select count(*) from pgforce.leases l join pgforce.mappings m
                        on l.name = 'reader:' || m.id where m.object_name = 'Contact'";
    wait_for_count(&db, reader_lease, 1).await;

    // Paused: its reader lets go of the mapping and its app changes wait unsent.
    pgforce_ok(&["mapping", "--config", &path, "pause", "Contact"]).await;
    wait_for_count(&db, reader_lease, 0).await;
    let pg = db.client().await;
    pg.batch_execute(
        "insert into salesforce.contact (lastname, email) values ('Waiting', 'w@example.com')",
    )
    .await
    .unwrap();
    let sf = salesforce(&org);
    let sfid: String = pg
        .query_one(
            "select sfid from salesforce.contact where sfid is not null limit 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let edit =
        serde_json::from_value(serde_json::json!({ "LastName": "Edited While Paused" })).unwrap();
    sf.update("Contact", &sfid, &edit).await.unwrap();
    // Three polling intervals: a running reader would have brought the edit home.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(
            &db,
            "select count(*) from salesforce.contact where lastname = 'Edited While Paused'"
        )
        .await,
        0,
        "a paused mapping is not read"
    );
    assert_eq!(
        count(&db, "select count(*) from salesforce._trigger_log where table_name = 'contact' and state = 'NEW'").await,
        1,
        "a paused mapping's changes wait"
    );
    let status = pgforce_ok(&["status", "--config", &path]).await;
    assert!(status.contains("(paused)"), "{status}");

    // Resumed: the edit arrives and the waiting insert reaches Salesforce.
    pgforce_ok(&["mapping", "--config", &path, "resume", "Contact"]).await;
    wait_for_count(
        &db,
        "select count(*) from salesforce.contact where lastname = 'Edited While Paused'",
        1,
    )
    .await;
    wait_for_count(
        &db,
        "select count(*) from salesforce.contact where lastname = 'Waiting' and sfid is not null",
        1,
    )
    .await;

    // Removed: the reader stops for good; the table and its rows stay, app changes are no
    // longer captured.
    let removed = pgforce_ok(&["mapping", "--config", &path, "remove", "Contact"]).await;
    assert!(removed.contains("its table and rows stay"), "{removed}");
    wait_for_count(
        &db,
        "select count(*) from pgforce.mappings where object_name = 'Contact'",
        0,
    )
    .await;
    wait_for_count(
        &db,
        "select count(*) from pgforce.leases where name like 'reader:%'",
        1,
    )
    .await;
    pg.batch_execute("update salesforce.contact set email = 'after@example.com'")
        .await
        .unwrap();
    assert_eq!(
        count(&db, "select count(*) from salesforce._trigger_log where table_name = 'contact' and \"values\" like '%after@example.com%'").await,
        0,
        "a removed mapping's table captures nothing"
    );
    assert_eq!(
        count(&db, "select count(*) from salesforce.contact").await,
        31
    );

    // The daemon went on reading Account all along.
    let fields = serde_json::from_value(serde_json::json!({ "Name": "Still Read" })).unwrap();
    sf.create("Account", &fields).await.unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'Still Read'",
        1,
    )
    .await;
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_mapping_that_does_not_fit_the_org_shows_bad_config_while_the_others_go_on() {
    let (org, db, config, daemon) = running().await;
    let path = config.to_str().unwrap().to_owned();
    pgforce_ok(&[
        "mapping", "--config", &path, "add", "Contact", "--fields", "LastName",
    ])
    .await;
    wait_for_count(&db, "select count(*) from salesforce.contact", 30).await;

    // An operator edits the catalog by hand and names a field the org does not have.
    db.client()
        .await
        .batch_execute(
            "update pgforce.mappings set settings = jsonb_set(settings, '{fields}', '[\"LastName\", \"Shoe_Size__c\"]')
             where object_name = 'Contact'",
        )
        .await
        .unwrap();
    wait_for_count(
        &db,
        "select count(*) from pgforce.mappings where object_name = 'Contact' and state = 'BAD_CONFIG'
             and last_error like '%field Shoe_Size__c does not exist on Contact%'",
        1,
    )
    .await;
    let sf = salesforce(&org);
    let fields = serde_json::from_value(serde_json::json!({ "Name": "Others Go On" })).unwrap();
    sf.create("Account", &fields).await.unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'Others Go On'",
        1,
    )
    .await;
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}
