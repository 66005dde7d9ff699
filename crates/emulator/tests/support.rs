//! Shared helpers for the emulator's integration tests: a running org, a logged-in HTTP
//! client, and small assertions on Salesforce-shaped bodies.

use std::time::Duration;

use pgforce_emulator::EmulatorConfig;
use pgforce_emulator::testing::TestOrg;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The API version tests speak.
pub const VERSION: &str = "62.0";

/// A schema file with a custom object and custom fields that exercise every rule.
pub const TEST_SCHEMA: &str = r#"{
  "objects": [
    { "name": "Invoice__c", "label": "Invoice", "fields": [
      { "name": "Name", "type": "string", "length": 80, "nameField": true },
      { "name": "Code__c", "type": "string", "length": 20, "externalId": true, "unique": true },
      { "name": "Ref__c", "type": "string", "length": 20, "externalId": true },
      { "name": "Account__c", "type": "reference", "referenceTo": ["Account"], "relationshipName": "Account__r" },
      { "name": "Amount__c", "type": "currency", "precision": 10, "scale": 2 },
      { "name": "Status__c", "type": "picklist", "picklistValues": ["Draft", "Sent", "Paid"],
        "restrictedPicklist": true, "defaultValue": "Draft" },
      { "name": "Due__c", "type": "date" },
      { "name": "Sent_At__c", "type": "datetime" },
      { "name": "Paid__c", "type": "boolean" },
      { "name": "Lines__c", "type": "int" },
      { "name": "Notes__c", "type": "textarea", "length": 1000 },
      { "name": "Short__c", "type": "string", "length": 5, "required": true }
    ] }
  ],
  "extend": { "Account": [ { "name": "External_Id__c", "type": "string", "length": 40,
                             "externalId": true, "unique": true } ] }
}"#;

/// An emulator with the test schema, and a client logged in over HTTPS.
pub struct Org {
    pub org: TestOrg,
    pub http: reqwest::Client,
    pub token: String,
    /// The base URL the token is for (the HTTPS one).
    pub base: String,
}

/// The emulator's configuration with the test schema.
pub fn config() -> EmulatorConfig {
    let schema =
        pgforce_emulator::Emulator::parse_schema_file(TEST_SCHEMA).expect("test schema parses");
    EmulatorConfig {
        schema_files: vec![schema],
        ..EmulatorConfig::default()
    }
}

/// An HTTP client that trusts the emulator's CA.
pub fn client_for(org: &TestOrg) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(org.ca_pem.as_bytes()).expect("CA PEM parses");
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client builds")
}

/// Logs in with the password grant and returns the token response.
pub async fn password_login(http: &reqwest::Client, base: &str) -> Value {
    let response = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", pgforce_emulator::DEFAULT_CLIENT_ID),
            ("client_secret", pgforce_emulator::DEFAULT_CLIENT_SECRET),
            ("username", pgforce_emulator::DEFAULT_USERNAME),
            ("password", pgforce_emulator::DEFAULT_PASSWORD),
        ])
        .send()
        .await
        .expect("token request is answered");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("token response is JSON")
}

impl Org {
    /// Starts an emulator with the test schema and logs in over HTTPS.
    pub async fn start() -> Self {
        Self::start_with(config()).await
    }

    /// Starts an emulator with a configuration and logs in over HTTPS.
    pub async fn start_with(config: EmulatorConfig) -> Self {
        let org = TestOrg::start_with(config).await;
        let http = client_for(&org);
        let login = password_login(&http, &org.https_url).await;
        let token = login["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        let base = login["instance_url"]
            .as_str()
            .expect("instance_url")
            .to_owned();
        Self {
            org,
            http,
            token,
            base,
        }
    }

    /// A data API URL: `path` is relative to `/services/data/vXX.X`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/services/data/v{VERSION}{path}", self.base)
    }

    /// Sends a data API request with the session; returns status, headers and JSON body
    /// (`Value::Null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call_url(method, &self.url(path), body).await
    }

    /// Like [`Org::call`] with a full URL.
    pub async fn call_url(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request is answered");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body is readable");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
        };
        (status, headers, json)
    }

    /// GET, expecting 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, _, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Runs a query (first page only), expecting 200.
    pub async fn query(&self, soql: &str) -> Value {
        self.get(&format!("/query?q={}", urlencode(soql))).await
    }

    /// Runs a queryAll (first page only), expecting 200.
    pub async fn query_all(&self, soql: &str) -> Value {
        self.get(&format!("/queryAll?q={}", urlencode(soql))).await
    }

    /// Creates a record, expecting 201; returns its Id.
    pub async fn create(&self, object: &str, fields: Value) -> String {
        let (status, _, body) = self
            .call(Method::POST, &format!("/sobjects/{object}"), Some(fields))
            .await;
        assert_eq!(status, StatusCode::CREATED, "create {object}: {body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// A control API URL.
    pub fn control(&self, path: &str) -> String {
        format!("{}/__emulator{path}", self.org.http_url)
    }

    /// Sends a control API request and returns the JSON body.
    pub async fn control_call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.org.control(method, path, body).await
    }

    /// Seeds records through the control API.
    pub async fn seed(&self, plan: Value) -> Value {
        self.control_call(Method::POST, "/seed", Some(plan)).await
    }
}

/// Percent-encodes a query string value.
pub fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The single error of a Salesforce error array: `(errorCode, message)`.
pub fn single_error(body: &Value) -> (String, String) {
    let errors = body
        .as_array()
        .unwrap_or_else(|| panic!("expected an error array, got {body}"));
    assert_eq!(errors.len(), 1, "one error expected: {body}");
    (
        errors[0]["errorCode"]
            .as_str()
            .expect("errorCode")
            .to_owned(),
        errors[0]["message"].as_str().expect("message").to_owned(),
    )
}

/// A minimal valid Invoice__c body.
pub fn invoice(code: &str) -> Value {
    json!({ "Name": format!("Invoice {code}"), "Code__c": code, "Short__c": "ok" })
}
