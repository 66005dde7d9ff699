//! Fenced leases: a `pgforce run` frozen past its lease while a standby takes its writer
//! over never writes a record twice, and a SIGTERM under a steady stream of app writes
//! ends the process within `shutdown_seconds`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use pgforce_emulator::testing::TestOrg;
use pgforce_store::testing::TestDatabase;
use reqwest::Method;
use tokio::process::Child;

use crate::run::{config_file, count, pgforce, salesforce, stop, wait_for_count};

/// Accounts mapped read-write, written through sObject Collections only, with 3-second
/// leases and a 5-second shutdown; creates a frozen writer was sending are checked 20 s
/// after they left.
const ENGINE_AND_ACCOUNTS: &str = r#"bulk_write_threshold = 1000000
request_timeout_seconds = 10

[[connection.mapping]]
object = "Account"
access = "read_write"
fields = ["Name"]
polling_seconds = 1

[engine]
lease_seconds = 3
shutdown_seconds = 5
"#;

fn start(path: &str) -> Child {
    pgforce(&["run", "--config", path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn signal(process: &Child, signal: &str) {
    let pid = process.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Counts the leases `pattern` held by `process`.
fn held_by(process: &Child, pattern: &str) -> String {
    format!(
        "select count(*) from pgforce.leases where name like '{pattern}'
             and split_part(holder, ':', 2) = '{}' and expires_at > now()",
        process.id().unwrap()
    )
}

#[tokio::test]
async fn a_writer_frozen_past_its_lease_while_a_standby_takes_over_writes_no_record_twice() {
    let org = TestOrg::start().await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ENGINE_AND_ACCOUNTS);
    let path = config.to_str().unwrap().to_owned();
    let first = start(&path);
    wait_for_count(&db, &held_by(&first, "writer:%"), 1).await;
    let second = start(&path);
    // Slow calls: a wave of four collections calls takes about a second.
    org.control(
        Method::PUT,
        "/faults",
        Some(serde_json::json!({ "latencyMs": 1000 })),
    )
    .await;
    db.client()
        .await
        .batch_execute(
            "insert into salesforce.account (name) select 'Frozen ' || lpad(n::text, 4, '0') from generate_series(1, 3000) n",
        )
        .await
        .unwrap();
    let written = "select count(*) from salesforce._trigger_log where state = 'SUCCESS'";
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&db, written).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the first writer never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Frozen mid-pass, with claimed changes it has not sent yet, until its lease has gone
    // to the standby and the standby has written some of them.
    signal(&first, "STOP");
    let frozen_at = count(&db, written).await;
    assert!(
        frozen_at < 3000,
        "the freeze landed mid-run ({frozen_at} written)"
    );
    wait_for_count(&db, &held_by(&second, "writer:%"), 1).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&db, written).await <= frozen_at {
        assert!(Instant::now() < deadline, "the standby never wrote");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&first, "CONT");

    wait_for_count(
        &db,
        "select count(*) from salesforce._trigger_log where state <> 'SUCCESS'",
        0,
    )
    .await;
    // A request the frozen writer had already let go of when it froze lands when it wakes;
    // it reports what it created, and the writer that took over removes what no row owns.
    let sf = salesforce(&org);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = sf
            .count("SELECT COUNT() FROM Account WHERE Name LIKE 'Frozen %'")
            .await
            .unwrap();
        if records == 3000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{records} records for 3,000 rows: the frozen writer's sends were not undone"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name like 'Frozen %'",
        3000,
    )
    .await;
    assert_eq!(
        count(
            &db,
            "select count(distinct sfid) from salesforce.account where name like 'Frozen %'"
        )
        .await,
        3000,
        "every row its own record"
    );
    let undone = count(
        &db,
        "select count(*) from pgforce.stale_creates where outcome = 'deleted'",
    )
    .await;
    println!("takeover: {frozen_at} written before the freeze, {undone} late creates undone");
    stop(second).await;
    stop(first).await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn sigterm_under_a_steady_stream_of_app_writes_stops_within_the_shutdown_time() {
    let org = TestOrg::start().await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ENGINE_AND_ACCOUNTS);
    let path = config.to_str().unwrap().to_owned();
    let mut daemon = start(&path);
    wait_for_count(&db, &held_by(&daemon, "writer:%"), 1).await;
    org.control(
        Method::PUT,
        "/faults",
        Some(serde_json::json!({ "latencyMs": 20 })),
    )
    .await;
    // An app that never stops writing.
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let app = tokio::spawn({
        let (url, running) = (db.url.clone(), std::sync::Arc::clone(&running));
        async move {
            let pg = pgforce_store::testing::connect(&url).await;
            let mut n = 0;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                pg.execute(
                    "insert into salesforce.account (name) values ($1)",
                    &[&format!("Stream {n}")],
                )
                .await
                .unwrap();
            }
        }
    });
    let written = "select count(*) from salesforce._trigger_log where state = 'SUCCESS'";
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&db, written).await < 200 {
        assert!(Instant::now() < deadline, "the writer never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    signal(&daemon, "TERM");
    let exit = tokio::time::timeout(Duration::from_secs(15), daemon.wait())
        .await
        .expect("pgforce run stops within its shutdown time (5 s) and some seconds of slack")
        .unwrap();
    let took = asked.elapsed();
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    app.await.unwrap();
    assert!(exit.success(), "a clean stop");
    assert!(took < Duration::from_secs(8), "stopped in {took:?}");
    // Nothing half-recorded: every claimed change is either recorded or still PENDING
    // (settled by the next start), never a row whose write-back is missing.
    assert_eq!(
        count(
            &db,
            "select count(*) from salesforce._trigger_log l join salesforce.account a on a.id = l.record_id
             where l.state = 'SUCCESS' and a.sfid is null"
        )
        .await,
        0
    );
    let _ = std::fs::remove_file(config);
}
