//! A running emulator and clients pointed at it.

use std::time::Duration;

use pgforce_emulator::testing::TestOrg;
use pgforce_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USERNAME, EmulatorConfig,
};
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{
    AllowedHosts, Client, ClientConfig, Credentials, RetryPolicy, SecretString,
};
use serde_json::{Value, json};

/// Custom fields the tests rely on.
pub const SCHEMA: &str = r#"{"extend": {"Account": [
  {"name": "External_Id__c", "type": "string", "length": 40, "externalId": true, "unique": true}]}}"#;

/// Starts an emulator with the test schema.
pub async fn org() -> TestOrg {
    org_with(EmulatorConfig::default()).await
}

/// Starts an emulator with the test schema on top of a configuration.
pub async fn org_with(config: EmulatorConfig) -> TestOrg {
    let schema = pgforce_emulator::Emulator::parse_schema_file(SCHEMA).expect("schema parses");
    TestOrg::start_with(EmulatorConfig {
        schema_files: vec![schema],
        ..config
    })
    .await
}

/// The password credentials of the emulator's administrator.
pub fn password_credentials() -> Credentials {
    Credentials::Password {
        client_id: DEFAULT_CLIENT_ID.to_owned(),
        client_secret: SecretString::from(DEFAULT_CLIENT_SECRET),
        username: DEFAULT_USERNAME.to_owned(),
        password: SecretString::from(DEFAULT_PASSWORD),
    }
}

/// A client configuration for an org over HTTPS, with fast retries for tests.
pub fn config(org: &TestOrg, credentials: Credentials) -> ClientConfig {
    let mut config = ClientConfig::new(org.https_url.clone(), credentials);
    config.allowed_hosts = loopback();
    config.extra_root_certificate_pem = Some(org.ca_pem.clone());
    config.retry = RetryPolicy {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(40),
        max_elapsed: Duration::from_secs(20),
    };
    config.request_timeout = Duration::from_secs(20);
    config
}

/// Salesforce's hosts and this machine's loopback names, on any port (the emulators of
/// these tests).
pub fn loopback() -> AllowedHosts {
    AllowedHosts::with_extra(&["localhost", "127.0.0.1"]).expect("loopback hosts parse")
}

/// A client logged in with the password flow.
pub fn client(org: &TestOrg) -> Client {
    Client::new(config(org, password_credentials())).expect("client builds")
}

/// A record body from a JSON object literal.
pub fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Sends a control API call to the emulator.
pub async fn control(
    org: &TestOrg,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    org.control(method, path, body).await
}

/// Seeds records through the control API.
pub async fn seed(org: &TestOrg, plan: Value) {
    control(org, reqwest::Method::POST, "/seed", Some(plan)).await;
}

/// Sets the emulator's faults.
pub async fn faults(org: &TestOrg, faults: Value) {
    control(org, reqwest::Method::PUT, "/faults", Some(faults)).await;
}

/// An Account body with an external id.
pub fn account(key: &str) -> Record {
    record(json!({ "Name": format!("Account {key}"), "External_Id__c": key }))
}

/// Appends one-shot fault steps to the emulator's fault script.
pub async fn script(org: &TestOrg, steps: Value) {
    control(
        org,
        reqwest::Method::POST,
        "/faults/script",
        Some(json!({ "steps": steps })),
    )
    .await;
}

/// The fault script steps not yet spent.
pub async fn script_left(org: &TestOrg) -> Vec<Value> {
    let body = control(org, reqwest::Method::GET, "/faults/script", None).await;
    body["steps"].as_array().cloned().unwrap_or_default()
}
