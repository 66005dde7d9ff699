//! Row locks inside sObject Collections writes (`recordLockRate`): locked records fail on
//! their own with UNABLE_TO_LOCK_ROW and are not written, the rest of the call is, and
//! `allOrNone` rolls everything back as for any other record error.

use pgforce_emulator::{Emulator, EmulatorConfig, FaultConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Org;

/// A collections body of `count` Invoice__c records with codes `<prefix>-<n>`.
fn invoices(prefix: &str, count: usize, all_or_none: bool) -> Value {
    let records: Vec<Value> = (0..count)
        .map(|n| {
            json!({ "attributes": { "type": "Invoice__c" }, "Code__c": format!("{prefix}-{n}"),
                    "Short__c": "x" })
        })
        .collect();
    json!({ "allOrNone": all_or_none, "records": records })
}

async fn write(org: &Org, method: Method, path: &str, body: Option<Value>) -> Vec<Value> {
    let (status, _, answer) = org.call(method, path, body).await;
    assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    answer.as_array().unwrap().clone()
}

async fn faults_injected(org: &Org) -> u64 {
    let stats = org.control_call(Method::GET, "/stats", None).await;
    stats["api"]["faultsInjected"].as_u64().unwrap()
}

async fn invoice_count(org: &Org) -> u64 {
    org.query("SELECT COUNT() FROM Invoice__c").await["totalSize"]
        .as_u64()
        .unwrap()
}

fn status_code(result: &Value) -> &str {
    result["errors"][0]["statusCode"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn locked_records_fail_alone_while_the_rest_of_the_call_is_written() {
    let org = Org::start().await;
    org.control_call(
        Method::PUT,
        "/faults",
        Some(json!({ "recordLockRate": 0.5 })),
    )
    .await;
    let results = write(
        &org,
        Method::POST,
        "/composite/sobjects",
        Some(invoices("L", 200, false)),
    )
    .await;
    let written: Vec<&Value> = results.iter().filter(|r| r["success"] == true).collect();
    let locked: Vec<&Value> = results.iter().filter(|r| r["success"] == false).collect();
    assert!(
        !written.is_empty() && !locked.is_empty(),
        "half the records lock, the other half are written"
    );
    for result in &locked {
        assert_eq!(
            result["errors"],
            json!([{ "statusCode": "UNABLE_TO_LOCK_ROW",
                     "message": "unable to obtain exclusive access to this record", "fields": [] }]),
            "an insert has no Id to name"
        );
    }
    assert_eq!(
        invoice_count(&org).await,
        written.len() as u64,
        "locked records are not written"
    );
    assert_eq!(
        faults_injected(&org).await,
        locked.len() as u64,
        "each locked record is one injected fault"
    );
}

#[tokio::test]
async fn locked_updates_and_deletes_name_their_record_and_change_nothing() {
    let org = Org::start().await;
    let created = write(
        &org,
        Method::POST,
        "/composite/sobjects",
        Some(invoices("U", 3, false)),
    )
    .await;
    let ids: Vec<String> = created
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    org.control_call(
        Method::PUT,
        "/faults",
        Some(json!({ "recordLockRate": 1.0 })),
    )
    .await;
    let updates: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "attributes": { "type": "Invoice__c" }, "id": id, "Lines__c": 9 }))
        .collect();
    let results = write(
        &org,
        Method::PATCH,
        "/composite/sobjects",
        Some(json!({ "records": updates })),
    )
    .await;
    for (result, id) in results.iter().zip(&ids) {
        assert_eq!(status_code(result), "UNABLE_TO_LOCK_ROW");
        assert_eq!(
            result["errors"][0]["message"],
            format!("unable to obtain exclusive access to this record or 1 records: {id}")
        );
    }
    let path = format!("/composite/sobjects?ids={}", ids.join(","));
    let results = write(&org, Method::DELETE, &path, None).await;
    assert!(
        results
            .iter()
            .all(|r| status_code(r) == "UNABLE_TO_LOCK_ROW"),
        "{results:?}"
    );
    let stored = org
        .query("SELECT Id, Lines__c FROM Invoice__c WHERE Lines__c = null")
        .await;
    assert_eq!(
        stored["totalSize"], 3,
        "no update and no delete went through: {stored}"
    );
}

#[tokio::test]
async fn a_locked_upsert_names_the_record_its_key_matches() {
    let org = Org::start().await;
    let id = org
        .create("Invoice__c", json!({ "Code__c": "K-1", "Short__c": "x" }))
        .await;
    org.control_call(
        Method::PUT,
        "/faults",
        Some(json!({ "recordLockRate": 1.0 })),
    )
    .await;
    let results = write(
        &org,
        Method::PATCH,
        "/composite/sobjects/Invoice__c/Code__c",
        Some(invoices("K", 2, false)),
    )
    .await;
    assert_eq!(
        results[1]["errors"][0]["message"],
        format!("unable to obtain exclusive access to this record or 1 records: {id}")
    );
    assert_eq!(
        results[0]["errors"][0]["message"], "unable to obtain exclusive access to this record",
        "K-0 matches nothing: it would have been an insert"
    );
}

#[tokio::test]
async fn one_locked_record_rolls_back_an_all_or_none_call() {
    let org = Org::start().await;
    org.control_call(
        Method::PUT,
        "/faults",
        Some(json!({ "recordLockRate": 0.5 })),
    )
    .await;
    let results = write(
        &org,
        Method::POST,
        "/composite/sobjects",
        Some(invoices("A", 50, true)),
    )
    .await;
    let codes: Vec<&str> = results.iter().map(status_code).collect();
    assert!(
        codes.contains(&"UNABLE_TO_LOCK_ROW"),
        "some record locked: {codes:?}"
    );
    assert!(
        codes.iter().all(|c| matches!(
            *c,
            "UNABLE_TO_LOCK_ROW" | "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        )),
        "every other record is rolled back: {codes:?}"
    );
    assert_eq!(invoice_count(&org).await, 0, "nothing of the call remains");
}

#[tokio::test]
async fn record_lock_rates_outside_zero_to_one_are_refused() {
    let org = Org::start().await;
    let response = org
        .http
        .put(org.control("/faults"))
        .json(&json!({ "recordLockRate": -0.1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "recordLockRate must be between 0 and 1, got -0.1"
    );
}

#[test]
fn record_lock_rates_outside_zero_to_one_are_refused_at_start() {
    let invalid = EmulatorConfig {
        faults: FaultConfig {
            record_lock_rate: 2.0,
            ..FaultConfig::default()
        },
        ..EmulatorConfig::default()
    };
    let error = Emulator::new(invalid).unwrap_err().to_string();
    assert_eq!(
        error,
        "fault settings: recordLockRate must be between 0 and 1, got 2"
    );
}
