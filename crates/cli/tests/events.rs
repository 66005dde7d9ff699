//! Change events through `pgforce run`: with the safety-net poll five minutes away, a
//! change made in Salesforce reaches Postgres in seconds over the Pub/Sub API and over
//! CometD; the subscriber resumes from its stored replay id after being killed; dropped
//! and duplicated events still converge; an expired replay id makes the mapping read from
//! its cursor and events start again from the newest.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use pgforce_emulator::testing::TestOrg;
use pgforce_salesforce::Client;
use pgforce_store::testing::TestDatabase;
use serde_json::json;

use crate::run::{config_file, count, pgforce, pgforce_ok, salesforce, wait_for_count};

/// Account, read-only, polled every five minutes: only events can bring a change sooner.
const SLOW_POLL_ACCOUNT: &str = r#"
[[connection.mapping]]
object = "Account"
access = "read_only"
fields = ["Name", "Industry"]
polling_seconds = 300
"#;

/// The connection settings choosing `transport` on this org.
fn events_settings(org: &TestOrg, transport: &str, ca: &std::path::Path) -> String {
    format!(
        "change_events = \"{transport}\"\npubsub_endpoint = \"{}\"\nca_file = \"{}\"\n",
        org.pubsub_endpoint,
        ca.display()
    )
}

/// An org with `accounts` Accounts, and a config file using `transport`.
async fn setup(accounts: u64, transport: &str) -> (TestOrg, TestDatabase, PathBuf) {
    setup_seeded(json!({ "Account": accounts }), transport, SLOW_POLL_ACCOUNT).await
}

/// An org seeded with `seed`, a database, and a config file whose connection takes change
/// events over `transport` (its CA trusted) and then holds `mappings` (connection settings
/// may lead them).
async fn setup_seeded(
    seed: serde_json::Value,
    transport: &str,
    mappings: &str,
) -> (TestOrg, TestDatabase, PathBuf) {
    let org = TestOrg::start().await;
    org.control(reqwest::Method::POST, "/seed", Some(seed))
        .await;
    let db = TestDatabase::create().await;
    let ca = std::env::temp_dir().join(format!("{}-ca.pem", db.name));
    std::fs::write(&ca, &org.ca_pem).unwrap();
    let settings = events_settings(&org, transport, &ca);
    let config = config_file(&org, &db, &format!("{settings}{mappings}"));
    (org, db, config)
}

fn start(config: &std::path::Path) -> tokio::process::Child {
    start_with_log(config, Stdio::null())
}

fn start_with_log(config: &std::path::Path, stderr: Stdio) -> tokio::process::Child {
    pgforce(&["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Starts `pgforce run` and waits until its `accounts` Accounts are loaded and events
/// flow over `transport`.
async fn start_synced(
    config: &std::path::Path,
    db: &TestDatabase,
    accounts: i64,
    transport: &str,
) -> tokio::process::Child {
    let daemon = start(config);
    wait_for_count(db, "select count(*) from salesforce.account", accounts).await;
    wait_for_transport(db, transport).await;
    daemon
}

/// Waits until the mapping shows events flowing over `transport`.
async fn wait_for_transport(db: &TestDatabase, transport: &str) {
    let sql = format!(
        "select count(*) from pgforce.mappings where object_name = 'Account' and events_transport = '{transport}'"
    );
    wait_for_count(db, &sql, 1).await;
}

/// Renames an Account in Salesforce and returns how long until Postgres shows it.
async fn rename(sf: &Client, db: &TestDatabase, sfid: &str, name: &str) -> Duration {
    let started = Instant::now();
    sf.update(
        "Account",
        sfid,
        &serde_json::from_value(json!({ "Name": name })).unwrap(),
    )
    .await
    .unwrap();
    let pg = db.client().await;
    loop {
        let seen: String = pg
            .query_one(
                "select name from salesforce.account where sfid = $1",
                &[&sfid],
            )
            .await
            .unwrap()
            .get(0);
        if seen == name {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name} did not reach Postgres within a minute"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `sfid`s a query over the account table returns.
async fn sfids(db: &TestDatabase, sql: &str) -> Vec<String> {
    db.client()
        .await
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn any_account(db: &TestDatabase) -> String {
    db.client()
        .await
        .query_one("select sfid from salesforce.account limit 1", &[])
        .await
        .unwrap()
        .get(0)
}

/// Events received so far by the connection's subscriber.
async fn events_received(db: &TestDatabase) -> i64 {
    count(
        db,
        "select coalesce(sum(events_received), 0)::bigint from pgforce.change_subscriptions",
    )
    .await
}

async fn changes_arrive_in_seconds_over(transport: &str) {
    let (org, db, config) = setup(20, transport).await;
    let (daemon, base) = crate::server::serving(config.to_str().unwrap()).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 20).await;
    wait_for_transport(&db, transport).await;
    let sf = salesforce(&org);
    let sfid = any_account(&db).await;
    for n in 0..5 {
        let took = rename(&sf, &db, &sfid, &format!("Evented {n}")).await;
        // The next poll is five minutes away: only an event brings it this soon.
        assert!(
            took < Duration::from_secs(5),
            "change {n} took {took:?} over {transport}"
        );
    }
    let status = pgforce_ok(&["status", "--config", config.to_str().unwrap()]).await;
    assert!(
        status.contains(&format!("change events: {transport}, last at ")),
        "{status}"
    );
    assert!(events_received(&db).await >= 5);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let active = format!(
        r#"pgforce_change_events_active{{connection="main",object="Account",transport="{transport}"}} 1"#
    );
    assert!(metrics.lines().any(|l| l == active), "{metrics}");
    crate::run::stop(daemon).await;
}

#[tokio::test]
async fn salesforce_changes_reach_postgres_in_seconds_over_pubsub() {
    changes_arrive_in_seconds_over("pubsub").await;
}

#[tokio::test]
async fn salesforce_changes_reach_postgres_in_seconds_over_cometd() {
    changes_arrive_in_seconds_over("cometd").await;
}

#[tokio::test]
async fn a_killed_subscriber_resumes_after_its_stored_replay_id() {
    let (org, db, config) = setup(20, "pubsub").await;
    let mut daemon = start_synced(&config, &db, 20, "pubsub").await;
    let sf = salesforce(&org);
    let sfid = any_account(&db).await;
    rename(&sf, &db, &sfid, "Before the kill").await;
    // The replay id is stored once the event that woke the reader is recorded.
    let stored = "select count(*) from pgforce.change_subscriptions where replay_id is not null";
    wait_for_count(&db, stored, 1).await;
    let before = events_received(&db).await;

    daemon.kill().await.unwrap();
    let ids = sfids(&db, "select sfid from salesforce.account limit 5").await;
    for (n, id) in ids.iter().enumerate() {
        sf.update(
            "Account",
            id,
            &serde_json::from_value(json!({ "Industry": format!("While down {n}") })).unwrap(),
        )
        .await
        .unwrap();
    }

    let daemon = start(&config);
    // Events committed while it was down come again only if it resumed after the stored
    // replay id (from the newest, it would receive none of them).
    let deadline = Instant::now() + Duration::from_secs(30);
    while events_received(&db).await < before + 5 {
        assert!(
            Instant::now() < deadline,
            "the restarted subscriber received {} events, expected the 5 made while it was down",
            events_received(&db).await - before
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where industry like 'While down %'",
        5,
    )
    .await;
    crate::run::stop(daemon).await;
}

#[tokio::test]
async fn dropped_and_duplicated_events_still_converge() {
    let (org, db, config) = setup(50, "cometd").await;
    let daemon = start_synced(&config, &db, 50, "cometd").await;
    org.control(
        reqwest::Method::PUT,
        "/faults",
        Some(json!({ "eventDropRate": 0.2, "eventDuplicateRate": 0.1 })),
    )
    .await;
    let sf = salesforce(&org);
    let ids = sfids(&db, "select sfid from salesforce.account order by sfid").await;
    for round in 0..4 {
        for id in &ids {
            sf.update(
                "Account",
                id,
                &serde_json::from_value(json!({ "Name": format!("Round {round} {id}") })).unwrap(),
            )
            .await
            .unwrap();
        }
    }
    // Every row shows its last value, though a fifth of the events never came and a
    // tenth came twice; the poll is five minutes away, so the later events carried them.
    // The last edits may have lost their events: one more edit of another record wakes
    // the reader for them (as the next user change would).
    let extra = ids[0].clone();
    let settled = format!(
        "select count(*) from salesforce.account where name = 'Round 3 ' || sfid and sfid <> '{extra}'"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if count(&db, &settled).await == i64::try_from(ids.len() - 1).unwrap() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows did not converge: {} of {}",
            count(&db, &settled).await,
            ids.len() - 1
        );
        sf.update(
            "Account",
            &extra,
            &serde_json::from_value(json!({ "Industry": "Nudge" })).unwrap(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let duplicates = count(
        &db,
        "select count(*) from (select sfid from salesforce.account group by sfid having count(*) > 1) d",
    )
    .await;
    assert_eq!(duplicates, 0);
    crate::run::stop(daemon).await;
}

#[tokio::test]
async fn an_expired_replay_id_reads_from_the_cursor_and_events_start_again_from_the_newest() {
    let (org, db, config) = setup(20, "cometd").await;
    let mut daemon = start_synced(&config, &db, 20, "cometd").await;
    let sf = salesforce(&org);
    let sfid = any_account(&db).await;
    rename(&sf, &db, &sfid, "Before expiry").await;
    wait_for_count(
        &db,
        "select count(*) from pgforce.change_subscriptions where replay_id is not null",
        1,
    )
    .await;
    daemon.kill().await.unwrap();
    sf.update(
        "Account",
        &sfid,
        &serde_json::from_value(json!({ "Name": "While down" })).unwrap(),
    )
    .await
    .unwrap();
    org.control(reqwest::Method::POST, "/events/expire", None)
        .await;

    // Its log is read at the end (warnings only: a few lines, the pipe never fills).
    let daemon = start_with_log(&config, Stdio::piped());
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'While down'",
        1,
    )
    .await;
    wait_for_transport(&db, "cometd").await;
    // Events flow again, from the newest.
    let took = rename(&sf, &db, &sfid, "After expiry").await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().unwrap().to_string()])
        .status()
        .unwrap();
    let output = daemon.wait_with_output().await.unwrap();
    assert!(output.status.success(), "pgforce run exits 0 on SIGTERM");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("stored replay id expired"), "{log}");
}

/// Waits until the mapping of `object` has recorded at least `polls` polls.
async fn wait_for_polls(db: &TestDatabase, object: &str, polls: i64) {
    let sql = format!(
        "select count(*) from pgforce.sync_events e join pgforce.mappings m on m.id = e.mapping_id
               where m.object_name = '{object}' and e.kind = 'poll'"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(db, &sql).await < polls {
        assert!(
            Instant::now() < deadline,
            "fewer than {polls} polls within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls recorded after sync event `after`, and the API calls they made.
async fn late_polls(db: &TestDatabase, after: i64) -> (i64, u64) {
    let row = db
        .client()
        .await
        .query_one(
            "select count(*), coalesce(sum(api_calls), 0)::bigint from pgforce.sync_events
             where id > $1 and kind = 'poll'",
            &[&after],
        )
        .await
        .unwrap();
    (row.get(0), u64::try_from(row.get::<_, i64>(1)).unwrap())
}

/// The org's API requests counted so far.
async fn api_requests(org: &TestOrg) -> u64 {
    let stats = org.control(reqwest::Method::GET, "/stats", None).await;
    stats["usage"]["used"].as_u64().unwrap()
}

#[tokio::test]
async fn applied_events_store_changes_without_reading_salesforce() {
    let (org, db, config) = setup(20, "pubsub").await;
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("change_events = ", "apply_events = true\nchange_events = "),
    )
    .unwrap();
    let daemon = start_synced(&config, &db, 20, "pubsub").await;
    let sf = salesforce(&org);
    let ids = sfids(
        &db,
        "select sfid from salesforce.account order by sfid limit 10",
    )
    .await;
    sf.update(
        "Account",
        &ids[0],
        &serde_json::from_value(json!({})).unwrap(),
    )
    .await
    .unwrap();
    // The poll right after the load is done.
    wait_for_polls(&db, "Account", 1).await;
    let last_poll = count(&db, "select coalesce(max(id), 0) from pgforce.sync_events").await;
    let before = api_requests(&org).await;
    for (n, id) in ids.iter().enumerate() {
        let took = rename(&sf, &db, id, &format!("Applied {n}")).await;
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
    // A record created in Salesforce arrives whole, and a delete removes its row.
    let created = sf
        .create(
            "Account",
            &serde_json::from_value(json!({ "Name": "Born in Salesforce", "Industry": "Energy" }))
                .unwrap(),
        )
        .await
        .unwrap();
    wait_for_count(
        &db,
        &format!("select count(*) from salesforce.account where sfid = '{created}' and industry = 'Energy'"),
        1,
    )
    .await;
    sf.delete("Account", &created).await.unwrap();
    wait_for_count(
        &db,
        &format!("select count(*) from salesforce.account where sfid = '{created}'"),
        0,
    )
    .await;
    // The org counted the test's own 12 calls and nothing else: no reads, but for the one
    // read a subscription from the newest events makes once it is established, when its
    // wake-up came after the reader took its lease (it may fall after `before`).
    let (polls, poll_calls) = late_polls(&db, last_poll).await;
    assert!(polls <= 1, "{polls} polls while events were applied");
    assert_eq!(api_requests(&org).await - before, 12 + poll_calls);
    crate::run::stop(daemon).await;
}

/// A config file whose connection applies events (`apply_events = true`).
fn applying_events(config: &std::path::Path) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        config,
        text.replace("change_events = ", "apply_events = true\nchange_events = "),
    )
    .unwrap();
}

/// The token of the connection's subscriber lease (`None` while nobody holds it).
async fn subscriber_token(db: &TestDatabase) -> Option<i64> {
    db.client()
        .await
        .query_opt(
            "select token from pgforce.leases where name like 'subscriber:%'",
            &[],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

/// Waits until the subscriber lease is held under a token other than `old`: the
/// subscriber was started again.
async fn wait_for_new_subscriber(db: &TestDatabase, old: i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if subscriber_token(db).await.is_some_and(|t| t != old) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the subscriber was not started again within 15 s of its mapping's change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the subscriber has received more than `before` events.
async fn wait_for_events(db: &TestDatabase, before: i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while events_received(db).await <= before {
        assert!(
            Instant::now() < deadline,
            "no change event was recorded within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_mapping_switched_to_read_write_no_longer_stores_events_past_the_conflict_rule() {
    let (org, db, config) = setup(20, "pubsub").await;
    applying_events(&config);
    let path = config.to_str().unwrap().to_owned();
    let daemon = start_synced(&config, &db, 20, "pubsub").await;
    let old = subscriber_token(&db).await.unwrap();
    // Another process holds the writer: the local change below stays unsent, so only the
    // conflict rule stands between it and the Salesforce change.
    let pg = db.client().await;
    pg.batch_execute(
        "insert into pgforce.leases (name, holder, expires_at)
         values ('writer:main', 'elsewhere:1:0', now() + interval '1 hour')",
    )
    .await
    .unwrap();
    pgforce_ok(&[
        "mapping",
        "--config",
        &path,
        "add",
        "Account",
        "--fields",
        "Name,Industry",
        "--access",
        "read_write",
        "--polling-seconds",
        "300",
    ])
    .await;
    wait_for_new_subscriber(&db, old).await;
    wait_for_transport(&db, "pubsub").await;

    // The Salesforce edit's event comes two seconds late, after the local edit.
    org.control(
        reqwest::Method::PUT,
        "/faults",
        Some(json!({ "eventDelayMs": 2000 })),
    )
    .await;
    let sfid = any_account(&db).await;
    let before = events_received(&db).await;
    salesforce(&org)
        .update(
            "Account",
            &sfid,
            &serde_json::from_value(json!({ "Name": "Salesforce edit" })).unwrap(),
        )
        .await
        .unwrap();
    pg.execute(
        "update salesforce.account set name = 'Local edit' where sfid = $1",
        &[&sfid],
    )
    .await
    .unwrap();
    wait_for_events(&db, before).await;
    // The newer local change wins; the event did not overwrite it.
    let name: String = pg
        .query_one(
            "select name from salesforce.account where sfid = $1",
            &[&sfid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Local edit");
    assert_eq!(
        count(
            &db,
            "select count(*) from salesforce._trigger_log where table_name = 'account' and state = 'NEW'"
        )
        .await,
        1
    );
    crate::run::stop(daemon).await;
}

/// Starts `pgforce run` with its info log lines sent to a channel (read all along, so the
/// pipe never fills).
fn start_with_lines(
    config: &std::path::Path,
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let mut daemon = pgforce(&["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stderr.take().unwrap()).lines();
    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = send.send(line);
        }
    });
    (daemon, receive)
}

/// Waits (bounded) for a log line containing every one of `patterns`.
async fn wait_for_line(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    patterns: &[&str],
) {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.recv().await {
            if patterns.iter().all(|p| line.contains(p)) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found.ok(),
        Some(true),
        "pgforce run never logged {patterns:?}"
    );
}

/// The id of the Account mapping.
async fn account_mapping(db: &TestDatabase) -> i64 {
    count(
        db,
        "select id from pgforce.mappings where object_name = 'Account'",
    )
    .await
}

#[tokio::test]
async fn an_event_for_a_reader_leased_elsewhere_is_sent_as_a_nudge() {
    let (org, db, config) = setup(20, "pubsub").await;
    let (daemon, mut lines) = start_with_lines(&config);
    wait_for_count(&db, "select count(*) from salesforce.account", 20).await;
    wait_for_transport(&db, "pubsub").await;
    let mapping = account_mapping(&db).await;
    // Another replica takes the reader over; this process's reader stands by.
    db.client()
        .await
        .execute(
            "update pgforce.leases set holder = 'elsewhere:1:0', expires_at = now() + interval '1 hour',
                 token = nextval('pgforce.lease_tokens')
             where name = $1",
            &[&format!("reader:{mapping}")],
        )
        .await
        .unwrap();
    wait_for_line(&mut lines, &["reader Account", "standing by"]).await;

    let mut nudges = pgforce_store::notify::Listener::listen(&db.url, "pgforce_nudge")
        .await
        .unwrap();
    let sfid = any_account(&db).await;
    salesforce(&org)
        .update(
            "Account",
            &sfid,
            &serde_json::from_value(json!({ "Name": "Read elsewhere" })).unwrap(),
        )
        .await
        .unwrap();
    let nudged = tokio::time::timeout(Duration::from_secs(5), async {
        while nudges.notified().await {
            if nudges.take_payloads().contains(&mapping.to_string()) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        nudged.ok(),
        Some(true),
        "no nudge for mapping {mapping} on pgforce_nudge within 5 s of the edit"
    );
    crate::run::stop(daemon).await;
}

/// Account, read-only, polled every ten minutes (the setup the docs recommend once events
/// flow).
const TEN_MINUTE_POLL_ACCOUNT: &str = r#"
[[connection.mapping]]
object = "Account"
access = "read_only"
fields = ["Name", "Industry"]
polling_seconds = 600
"#;

/// Waits until `sql` counts `expected`, failing once `within` has passed since `since`.
async fn arrives_within(
    db: &TestDatabase,
    sql: &str,
    expected: i64,
    since: Instant,
    within: Duration,
) {
    loop {
        let now = count(db, sql).await;
        if now == expected {
            return;
        }
        assert!(
            since.elapsed() < within,
            "{sql} counted {now}, not {expected}, {within:?} after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn edits_made_right_after_the_first_load_arrive_before_events_could_carry_them() {
    let (org, db, config) =
        setup_seeded(json!({ "Account": 20 }), "pubsub", TEN_MINUTE_POLL_ACCOUNT).await;
    let daemon = start(&config);
    wait_for_count(&db, "select count(*) from salesforce.account", 20).await;
    // Right after the load: the subscription may not be established yet, and it starts
    // from the newest event, so no event will ever carry these edits.
    let sf = salesforce(&org);
    let ids = sfids(
        &db,
        "select sfid from salesforce.account order by sfid limit 3",
    )
    .await;
    let made = Instant::now();
    for id in &ids {
        sf.update(
            "Account",
            id,
            &serde_json::from_value(json!({ "Industry": "Right after the load" })).unwrap(),
        )
        .await
        .unwrap();
    }
    arrives_within(
        &db,
        "select count(*) from salesforce.account where industry = 'Right after the load'",
        3,
        made,
        Duration::from_secs(2),
    )
    .await;
    crate::run::stop(daemon).await;
}

/// Contact, read-write, with a field only Salesforce sets, polled every ten minutes.
const TEN_MINUTE_POLL_CONTACT: &str = r#"
[[connection.mapping]]
object = "Contact"
access = "read_write"
fields = ["LastName", "Email", "CreatedDate"]
polling_seconds = 600
"#;

#[tokio::test]
async fn values_salesforce_sets_on_pgforce_inserts_arrive_through_their_events() {
    let (_org, db, config) =
        setup_seeded(json!({ "Contact": 5 }), "pubsub", TEN_MINUTE_POLL_CONTACT).await;
    let daemon = start(&config);
    wait_for_count(&db, "select count(*) from salesforce.contact", 5).await;
    let sql = "select count(*) from pgforce.mappings where object_name = 'Contact' and events_transport = 'pubsub'";
    wait_for_count(&db, sql, 1).await;

    db.client()
        .await
        .batch_execute(
            "insert into salesforce.contact (lastname, email)
             select 'App ' || n, 'app' || n || '@example.com' from generate_series(1, 50) n",
        )
        .await
        .unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce.contact where lastname like 'App %' and sfid is not null",
        50,
    )
    .await;
    // Salesforce set CreatedDate on each; the events of pgforce's own inserts say so, and
    // the next poll is ten minutes away.
    arrives_within(
        &db,
        "select count(*) from salesforce.contact where lastname like 'App %' and createddate is not null",
        50,
        Instant::now(),
        Duration::from_secs(2),
    )
    .await;
    crate::run::stop(daemon).await;
}

/// The stored replay id and the events received so far.
async fn replay_position(db: &TestDatabase) -> (Option<Vec<u8>>, i64) {
    let row = db
        .client()
        .await
        .query_one(
            "select (select replay_id from pgforce.change_subscriptions),
                    coalesce((select events_received from pgforce.change_subscriptions), 0)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn an_event_postgres_refuses_for_good_is_read_instead_and_later_events_flow() {
    let (org, db, config) = setup(20, "pubsub").await;
    applying_events(&config);
    let daemon = start_synced(&config, &db, 20, "pubsub").await;
    // An app's trigger refuses one value, whoever writes it.
    db.client()
        .await
        .batch_execute(
            "create function public.refuse_name() returns trigger language plpgsql as $$
             begin
                 if new.name = 'Refused by the app' then
                     raise exception 'the app refuses this name';
                 end if;
                 return new;
             end $$;
             create trigger refuse_name before insert or update on salesforce.account
                 for each row execute function public.refuse_name();",
        )
        .await
        .unwrap();
    let (replay_before, received_before) = replay_position(&db).await;
    let ids = sfids(
        &db,
        "select sfid from salesforce.account order by sfid limit 2",
    )
    .await;
    let sf = salesforce(&org);
    sf.update(
        "Account",
        &ids[0],
        &serde_json::from_value(json!({ "Name": "Refused by the app" })).unwrap(),
    )
    .await
    .unwrap();
    let took = rename(&sf, &db, &ids[1], "After the refusal").await;
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let (replay_after, received_after) = replay_position(&db).await;
    assert!(replay_after.is_some());
    assert_ne!(replay_after, replay_before, "the replay id moved on");
    assert!(received_after >= received_before + 2);
    crate::run::stop(daemon).await;
}

/// Records the org has returned from queries so far.
async fn records_returned(org: &TestOrg) -> u64 {
    let stats = org.control(reqwest::Method::GET, "/stats", None).await;
    stats["api"]["recordsReturned"].as_u64().unwrap()
}

#[tokio::test]
async fn a_record_created_during_the_load_arrives_right_after_it_not_a_polling_interval_later() {
    let org = TestOrg::start().await;
    org.control(
        reqwest::Method::POST,
        "/seed",
        Some(json!({ "Account": 5000 })),
    )
    .await;
    let db = TestDatabase::create().await;
    // Events off: only the poll after the load can bring the record.
    let config = config_file(
        &org,
        &db,
        &format!("change_events = \"off\"\n{TEN_MINUTE_POLL_ACCOUNT}"),
    );
    // Every call takes a second: the load's three pages take three.
    org.control(
        reqwest::Method::PUT,
        "/faults",
        Some(json!({ "latencyMs": 1000 })),
    )
    .await;
    let baseline = records_returned(&org).await;
    let daemon = start(&config);
    // The load's first page has been answered: its result no longer changes.
    let deadline = Instant::now() + Duration::from_secs(60);
    while records_returned(&org).await < baseline + 2000 {
        assert!(
            Instant::now() < deadline,
            "the load never read its first page"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let created = salesforce(&org)
        .create(
            "Account",
            &serde_json::from_value(json!({ "Name": "Born during the load" })).unwrap(),
        )
        .await
        .unwrap();
    // The load's remaining pages and the poll after it take a second a call.
    arrives_within(
        &db,
        "select count(*) from salesforce.account",
        5001,
        Instant::now(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from salesforce.account where sfid = '{created}'")
        )
        .await,
        1
    );
    crate::run::stop(daemon).await;
}

#[tokio::test]
async fn an_object_beyond_the_cdc_allocation_gets_its_events_from_a_push_topic() {
    let contacts = SLOW_POLL_ACCOUNT
        .replace("Account", "Contact")
        .replace("\"Name\", \"Industry\"", "\"LastName\"");
    let (org, db, config) = setup_seeded(
        json!({ "Account": 5, "Contact": 5 }),
        "pubsub",
        &format!("{SLOW_POLL_ACCOUNT}{contacts}"),
    )
    .await;
    // The org may select one entity, and Contact holds the place already.
    org.control(
        reqwest::Method::PUT,
        "/events/cdc/allocation",
        Some(json!({ "entities": 1 })),
    )
    .await;
    org.control(
        reqwest::Method::PUT,
        "/events/cdc",
        Some(json!({ "entities": ["Contact"] })),
    )
    .await;
    let daemon = start(&config);
    wait_for_count(&db, "select count(*) from salesforce.account", 5).await;
    wait_for_count(&db, "select count(*) from salesforce.contact", 5).await;
    wait_for_count(
        &db,
        "select count(*) from pgforce.mappings where object_name = 'Contact' and events_transport = 'pubsub'",
        1,
    )
    .await;
    wait_for_transport(&db, "pushtopic").await;
    let topics: Vec<String> = salesforce(&org)
        .query("SELECT Name FROM PushTopic")
        .map_ok(|r| r["Name"].as_str().unwrap_or_default().to_owned())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(topics, ["hconnect_Account"]);
    let status = pgforce_ok(&["status", "--config", config.to_str().unwrap()]).await;
    assert!(status.contains("change events: pushtopic"), "{status}");

    // With the next poll five minutes away, both objects' changes arrive in seconds.
    let sf = salesforce(&org);
    let took = rename(&sf, &db, &any_account(&db).await, "Topic-borne").await;
    assert!(took < Duration::from_secs(5), "Account took {took:?}");
    let contact: String = db
        .client()
        .await
        .query_one("select sfid from salesforce.contact limit 1", &[])
        .await
        .unwrap()
        .get(0);
    sf.update(
        "Contact",
        &contact,
        &serde_json::from_value(json!({ "LastName": "Cdc-borne" })).unwrap(),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        wait_for_count(
            &db,
            "select count(*) from salesforce.contact where lastname = 'Cdc-borne'",
            1,
        ),
    )
    .await
    .expect("the Contact change arrived within 5 s");
    crate::run::stop(daemon).await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_row_stored_from_an_event_of_a_late_commit_takes_the_record_s_stamp_at_the_next_poll() {
    let (org, db, config) = setup(5, "pubsub").await;
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("change_events = ", "apply_events = true\nchange_events = ")
            .replace("polling_seconds = 300", "polling_seconds = 1"),
    )
    .unwrap();
    let daemon = start_synced(&config, &db, 5, "pubsub").await;
    // The write takes its SystemModstamp when it starts and commits a second later, as
    // a long Salesforce transaction does: the event's commitTimestamp lies a second after
    // the record's stamp.
    org.control(
        reqwest::Method::PUT,
        "/faults",
        Some(json!({ "commitDelayRate": 1.0, "commitDelayMs": 1000 })),
    )
    .await;
    let sf = salesforce(&org);
    let sfid = any_account(&db).await;
    sf.update(
        "Account",
        &sfid,
        &serde_json::from_value(json!({ "Name": "Committed late" })).unwrap(),
    )
    .await
    .unwrap();
    org.control(reqwest::Method::PUT, "/faults", Some(json!({})))
        .await;
    let stamp: String = sf
        .query(&format!(
            "SELECT SystemModstamp FROM Account WHERE Id = '{sfid}'"
        ))
        .map_ok(|r| r["SystemModstamp"].as_str().unwrap_or_default().to_owned())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .remove(0);
    // Polls every second read the same version: the row must end at its real stamp.
    let matches = format!(
        "select count(*) from salesforce.account where sfid = '{sfid}' and name = 'Committed late'
           and systemmodstamp = ('{stamp}'::timestamptz at time zone 'UTC')"
    );
    wait_for_count(&db, &matches, 1).await;
    let reconciled = pgforce(&["reconcile", "--config", config.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(
        reconciled.status.success(),
        "{}",
        String::from_utf8_lossy(&reconciled.stdout)
    );
    crate::run::stop(daemon).await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn applied_events_store_nested_compound_fields_in_their_columns_without_reading() {
    let contacts = SLOW_POLL_ACCOUNT.replace("Account", "Contact").replace(
        "\"Name\", \"Industry\"",
        "\"FirstName\", \"LastName\", \"MailingCity\", \"Email\"",
    );
    let (org, db, config) = setup_seeded(
        json!({ "Contact": 5 }),
        "pubsub",
        &format!("apply_events = true\n{contacts}"),
    )
    .await;
    let daemon = start(&config);
    wait_for_count(&db, "select count(*) from salesforce.contact", 5).await;
    wait_for_count(
        &db,
        "select count(*) from pgforce.mappings where object_name = 'Contact' and events_transport = 'pubsub'",
        1,
    )
    .await;
    // The poll right after the load is done.
    wait_for_polls(&db, "Contact", 1).await;
    let last_poll = count(&db, "select coalesce(max(id), 0) from pgforce.sync_events").await;
    let before = api_requests(&org).await;
    let sf = salesforce(&org);
    let contact: String = db
        .client()
        .await
        .query_one("select sfid from salesforce.contact limit 1", &[])
        .await
        .unwrap()
        .get(0);
    // Salesforce sends these as Name.FirstName and MailingAddress.City.
    sf.update(
        "Contact",
        &contact,
        &serde_json::from_value(json!({ "FirstName": "Ada", "MailingCity": "London" })).unwrap(),
    )
    .await
    .unwrap();
    let created = sf
        .create(
            "Contact",
            &serde_json::from_value(json!({ "FirstName": "Grace", "LastName": "Hopper",
                                            "MailingCity": "Arlington", "Email": "g@example.com" }))
            .unwrap(),
        )
        .await
        .unwrap();
    wait_for_count(
        &db,
        &format!(
            "select count(*) from salesforce.contact where sfid = '{contact}'
               and firstname = 'Ada' and mailingcity = 'London' and lastname is not null"
        ),
        1,
    )
    .await;
    wait_for_count(
        &db,
        &format!(
            "select count(*) from salesforce.contact where sfid = '{created}' and firstname = 'Grace'
               and lastname = 'Hopper' and mailingcity = 'Arlington' and email = 'g@example.com'"
        ),
        1,
    )
    .await;
    // Stored from the events alone: the org counted the test's own two calls, and the
    // one read a fresh subscription may make once it is established.
    let (polls, poll_calls) = late_polls(&db, last_poll).await;
    assert!(polls <= 1, "{polls} polls while events were applied");
    assert_eq!(api_requests(&org).await - before, 2 + poll_calls);
    crate::run::stop(daemon).await;
    let _ = std::fs::remove_file(config);
}
