//! Catalog migrations.

use pgforce_store::catalog;
use pgforce_store::testing::TestDatabase;

#[tokio::test]
async fn migrations_apply_once_and_create_the_catalog() {
    let db = TestDatabase::create().await;
    let mut client = db.client().await;
    assert_eq!(
        catalog::migrate(&mut client).await.unwrap(),
        0,
        "already applied by TestDatabase"
    );
    let tables: Vec<String> = client
        .query("select table_name::text from information_schema.tables where table_schema = 'pgforce' order by 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "api_tokens",
            "api_usage",
            "audit_log",
            "authorizations",
            "change_subscriptions",
            "connections",
            "creates_in_flight",
            "dashboard_sessions",
            "deleted_records",
            "leases",
            "mappings",
            "notifications",
            "odata_credentials",
            "odata_resources",
            "odata_services",
            "odata_usage",
            "read_cursors",
            "rejected_records",
            "schema_migrations",
            "stale_creates",
            "sync_events",
            "validations",
            "writer_jobs"
        ]
    );
}

#[tokio::test]
async fn a_catalog_missing_a_migration_is_not_ready_and_says_which() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    catalog::check(&client).await.unwrap();
    client
        .batch_execute("delete from pgforce.schema_migrations where version = (select max(version) from pgforce.schema_migrations)")
        .await
        .unwrap();
    let problem = catalog::check(&client).await.unwrap_err().to_string();
    assert!(problem.contains("the catalog is at migration"), "{problem}");
}

#[tokio::test]
async fn concurrent_migrations_do_not_collide() {
    let db = TestDatabase::create().await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        let url = db.url.clone();
        runs.push(tokio::spawn(async move {
            let mut client = pgforce_store::testing::connect(&url).await;
            catalog::migrate(&mut client).await
        }));
    }
    for run in runs {
        assert_eq!(run.await.unwrap().unwrap(), 0);
    }
}

#[tokio::test]
async fn work_under_a_lease_another_holder_took_over_commits_nothing() {
    use std::time::Duration;

    use pgforce_store::OwnWrite;
    use pgforce_store::catalog::leases;

    let db = TestDatabase::create().await;
    let mut client = db.client().await;
    client
        .batch_execute("create table work (n integer)")
        .await
        .unwrap();
    let first = leases::acquire(&client, "writer:x", "first", Duration::from_millis(1))
        .await
        .unwrap()
        .expect("a free lease is taken");
    let renewed = leases::acquire(&client, "writer:x", "first", Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(
        renewed.map(|f| f.token),
        Some(first.token),
        "a renewal keeps the token"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = leases::acquire(&client, "writer:x", "second", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert!(
        second.token > first.token,
        "a new holder gets a larger token"
    );

    // The first holder wakes up and tries to commit work begun under its old lease.
    let tx = OwnWrite::untabled()
        .fenced(Some(&first))
        .begin(&mut client)
        .await
        .unwrap();
    tx.execute("insert into work values (1)", &[])
        .await
        .unwrap();
    let refused = tx.commit("stale work").await.unwrap_err();
    assert!(refused.is_fenced(), "{refused}");
    let tx = OwnWrite::untabled()
        .fenced(Some(&second))
        .begin(&mut client)
        .await
        .unwrap();
    tx.execute("insert into work values (2)", &[])
        .await
        .unwrap();
    tx.commit("current work").await.unwrap();
    let rows: Vec<i32> = client
        .query("select n from work", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, [2], "only the current holder's work landed");
}

#[tokio::test]
async fn a_transaction_of_a_holder_frozen_past_its_lease_is_ended_and_its_locks_released() {
    use std::time::{Duration, Instant};

    use pgforce_store::OwnWrite;
    use pgforce_store::catalog::leases;

    let db = TestDatabase::create().await;
    let mut frozen = db.client().await;
    frozen
        .batch_execute("create table work (n integer primary key)")
        .await
        .unwrap();
    let fence = leases::acquire(&frozen, "reader:1", "frozen", Duration::from_millis(100))
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert_eq!(fence.idle_limit(), Duration::from_secs(1));

    // A holder inserts a row, then freezes inside its transaction: the row's key stays
    // locked for as long as the transaction stays open.
    let tx = OwnWrite::untabled()
        .fenced(Some(&fence))
        .begin(&mut frozen)
        .await
        .unwrap();
    tx.execute("insert into work values (1)", &[])
        .await
        .unwrap();
    let started = Instant::now();
    let standby = db.client().await;
    let took_over = tokio::time::timeout(
        Duration::from_secs(10),
        standby.execute("insert into work values (1)", &[]),
    )
    .await
    .expect("the standby's insert waited on the frozen transaction for good");
    took_over.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "the standby waited {waited:?}, not about the idle limit"
    );
    // The frozen holder, waking, finds its session gone: an error to start over on.
    let woke = pgforce_store::Error::Postgres {
        context: "the frozen holder's next statement".to_owned(),
        source: tx.execute("select 1", &[]).await.unwrap_err(),
    };
    assert!(woke.is_retryable(), "{woke}");

    // Work that waits on Salesforce inside its transaction (a load) has no such limit.
    let mut loader = db.client().await;
    let tx = OwnWrite::untabled()
        .fenced(Some(&fence))
        .across_calls()
        .begin(&mut loader)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tx.execute("insert into work values (2)", &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn creates_left_pending_before_the_upgrade_are_named_in_flight_so_they_are_checked() {
    let db = TestDatabase::create().await;
    let mut client = db.client().await;
    // A catalog from before creates were saved in flight, whose writer died with two
    // creates and an update claimed.
    client
        .batch_execute(
            "delete from pgforce.schema_migrations where version = 21;
             insert into pgforce.connections (name, schema_name) values ('main', 'old sync');
             create schema \"old sync\";
             create table \"old sync\"._trigger_log (id serial, action text, state text);
             insert into \"old sync\"._trigger_log (action, state) values
                 ('INSERT', 'PENDING'), ('UPDATE', 'PENDING'), ('INSERT', 'SUCCESS'),
                 ('INSERT', 'PENDING');
             insert into pgforce.connections (name, schema_name) values ('idle', 'idle');",
        )
        .await
        .unwrap();
    assert_eq!(catalog::migrate(&mut client).await.unwrap(), 1);
    let entries: Vec<(String, Vec<i32>)> = client
        .query(
            "select schema_name, log_ids from pgforce.creates_in_flight order by id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(entries, [("old sync".to_owned(), vec![1, 4])]);
}
