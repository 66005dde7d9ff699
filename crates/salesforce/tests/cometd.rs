//! The CometD subscription against the emulator's Streaming API: events decoded, resumed
//! after a replay id, recovered after the server forgot the client or the session ended,
//! and the failures a caller must tell apart.

use std::time::Duration;

use pgforce_emulator::EmulatorConfig;
use pgforce_emulator::testing::TestOrg;
use pgforce_salesforce::Client;
use pgforce_salesforce::streaming::cometd::CometdSubscription;
use pgforce_salesforce::streaming::{ChangeEvent, ChangeType, StartAt, StreamError};
use reqwest::Method;
use serde_json::json;

use crate::support::{self, record};

const CHANNEL: &str = "/data/AccountChangeEvent";

/// An org whose connects are held one second and whose Accounts are selected for CDC.
async fn org_with(config: EmulatorConfig) -> TestOrg {
    let org = support::org_with(EmulatorConfig {
        cometd_timeout: Duration::from_secs(1),
        ..config
    })
    .await;
    support::control(
        &org,
        Method::PUT,
        "/events/cdc",
        Some(json!({ "entities": ["Account"] })),
    )
    .await;
    org
}

async fn create(client: &Client, name: &str) -> String {
    client
        .create("Account", &record(json!({ "Name": name })))
        .await
        .unwrap()
}

/// Calls `next` until `count` events came (at most ten round trips).
async fn events(subscription: &mut CometdSubscription, count: usize) -> Vec<ChangeEvent> {
    let mut events = Vec::new();
    for _ in 0..10 {
        let batch = subscription.next().await.unwrap();
        if let Some(last) = batch.events.last() {
            assert_eq!(batch.latest_replay_id.as_ref(), Some(&last.replay_id));
        }
        events.extend(batch.events);
        if events.len() >= count {
            break;
        }
    }
    events
}

fn names(events: &[ChangeEvent]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.fields["Name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn change_events_arrive_decoded() {
    let org = org_with(EmulatorConfig::default()).await;
    let client = support::client(&org);
    let mut subscription = CometdSubscription::open(&client, CHANNEL, StartAt::Latest)
        .await
        .unwrap();
    let calls_before = client.calls_made();
    let id = create(&client, "Acme").await;
    client
        .update("Account", &id, &record(json!({ "Name": "Acme Corp" })))
        .await
        .unwrap();
    let received = events(&mut subscription, 2).await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].entity, "Account");
    assert_eq!(received[0].change_type, ChangeType::Create);
    assert_eq!(received[0].record_ids, vec![id.clone()]);
    assert!(!received[0].fields.contains_key("ChangeEventHeader"));
    assert_eq!(received[1].change_type, ChangeType::Update);
    assert_eq!(received[1].changed_fields, ["Name", "LastModifiedDate"]);
    assert_eq!(received[1].fields["Name"], "Acme Corp");
    assert!(received[1].commit_timestamp > 0);
    assert!(
        received[0].replay_id.as_number() < received[1].replay_id.as_number(),
        "replay ids increase"
    );
    assert_eq!(
        client.calls_made() - calls_before,
        2,
        "streaming calls are not API calls"
    );
    subscription.close().await;
}

#[tokio::test]
async fn a_subscription_resumes_after_a_given_replay_id() {
    let org = org_with(EmulatorConfig::default()).await;
    let client = support::client(&org);
    for name in ["A", "B", "C"] {
        create(&client, name).await;
    }
    let mut everything = CometdSubscription::open(&client, CHANNEL, StartAt::Earliest)
        .await
        .unwrap();
    let all = events(&mut everything, 3).await;
    assert_eq!(names(&all), ["A", "B", "C"]);
    let mut resumed =
        CometdSubscription::open(&client, CHANNEL, StartAt::After(all[0].replay_id.clone()))
            .await
            .unwrap();
    assert_eq!(names(&events(&mut resumed, 2).await), ["B", "C"]);
}

#[tokio::test]
async fn a_forgotten_client_handshakes_again_and_misses_nothing() {
    let org = org_with(EmulatorConfig {
        cometd_client_expiry: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    let client = support::client(&org);
    let mut subscription = CometdSubscription::open(&client, CHANNEL, StartAt::Latest)
        .await
        .unwrap();
    create(&client, "First").await;
    assert_eq!(names(&events(&mut subscription, 1).await), ["First"]);
    // Longer than the server keeps a client that does not come back.
    tokio::time::sleep(Duration::from_millis(700)).await;
    create(&client, "While away").await;
    assert_eq!(names(&events(&mut subscription, 1).await), ["While away"]);
}

#[tokio::test]
async fn an_ended_session_is_renewed_and_revoked_credentials_fail_as_auth() {
    let org = org_with(EmulatorConfig::default()).await;
    let client = support::client(&org);
    let mut subscription = CometdSubscription::open(&client, CHANNEL, StartAt::Latest)
        .await
        .unwrap();
    create(&client, "Before").await;
    assert_eq!(events(&mut subscription, 1).await.len(), 1);
    support::control(&org, Method::POST, "/sessions/expire", None).await;
    let logins = client.logins();
    create(&client, "After expiry").await;
    assert_eq!(names(&events(&mut subscription, 1).await), ["After expiry"]);
    assert!(client.logins() > logins);

    support::control(&org, Method::POST, "/credentials/revoke", None).await;
    let error = subscription.next().await.unwrap_err();
    assert!(matches!(error, StreamError::Auth(_)), "{error:?}");
}

#[tokio::test]
async fn expired_replay_ids_unknown_channels_and_cuts_are_told_apart() {
    let org = org_with(EmulatorConfig {
        cometd_timeout: Duration::from_secs(20),
        ..EmulatorConfig::default()
    })
    .await;
    let client = support::client(&org);
    create(&client, "Old").await;
    create(&client, "Newer").await;
    let mut everything = CometdSubscription::open(&client, CHANNEL, StartAt::Earliest)
        .await
        .unwrap();
    let old = events(&mut everything, 2).await;
    // The first id is no longer kept; resuming after the last one would miss nothing.
    support::control(&org, Method::POST, "/events/expire", None).await;
    let error =
        CometdSubscription::open(&client, CHANNEL, StartAt::After(old[0].replay_id.clone()))
            .await
            .unwrap_err();
    assert!(matches!(error, StreamError::ReplayExpired(_)), "{error:?}");

    let error = CometdSubscription::open(&client, "/data/NoSuchChangeEvent", StartAt::Latest)
        .await
        .unwrap_err();
    assert!(matches!(error, StreamError::Unavailable(_)), "{error:?}");

    let held = tokio::spawn(async move {
        let outcome = everything.next().await;
        (everything, outcome)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    support::control(&org, Method::POST, "/events/cut", None).await;
    let (mut everything, outcome) = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .unwrap()
        .unwrap();
    let error = outcome.unwrap_err();
    assert!(matches!(error, StreamError::Transport(_)), "{error:?}");
    create(&client, "After the cut").await;
    assert_eq!(names(&events(&mut everything, 1).await), ["After the cut"]);
}

#[tokio::test]
async fn a_push_topic_is_created_once_corrected_when_changed_and_streams_every_change() {
    use pgforce_salesforce::rest::push_topic::push_topic_name;
    let org = org_with(EmulatorConfig::default()).await;
    let client = support::client(&org);
    let name = push_topic_name("Account");
    let channel = client.ensure_push_topic(&name, "Account").await.unwrap();
    assert_eq!(channel, "/topic/hconnect_Account");
    // A second process finds it and changes nothing; one an administrator narrowed is
    // put back.
    client.ensure_push_topic(&name, "Account").await.unwrap();
    let topics = |client: Client| async move {
        futures_util::TryStreamExt::try_collect::<Vec<_>>(
            client.query("SELECT Id, Query, NotifyForFields FROM PushTopic"),
        )
        .await
        .unwrap()
    };
    let listed = topics(client.clone()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0]["Id"].as_str().unwrap().to_owned();
    client
        .update(
            "PushTopic",
            &id,
            &record(
                json!({ "NotifyForFields": "Referenced", "Query": "SELECT Id, Name FROM Account" }),
            ),
        )
        .await
        .unwrap();
    client.ensure_push_topic(&name, "Account").await.unwrap();
    let listed = topics(client.clone()).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["Query"], "SELECT Id FROM Account");
    assert_eq!(listed[0]["NotifyForFields"], "All");

    let mut subscription = CometdSubscription::open(&client, &channel, StartAt::Latest)
        .await
        .unwrap();
    let created = create(&client, "Watched").await;
    client
        .update(
            "Account",
            &created,
            &record(json!({ "Industry": "Energy" })),
        )
        .await
        .unwrap();
    let received = events(&mut subscription, 2).await;
    let kinds: Vec<(&ChangeType, &[String])> = received
        .iter()
        .map(|e| (&e.change_type, e.record_ids.as_slice()))
        .collect();
    assert_eq!(
        kinds,
        [
            (&ChangeType::Create, std::slice::from_ref(&created)),
            (&ChangeType::Update, std::slice::from_ref(&created))
        ]
    );
}
