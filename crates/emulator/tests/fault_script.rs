//! Scripted one-shot faults (`/__emulator/faults/script`): each step hits exactly the call
//! it is meant for, in order, and only once.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Org, single_error};

async fn script(org: &Org, steps: Value) -> Value {
    org.control_call(
        Method::POST,
        "/faults/script",
        Some(json!({ "steps": steps })),
    )
    .await
}

async fn remaining(org: &Org) -> Vec<Value> {
    let body = org.control_call(Method::GET, "/faults/script", None).await;
    body["steps"].as_array().unwrap().clone()
}

fn invoices(codes: &[&str]) -> Value {
    let records: Vec<Value> = codes
        .iter()
        .map(|code| json!({ "attributes": { "type": "Invoice__c" }, "Code__c": code, "Short__c": "x" }))
        .collect();
    json!({ "allOrNone": false, "records": records })
}

async fn codes_stored(org: &Org) -> Vec<String> {
    let body = org
        .query("SELECT Code__c FROM Invoice__c ORDER BY Code__c")
        .await;
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Code__c"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends a collections create expecting the connection to close without an answer.
async fn create_without_answer(org: &Org, codes: &[&str]) {
    let error = org
        .http
        .post(org.url("/composite/sobjects"))
        .bearer_auth(&org.token)
        .json(&invoices(codes))
        .send()
        .await
        .expect_err("the connection closes without an answer");
    assert!(
        !error.is_status(),
        "a transport error, not a status: {error}"
    );
}

#[tokio::test]
async fn locks_on_chosen_records_then_a_503_on_the_resend() {
    let org = Org::start().await;
    let left = script(
        &org,
        json!([
            { "on": "collections", "fault": "lockRecords", "records": [0, 3] },
            { "on": "collections", "fault": "serverUnavailable" }
        ]),
    )
    .await;
    assert_eq!(left["steps"].as_array().unwrap().len(), 2);
    let (status, _, results) = org
        .call(
            Method::POST,
            "/composite/sobjects",
            Some(invoices(&["S-0", "S-1", "S-2", "S-3", "S-4"])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let locked: Vec<bool> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW")
        .collect();
    assert_eq!(locked, [true, false, false, true, false]);
    let (status, _, body) = org
        .call(
            Method::POST,
            "/composite/sobjects",
            Some(invoices(&["S-0", "S-3"])),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        single_error(&body),
        (
            "SERVER_UNAVAILABLE".to_owned(),
            "Server temporarily unavailable".to_owned()
        )
    );
    assert_eq!(codes_stored(&org).await, ["S-1", "S-2", "S-4"]);
    let (_, _, results) = org
        .call(
            Method::POST,
            "/composite/sobjects",
            Some(invoices(&["S-0", "S-3"])),
        )
        .await;
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["success"] == true),
        "the script is spent: {results}"
    );
    assert!(remaining(&org).await.is_empty());
    let stats = org.control_call(Method::GET, "/stats", None).await;
    assert_eq!(stats["api"]["faultsInjected"], 2, "one fault per step");
}

#[tokio::test]
async fn a_dropped_connection_step_waits_for_a_call_it_names() {
    let org = Org::start().await;
    script(&org, json!([{ "on": "write", "fault": "dropConnection" }])).await;
    assert_eq!(
        org.query("SELECT COUNT() FROM Invoice__c").await["totalSize"],
        0,
        "a query is not a write"
    );
    create_without_answer(&org, &["D-1"]).await;
    assert!(
        codes_stored(&org).await.is_empty(),
        "a dropped call did nothing"
    );
    let (status, _, _) = org
        .call(
            Method::POST,
            "/composite/sobjects",
            Some(invoices(&["D-1"])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(codes_stored(&org).await, ["D-1"]);
}

#[tokio::test]
async fn a_lost_response_step_writes_and_then_loses_the_answer() {
    let org = Org::start().await;
    script(
        &org,
        json!([{ "on": "collections", "fault": "lostResponse" }]),
    )
    .await;
    create_without_answer(&org, &["W-1", "W-2"]).await;
    assert_eq!(
        codes_stored(&org).await,
        ["W-1", "W-2"],
        "the work was done before the answer was lost"
    );
}

#[tokio::test]
async fn a_request_limit_step_answers_403_without_using_the_allocation() {
    let org = Org::start().await;
    script(
        &org,
        json!([{ "on": "query", "fault": "requestLimitExceeded" }]),
    )
    .await;
    let used_before = org.control_call(Method::GET, "/stats", None).await["usage"]["used"]
        .as_u64()
        .unwrap();
    let (status, headers, body) = org
        .call(Method::GET, "/query?q=SELECT+Id+FROM+Account", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        single_error(&body),
        (
            "REQUEST_LIMIT_EXCEEDED".to_owned(),
            "TotalRequests Limit exceeded.".to_owned()
        )
    );
    assert_eq!(
        headers["sforce-limit-info"],
        format!("api-usage={used_before}/100000")
    );
    org.query("SELECT Id FROM Account").await;
}

#[tokio::test]
async fn a_step_is_not_spent_on_a_call_refused_for_its_session() {
    let org = Org::start().await;
    script(&org, json!([{ "on": "write", "fault": "lockRecords" }])).await;
    let response = org
        .http
        .post(org.url("/sobjects/Invoice__c"))
        .bearer_auth("00D000000000001!expired")
        .json(&json!({ "Code__c": "T-1", "Short__c": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        remaining(&org).await.len(),
        1,
        "the step waits for an admitted call"
    );
    let (status, _, body) = org
        .call(
            Method::POST,
            "/sobjects/Invoice__c",
            Some(json!({ "Code__c": "T-1", "Short__c": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        single_error(&body),
        (
            "UNABLE_TO_LOCK_ROW".to_owned(),
            "unable to obtain exclusive access to this record".to_owned()
        )
    );
    assert!(codes_stored(&org).await.is_empty());
}

#[tokio::test]
async fn the_script_lists_in_order_clears_and_refuses_impossible_steps() {
    let org = Org::start().await;
    let steps = json!([
        { "on": "any", "fault": "serverUnavailable" },
        { "on": "collections", "fault": "lockRecords", "records": [2] }
    ]);
    script(&org, steps.clone()).await;
    assert_eq!(Value::Array(remaining(&org).await), steps);
    let cleared = org
        .control_call(Method::DELETE, "/faults/script", None)
        .await;
    assert_eq!(cleared, json!({ "steps": [] }));
    for (step, message) in [
        (
            json!({ "on": "query", "fault": "lockRecords" }),
            "steps[0]: lockRecords never happens to query calls",
        ),
        (
            json!({ "on": "any", "fault": "serverUnavailable", "records": [1] }),
            "steps[0]: records are taken by lockRecords steps only",
        ),
    ] {
        let response = org
            .http
            .post(org.control("/faults/script"))
            .json(&json!({ "steps": [step] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], message);
    }
    let response = org
        .http
        .post(org.control("/faults/script"))
        .json(&json!({ "steps": [{ "on": "everything", "fault": "serverUnavailable" }] }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_client_error(),
        "unknown targets are refused"
    );
    assert!(remaining(&org).await.is_empty());
}

/// Sends a data API call and returns its status, content type, whether it carries
/// `Sforce-Limit-Info`, and its body as text.
async fn raw_call(org: &Org, method: Method, path: &str, body: Option<Value>) -> RawAnswer {
    let mut request = org
        .http
        .request(method, org.url(path))
        .bearer_auth(&org.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    RawAnswer {
        status: response.status(),
        content_type: response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned(),
        limit_info: response.headers().contains_key("sforce-limit-info"),
        text: response.text().await.unwrap(),
    }
}

struct RawAnswer {
    status: StatusCode,
    content_type: String,
    limit_info: bool,
    text: String,
}

#[tokio::test]
async fn a_proxy_error_step_answers_its_status_with_an_html_page_and_does_nothing() {
    let org = Org::start().await;
    script(
        &org,
        json!([
            { "on": "collections", "fault": "proxyError", "status": 403 },
            { "on": "query", "fault": "proxyError", "status": 404 }
        ]),
    )
    .await;
    let used_before = org.control_call(Method::GET, "/stats", None).await["usage"]["used"]
        .as_u64()
        .unwrap();
    let create = raw_call(
        &org,
        Method::POST,
        "/composite/sobjects",
        Some(invoices(&["P-1"])),
    )
    .await;
    let query = raw_call(&org, Method::GET, "/query?q=SELECT+Id+FROM+Account", None).await;
    for (answer, status) in [
        (&create, StatusCode::FORBIDDEN),
        (&query, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(answer.status, status);
        assert!(
            answer.content_type.starts_with("text/html"),
            "a proxy answers HTML, not {}",
            answer.content_type
        );
        assert!(!answer.limit_info, "the answer never came from Salesforce");
        assert!(
            answer.text.contains("<html") && answer.text.contains(status.as_str()),
            "{}",
            answer.text
        );
    }
    assert!(remaining(&org).await.is_empty());
    let used_after = org.control_call(Method::GET, "/stats", None).await["usage"]["used"]
        .as_u64()
        .unwrap();
    assert_eq!(used_after, used_before, "no call reached the org");
    assert!(codes_stored(&org).await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn a_proxy_error_step_takes_only_an_error_status() {
    let org = Org::start().await;
    for (step, message) in [
        (
            json!({ "on": "any", "fault": "proxyError", "status": 200 }),
            "steps[0]: status must be an error status (400 to 599), got 200",
        ),
        (
            json!({ "on": "any", "fault": "proxyError" }),
            "steps[0]: proxyError takes a status",
        ),
        (
            json!({ "on": "any", "fault": "serverUnavailable", "status": 403 }),
            "steps[0]: status is taken by proxyError steps only",
        ),
    ] {
        let response = org
            .http
            .post(org.control("/faults/script"))
            .json(&json!({ "steps": [step] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], message);
    }
    assert!(remaining(&org).await.is_empty());
}
