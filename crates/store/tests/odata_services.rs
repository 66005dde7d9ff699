//! The catalog of OData services: one per connection with a random slug, credentials kept
//! as salted hashes that overlap on reset and end on revoke, an hourly count that stops at
//! the limit, and expired rows purged.

use pgforce_store::ConnectionId;
use pgforce_store::catalog::odata::{self, Counted};
use pgforce_store::testing::TestDatabase;

async fn connection(client: &tokio_postgres::Client) -> ConnectionId {
    let id: i64 = client
        .query_one(
            "insert into pgforce.connections (name, schema_name) values ('main', 'salesforce') returning id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    ConnectionId::from(id)
}

#[tokio::test]
async fn a_connection_gets_one_service_with_a_random_slug() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    let connection = connection(&client).await;
    let first = odata::ensure(&client, connection).await.unwrap();
    let again = odata::ensure(&client, connection).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first.slug.len(), 32);
    assert!(
        first
            .slug
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    );
    assert!(!first.enabled && !first.writable && first.search_enabled);
    assert_eq!(
        (
            first.hourly_request_limit,
            first.statement_timeout_ms,
            first.credential_overlap_seconds
        ),
        (20_000, 30_000, 600)
    );
    assert_eq!(
        odata::by_slug(&client, &first.slug).await.unwrap(),
        Some(first)
    );
}

#[tokio::test]
async fn passwords_are_hashed_overlap_on_reset_end_on_revoke_and_are_purged() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    let service = odata::ensure(&client, connection(&client).await)
        .await
        .unwrap();
    odata::enable(&client, service.id).await.unwrap();
    let (old_user, old_password) = odata::new_credential(&client, service.id).await.unwrap();
    let stored: Vec<u8> = client
        .query_one("select password_hash from pgforce.odata_credentials", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(stored, old_password.as_bytes());
    assert!(
        odata::verify(&client, service.id, &old_user, &old_password)
            .await
            .unwrap()
    );
    assert!(
        !odata::verify(&client, service.id, &old_user, "wrong")
            .await
            .unwrap()
    );
    assert!(
        !odata::verify(&client, service.id, "nobody", &old_password)
            .await
            .unwrap()
    );

    let (new_user, new_password) = odata::new_credential(&client, service.id).await.unwrap();
    assert!(
        odata::verify(&client, service.id, &old_user, &old_password)
            .await
            .unwrap()
    );
    assert!(
        odata::verify(&client, service.id, &new_user, &new_password)
            .await
            .unwrap()
    );
    assert_eq!(
        odata::current_user(&client, service.id).await.unwrap(),
        Some(new_user.clone())
    );
    // Nothing has expired yet.
    assert_eq!(odata::purge(&client).await.unwrap(), 0);

    odata::revoke(&client, service.id).await.unwrap();
    assert!(
        !odata::verify(&client, service.id, &new_user, &new_password)
            .await
            .unwrap()
    );
    assert!(
        !odata::by_id(&client, service.id)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    // Both are expired now: purged.
    client
        .execute(
            "update pgforce.odata_credentials set expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(odata::purge(&client).await.unwrap(), 2);
}

#[tokio::test]
async fn requests_are_counted_up_to_the_limit_and_old_hours_purged() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    let service = odata::ensure(&client, connection(&client).await)
        .await
        .unwrap();
    for n in 1..=3 {
        assert_eq!(
            odata::count_request(&client, service.id, 3).await.unwrap(),
            Counted::Within(n)
        );
    }
    let Counted::Over { retry_after } = odata::count_request(&client, service.id, 3).await.unwrap()
    else {
        panic!("the fourth request is over the limit");
    };
    assert!((1..=3600).contains(&retry_after));
    assert_eq!(odata::current_usage(&client, service.id).await.unwrap(), 3);
    client
        .execute(
            "insert into pgforce.odata_usage (service_id, hour, requests) values ($1, date_trunc('hour', now()) - interval '2 days', 9)",
            &[&service.id],
        )
        .await
        .unwrap();
    assert_eq!(odata::purge(&client).await.unwrap(), 1);
    assert_eq!(odata::current_usage(&client, service.id).await.unwrap(), 3);
}
