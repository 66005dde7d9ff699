//! The torture test: users edit the org and an app edits the tables at the same time while
//! `pgforce run` is killed with SIGKILL at random moments, a share of API calls fail
//! (row locks, 503s, dropped connections, answers lost after the work was done) and
//! sessions expire. Then everything stops, pgforce settles, and the two sides must agree:
//! no record lost, none duplicated, no change left unsent, and FAILED only for the changes
//! that were invalid by design.
//!
//! Short form (10 kills, about half a minute) in the test suite. Long form:
//! `PGFORCE_TORTURE_KILLS=100 cargo test --release -p pgforce --test main torture -- --nocapture`
//! (add `PGFORCE_TORTURE_PG_RESTART=1` to restart PostgreSQL halfway; only when nothing
//! else uses the server).

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use pgforce_emulator::testing::TestOrg;
use pgforce_store::testing::TestDatabase;
use reqwest::Method;
use serde_json::json;
use tokio::process::Child;

use crate::run::{config_file, count, pgforce, pgforce_ok, salesforce, stop, wait_for_count};

const SCHEMA: &str = r#"{"extend": {"Account": [
  {"name": "Ext__c", "type": "string", "length": 40, "externalId": true, "unique": true}]}}"#;

const MAPPINGS: &str = r#"
[[connection.mapping]]
object = "Account"
access = "read_write"
fields = ["Name", "Industry", "Phone", "Ext__c"]
upsert_field = "Ext__c"
polling_seconds = 1

[[connection.mapping]]
object = "Contact"
access = "read_only"
fields = ["LastName", "Email", "AccountId"]
polling_seconds = 1
"#;

/// A small deterministic-enough generator (no dependency for a test's dice).
struct Dice(u64);

impl Dice {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64)
            | 1;
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start(path: &str) -> Child {
    pgforce(&["run", "--config", path])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The app: inserts Accounts (`T-n`), edits them twice in a row, deletes some, and now
/// and then inserts one Salesforce must refuse (no Name: `BAD-n`). Returns changes made.
async fn app_workload(url: String, running: Arc<AtomicBool>, changes: Arc<AtomicU64>) {
    let mut dice = Dice::new();
    let mut next = 0_u64;
    while running.load(Ordering::Relaxed) {
        let Ok(pg) = pgforce_store::connect(&url).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while running.load(Ordering::Relaxed) {
            let roll = dice.below(100);
            let pick = dice.below(next.max(1));
            let result = if roll < 40 || next == 0 {
                next += 1;
                pg.execute(
                    "insert into salesforce.account (name, industry, ext__c) values ($1, 'Energy', $2)",
                    &[&format!("App {next}"), &format!("T-{next}")],
                )
                .await
            } else if roll < 80 {
                // Rapid successive edits of one row.
                let ext = format!("T-{pick}");
                let first = pg
                    .execute(
                        "update salesforce.account set phone = $1 where ext__c = $2",
                        &[&format!("+1 555 {roll}"), &ext],
                    )
                    .await;
                let second = pg
                    .execute(
                        "update salesforce.account set industry = $1 where ext__c = $2",
                        &[&format!("Industry {roll}"), &ext],
                    )
                    .await;
                first.and(second).map(|n| n * 2)
            } else if roll < 92 {
                pg.execute(
                    "delete from salesforce.account where ext__c = $1",
                    &[&format!("T-{pick}")],
                )
                .await
            } else {
                next += 1;
                pg.execute(
                    "insert into salesforce.account (industry, ext__c) values ('Bad', $1)",
                    &[&format!("BAD-{next}")],
                )
                .await
            };
            match result {
                Ok(n) => {
                    changes.fetch_add(n, Ordering::Relaxed);
                }
                // The database may be restarting: reconnect.
                Err(_) => break,
            }
            tokio::time::sleep(Duration::from_millis(25 + dice.below(40))).await;
        }
    }
}

#[tokio::test]
async fn torture_kills_faults_and_edits_on_both_sides_lose_and_duplicate_nothing() {
    let kills = env_number("PGFORCE_TORTURE_KILLS", 10);
    let restart_postgres = std::env::var("PGFORCE_TORTURE_PG_RESTART").is_ok_and(|v| v == "1");
    let org = TestOrg::start_with(pgforce_emulator::EmulatorConfig {
        schema_files: vec![pgforce_emulator::Emulator::parse_schema_file(SCHEMA).unwrap()],
        ..Default::default()
    })
    .await;
    org.control(
        Method::POST,
        "/seed",
        Some(json!({ "Account": 300, "Contact": 600 })),
    )
    .await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, MAPPINGS);
    let path = config.to_str().unwrap().to_owned();
    let started = Instant::now();
    let mut daemon = start(&path);
    wait_for_count(&db, "select count(*) from salesforce.account", 300).await;
    wait_for_count(&db, "select count(*) from salesforce.contact", 600).await;

    // Users edit the org; the app edits the tables; a share of calls fail.
    org.control(
        Method::POST,
        "/workload",
        Some(
            json!({ "ratePerSecond": 15, "objects": ["Account", "Contact"],
                     "insertShare": 0.4, "updateShare": 0.6, "deleteShare": 0.0 }),
        ),
    )
    .await;
    org.control(
        Method::PUT,
        "/faults",
        Some(
            json!({ "unableToLockRowRate": 0.04, "serverUnavailableRate": 0.03,
                     "dropConnectionRate": 0.02, "lostResponseRate": 0.01 }),
        ),
    )
    .await;
    let running = Arc::new(AtomicBool::new(true));
    let app_changes = Arc::new(AtomicU64::new(0));
    let app = tokio::spawn(app_workload(
        db.url.clone(),
        Arc::clone(&running),
        Arc::clone(&app_changes),
    ));

    let mut dice = Dice::new();
    for kill in 0..kills {
        tokio::time::sleep(Duration::from_millis(1500 + dice.below(2500))).await;
        daemon.start_kill().unwrap();
        daemon.wait().await.unwrap();
        if kill % 2 == 1 {
            org.control(Method::POST, "/sessions/expire", None).await;
        }
        if restart_postgres && kill == kills / 2 {
            let version = std::fs::read_dir("/etc/postgresql")
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .file_name();
            let status = std::process::Command::new("pg_ctlcluster")
                .args([
                    "--skip-systemctl-redirect",
                    version.to_str().unwrap(),
                    "main",
                    "restart",
                ])
                .status()
                .unwrap();
            assert!(status.success(), "PostgreSQL restarted");
        }
        daemon = start(&path);
    }

    // Stop the workloads and the faults; let pgforce finish what is queued.
    running.store(false, Ordering::Relaxed);
    app.await.unwrap();
    org.control(Method::DELETE, "/workload", None).await;
    org.control(Method::PUT, "/faults", Some(json!({}))).await;
    let stats = org.control(Method::GET, "/stats", None).await;
    let faults = stats["api"]["faultsInjected"].as_u64().unwrap_or_default();
    let workload = org.control(Method::GET, "/workload", None).await;
    let org_changes = workload["inserted"].as_u64().unwrap_or_default()
        + workload["updated"].as_u64().unwrap_or_default();
    wait_for_count(
        &db,
        "select count(*) from salesforce._trigger_log where state in ('NEW', 'PENDING', 'HELD')",
        0,
    )
    .await;
    // Two more polls bring the last writes home.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop(daemon).await;

    // FAILED only for the inserts that were invalid by design, each once.
    let failed = db
        .client()
        .await
        .query(
            "select a.ext__c from salesforce._trigger_log l join salesforce.account a on a.id = l.record_id
             where l.state = 'FAILED'",
            &[],
        )
        .await
        .unwrap();
    let bad = count(
        &db,
        "select count(*) from salesforce.account where ext__c like 'BAD-%'",
    )
    .await;
    assert_eq!(
        failed.len() as i64,
        bad,
        "one FAILED row per invalid insert"
    );
    assert!(
        failed
            .iter()
            .all(|r| r.get::<_, String>(0).starts_with("BAD-")),
        "nothing valid failed"
    );
    // The user's cleanup of the invalid rows (their deletes are logged IGNORE: never sent).
    db.client()
        .await
        .batch_execute("delete from salesforce.account where ext__c like 'BAD-%'")
        .await
        .unwrap();
    db.client()
        .await
        .batch_execute(
            "update salesforce._trigger_log set state = 'IGNORED' where state = 'FAILED'",
        )
        .await
        .unwrap();

    // No duplicate: in Salesforce by external id, in Postgres by sfid and external id.
    let externals: Vec<String> = salesforce(&org)
        .query("SELECT Ext__c FROM Account WHERE Ext__c != null")
        .map_ok(|r| r["Ext__c"].as_str().unwrap_or_default().to_owned())
        .try_collect()
        .await
        .unwrap();
    let distinct: HashSet<&String> = externals.iter().collect();
    let duplicated = externals.len() - distinct.len();
    assert_eq!(duplicated, 0, "no record created twice in Salesforce");
    assert_eq!(
        count(&db, "select count(*) - count(distinct ext__c) from salesforce.account where ext__c is not null").await,
        0
    );
    assert_eq!(
        count(
            &db,
            "select count(sfid) - count(distinct sfid) from salesforce.account"
        )
        .await,
        0
    );

    // Both sides agree on every mapping.
    let reconciled = pgforce_ok(&["reconcile", "--config", &path]).await;
    assert!(
        reconciled.contains("Salesforce and Postgres agree"),
        "{reconciled}"
    );
    let changes = app_changes.load(Ordering::Relaxed) + org_changes;
    println!(
        "torture: {kills} kills, {faults} faults, {changes} changes, 0 lost, {duplicated} duplicated, reconcile clean ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_file(config);
}
