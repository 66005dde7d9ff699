//! Shape fidelity: the emulator's answers against recorded Salesforce responses in
//! `tests/fixtures` (their sources and licences are in its README). For each fixture the same request goes to the emulator, and the two
//! bodies must have the same keys at every level, the same value kinds, and the same date,
//! datetime and number formats. A fixture is reduced to a [`Shape`] first (the union over
//! the elements of each array), so a field list from another org still says which keys a
//! field object has and which kinds each key takes. Differences the emulator knowingly has
//! are listed by name, with the reason, next to the test that meets them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Org, invoice, password_login, urlencode};

/// The recorded responses kept in the repository, or the folder `PGFORCE_FIXTURES` names
/// (newer recordings with the same layout).
fn fixtures_dir() -> PathBuf {
    std::env::var_os("PGFORCE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

fn fixture_text(path: &str) -> String {
    let file = fixtures_dir().join(path);
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("fixture {} cannot be read: {e}", file.display()))
}

fn fixture(path: &str) -> Value {
    serde_json::from_str(&fixture_text(path))
        .unwrap_or_else(|e| panic!("fixture {path} is not JSON: {e}"))
}

/// The kind of a JSON value, with Salesforce's string formats told apart.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(s) if is_datetime(s) => "datetime",
        Value::String(s) if is_date(s) => "date",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && s.chars().filter(char::is_ascii_digit).count() == 8
}

/// Salesforce's datetime format: `2013-05-07T22:07:19.000+0000`.
fn is_datetime(s: &str) -> bool {
    s.len() == 28
        && is_date(&s[..10])
        && &s[10..11] == "T"
        && &s[19..20] == "."
        && s.ends_with("+0000")
}

/// What a fixture says a body looks like.
#[derive(Debug, Default)]
struct Shape {
    kinds: BTreeSet<&'static str>,
    /// Each key seen in objects here, with how many of them had it.
    keys: BTreeMap<String, (usize, Shape)>,
    /// How many objects were seen here; a key all of them had is required.
    objects: usize,
    elements: Option<Box<Shape>>,
}

impl Shape {
    fn of(value: &Value) -> Self {
        let mut shape = Self::default();
        shape.absorb(value);
        shape
    }

    fn absorb(&mut self, value: &Value) {
        self.kinds.insert(kind(value));
        match value {
            Value::Object(map) => {
                self.objects += 1;
                for (key, inner) in map {
                    let (count, shape) = self.keys.entry(key.clone()).or_default();
                    *count += 1;
                    shape.absorb(inner);
                }
            }
            Value::Array(items) => {
                let elements = self.elements.get_or_insert_with(Box::default);
                for item in items {
                    elements.absorb(item);
                }
            }
            _ => {}
        }
    }

    /// Lists how `actual` departs from this shape, with paths like `fields[].type`.
    fn differences(&self, actual: &Value, path: &str, out: &mut Vec<String>) {
        let actual_kind = kind(actual);
        if !self.kinds.contains(actual_kind) {
            let expected: Vec<&str> = self.kinds.iter().copied().collect();
            out.push(format!(
                "{path}: {actual_kind} where Salesforce sends {}",
                expected.join("|")
            ));
            return;
        }
        match actual {
            Value::Object(map) if self.objects > 0 => {
                let required = self
                    .keys
                    .iter()
                    .filter(|(_, (count, _))| *count == self.objects);
                for (key, _) in required.filter(|(k, _)| !map.contains_key(*k)) {
                    out.push(format!("{path}.{key}: missing"));
                }
                for (key, inner) in map {
                    match self.keys.get(key) {
                        Some((_, shape)) => shape.differences(inner, &format!("{path}.{key}"), out),
                        None => out.push(format!("{path}.{key}: extra")),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(elements) = self.elements.as_deref().filter(|e| !e.kinds.is_empty()) {
                    for item in items {
                        elements.differences(item, &format!("{path}[]"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Asserts that `actual` has the fixture's shape, but for the named known differences.
fn assert_shape(fixture_path: &str, expected: &Value, actual: &Value, known: &[(&str, &str)]) {
    let mut differences = Vec::new();
    Shape::of(expected).differences(actual, "$", &mut differences);
    let unexplained: Vec<&String> = differences
        .iter()
        .filter(|d| !known.iter().any(|(k, _)| k == d))
        .collect();
    assert!(
        unexplained.is_empty(),
        "{fixture_path}: the emulator differs from Salesforce:\n{unexplained:#?}"
    );
    for (difference, reason) in known {
        assert!(
            differences.iter().any(|d| d == difference),
            "{fixture_path}: known difference {difference:?} ({reason}) no longer occurs; remove it from the list"
        );
    }
}

async fn describe(org: &Org, object: &str) -> Value {
    org.get(&format!("/sobjects/{object}/describe")).await
}

#[tokio::test]
async fn describe_account_has_salesforce_key_sets_and_kinds() {
    let org = Org::start().await;
    let actual = describe(&org, "Account").await;
    let path = "rest/describe_account_v59_person_accounts.json";
    assert_shape(path, &fixture(path), &actual, &[]);
    let old = "rest/describe_account_v48.json";
    assert_shape(
        old,
        &fixture(old),
        &actual,
        &[
            (
                "$.associateEntityType: extra",
                "API 59 adds it; the emulator answers as a current version",
            ),
            ("$.associateParentEntity: extra", "API 59 adds it"),
            ("$.sobjectDescribeOption: extra", "API 59 adds it"),
            (
                "$.urls.defaultValues: missing",
                "only the v48 answer links defaultValues",
            ),
        ],
    );
}

#[tokio::test]
async fn describe_global_has_salesforce_key_sets() {
    let org = Org::start().await;
    let path = "rest/describe_global_trimmed.json";
    assert_shape(path, &fixture(path), &org.get("/sobjects/").await, &[]);
}

/// Keeps only `attributes` in each record, for fixtures whose records are of another object.
fn records_reduced_to_attributes(mut page: Value) -> Value {
    if let Some(records) = page["records"].as_array_mut() {
        for record in records {
            if let Some(map) = record.as_object_mut() {
                map.retain(|k, _| k == "attributes");
            }
        }
    }
    page
}

#[tokio::test]
async fn query_pages_and_count_have_salesforce_shapes() {
    let org = Org::start().await;
    for n in 0..3 {
        org.create("Account", json!({ "Name": format!("Account {n}") }))
            .await;
    }
    let path = "rest/query_accounts.json";
    assert_shape(
        path,
        &fixture(path),
        &org.query("SELECT Id, Name FROM Account").await,
        &[],
    );
    let path = "rest/query_count.json";
    assert_shape(
        path,
        &fixture(path),
        &org.query("SELECT COUNT() FROM Account").await,
        &[],
    );

    org.seed(json!({ "Account": 2100 })).await;
    let first = org.query("SELECT Id FROM Account").await;
    let path = "rest/query_paginated_first_page_edited.json";
    assert_shape(
        path,
        &records_reduced_to_attributes(fixture(path)),
        &records_reduced_to_attributes(first.clone()),
        &[],
    );
    let next = first["nextRecordsUrl"].as_str().unwrap();
    let (_, _, last) = org
        .call_url(Method::GET, &format!("{}{next}", org.base), None)
        .await;
    let path = "rest/query_paginated_last_page_edited.json";
    assert_shape(
        path,
        &records_reduced_to_attributes(fixture(path)),
        &records_reduced_to_attributes(last),
        &[],
    );
}

#[tokio::test]
async fn error_bodies_have_salesforce_shapes() {
    let org = Org::start().await;
    let bad_token = org
        .http
        .get(org.url("/limits"))
        .bearer_auth("00D!nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_token.status(), StatusCode::UNAUTHORIZED);
    let path = "errors/invalid_session_id.json";
    assert_shape(path, &fixture(path), &bad_token.json().await.unwrap(), &[]);
    let (_, _, body) = org.call(Method::GET, "/sobjects/Nope/describe", None).await;
    let path = "errors/not_found_resource.json";
    assert_eq!(body, fixture(path), "the same words as Salesforce");
    let (_, _, body) = org.call(Method::GET, "/sobjects/Account/23foo", None).await;
    let path = "errors/not_found_external_id_field.json";
    assert_eq!(body, fixture(path), "the same words as Salesforce");
    let (_, _, body) = org
        .call(
            Method::POST,
            "/sobjects/Account",
            Some(json!({ "Name": "x", "foo": 1 })),
        )
        .await;
    let path = "errors/invalid_field_write.json";
    assert_shape(path, &fixture(path), &body, &[]);
    let (status, _, body) = org
        .call(
            Method::GET,
            &format!("/query?q={}", urlencode("SELECT Xyzzy FROM Xyzzy")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let path = "errors/invalid_type_query_400.json";
    assert_eq!(
        body,
        fixture(path),
        "the same message, caret and position as Salesforce"
    );
}

#[tokio::test]
async fn collections_results_have_salesforce_shapes() {
    let org = Org::start().await;
    let create = json!({ "allOrNone": false, "records": [
        { "attributes": { "type": "Invoice__c" }, "Code__c": "S-1", "Short__c": "a" } ] });
    let (_, _, created) = org
        .call(Method::POST, "/composite/sobjects", Some(create))
        .await;
    let path = "collections/create_success.json";
    assert_shape(path, &fixture(path), &created, &[]);
    let id = created[0]["id"].as_str().unwrap();
    let update =
        json!({ "records": [{ "attributes": { "type": "Invoice__c" }, "id": id, "Lines__c": 2 }] });
    let (_, _, updated) = org
        .call(Method::PATCH, "/composite/sobjects", Some(update))
        .await;
    let path = "collections/update_success.json";
    assert_shape(path, &fixture(path), &updated, &[]);
    // The fixtures upsert Contacts by Email; the emulator's Contact.Email is not an external
    // id, so the same call is made on the test schema's Invoice__c.Code__c.
    let upsert = json!({ "allOrNone": false, "records": [
        { "attributes": { "type": "Invoice__c" }, "Code__c": "S-1", "Lines__c": 3 },
        { "attributes": { "type": "Invoice__c" }, "Code__c": "S-2", "Short__c": "b" } ] });
    let (_, _, upserted) = org
        .call(
            Method::PATCH,
            "/composite/sobjects/Invoice__c/Code__c",
            Some(upsert),
        )
        .await;
    for path in [
        "collections/upsert_by_email_updated.json",
        "collections/upsert_by_email_created.json",
    ] {
        assert_shape(path, &fixture(path), &upserted, &[]);
    }
}

#[tokio::test]
async fn single_record_writes_have_salesforce_shapes() {
    let org = Org::start().await;
    let (status, _, created) = org
        .call(Method::POST, "/sobjects/Invoice__c", Some(invoice("W-1")))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = "rest/sobject_create_success.json";
    assert_shape(path, &fixture(path), &created, &[]);
    let (status, _, upserted) = org
        .call(
            Method::PATCH,
            "/sobjects/Invoice__c/Code__c/W-2",
            Some(json!({ "Short__c": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = "rest/upsert_created.json";
    assert_shape(
        path,
        &fixture(path),
        &upserted,
        &[(
            "$.created: extra",
            "API 46.0 and later add created; the fixture is older",
        )],
    );
}

#[tokio::test]
async fn oauth_answers_have_salesforce_shapes() {
    let org = Org::start().await;
    let login = password_login(&org.http, &org.base).await;
    let newer = [(
        "$.token_type: extra",
        "current Salesforce sends token_type; the 2010 fixture predates it",
    )];
    let path = "oauth/password_grant_success.json";
    assert_shape(path, &fixture(path), &login, &newer);
    let token = |form: Vec<(&'static str, &'static str)>| {
        let request = org
            .http
            .post(format!("{}/services/oauth2/token", org.base))
            .form(&form);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let refreshed = token(vec![
        ("grant_type", "refresh_token"),
        ("client_id", pgforce_emulator::DEFAULT_CLIENT_ID),
        ("refresh_token", pgforce_emulator::DEFAULT_REFRESH_TOKEN),
    ])
    .await;
    let path = "oauth/refresh_success.json";
    assert_shape(path, &fixture(path), &refreshed, &newer);
    let refused = token(vec![
        ("grant_type", "refresh_token"),
        ("client_id", "pgforce"),
        ("refresh_token", "old"),
    ])
    .await;
    let path = "oauth/refresh_invalid_grant.json";
    assert_eq!(refused, fixture(path), "the same words as Salesforce");
    let wrong = token(vec![
        ("grant_type", "password"),
        ("client_id", "pgforce"),
        ("client_secret", "pgforce"),
        ("username", pgforce_emulator::DEFAULT_USERNAME),
        ("password", "wrong"),
    ])
    .await;
    let path = "oauth/password_grant_invalid_grant.json";
    assert_shape(path, &fixture(path), &wrong, &[]);
}

#[tokio::test]
async fn limits_and_replication_answers_have_salesforce_shapes() {
    let org = Org::start().await;
    let limits = org.get("/limits").await;
    let expected = fixture("rest/limits.json");
    for (name, limit) in expected.as_object().unwrap() {
        let actual = &limits[name];
        assert!(
            actual["Max"].is_i64() && actual["Remaining"].is_i64(),
            "{name}: {actual} (Salesforce: {limit})"
        );
    }
    let kept = org.create("Invoice__c", invoice("R-1")).await;
    let gone = org.create("Invoice__c", invoice("R-2")).await;
    org.call(
        Method::DELETE,
        &format!("/sobjects/Invoice__c/{gone}"),
        None,
    )
    .await;
    let created = org
        .get(&format!("/sobjects/Invoice__c/{kept}?fields=CreatedDate"))
        .await;
    // A window from the start of the minute the records were written in.
    let start = format!(
        "{}00+00:00",
        &created["CreatedDate"].as_str().unwrap()[..17]
    );
    let window = format!(
        "?start={}&end={}",
        urlencode(&start),
        urlencode("2999-01-01T00:00:00+00:00")
    );
    let early = org
        .get(&format!("/sobjects/Invoice__c/updated/{window}"))
        .await;
    let path = "rest/get_updated.json";
    assert_shape(path, &fixture(path), &early, &[]);
    let deleted = org
        .get(&format!("/sobjects/Invoice__c/deleted/{window}"))
        .await;
    let path = "rest/get_deleted.json";
    assert_shape(path, &fixture(path), &deleted, &[]);
}

/// The element paths of an XML document, namespace prefixes stripped: `Envelope/Body/…`.
fn element_paths(xml: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..close];
        rest = &rest[close + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        let name = tag
            .trim_start_matches('/')
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        let local = name.rsplit(':').next().unwrap_or(name).to_owned();
        if tag.starts_with('/') {
            stack.pop();
        } else {
            stack.push(local);
            paths.insert(stack.join("/"));
            if tag.ends_with('/') {
                stack.pop();
            }
        }
    }
    paths
}

const SOAP_LOGIN: &str = r#"<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>USER</n1:username><n1:password>PASSWORD</n1:password></n1:login></env:Body></env:Envelope>"#;

#[tokio::test]
async fn soap_login_and_fault_have_salesforce_elements() {
    let org = Org::start().await;
    let login = |password: &str| {
        let body = SOAP_LOGIN
            .replace("USER", pgforce_emulator::DEFAULT_USERNAME)
            .replace("PASSWORD", password);
        let request = org
            .http
            .post(format!("{}/services/Soap/u/28.0", org.base))
            .header("Content-Type", "text/xml; charset=UTF-8")
            .header("SOAPAction", "login")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, xml) = login(pgforce_emulator::DEFAULT_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        element_paths(&xml),
        element_paths(&fixture_text("soap/login_response_partner_v28.xml"))
    );
    let (status, xml) = login("wrong").await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "SOAP faults come with HTTP 500"
    );
    assert_eq!(
        element_paths(&xml),
        element_paths(&fixture_text("soap/login_fault_invalid_login.xml"))
    );
}

#[test]
fn the_shape_check_catches_missing_extra_and_mistyped_values() {
    let expected = json!({ "a": 1, "b": "2024-01-01T00:00:00.000+0000",
                           "c": [{ "x": 1.0, "w": 1 }, { "x": null, "y": true, "w": 2 }] });
    let actual =
        json!({ "a": "1", "b": "2024-01-01T00:00:00Z", "c": [{ "x": 2, "z": 1 }], "d": null });
    let mut out = Vec::new();
    Shape::of(&expected).differences(&actual, "$", &mut out);
    assert_eq!(
        out,
        vec![
            "$.a: string where Salesforce sends integer",
            "$.b: string where Salesforce sends datetime",
            "$.c[].w: missing",
            "$.c[].x: integer where Salesforce sends float|null",
            "$.c[].z: extra",
            "$.d: extra",
        ]
    );
}
