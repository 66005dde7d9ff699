//! The control API and what it drives: fault injection, latency, limits, reset, seeding,
//! undelete, statistics and the workload generator.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Org, invoice, single_error};

async fn set_faults(org: &Org, faults: Value) {
    org.control_call(Method::PUT, "/faults", Some(faults)).await;
}

#[tokio::test]
async fn server_unavailable_faults_answer_503_until_turned_off() {
    let org = Org::start().await;
    set_faults(&org, json!({ "serverUnavailableRate": 1.0 })).await;
    let (status, _, body) = org.call(Method::GET, "/limits", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(single_error(&body).0, "SERVER_UNAVAILABLE");
    set_faults(&org, json!({})).await;
    assert_eq!(
        org.call(Method::GET, "/limits", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn dropped_connections_give_no_response() {
    let org = Org::start().await;
    set_faults(&org, json!({ "dropConnectionRate": 1.0 })).await;
    let error = org
        .http
        .get(org.url("/limits"))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap_err();
    assert!(
        !error.is_status(),
        "the client sees a transport error, not a status: {error}"
    );
    set_faults(&org, json!({ "dropConnectionRate": 0.0 })).await;
    assert_eq!(
        org.call(Method::GET, "/limits", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn lock_row_faults_fail_writes_and_leave_reads_alone() {
    let org = Org::start().await;
    let id = org.create("Invoice__c", invoice("L-1")).await;
    set_faults(&org, json!({ "unableToLockRowRate": 1.0 })).await;
    let path = format!("/sobjects/Invoice__c/{id}");
    let (status, _, body) = org
        .call(Method::PATCH, &path, Some(json!({ "Lines__c": 5 })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (code, message) = single_error(&body);
    assert_eq!(code, "UNABLE_TO_LOCK_ROW");
    assert!(message.contains(&id), "{message}");
    let (status, _, body) = org
        .call(
            Method::POST,
            "/composite/sobjects",
            Some(json!({ "records": [
            { "attributes": { "type": "Invoice__c" }, "Code__c": "L-2", "Short__c": "x" } ] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    assert_eq!(
        org.get(&path).await["Lines__c"],
        Value::Null,
        "the failed write changed nothing"
    );
    set_faults(&org, json!({})).await;
    org.call(Method::PATCH, &path, Some(json!({ "Lines__c": 5 })))
        .await;
    assert_eq!(org.get(&path).await["Lines__c"], 5);
}

#[tokio::test]
async fn added_latency_delays_every_api_call() {
    let org = Org::start().await;
    set_faults(&org, json!({ "latencyMs": 150 })).await;
    let started = Instant::now();
    assert_eq!(
        org.call(Method::GET, "/limits", None).await.0,
        StatusCode::OK
    );
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn invalid_fault_rates_are_refused_with_the_setting_named() {
    let org = Org::start().await;
    let response = org
        .http
        .put(org.control("/faults"))
        .json(&json!({ "dropConnectionRate": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("dropConnectionRate"),
        "{body}"
    );
    let response = org
        .http
        .put(org.control("/faults"))
        .json(&json!({ "nonsense": 1 }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
}

#[tokio::test]
async fn seeding_reset_and_stats_count_records_and_calls() {
    let org = Org::start().await;
    let created = org
        .seed(json!({ "Account": 50, "Contact": 120, "Opportunity": 30, "Invoice__c": 10 }))
        .await;
    assert_eq!(
        created["created"],
        json!({ "Account": 50, "Contact": 120, "Invoice__c": 10, "Opportunity": 30 })
    );
    let contacts = org
        .get("/composite/sobjects/Contact?ids=0038A0000000001&fields=Id,AccountId,Email,Name")
        .await;
    let contact = &contacts[0];
    assert!(
        contact["AccountId"]
            .as_str()
            .is_none_or(|a| a.starts_with("001")),
        "{contact}"
    );
    org.get("/sobjects/Account/describe").await;
    let stats = org.control_call(Method::GET, "/stats", None).await;
    assert_eq!(
        stats["records"]["Contact"],
        json!({ "live": 120, "deleted": 0 })
    );
    assert_eq!(stats["api"]["callsByEndpoint"]["describe"], 1);
    assert_eq!(stats["api"]["callsByObject"]["Account"], 1);
    assert_eq!(stats["usage"]["used"], 2);
    org.control_call(Method::POST, "/reset", None).await;
    let stats = org.control_call(Method::GET, "/stats", None).await;
    assert_eq!(
        stats["records"]["Contact"],
        json!({ "live": 0, "deleted": 0 })
    );
    assert_eq!(
        stats["records"]["User"]["live"], 1,
        "reset keeps the users, so sessions still work"
    );
    assert_eq!(stats["usage"]["used"], 0);
    assert_eq!(
        org.call(Method::GET, "/limits", None).await.0,
        StatusCode::OK
    );
    let response = org
        .http
        .post(org.control("/seed"))
        .json(&json!({ "Nope__c": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn undelete_restores_records_from_the_recycle_bin() {
    let org = Org::start().await;
    let id = org.create("Invoice__c", invoice("U-1")).await;
    let path = format!("/sobjects/Invoice__c/{id}");
    let before = org.get(&path).await["SystemModstamp"]
        .as_str()
        .unwrap()
        .to_owned();
    org.call(Method::DELETE, &path, None).await;
    let results = org
        .control_call(
            Method::POST,
            "/undelete",
            Some(json!({ "ids": [id, "001000000000000"] })),
        )
        .await;
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[1]["success"], false);
    let record = org.get(&path).await;
    assert_eq!(record["IsDeleted"], false);
    assert!(record["SystemModstamp"].as_str().unwrap() >= before.as_str());
}

#[tokio::test]
async fn api_limit_exhaustion_answers_403_and_limits_report_it() {
    let org = Org::start().await;
    org.control_call(
        Method::PUT,
        "/limits",
        Some(json!({ "dailyApiRequests": 2, "used": 0 })),
    )
    .await;
    let (_, _, limits) = org.call(Method::GET, "/limits", None).await;
    assert_eq!(
        limits["DailyApiRequests"],
        json!({ "Max": 2, "Remaining": 1 })
    );
    assert_eq!(
        org.call(Method::GET, "/limits", None).await.0,
        StatusCode::OK
    );
    let (status, headers, body) = org.call(Method::GET, "/limits", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        single_error(&body),
        (
            "REQUEST_LIMIT_EXCEEDED".to_owned(),
            "TotalRequests Limit exceeded.".to_owned()
        )
    );
    assert_eq!(headers["sforce-limit-info"], "api-usage=2/2");
}

/// Polls the control API's stats until `done` holds, failing after a bounded wait.
async fn wait_for_stats(org: &Org, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = org.control_call(Method::GET, "/stats", None).await;
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn workload_generator_edits_the_org_like_users_do() {
    let org = Org::start().await;
    org.seed(json!({ "Account": 20, "Contact": 40, "Opportunity": 20 }))
        .await;
    let started = org
        .control_call(Method::POST, "/workload", Some(json!({ "ratePerSecond": 400, "insertShare": 1, "updateShare": 1, "deleteShare": 1 })))
        .await;
    assert_eq!(started["running"], true);
    let stats = wait_for_stats(&org, "inserts, updates and deletes", |s| {
        let w = &s["workload"];
        w["inserted"].as_u64() > Some(10)
            && w["updated"].as_u64() > Some(10)
            && w["deleted"].as_u64() > Some(10)
    })
    .await;
    assert_eq!(
        stats["workload"]["failed"], 0,
        "generated changes are valid: {stats}"
    );
    let stopped = org.control_call(Method::DELETE, "/workload", None).await;
    assert_eq!(stopped["running"], false);
    let after_stop = org.control_call(Method::GET, "/stats", None).await;
    let deleted: u64 = ["Account", "Contact", "Opportunity"]
        .iter()
        .map(|o| after_stop["records"][o]["deleted"].as_u64().unwrap())
        .sum();
    assert_eq!(
        deleted,
        after_stop["workload"]["deleted"].as_u64().unwrap(),
        "every delete went to the recycle bin"
    );
    let response = org
        .http
        .post(org.control("/workload"))
        .json(&json!({ "ratePerSecond": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
