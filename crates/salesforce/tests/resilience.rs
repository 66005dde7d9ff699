//! Retries under injected faults, and the rule that keeps them from duplicating writes.

use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{ApiErrorCode, Client, Error};
use serde_json::json;

use crate::support::{self, account, faults};

/// A client that retries long enough that random faults cannot exhaust it in a test:
/// with at most 60% of attempts failing, thirty attempts all fail with odds below 1e-6.
fn patient_client(org: &pgforce_emulator::testing::TestOrg) -> Client {
    let mut config = support::config(org, support::password_credentials());
    config.retry.max_attempts = 30;
    config.retry.max_backoff = std::time::Duration::from_millis(10);
    Client::new(config).unwrap()
}

async fn account_count(client: &Client) -> u64 {
    client.count("SELECT COUNT() FROM Account").await.unwrap()
}

#[tokio::test]
async fn reads_and_idempotent_writes_survive_frequent_transient_faults() {
    let org = support::org().await;
    let client = patient_client(&org);
    let id = client.create("Account", &account("F")).await.unwrap();
    faults(&org, json!({ "serverUnavailableRate": 0.3, "unableToLockRowRate": 0.3, "dropConnectionRate": 0.1 })).await;
    for n in 0..20 {
        client
            .update(
                "Account",
                &id,
                &support::record(json!({ "NumberOfEmployees": n })),
            )
            .await
            .expect("update retried to success");
        let read = client
            .get("Account", &id, Some(&["NumberOfEmployees"]))
            .await
            .expect("read retried to success");
        assert_eq!(read["NumberOfEmployees"], n);
        let upserted = client
            .upsert_records("Account", "External_Id__c", &[account("F")], false)
            .await
            .expect("upsert retried");
        assert!(upserted[0].success, "{:?}", upserted[0]);
    }
    faults(&org, json!({})).await;
    assert_eq!(
        account_count(&client).await,
        1,
        "retried upserts never duplicated the record"
    );
    assert!(
        client.calls_made() > 60,
        "faults forced retries ({} calls)",
        client.calls_made()
    );
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_not_resent() {
    let org = support::org().await;
    let client = support::client(&org);
    client.limits().await.unwrap();
    let before = client.calls_made();
    faults(&org, json!({ "dropConnectionRate": 1.0 })).await;
    let error = client
        .create("Account", &account("lost"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport {
                maybe_applied: true,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.may_have_been_applied() && error.is_retryable());
    assert_eq!(
        client.calls_made() - before,
        1,
        "the create was sent once and not retried"
    );
    let failure = client
        .create_records("Account", &[account("lost2")], false)
        .await
        .unwrap_err();
    assert!(failure.error().may_have_been_applied());
    assert_eq!(failure.results(), [None], "the record's fate is unknown");
    assert_eq!(client.calls_made() - before, 2);
}

#[tokio::test]
async fn creates_refused_with_503_or_row_locks_are_retried_safely() {
    let org = support::org().await;
    let client = patient_client(&org);
    faults(
        &org,
        json!({ "serverUnavailableRate": 0.3, "unableToLockRowRate": 0.3 }),
    )
    .await;
    for n in 0..10 {
        let created = client.create("Account", &account(&format!("C{n}"))).await;
        created.expect("503 and lock failures prove nothing was applied");
    }
    let batch: Vec<Record> = (0..50).map(|n| account(&format!("B{n}"))).collect();
    let results = client
        .create_records("Account", &batch, false)
        .await
        .unwrap();
    assert!(
        results.iter().all(|r| r.success),
        "records refused for row locks were resent"
    );
    faults(&org, json!({})).await;
    assert_eq!(
        account_count(&client).await,
        60,
        "nothing was created twice"
    );
}

#[tokio::test]
async fn retries_give_up_with_the_last_error_when_faults_persist() {
    let org = support::org().await;
    let client = support::client(&org);
    client.limits().await.unwrap();
    faults(&org, json!({ "serverUnavailableRate": 1.0 })).await;
    let error = client.limits().await.unwrap_err();
    assert_eq!(error.code(), Some(&ApiErrorCode::ServerUnavailable));
    assert_eq!(error.status(), Some(503));
    assert_eq!(
        client.calls_made(),
        1 + 8,
        "max_attempts bounds the retries"
    );
    faults(
        &org,
        json!({ "serverUnavailableRate": 0.0, "unableToLockRowRate": 1.0 }),
    )
    .await;
    let results = client
        .upsert_records("Account", "External_Id__c", &[account("L")], false)
        .await
        .unwrap();
    assert_eq!(
        results[0].errors[0].code,
        ApiErrorCode::UnableToLockRow,
        "a lock that never clears is reported"
    );
    assert_eq!(
        client.calls_made(),
        1 + 8 + 8,
        "records are resent at most max_attempts times"
    );
}
