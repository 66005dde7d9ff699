//! Schema drift while the engine runs: fields widened in Salesforce widen their columns,
//! fields deleted or hidden put their mapping in SCHEMA_CHANGED while the others go on,
//! and the mapping resumes when they are back.

use std::time::{Duration, Instant};

use pgforce_emulator::EmulatorConfig;
use pgforce_emulator::testing::TestOrg;
use pgforce_salesforce::{AllowedHosts, Client, ClientConfig, Credentials, SecretString};
use pgforce_store::testing::TestDatabase;
use pgforce_sync::config::ConnectionConfig;
use pgforce_sync::{Engine, EngineOptions};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::watch;

const SCHEMA: &str = r#"{"objects": [{"name": "Gizmo__c", "fields": [
  {"name": "Name", "type": "string", "length": 80, "nameField": true},
  {"name": "Label__c", "type": "string", "length": 10}
]}, {"name": "Widget__c", "fields": [
  {"name": "Name", "type": "string", "length": 80, "nameField": true},
  {"name": "Note__c", "type": "string", "length": 20}
]}]}"#;

/// Salesforce's hosts and the emulators' (loopback, any port).
fn loopback() -> AllowedHosts {
    AllowedHosts::with_extra(&["127.0.0.1", "localhost"]).unwrap()
}

/// An org with Gizmo__c and Widget__c, and a database.
async fn org_and_database() -> (TestOrg, TestDatabase, Client) {
    let schema_file = pgforce_emulator::Emulator::parse_schema_file(SCHEMA).unwrap();
    let org = TestOrg::start_with(EmulatorConfig {
        schema_files: vec![schema_file],
        ..EmulatorConfig::default()
    })
    .await;
    let credentials = Credentials::Password {
        client_id: pgforce_emulator::DEFAULT_CLIENT_ID.to_owned(),
        client_secret: SecretString::from(pgforce_emulator::DEFAULT_CLIENT_SECRET),
        username: pgforce_emulator::DEFAULT_USERNAME.to_owned(),
        password: SecretString::from(pgforce_emulator::DEFAULT_PASSWORD),
    };
    let mut config = ClientConfig::new(org.http_url.clone(), credentials);
    config.allowed_hosts = loopback();
    let sf = Client::new(config).unwrap();
    (org, TestDatabase::create().await, sf)
}

/// The connection, syncing `mappings` (`[object, [fields]]`) read-only every second.
fn connection(org: &TestOrg, mappings: &[(&str, &[&str])]) -> ConnectionConfig {
    let mappings: Vec<Value> = mappings
        .iter()
        .map(|(object, fields)| {
            json!({ "object": object, "access": "read_only", "fields": fields, "polling_seconds": 1 })
        })
        .collect();
    serde_json::from_value(json!({
        "name": "main",
        "schema": "salesforce",
        "login_url": org.http_url,
        "auth": "password",
        "username": pgforce_emulator::DEFAULT_USERNAME,
        "password": pgforce_emulator::DEFAULT_PASSWORD,
        "client_id": pgforce_emulator::DEFAULT_CLIENT_ID,
        "client_secret": pgforce_emulator::DEFAULT_CLIENT_SECRET,
        "mapping": mappings,
    }))
    .unwrap()
}

/// An engine running as `pgforce run` runs it (schema checks ten minutes apart, as by
/// default), and the switch that stops it.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<pgforce_sync::Result<()>>,
}

async fn run(db: &TestDatabase, connection: ConnectionConfig) -> Running {
    let options = EngineOptions {
        catalog_poll: Duration::from_millis(500),
        allowed_hosts: loopback(),
        ..EngineOptions::default()
    };
    let engine = Engine::open(&db.url, vec![connection], options)
        .await
        .unwrap();
    engine.apply().await.unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { engine.run(stopped).await });
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

async fn create(sf: &Client, object: &str, fields: Value) -> String {
    sf.create(object, &serde_json::from_value(fields).unwrap())
        .await
        .unwrap()
}

async fn update(sf: &Client, object: &str, id: &str, fields: Value) {
    sf.update(object, id, &serde_json::from_value(fields).unwrap())
        .await
        .unwrap();
}

/// Waits (at most 30 s) until `sql` answers `expected` (one text or null column).
async fn wait_for(db: &TestDatabase, sql: &str, expected: Option<&str>) {
    let pg = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now: Option<String> = match pg.query_opt(sql, &[]).await.unwrap() {
            Some(row) => row.get(0),
            None => Some("(no row)".to_owned()),
        };
        if now.as_deref() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {sql} = {expected:?} (now {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `state | last_error` of a mapping.
fn state_of(object: &str) -> String {
    format!(
        "select state || ' | ' || coalesce(last_error, '') from pgforce.mappings where object_name = '{object}'"
    )
}

async fn text(db: &TestDatabase, sql: &str) -> Option<String> {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_text_field_widened_in_salesforce_widens_its_column_and_stores_the_longer_value() {
    let (org, db, sf) = org_and_database().await;
    let id = create(&sf, "Gizmo__c", json!({ "Name": "G", "Label__c": "short" })).await;
    let running = run(
        &db,
        connection(&org, &[("Gizmo__c", &["Name", "Label__c"])]),
    )
    .await;
    let label = format!("select label__c from salesforce.gizmo__c where sfid = '{id}'");
    wait_for(&db, &label, Some("short")).await;

    // An administrator lengthens the field; a user fills it.
    org.control(
        Method::PATCH,
        "/schema/Gizmo__c/fields/Label__c",
        Some(json!({ "length": 40 })),
    )
    .await;
    let long = "thirty characters, not ten....";
    update(&sf, "Gizmo__c", &id, json!({ "Label__c": long })).await;

    wait_for(&db, &label, Some(long)).await;
    assert_eq!(
        text(
            &db,
            "select data_type || '(' || character_maximum_length || ')' from information_schema.columns
             where table_schema = 'salesforce' and table_name = 'gizmo__c' and column_name = 'label__c'"
        )
        .await
        .as_deref(),
        Some("character varying(40)")
    );
    wait_for(&db, &state_of("Gizmo__c"), Some("DATA_SYNCED | ")).await;
    assert_eq!(
        text(&db, "select count(*)::text from pgforce.rejected_records")
            .await
            .as_deref(),
        Some("0"),
        "the record kept while its column was too narrow is forgotten once stored"
    );
    assert_eq!(
        text(
            &db,
            "select count(*)::text from pgforce.sync_events
             where message like '%label__c to character varying(40)%'"
        )
        .await
        .as_deref(),
        Some("1"),
        "the widening is recorded as a sync event"
    );
    running.stop().await;
}

#[tokio::test]
async fn records_refused_by_a_narrow_column_are_read_again_after_the_widening_even_if_that_read_fails_once()
 {
    let (org, db, sf) = org_and_database().await;
    let id = create(&sf, "Gizmo__c", json!({ "Name": "G", "Label__c": "short" })).await;
    let running = run(
        &db,
        connection(&org, &[("Gizmo__c", &["Name", "Label__c"])]),
    )
    .await;
    let label = format!("select label__c from salesforce.gizmo__c where sfid = '{id}'");
    wait_for(&db, &label, Some("short")).await;
    // Postgres breaks the first write of a long label as a deadlock (a sequence is not
    // rolled back with the failed transaction, so it happens once).
    db.client()
        .await
        .batch_execute(
            "create sequence long_label_writes;
             create function break_first_long_label() returns trigger language plpgsql as $$
             begin
                 if length(new.label__c) > 10 and nextval('long_label_writes') = 1 then
                     raise exception 'deadlock detected (injected)' using errcode = '40P01';
                 end if;
                 return new;
             end $$;
             create trigger break_first_long_label before insert or update on salesforce.gizmo__c
                 for each row execute function break_first_long_label();",
        )
        .await
        .unwrap();

    org.control(
        Method::PATCH,
        "/schema/Gizmo__c/fields/Label__c",
        Some(json!({ "length": 40 })),
    )
    .await;
    let long = "thirty characters, not ten....";
    update(&sf, "Gizmo__c", &id, json!({ "Label__c": long })).await;

    // The widening's read of the refused record fails once; the next check reads it again.
    wait_for(&db, &label, Some(long)).await;
    assert_eq!(
        text(&db, "select last_value::text from long_label_writes")
            .await
            .as_deref(),
        Some("2"),
        "the first write failed, the second stored the value"
    );
    wait_for(&db, &state_of("Gizmo__c"), Some("DATA_SYNCED | ")).await;
    running.stop().await;
}

#[tokio::test]
async fn a_field_widened_while_pgforce_was_stopped_is_widened_when_it_starts_again() {
    let (org, db, sf) = org_and_database().await;
    create(&sf, "Gizmo__c", json!({ "Name": "G", "Label__c": "short" })).await;
    let connection = connection(&org, &[("Gizmo__c", &["Name", "Label__c"])]);
    let running = run(&db, connection.clone()).await;
    wait_for(
        &db,
        "select count(*)::text from salesforce.gizmo__c",
        Some("1"),
    )
    .await;
    running.stop().await;

    // Widened and used while nothing ran: the mapping, resolved against the new describe
    // at the next start, must not jam on a column still ten characters wide.
    org.control(
        Method::PATCH,
        "/schema/Gizmo__c/fields/Label__c",
        Some(json!({ "length": 40 })),
    )
    .await;
    let long = "thirty characters, not ten....";
    let id = create(&sf, "Gizmo__c", json!({ "Name": "Long", "Label__c": long })).await;
    let running = run(&db, connection).await;
    wait_for(
        &db,
        &format!("select label__c from salesforce.gizmo__c where sfid = '{id}'"),
        Some(long),
    )
    .await;
    wait_for(&db, &state_of("Gizmo__c"), Some("DATA_SYNCED | ")).await;
    running.stop().await;
}

#[tokio::test]
async fn a_value_postgres_finds_too_long_makes_the_reader_check_the_schema_and_go_on() {
    let (org, db, sf) = org_and_database().await;
    let id = create(&sf, "Gizmo__c", json!({ "Name": "G", "Label__c": "short" })).await;
    let running = run(
        &db,
        connection(&org, &[("Gizmo__c", &["Name", "Label__c"])]),
    )
    .await;
    let label = format!("select label__c from salesforce.gizmo__c where sfid = '{id}'");
    wait_for(&db, &label, Some("short")).await;

    // Someone narrows the column behind the reader's back: the next value passes the
    // reader's check (ten characters) and Postgres refuses it (22001).
    db.client()
        .await
        .batch_execute("alter table salesforce.gizmo__c alter column label__c type varchar(5)")
        .await
        .unwrap();
    update(&sf, "Gizmo__c", &id, json!({ "Label__c": "8 chars!" })).await;
    wait_for(&db, &label, Some("8 chars!")).await;
    assert_eq!(
        text(
            &db,
            "select character_maximum_length::text from information_schema.columns
             where table_schema = 'salesforce' and table_name = 'gizmo__c' and column_name = 'label__c'"
        )
        .await
        .as_deref(),
        Some("10"),
        "the column is as wide as Salesforce's field again"
    );
    assert_eq!(
        text(
            &db,
            "select count(*)::text from pgforce.sync_events
             where outcome = 'error' and message like '%SQLSTATE 22001%value too long%'"
        )
        .await
        .as_deref(),
        Some("1"),
        "the refused page is recorded with Postgres's message"
    );
    wait_for(&db, &state_of("Gizmo__c"), Some("DATA_SYNCED | ")).await;
    running.stop().await;
}

#[tokio::test]
async fn a_deleted_field_puts_its_mapping_in_schema_changed_while_other_mappings_go_on() {
    let (org, db, sf) = org_and_database().await;
    let first = create(&sf, "Gizmo__c", json!({ "Name": "G1", "Label__c": "old" })).await;
    create(&sf, "Widget__c", json!({ "Name": "W1", "Note__c": "n" })).await;
    let running = run(
        &db,
        connection(
            &org,
            &[
                ("Gizmo__c", &["Name", "Label__c"]),
                ("Widget__c", &["Name", "Note__c"]),
            ],
        ),
    )
    .await;
    let label = format!("select label__c from salesforce.gizmo__c where sfid = '{first}'");
    wait_for(&db, &label, Some("old")).await;
    wait_for(
        &db,
        "select count(*)::text from salesforce.widget__c",
        Some("1"),
    )
    .await;

    org.control(Method::DELETE, "/schema/Gizmo__c/fields/Label__c", None)
        .await;
    let waiting = "SCHEMA_CHANGED | field Label__c of Gizmo__c is no longer readable: deleted in Salesforce, or hidden from the integration user by field-level security; the mapping waits until it is back or no longer mapped";
    wait_for(&db, &state_of("Gizmo__c"), Some(waiting)).await;

    // The other mapping of the connection goes on.
    let second = create(&sf, "Gizmo__c", json!({ "Name": "G2" })).await;
    create(
        &sf,
        "Widget__c",
        json!({ "Name": "W2", "Note__c": "still read" }),
    )
    .await;
    wait_for(
        &db,
        "select note__c from salesforce.widget__c where name = 'W2'",
        Some("still read"),
    )
    .await;
    assert_eq!(
        text(&db, &state_of("Gizmo__c")).await.as_deref(),
        Some(waiting)
    );
    assert_eq!(
        text(&db, &state_of("Widget__c")).await.as_deref(),
        Some("DATA_SYNCED | ")
    );

    // The field is added again (empty, as Salesforce adds it): the mapping resumes,
    // brings what changed meanwhile, and reads every record again.
    org.control(
        Method::POST,
        "/schema/Gizmo__c/fields",
        Some(json!({ "name": "Label__c", "type": "string", "length": 10 })),
    )
    .await;
    wait_for(
        &db,
        &format!("select name from salesforce.gizmo__c where sfid = '{second}'"),
        Some("G2"),
    )
    .await;
    wait_for(&db, &label, None).await;
    wait_for(&db, &state_of("Gizmo__c"), Some("DATA_SYNCED | ")).await;
    running.stop().await;
}

#[tokio::test]
async fn a_field_hidden_by_field_level_security_waits_across_restarts_and_resumes_when_readable() {
    let (org, db, sf) = org_and_database().await;
    let id = create(&sf, "Gizmo__c", json!({ "Name": "G1", "Label__c": "kept" })).await;
    let connection = connection(&org, &[("Gizmo__c", &["Name", "Label__c"])]);
    let running = run(&db, connection.clone()).await;
    wait_for(
        &db,
        &format!("select label__c from salesforce.gizmo__c where sfid = '{id}'"),
        Some("kept"),
    )
    .await;

    org.control(
        Method::PUT,
        "/schema/Gizmo__c/fields/Label__c/access",
        Some(json!({ "readable": false })),
    )
    .await;
    let state = "select state from pgforce.mappings where object_name = 'Gizmo__c'";
    wait_for(&db, state, Some("SCHEMA_CHANGED")).await;

    // Started again while the field is hidden: still waiting for it, not a mapping that
    // names a field the org never had.
    running.stop().await;
    let restarted = text(&db, "select now()::text").await.unwrap();
    let running = run(&db, connection).await;
    let changed = create(&sf, "Gizmo__c", json!({ "Name": "G2" })).await;
    wait_for(
        &db,
        &format!(
            "select state from pgforce.mappings where object_name = 'Gizmo__c'
             and updated_at > '{restarted}'::timestamptz"
        ),
        Some("SCHEMA_CHANGED"),
    )
    .await;
    assert_eq!(
        text(
            &db,
            &format!("select count(*)::text from salesforce.gizmo__c where sfid = '{changed}'")
        )
        .await
        .as_deref(),
        Some("0"),
        "a mapping waiting for its fields is not read"
    );
    assert!(
        text(
            &db,
            "select last_error from pgforce.mappings where object_name = 'Gizmo__c'"
        )
        .await
        .is_some_and(|e| e.contains("Label__c")),
        "the last error names the field"
    );

    org.control(
        Method::PUT,
        "/schema/Gizmo__c/fields/Label__c/access",
        Some(json!({ "readable": true })),
    )
    .await;
    wait_for(
        &db,
        &format!("select name from salesforce.gizmo__c where sfid = '{changed}'"),
        Some("G2"),
    )
    .await;
    wait_for(&db, state, Some("DATA_SYNCED")).await;
    assert_eq!(
        text(
            &db,
            &format!("select label__c from salesforce.gizmo__c where sfid = '{id}'")
        )
        .await
        .as_deref(),
        Some("kept")
    );
    running.stop().await;
}
