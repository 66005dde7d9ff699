//! Late visibility of a write (`commitDelayRate`, `commitDelayMs`, `commitDelay` steps): a
//! long transaction takes its SystemModstamp when it starts and becomes visible only when
//! it commits, after writes that started later, with a later stamp, are already visible.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::bulk::{csv, wait};
use crate::support::{Org, invoice};

/// Waits until the fault script is spent (the slow call has taken its step and its stamp).
async fn wait_for_empty_script(org: &Org) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let script = org.control_call(Method::GET, "/faults/script", None).await;
        if script["steps"].as_array().is_some_and(Vec::is_empty) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the slow write never took its step: {script}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Codes of the invoices a Bulk query job sees.
async fn bulk_codes(org: &Org) -> String {
    let (status, _, info) = org
        .call(
            Method::POST,
            "/jobs/query",
            Some(json!({ "operation": "query", "query": "SELECT Code__c FROM Invoice__c" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{info}");
    let id = info["id"].as_str().unwrap();
    wait(org, "query", id).await;
    csv(org, &format!("/jobs/query/{id}/results")).await.3
}

#[tokio::test]
async fn a_slow_commit_is_overtaken_by_a_later_write_with_a_later_stamp() {
    let org = Org::start().await;
    org.control_call(
        Method::POST,
        "/faults/script",
        Some(json!({ "steps": [{ "on": "write", "fault": "commitDelay", "delayMs": 1000 }] })),
    )
    .await;
    let slow = {
        let http = org.http.clone();
        let url = org.url("/sobjects/Invoice__c");
        let token = org.token.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&invoice("SLOW"))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    wait_for_empty_script(&org).await;
    org.create("Invoice__c", invoice("FAST")).await;
    let seen = org.query("SELECT Code__c FROM Invoice__c").await;
    assert_eq!(
        seen["totalSize"], 1,
        "only the later write is visible: {seen}"
    );
    assert_eq!(seen["records"][0]["Code__c"], "FAST");
    let all = org.query_all("SELECT Code__c FROM Invoice__c").await;
    assert_eq!(all["totalSize"], 1, "queryAll does not see it either");
    let bulk = bulk_codes(&org).await;
    assert!(
        bulk.contains("FAST") && !bulk.contains("SLOW"),
        "nor does a Bulk query: {bulk}"
    );

    assert_eq!(slow.await.unwrap(), StatusCode::CREATED);
    let stamped = org
        .query("SELECT Code__c, SystemModstamp FROM Invoice__c ORDER BY SystemModstamp")
        .await;
    let codes: Vec<&str> = stamped["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Code__c"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["SLOW", "FAST"],
        "the slow write is stamped when it started, before the write that overtook it"
    );
    assert_ne!(
        stamped["records"][0]["SystemModstamp"], stamped["records"][1]["SystemModstamp"],
        "the later write's stamp is strictly later"
    );
}

#[tokio::test]
async fn a_slow_commit_to_a_record_written_meanwhile_never_takes_its_stamp_back() {
    let org = Org::start().await;
    let id = org.create("Invoice__c", invoice("ONE")).await;
    org.control_call(
        Method::POST,
        "/faults/script",
        Some(json!({ "steps": [{ "on": "write", "fault": "commitDelay", "delayMs": 1000 }] })),
    )
    .await;
    let slow = {
        let http = org.http.clone();
        let url = org.url(&format!("/sobjects/Invoice__c/{id}"));
        let token = org.token.clone();
        tokio::spawn(async move {
            http.patch(url)
                .bearer_auth(token)
                .json(&json!({ "Short__c": "slow" }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    wait_for_empty_script(&org).await;
    let (status, _, _) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/Invoice__c/{id}"),
            Some(json!({ "Short__c": "fast" })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let stamp = |record: &Value| {
        record["records"][0]["SystemModstamp"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let soql = format!("SELECT Short__c, SystemModstamp FROM Invoice__c WHERE Id = '{id}'");
    let after_fast = stamp(&org.query(&soql).await);
    assert_eq!(slow.await.unwrap(), StatusCode::NO_CONTENT);
    let last = org.query(&soql).await;
    assert!(
        stamp(&last) > after_fast,
        "Salesforce serializes writes to one record by its row lock: the record's stamp only moves on ({} after {after_fast})",
        stamp(&last)
    );
}

#[tokio::test]
async fn the_commit_delay_rate_delays_record_writes_only() {
    let org = Org::start().await;
    org.control_call(
        Method::PUT,
        "/faults",
        Some(json!({ "commitDelayRate": 1.0, "commitDelayMs": 150 })),
    )
    .await;
    let started = Instant::now();
    let (status, _, results) = org
        .call(
            Method::POST,
            "/composite/sobjects",
            Some(json!({ "records": [
                { "attributes": { "type": "Invoice__c" }, "Code__c": "C-1", "Short__c": "x" }] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{results}");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    org.query("SELECT Id FROM Invoice__c").await;
    let stats = org.control_call(Method::GET, "/stats", None).await;
    assert_eq!(
        stats["api"]["faultsInjected"], 1,
        "the write was delayed, the query was not"
    );
}

#[tokio::test]
async fn commit_delays_are_checked() {
    let org = Org::start().await;
    let cases: [(&str, Value, &str); 3] = [
        (
            "/faults",
            json!({ "commitDelayMs": 600_001 }),
            "commitDelayMs must be at most 600000, got 600001",
        ),
        (
            "/faults/script",
            json!({ "steps": [{ "on": "any", "fault": "lostResponse", "delayMs": 5 }] }),
            "steps[0]: delayMs is taken by commitDelay steps only",
        ),
        (
            "/faults/script",
            json!({ "steps": [{ "on": "bulkIngest", "fault": "commitDelay" }] }),
            "steps[0]: commitDelay never happens to bulkIngest calls",
        ),
    ];
    for (path, body, message) in cases {
        let method = if path == "/faults" {
            Method::PUT
        } else {
            Method::POST
        };
        let response = org
            .http
            .request(method, org.control(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["message"], message);
    }
}
