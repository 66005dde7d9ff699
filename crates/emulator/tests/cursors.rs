//! Query cursor eviction (`maxOpenCursorsPerUser`): beyond the limit the user's oldest open
//! cursor is released and its `nextRecordsUrl` answers INVALID_QUERY_LOCATOR, as older orgs
//! did with their 10 open cursors per user; without a limit cursors stay open. A scripted
//! `releaseCursor` step releases one at the exact continuation a test names.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use pgforce_emulator::{EmulatorConfig, FaultConfig};

use crate::support::{Org, config, single_error, urlencode};

/// Runs a query in pages of 200 and returns its `nextRecordsUrl`.
async fn open_cursor(org: &Org) -> String {
    let response = org
        .http
        .get(org.url(&format!(
            "/query?q={}",
            urlencode("SELECT Id, Code__c FROM Invoice__c")
        )))
        .bearer_auth(&org.token)
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    page["nextRecordsUrl"].as_str().unwrap().to_owned()
}

async fn next_page(org: &Org, next: &str) -> (StatusCode, Value) {
    let (status, _, body) = org
        .call_url(Method::GET, &format!("{}{next}", org.base), None)
        .await;
    (status, body)
}

fn invalid_locator() -> (String, String) {
    (
        "INVALID_QUERY_LOCATOR".to_owned(),
        "invalid query locator".to_owned(),
    )
}

#[tokio::test]
async fn opening_a_cursor_beyond_the_limit_releases_the_oldest() {
    let org = Org::start().await;
    org.seed(json!({ "Invoice__c": 250 })).await;
    org.control_call(
        Method::PUT,
        "/faults",
        Some(json!({ "maxOpenCursorsPerUser": 2 })),
    )
    .await;
    let oldest = open_cursor(&org).await;
    let second = open_cursor(&org).await;
    let third = open_cursor(&org).await;
    let (status, body) = next_page(&org, &oldest).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&body), invalid_locator());
    for next in [&second, &third] {
        let (status, body) = next_page(&org, next).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["records"].as_array().unwrap().len(), 50);
    }
    let faults = org.control_call(Method::GET, "/faults", None).await;
    assert_eq!(faults["maxOpenCursorsPerUser"], 2);
}

#[tokio::test]
async fn without_a_limit_many_cursors_stay_open_and_unknown_locators_are_refused() {
    let org = Org::start().await;
    org.seed(json!({ "Invoice__c": 250 })).await;
    let faults = org.control_call(Method::GET, "/faults", None).await;
    assert_eq!(
        faults["maxOpenCursorsPerUser"],
        Value::Null,
        "unlimited by default"
    );
    let mut cursors = Vec::new();
    for _ in 0..12 {
        cursors.push(open_cursor(&org).await);
    }
    let (status, _) = next_page(&org, &cursors[0]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the first of 12 cursors is still open"
    );
    let unknown = "/services/data/v62.0/query/0r8000000000999AAA-200";
    let (status, body) = next_page(&org, unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&body), invalid_locator());

    let response = org
        .http
        .put(org.control("/faults"))
        .json(&json!({ "maxOpenCursorsPerUser": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "maxOpenCursorsPerUser must be at least 1 (or null for no limit)"
    );
}

#[tokio::test]
async fn a_limit_set_at_start_applies_from_the_first_query() {
    let org = Org::start_with(EmulatorConfig {
        faults: FaultConfig {
            max_open_cursors_per_user: Some(1),
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    org.seed(json!({ "Invoice__c": 250 })).await;
    let first = open_cursor(&org).await;
    open_cursor(&org).await;
    let (status, body) = next_page(&org, &first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&body), invalid_locator());
}

/// Appends `steps` to the fault script; returns the steps still to happen.
async fn script(org: &Org, steps: Value) -> Vec<Value> {
    let body = org
        .control_call(
            Method::POST,
            "/faults/script",
            Some(json!({ "steps": steps })),
        )
        .await;
    body["steps"].as_array().unwrap().clone()
}

async fn remaining(org: &Org) -> usize {
    let body = org.control_call(Method::GET, "/faults/script", None).await;
    body["steps"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_release_cursor_step_spares_first_pages_and_releases_the_next_continuation_for_good() {
    let org = Org::start().await;
    org.seed(json!({ "Invoice__c": 250 })).await;
    script(&org, json!([{ "on": "any", "fault": "releaseCursor" }])).await;
    // Neither a first page nor a query that fits in one page nor a write has a cursor to
    // lose.
    let released = open_cursor(&org).await;
    assert_eq!(
        org.query("SELECT Id FROM Invoice__c LIMIT 5").await["done"],
        true
    );
    org.create("Invoice__c", json!({ "Code__c": "R-1", "Short__c": "x" }))
        .await;
    assert_eq!(remaining(&org).await, 1, "no first page spends the step");

    let (status, body) = next_page(&org, &released).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&body), invalid_locator());
    assert_eq!(remaining(&org).await, 0, "the continuation spent it");
    let (status, body) = next_page(&org, &released).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "released for good");
    assert_eq!(single_error(&body), invalid_locator());

    let fresh = open_cursor(&org).await;
    let (status, body) = next_page(&org, &fresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"].as_array().unwrap().len(), 51);
    let stats = org.control_call(Method::GET, "/stats", None).await;
    assert_eq!(stats["api"]["faultsInjected"], 1);
}

#[tokio::test]
async fn a_release_cursor_step_hits_only_the_continuation_it_is_spent_on() {
    let org = Org::start().await;
    org.seed(json!({ "Invoice__c": 250 })).await;
    let first = open_cursor(&org).await;
    let second = open_cursor(&org).await;
    script(&org, json!([{ "on": "query", "fault": "releaseCursor" }])).await;
    let (status, _) = next_page(&org, &second).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = next_page(&org, &first).await;
    assert_eq!(status, StatusCode::OK, "another cursor stays open: {body}");
}

#[tokio::test]
async fn a_release_cursor_step_on_calls_without_continuations_is_refused() {
    let org = Org::start().await;
    for on in ["collections", "write", "bulkIngest", "bulkClose"] {
        let response = org
            .http
            .post(org.control("/faults/script"))
            .json(&json!({ "steps": [
                { "on": "query", "fault": "releaseCursor" },
                { "on": on, "fault": "releaseCursor" }
            ] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{on}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["message"],
            format!("steps[1]: releaseCursor never happens to {on} calls")
        );
    }
    assert_eq!(
        remaining(&org).await,
        0,
        "nothing of a refused script is kept"
    );
}
