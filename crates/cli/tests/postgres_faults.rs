//! Passing Postgres trouble on pgforce's own writes — a deadlock the server chose pgforce's
//! transaction to break — is retried by the reader and the writer; nothing stops, nothing
//! is lost, and the error they show names Postgres's message and SQLSTATE.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use pgforce_store::testing::TestDatabase;

use crate::run::{config_file, count, pgforce, salesforce, stop, wait_for_count};

const ACCOUNTS: &str = r#"
[[connection.mapping]]
object = "Account"
access = "read_write"
fields = ["Name"]
polling_seconds = 1
"#;

/// Makes the next `times` writes pgforce itself makes to `salesforce.account` (its own
/// writes run with `xmlbinary = 'hex'`) fail with SQLSTATE 40P01, as when the server breaks
/// a deadlock by aborting them. The count lives in a sequence, which no rollback undoes.
async fn break_pgforce_writes(db: &TestDatabase, times: i64) {
    db.client()
        .await
        .batch_execute(&format!(
            "create sequence injected_deadlocks;
             create function inject_deadlock() returns trigger language plpgsql as $$
             begin
                 if current_setting('xmlbinary') = 'hex' and nextval('injected_deadlocks') <= {times} then
                     raise exception 'deadlock detected (injected)' using errcode = '40P01';
                 end if;
                 return new;
             end $$;
             create trigger inject_deadlock before insert or update on salesforce.account
                 for each row execute function inject_deadlock();"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn deadlocks_on_pgforce_writes_are_retried_by_reader_and_writer_and_nothing_is_lost() {
    let org = crate::run::seeded_org(20).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNTS);
    let path = config.to_str().unwrap().to_owned();
    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 20).await;
    break_pgforce_writes(&db, 6).await;

    // Both sides change: the reader's apply and the writer's write-back both hit the
    // injected deadlocks.
    let sf = salesforce(&org);
    let ids: Vec<String> = sf
        .query("SELECT Id FROM Account ORDER BY Id LIMIT 5")
        .map_ok(|r| r["Id"].as_str().unwrap_or_default().to_owned())
        .try_collect()
        .await
        .unwrap();
    for id in &ids {
        let record = serde_json::json!({ "Name": format!("Remote {id}") });
        sf.update("Account", id, &serde_json::from_value(record).unwrap())
            .await
            .unwrap();
    }
    db.client()
        .await
        .batch_execute(
            "update salesforce.account set name = 'Local ' || id
             where sfid not in (select sfid from salesforce.account order by sfid limit 5)",
        )
        .await
        .unwrap();

    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name like 'Remote %'",
        5,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let local = sf
            .count("SELECT COUNT() FROM Account WHERE Name LIKE 'Local %'")
            .await
            .unwrap();
        if local == 15 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{local} of 15 updates reached Salesforce"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(
            &db,
            "select count(*) from salesforce._trigger_log where state = 'FAILED'"
        )
        .await,
        0,
        "a deadlock fails no change"
    );
    assert!(
        count(&db, "select last_value from injected_deadlocks").await >= 6,
        "the deadlocks happened"
    );
    let shown: Vec<String> = db
        .client()
        .await
        .query(
            "select kind || ': ' || coalesce(message, '') from pgforce.sync_events where outcome <> 'ok'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        shown
            .iter()
            .any(|m| m.contains("deadlock detected (injected)") && m.contains("SQLSTATE 40P01")),
        "the error shown names Postgres's message and SQLSTATE: {shown:?}"
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.mappings where state in ('SYSTEM_ERROR', 'BAD_CONFIG')"
        )
        .await,
        0,
        "the mapping goes on"
    );
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}
