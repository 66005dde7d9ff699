//! Notifications: refused writes and a deleted field raise them once each (until
//! acknowledged), the API lists, filters and acknowledges them, and a webhook receives
//! each one signed with HMAC-SHA256 over its time and body, again after it failed to take it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgforce_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::run::{config_file, pgforce_ok, seeded_org, wait_for_count};
use crate::server::{READ_WRITE_ACCOUNTS, serving};

/// A request the webhook received: its headers (lower-cased names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A webhook receiver on a free port that refuses the first request (500) and takes the
/// others (204); returns its URL and what it received.
async fn webhook() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = Vec::new();
            let mut chunk = [0_u8; 4096];
            let request = loop {
                let Ok(n) = stream.read(&mut chunk).await else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buffer.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buffer).into_owned();
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let headers: Vec<(String, String)> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    break Some(Received {
                        headers,
                        body: body[..length].to_owned(),
                    });
                }
            };
            let Some(request) = request else { continue };
            let first = {
                let mut log = log.lock().unwrap();
                log.push(request);
                log.len() == 1
            };
            let status = if first {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            let answer =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (url, received)
}

async fn get(base: &str, path: &str, token: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Lists notifications until `check` holds (bounded).
async fn notifications_until(
    base: &str,
    path: &str,
    token: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, list) = get(base, path, token).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let results = list["results"].as_array().cloned().unwrap_or_default();
        if check(&results) {
            return results;
        }
        assert!(Instant::now() < deadline, "never {what}: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn hmac_sha256_hex(secret: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, body.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a delivery's `X-Pgforce-Signature: t=<unix seconds>,v1=<hex>` as a receiver
/// would: the tag of `"<t>.<body>"` under `secret`, and `t` within five minutes of now.
fn assert_signed(delivery: &Received, secret: &str) {
    let header = delivery.header("x-pgforce-signature");
    let (Some(t), Some(v1)) = (
        header.split(',').find_map(|part| part.strip_prefix("t=")),
        header.split(',').find_map(|part| part.strip_prefix("v1=")),
    ) else {
        panic!("no t= and v1= in the signature {header:?}");
    };
    let sent: u64 = t.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(sent) < 300, "signed at {sent}, now {now}");
    assert_eq!(
        v1,
        hmac_sha256_hex(secret, &format!("{t}.{}", delivery.body)),
        "{delivery:?}"
    );
}

#[tokio::test]
async fn refused_writes_and_a_deleted_field_notify_once_through_the_api_and_a_signed_webhook() {
    let org = seeded_org(5).await;
    let db = TestDatabase::create().await;
    org.control(
        Method::POST,
        "/schema/Account/fields",
        Some(serde_json::json!({ "name": "Tier__c", "type": "string", "length": 10 })),
    )
    .await;
    let (hook, received) = webhook().await;
    let accounts = READ_WRITE_ACCOUNTS.replace(r#""Industry"]"#, r#""Industry", "Tier__c"]"#);
    let mappings = format!("{accounts}\n[[webhook]]\nurl = \"{hook}\"\nsecret = \"s3cret\"\n");
    let config = config_file(&org, &db, &mappings);
    let path = config.to_str().unwrap();
    let (_daemon, base) = serving(path).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 5).await;
    let token = pgforce_ok(&[
        "token", "--config", path, "create", "--name", "ops", "--role", "operate",
    ])
    .await
    .trim()
    .to_owned();
    let (_, list) = get(&base, "/api/v3/connections", &token).await;
    let id = list["results"][0]["id"].as_str().unwrap().to_owned();
    let notifications = format!("/api/v3/connections/{id}/notifications");

    // Two refused inserts in a row: one write-errors notification until acknowledged.
    let pg = db.client().await;
    pg.batch_execute("insert into salesforce.account (industry) values ('Banking')")
        .await
        .unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce._trigger_log where state = 'FAILED'",
        1,
    )
    .await;
    pg.batch_execute("insert into salesforce.account (industry) values ('Mining')")
        .await
        .unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce._trigger_log where state = 'FAILED'",
        2,
    )
    .await;
    let found = notifications_until(
        &base,
        &notifications,
        &token,
        "a write-errors notification",
        |n| n.iter().any(|n| n["event_type"] == "write-errors"),
    )
    .await;
    assert_eq!(
        found
            .iter()
            .filter(|n| n["event_type"] == "write-errors")
            .count(),
        1,
        "{found:?}"
    );
    assert_eq!(found[0]["subject"], "connection main");

    // A mapped field deleted in Salesforce: schema-changed, naming the mapping and field.
    org.control(Method::DELETE, "/schema/Account/fields/Tier__c", None)
        .await;
    let found = notifications_until(
        &base,
        &format!("{notifications}?event_type=schema-changed"),
        &token,
        "schema-changed",
        |n| !n.is_empty(),
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["subject"], "mapping Account");
    assert!(
        found[0]["message"].as_str().unwrap().contains("Tier__c"),
        "{found:?}"
    );

    // Acknowledged, a new refusal notifies again.
    let response = reqwest::Client::new()
        .post(format!(
            "{base}{notifications}/acknowledge?event_type=write-errors"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (_, listed) = get(
        &base,
        &format!("{notifications}?event_type=write-errors"),
        &token,
    )
    .await;
    assert_eq!(listed["results"][0]["acknowledged"], true, "{listed}");
    let (status, problem) = get(&base, &format!("{notifications}?after=yesterday"), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["message"].as_str().unwrap().contains("after"),
        "{problem}"
    );

    // The webhook got every notification, signed, the first one again after its 500.
    let deadline = Instant::now() + Duration::from_secs(30);
    let deliveries = loop {
        let deliveries = received.lock().unwrap().clone();
        let types: Vec<String> = deliveries
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(&d.body).ok())
            .map(|b| b["event_type"].as_str().unwrap_or_default().to_owned())
            .collect();
        if types.iter().filter(|t| *t == "write-errors").count() >= 2
            && types.iter().any(|t| t == "schema-changed")
        {
            break deliveries;
        }
        assert!(Instant::now() < deadline, "webhook deliveries: {types:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for delivery in &deliveries {
        assert_signed(delivery, "s3cret");
        let body: Value = serde_json::from_str(&delivery.body).unwrap();
        assert_eq!(
            delivery.header("x-pgforce-event"),
            body["event_type"].as_str().unwrap()
        );
        assert_eq!(body["connection"], "main");
    }
    let first: Value = serde_json::from_str(&deliveries[0].body).unwrap();
    let again = deliveries[1..]
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(&d.body).ok())
        .any(|b| b["id"] == first["id"]);
    assert!(again, "the refused delivery was sent again");

    // The catalog's database goes away: nothing can be stored, the webhook hears directly.
    let admin = pgforce_store::testing::connect(&pgforce_store::testing::server_url()).await;
    admin
        .batch_execute(&format!("drop database \"{}\" with (force)", db.name))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let outage = loop {
        let told = received.lock().unwrap().iter().find_map(|d| {
            let body: Value = serde_json::from_str(&d.body).ok()?;
            (body["event_type"] == "postgres-unreachable").then(|| (d.clone(), body))
        });
        if let Some(told) = told {
            break told;
        }
        assert!(
            Instant::now() < deadline,
            "the webhook never heard of the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        outage.1["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{}",
        outage.1
    );
    assert_signed(&outage.0, "s3cret");
    let _ = std::fs::remove_file(config);
}
