//! Where a change-event subscriber stands: its replay id moves only under its lease, and
//! a nudge reaches a listener in another session with the mapping's id.

use std::time::Duration;

use pgforce_store::catalog::subscriptions::{self, Transport};
use pgforce_store::catalog::{NUDGE_CHANNEL, connections, leases};
use pgforce_store::notify::Listener;
use pgforce_store::testing::TestDatabase;
use pgforce_store::{MappingId, OwnWrite};

/// Records `received` events reaching replay id `[0, 0, 0, last]` under `fence`, as the
/// subscriber does.
async fn record(
    client: &mut tokio_postgres::Client,
    fence: &leases::Fence,
    connection: pgforce_store::ConnectionId,
    last: u8,
    received: i64,
) -> pgforce_store::Result<()> {
    let tx = OwnWrite::untabled()
        .fenced(Some(fence))
        .begin(client)
        .await?;
    subscriptions::record_events(
        &*tx,
        connection,
        Transport::PubSub,
        Some(&[0, 0, 0, last]),
        received,
        &[],
    )
    .await?;
    tx.commit("recording events").await
}

#[tokio::test]
async fn the_replay_id_moves_only_under_the_subscribers_lease() {
    let db = TestDatabase::create().await;
    let mut client = db.client().await;
    let connection = connections::declare(&client, "main", "salesforce", "{}")
        .await
        .unwrap();
    assert_eq!(
        subscriptions::load(&client, connection).await.unwrap(),
        None
    );
    let lease = leases::subscriber_lease(connection);
    let first = leases::acquire(&client, &lease, "first", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();

    record(&mut client, &first, connection, 7, 3).await.unwrap();
    let stored = subscriptions::load(&client, connection)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.replay_id.as_deref(), Some(&[0u8, 0, 0, 7][..]));
    assert_eq!(
        (stored.transport, stored.events_received),
        (Transport::PubSub, 3)
    );

    // Another holder takes the expired lease: the first one's next record lands nowhere.
    tokio::time::sleep(Duration::from_millis(20)).await;
    leases::acquire(&client, &lease, "second", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(record(&mut client, &first, connection, 9, 1).await.is_err());
    let stored = subscriptions::load(&client, connection)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.replay_id.as_deref(), Some(&[0u8, 0, 0, 7][..]));

    // An expired id is forgotten; the count stays.
    subscriptions::forget_replay(&client, connection)
        .await
        .unwrap();
    let stored = subscriptions::load(&client, connection)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.replay_id, stored.events_received), (None, 3));
}

#[tokio::test]
async fn a_nudge_reaches_a_listener_elsewhere_with_the_mappings_id() {
    let db = TestDatabase::create().await;
    let mut listener = Listener::listen(&db.url, NUDGE_CHANNEL).await.unwrap();
    let client = db.client().await;
    subscriptions::nudge(&client, MappingId::from(41))
        .await
        .unwrap();
    subscriptions::nudge(&client, MappingId::from(42))
        .await
        .unwrap();
    subscriptions::nudge(&client, MappingId::from(41))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), listener.notified())
        .await
        .expect("a nudge wakes the listener");
    // Give the third notification time to arrive too; the set keeps each id once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut payloads = listener.take_payloads();
    payloads.sort();
    assert_eq!(payloads, ["41", "42"]);
    assert!(listener.take_payloads().is_empty());
}
