//! The torture test: users edit the org and an app edits the tables at the same time while
//! two `pgforce run` processes share the catalog (one writes, one stands by) and trouble
//! comes from every side: a process killed with SIGKILL or frozen with SIGSTOP past its
//! lease at random moments, a share of API calls failing (whole-call row locks and
//! per-record ones, 503s, dropped connections, answers lost after the work was done, bulk
//! jobs failing partway, writes that become visible late, query cursors released),
//! sessions expiring, a window with the org's API allocation spent, one with the
//! credentials revoked and one with Postgres breaking pgforce's own writes as deadlocks,
//! and a field lengthened in Salesforce mid-run.
//! pgforce talks to Postgres over TLS only. Then everything stops, pgforce settles, and the
//! two sides must agree: no record lost, none duplicated, no change left unsent, and
//! FAILED only for the changes that were invalid by design.
//!
//! Short form (10 steps, about a minute) in the test suite. Long form:
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

use crate::run::{config_file, count, pgforce, salesforce, stop, wait_for_count};

const SCHEMA: &str = r#"{"extend": {"Account": [
  {"name": "Ext__c", "type": "string", "length": 40, "externalId": true, "unique": true},
  {"name": "Region__c", "type": "string", "length": 10}]}}"#;

/// What widened Region__c holds on the Accounts the test edits in Salesforce.
const LONG_REGION: &str = "Europe, Middle East and Africa";

/// Accounts upserted by an external id; Contacts created plainly (a create sent twice is
/// a duplicate), in bursts large enough to go as bulk jobs; Leads read only, stored
/// straight from change events (CometD, `apply_events`) as well as polled. Short leases,
/// so a freeze outlives one; small query pages, so polls keep query cursors open; a short
/// request timeout, so creates a killed writer left are checked within 20 s.
const MAPPINGS: &str = r#"bulk_write_threshold = 100
query_batch_size = 200
request_timeout_seconds = 10
change_events = "cometd"
apply_events = true

[[connection.mapping]]
object = "Account"
access = "read_write"
fields = ["Name", "Industry", "Phone", "Ext__c", "Region__c"]
upsert_field = "Ext__c"
polling_seconds = 1

[[connection.mapping]]
object = "Contact"
access = "read_write"
fields = ["LastName", "Email", "AccountId"]
polling_seconds = 1

[[connection.mapping]]
object = "Lead"
access = "read_only"
fields = ["LastName", "Company", "Email"]
polling_seconds = 1

[engine]
lease_seconds = 3
shutdown_seconds = 5
"#;

/// How long a frozen process stays frozen: past its lease.
const FREEZE: Duration = Duration::from_secs(5);
/// How long the org's allocation stays spent, and its credentials revoked.
const WINDOW: Duration = Duration::from_secs(3);

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

/// Starts `pgforce run`. With `PGFORCE_TORTURE_LOGS=<dir>`, its log (at info level) is
/// appended to `<dir>/pgforce.log`, to see what happened after a failure.
fn start(path: &str) -> Child {
    let mut command = pgforce(&["run", "--config", path]);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    if let Ok(dir) = std::env::var("PGFORCE_TORTURE_LOGS") {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::path::Path::new(&dir).join("pgforce.log"))
            .unwrap();
        command.env("RUST_LOG", "info").stderr(log);
    }
    command.spawn().unwrap()
}

/// The app: inserts Accounts (`T-n`), edits them twice in a row, deletes some, now and
/// then inserts one Salesforce must refuse (no Name: `BAD-n`) or a burst of 120 Contacts
/// (`AppC-n-i`). Counts the changes it made in `changes`.
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
            } else if roll < 83 {
                // A burst of plain creates: a bulk job.
                next += 1;
                pg.execute(
                    "insert into salesforce.contact (lastname, email)
                     select 'AppC-' || $1::text || '-' || n, 'c' || n || '@example.com'
                     from generate_series(1, 120) n",
                    &[&next.to_string()],
                )
                .await
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

/// Sends `signal` (`STOP`, `CONT`) to a process.
fn signal(process: &Child, signal: &str) {
    let pid = process.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Which of the processes holds the connection's writer lease now, if one does.
async fn writer_holder(db: &TestDatabase, daemons: &[Child]) -> Option<usize> {
    let holder: Option<String> = db
        .client()
        .await
        .query_opt(
            "select split_part(holder, ':', 2) from pgforce.leases
             where name = 'writer:main' and expires_at > now()",
            &[],
        )
        .await
        .unwrap()
        .map(|row| row.get(0));
    let pid: u32 = holder?.parse().ok()?;
    daemons.iter().position(|d| d.id() == Some(pid))
}

/// Restarts PostgreSQL (long form only, when asked).
fn restart_postgres() {
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

/// What the test did to pgforce, for its closing line.
#[derive(Default)]
struct Trouble {
    kills: u64,
    freezes: u64,
    limit_windows: u64,
    credential_windows: u64,
    deadlock_windows: u64,
}

/// Makes a share of pgforce's own writes to the mapped tables (they run with
/// `xmlbinary = 'hex'`) fail with SQLSTATE 40P01 while `torture_faults.deadlocks_until`
/// lies ahead, as when the server breaks deadlocks by aborting them.
async fn install_deadlocks(db: &TestDatabase) {
    db.client()
        .await
        .batch_execute(
            "create table torture_faults (deadlocks_until timestamptz);
             insert into torture_faults values (null);
             create function torture_deadlock() returns trigger language plpgsql as $$
             begin
                 if current_setting('xmlbinary') = 'hex' and random() < 0.2
                    and (select deadlocks_until > now() from torture_faults) then
                     raise exception 'deadlock detected (injected)' using errcode = '40P01';
                 end if;
                 return coalesce(new, old);
             end $$;
             create trigger torture_deadlock before insert or update or delete on salesforce.account
                 for each row execute function torture_deadlock();
             create trigger torture_deadlock before insert or update or delete on salesforce.contact
                 for each row execute function torture_deadlock();",
        )
        .await
        .unwrap();
}

/// pgforce's sessions (named by `application_name`) with and without TLS.
async fn sessions_by_tls(db: &TestDatabase) -> (i64, i64) {
    let row = db
        .client()
        .await
        .query_one(
            "select count(*) filter (where s.ssl), count(*) filter (where not s.ssl)
             from pg_stat_activity a join pg_stat_ssl s using (pid)
             where a.application_name = 'pgforce-torture'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn torture_kills_freezes_faults_and_edits_on_both_sides_lose_and_duplicate_nothing() {
    let steps = env_number("PGFORCE_TORTURE_KILLS", 10);
    let restart_pg = std::env::var("PGFORCE_TORTURE_PG_RESTART").is_ok_and(|v| v == "1");
    let org = TestOrg::start_with(pgforce_emulator::EmulatorConfig {
        schema_files: vec![pgforce_emulator::Emulator::parse_schema_file(SCHEMA).unwrap()],
        ..Default::default()
    })
    .await;
    org.control(
        Method::POST,
        "/seed",
        Some(json!({ "Account": 300, "Contact": 600, "Lead": 100 })),
    )
    .await;
    org.control(
        Method::PUT,
        "/limits",
        Some(json!({ "dailyApiRequests": 1_000_000, "used": 0 })),
    )
    .await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, MAPPINGS);
    // pgforce's sessions speak TLS only, and say who they are.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("url = \"{}\"", db.url),
        &format!(
            "url = \"{}?sslmode=require&application_name=pgforce-torture\"",
            db.url
        ),
    );
    std::fs::write(&config, text).unwrap();
    let path = config.to_str().unwrap().to_owned();
    let started = Instant::now();
    // One process writes and reads; the other stands by to take over.
    let mut daemons = [start(&path), start(&path)];
    wait_for_count(&db, "select count(*) from salesforce.account", 300).await;
    wait_for_count(&db, "select count(*) from salesforce.contact", 600).await;
    wait_for_count(&db, "select count(*) from salesforce.lead", 100).await;
    install_deadlocks(&db).await;

    // Users edit the org; the app edits the tables; a share of calls fail.
    org.control(
        Method::POST,
        "/workload",
        Some(
            json!({ "ratePerSecond": 15, "objects": ["Account", "Contact", "Lead"],
                     "insertShare": 0.4, "updateShare": 0.6, "deleteShare": 0.0 }),
        ),
    )
    .await;
    org.control(
        Method::PUT,
        "/faults",
        Some(json!({ "unableToLockRowRate": 0.03, "recordLockRate": 0.02,
                     "serverUnavailableRate": 0.03, "dropConnectionRate": 0.02,
                     "lostResponseRate": 0.01, "bulkJobPartialFailureRate": 0.3,
                     "commitDelayRate": 0.02, "commitDelayMs": 1500,
                     "maxOpenCursorsPerUser": 1 })),
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
    let mut trouble = Trouble::default();
    let mut widened = Vec::new();
    for step in 0..steps {
        tokio::time::sleep(Duration::from_millis(1500 + dice.below(2500))).await;
        if step == steps / 2 {
            widened = widen_region(&org).await;
        }
        if step % 2 == 1 {
            org.control(Method::POST, "/sessions/expire", None).await;
        }
        if step % 10 == 3 {
            // The org's daily allocation runs out for a while.
            org.control(
                Method::PUT,
                "/limits",
                Some(json!({ "dailyApiRequests": 1_000_000, "used": 1_000_000 })),
            )
            .await;
            tokio::time::sleep(WINDOW).await;
            org.control(
                Method::PUT,
                "/limits",
                Some(json!({ "dailyApiRequests": 1_000_000, "used": 0 })),
            )
            .await;
            trouble.limit_windows += 1;
        } else if step % 10 == 7 {
            // An administrator takes the integration user's access away, then gives it back.
            org.control(Method::POST, "/credentials/revoke", None).await;
            tokio::time::sleep(WINDOW).await;
            org.control(Method::POST, "/credentials/restore", None)
                .await;
            trouble.credential_windows += 1;
        } else if step % 10 == 5 {
            // Postgres breaks a share of pgforce's own writes as deadlocks for a while.
            db.client()
                .await
                .execute(
                    "update torture_faults set deadlocks_until = now() + $1::text::interval",
                    &[&format!("{} seconds", WINDOW.as_secs())],
                )
                .await
                .unwrap();
            tokio::time::sleep(WINDOW).await;
            trouble.deadlock_windows += 1;
        } else if step % 4 == 1
            && let Some(holder) = writer_holder(&db, &daemons).await
        {
            // The writer freezes mid-work past its lease; the standby takes over.
            signal(&daemons[holder], "STOP");
            tokio::time::sleep(FREEZE).await;
            signal(&daemons[holder], "CONT");
            trouble.freezes += 1;
        } else {
            let victim = dice.below(2) as usize;
            daemons[victim].start_kill().unwrap();
            daemons[victim].wait().await.unwrap();
            if restart_pg && step == steps / 2 {
                restart_postgres();
            }
            daemons[victim] = start(&path);
            trouble.kills += 1;
        }
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
    wait_until_sent(&db).await;
    let (tls, plain) = sessions_by_tls(&db).await;
    assert!(
        tls > 0 && plain == 0,
        "pgforce's sessions: {tls} over TLS, {plain} in clear text"
    );
    // Two more polls bring the last writes home.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let [first, second] = daemons;
    stop(first).await;
    stop(second).await;

    // FAILED only for the inserts that were invalid by design, each once.
    let failed: Vec<String> = db
        .client()
        .await
        .query(
            "select coalesce(a.ext__c, l.table_name::text || ' row ' || l.record_id
                                || case when a.id is null and l.table_name = 'account' then ' (gone)' else '' end)
                    || ' (' || l.action || '): ' || l.sf_message
             from salesforce._trigger_log l
             left join salesforce.account a on l.table_name = 'account' and a.id = l.record_id
             where l.state = 'FAILED'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let bad = count(
        &db,
        "select count(*) from salesforce.account where ext__c like 'BAD-%'",
    )
    .await;
    let valid: Vec<&String> = failed.iter().filter(|f| !f.starts_with("BAD-")).collect();
    assert!(
        valid.is_empty(),
        "nothing valid failed: {valid:?}\nthe first one's history:\n{}",
        history_of_first_valid_failure(&db).await.join("\n")
    );
    assert_eq!(
        failed.len() as i64,
        bad,
        "one FAILED row per invalid insert"
    );
    // The user's cleanup of the invalid rows (their deletes are logged IGNORE: never sent).
    db.client()
        .await
        .batch_execute(
            "delete from salesforce.account where ext__c like 'BAD-%';
             update salesforce._trigger_log set state = 'IGNORED' where state = 'FAILED';",
        )
        .await
        .unwrap();

    // No duplicate: in Salesforce by external id and by the app's Contact names, in
    // Postgres by sfid and external id.
    let sf = salesforce(&org);
    let externals: Vec<String> = sf
        .query("SELECT Ext__c FROM Account WHERE Ext__c != null")
        .map_ok(|r| r["Ext__c"].as_str().unwrap_or_default().to_owned())
        .try_collect()
        .await
        .unwrap();
    let contacts: Vec<String> = sf
        .query("SELECT LastName FROM Contact WHERE LastName LIKE 'AppC-%'")
        .map_ok(|r| r["LastName"].as_str().unwrap_or_default().to_owned())
        .try_collect()
        .await
        .unwrap();
    let twice = |names: &[String]| {
        let mut seen = HashSet::new();
        let mut twice: Vec<String> = names.iter().filter(|n| !seen.insert(*n)).cloned().collect();
        twice.sort();
        twice
    };
    let (accounts_twice, contacts_twice) = (twice(&externals), twice(&contacts));
    let duplicated = accounts_twice.len() + contacts_twice.len();
    assert_eq!(
        duplicated, 0,
        "no record created twice in Salesforce: Accounts {accounts_twice:?}, Contacts {contacts_twice:?}"
    );
    let app_contacts = count(
        &db,
        "select count(*) from salesforce.contact where lastname like 'AppC-%'",
    )
    .await;
    assert_eq!(
        contacts.len() as i64,
        app_contacts,
        "every Contact the app created is in Salesforce, once; rows whose record is not:\n{}",
        rows_without_records(&org, &db).await.join("\n")
    );
    for table in ["account", "contact"] {
        assert_eq!(
            count(
                &db,
                &format!("select count(sfid) - count(distinct sfid) from salesforce.{table}")
            )
            .await,
            0,
            "{table}: one row per record"
        );
    }
    assert_eq!(
        count(&db, "select count(*) - count(distinct ext__c) from salesforce.account where ext__c is not null").await,
        0
    );

    // The field widened mid-run: its column followed, and every value longer than the old
    // length (the test's, and any the org's workload wrote since) is stored as it is.
    assert!(!widened.is_empty(), "Region__c was lengthened mid-run");
    let long_regions: Vec<(String, String)> = sf
        .query("SELECT Id, Region__c FROM Account")
        .map_ok(|r| {
            let id = r["Id"].as_str().unwrap_or_default().to_owned();
            (id, r["Region__c"].as_str().unwrap_or_default().to_owned())
        })
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, region)| region.chars().count() > 10)
        .collect();
    assert!(
        !long_regions.is_empty(),
        "some Accounts hold values only the widened column fits"
    );
    for (id, region) in &long_regions {
        let stored = db
            .client()
            .await
            .query_opt(
                "select region__c from salesforce.account where sfid = $1",
                &[id],
            )
            .await
            .unwrap()
            .and_then(|row| row.get::<_, Option<String>>(0));
        assert_eq!(
            stored.as_deref(),
            Some(region.as_str()),
            "the widened value of {id} is stored"
        );
    }

    // Both sides agree on every mapping.
    let reconciled = pgforce(&["reconcile", "--config", &path])
        .output()
        .await
        .unwrap();
    assert!(
        reconciled.status.success(),
        "{}\nfirst Accounts that differ (Salesforce | Postgres):\n{}\nfirst Contacts:\n{}",
        String::from_utf8_lossy(&reconciled.stdout),
        differences(
            &org,
            &db,
            "Account",
            &["Name", "Industry", "Phone", "Ext__c", "Region__c"]
        )
        .await
        .join("\n"),
        differences(&org, &db, "Contact", &["LastName", "Email", "AccountId"])
            .await
            .join("\n")
    );
    // Change events flowed: the Leads were stored from them too, not only polled.
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.mappings where object_name = 'Lead' and last_event_at is not null"
        )
        .await,
        1,
        "Lead changes came as change events"
    );
    let changes = app_changes.load(Ordering::Relaxed) + org_changes;
    println!(
        "torture: {} kills, {} freezes past the lease, {} API-limit, {} credentials and {} deadlock windows, {} field widened, {faults} faults, {changes} changes, 0 lost, {duplicated} duplicated, reconcile clean ({:.0} s)",
        trouble.kills,
        trouble.freezes,
        trouble.limit_windows,
        trouble.credential_windows,
        trouble.deadlock_windows,
        usize::from(!widened.is_empty()),
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_file(config);
}

/// An administrator lengthens Account.Region__c from 10 to 40 characters mid-run, and
/// users fill it on a few Accounts with values the old length could not hold. Returns
/// their Ids.
async fn widen_region(org: &TestOrg) -> Vec<String> {
    org.control(
        Method::PATCH,
        "/schema/Account/fields/Region__c",
        Some(json!({ "length": 40 })),
    )
    .await;
    let sf = salesforce(org);
    // Seeded records (their Ext__c is not the app's T-n or BAD-n), which the app leaves alone.
    let ids: Vec<String> = sf
        .query("SELECT Id, Ext__c FROM Account ORDER BY Id LIMIT 100")
        .map_ok(|r| {
            let ext = r["Ext__c"].as_str().unwrap_or_default();
            let seeded = !ext.starts_with("T-") && !ext.starts_with("BAD-");
            seeded.then(|| r["Id"].as_str().unwrap_or_default().to_owned())
        })
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .take(5)
        .collect();
    assert!(!ids.is_empty(), "seeded Accounts to lengthen Region__c on");
    for id in &ids {
        let region = serde_json::from_value(json!({ "Region__c": LONG_REGION })).unwrap();
        sf.update("Account", id, &region).await.unwrap();
    }
    ids
}

/// Every trigger-log row (live and archived) of the record behind the first valid FAILED
/// change, for a failure message.
async fn history_of_first_valid_failure(db: &TestDatabase) -> Vec<String> {
    db.client()
        .await
        .query(
            "with first as (
                 select l.table_name, l.record_id from salesforce._trigger_log l
                 left join salesforce.account a on l.table_name = 'account' and a.id = l.record_id
                 where l.state = 'FAILED' and coalesce(a.ext__c, '') not like 'BAD-%'
                 order by l.id limit 1)
             select concat_ws(' | ', h.id, h.action, h.state, h.sfid, h.created_at, h.processed_at,
                              h.sf_message, h.\"values\")
             from (select * from salesforce._trigger_log
                   union all select * from salesforce._trigger_log_archive) h
             join first f on f.table_name = h.table_name and f.record_id = h.record_id
             order by h.id",
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_else(|e| vec![e.to_string()])
}

/// Waits until nothing is left to send (bounded: pauses and backoffs take a while).
async fn wait_until_sent(db: &TestDatabase) {
    let open =
        "select count(*) from salesforce._trigger_log where state in ('NEW', 'PENDING', 'HELD')";
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = count(db, open).await;
        if left == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{left} changes never sent");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The app's Contact rows whose record Salesforce does not hold live, with what
/// Salesforce (queryAll) and the catalog know of each, for a failure message.
async fn rows_without_records(org: &TestOrg, db: &TestDatabase) -> Vec<String> {
    let live: HashSet<String> = salesforce(org)
        .query("SELECT Id FROM Contact WHERE LastName LIKE 'AppC-%'")
        .map_ok(|r| r["Id"].as_str().unwrap_or_default().to_owned())
        .try_collect()
        .await
        .unwrap();
    let pg = db.client().await;
    let rows = pg
        .query(
            "select id, coalesce(sfid, '(none)'), lastname, systemmodstamp::text, coalesce(_hc_lastop, '')
             from salesforce.contact where lastname like 'AppC-%'",
            &[],
        )
        .await
        .unwrap();
    let mut found = Vec::new();
    for row in rows {
        let sfid: String = row.get(1);
        if live.contains(&sfid) {
            continue;
        }
        let remote: Vec<String> = if sfid.starts_with("003") {
            salesforce(org)
                .query_all(&format!(
                    "SELECT Id, LastName, IsDeleted, SystemModstamp, CreatedDate FROM Contact WHERE Id = '{sfid}'"
                ))
                .map_ok(|r| serde_json::Value::Object(r).to_string())
                .try_collect()
                .await
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let stale: Vec<String> = pg
            .query(
                "select reported_at::text || ' ' || coalesce(outcome, 'open') from pgforce.stale_creates where sfid = $1",
                &[&sfid],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        found.push(format!(
            "row {} sfid {sfid} {} stamp {} lastop {:?}; Salesforce: {remote:?}; stale-create reports: {stale:?}",
            row.get::<_, i32>(0),
            row.get::<_, String>(2),
            row.get::<_, Option<String>>(3).unwrap_or_default(),
            row.get::<_, String>(4),
        ));
    }
    found
}

/// The first records whose mapped fields (or stamp, to the second) differ between
/// Salesforce and Postgres: `Salesforce | Postgres`, each `field;…;stamp`, then the
/// record's trigger-log history (live and archived), for a failure message.
async fn differences(
    org: &TestOrg,
    db: &TestDatabase,
    object: &str,
    fields: &[&str],
) -> Vec<String> {
    use std::collections::HashMap;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "null".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let soql = format!(
        "SELECT Id, {}, SystemModstamp FROM {object}",
        fields.join(", ")
    );
    let remote: HashMap<String, Vec<String>> = salesforce(org)
        .query(&soql)
        .map_ok(|r| {
            let mut values: Vec<String> = fields.iter().map(|f| text(&r[*f])).collect();
            values.push(text(&r["SystemModstamp"]));
            (text(&r["Id"]), values)
        })
        .try_collect()
        .await
        .unwrap();
    let table = object.to_lowercase();
    let columns: Vec<String> = fields
        .iter()
        .map(|f| format!("coalesce({}::text, 'null')", f.to_lowercase()))
        .collect();
    let local = db
        .client()
        .await
        .query(
            &format!(
                "select sfid::text, array[{}, systemmodstamp::text, _hc_lastop::text], id
                 from salesforce.{table} where sfid is not null",
                columns.join(", ")
            ),
            &[],
        )
        .await
        .unwrap();
    // Stamps compared to the second: `2026-01-02T03:04:05.000+0000` and `2026-01-02 03:04:05`.
    let stamp = |s: &str| s.replace('T', " ").chars().take(19).collect::<String>();
    let mut found = Vec::new();
    for row in &local {
        let (sfid, mine, id): (String, Vec<Option<String>>, i32) =
            (row.get(0), row.get(1), row.get(2));
        let mine: Vec<String> = mine.into_iter().map(Option::unwrap_or_default).collect();
        let Some(theirs) = remote.get(&sfid) else {
            continue;
        };
        let n = fields.len();
        let same = mine[..n] == theirs[..n] && stamp(&mine[n]) == stamp(&theirs[n]);
        if same {
            continue;
        }
        found.push(format!("{sfid}: {} | {}", theirs.join(";"), mine.join(";")));
        let history = db
            .client()
            .await
            .query(
                "select concat_ws(' ', id, action, state, processed_at::text, updated_at::text,
                                  \"values\", sf_message)
                 from (select * from salesforce._trigger_log
                       union all select * from salesforce._trigger_log_archive) l
                 where table_name = $1 and record_id = $2 order by id",
                &[&table, &id],
            )
            .await
            .unwrap();
        found.extend(
            history
                .iter()
                .map(|r| format!("    {}", r.get::<_, String>(0))),
        );
        if found.len() > 40 {
            break;
        }
    }
    found
}
