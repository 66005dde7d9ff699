//! sObject Collections through the client: per-record results and limits.

use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{ApiErrorCode, Error};
use serde_json::json;

use crate::support::{self, account, record};

#[tokio::test]
async fn collections_create_update_upsert_retrieve_and_delete_with_per_record_results() {
    let org = support::org().await;
    let client = support::client(&org);
    let batch: Vec<Record> = vec![
        account("A"),
        record(json!({ "Industry": "Banking" })),
        account("C"),
    ];
    let created = client
        .create_records("Account", &batch, false)
        .await
        .unwrap();
    assert!(created[0].success && created[2].success);
    assert!(!created[1].success);
    assert_eq!(
        created[1].errors[0].code,
        ApiErrorCode::RequiredFieldMissing
    );
    assert_eq!(created[1].errors[0].fields, vec!["Name".to_owned()]);
    assert_eq!(
        created[0].created, None,
        "create results carry no created flag"
    );
    let ids: Vec<String> = created.iter().filter_map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 2);

    let updates: Vec<Record> = ids
        .iter()
        .map(|id| record(json!({ "Id": id, "Rating": "Hot" })))
        .collect();
    let updated = client
        .update_records("Account", &updates, true)
        .await
        .unwrap();
    assert!(updated.iter().all(|r| r.success));

    let upserts = vec![account("A"), account("NEW")];
    let upserted = client
        .upsert_records("Account", "External_Id__c", &upserts, false)
        .await
        .unwrap();
    assert_eq!(
        upserted.iter().map(|r| r.created).collect::<Vec<_>>(),
        [Some(false), Some(true)]
    );

    let id_refs: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .chain(["001000000000000AAA"])
        .collect();
    let retrieved = client
        .retrieve_records("Account", &id_refs, &["Id", "Rating"])
        .await
        .unwrap();
    assert_eq!(retrieved.len(), 3);
    assert_eq!(retrieved[0].as_ref().unwrap()["Rating"], "Hot");
    assert!(retrieved[2].is_none(), "an unknown Id retrieves as None");

    let deleted = client.delete_records(&id_refs[..2], false).await.unwrap();
    assert!(deleted.iter().all(|r| r.success));
    let again = client.delete_records(&id_refs[..1], false).await.unwrap();
    assert_eq!(again[0].errors[0].code, ApiErrorCode::EntityIsDeleted);
}

#[tokio::test]
async fn all_or_none_failures_roll_back_every_record() {
    let org = support::org().await;
    let client = support::client(&org);
    let batch = vec![account("X"), record(json!({ "Industry": "Banking" }))];
    let results = client
        .create_records("Account", &batch, true)
        .await
        .unwrap();
    assert_eq!(
        results[0].errors[0].code,
        ApiErrorCode::AllOrNoneOperationRolledBack
    );
    assert_eq!(
        results[1].errors[0].code,
        ApiErrorCode::RequiredFieldMissing
    );
    assert_eq!(
        client.count("SELECT COUNT() FROM Account").await.unwrap(),
        0
    );
}

#[tokio::test]
async fn more_than_two_hundred_records_are_refused_before_any_call() {
    let org = support::org().await;
    let client = support::client(&org);
    let batch: Vec<Record> = (0..201).map(|n| account(&n.to_string())).collect();
    let error = client
        .create_records("Account", &batch, false)
        .await
        .unwrap_err();
    assert!(
        matches!(error.error(), Error::InvalidArgument(m) if m.contains("201 records")),
        "{:?}",
        error.error()
    );
    assert_eq!(error.results().len(), 201);
    assert!(
        error.results().iter().all(Option::is_none),
        "nothing was written"
    );
    assert_eq!(client.calls_made(), 0);
}
