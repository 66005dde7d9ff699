//! Every write validation error, through single-record REST calls: the HTTP status, the
//! error code, Salesforce's message and `fields`, and that nothing was written.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Org, invoice};

/// One invalid write and the error it must produce.
struct Case {
    what: &'static str,
    body: Value,
    code: &'static str,
    message: &'static str,
    fields: &'static [&'static str],
}

fn invoice_with(extra: Value) -> Value {
    let mut body = invoice("E-1");
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    body
}

async fn assert_refused(org: &Org, method: Method, path: &str, case: &Case) {
    let (status, _, body) = org.call(method, path, Some(case.body.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {body}", case.what);
    let error = &body[0];
    assert_eq!(error["errorCode"], case.code, "{}: {body}", case.what);
    assert!(
        error["message"].as_str().unwrap().contains(case.message),
        "{}: {body}",
        case.what
    );
    let fields: Vec<&str> = error["fields"]
        .as_array()
        .map(|f| f.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default();
    assert_eq!(fields, case.fields, "{}: fields", case.what);
}

async fn invoice_count(org: &Org) -> u64 {
    org.query("SELECT COUNT() FROM Invoice__c").await["totalSize"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn invalid_creates_fail_with_salesforces_codes_and_write_nothing() {
    let org = Org::start().await;
    let contact = org.create("Contact", json!({ "LastName": "Liskov" })).await;
    let missing_account = bogus_id(&org, "Account").await;
    let cases = [
        Case {
            what: "required field absent",
            body: json!({ "Code__c": "E-1" }),
            code: "REQUIRED_FIELD_MISSING",
            message: "Required fields are missing: [Short__c]",
            fields: &["Short__c"],
        },
        Case {
            what: "too long",
            body: invoice_with(json!({ "Short__c": "toolong" })),
            code: "STRING_TOO_LONG",
            message: "Short: data value too large: toolong (max length=5)",
            fields: &["Short__c"],
        },
        Case {
            what: "restricted picklist",
            body: invoice_with(json!({ "Status__c": "Lost" })),
            code: "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            message: "Status: bad value for restricted picklist field: Lost",
            fields: &["Status__c"],
        },
        Case {
            what: "text in a number",
            body: invoice_with(json!({ "Amount__c": "abc" })),
            code: "INVALID_TYPE_ON_FIELD_IN_RECORD",
            message: "Amount: value not of required type: abc",
            fields: &["Amount__c"],
        },
        Case {
            what: "impossible date",
            body: invoice_with(json!({ "Due__c": "2024-13-45" })),
            code: "INVALID_TYPE_ON_FIELD_IN_RECORD",
            message: "Due: value not of required type: 2024-13-45",
            fields: &["Due__c"],
        },
        Case {
            what: "word in a checkbox",
            body: invoice_with(json!({ "Paid__c": "maybe" })),
            code: "INVALID_TYPE_ON_FIELD_IN_RECORD",
            message: "Paid: value not of required type: maybe",
            fields: &["Paid__c"],
        },
        Case {
            what: "number too large",
            body: invoice_with(json!({ "Amount__c": 1e9 })),
            code: "NUMBER_OUTSIDE_VALID_RANGE",
            message: "Amount: value outside of valid range",
            fields: &["Amount__c"],
        },
        Case {
            what: "malformed reference",
            body: invoice_with(json!({ "Account__c": "123" })),
            code: "MALFORMED_ID",
            message: "Account: id value of incorrect type: 123",
            fields: &["Account__c"],
        },
        Case {
            what: "reference of the wrong object",
            body: invoice_with(json!({ "Account__c": contact })),
            code: "FIELD_INTEGRITY_EXCEPTION",
            message: "id value of incorrect type",
            fields: &["Account__c"],
        },
        Case {
            what: "reference to nothing",
            body: invoice_with(json!({ "Account__c": missing_account })),
            code: "INVALID_CROSS_REFERENCE_KEY",
            message: "invalid cross reference id",
            fields: &["Account__c"],
        },
        Case {
            what: "system field",
            body: invoice_with(json!({ "CreatedDate": "2020-01-01T00:00:00Z" })),
            code: "INVALID_FIELD_FOR_INSERT_UPDATE",
            message: "Unable to create/update fields: CreatedDate.",
            fields: &["CreatedDate"],
        },
        Case {
            what: "unknown field",
            body: invoice_with(json!({ "Nope__c": 1 })),
            code: "INVALID_FIELD",
            message: "No such column 'Nope__c' on sobject of type Invoice__c",
            fields: &[],
        },
        Case {
            what: "Id on insert",
            body: invoice_with(json!({ "Id": contact })),
            code: "INVALID_FIELD",
            message: "cannot specify Id in an insert call",
            fields: &["Id"],
        },
    ];
    for case in &cases {
        assert_refused(&org, Method::POST, "/sobjects/Invoice__c", case).await;
    }
    assert_eq!(
        invoice_count(&org).await,
        0,
        "no refused create wrote anything"
    );
    let (status, _, body) = org
        .call(
            Method::POST,
            "/sobjects/Contact",
            Some(json!({ "LastName": "X", "Email": "not-an-email" })),
        )
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_EMAIL_ADDRESS"))
    );
}

/// A well-formed Id of `object` that names no record: an existing one with another
/// record number (this org has created only one such record).
async fn bogus_id(org: &Org, object: &str) -> String {
    let id = org.create(object, json!({ "Name": "the only one" })).await;
    format!("{}Z", &id[..14])
}

#[tokio::test]
async fn invalid_updates_fail_and_leave_the_record_as_it_was() {
    let org = Org::start().await;
    let id = org.create("Invoice__c", invoice("U-1")).await;
    let path = format!("/sobjects/Invoice__c/{id}");
    let before = org.get(&path).await;
    let cases = [
        Case {
            what: "required set to null",
            body: json!({ "Short__c": null }),
            code: "REQUIRED_FIELD_MISSING",
            message: "Required fields are missing: [Short__c]",
            fields: &["Short__c"],
        },
        Case {
            what: "too long",
            body: json!({ "Short__c": "toolong", "Lines__c": 9 }),
            code: "STRING_TOO_LONG",
            message: "max length=5",
            fields: &["Short__c"],
        },
    ];
    for case in &cases {
        assert_refused(&org, Method::PATCH, &path, case).await;
    }
    let contact = org.create("Contact", json!({ "LastName": "Knuth" })).await;
    let read_only = Case {
        what: "computed name",
        body: json!({ "Name": "New Name" }),
        code: "INVALID_FIELD_FOR_INSERT_UPDATE",
        message: "Unable to create/update fields: Name.",
        fields: &["Name"],
    };
    assert_refused(
        &org,
        Method::PATCH,
        &format!("/sobjects/Contact/{contact}"),
        &read_only,
    )
    .await;
    assert_eq!(
        org.get(&path).await,
        before,
        "nothing changed, not even SystemModstamp"
    );
}

#[tokio::test]
async fn unique_and_external_id_values_must_not_repeat_in_any_case() {
    let org = Org::start().await;
    let first = org.create("Invoice__c", invoice("A-1")).await;
    let (status, _, body) = org
        .call(Method::POST, "/sobjects/Invoice__c", Some(invoice("a-1")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "DUPLICATE_VALUE");
    assert_eq!(
        body[0]["message"],
        format!("duplicate value found: Code__c duplicates value on record with id: {first}")
    );
    assert_eq!(body[0]["fields"], json!(["Code__c"]));
    let second = org.create("Invoice__c", invoice("B-1")).await;
    let (status, _, body) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/Invoice__c/{second}"),
            Some(json!({ "Code__c": "A-1" })),
        )
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("DUPLICATE_VALUE"))
    );
    org.call(
        Method::DELETE,
        &format!("/sobjects/Invoice__c/{first}"),
        None,
    )
    .await;
    org.create("Invoice__c", invoice("A-1")).await;
}

#[tokio::test]
async fn deleted_and_unknown_records_answer_404() {
    let org = Org::start().await;
    let id = org.create("Invoice__c", invoice("D-1")).await;
    let path = format!("/sobjects/Invoice__c/{id}");
    org.call(Method::DELETE, &path, None).await;
    for method in [Method::PATCH, Method::DELETE, Method::GET] {
        let body = (method == Method::PATCH).then(|| json!({ "Lines__c": 1 }));
        let (status, _, answer) = org.call(method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(
            answer,
            json!([{ "message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED" }]),
            "{method}"
        );
    }
    let account = org.create("Account", json!({ "Name": "A" })).await;
    let (status, _, answer) = org
        .call(
            Method::GET,
            &format!("/sobjects/Invoice__c/{account}"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an Account Id under the Invoice__c path"
    );
    assert_eq!(answer[0]["errorCode"], "NOT_FOUND");
    let (status, _, answer) = org
        .call(
            Method::PATCH,
            "/sobjects/Invoice__c/Nope__c/x",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer[0]["message"],
        "Provided external ID field does not exist or is not accessible: Nope__c"
    );
}

#[tokio::test]
async fn malformed_requests_are_refused_whole() {
    let org = Org::start().await;
    let response = org
        .http
        .post(org.url("/sobjects/Account"))
        .bearer_auth(&org.token)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "JSON_PARSER_ERROR");
    let (status, _, body) = org
        .call(Method::PUT, "/sobjects/Account", Some(json!({})))
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("METHOD_NOT_ALLOWED"))
    );
    let url = format!("{}/services/data/v19.0/limits", org.base);
    let (status, _, body) = org.call_url(Method::GET, &url, None).await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (StatusCode::NOT_FOUND, Some("NOT_FOUND"))
    );
    let (status, _, _) = org.call(Method::GET, "/nothing/here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ids_resolve_in_15_and_18_characters_and_any_case() {
    let org = Org::start().await;
    let id = org.create("Invoice__c", invoice("I-1")).await;
    for form in [
        id.clone(),
        id[..15].to_owned(),
        id.to_lowercase(),
        id.to_uppercase(),
    ] {
        let record = org.get(&format!("/sobjects/Invoice__c/{form}")).await;
        assert_eq!(record["Id"], id.as_str(), "{form} resolves to {id}");
    }
    let record = org.get(&format!("/sobjects/Invoice__c/{id}")).await;
    assert_eq!(record["Name"], "Invoice I-1");
    let blank = org
        .create(
            "Invoice__c",
            json!({ "Code__c": "I-2", "Short__c": "x", "Name": "   ", "Notes__c": "" }),
        )
        .await;
    let record = org.get(&format!("/sobjects/Invoice__c/{blank}")).await;
    assert_eq!(
        (record["Name"].clone(), record["Notes__c"].clone()),
        (Value::Null, Value::Null),
        "blank strings are stored as null"
    );
}
