//! Bulk API 2.0 ingest jobs that fail partway (rate or scripted step) keep the results of
//! the rows they processed and list the rest as unprocessed; scripted row locks fail chosen
//! rows of a job; a delay keeps closed jobs queued.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::bulk::{csv, ingest};
use crate::support::Org;

/// An insert upload of `count` invoices `P-0…`, row 1 missing its required Short__c.
fn upload(count: usize) -> String {
    let mut text = String::from("Code__c,Short__c\n");
    for n in 0..count {
        let short = if n == 1 { "" } else { "ok" };
        text.push_str(&format!("P-{n},{short}\n"));
    }
    text
}

/// The data lines of a result CSV (without its header).
async fn result_lines(org: &Org, id: &str, which: &str) -> Vec<String> {
    let (status, _, _, body) = csv(org, &format!("/jobs/ingest/{id}/{which}")).await;
    assert_eq!(status, StatusCode::OK, "{which}: {body}");
    body.lines().skip(1).map(str::to_owned).collect()
}

async fn stored_codes(org: &Org) -> Vec<String> {
    org.query("SELECT Code__c FROM Invoice__c ORDER BY Code__c")
        .await["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Code__c"].as_str().unwrap().to_owned())
        .collect()
}

fn insert_job() -> Value {
    json!({ "object": "Invoice__c", "operation": "insert" })
}

#[tokio::test]
async fn a_job_failing_partway_keeps_the_results_of_the_rows_it_processed() {
    let org = Org::start().await;
    org.control_call(
        Method::POST,
        "/faults/script",
        Some(json!({ "steps": [{ "on": "bulkIngest", "fault": "bulkJobPartialFailure" }] })),
    )
    .await;
    let (id, info) = ingest(&org, insert_job(), &upload(10)).await;
    assert_eq!(info["state"], "Failed", "{info}");
    assert_eq!(
        info["errorMessage"],
        "InternalServerError : the job failed after processing 5 of 10 records (injected fault)"
    );
    assert_eq!(
        (
            info["numberRecordsProcessed"].as_u64(),
            info["numberRecordsFailed"].as_u64()
        ),
        (Some(5), Some(1)),
        "{info}"
    );
    let successful = result_lines(&org, &id, "successfulResults").await;
    assert_eq!(successful.len(), 4, "{successful:?}");
    let failed = result_lines(&org, &id, "failedResults").await;
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].contains("REQUIRED_FIELD_MISSING") && failed[0].ends_with("\"P-1\",\"\""),
        "{failed:?}"
    );
    let unprocessed = result_lines(&org, &id, "unprocessedrecords").await;
    assert_eq!(
        unprocessed,
        [
            "\"P-5\",\"ok\"",
            "\"P-6\",\"ok\"",
            "\"P-7\",\"ok\"",
            "\"P-8\",\"ok\"",
            "\"P-9\",\"ok\""
        ]
    );
    assert_eq!(
        stored_codes(&org).await,
        ["P-0", "P-2", "P-3", "P-4"],
        "the processed rows really were written"
    );
}

#[tokio::test]
async fn the_rate_and_the_processed_share_are_configurable() {
    let org = Org::start().await;
    org.control_call(
        Method::PUT,
        "/faults",
        Some(json!({ "bulkJobPartialFailureRate": 1.0, "bulkPartialProcessedShare": 0.2 })),
    )
    .await;
    let (id, info) = ingest(&org, insert_job(), &upload(10)).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(info["numberRecordsProcessed"], 2);
    assert_eq!(result_lines(&org, &id, "unprocessedrecords").await.len(), 8);
    assert_eq!(stored_codes(&org).await, ["P-0"]);
    let stats = org.control_call(Method::GET, "/stats", None).await;
    assert_eq!(stats["api"]["faultsInjected"], 1);

    let response = org
        .http
        .put(org.control("/faults"))
        .json(&json!({ "bulkPartialProcessedShare": 1.5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "bulkPartialProcessedShare must be between 0 and 1, got 1.5"
    );
}

#[tokio::test]
async fn scripted_row_locks_fail_the_chosen_rows_of_a_job() {
    let org = Org::start().await;
    let (_, info) = ingest(
        &org,
        insert_job(),
        "Code__c,Short__c\nR-0,a\nR-1,a\nR-2,a\n",
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 0);
    let ids: Vec<String> = org
        .query("SELECT Id FROM Invoice__c ORDER BY Code__c")
        .await["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    org.control_call(
        Method::POST,
        "/faults/script",
        Some(json!({ "steps": [{ "on": "bulkIngest", "fault": "lockRecords", "records": [1] }] })),
    )
    .await;
    let update: String = ids
        .iter()
        .fold(String::from("Id,Short__c\n"), |text, id| text + id + ",b\n");
    let (id, info) = ingest(
        &org,
        json!({ "object": "Invoice__c", "operation": "update" }),
        &update,
    )
    .await;
    assert_eq!(info["state"], "JobComplete", "a locked row fails alone");
    assert_eq!(info["numberRecordsFailed"], 1);
    let failed = result_lines(&org, &id, "failedResults").await;
    assert_eq!(
        failed,
        [format!(
            "\"{0}\",\"UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records: {0}: --\",\"{0}\",\"b\"",
            ids[1]
        )]
    );
    let shorts: Vec<Value> = org
        .query("SELECT Short__c FROM Invoice__c ORDER BY Code__c")
        .await["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Short__c"].clone())
        .collect();
    assert_eq!(shorts, [json!("b"), json!("a"), json!("b")]);
}

#[tokio::test]
async fn a_job_delay_keeps_closed_jobs_queued_before_they_run() {
    let org = Org::start().await;
    org.control_call(
        Method::PUT,
        "/faults",
        Some(json!({ "bulkJobDelayMs": 600 })),
    )
    .await;
    let started = std::time::Instant::now();
    let (_, info) = ingest(&org, insert_job(), "Code__c,Short__c\nD-0,a\n").await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(600),
        "the job ran after {:?}",
        started.elapsed()
    );
    assert_eq!(stored_codes(&org).await, ["D-0"]);

    let response = org
        .http
        .put(org.control("/faults"))
        .json(&json!({ "bulkJobDelayMs": 600_001 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
