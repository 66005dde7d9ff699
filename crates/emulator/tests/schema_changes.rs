//! Schema changes at run time (`/__emulator/schema/…`): fields added, altered, deleted and
//! made unreadable while clients run; describe, SOQL, writes and Bulk see the change at once
//! and existing values follow it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::bulk::ingest;
use crate::support::{Org, invoice, single_error, urlencode};

/// Sends a control API call that may fail; returns status and JSON body.
async fn control(
    org: &Org,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = org.http.request(method, org.control(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, json)
}

/// The describe entry of a field, if describe lists it.
async fn described(org: &Org, object: &str, field: &str) -> Option<Value> {
    let describe = org.get(&format!("/sobjects/{object}/describe")).await;
    describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == field)
        .cloned()
}

/// A query's error: `(errorCode, message)`.
async fn query_error(org: &Org, soql: &str) -> (String, String) {
    let (status, _, body) = org
        .call(Method::GET, &format!("/query?q={}", urlencode(soql)), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{soql}: {body}");
    single_error(&body)
}

async fn invoice_with(org: &Org, code: &str, fields: Value) -> String {
    let mut body = invoice(code);
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    org.create("Invoice__c", body).await
}

async fn record(org: &Org, id: &str) -> Value {
    org.get(&format!("/sobjects/Invoice__c/{id}")).await
}

#[tokio::test]
async fn an_added_field_is_described_queried_and_written_at_once() {
    let org = Org::start().await;
    let id = invoice_with(&org, "F-1", json!({})).await;
    let (status, field) = control(
        &org,
        Method::POST,
        "/schema/Invoice__c/fields",
        Some(json!({ "name": "Region__c", "type": "string", "length": 20,
                     "externalId": true, "unique": true })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{field}");
    assert_eq!(
        (
            field["name"].as_str(),
            field["length"].as_u64(),
            field["externalId"].as_bool()
        ),
        (Some("Region__c"), Some(20), Some(true))
    );
    assert_eq!(
        described(&org, "Invoice__c", "Region__c").await,
        Some(field)
    );
    assert_eq!(record(&org, &id).await["Region__c"], Value::Null);
    let (status, _, _) = org
        .call(
            Method::PATCH,
            "/sobjects/Invoice__c/Region__c/EMEA",
            Some(json!({ "Code__c": "F-2", "Short__c": "x" })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the new external id is an upsert key"
    );
    let found = org
        .query("SELECT Code__c FROM Invoice__c WHERE Region__c = 'EMEA'")
        .await;
    assert_eq!(found["records"][0]["Code__c"], "F-2");

    let (status, flag) = control(
        &org,
        Method::POST,
        "/schema/Invoice__c/fields",
        Some(json!({ "name": "Flag__c", "type": "boolean", "defaultValue": true })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{flag}");
    assert_eq!(
        record(&org, &id).await["Flag__c"],
        true,
        "existing records take a new checkbox's default"
    );
}

#[tokio::test]
async fn bad_field_additions_are_refused_with_the_field_named() {
    let org = Org::start().await;
    let cases = [
        (
            "/schema/Nope__c/fields",
            json!({ "name": "A__c", "type": "string" }),
            StatusCode::NOT_FOUND,
            "no object named \"Nope__c\"",
        ),
        (
            "/schema/Invoice__c/fields",
            json!({ "name": "Plain", "type": "string" }),
            StatusCode::BAD_REQUEST,
            "object \"Invoice__c\", field \"Plain\": added fields must be custom (end in __c)",
        ),
        (
            "/schema/Invoice__c/fields",
            json!({ "name": "code__c", "type": "string" }),
            StatusCode::BAD_REQUEST,
            "object \"Invoice__c\", field \"code__c\": is declared twice",
        ),
        (
            "/schema/Invoice__c/fields",
            json!({ "name": "R__c", "type": "reference", "referenceTo": ["Nope__c"],
                    "relationshipName": "R__r" }),
            StatusCode::BAD_REQUEST,
            "object \"Invoice__c\", field \"R__c\": references unknown object \"Nope__c\"",
        ),
    ];
    for (path, body, expected_status, message) in cases {
        let (status, answer) = control(&org, Method::POST, path, Some(body)).await;
        assert_eq!(status, expected_status, "{answer}");
        assert_eq!(answer["message"], message);
    }
}

#[tokio::test]
async fn altered_fields_convert_existing_values_without_moving_system_modstamp() {
    let org = Org::start().await;
    let id = invoice_with(
        &org,
        "A-1",
        json!({ "Notes__c": "abcdefghij", "Amount__c": 12.35, "Lines__c": 3,
                "Ref__c": "12.5", "Due__c": "2024-01-01" }),
    )
    .await;
    let stamp = record(&org, &id).await["SystemModstamp"].clone();
    let changes = [
        ("Notes__c", json!({ "length": 4, "label": "Short notes" })),
        ("Short__c", json!({ "length": 50 })),
        ("Amount__c", json!({ "scale": 0 })),
        ("Lines__c", json!({ "type": "string", "length": 10 })),
        (
            "Ref__c",
            json!({ "type": "double", "precision": 8, "scale": 1 }),
        ),
        ("Due__c", json!({ "type": "string" })),
    ];
    for (field, change) in changes {
        let path = format!("/schema/Invoice__c/fields/{field}");
        let (status, answer) = control(&org, Method::PATCH, &path, Some(change)).await;
        assert_eq!(status, StatusCode::OK, "{field}: {answer}");
        assert_eq!(described(&org, "Invoice__c", field).await, Some(answer));
    }
    let notes = described(&org, "Invoice__c", "Notes__c").await.unwrap();
    assert_eq!(
        (
            notes["length"].as_u64(),
            notes["byteLength"].as_u64(),
            notes["label"].as_str()
        ),
        (Some(4), Some(12), Some("Short notes"))
    );
    let stored = record(&org, &id).await;
    assert_eq!(stored["Notes__c"], "abcd", "cut to the shorter length");
    assert_eq!(stored["Amount__c"], 12.0, "rounded to the new scale");
    assert_eq!(stored["Lines__c"], "3", "a number becomes its text");
    assert_eq!(stored["Ref__c"], 12.5, "numeric text becomes a number");
    assert_eq!(
        stored["Due__c"],
        Value::Null,
        "a date does not convert to text"
    );
    assert_eq!(stored["SystemModstamp"], stamp, "converting is not a write");
    let (status, _, body) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/Invoice__c/{id}"),
            Some(json!({ "Short__c": "longer than five" })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "the widened field takes it: {body}"
    );
}

#[tokio::test]
async fn alterations_salesforce_refuses_are_refused() {
    let org = Org::start().await;
    let cases = [
        (
            "/schema/Invoice__c/fields/Account__c",
            json!({ "type": "string" }),
            StatusCode::BAD_REQUEST,
            "object \"Invoice__c\", field \"Account__c\": reference fields cannot change type, and no field can become one",
        ),
        (
            "/schema/Account/fields/Name",
            json!({ "length": 10 }),
            StatusCode::BAD_REQUEST,
            "object \"Account\", field \"Name\": is a standard field; only custom fields can be altered or deleted",
        ),
        (
            "/schema/Invoice__c/fields/Amount__c",
            json!({ "precision": 4, "scale": 6 }),
            StatusCode::BAD_REQUEST,
            "object \"Invoice__c\", field \"Amount__c\": scale is larger than precision",
        ),
        (
            "/schema/Invoice__c/fields/Nope__c",
            json!({ "length": 10 }),
            StatusCode::NOT_FOUND,
            "object \"Invoice__c\" has no field \"Nope__c\"",
        ),
    ];
    for (path, change, expected_status, message) in cases {
        let (status, answer) = control(&org, Method::PATCH, path, Some(change)).await;
        assert_eq!(status, expected_status, "{path}: {answer}");
        assert_eq!(answer["message"], message);
    }
}

#[tokio::test]
async fn a_deleted_field_is_gone_from_describe_soql_writes_and_bulk() {
    let org = Org::start().await;
    let first = invoice_with(&org, "D-1", json!({ "Lines__c": 4 })).await;
    invoice_with(&org, "D-2", json!({ "Lines__c": 5 })).await;
    let (status, _) = control(
        &org,
        Method::DELETE,
        "/schema/Invoice__c/fields/Lines__c",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(described(&org, "Invoice__c", "Lines__c").await, None);
    assert!(record(&org, &first).await.get("Lines__c").is_none());
    let (code, message) = query_error(&org, "SELECT Id, Lines__c FROM Invoice__c").await;
    assert_eq!(code, "INVALID_FIELD");
    assert!(
        message.contains("No such column 'Lines__c' on entity 'Invoice__c'."),
        "{message}"
    );
    let (status, _, body) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/Invoice__c/{first}"),
            Some(json!({ "Lines__c": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        single_error(&body),
        (
            "INVALID_FIELD".to_owned(),
            "No such column 'Lines__c' on sobject of type Invoice__c".to_owned()
        )
    );
    let (_, info) = ingest(
        &org,
        json!({ "object": "Invoice__c", "operation": "insert" }),
        "Code__c,Short__c,Lines__c\nD-3,x,1\n",
    )
    .await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(
        info["errorMessage"],
        "InvalidBatch : Field name not found : Lines__c"
    );

    let (status, _) = control(
        &org,
        Method::POST,
        "/schema/Invoice__c/fields",
        Some(json!({ "name": "Lines__c", "type": "int" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "the name can be used again");
    assert_eq!(
        record(&org, &first).await["Lines__c"],
        Value::Null,
        "a new field, not the deleted one's values"
    );
}

#[tokio::test]
async fn an_open_cursor_keeps_paging_across_a_deleted_field() {
    let org = Org::start().await;
    org.seed(json!({ "Invoice__c": 250 })).await;
    let response = org
        .http
        .get(org.url(&format!(
            "/query?q={}",
            urlencode("SELECT Id, Code__c, Lines__c FROM Invoice__c")
        )))
        .bearer_auth(&org.token)
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let first_page: Value = response.json().await.unwrap();
    let next = first_page["nextRecordsUrl"].as_str().unwrap().to_owned();
    control(
        &org,
        Method::DELETE,
        "/schema/Invoice__c/fields/Lines__c",
        None,
    )
    .await;
    let rest = org
        .call_url(Method::GET, &format!("{}{next}", org.base), None)
        .await;
    assert_eq!(rest.0, StatusCode::OK, "{}", rest.2);
    let records = rest.2["records"].as_array().unwrap();
    assert_eq!(records.len(), 50);
    assert!(
        records
            .iter()
            .all(|r| r["Lines__c"].is_null() && r["Code__c"].is_string()),
        "the deleted field's values are gone, the others remain"
    );
}

#[tokio::test]
async fn an_unreadable_field_is_hidden_and_keeps_its_values() {
    let org = Org::start().await;
    let id = invoice_with(&org, "H-1", json!({ "Ref__c": "secret" })).await;
    let access = |readable: bool| json!({ "readable": readable });
    let path = "/schema/Invoice__c/fields/Ref__c/access";
    let (status, answer) = control(&org, Method::PUT, path, Some(access(false))).await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({ "readable": false }))
    );
    assert_eq!(described(&org, "Invoice__c", "Ref__c").await, None);
    assert!(record(&org, &id).await.get("Ref__c").is_none());
    let (code, message) = query_error(&org, "SELECT Id FROM Invoice__c WHERE Ref__c = 'x'").await;
    assert_eq!(code, "INVALID_FIELD");
    assert!(
        message.starts_with(
            "\nSELECT Id FROM Invoice__c WHERE Ref__c = 'x'\n                                ^\nERROR at Row:1:Column:33\nNo such column 'Ref__c' on entity 'Invoice__c'."
        ),
        "{message:?}"
    );
    control(&org, Method::PUT, path, Some(access(true))).await;
    assert_eq!(record(&org, &id).await["Ref__c"], "secret");

    for (field, message) in [
        (
            "Short__c",
            "object \"Invoice__c\", field \"Short__c\": is required and cannot be made unreadable",
        ),
        (
            "SystemModstamp",
            "object \"Invoice__c\", field \"SystemModstamp\": is a system field and is always readable",
        ),
    ] {
        let path = format!("/schema/Invoice__c/fields/{field}/access");
        let (status, answer) = control(&org, Method::PUT, &path, Some(access(false))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["message"], message);
    }
}
