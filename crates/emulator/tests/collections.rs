//! sObject Collections over HTTP: per-record results in request order, allOrNone rollback,
//! upsert by external id, delete, retrieve, limits, shared SystemModstamp, and parents
//! given by external id.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Org;

fn records(items: Vec<Value>) -> Value {
    let typed: Vec<Value> = items
        .into_iter()
        .map(|mut item| {
            if item.get("attributes").is_none() {
                item["attributes"] = json!({ "type": "Invoice__c" });
            }
            item
        })
        .collect();
    json!({ "allOrNone": false, "records": typed })
}

fn invoice(code: &str) -> Value {
    json!({ "Code__c": code, "Short__c": "x" })
}

async fn collection(org: &Org, method: Method, path: &str, body: Value) -> Vec<Value> {
    let (status, _, answer) = org.call(method, path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    answer.as_array().unwrap().clone()
}

async fn retrieve(org: &Org, ids: &[&str]) -> Vec<Value> {
    let path = format!(
        "/composite/sobjects/Invoice__c?ids={}&fields=Id,Code__c,Lines__c,SystemModstamp",
        ids.join(",")
    );
    org.get(&path).await.as_array().unwrap().clone()
}

fn ids(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn create_reports_each_record_in_order_and_keeps_the_good_ones() {
    let org = Org::start().await;
    let body = records(vec![
        invoice("C-1"),
        json!({ "Code__c": "C-2" }),
        invoice("C-3"),
    ]);
    let results = collection(&org, Method::POST, "/composite/sobjects", body).await;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["success"], true);
    assert!(
        results[0].get("created").is_none(),
        "create results have no created key"
    );
    assert_eq!(
        results[1],
        json!({ "success": false, "errors": [{
        "statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Short__c]", "fields": ["Short__c"] }] })
    );
    assert_eq!(results[2]["success"], true);
    let created = ids(&results);
    let stored = retrieve(&org, &[&created[0], &created[1]]).await;
    assert_eq!(stored[0]["Code__c"], "C-1");
    assert_eq!(stored[1]["Code__c"], "C-3");
    assert_eq!(
        stored[0]["SystemModstamp"], stored[1]["SystemModstamp"],
        "one call, one SystemModstamp"
    );
}

#[tokio::test]
async fn all_or_none_rolls_back_every_record_on_one_failure() {
    let org = Org::start().await;
    let mut body = records(vec![
        invoice("R-1"),
        invoice("R-2"),
        json!({ "Code__c": "R-3", "Short__c": "toolong" }),
    ]);
    body["allOrNone"] = json!(true);
    let results = collection(&org, Method::POST, "/composite/sobjects", body).await;
    for result in &results[..2] {
        assert_eq!(
            result["errors"][0]["statusCode"],
            "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        );
        assert_eq!(
            result["errors"][0]["message"],
            "Record rolled back because not all records were valid and the request was using AllOrNone header"
        );
    }
    assert_eq!(results[2]["errors"][0]["statusCode"], "STRING_TOO_LONG");
    assert_eq!(
        org.query("SELECT COUNT() FROM Invoice__c").await["totalSize"],
        0
    );
    // The codes that failed are free again: nothing of the rolled-back call remains.
    let retried = collection(
        &org,
        Method::POST,
        "/composite/sobjects",
        records(vec![invoice("R-1"), invoice("R-2")]),
    )
    .await;
    assert!(retried.iter().all(|r| r["success"] == true), "{retried:?}");
}

#[tokio::test]
async fn update_takes_lower_case_id_keys_and_reports_unknown_ids() {
    let org = Org::start().await;
    let created = ids(&collection(
        &org,
        Method::POST,
        "/composite/sobjects",
        records(vec![invoice("U-1"), invoice("U-2")]),
    )
    .await);
    let body = records(vec![
        json!({ "id": created[0], "Lines__c": 1 }),
        json!({ "Id": created[1], "Lines__c": 2 }),
        json!({ "id": format!("{}Z", &created[1][..14]), "Lines__c": 3 }),
        json!({ "Lines__c": 4 }),
    ]);
    let results = collection(&org, Method::PATCH, "/composite/sobjects", body).await;
    assert_eq!(results[0]["id"], created[0].as_str());
    assert_eq!(results[1]["success"], true);
    assert_eq!(
        results[2]["errors"][0]["statusCode"],
        "INVALID_CROSS_REFERENCE_KEY"
    );
    assert_eq!(results[3]["errors"][0]["statusCode"], "MISSING_ARGUMENT");
    let stored = retrieve(&org, &[&created[0], &created[1]]).await;
    assert_eq!(
        (stored[0]["Lines__c"].clone(), stored[1]["Lines__c"].clone()),
        (json!(1), json!(2))
    );
}

#[tokio::test]
async fn upsert_creates_updates_and_refuses_ambiguous_keys() {
    let org = Org::start().await;
    let existing = org.create("Invoice__c", invoice("K-1")).await;
    org.create(
        "Invoice__c",
        json!({ "Code__c": "K-2", "Ref__c": "same", "Short__c": "a" }),
    )
    .await;
    org.create(
        "Invoice__c",
        json!({ "Code__c": "K-3", "Ref__c": "same", "Short__c": "b" }),
    )
    .await;
    let body = records(vec![
        json!({ "Code__c": "k-1", "Lines__c": 7 }),
        invoice("K-NEW"),
    ]);
    let results = collection(
        &org,
        Method::PATCH,
        "/composite/sobjects/Invoice__c/Code__c",
        body,
    )
    .await;
    assert_eq!(
        results[0],
        json!({ "id": existing, "success": true, "errors": [], "created": false })
    );
    assert_eq!(
        (results[1]["success"].clone(), results[1]["created"].clone()),
        (json!(true), json!(true))
    );
    let body = records(vec![json!({ "Ref__c": "same", "Lines__c": 1 })]);
    let results = collection(
        &org,
        Method::PATCH,
        "/composite/sobjects/Invoice__c/Ref__c",
        body,
    )
    .await;
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "DUPLICATE_EXTERNAL_ID"
    );
    let body = records(vec![
        json!({ "attributes": { "type": "Account" }, "Code__c": "K-4" }),
    ]);
    let results = collection(
        &org,
        Method::PATCH,
        "/composite/sobjects/Invoice__c/Code__c",
        body,
    )
    .await;
    assert_eq!(
        results[0]["errors"][0]["statusCode"], "INVALID_TYPE",
        "records must be of the path's object"
    );
}

#[tokio::test]
async fn delete_and_retrieve_follow_salesforce() {
    let org = Org::start().await;
    let created = ids(&collection(
        &org,
        Method::POST,
        "/composite/sobjects",
        records(vec![invoice("D-1"), invoice("D-2")]),
    )
    .await);
    let path = format!(
        "/composite/sobjects?ids={},{}&allOrNone=false",
        created[0], created[1]
    );
    let (status, _, results) = org.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["success"] == true)
    );
    let (_, _, again) = org
        .call(
            Method::DELETE,
            &format!("/composite/sobjects?ids={}", created[0]),
            None,
        )
        .await;
    assert_eq!(again[0]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
    let kept = org.create("Invoice__c", invoice("D-3")).await;
    let found = retrieve(&org, &[&kept, &created[0], "a008A000000000ZZZZ"]).await;
    assert_eq!(found[0]["Code__c"], "D-3");
    assert_eq!(
        (found[1].clone(), found[2].clone()),
        (Value::Null, Value::Null),
        "deleted and unknown Ids are null"
    );
    let (status, _, by_body) = org
        .call(
            Method::POST,
            "/composite/sobjects/Invoice__c",
            Some(json!({ "ids": [kept], "fields": ["Code__c"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_body[0]["Code__c"], "D-3");
}

#[tokio::test]
async fn more_than_two_hundred_records_or_untyped_ones_are_refused() {
    let org = Org::start().await;
    let many: Vec<Value> = (0..201).map(|n| invoice(&format!("M-{n}"))).collect();
    let (status, _, body) = org
        .call(Method::POST, "/composite/sobjects", Some(records(many)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "EXCEEDED_ID_LIMIT");
    let untyped = json!({ "records": [{ "Code__c": "T-1", "Short__c": "x" }] });
    let results = collection(&org, Method::POST, "/composite/sobjects", untyped).await;
    assert_eq!(results[0]["errors"][0]["statusCode"], "INVALID_TYPE");
    assert_eq!(
        org.query("SELECT COUNT() FROM Invoice__c").await["totalSize"],
        0
    );
}

#[tokio::test]
async fn parents_can_be_given_by_external_id() {
    let org = Org::start().await;
    let account = org
        .create(
            "Account",
            json!({ "Name": "Parent", "External_Id__c": "ACC-1" }),
        )
        .await;
    let body = records(vec![
        json!({ "Code__c": "P-1", "Short__c": "x", "Account__r": { "External_Id__c": "ACC-1" } }),
        json!({ "Code__c": "P-2", "Short__c": "x", "Account__r": { "External_Id__c": "ACC-404" } }),
    ]);
    let results = collection(&org, Method::POST, "/composite/sobjects", body).await;
    let child = results[0]["id"].as_str().unwrap();
    let record = org.get(&format!("/sobjects/Invoice__c/{child}")).await;
    assert_eq!(record["Account__c"], account.as_str());
    assert_eq!(results[1]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(
        results[1]["errors"][0]["message"],
        "Foreign key external ID: ACC-404 not found for field External_Id__c in entity Account"
    );
}

/// The single error of a whole-call refusal: status 400 and one `{errorCode, message}`.
async fn refused_call(org: &Org, method: Method, path: &str, body: Value) -> (String, String) {
    let (status, _, answer) = org.call(method, path, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
    let errors = answer.as_array().expect("an error array");
    assert_eq!(errors.len(), 1, "{answer}");
    (
        errors[0]["errorCode"].as_str().unwrap().to_owned(),
        errors[0]["message"].as_str().unwrap().to_owned(),
    )
}

async fn invoice_count(org: &Org) -> u64 {
    org.query("SELECT COUNT() FROM Invoice__c").await["totalSize"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn an_unknown_field_in_one_record_fails_the_whole_create_call() {
    let org = Org::start().await;
    let mut bad = invoice("W-2");
    bad["Nope__c"] = json!("x");
    let body = records(vec![invoice("W-1"), bad, invoice("W-3")]);
    let refused = refused_call(&org, Method::POST, "/composite/sobjects", body).await;
    assert_eq!(
        refused,
        (
            "INVALID_FIELD".to_owned(),
            "No such column 'Nope__c' on sobject of type Invoice__c".to_owned()
        )
    );
    assert_eq!(
        invoice_count(&org).await,
        0,
        "no record of the call is written"
    );
}

#[tokio::test]
async fn a_field_hidden_from_the_user_fails_the_whole_update_and_upsert_call() {
    let org = Org::start().await;
    let first = org.create("Invoice__c", invoice("H-1")).await;
    let second = org.create("Invoice__c", invoice("H-2")).await;
    org.control_call(
        Method::PUT,
        "/schema/Invoice__c/fields/Lines__c/access",
        Some(json!({ "readable": false })),
    )
    .await;
    let update = records(vec![
        json!({ "id": first, "Code__c": "H-1b" }),
        json!({ "id": second, "Lines__c": 3 }),
    ]);
    let refused = refused_call(&org, Method::PATCH, "/composite/sobjects", update).await;
    assert_eq!(
        refused,
        (
            "INVALID_FIELD".to_owned(),
            "No such column 'Lines__c' on sobject of type Invoice__c".to_owned()
        )
    );
    let upsert = records(vec![
        json!({ "Code__c": "H-3", "Short__c": "x" }),
        json!({ "Code__c": "H-1", "Lines__c": 3 }),
    ]);
    let path = "/composite/sobjects/Invoice__c/Code__c";
    let (code, _) = refused_call(&org, Method::PATCH, path, upsert).await;
    assert_eq!(code, "INVALID_FIELD");
    assert_eq!(invoice_count(&org).await, 2, "the upsert created nothing");
    let stored = org.get(&format!("/sobjects/Invoice__c/{first}")).await;
    assert_eq!(stored["Code__c"], "H-1", "the update changed nothing");
}

#[tokio::test]
async fn a_visible_read_only_field_fails_only_its_own_record() {
    let org = Org::start().await;
    let mut read_only = invoice("R-2");
    read_only["CreatedDate"] = json!("2020-01-01T00:00:00.000+0000");
    let body = records(vec![invoice("R-1"), read_only]);
    let results = collection(&org, Method::POST, "/composite/sobjects", body).await;
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[1]["success"], false);
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    assert_eq!(invoice_count(&org).await, 1);
}
