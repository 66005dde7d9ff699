//! Secrets cannot be sent elsewhere. Passwords, client secrets, refresh tokens, signed
//! assertions and access tokens go only to Salesforce's hosts or those the configuration
//! file's `[security] allowed_login_hosts` lists, whoever asks (a manage token, a
//! configuration file); the API takes keys and certificates as content, never as server
//! paths; a name that exists is a conflict, never a replacement; reserved schemas and
//! malformed API versions are refused, naming the setting. A local listener plays the
//! host that must hear nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pgforce_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::api::{Keyed, add_account_mapping, call, keyed, token};
use crate::run::{config_file, count, pgforce, seeded_org, wait_for_count};
use crate::server::{READ_WRITE_ACCOUNTS, serving};

/// What the listener answers: a page of an internal service no error may repeat.
const INTERNAL_PAGE: &str = "<html><title>internal-admin-console</title></html>";

/// The connected app's private key the tests sign JWT assertions with.
const KEY_PEM: &str = include_str!("../../salesforce/tests/keys/jwt_test_key.pem");
const KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../salesforce/tests/keys/jwt_test_key.pem"
);

/// A listener on loopback that no configuration allows: it counts the connections it
/// gets and answers each with [`INTERNAL_PAGE`].
struct Eavesdropper {
    address: String,
    heard: Arc<AtomicUsize>,
}

impl Eavesdropper {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let heard = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&heard);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = [0_u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let answer = format!(
                        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{INTERNAL_PAGE}",
                        INTERNAL_PAGE.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self { address, heard }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn heard(&self) -> usize {
        self.heard.load(Ordering::SeqCst)
    }
}

/// Password credentials of the org at `login_url` for a connection `name` on schema `name`.
fn password_connection(name: &str, login_url: &str) -> Value {
    json!({
        "name": name, "schema_name": name, "login_url": login_url, "auth": "password",
        "username": "admin@example.com", "password": pgforce_emulator::DEFAULT_PASSWORD,
        "client_id": "pgforce", "client_secret": "pgforce"})
}

/// Asserts a 400 whose message names `setting` and contains every one of `said`.
fn assert_refused(answer: &(StatusCode, Value), setting: &str, said: &[&str]) {
    let (status, problem) = answer;
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{setting}: {problem}");
    let message = problem["message"].as_str().unwrap_or_default();
    assert!(message.contains(setting), "names {setting}: {problem}");
    for text in said {
        assert!(message.contains(text), "says {text:?}: {problem}");
    }
    assert!(
        !message.contains("internal-admin-console"),
        "never a foreign answer's body: {problem}"
    );
}

#[tokio::test]
async fn no_api_call_makes_pgforce_send_credentials_to_a_host_off_salesforce() {
    let Keyed {
        org,
        db,
        config,
        key: _,
        daemon: _daemon,
        base,
        admin,
    } = keyed(2).await;
    let listener = Eavesdropper::start().await;
    let families = ["*.my.salesforce.com", "allowed_login_hosts"];
    let connections = "/api/v3/connections";

    let second = password_connection("second", &org.http_url);
    let (status, created) = call(
        &base,
        Method::POST,
        connections,
        Some(&admin),
        Some(&second),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let this = format!("{connections}/{id}");

    // A manage token re-pointing the connection at the listener.
    let patch = json!({"login_url": listener.url()});
    let answer = call(&base, Method::PATCH, &this, Some(&admin), Some(&patch)).await;
    assert_refused(&answer, "login_url", &families);
    // Creating one there, or with its Pub/Sub API there, or asking for a consent there.
    let third = password_connection("third", &listener.url());
    let answer = call(&base, Method::POST, connections, Some(&admin), Some(&third)).await;
    assert_refused(&answer, "login_url", &families);
    let mut fourth = password_connection("fourth", &org.http_url);
    fourth["pubsub_endpoint"] = json!(listener.address);
    let answer = call(
        &base,
        Method::POST,
        connections,
        Some(&admin),
        Some(&fourth),
    )
    .await;
    assert_refused(&answer, "pubsub_endpoint", &families);
    let consent = json!({"name": "fifth", "login_url": listener.url(), "auth": "refresh_token",
        "client_id": "pgforce", "client_secret": "pgforce"});
    let answer = call(
        &base,
        Method::POST,
        connections,
        Some(&admin),
        Some(&consent),
    )
    .await;
    assert_refused(&answer, "login_url", &families);
    let renewal = json!({"login_url": listener.url()});
    let answer = call(
        &base,
        Method::POST,
        &format!("{this}/authorize_url"),
        Some(&admin),
        Some(&renewal),
    )
    .await;
    assert_refused(&answer, "login_url", &families);

    assert_eq!(listener.heard(), 0, "the listener heard nothing");
    let elsewhere = format!(
        "select (select count(*) from pgforce.connections where settings ->> 'login_url' <> '{}')
              + (select count(*) from pgforce.authorizations)",
        org.http_url
    );
    assert_eq!(
        count(&db, &elsewhere).await,
        0,
        "nothing kept pointing elsewhere"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn the_api_takes_keys_and_certificates_as_content_never_as_server_paths() {
    let Keyed {
        org,
        db,
        config,
        key: _,
        daemon: _daemon,
        base,
        admin,
    } = keyed(3).await;
    let connections = "/api/v3/connections";
    let jwt = |name: &str| {
        json!({"name": name, "schema_name": name, "login_url": org.http_url, "auth": "jwt",
            "username": "admin@example.com", "client_id": "pgforce"})
    };

    // The operator's key file, or a device that never ends: refused before it is read.
    let mut by_path = jwt("by_path");
    by_path["private_key_file"] = json!(KEY_FILE);
    let answer = call(
        &base,
        Method::POST,
        connections,
        Some(&admin),
        Some(&by_path),
    )
    .await;
    assert_refused(
        &answer,
        "private_key_file",
        &["send the PEM text", "private_key"],
    );
    let mut endless = jwt("endless");
    endless["private_key"] = json!(KEY_PEM);
    endless["ca_file"] = json!("/dev/zero");
    let answer = call(
        &base,
        Method::POST,
        connections,
        Some(&admin),
        Some(&endless),
    )
    .await;
    assert_refused(&answer, "ca_file", &["ca_certificate"]);
    let mut missing = jwt("missing");
    missing["ca_file"] = json!("/nonexistent/ca.pem");
    let (_, problem) = call(
        &base,
        Method::POST,
        connections,
        Some(&admin),
        Some(&missing),
    )
    .await;
    assert!(
        !problem.to_string().contains("No such file"),
        "errors never tell whether a file exists: {problem}"
    );

    // The key as content: sealed with the other secrets, and the connection syncs with it.
    let mut by_content = jwt("by_content");
    by_content["private_key"] = json!(KEY_PEM);
    let (status, created) = call(
        &base,
        Method::POST,
        connections,
        Some(&admin),
        Some(&by_content),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let pem_line = KEY_PEM.lines().nth(1).unwrap();
    let pg = db.client().await;
    let (sealed, in_clear): (bool, bool) = pg
        .query_one(
            "select secrets is not null,
                    position(convert_to($1, 'UTF8') in secrets) > 0
                        or settings::text like '%' || $1 || '%'
                        or settings ? 'private_key'
             from pgforce.connections where name = 'by_content'",
            &[&pem_line],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(
        sealed && !in_clear,
        "the key is kept sealed, never in clear"
    );
    add_account_mapping(&base, &id, &admin).await;
    wait_for_count(&db, "select count(*) from by_content.account", 3).await;

    // A change may send content, never a path.
    let this = format!("{connections}/{id}");
    let answer = call(
        &base,
        Method::PATCH,
        &this,
        Some(&admin),
        Some(&json!({"ca_file": "/etc/hostname"})),
    )
    .await;
    assert_refused(&answer, "ca_file", &["ca_certificate"]);
    let answer = call(
        &base,
        Method::PATCH,
        &this,
        Some(&admin),
        Some(&json!({"private_key": KEY_PEM})),
    )
    .await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn creating_a_connection_under_a_name_that_exists_is_a_conflict_and_changes_nothing() {
    let org = seeded_org(2).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let path = config.to_str().unwrap();
    // No secret key: the configured connection is the only one.
    let (_daemon, base) = serving(path).await;
    let admin = token(path, "provisioning", "manage", &[]).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 2).await;
    let connections = "/api/v3/connections";

    let jwt_by_path = json!({"name": "main", "schema_name": "other", "login_url": org.http_url,
        "auth": "jwt", "username": "admin@example.com", "client_id": "pgforce",
        "private_key_file": KEY_FILE});
    let by_password = password_connection("main", &org.http_url);
    let consent = json!({"name": "main", "login_url": org.http_url, "auth": "refresh_token",
        "client_id": "pgforce"});
    for body in [jwt_by_path, by_password, consent] {
        let (status, problem) =
            call(&base, Method::POST, connections, Some(&admin), Some(&body)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}: {problem}");
        assert_eq!(problem["id"], "conflict", "{problem}");
        assert!(
            problem["message"]
                .as_str()
                .unwrap()
                .contains("main exists already"),
            "{problem}"
        );
    }
    assert_eq!(
        count(&db, "select count(*) from pgforce.connections where name = 'main' and schema_name = 'salesforce' and secrets is null").await,
        1,
        "the configured connection is as it was"
    );
    assert_eq!(
        count(&db, "select count(*) from pgforce.mappings").await,
        1,
        "its mapping is kept"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn reserved_schemas_schemas_holding_other_tables_and_malformed_api_versions_are_refused_naming_the_setting()
 {
    let Keyed {
        org,
        db,
        config,
        key: _,
        daemon: _daemon,
        base,
        admin,
    } = keyed(1).await;
    let connections = "/api/v3/connections";

    for schema in ["pgforce", "pg_catalog", "pg_toast_x", "information_schema"] {
        let mut body = password_connection("reserved", &org.http_url);
        body["schema_name"] = json!(schema);
        let answer = call(&base, Method::POST, connections, Some(&admin), Some(&body)).await;
        assert_refused(&answer, "schema_name", &["choose another schema"]);
    }
    for version in ["62", "v62.0", "62.0/../../oauth2", "620.0"] {
        let mut body = password_connection("versioned", &org.http_url);
        body["api_version"] = json!(version);
        let answer = call(&base, Method::POST, connections, Some(&admin), Some(&body)).await;
        assert_refused(&answer, "api_version", &["NN.N"]);
    }
    assert_eq!(
        count(&db, "select count(*) from pgforce.connections").await,
        1,
        "nothing registered"
    );

    // A schema holding tables pgforce did not create (the app's own) is not taken over
    // through the API: refused naming the schema and its tables, nothing registered.
    db.client()
        .await
        .batch_execute("create schema crm; create table crm.customers (id int); create view crm.recent as select * from crm.customers")
        .await
        .unwrap();
    let mut over_app_tables = password_connection("crm", &org.http_url);
    over_app_tables["schema_name"] = json!("crm");
    let answer = call(
        &base,
        Method::POST,
        connections,
        Some(&admin),
        Some(&over_app_tables),
    )
    .await;
    assert_refused(
        &answer,
        "schema_name",
        &[
            "crm",
            "customers",
            "recent",
            "pgforce did not create",
            "configuration file",
        ],
    );
    assert_eq!(
        count(&db, "select count(*) from pgforce.connections").await,
        1,
        "nothing registered over the app's tables"
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from information_schema.tables where table_schema = 'crm'"
        )
        .await,
        2,
        "the app's tables untouched"
    );

    let body = password_connection("second", &org.http_url);
    let (status, created) = call(&base, Method::POST, connections, Some(&admin), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let this = format!("{connections}/{}", created["id"].as_str().unwrap());
    let patch = json!({"api_version": "61.0?x=1"});
    let answer = call(&base, Method::PATCH, &this, Some(&admin), Some(&patch)).await;
    assert_refused(&answer, "api_version", &["NN.N"]);
    let _ = std::fs::remove_file(config);
}

/// Runs `pgforce run` on `config`, which must fail at once; returns stderr.
async fn refused_run(config: &std::path::Path) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        pgforce(&["run", "--config", config.to_str().unwrap()]).output(),
    )
    .await
    .expect("a refused configuration fails fast")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "should fail:\n{stderr}");
    stderr
}

#[tokio::test]
async fn a_configuration_file_naming_a_host_off_salesforce_is_refused_before_anything_is_sent() {
    let org = seeded_org(1).await;
    let db = TestDatabase::create().await;
    let listener = Eavesdropper::start().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let text = std::fs::read_to_string(&config).unwrap();
    let cases = [
        (
            "login URL on the listener",
            text.replace(&org.http_url, &listener.url()),
            "login_url: http://127.0.0.1:",
        ),
        (
            "Pub/Sub API on the listener",
            text.replace(
                "auth = \"password\"",
                &format!(
                    "auth = \"password\"\npubsub_endpoint = \"{}\"",
                    listener.address
                ),
            ),
            "pubsub_endpoint: https://127.0.0.1:",
        ),
        (
            "a URL where a host belongs",
            text.replace(
                "allowed_login_hosts = [",
                "allowed_login_hosts = [\"http://x\", ",
            ),
            "[security] allowed_login_hosts: \"http://x\" is not a host",
        ),
        (
            "the catalog's schema",
            text.replace("schema = \"salesforce\"", "schema = \"pgforce\""),
            "schema: \"pgforce\" holds pgforce's catalog",
        ),
    ];
    for (what, text, expected) in cases {
        std::fs::write(&config, text).unwrap();
        let stderr = refused_run(&config).await;
        assert!(
            stderr.contains(expected),
            "{what}: {stderr:?} should contain {expected:?}"
        );
        assert!(
            !stderr.contains("internal-admin-console"),
            "{what}: {stderr}"
        );
    }
    assert_eq!(listener.heard(), 0, "the listener heard nothing");
    let _ = std::fs::remove_file(config);
}
