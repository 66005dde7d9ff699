//! The admin surface answers by id: a route reads what it returns and nothing else, and the
//! Salesforce calls a token's views cause are kept and budgeted.

use std::time::Duration;

use pgforce_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::api::{call, token};
use crate::run::{config_file, seeded_org, wait_for_count};
use crate::server::serving;

/// Account and Contact, read-only, polled every second.
const ACCOUNTS_AND_CONTACTS: &str = r#"
[[connection.mapping]]
object = "Account"
access = "read_only"
fields = ["Name"]
polling_seconds = 1

[[connection.mapping]]
object = "Contact"
access = "read_only"
fields = ["LastName"]
polling_seconds = 1
"#;

/// Calls the API, failing the test when no answer comes within ten seconds.
async fn prompt_call(base: &str, method: Method, path: &str, token: &str) -> (StatusCode, Value) {
    tokio::time::timeout(
        Duration::from_secs(10),
        call(base, method, path, Some(token), None),
    )
    .await
    .unwrap_or_else(|_| panic!("{path} did not answer within 10 s"))
}

/// The id of the mapping of `object` in the API's deep view of the only connection.
fn mapping_id(deep: &Value, object: &str) -> String {
    deep["results"][0]["mappings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["object_name"] == object)
        .and_then(|m| m["id"].as_str())
        .unwrap_or_else(|| panic!("no {object} mapping in {deep}"))
        .to_owned()
}

#[tokio::test]
async fn routes_by_id_read_only_what_they_answer_while_another_table_is_locked() {
    let org = seeded_org(5).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNTS_AND_CONTACTS);
    let path = config.to_str().unwrap();
    let (_daemon, base) = serving(path).await;
    let admin = token(path, "automation", "manage", &[]).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 5).await;
    let (status, deep) =
        prompt_call(&base, Method::GET, "/api/v3/connections?deep=true", &admin).await;
    assert_eq!(status, StatusCode::OK, "{deep}");
    let connection = deep["results"][0]["id"].as_str().unwrap().to_owned();
    let account = mapping_id(&deep, "Account");

    // Hold Contact's table locked, as a long migration of the app would: nothing may wait
    // on it but what shows Contact.
    let mut locker = db.client().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("lock table salesforce.contact in access exclusive mode")
        .await
        .unwrap();

    let (status, mapping) = prompt_call(
        &base,
        Method::GET,
        &format!("/api/v3/mappings/{account}"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mapping}");
    assert_eq!(mapping["counts"]["count"], 5, "{mapping}");
    for action in ["pause", "resume", "restart"] {
        let (status, answer) = prompt_call(
            &base,
            Method::POST,
            &format!("/api/v3/connections/{connection}/actions/{action}"),
            &admin,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{action}: {answer}");
    }
    let (status, shallow) = prompt_call(
        &base,
        Method::GET,
        &format!("/api/v3/connections/{connection}"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shallow}");
    assert_eq!(shallow["name"], "main");
    lock.rollback().await.unwrap();
}

#[tokio::test]
async fn a_token_spends_at_most_its_hourly_salesforce_calls_and_kept_answers_cost_none() {
    let org = seeded_org(3).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNTS_AND_CONTACTS);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[server]\nsalesforce_calls_per_token_hour = 2\n");
    std::fs::write(&config, text).unwrap();
    let path = config.to_str().unwrap();
    let (_daemon, base) = serving(path).await;
    let viewer = token(path, "looker", "view", &[]).await;
    let other = token(path, "other", "view", &[]).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 3).await;
    let (status, list) = prompt_call(&base, Method::GET, "/api/v3/connections", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let connection = list["results"][0]["id"].as_str().unwrap().to_owned();
    let schema = |object: &str| format!("/api/v3/connections/{connection}/schemas/{object}");

    // Two describes spend the looker's two calls; a third object is refused, by name.
    for object in ["Account", "Contact"] {
        let (status, answer) = prompt_call(&base, Method::GET, &schema(object), &viewer).await;
        assert_eq!(status, StatusCode::OK, "{object}: {answer}");
        assert_eq!(answer["name"], object);
    }
    let (status, refused) = prompt_call(&base, Method::GET, &schema("Lead"), &viewer).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert_eq!(refused["id"], "rate_limited");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("Salesforce calls for the hour")),
        "{refused}"
    );
    // What is kept costs nothing: the looker still sees Account's describe.
    let (status, kept) = prompt_call(&base, Method::GET, &schema("Account"), &viewer).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    // Another token has its own budget.
    let (status, lead) = prompt_call(&base, Method::GET, &schema("Lead"), &other).await;
    assert_eq!(status, StatusCode::OK, "{lead}");

    // Past its budget, the looker's deep view still answers, without new Salesforce counts.
    let (status, deep) =
        prompt_call(&base, Method::GET, "/api/v3/connections?deep=true", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{deep}");
    let mappings = deep["results"][0]["mappings"].as_array().unwrap();
    assert_eq!(mappings.len(), 2, "{deep}");
    assert!(
        mappings.iter().all(|m| m["counts"]["sf"].is_null()),
        "no count was asked of Salesforce for a spent token: {deep}"
    );
}
