//! Bulk API 2.0 over HTTP: query jobs (states, CSV conventions, paging by locator,
//! queryAll) and ingest jobs (upload once, asynchronous processing with REST's validation,
//! per-row results), with the errors clients meet.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Org, VERSION};

/// Polls a job until it reaches a final state; returns its JobInfo.
pub(crate) async fn wait(org: &Org, kind: &str, id: &str) -> Value {
    for _ in 0..400 {
        let info = org.get(&format!("/jobs/{kind}/{id}")).await;
        if matches!(
            info["state"].as_str(),
            Some("JobComplete" | "Failed" | "Aborted")
        ) {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never finished");
}

/// GETs a CSV resource; returns status, the two paging headers and the body.
pub(crate) async fn csv(
    org: &Org,
    path: &str,
) -> (StatusCode, Option<String>, Option<String>, String) {
    let response = org
        .http
        .get(org.url(path))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (records, locator) = (header("Sforce-NumberOfRecords"), header("Sforce-Locator"));
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/csv"
        );
    }
    (status, records, locator, response.text().await.unwrap())
}

pub(crate) async fn query_job(org: &Org, operation: &str, soql: &str) -> String {
    let (status, _, info) = org
        .call(
            Method::POST,
            "/jobs/query",
            Some(json!({ "operation": operation, "query": soql })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["state"], "UploadComplete", "{info}");
    assert_eq!(info["jobType"], "V2Query");
    assert!(info["id"].as_str().unwrap().starts_with("750"));
    info["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn query_jobs_page_csv_with_salesforce_quoting() {
    let org = Org::start().await;
    let tricky = [
        ("Comma, Inc", "say \"hi\"\nthen leave"),
        ("Ünïcødé 株式会社", ""),
        ("Plain", "x"),
    ];
    for (name, notes) in tricky {
        let mut fields = json!({ "Short__c": "s", "Code__c": name.chars().take(5).collect::<String>(), "Name": name });
        if !notes.is_empty() {
            fields["Notes__c"] = json!(notes);
        }
        org.create("Invoice__c", fields).await;
    }
    let id = query_job(
        &org,
        "query",
        "SELECT Name, Notes__c, Lines__c, CreatedDate FROM Invoice__c ORDER BY Name",
    )
    .await;
    let info = wait(&org, "query", &id).await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    assert_eq!(info["numberRecordsProcessed"], 3);

    let (status, records, locator, body) =
        csv(&org, &format!("/jobs/query/{id}/results?maxRecords=2")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(records.as_deref(), Some("2"));
    let locator = locator.unwrap();
    assert_ne!(locator, "null");
    let mut lines = body.split('\n');
    assert_eq!(
        lines.next(),
        Some("\"Name\",\"Notes__c\",\"Lines__c\",\"CreatedDate\"")
    );
    let first = lines.next().unwrap();
    assert!(
        first.starts_with("\"Comma, Inc\",\"say \"\"hi\"\""),
        "quotes doubled, commas kept inside quotes: {body}"
    );
    assert!(
        body.contains("then leave\",,\""),
        "null is an empty field: {body}"
    );
    assert!(body.contains("Z\"\n"), "datetimes end in Z: {body}");

    let (_, records, last, rest) = csv(
        &org,
        &format!("/jobs/query/{id}/results?locator={locator}&maxRecords=2"),
    )
    .await;
    assert_eq!(
        (records.as_deref(), last.as_deref()),
        (Some("1"), Some("null"))
    );
    assert!(rest.contains("\"Ünïcødé 株式会社\",,"), "{rest}");
}

#[tokio::test]
async fn query_all_jobs_include_deleted_records() {
    let org = Org::start().await;
    let kept = org
        .create("Invoice__c", json!({ "Short__c": "k", "Code__c": "K" }))
        .await;
    let gone = org
        .create("Invoice__c", json!({ "Short__c": "g", "Code__c": "G" }))
        .await;
    org.call(
        Method::DELETE,
        &format!("/sobjects/Invoice__c/{gone}"),
        None,
    )
    .await;
    for (operation, expected) in [("query", vec![&kept]), ("queryAll", vec![&kept, &gone])] {
        let id = query_job(
            &org,
            operation,
            "SELECT Id, IsDeleted FROM Invoice__c ORDER BY Code__c DESC",
        )
        .await;
        wait(&org, "query", &id).await;
        let (_, _, _, body) = csv(&org, &format!("/jobs/query/{id}/results")).await;
        let ids: Vec<&str> = body.lines().skip(1).map(|l| &l[1..19]).collect();
        assert_eq!(
            ids,
            expected.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "{operation}: {body}"
        );
    }
}

#[tokio::test]
async fn query_job_errors_name_the_problem() {
    let org = Org::start().await;
    for (soql, code) in [
        ("SELECT Nope__c FROM Invoice__c", "INVALID_FIELD"),
        ("SELECT COUNT() FROM Invoice__c", "API_ERROR"),
        ("SELECT Id FROM Invoice__c LIMIT 5 OFFSET 2", "API_ERROR"),
    ] {
        let (status, _, body) = org
            .call(
                Method::POST,
                "/jobs/query",
                Some(json!({ "operation": "query", "query": soql })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{soql}");
        assert_eq!(body[0]["errorCode"], code, "{soql}: {body}");
    }
    let (status, _, _) = org
        .call(Method::GET, "/jobs/query/750000000000000AAA", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let id = query_job(&org, "query", "SELECT Id FROM Invoice__c").await;
    let (status, _, _) = org
        .call(
            Method::PATCH,
            &format!("/jobs/query/{id}"),
            Some(json!({ "state": "Aborted" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wait(&org, "query", &id).await["state"], "Aborted");
    let (status, _, _, _) = csv(&org, &format!("/jobs/query/{id}/results")).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "no results for an aborted job"
    );
    let (status, _, _) = org
        .call(Method::DELETE, &format!("/jobs/query/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

pub(crate) async fn ingest(org: &Org, body: Value, upload: &str) -> (String, Value) {
    let (status, _, info) = org.call(Method::POST, "/jobs/ingest", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["state"], "Open");
    let id = info["id"].as_str().unwrap().to_owned();
    assert_eq!(
        info["contentUrl"],
        format!("services/data/v{VERSION}/jobs/ingest/{id}/batches")
    );
    let put = org
        .http
        .put(format!(
            "{}/{}",
            org.base,
            info["contentUrl"].as_str().unwrap()
        ))
        .bearer_auth(&org.token)
        .header("Content-Type", "text/csv")
        .body(upload.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let (status, _, closed) = org
        .call(
            Method::PATCH,
            &format!("/jobs/ingest/{id}"),
            Some(json!({ "state": "UploadComplete" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    let info = wait(org, "ingest", &id).await;
    (id, info)
}

#[tokio::test]
async fn ingest_jobs_write_every_row_and_report_each_result() {
    let org = Org::start().await;
    let upload = "Code__c,Short__c,Lines__c,Paid__c,Notes__c\n\
                  A-1,ok,3,true,\"multi\nline, \"\"quoted\"\"\"\n\
                  A-2,toolong,1,false,\n\
                  A-3,ok,#N/A,,plain\n";
    let (id, info) = ingest(
        &org,
        json!({ "object": "Invoice__c", "operation": "insert", "lineEnding": "LF" }),
        upload,
    )
    .await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    assert_eq!(
        (
            info["numberRecordsProcessed"].as_u64(),
            info["numberRecordsFailed"].as_u64()
        ),
        (Some(3), Some(1))
    );

    let (_, _, _, ok) = csv(&org, &format!("/jobs/ingest/{id}/successfulResults")).await;
    let mut lines = ok.lines();
    assert_eq!(
        lines.next(),
        Some(
            "\"sf__Id\",\"sf__Created\",\"Code__c\",\"Short__c\",\"Lines__c\",\"Paid__c\",\"Notes__c\""
        )
    );
    assert!(ok.contains("\"true\",\"A-1\""), "{ok}");
    assert!(ok.contains("\"true\",\"A-3\""), "{ok}");
    let (_, _, _, failed) = csv(&org, &format!("/jobs/ingest/{id}/failedResults")).await;
    assert!(
        failed.starts_with("\"sf__Id\",\"sf__Error\",\"Code__c\""),
        "{failed}"
    );
    assert!(failed.contains("\"\",\"STRING_TOO_LONG:"), "{failed}");
    assert!(failed.contains("Short__c --\",\"A-2\""), "{failed}");

    let stored = org
        .query("SELECT Code__c, Lines__c, Paid__c, Notes__c FROM Invoice__c ORDER BY Code__c")
        .await;
    let records = stored["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["Notes__c"], "multi\nline, \"quoted\"");
    assert_eq!(
        (
            records[0]["Lines__c"].as_i64(),
            records[0]["Paid__c"].as_bool()
        ),
        (Some(3), Some(true))
    );
    assert!(records[1]["Lines__c"].is_null(), "#N/A is null");

    // Upsert by external id: one update, one insert; then delete by Id.
    let (id, info) = ingest(
        &org,
        json!({ "object": "Invoice__c", "operation": "upsert", "externalIdFieldName": "Code__c" }),
        // An empty field leaves the value as it is (A-1 keeps its Short__c).
        "Code__c,Lines__c,Short__c\nA-1,7,\nA-9,1,n\n",
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 0, "{info}");
    let (_, _, _, ok) = csv(&org, &format!("/jobs/ingest/{id}/successfulResults")).await;
    assert!(
        ok.contains("\"false\",\"A-1\",\"7\",") && ok.contains("\"true\",\"A-9\""),
        "{ok}"
    );
    let a1 = org
        .query("SELECT Short__c, Lines__c FROM Invoice__c WHERE Code__c = 'A-1'")
        .await;
    assert_eq!(
        (
            a1["records"][0]["Short__c"].as_str(),
            a1["records"][0]["Lines__c"].as_i64()
        ),
        (Some("ok"), Some(7))
    );
    let ids: Vec<String> = org.query("SELECT Id FROM Invoice__c").await["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    let (_, info) = ingest(
        &org,
        json!({ "object": "Invoice__c", "operation": "delete" }),
        &format!("Id\n{}\n", ids.join("\n")),
    )
    .await;
    assert_eq!(info["numberRecordsProcessed"], 3);
    assert_eq!(
        org.query("SELECT COUNT() FROM Invoice__c").await["totalSize"],
        0
    );
}

#[tokio::test]
async fn ingest_jobs_refuse_what_salesforce_refuses() {
    let org = Org::start().await;
    let (status, _, body) = org
        .call(
            Method::POST,
            "/jobs/ingest",
            Some(json!({ "object": "Invoice__c", "operation": "upsert" })),
        )
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALIDJOB"))
    );
    let (status, _, body) = org
        .call(
            Method::POST,
            "/jobs/ingest",
            Some(json!({ "object": "Nope__c", "operation": "insert" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // An unknown column fails the job as a whole, naming the column.
    let (_, info) = ingest(
        &org,
        json!({ "object": "Invoice__c", "operation": "insert" }),
        "Code__c,Bogus__c\nX,1\n",
    )
    .await;
    assert_eq!(info["state"], "Failed");
    assert!(
        info["errorMessage"].as_str().unwrap().contains("Bogus__c"),
        "{info}"
    );
    let stats = org.control_call(Method::GET, "/stats", None).await;
    assert_eq!(stats["bulkJobs"], 1, "{stats}");
}
