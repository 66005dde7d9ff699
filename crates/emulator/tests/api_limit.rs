//! The org's daily API request allocation: once used up every data call — reads, writes,
//! Bulk API and `/limits` itself — answers 403 REQUEST_LIMIT_EXCEEDED without using more,
//! while logins and the versions list go on; raising the allocation or resetting the
//! counter lets calls through again.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Org, password_login, single_error};

/// Counts Accounts through the control API's statistics (no API call used).
async fn live_accounts(org: &Org) -> u64 {
    let stats = org.control_call(Method::GET, "/stats", None).await;
    stats["records"]["Account"]["live"].as_u64().unwrap()
}

async fn set_limits(org: &Org, limits: Value) -> Value {
    org.control_call(Method::PUT, "/limits", Some(limits)).await
}

/// One call of each kind a sync engine makes: `(method, path, body)`.
fn calls() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/limits", None),
        (Method::GET, "/sobjects/Account/describe", None),
        (Method::GET, "/query?q=SELECT+Id+FROM+Account", None),
        (
            Method::POST,
            "/composite/sobjects",
            Some(json!({ "records": [{ "attributes": { "type": "Account" }, "Name": "A" }] })),
        ),
        (
            Method::POST,
            "/jobs/ingest",
            Some(json!({ "object": "Account", "operation": "insert" })),
        ),
    ]
}

#[tokio::test]
async fn an_exhausted_allocation_refuses_every_data_call_without_using_more() {
    let org = Org::start().await;
    let limits = set_limits(&org, json!({ "dailyApiRequests": 50, "used": 50 })).await;
    assert_eq!(limits, json!({ "used": 50, "dailyApiRequests": 50 }));
    for (method, path, body) in calls() {
        let (status, headers, answer) = org.call(method, path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
        assert_eq!(
            single_error(&answer),
            (
                "REQUEST_LIMIT_EXCEEDED".to_owned(),
                "TotalRequests Limit exceeded.".to_owned()
            ),
            "{path}"
        );
        assert_eq!(headers["sforce-limit-info"], "api-usage=50/50", "{path}");
    }
    assert_eq!(
        live_accounts(&org).await,
        0,
        "nothing was written by the refused calls"
    );
}

#[tokio::test]
async fn logins_and_the_versions_list_go_on_at_the_limit() {
    let org = Org::start().await;
    set_limits(&org, json!({ "dailyApiRequests": 5, "used": 7 })).await;
    let login = password_login(&org.http, &org.base).await;
    assert!(login["access_token"].is_string());
    let versions = org
        .http
        .get(format!("{}/services/data/", org.base))
        .send()
        .await
        .unwrap();
    assert_eq!(versions.status(), StatusCode::OK);
    let (status, headers, _) = org.call(Method::GET, "/limits", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        headers["sforce-limit-info"], "api-usage=7/5",
        "usage set beyond the allocation is reported as it is"
    );
}

#[tokio::test]
async fn raising_the_allocation_or_resetting_the_counter_lets_calls_through() {
    let org = Org::start().await;
    set_limits(&org, json!({ "dailyApiRequests": 10, "used": 10 })).await;
    assert_eq!(
        org.call(Method::GET, "/limits", None).await.0,
        StatusCode::FORBIDDEN
    );

    set_limits(&org, json!({ "dailyApiRequests": 12 })).await;
    let (status, headers, limits) = org.call(Method::GET, "/limits", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        limits["DailyApiRequests"],
        json!({ "Max": 12, "Remaining": 1 })
    );
    assert_eq!(headers["sforce-limit-info"], "api-usage=11/12");

    set_limits(&org, json!({ "used": 12 })).await;
    assert_eq!(
        org.call(Method::GET, "/limits", None).await.0,
        StatusCode::FORBIDDEN
    );
    set_limits(&org, json!({ "used": 0 })).await;
    let (status, _, _) = org
        .call(
            Method::POST,
            "/sobjects/Account",
            Some(json!({ "Name": "After the reset" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}
