//! `pgforce run` deletes sync events older than `[engine] events_retention_days`.

use std::process::Stdio;

use pgforce_store::testing::TestDatabase;

use crate::run::{ACCOUNT_MAPPING, config_file, count, pgforce, seeded_org, stop, wait_for_count};

/// Records an event `age` old, named `message` (not tied to a mapping).
async fn event_aged(db: &TestDatabase, message: &str, age: &str) {
    db.client()
        .await
        .execute(
            "insert into pgforce.sync_events (kind, direction, outcome, message, created_at)
             values ('poll', 'sf_to_pg', 'ok', $1, now() - $2::text::interval)",
            &[&message, &age],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn run_deletes_events_older_than_the_configured_retention() {
    let org = seeded_org(5).await;
    let db = TestDatabase::create().await;
    // Under the default 31 days both events would stay.
    let mappings = format!("{ACCOUNT_MAPPING}\n[engine]\nevents_retention_days = 2\n");
    let config = config_file(&org, &db, &mappings);
    event_aged(&db, "three days old", "3 days").await;
    event_aged(&db, "one day old", "1 day").await;

    let daemon = pgforce(&["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(
        &db,
        "select count(*) from pgforce.sync_events where message = 'three days old'",
        0,
    )
    .await;
    wait_for_count(&db, "select count(*) from salesforce.account", 5).await;
    stop(daemon).await;

    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.sync_events where message = 'one day old'"
        )
        .await,
        1,
        "an event younger than the retention stays"
    );
    assert!(
        count(
            &db,
            "select count(*) from pgforce.sync_events where kind = 'load'"
        )
        .await
            >= 1,
        "the run's own events are recorded and kept"
    );
    let _ = std::fs::remove_file(config);
}
