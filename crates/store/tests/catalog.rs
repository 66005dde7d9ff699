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
            "api_usage",
            "connections",
            "leases",
            "mappings",
            "read_cursors",
            "schema_migrations",
            "sync_events"
        ]
    );
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
