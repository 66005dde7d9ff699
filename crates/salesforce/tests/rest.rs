//! describe, single-record CRUD and upsert, getUpdated/getDeleted, limits and usage.

use pgforce_salesforce::rest::describe::FieldType;
use pgforce_salesforce::{ApiErrorCode, Client, Error};
use reqwest::Method;
use serde_json::json;

use crate::support::{self, account, control, record};

#[tokio::test]
async fn describe_returns_typed_metadata() {
    let org = support::org().await;
    let client = support::client(&org);
    let global = client.describe_global().await.unwrap();
    assert_eq!(global.max_batch_size, 200);
    assert!(
        global
            .sobjects
            .iter()
            .any(|o| o.name == "Account" && o.queryable && o.key_prefix.as_deref() == Some("001"))
    );
    let describe = client.describe("Account").await.unwrap();
    let ext = describe.field("external_id__c").unwrap();
    assert_eq!(ext.field_type, FieldType::String);
    assert!(ext.external_id && ext.unique && ext.id_lookup && ext.custom);
    assert_eq!(ext.length, 40);
    let revenue = describe.field("AnnualRevenue").unwrap();
    assert_eq!(
        (revenue.field_type.clone(), revenue.precision, revenue.scale),
        (FieldType::Currency, 18, 0)
    );
    let owner = describe.field("OwnerId").unwrap();
    assert_eq!(owner.reference_to, vec!["User".to_owned()]);
    assert_eq!(owner.relationship_name.as_deref(), Some("Owner"));
    assert_eq!(
        describe.field("SystemModstamp").unwrap().field_type,
        FieldType::DateTime
    );
    assert!(
        describe
            .child_relationships
            .iter()
            .any(|c| c.child_sobject == "Contact")
    );
    let error = client.describe("Nope__c").await.unwrap_err();
    assert_eq!(error.code(), Some(&ApiErrorCode::NotFound));
    assert_eq!(error.status(), Some(404));
}

#[tokio::test]
async fn single_records_are_created_read_updated_and_deleted() {
    let org = support::org().await;
    let client = support::client(&org);
    let id = client
        .create(
            "Account",
            &record(json!({ "Name": "Acme", "Industry": "Banking" })),
        )
        .await
        .unwrap();
    let read = client
        .get("Account", &id, Some(&["Name", "Industry"]))
        .await
        .unwrap();
    assert_eq!(read["Name"], "Acme");
    assert!(read.get("Phone").is_none());
    client
        .update("Account", &id, &record(json!({ "Phone": "555" })))
        .await
        .unwrap();
    assert_eq!(
        client.get("Account", &id, None).await.unwrap()["Phone"],
        "555"
    );
    client.delete("Account", &id).await.unwrap();
    let error = client.get("Account", &id, None).await.unwrap_err();
    assert_eq!(error.code(), Some(&ApiErrorCode::EntityIsDeleted));
    let error = client
        .create("Account", &record(json!({ "Industry": "Banking" })))
        .await
        .unwrap_err();
    match &error {
        Error::Api { status, error, .. } => {
            assert_eq!(*status, 400);
            assert_eq!(error.code, ApiErrorCode::RequiredFieldMissing);
            assert_eq!(error.fields, vec!["Name".to_owned()]);
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn upsert_by_external_id_reports_created_updated_and_multiple_matches() {
    let org = support::org().await;
    let client = support::client(&org);
    let created = client
        .upsert(
            "Account",
            "External_Id__c",
            "K/1 é",
            &record(json!({ "Name": "Slashy" })),
        )
        .await
        .unwrap();
    assert!(created.created);
    let updated = client
        .upsert(
            "Account",
            "External_Id__c",
            "k/1 é",
            &record(json!({ "Phone": "1" })),
        )
        .await
        .unwrap();
    assert!(!updated.created);
    assert_eq!(
        updated.id, created.id,
        "keys with slashes and accents are escaped and match"
    );
    let mut old = support::config(&org, support::password_credentials());
    old.api_version = "45.0".to_owned();
    let old = Client::new(old).unwrap();
    let result = old
        .upsert(
            "Account",
            "External_Id__c",
            "K/1 é",
            &record(json!({ "Phone": "2" })),
        )
        .await
        .unwrap();
    assert_eq!(
        (result.id, result.created),
        (None, false),
        "API 45.0 answers 204 on update"
    );
    let error = client
        .upsert("Account", "Nope__c", "x", &account("x"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&ApiErrorCode::NotFound));
}

#[tokio::test]
async fn replication_windows_list_updated_and_deleted_ids() {
    let org = support::org().await;
    let client = support::client(&org);
    let kept = client.create("Account", &account("kept")).await.unwrap();
    let gone = client.create("Account", &account("gone")).await.unwrap();
    client.delete("Account", &gone).await.unwrap();
    let updated = client
        .get_updated(
            "Account",
            "2020-01-01T00:00:00+00:00",
            "2999-01-01T00:00:00+00:00",
        )
        .await;
    // A window starting years ago is refused, as Salesforce refuses windows over 30 days.
    assert_eq!(
        updated.unwrap_err().code(),
        Some(&ApiErrorCode::Other("INVALID_REPLICATION_DATE".to_owned()))
    );
    let start = recent_start(&client, &kept).await;
    let updated = client
        .get_updated("Account", &start, "2999-01-01T00:00:00+00:00")
        .await
        .unwrap();
    assert!(updated.ids.contains(&kept) && !updated.ids.contains(&gone));
    let deleted = client
        .get_deleted("Account", &start, "2999-01-01T00:00:00+00:00")
        .await
        .unwrap();
    assert_eq!(deleted.deleted_records.len(), 1);
    assert_eq!(deleted.deleted_records[0].id, gone);
}

/// A window start a minute before a record's creation, in the format getUpdated takes.
async fn recent_start(client: &Client, id: &str) -> String {
    let created = client
        .get("Account", id, Some(&["CreatedDate"]))
        .await
        .unwrap();
    let stamp = created["CreatedDate"].as_str().unwrap();
    // `2026-11-24T00:30:05.123+0000` → the start of the previous minute is early enough.
    let (date, time) = stamp.split_once('T').unwrap();
    let hour_minute = &time[..5];
    let (hour, minute): (u32, u32) = (
        hour_minute[..2].parse().unwrap(),
        hour_minute[3..].parse().unwrap(),
    );
    let (hour, minute) = if minute == 0 {
        (hour.saturating_sub(1), 59)
    } else {
        (hour, minute - 1)
    };
    format!("{date}T{hour:02}:{minute:02}:00+00:00")
}

#[tokio::test]
async fn usage_is_tracked_from_every_answer_and_the_budget_stops_calls() {
    let org = support::org().await;
    let client = support::client(&org);
    client.limits().await.unwrap();
    client.limits().await.unwrap();
    let usage = client.api_usage().unwrap();
    assert_eq!((usage.used, usage.limit), (2, 100_000));
    let mut config = support::config(&org, support::password_credentials());
    config.daily_call_budget = Some(3);
    let budgeted = Client::new(config).unwrap();
    budgeted.limits().await.unwrap();
    let error = budgeted.limits().await.unwrap_err();
    assert!(
        matches!(error, Error::BudgetExhausted { used: 3, budget: 3 }),
        "{error}"
    );
    control(
        &org,
        Method::PUT,
        "/limits",
        Some(json!({ "dailyApiRequests": 5, "used": 5 })),
    )
    .await;
    let error = client.limits().await.unwrap_err();
    assert!(
        matches!(error, Error::RequestLimitExceeded { .. }),
        "{error}"
    );
    assert_eq!(error.code(), Some(&ApiErrorCode::RequestLimitExceeded));
    assert!(!error.is_retryable(), "limit exhaustion is not retried");
}
