//! The sync event log forgets events older than its retention.

use std::time::Duration;

use pgforce_store::catalog::events;
use pgforce_store::testing::TestDatabase;

const DAY: Duration = Duration::from_secs(86_400);

/// Records an event `age` old, named `message`.
async fn event_aged(client: &tokio_postgres::Client, message: &str, age: &str) {
    client
        .execute(
            "insert into pgforce.sync_events (kind, direction, outcome, message, created_at)
             values ('poll', 'sf_to_pg', 'ok', $1, now() - $2::text::interval)",
            &[&message, &age],
        )
        .await
        .unwrap();
}

async fn messages(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "select message from pgforce.sync_events order by created_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn pruning_deletes_events_older_than_the_retention_and_keeps_recent_ones() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    event_aged(&client, "a year ago", "365 days").await;
    event_aged(&client, "32 days ago", "32 days").await;
    event_aged(&client, "30 days ago", "30 days").await;
    event_aged(&client, "an hour ago", "1 hour").await;
    event_aged(&client, "just now", "0 seconds").await;

    let deleted = events::prune(&client, 31 * DAY).await.unwrap();

    assert_eq!(deleted, 2);
    assert_eq!(
        messages(&client).await,
        ["30 days ago", "an hour ago", "just now"]
    );

    let deleted = events::prune(&client, DAY).await.unwrap();
    assert_eq!(deleted, 1, "a shorter retention deletes more");
    assert_eq!(messages(&client).await, ["an hour ago", "just now"]);
}

#[tokio::test]
async fn a_retention_beyond_the_timestamp_range_deletes_nothing_and_does_not_fail() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    event_aged(&client, "a year ago", "365 days").await;

    let deleted = events::prune(&client, Duration::from_secs(u64::MAX))
        .await
        .unwrap();

    assert_eq!(deleted, 0);
    assert_eq!(messages(&client).await, ["a year ago"]);
}
