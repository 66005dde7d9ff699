//! The Pub/Sub client against the emulator's gRPC listener: decoding create, update and
//! delete events (field names from bitmaps), resuming after a replay id, expired replay
//! ids, unknown topics, stream cuts and renewing a refused session.

use std::time::Duration;

use pgforce_emulator::EmulatorConfig;
use pgforce_emulator::testing::TestOrg;
use pgforce_salesforce::Client;
use pgforce_salesforce::streaming::pubsub::PubSubSubscription;
use pgforce_salesforce::streaming::{ChangeType, EventBatch, StartAt, StreamError};
use reqwest::Method;
use serde_json::json;

use crate::support::{self, record};

const TOPIC: &str = "/data/AccountChangeEvent";

/// An org with Account selected for Change Data Capture and a short keepalive, and a
/// client logged in to it.
async fn cdc_org() -> (TestOrg, Client) {
    let org = support::org_with(EmulatorConfig {
        pubsub_keepalive: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    support::control(
        &org,
        Method::PUT,
        "/events/cdc",
        Some(json!({"entities": ["Account"]})),
    )
    .await;
    let client = support::client(&org);
    (org, client)
}

async fn next(subscription: &mut PubSubSubscription) -> EventBatch {
    tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("the subscription answers in time")
        .expect("the subscription delivers")
}

/// Reads batches until `count` events have arrived.
async fn events(
    subscription: &mut PubSubSubscription,
    count: usize,
) -> Vec<pgforce_salesforce::streaming::ChangeEvent> {
    let mut out = Vec::new();
    while out.len() < count {
        out.extend(next(subscription).await.events);
    }
    out
}

#[tokio::test]
async fn create_update_and_delete_events_are_decoded_with_field_names() {
    let (org, client) = cdc_org().await;
    let mut subscription =
        PubSubSubscription::open(&client, &org.pubsub_endpoint, TOPIC, StartAt::Latest)
            .await
            .unwrap();
    // A keepalive proves the subscription is open before anything changes.
    let keepalive = next(&mut subscription).await;
    assert!(keepalive.events.is_empty());
    assert!(keepalive.latest_replay_id.is_some());

    let id = client
        .create(
            "Account",
            &record(json!({"Name": "Acme", "Industry": "Energy", "NumberOfEmployees": 12})),
        )
        .await
        .unwrap();
    client
        .update(
            "Account",
            &id,
            &record(json!({"Name": "Acme Corp", "Industry": null})),
        )
        .await
        .unwrap();
    client.delete("Account", &id).await.unwrap();
    let received = events(&mut subscription, 3).await;

    let created = &received[0];
    assert_eq!(created.entity, "Account");
    assert_eq!(created.change_type, ChangeType::Create);
    assert_eq!(created.record_ids, vec![id.clone()]);
    assert_eq!(created.fields["Name"], "Acme");
    assert_eq!(created.fields["Industry"], "Energy");
    assert_eq!(created.fields["NumberOfEmployees"], 12);
    let created_date = created.fields["CreatedDate"].as_str().unwrap();
    assert!(
        created_date.ends_with('Z') && created_date.len() == 24,
        "{created_date}"
    );
    assert!(created.commit_timestamp > 0);
    assert!(
        created.changed_fields.is_empty(),
        "CREATE names no changed fields"
    );

    let updated = &received[1];
    assert_eq!(updated.change_type, ChangeType::Update);
    assert!(updated.changed_fields.contains(&"Name".to_owned()));
    assert!(updated.changed_fields.contains(&"Industry".to_owned()));
    assert!(
        updated
            .changed_fields
            .contains(&"LastModifiedDate".to_owned())
    );
    assert_eq!(updated.nulled_fields, vec!["Industry".to_owned()]);
    assert_eq!(updated.fields["Name"], "Acme Corp");
    assert!(updated.fields["Industry"].is_null());
    assert!(
        !updated.fields.contains_key("NumberOfEmployees"),
        "unchanged fields are left out"
    );

    let deleted = &received[2];
    assert_eq!(deleted.change_type, ChangeType::Delete);
    assert_eq!(deleted.record_ids, vec![id]);
    assert!(deleted.fields.is_empty());
    let ids: Vec<i64> = received
        .iter()
        .map(|e| e.replay_id.as_number().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[tokio::test]
async fn a_subscription_resumes_after_a_replay_id() {
    let (org, client) = cdc_org().await;
    let first = client
        .create("Account", &record(json!({"Name": "First"})))
        .await
        .unwrap();
    let second = client
        .create("Account", &record(json!({"Name": "Second"})))
        .await
        .unwrap();
    let mut all = PubSubSubscription::open(
        &client,
        &org.pubsub_endpoint,
        "/data/ChangeEvents",
        StartAt::Earliest,
    )
    .await
    .unwrap();
    let received = events(&mut all, 2).await;
    assert_eq!(received[0].record_ids, vec![first]);
    let mut resumed = PubSubSubscription::open(
        &client,
        &org.pubsub_endpoint,
        TOPIC,
        StartAt::After(received[0].replay_id.clone()),
    )
    .await
    .unwrap();
    let after = events(&mut resumed, 1).await;
    assert_eq!(after[0].record_ids, vec![second]);
    assert_eq!(after[0].replay_id, received[1].replay_id);
}

#[tokio::test]
async fn an_expired_replay_id_is_reported_as_such() {
    let (org, client) = cdc_org().await;
    for name in ["Old", "Older"] {
        client
            .create("Account", &record(json!({ "Name": name })))
            .await
            .unwrap();
    }
    let mut subscription =
        PubSubSubscription::open(&client, &org.pubsub_endpoint, TOPIC, StartAt::Earliest)
            .await
            .unwrap();
    // Expired: the events after the first one are no longer retained.
    let old = events(&mut subscription, 2).await.remove(0);
    support::control(&org, Method::POST, "/events/expire", None).await;
    let mut expired = PubSubSubscription::open(
        &client,
        &org.pubsub_endpoint,
        TOPIC,
        StartAt::After(old.replay_id),
    )
    .await
    .unwrap();
    let error = expired.next().await.unwrap_err();
    assert!(matches!(error, StreamError::ReplayExpired(_)), "{error:?}");
    assert!(error.to_string().contains("rpcId:"), "{error}");
}

#[tokio::test]
async fn unknown_topics_are_unavailable_and_cut_streams_are_transport_errors() {
    let (org, client) = cdc_org().await;
    let error = PubSubSubscription::open(
        &client,
        &org.pubsub_endpoint,
        "/data/NopeChangeEvent",
        StartAt::Latest,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, StreamError::Unavailable(_)), "{error:?}");
    assert!(
        error.to_string().contains("/data/NopeChangeEvent"),
        "{error}"
    );

    let mut subscription =
        PubSubSubscription::open(&client, &org.pubsub_endpoint, TOPIC, StartAt::Latest)
            .await
            .unwrap();
    assert!(next(&mut subscription).await.events.is_empty());
    support::control(&org, Method::POST, "/events/cut", None).await;
    let error = loop {
        match subscription.next().await {
            Ok(_) => continue,
            Err(error) => break error,
        }
    };
    assert!(matches!(error, StreamError::Transport(_)), "{error:?}");
    assert!(error.to_string().contains("UNAVAILABLE"), "{error}");
}

#[tokio::test]
async fn a_refused_session_is_renewed_once_then_reported() {
    let (org, client) = cdc_org().await;
    client.session().await.unwrap();
    assert_eq!(client.logins(), 1);
    support::control(&org, Method::POST, "/sessions/expire", None).await;
    let mut subscription =
        PubSubSubscription::open(&client, &org.pubsub_endpoint, TOPIC, StartAt::Earliest)
            .await
            .unwrap();
    assert_eq!(client.logins(), 2, "the refused token was renewed");
    client
        .create("Account", &record(json!({"Name": "After renewal"})))
        .await
        .unwrap();
    assert_eq!(
        events(&mut subscription, 1).await[0].fields["Name"],
        "After renewal"
    );

    // With the integration user's access revoked, renewing fails: an authentication error.
    support::control(&org, Method::POST, "/credentials/revoke", None).await;
    let error = PubSubSubscription::open(&client, &org.pubsub_endpoint, TOPIC, StartAt::Latest)
        .await
        .unwrap_err();
    assert!(matches!(error, StreamError::Auth(_)), "{error:?}");
}

#[tokio::test]
async fn credit_is_topped_up_past_the_first_hundred_events() {
    let (org, client) = cdc_org().await;
    support::seed(&org, json!({ "Account": 250 })).await;
    let mut subscription =
        PubSubSubscription::open(&client, &org.pubsub_endpoint, TOPIC, StartAt::Earliest)
            .await
            .unwrap();
    // Without top-ups the server would stop after the first 100 and send keepalives only.
    let received = tokio::time::timeout(Duration::from_secs(30), events(&mut subscription, 250))
        .await
        .expect("all 250 events arrive");
    assert_eq!(received.len(), 250);
    assert!(received.iter().all(|e| e.change_type == ChangeType::Create));
    let mut records: Vec<&str> = received.iter().map(|e| e.record_ids[0].as_str()).collect();
    records.sort_unstable();
    records.dedup();
    assert_eq!(records.len(), 250, "each record once");
}
