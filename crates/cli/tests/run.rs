//! `pgforce run` syncs what the config file names, reports bad config with the mapping and
//! field named, stops cleanly on SIGTERM; `pgforce status` shows the mappings.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pgforce_emulator::testing::TestOrg;
use pgforce_salesforce::{AllowedHosts, Client, ClientConfig, Credentials, SecretString};
use pgforce_store::testing::TestDatabase;
use tokio::process::Command;

/// A config file syncing `org` into `db` with `mappings`; the org's listeners (HTTP, HTTPS,
/// Pub/Sub) are the hosts it allows besides Salesforce's.
pub fn config_file(org: &TestOrg, db: &TestDatabase, mappings: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.toml", db.name));
    let text = format!(
        r#"[database]
url = "{url}"

{security}
[[connection]]
name = "main"
schema = "salesforce"
login_url = "{login}"
auth = "password"
username = "admin@example.com"
password = "${{PGFORCE_TEST_SF_PASSWORD}}"
client_id = "pgforce"
client_secret = "pgforce"
{mappings}"#,
        url = db.url,
        security = allowing(org),
        login = org.http_url,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The `[security]` section allowing `org`'s listeners (HTTP, HTTPS and Pub/Sub).
pub fn allowing(org: &TestOrg) -> String {
    let hosts = [&org.http_url, &org.https_url]
        .map(|url| url.split_once("://").map_or(url.as_str(), |(_, host)| host))
        .map(|host| format!("{host:?}"));
    format!(
        "[security]\nallowed_login_hosts = [{}, {:?}]\n",
        hosts.join(", "),
        org.pubsub_endpoint
    )
}

pub const ACCOUNT_MAPPING: &str = r#"
[[connection.mapping]]
object = "Account"
access = "read_only"
fields = ["Name", "Industry", "AnnualRevenue"]
polling_seconds = 1
"#;

/// An org with `accounts` seeded Accounts.
pub async fn seeded_org(accounts: u64) -> TestOrg {
    let org = TestOrg::start().await;
    let plan = serde_json::json!({ "Account": accounts });
    org.control(reqwest::Method::POST, "/seed", Some(plan))
        .await;
    org
}

/// A client logged in to the org as its administrator, over plain HTTP.
pub fn salesforce(org: &TestOrg) -> Client {
    let credentials = Credentials::Password {
        client_id: "pgforce".to_owned(),
        client_secret: SecretString::from("pgforce"),
        username: "admin@example.com".to_owned(),
        password: SecretString::from(pgforce_emulator::DEFAULT_PASSWORD),
    };
    let mut config = ClientConfig::new(org.http_url.clone(), credentials);
    config.allowed_hosts = AllowedHosts::with_extra(&["127.0.0.1"]).unwrap();
    Client::new(config).unwrap()
}

pub fn pgforce(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pgforce"));
    command
        .args(args)
        .env(
            "PGFORCE_TEST_SF_PASSWORD",
            pgforce_emulator::DEFAULT_PASSWORD,
        )
        // Daemons log warnings unless PGFORCE_TEST_RUST_LOG asks for more (to diagnose).
        .env(
            "RUST_LOG",
            std::env::var("PGFORCE_TEST_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        // Daemons of tests running together must not want one port.
        .env("PGFORCE_LISTEN", "127.0.0.1:0")
        .env_remove("DATABASE_URL")
        // A failing test must not leave a daemon running.
        .kill_on_drop(true);
    command
}

/// Runs `pgforce args`, fails the test with both output streams unless it succeeds,
/// and returns its stdout.
pub async fn pgforce_ok(args: &[&str]) -> String {
    let output = pgforce(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "pgforce {} failed:\n{stdout}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

pub async fn count(db: &TestDatabase, sql: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

/// Waits (bounded) until `sql` counts `expected`.
pub async fn wait_for_count(db: &TestDatabase, sql: &str, expected: i64) {
    wait_for_count_within(db, sql, expected, Duration::from_secs(30)).await;
}

/// Waits until `sql` counts `expected`, for at most `limit`.
pub async fn wait_for_count_within(db: &TestDatabase, sql: &str, expected: i64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let now = count(db, sql).await;
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {sql} = {expected} (now {now})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn run_loads_polls_and_stops_cleanly_on_sigterm() {
    let org = seeded_org(300).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let mut daemon = pgforce(&["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 300).await;

    let sf = salesforce(&org);
    let fields =
        serde_json::from_value(serde_json::json!({ "Name": "Arrived", "Industry": "Banking" }))
            .unwrap();
    sf.create("Account", &fields).await.unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'Arrived'",
        1,
    )
    .await;

    let table = pgforce_ok(&["status", "--config", config.to_str().unwrap()]).await;
    let account_row = table
        .lines()
        .find(|l| l.contains("Account"))
        .unwrap_or_default();
    let columns: Vec<&str> = account_row.split_whitespace().collect();
    assert_eq!(
        [columns[0], columns[1], columns[3], columns[4]],
        ["main", "Account", "301", "301"],
        "{table}"
    );
    assert!(
        ["DATA_SYNCED", "POLLING_SF_CHANGES"].contains(&columns[2]),
        "a synced mapping: {table}"
    );

    let pid = daemon.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), daemon.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "pgforce run exits 0 on SIGTERM");
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn reload_empties_the_table_and_loads_it_again() {
    let org = seeded_org(50).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let config_path = config.to_str().unwrap();
    let daemon = pgforce(&["run", "--config", config_path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 50).await;
    stop(daemon).await;

    db.client().await.batch_execute("delete from salesforce.account where id % 2 = 0; update salesforce.account set name = 'damaged'").await.unwrap();
    let stdout = pgforce_ok(&["reload", "--config", config_path, "--now", "account"]).await;
    assert!(
        stdout.contains("RELOAD COMPLETE: Account 50 rows"),
        "{stdout}"
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from salesforce.account where name <> 'damaged'"
        )
        .await,
        50
    );
    let output = pgforce(&["reload", "--config", config_path, "Contact"])
        .output()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("connection main has no mapping for Contact")
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn fields_added_to_a_mapping_are_back_filled_in_place() {
    let org = seeded_org(40).await;
    let db = TestDatabase::create().await;
    let narrow =
        ACCOUNT_MAPPING.replace("[\"Name\", \"Industry\", \"AnnualRevenue\"]", "[\"Name\"]");
    let config = config_file(&org, &db, &narrow);
    let path = config.to_str().unwrap().to_owned();
    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 40).await;
    stop(daemon).await;
    let ids_before = count(&db, "select sum(id) from salesforce.account").await;

    config_file(&org, &db, ACCOUNT_MAPPING);
    let sf = salesforce(&org);
    let with_revenue = sf
        .count("SELECT COUNT() FROM Account WHERE AnnualRevenue != null")
        .await
        .unwrap();
    assert!(with_revenue > 0);
    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let filled = "select count(*) from salesforce.account where annualrevenue is not null";
    wait_for_count(&db, filled, i64::try_from(with_revenue).unwrap()).await;
    stop(daemon).await;
    assert_eq!(
        count(&db, "select count(*) from salesforce.account").await,
        40,
        "no row was added"
    );
    assert_eq!(
        count(&db, "select sum(id) from salesforce.account").await,
        ids_before,
        "rows were filled in place"
    );
    let _ = std::fs::remove_file(config);
}

/// Starts `pgforce run` with warnings on stderr and waits (bounded) for a line containing
/// `pattern`; returns the daemon.
async fn run_until_logged(config: &str, pattern: &str) -> tokio::process::Child {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let mut daemon = pgforce(&["run", "--config", config])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stderr.take().unwrap()).lines();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(pattern) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found.ok(),
        Some(true),
        "pgforce run never logged {pattern:?}"
    );
    daemon
}

/// Sends SIGTERM and expects a clean exit.
pub async fn stop(mut daemon: tokio::process::Child) {
    let pid = daemon.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(
        daemon.wait().await.unwrap().success(),
        "pgforce run exits 0 on SIGTERM"
    );
}

#[tokio::test]
async fn a_spent_daily_budget_pauses_polling_and_events_are_logged() {
    let org = seeded_org(10).await;
    let db = TestDatabase::create().await;
    // The load costs two calls (the newest record, one page): the budget is then spent.
    let mapping = format!("{ACCOUNT_MAPPING}max_daily_api_calls = 2\n");
    let config = config_file(&org, &db, &mapping);
    let daemon = run_until_logged(
        config.to_str().unwrap(),
        "max_daily_api_calls (2) reached for today",
    )
    .await;
    assert_eq!(
        count(&db, "select count(*) from salesforce.account").await,
        10
    );
    let calls_before = org.control(reqwest::Method::GET, "/stats", None).await["usage"]["used"]
        .as_i64()
        .unwrap();
    let events = "select count(*) from pgforce.sync_events where kind = 'load' and outcome = 'ok' and records = 10 and api_calls = 2";
    assert_eq!(
        count(&db, events).await,
        1,
        "the load is in the event log with its cost"
    );
    stop(daemon).await;
    let calls_after = org.control(reqwest::Method::GET, "/stats", None).await["usage"]["used"]
        .as_i64()
        .unwrap();
    assert_eq!(calls_after, calls_before, "a paused mapping makes no calls");
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn polling_pauses_when_the_org_nears_its_daily_limit() {
    let org = seeded_org(10).await;
    org.control(
        reqwest::Method::PUT,
        "/limits",
        Some(serde_json::json!({ "dailyApiRequests": 100, "used": 96 })),
    )
    .await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let daemon = run_until_logged(config.to_str().unwrap(), "API requests today").await;
    let rows = count(&db, "select count(*) from salesforce.account").await;
    assert_eq!(
        rows, 0,
        "setup's describe calls showed the ceiling: not even the load runs"
    );
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_daemon_killed_mid_load_restarts_and_converges_without_duplicates() {
    // 9,000 Accounts: read through REST pages.
    killed_mid_load_then_restarted(9000, "state = 'RELOAD_TABLE'").await;
}

#[tokio::test]
async fn a_daemon_killed_during_a_bulk_load_restarts_and_converges_without_duplicates() {
    // 12,000 Accounts: above the bulk threshold, read through a Bulk API query job, which
    // the catalog names while its results load.
    killed_mid_load_then_restarted(
        12_000,
        "state = 'LOADING_BULK_JOB' and activity like 'loading the results of bulk query job 750%'",
    )
    .await;
}

/// Kills `pgforce run` with SIGKILL once the mapping meets `condition` (SQL on
/// `pgforce.mappings`) during the initial load of `accounts` Accounts, checks the cut-off
/// load left nothing, restarts it and expects every Account exactly once.
async fn killed_mid_load_then_restarted(accounts: i64, condition: &str) {
    // Slow answers stretch the load so the kill lands in the middle of it.
    let faults = pgforce_emulator::FaultConfig {
        latency_ms: 150,
        ..Default::default()
    };
    let org = TestOrg::start_with(pgforce_emulator::EmulatorConfig {
        faults,
        ..Default::default()
    })
    .await;
    org.control(
        reqwest::Method::POST,
        "/seed",
        Some(serde_json::json!({ "Account": accounts })),
    )
    .await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let path = config.to_str().unwrap().to_owned();
    let mut daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(
        &db,
        &format!("select count(*) from pgforce.mappings where {condition}"),
        1,
    )
    .await;
    std::process::Command::new("kill")
        .args(["-KILL", &daemon.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(
        !daemon.wait().await.unwrap().success(),
        "killed, not stopped"
    );
    assert_eq!(
        count(&db, "select count(*) from salesforce.account").await,
        0,
        "the cut-off load left nothing"
    );
    assert_eq!(
        count(&db, "select count(*) from pgforce.read_cursors").await,
        0,
        "nor a cursor"
    );

    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", accounts).await;
    assert_eq!(
        count(&db, "select count(distinct sfid) from salesforce.account").await,
        accounts
    );
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_second_daemon_stands_by_and_takes_over_reading_when_the_first_dies() {
    let org = seeded_org(20).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let path = config.to_str().unwrap().to_owned();
    let mut first = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 20).await;
    let second = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let first_pid = first.id().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let holder_is_first = format!(
        "select count(*) from pgforce.leases where name like 'reader:%' and split_part(holder, ':', 2) = '{first_pid}'"
    );
    assert_eq!(
        count(&db, &holder_is_first).await,
        1,
        "the first daemon reads"
    );

    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let sf = salesforce(&org);
    let sfid: String = db
        .client()
        .await
        .query_one("select sfid from salesforce.account limit 1", &[])
        .await
        .unwrap()
        .get(0);
    let fields =
        serde_json::from_value(serde_json::json!({ "Name": "Read by the second" })).unwrap();
    sf.update("Account", &sfid, &fields).await.unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'Read by the second'",
        1,
    )
    .await;
    assert_eq!(
        count(&db, &holder_is_first).await,
        0,
        "the lease moved to the second daemon"
    );
    stop(second).await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_restart_while_the_org_refuses_the_credentials_waits_for_them_and_stops_cleanly() {
    let org = seeded_org(10).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let path = config.to_str().unwrap();
    let daemon = pgforce(&["run", "--config", path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 10).await;
    stop(daemon).await;

    // An administrator takes the integration user's access away; pgforce restarts meanwhile
    // (a deploy, a rescheduled pod). It must wait for the org, not exit.
    org.control(reqwest::Method::POST, "/credentials/revoke", None)
        .await;
    let mut waiting = run_until_logged(path, "cannot set up the configured mappings yet").await;
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "pgforce run exited while the org refused its credentials"
    );
    // A signal while it waits ends it cleanly.
    stop(waiting).await;

    let daemon = run_until_logged(path, "cannot set up the configured mappings yet").await;
    org.control(reqwest::Method::POST, "/credentials/restore", None)
        .await;
    let fields = serde_json::from_value(serde_json::json!({ "Name": "After the window" })).unwrap();
    salesforce(&org).create("Account", &fields).await.unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'After the window'",
        1,
    )
    .await;
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}
