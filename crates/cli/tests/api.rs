//! The management API on `pgforce run`: Heroku Connect's API v3 shapes for the
//! per-customer flow (read connections and mappings, watch states and counts, read
//! failed writes, pause, resume, reload, export, import, delete), every route checked
//! against every role and against missing, unknown, expired and revoked tokens; and
//! `pgforce token` keeping only hashes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use pgforce_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::run::{config_file, count, pgforce, pgforce_ok, seeded_org, wait_for_count};
use crate::server::{READ_WRITE_ACCOUNTS as ACCOUNTS, serving, serving_with};

/// A `pgforce run` holding a fresh secret key, over an org seeded with accounts, with a
/// `manage` token named `provisioning`: what tests of API-created connections start from.
pub struct Keyed {
    pub org: pgforce_emulator::testing::TestOrg,
    pub db: TestDatabase,
    pub config: std::path::PathBuf,
    pub key: String,
    pub daemon: tokio::process::Child,
    pub base: String,
    pub admin: String,
}

/// [`Keyed`], over an org seeded with `accounts` Accounts and a configuration declaring
/// no connection.
pub async fn keyed(accounts: u64) -> Keyed {
    let org = seeded_org(accounts).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, "");
    let path = config.to_str().unwrap();
    let key = pgforce_ok(&["key", "generate"]).await.trim().to_owned();
    let (daemon, base) = serving_with(path, &[("PGFORCE_SECRET_KEY", &key)]).await;
    let admin = token(path, "provisioning", "manage", &[]).await;
    Keyed {
        org,
        db,
        config,
        key,
        daemon,
        base,
        admin,
    }
}

/// Creates a token with `role` through the CLI and returns it.
pub async fn token(config: &str, name: &str, role: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "token", "--config", config, "create", "--name", name, "--role", role,
    ];
    args.extend_from_slice(extra);
    pgforce_ok(&args).await.trim().to_owned()
}

/// Calls the API at `base`; returns the status and the JSON answer (or its text).
pub async fn call(
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Maps Account (read-only, `Name`, polled every second) on connection `id` through the
/// API, as `admin`.
pub async fn add_account_mapping(base: &str, id: &impl std::fmt::Display, admin: &str) {
    let accounts = json!({"object_name": "Account", "config": {"access": "read_only", "sf_polling_seconds": 1, "fields": {"Name": {}}}});
    let (status, answer) = call(
        base,
        Method::POST,
        &format!("/api/v3/connections/{id}/mappings"),
        Some(admin),
        Some(&accounts),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

/// Calls `path` with `token` and no body.
async fn as_admin(base: &str, method: Method, path: &str, token: &str) -> (StatusCode, Value) {
    call(base, method, path, Some(token), None).await
}

/// Calls until `check` holds on the answer (bounded).
async fn until(
    base: &str,
    path: &str,
    token: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = call(base, Method::GET, path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        if check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never showed {what}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_per_customer_flow_works_through_the_api_with_heroku_connect_shapes() {
    let org = seeded_org(10).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNTS);
    let path = config.to_str().unwrap();
    let (_daemon, base) = serving(path).await;
    let admin = token(path, "automation", "manage", &[]).await;

    let (status, list) = as_admin(&base, Method::GET, "/api/v3/connections?app=main", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["count"], 1, "{list}");
    let connection = &list["results"][0];
    assert_eq!(connection["name"], "main");
    assert_eq!(connection["schema_name"], "salesforce");
    let id = connection["id"].as_str().unwrap().to_owned();
    assert_eq!(
        connection["detail_url"],
        format!("/api/v3/connections/{id}")
    );
    let (_, none) = as_admin(&base, Method::GET, "/api/v3/connections?app=other", &admin).await;
    assert_eq!(none["count"], 0, "{none}");

    // Watch it reach DATA_SYNCED with live counts.
    let detail = format!("/api/v3/connections/{id}?deep=true");
    let deep = until(&base, &detail, &admin, "Account synced", |c| {
        c["mappings"][0]["state"] == "DATA_SYNCED"
            && c["mappings"][0]["counts"]["count"] == 10
            && c["mappings"][0]["counts"]["sf"] == 10
    })
    .await;
    let mapping = &deep["mappings"][0];
    assert_eq!(mapping["object_name"], "Account");
    assert_eq!(mapping["access"], "read_write");
    assert_eq!(mapping["config"]["access"], "read_write");
    assert_eq!(
        mapping["sf_polling_seconds"],
        mapping["config"]["sf_polling_seconds"]
    );
    assert!(
        mapping["config"]["fields"].get("Name").is_some(),
        "{mapping}"
    );
    let mapping_id = mapping["id"].as_str().unwrap().to_owned();

    // A write Salesforce refuses shows in both errors lists with its trigger-log id.
    db.client()
        .await
        .batch_execute("insert into salesforce.account (industry) values ('Banking')")
        .await
        .unwrap();
    let errors = until(
        &base,
        &format!("/api/v3/connections/{id}/errors"),
        &admin,
        "the failed write",
        |e| e["count"] == 1,
    )
    .await;
    let failed = &errors["results"][0];
    assert_eq!(failed["table_name"], "account");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("REQUIRED_FIELD_MISSING"),
        "{failed}"
    );
    let log_id = count(
        &db,
        "select id::bigint from salesforce._trigger_log where state = 'FAILED'",
    )
    .await;
    assert_eq!(failed["id"], log_id);
    let (_, mapping_errors) = as_admin(
        &base,
        Method::GET,
        &format!("/api/v3/mappings/{mapping_id}/errors"),
        &admin,
    )
    .await;
    assert_eq!(mapping_errors["count"], 1, "{mapping_errors}");
    let (_, one) = as_admin(
        &base,
        Method::GET,
        &format!("/api/v3/mappings/{mapping_id}"),
        &admin,
    )
    .await;
    assert_eq!(one["counts"]["errors"], 1, "{one}");

    // A diagnosis: the org accepts the credentials, the fields exist, a refused write warns.
    let (status, started) = as_admin(
        &base,
        Method::POST,
        &format!("/api/v3/connections/{id}/validations"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let result_url = started["result_url"].as_str().unwrap().to_owned();
    let (status, diagnosis) = as_admin(&base, Method::GET, &result_url, &admin).await;
    assert_eq!(status, StatusCode::OK, "{diagnosis}");
    let rules = |checks: &Value, bucket: &str| -> Vec<String> {
        checks[bucket]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["rule_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        rules(&diagnosis, "passes").contains(&"MUST_LOG_IN".to_owned()),
        "{diagnosis}"
    );
    let account = &diagnosis["mappings"]["Account"];
    assert!(
        rules(account, "passes").contains(&"MAPPED_FIELDS_MUST_EXIST".to_owned()),
        "{account}"
    );
    assert_eq!(
        rules(account, "warnings"),
        ["SHOULD_HAVE_NO_FAILED_WRITES"],
        "{account}"
    );
    let (status, checks) = as_admin(
        &base,
        Method::GET,
        &format!("/api/v3/mappings/{mapping_id}/validations"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{checks}");
    assert_eq!(
        rules(&checks, "warnings"),
        ["SHOULD_HAVE_NO_FAILED_WRITES"],
        "{checks}"
    );

    // The operator fixes the row and sends the refused insert again: it goes through.
    db.client()
        .await
        .batch_execute("update salesforce.account set name = 'Fixed' where sfid is null")
        .await
        .unwrap();
    let retry = format!("/api/v3/connections/{id}/errors/{log_id}/actions/retry");
    let (status, answer) = as_admin(&base, Method::POST, &retry, &admin).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'Fixed' and sfid is not null",
        1,
    )
    .await;
    let errors_path = format!("/api/v3/connections/{id}/errors");
    until(&base, &errors_path, &admin, "no failed write", |e| {
        e["count"] == 0
    })
    .await;
    let (status, _) = as_admin(&base, Method::POST, &retry, &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a write no longer FAILED");

    // Another refused insert is given up: IGNORED, saying who decided.
    db.client()
        .await
        .batch_execute("insert into salesforce.account (industry) values ('Mining')")
        .await
        .unwrap();
    let errors = until(
        &base,
        &errors_path,
        &admin,
        "the second failed write",
        |e| e["count"] == 1,
    )
    .await;
    let second = errors["results"][0]["id"].as_i64().unwrap();
    let ignore = format!("/api/v3/connections/{id}/errors/{second}/actions/ignore");
    let (status, _) = as_admin(&base, Method::POST, &ignore, &admin).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from salesforce._trigger_log where id = {second} and state = 'IGNORED' and sf_message like 'pgforce: ignored by automation after: REQUIRED_FIELD_MISSING%'")
        )
        .await,
        1
    );

    // The object's fields, as Salesforce describes them now.
    let (status, account) = as_admin(
        &base,
        Method::GET,
        &format!("/api/v3/connections/{id}/schemas/Account"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    let name = account["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Name")
        .unwrap();
    assert_eq!(
        (&name["type"], &name["required"]),
        (&json!("string"), &json!(true)),
        "{name}"
    );
    let (status, unknown) = as_admin(
        &base,
        Method::GET,
        &format!("/api/v3/connections/{id}/schemas/NoSuch__c"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");

    // Pause, resume and restart the connection.
    for (action, paused) in [("pause", true), ("resume", false), ("restart", false)] {
        let path = format!("/api/v3/connections/{id}/actions/{action}");
        let (status, _) = as_admin(&base, Method::POST, &path, &admin).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{action}");
        let (_, now) = as_admin(
            &base,
            Method::GET,
            &format!("/api/v3/connections/{id}"),
            &admin,
        )
        .await;
        assert_eq!(now["paused"], paused, "after {action}: {now}");
    }

    // Reload: rows changed behind pgforce's back come back as Salesforce has them.
    db.client()
        .await
        .batch_execute("set xmlbinary = 'hex'; update salesforce.account set name = 'damaged' where sfid is not null")
        .await
        .unwrap();
    let (status, _) = as_admin(
        &base,
        Method::POST,
        &format!("/api/v3/mappings/{mapping_id}/actions/reload"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'damaged'",
        0,
    )
    .await;

    // Export, then import the same document back: same mappings.
    let (status, document) = as_admin(
        &base,
        Method::GET,
        &format!("/api/v3/connections/{id}/actions/export"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        document["mappings"][0]["object_name"], "Account",
        "{document}"
    );
    let (status, imported) = call(
        &base,
        Method::POST,
        &format!("/api/v3/connections/{id}/actions/import"),
        Some(&admin),
        Some(&document),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{imported}");
    let (status, problem) = call(
        &base,
        Method::POST,
        &format!("/api/v3/connections/{id}/actions/import"),
        Some(&admin),
        Some(&json!({"mappings": "no"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["id"], "invalid_params");

    // Delete the mapping: 204, then it is gone.
    let (status, _) = as_admin(
        &base,
        Method::DELETE,
        &format!("/api/v3/mappings/{mapping_id}"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = as_admin(
        &base,
        Method::GET,
        &format!("/api/v3/mappings/{mapping_id}"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gone["id"], "not_found");

    // The audit trail names the token, the action, the target, before and after.
    let (status, trail) = as_admin(&base, Method::GET, "/api/v3/audit", &admin).await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let actions: Vec<(&str, &str)> = trail["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["token"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("automation", "mapping.delete"),
            ("automation", "connection.import"),
            ("automation", "mapping.reload"),
            ("automation", "connection.restart"),
            ("automation", "connection.resume"),
            ("automation", "connection.pause"),
            ("automation", "write.ignore"),
            ("automation", "write.retry"),
            ("cli", "token.create"),
        ],
        "{trail}"
    );
    let pause = &trail["results"][5];
    assert_eq!(pause["target"], "connection main");
    assert_eq!(
        (&pause["before"]["paused"], &pause["after"]["paused"]),
        (&json!(false), &json!(true)),
        "{pause}"
    );
    assert_eq!(trail["results"][0]["before"]["object_name"], "Account");
    assert_eq!(trail["results"][0]["after"], Value::Null);
    let (status, _) = as_admin(&base, Method::GET, "/api/v3/connections/nine", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A mapping created through the API is checked against the org, then synced.
    let contacts = json!({"object_name": "Contact", "config": {
        "access": "read_only", "sf_polling_seconds": 1,
        "fields": {"LastName": {}, "Email": {}}}});
    let (status, created) = call(
        &base,
        Method::POST,
        &format!("/api/v3/connections/{id}/mappings"),
        Some(&admin),
        Some(&contacts),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (&created["object_name"], &created["access"]),
        (&json!("Contact"), &json!("read_only"))
    );
    wait_for_count(&db, "select count(*) from information_schema.tables where table_schema = 'salesforce' and table_name = 'contact'", 1).await;
    let wrong = json!({"object_name": "Contact", "config": {"access": "read_only", "fields": {"Nope__c": {}}}});
    let (status, problem) = call(
        &base,
        Method::POST,
        &format!("/api/v3/connections/{id}/mappings"),
        Some(&admin),
        Some(&wrong),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["message"].as_str().unwrap().contains("Nope__c"),
        "{problem}"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn every_route_answers_only_tokens_whose_role_includes_it() {
    let org = seeded_org(3).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNTS);
    let path = config.to_str().unwrap();
    let (_daemon, base) = serving(path).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 3).await;
    let mut tokens = Vec::new();
    for role in ["view", "operate", "deploy", "manage"] {
        tokens.push((role, token(path, &format!("{role}-token"), role, &[]).await));
    }
    let expired = token(path, "expired", "manage", &["--expires-days", "0"]).await;
    let revoked = token(path, "revoked", "manage", &[]).await;
    pgforce_ok(&["token", "--config", path, "revoke", "revoked"]).await;

    let manage = &tokens[3].1;
    let (_, list) = call(
        &base,
        Method::GET,
        "/api/v3/connections?deep=true",
        Some(manage),
        None,
    )
    .await;
    let id = list["results"][0]["id"].as_str().unwrap().to_owned();
    let mapping = list["results"][0]["mappings"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, document) = call(
        &base,
        Method::GET,
        &format!("/api/v3/connections/{id}/actions/export"),
        Some(manage),
        None,
    )
    .await;

    let contacts = json!({"object_name": "Contact", "config": {"access": "read_only", "fields": {"LastName": {}}}});
    let new_connection = json!({"name": "third", "login_url": "http://127.0.0.1:9", "auth": "password",
        "username": "u", "password": "p", "client_id": "c", "client_secret": "s"});
    // Every route, with the weakest role that may call it. Destructive ones come last.
    let c = format!("/api/v3/connections/{id}");
    let m = format!("/api/v3/mappings/{mapping}");
    let routes: Vec<(Method, String, &str, Option<&Value>)> = vec![
        (Method::GET, "/api/v3/connections".to_owned(), "view", None),
        (Method::GET, c.clone(), "view", None),
        (Method::GET, format!("{c}/mappings"), "view", None),
        (Method::GET, format!("{c}/errors"), "view", None),
        (Method::GET, format!("{c}/actions/export"), "view", None),
        (Method::GET, m.clone(), "view", None),
        (Method::GET, format!("{m}/errors"), "view", None),
        (Method::GET, format!("{c}/schemas/Account"), "view", None),
        (Method::POST, format!("{c}/validations"), "view", None),
        (Method::GET, format!("{c}/validations/999999"), "view", None),
        (Method::GET, format!("{m}/validations"), "view", None),
        (Method::GET, format!("{c}/notifications"), "view", None),
        (
            Method::POST,
            format!("{c}/notifications/acknowledge"),
            "operate",
            None,
        ),
        (
            Method::POST,
            "/api/v3/users/me/apps/main/auth".to_owned(),
            "view",
            None,
        ),
        (Method::POST, format!("{c}/actions/pause"), "operate", None),
        (Method::POST, format!("{c}/actions/resume"), "operate", None),
        (
            Method::POST,
            format!("{c}/actions/restart"),
            "operate",
            None,
        ),
        // No such failed write: allowed roles get 404, after the role check.
        (
            Method::POST,
            format!("{c}/errors/999999/actions/retry"),
            "operate",
            None,
        ),
        (
            Method::POST,
            format!("{c}/errors/999999/actions/ignore"),
            "operate",
            None,
        ),
        (Method::POST, format!("{m}/actions/reload"), "operate", None),
        (
            Method::POST,
            format!("{c}/actions/import"),
            "deploy",
            Some(&document),
        ),
        (
            Method::POST,
            format!("{c}/mappings"),
            "deploy",
            Some(&contacts),
        ),
        (Method::GET, "/api/v3/audit".to_owned(), "manage", None),
        // This daemon has no secret key: allowed roles get 400, after the role check.
        (
            Method::POST,
            "/api/v3/connections".to_owned(),
            "manage",
            Some(&new_connection),
        ),
        // A connection declared in a file: allowed roles get 400, after the role check.
        (Method::PATCH, c.clone(), "manage", Some(&new_connection)),
        (Method::POST, format!("{c}/authorize_url"), "manage", None),
        (Method::DELETE, m.clone(), "deploy", None),
    ];
    let rank = |role: &str| {
        ["view", "operate", "deploy", "manage"]
            .iter()
            .position(|r| *r == role)
            .unwrap()
    };
    for (method, path, needed, body) in &routes {
        for presented in [
            None,
            Some("pgf_not-a-token"),
            Some(expired.as_str()),
            Some(revoked.as_str()),
        ] {
            let (status, answer) = call(&base, method.clone(), path, presented, *body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {presented:?}: {answer}"
            );
            assert_eq!(answer["id"], "unauthorized");
        }
        for (role, token) in &tokens {
            let (status, answer) = call(&base, method.clone(), path, Some(token), *body).await;
            if rank(role) < rank(needed) {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} as {role}: {answer}"
                );
                assert!(
                    answer["message"].as_str().unwrap().contains(needed),
                    "{answer}"
                );
            } else {
                assert!(
                    status.is_success()
                        || (status == StatusCode::NOT_FOUND
                            && (*method == Method::DELETE || path.contains("/999999")))
                        || (status == StatusCode::BAD_REQUEST
                            && (path == "/api/v3/connections"
                                || *method == Method::PATCH
                                || path.ends_with("/authorize_url"))),
                    "{method} {path} as {role}: {status} {answer}"
                );
            }
        }
    }
    // Health and metrics stay open to probes and scrapers.
    for open in ["/healthz", "/readyz", "/metrics"] {
        let (status, _) = call(&base, Method::GET, open, None, None).await;
        assert_eq!(status, StatusCode::OK, "{open}");
    }
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn tokens_are_printed_once_kept_as_hashes_listed_without_secrets_and_refused_when_unclear() {
    let org = seeded_org(1).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNTS);
    let path = config.to_str().unwrap();
    let secret = token(path, "ci", "operate", &["--expires-days", "30"]).await;
    assert!(secret.starts_with("pgf_") && secret.len() > 40, "{secret}");
    let pg = db.client().await;
    let (hashed, in_clear): (i64, i64) = pg
        .query_one(
            "select count(*) filter (where token_sha256 = sha256(convert_to($1, 'UTF8'))),
                    count(*) filter (where t::text like '%' || $1 || '%')
             from pgforce.api_tokens t",
            &[&secret],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(
        (hashed, in_clear),
        (1, 0),
        "only the token's SHA-256 is stored"
    );
    let listed = pgforce_ok(&["token", "--config", path, "list"]).await;
    assert!(
        listed.contains("ci") && listed.contains("operate"),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "{listed}");

    for (args, expected) in [
        (
            vec!["create", "--name", "ci", "--role", "view"],
            "an API token named ci exists already",
        ),
        (
            vec!["create", "--name", "x", "--role", "admin"],
            "unknown role \"admin\"",
        ),
        (vec!["revoke", "nobody"], "no live API token named nobody"),
    ] {
        let mut all = vec!["token", "--config", path];
        all.extend(args);
        let output = pgforce(&all).stdout(Stdio::piped()).output().await.unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    let _ = std::fs::remove_file(config);
}

/// Runs `pgforce args` with `PGFORCE_SECRET_KEY` set to `key`.
pub async fn with_key(args: &[&str], key: &str) -> std::process::Output {
    pgforce(args)
        .env("PGFORCE_SECRET_KEY", key)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_connection_created_through_the_api_keeps_its_secrets_sealed_and_runs_wherever_the_key_is()
 {
    let Keyed {
        org,
        db,
        config,
        key,
        daemon,
        base,
        admin,
    } = keyed(4).await;
    let path = config.to_str().unwrap();
    let password = pgforce_emulator::DEFAULT_PASSWORD;
    let mut second = json!({
        "name": "second", "schema_name": "second", "login_url": org.http_url,
        "auth": "password", "username": "admin@example.com", "password": "wrong",
        "client_id": "pgforce", "client_secret": "pgforce"});

    // Refused credentials register nothing.
    let (status, problem) = call(
        &base,
        Method::POST,
        "/api/v3/connections",
        Some(&admin),
        Some(&second),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("refused the credentials"),
        "{problem}"
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.connections where name = 'second'"
        )
        .await,
        0
    );

    second["password"] = json!(password);
    let (status, created) = call(
        &base,
        Method::POST,
        "/api/v3/connections",
        Some(&admin),
        Some(&second),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (&created["name"], &created["schema_name"]),
        (&json!("second"), &json!("second"))
    );
    assert!(
        !created.to_string().contains(password),
        "no secret in the answer: {created}"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let pg = db.client().await;
    let (sealed, in_clear): (bool, bool) = pg
        .query_one(
            "select secrets is not null and secrets_key is not null,
                    position(convert_to($1, 'UTF8') in secrets) > 0
                        or settings ?| array['password', 'client_secret', 'refresh_token']
             from pgforce.connections where name = 'second'",
            &[&password],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(sealed && !in_clear, "secrets kept sealed, never in clear");

    // Its credentials can change through the API (checked first); its name and schema,
    // and connections declared in a file, cannot.
    let patch = |body: Value, target: String| {
        let (base, admin) = (base.clone(), admin.clone());
        async move {
            let response = reqwest::Client::new()
                .patch(format!("{base}/api/v3/connections/{target}"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                response.status(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, problem) = patch(json!({"password": "wrong"}), id.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("refused the credentials"),
        "{problem}"
    );
    let (status, problem) = patch(json!({"schema_name": "other"}), id.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("schema_name cannot change from"),
        "{problem}"
    );
    let (_, connections) = call(
        &base,
        Method::GET,
        "/api/v3/connections?app=main",
        Some(&admin),
        None,
    )
    .await;
    let main_id = connections["results"][0]["id"].as_str().unwrap().to_owned();
    let (status, problem) = patch(json!({"api_version": "61.0"}), main_id).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("configuration file"),
        "{problem}"
    );
    // Heroku Connect's connect:db:set sends db_key and schema_name: their current values pass.
    let (status, same) = patch(
        json!({"db_key": "DATABASE_URL", "schema_name": "second"}),
        id.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    let (status, changed) = patch(
        json!({"api_version": "61.0", "password": password}),
        id.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["sf_info"]["api_version"], "61.0", "{changed}");

    // A mapping on it syncs.
    add_account_mapping(&base, &id, &admin).await;
    wait_for_count(&db, "select count(*) from second.account", 4).await;
    crate::run::stop(daemon).await;

    // Another process runs it with the key (a reload here), and not without it.
    let reload = [
        "reload",
        "--config",
        path,
        "--connection",
        "second",
        "--now",
        "Account",
    ];
    let output = pgforce(&reload).output().await.unwrap();
    assert!(!output.status.success(), "no key, no credentials");
    let output = with_key(&reload, &key).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Rotation: the new key opens them, the old one no longer does.
    let new_key = pgforce_ok(&["key", "generate"]).await.trim().to_owned();
    let new_key_file = std::env::temp_dir().join(format!("{}.key", db.name));
    std::fs::write(&new_key_file, &new_key).unwrap();
    let output = with_key(
        &[
            "key",
            "rotate",
            "--config",
            path,
            "--new-key-file",
            new_key_file.to_str().unwrap(),
        ],
        &key,
    )
    .await;
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("secrets of 1 connection(s) sealed"),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !with_key(&reload, &key).await.status.success(),
        "the old key opens nothing"
    );
    let output = with_key(&reload, &new_key).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_file(new_key_file);
    let _ = std::fs::remove_file(config);
}

/// Plays the person, in a browser of their own: opens pgforce's start link `redirect`,
/// answers `decision` on Salesforce's consent page, follows Salesforce back to pgforce's
/// callback; returns the callback's status and page (or the start link's, if it refused).
async fn consent(redirect: &str, decision: &str) -> (StatusCode, String) {
    let answer = crate::oauth::Browser::new()
        .consent(redirect, decision)
        .await;
    (answer.status, answer.text)
}

#[tokio::test]
async fn a_connection_a_person_consents_to_is_created_and_renewed_through_the_web_server_flow() {
    let Keyed {
        org,
        db,
        config,
        key: _,
        daemon: _daemon,
        base,
        admin,
    } = keyed(6).await;
    let consented = json!({
        "name": "consented", "schema_name": "consented", "login_url": org.http_url,
        "auth": "refresh_token", "client_id": "pgforce", "client_secret": "pgforce"});

    // Denied: nothing is created, and the page says why.
    let (status, started) = call(
        &base,
        Method::POST,
        "/api/v3/connections",
        Some(&admin),
        Some(&consented),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let redirect = started["redirect"].as_str().unwrap().to_owned();
    assert!(
        redirect.starts_with(&format!("{base}/oauth/start/")),
        "{redirect}"
    );
    let (status, page) = consent(&redirect, "deny").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("access_denied"), "{page}");
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.connections where name = 'consented'"
        )
        .await,
        0
    );

    // Allowed: the connection exists with a refresh token, sealed, and syncs.
    let (_, started) = call(
        &base,
        Method::POST,
        "/api/v3/connections",
        Some(&admin),
        Some(&consented),
    )
    .await;
    let (status, page) = consent(started["redirect"].as_str().unwrap(), "allow").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("is authorized"), "{page}");
    let (_, list) = call(
        &base,
        Method::GET,
        "/api/v3/connections?app=consented",
        Some(&admin),
        None,
    )
    .await;
    let id = list["results"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{list}"))
        .to_owned();
    assert_eq!(
        count(&db, "select count(*) from pgforce.connections where name = 'consented' and secrets is not null and settings ->> 'auth' = 'refresh_token'").await,
        1
    );
    add_account_mapping(&base, &id, &admin).await;
    wait_for_count(&db, "select count(*) from consented.account", 6).await;

    // Renewed later (say after the token was revoked): a new consent, the same connection.
    let authorize_url = format!("/api/v3/connections/{id}/authorize_url");
    let (status, sandbox) = call(
        &base,
        Method::POST,
        &authorize_url,
        Some(&admin),
        Some(&json!({"environment": "sandbox"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sandbox}");
    let opened = crate::oauth::Browser::new()
        .open_start(sandbox["redirect"].as_str().unwrap())
        .await;
    assert!(
        opened.location.as_deref().is_some_and(
            |l| l.starts_with("https://test.salesforce.com/services/oauth2/authorize?")
        ),
        "{sandbox}: {:?}",
        opened.location
    );
    let (status, problem) = call(
        &base,
        Method::POST,
        &authorize_url,
        Some(&admin),
        Some(&json!({"environment": "moon"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, renewal) = call(
        &base,
        Method::POST,
        &authorize_url,
        Some(&admin),
        Some(&json!({"login_url": org.http_url})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewal}");
    let (status, page) = consent(renewal["redirect"].as_str().unwrap(), "allow").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, used) = consent(renewal["redirect"].as_str().unwrap(), "allow").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a consent's link is used once: {used}"
    );
    assert_eq!(
        // Four consents started (denied, allowed, a sandbox one left, renewal), two completed.
        count(&db, "select count(*) filter (where action = 'connection.authorize') * 10 + count(*) filter (where action = 'connection.authorized') from pgforce.audit_log").await,
        42
    );
    let _ = std::fs::remove_file(config);
}
