//! `pgforce run` keeps its Postgres sessions bounded: API requests and metric scrapes
//! borrow from a pool of `[database] pool_size` sessions, so a burst of anonymous or
//! junk-token clients cannot exhaust Postgres's `max_connections` and sync keeps going;
//! a pooled session Postgres ended is replaced, never handed out; and a scrape reads
//! row estimates instead of scanning the mapped tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use pgforce_store::testing::TestDatabase;
use reqwest::StatusCode;

use crate::run::{config_file, seeded_org, stop, wait_for_count};
use crate::server::{READ_WRITE_ACCOUNTS, serving};

/// The pool size the tests configure.
const POOL_SIZE: i64 = 3;

/// Sessions besides the pool's and the workers' steady ones that may open now and then:
/// the supervisor's catalog round and the notifier's tick each open one of their own.
const TRANSIENT_SESSIONS: i64 = 2;

/// A configuration with `[database] pool_size = POOL_SIZE` and `mappings`.
fn pooled_config(
    org: &pgforce_emulator::testing::TestOrg,
    db: &TestDatabase,
    mappings: &str,
) -> String {
    let path = config_file(org, db, mappings);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "[database]\n",
        &format!("[database]\npool_size = {POOL_SIZE}\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Sessions on the test database other than the asking one.
async fn backends(client: &pgforce_store::Session) -> i64 {
    client
        .query_one(
            "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The most sessions seen on the test database while `work` runs (sampled every 10 ms).
async fn peak_backends_during<T>(db: &TestDatabase, work: impl Future<Output = T>) -> (i64, T) {
    let client = db.client().await;
    let peak = Arc::new(AtomicI64::new(0));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sampler = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(backends(&client).await, Ordering::Relaxed);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        })
    };
    let result = work.await;
    stop_tx.send(true).unwrap();
    sampler.await.unwrap();
    (peak.load(Ordering::Relaxed), result)
}

#[tokio::test]
async fn a_burst_of_scrapes_and_junk_tokens_stays_within_the_pool_and_sync_goes_on() {
    let org = seeded_org(5).await;
    let db = TestDatabase::create().await;
    let config = pooled_config(&org, &db, READ_WRITE_ACCOUNTS);
    let (daemon, base) = serving(&config).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 5).await;

    // The workers' own sessions (plus any pooled ones already open), at rest.
    let (at_rest, ()) = peak_backends_during(&db, tokio::time::sleep(Duration::from_secs(3))).await;

    let http = reqwest::Client::new();
    let burst = async {
        let mut requests = tokio::task::JoinSet::new();
        for i in 0..300 {
            let request = match i % 2 {
                0 => http.get(format!("{base}/metrics")),
                _ => http
                    .get(format!("{base}/api/v3/connections"))
                    .bearer_auth(format!("junk-token-{i}")),
            };
            requests.spawn(async move { (i % 2, request.send().await.unwrap().status()) });
        }
        requests.join_all().await
    };
    let (peak, answers) = peak_backends_during(&db, burst).await;
    let bound = at_rest + POOL_SIZE + TRANSIENT_SESSIONS;
    assert!(
        peak <= bound,
        "{peak} sessions during the burst; at most {bound} expected ({at_rest} at rest + pool of {POOL_SIZE} + {TRANSIENT_SESSIONS} transient)"
    );
    for (kind, status) in answers {
        let expected = match kind {
            0 => StatusCode::OK,
            _ => StatusCode::UNAUTHORIZED,
        };
        assert_eq!(status, expected, "request kind {kind}");
    }

    // Sync goes on: an app insert reaches Salesforce and its sfid comes back.
    db.client()
        .await
        .batch_execute("insert into salesforce.account (name) values ('After the burst')")
        .await
        .unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'After the burst' and sfid is not null",
        1,
    )
    .await;
    stop(daemon).await;
}

/// The pids of the pool's sessions on the test database.
async fn pooled_pids(client: &pgforce_store::Session) -> Vec<i32> {
    client
        .query(
            "select pid from pg_stat_activity where datname = current_database() and application_name = $1 order by pid",
            &[&pgforce_store::POOL_APPLICATION_NAME],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn a_pooled_session_postgres_terminated_is_replaced_not_handed_out() {
    let org = seeded_org(3).await;
    let db = TestDatabase::create().await;
    let config = pooled_config(&org, &db, READ_WRITE_ACCOUNTS);
    let (daemon, base) = serving(&config).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 3).await;
    let scrape = || async { reqwest::get(format!("{base}/metrics")).await.unwrap() };
    assert_eq!(scrape().await.status(), StatusCode::OK);

    let client = db.client().await;
    let before = pooled_pids(&client).await;
    assert!(!before.is_empty(), "the scrape left a pooled session open");
    assert!(before.len() <= POOL_SIZE as usize, "{before:?}");
    for pid in &before {
        client
            .execute("select pg_terminate_backend($1)", &[pid])
            .await
            .unwrap();
    }

    // Every scrape right after is answered on a live session.
    for _ in 0..POOL_SIZE + 1 {
        let response = scrape().await;
        let status = response.status();
        assert_eq!(status, StatusCode::OK, "{}", response.text().await.unwrap());
    }
    let after = pooled_pids(&client).await;
    assert!(
        !after.is_empty() && after.len() <= POOL_SIZE as usize,
        "{after:?}"
    );
    assert!(
        after.iter().all(|pid| !before.contains(pid)),
        "terminated sessions {before:?} are gone; now {after:?}"
    );
    stop(daemon).await;
}

/// Account, read-only, polled rarely: nothing but scrapes reads its table.
const QUIET_ACCOUNTS: &str = r#"
[[connection.mapping]]
object = "Account"
access = "read_only"
fields = ["Name"]
polling_seconds = 3600
"#;

/// Sequential scans of `salesforce.account` so far, as the statistics report them.
async fn seq_scans(client: &pgforce_store::Session) -> i64 {
    client
        .batch_execute("select pg_stat_clear_snapshot()")
        .await
        .unwrap();
    client
        .query_one(
            "select seq_scan from pg_stat_user_tables where schemaname = 'salesforce' and relname = 'account'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The `pgforce_postgres_rows` sample of Account in a scrape.
async fn account_rows(base: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = r#"pgforce_postgres_rows{connection="main",object="Account"} "#;
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.parse().ok())
}

/// Scrapes until Account's rows show `expected` (bounded: statistics arrive within a
/// second or so).
async fn rows_reach(base: &str, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = account_rows(base).await;
        if rows == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rows stayed {rows:?}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn scrapes_report_rows_without_scanning_mapped_tables() {
    let org = seeded_org(30).await;
    let db = TestDatabase::create().await;
    let config = pooled_config(&org, &db, QUIET_ACCOUNTS);
    let (daemon, base) = serving(&config).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 30).await;

    // Never analyzed yet: the statistics' live-row count.
    rows_reach(&base, 30.0).await;
    let client = db.client().await;
    client
        .batch_execute("analyze salesforce.account")
        .await
        .unwrap();
    rows_reach(&base, 30.0).await;
    // The statistics of the scrapes so far settle (they are sent within a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let scans = seq_scans(&client).await;
    for _ in 0..20 {
        assert_eq!(account_rows(&base).await, Some(30.0));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        seq_scans(&client).await,
        scans,
        "twenty scrapes scanned salesforce.account"
    );
    stop(daemon).await;
}
