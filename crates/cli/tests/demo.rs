//! `pgforce demo --exit` syncs a seeded org into Postgres and shows an edit arriving.

use pgforce_store::testing::TestDatabase;

use crate::run::pgforce_ok;

#[tokio::test]
async fn demo_loads_the_org_and_shows_an_edit_arriving() {
    let db = TestDatabase::create().await;
    let stdout = pgforce_ok(&["demo", "--exit", "--database-url", &db.url]).await;
    assert!(
        stdout.contains("2000 rows loaded into salesforce.account"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Salesforce → Postgres latency:"),
        "{stdout}"
    );
    let pg = db.client().await;
    for (table, expected) in [
        ("account", 2000_i64),
        ("contact", 5000),
        ("opportunity", 3000),
    ] {
        let count: i64 = pg
            .query_one(&format!("select count(*) from salesforce.{table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, expected, "{table}");
    }
    let edited: i64 = pg
        .query_one(
            "select count(*) from salesforce.account where name like '%(edited in Salesforce)'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(edited, 1, "the edit made in the org is in Postgres");
    let states: Vec<String> = pg
        .query("select distinct state from pgforce.mappings", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, ["DATA_SYNCED"]);
}
