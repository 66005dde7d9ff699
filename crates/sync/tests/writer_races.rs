//! The writer under races that could lose, double or reorder a change: a stop that arrives
//! mid-pass, a log row another transaction holds locked, a create Salesforce still runs
//! after the client gave up on it, and errors that belong to a call or to one record.

use std::time::Duration;

use pgforce_emulator::EmulatorConfig;
use pgforce_sync::testing::{WritePolicy, run_writer};
use reqwest::Method;
use serde_json::json;

use crate::support::{Harness, harness, harness_with};

/// Collections only: runs never go out as Bulk API jobs.
fn collections_only() -> WritePolicy {
    WritePolicy {
        bulk_threshold: u64::MAX,
        ..WritePolicy::default()
    }
}

/// Log rows in `state`.
async fn rows_in(h: &Harness, state: &str) -> i64 {
    h.pg.query_one(
        "select count(*) from salesforce._trigger_log where state = $1",
        &[&state],
    )
    .await
    .unwrap()
    .get(0)
}

/// Waits until `check` holds, failing loudly after `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn gadgets_in_salesforce(h: &Harness) -> u64 {
    h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap()
}

#[tokio::test]
async fn a_stopped_writer_gives_back_the_rest_of_its_pass_between_waves() {
    // Plain creates: a create cut off mid-call would be in doubt.
    let h = harness_with(2000, EmulatorConfig::default(), None).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name) select 'Backlog ' || n from generate_series(1, 10000) n",
    )
    .await
    .unwrap();
    // Every call takes a second: the pass of 10,000 rows needs a dozen waves.
    h.org
        .control(Method::PUT, "/faults", Some(json!({ "latencyMs": 1000 })))
        .await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(run_writer(
        h.db.url.clone(),
        "main".to_owned(),
        h.sf.clone(),
        h.schema.clone(),
        vec![(h.mapping.clone(), h.mapping_id)],
        collections_only(),
        shutdown,
    ));
    // The stop arrives mid-pass: the first wave is recorded, most rows are still to go.
    wait_until(Duration::from_secs(30), "a first wave recorded", || async {
        rows_in(&h, "SUCCESS").await > 0
    })
    .await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .expect("the writer stops within 5 s of being told, whatever its backlog")
        .unwrap()
        .unwrap();
    assert_eq!(rows_in(&h, "PENDING").await, 0, "nothing left in doubt");
    let (written, waiting) = (rows_in(&h, "SUCCESS").await, rows_in(&h, "NEW").await);
    assert!(waiting > 0, "the rest of the pass went back to NEW");
    assert_eq!(written + waiting, 10_000);
    h.org.control(Method::PUT, "/faults", Some(json!({}))).await;
    assert_eq!(
        gadgets_in_salesforce(&h).await,
        u64::try_from(written).unwrap(),
        "every record written is recorded, no other was sent"
    );
}

/// Log ids of the gadget's changes, oldest first.
async fn log_ids(h: &Harness) -> Vec<i32> {
    h.pg.query("select id from salesforce._trigger_log order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn state_of(h: &Harness, log_id: i32) -> String {
    h.pg.query_one(
        "select state::text from salesforce._trigger_log where id = $1",
        &[&log_id],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn a_record_whose_older_change_is_locked_elsewhere_keeps_its_changes_in_order() {
    for policy in [
        WritePolicy::default(),
        WritePolicy {
            algorithm: pgforce_sync::config::WriteAlgorithm::Merged,
            ..WritePolicy::default()
        },
    ] {
        let mut h = harness(2000, EmulatorConfig::default()).await;
        h.pg.batch_execute(
            "insert into salesforce.gadget__c (name, code__c) values ('First', 'O-1'), ('Other', 'O-2')",
        )
        .await
        .unwrap();
        assert_eq!(h.write(&policy).await.succeeded, 2);
        h.pg.batch_execute(
            "update salesforce.gadget__c set name = 'Older' where code__c = 'O-1';
             update salesforce.gadget__c set name = 'Newer' where code__c = 'O-1';
             update salesforce.gadget__c set name = 'Another' where code__c = 'O-2';",
        )
        .await
        .unwrap();
        let ids = log_ids(&h).await;
        let (older, newer, another) = (ids[2], ids[3], ids[4]);
        // A second session (the reader's settle transaction, say) holds the older change.
        let holder = h.db.client().await;
        holder.batch_execute("begin").await.unwrap();
        holder
            .query(
                "select id from salesforce._trigger_log where id = $1 for update",
                &[&older],
            )
            .await
            .unwrap();
        h.write(&policy).await;
        assert_eq!(
            state_of(&h, another).await,
            "SUCCESS",
            "{policy:?}: other records go on"
        );
        assert_eq!(
            state_of(&h, newer).await,
            "NEW",
            "{policy:?}: the newer change waits for the older one"
        );
        holder.batch_execute("rollback").await.unwrap();
        h.write(&policy).await;
        let sfid: String =
            h.pg.query_one(
                "select sfid from salesforce.gadget__c where code__c = 'O-1'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let record = h.sf.get("Gadget__c", &sfid, Some(&["Name"])).await.unwrap();
        assert_eq!(
            record["Name"], "Newer",
            "{policy:?}: Salesforce ends with the newer value"
        );
    }
}

/// Data API calls the emulator has carried out so far.
async fn calls_carried_out(h: &Harness) -> u64 {
    let stats = h.org.control(Method::GET, "/stats", None).await;
    stats["api"]["totalCalls"].as_u64().unwrap_or_default()
}

/// `(name, state)` of every log row, in id order.
async fn log_states(h: &Harness) -> Vec<(String, String)> {
    h.pg.query(
        "select coalesce(g.name, '?'), l.state::text from salesforce._trigger_log l
         left join salesforce.gadget__c g on g.id = l.record_id order by l.id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn a_create_salesforce_still_runs_after_the_client_gave_up_is_found_not_sent_again() {
    // Plain creates: a create sent twice is a second record.
    let h = harness_with(2000, EmulatorConfig::default(), None).await;
    // The writer's client gives up on a call after one second.
    let mut config = h.sf.config().clone();
    config.request_timeout = Duration::from_secs(1);
    let impatient = pgforce_salesforce::Client::new(config).unwrap();
    let before = calls_carried_out(&h).await;
    // Salesforce runs the first create for three seconds, whatever its client does.
    h.org
        .control(
            Method::POST,
            "/faults/script",
            Some(json!({ "steps": [{ "on": "collections", "fault": "commitDelay", "delayMs": 3000 }] })),
        )
        .await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(run_writer(
        h.db.url.clone(),
        "main".to_owned(),
        impatient.clone(),
        h.schema.clone(),
        vec![(h.mapping.clone(), h.mapping_id)],
        collections_only(),
        shutdown,
    ));
    h.pg.batch_execute("insert into salesforce.gadget__c (name) values ('Slow')")
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "the slow create sent", || async {
        impatient.calls_made() > 0
    })
    .await;
    // Another record's change, and a later change of the slow one, captured while the
    // slow create runs.
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name) values ('Quick');
         update salesforce.gadget__c set stock__c = 7 where name = 'Slow';",
    )
    .await
    .unwrap();
    wait_until(Duration::from_secs(20), "the other record sent", || async {
        log_states(&h).await[1].1 == "SUCCESS"
    })
    .await;
    let meanwhile = log_states(&h).await;
    wait_until(Duration::from_secs(60), "every change settled", || async {
        log_states(&h)
            .await
            .iter()
            .all(|(_, state)| state == "SUCCESS")
    })
    .await;
    // Nothing is still running in Salesforce: every call the writer sent was carried out.
    wait_until(Duration::from_secs(10), "the slow create done", || async {
        calls_carried_out(&h).await - before >= impatient.calls_made()
    })
    .await;
    stop.send(true).unwrap();
    writer.await.unwrap().unwrap();
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c WHERE Name = 'Slow'")
            .await
            .unwrap(),
        1,
        "one record, not two"
    );
    assert_eq!(
        meanwhile[0].1, "PENDING",
        "the create in doubt is held while the other record's change goes: {meanwhile:?}"
    );
    assert_eq!(h.distinct_sfids().await, 2);
    assert_eq!(
        meanwhile[2].1, "NEW",
        "the slow record's later change waits for its create: {meanwhile:?}"
    );
    let sfid: String =
        h.pg.query_one(
            "select sfid from salesforce.gadget__c where name = 'Slow'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let record =
        h.sf.get("Gadget__c", &sfid, Some(&["Stock__c"]))
            .await
            .unwrap();
    assert_eq!(record["Stock__c"], 7, "the later change reached the record");
}

#[tokio::test]
async fn a_call_refused_as_a_whole_stops_the_writer_and_fails_no_record() {
    for (step, said) in [
        (json!({ "fault": "apiDisabled" }), "API_DISABLED_FOR_ORG"),
        (json!({ "fault": "proxyError", "status": 403 }), "HTTP 403"),
    ] {
        let fault = step["fault"].as_str().unwrap().to_owned();
        let mut step = step;
        step["on"] = json!("collections");
        let h = harness(2000, EmulatorConfig::default()).await;
        h.pg.batch_execute(
            "insert into salesforce.gadget__c (name, code__c)
             select 'Innocent ' || n, 'I-' || n from generate_series(1, 5) n",
        )
        .await
        .unwrap();
        h.org
            .control(
                Method::POST,
                "/faults/script",
                Some(json!({ "steps": [step] })),
            )
            .await;
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let mut writer = tokio::spawn(run_writer(
            h.db.url.clone(),
            "main".to_owned(),
            h.sf.clone(),
            h.schema.clone(),
            vec![(h.mapping.clone(), h.mapping_id)],
            WritePolicy::default(),
            shutdown,
        ));
        let ended = tokio::time::timeout(Duration::from_secs(20), &mut writer).await;
        // A writer still running is told to stop (a parked one is gone already).
        let _ = stop.send(true);
        let states = log_states(&h).await;
        assert!(
            states.iter().all(|(_, state)| state == "NEW"),
            "{fault}: no record failed for the call's refusal, all wait: {states:?}"
        );
        let parked = ended
            .expect("the writer stops")
            .unwrap()
            .expect_err("the writer parks until the operator acts")
            .to_string();
        assert!(parked.contains(said), "{fault}: {parked}");
        assert_eq!(gadgets_in_salesforce(&h).await, 0, "{fault}");
    }
}

#[tokio::test]
async fn a_record_salesforce_fails_every_call_for_is_failed_after_bounded_attempts_and_the_rest_go_on()
 {
    // With an upsert field (sent again as it is) and without (in doubt, checked first).
    for upsert_field in [Some("Code__c"), None] {
        let h = harness_with(2000, EmulatorConfig::default(), upsert_field).await;
        // Salesforce fails every call carrying this record with 500 UNKNOWN_EXCEPTION.
        h.org
            .control(
                Method::PUT,
                "/faults",
                Some(json!({ "unknownExceptionValue": "Poison" })),
            )
            .await;
        h.pg.batch_execute(
            "insert into salesforce.gadget__c (name, code__c) values
                 ('Fine 1', 'F-1'), ('Poison', 'P-1'), ('Fine 2', 'F-2');
             update salesforce.gadget__c set stock__c = 3 where code__c = 'F-1';",
        )
        .await
        .unwrap();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let writer = tokio::spawn(run_writer(
            h.db.url.clone(),
            "main".to_owned(),
            h.sf.clone(),
            h.schema.clone(),
            vec![(h.mapping.clone(), h.mapping_id)],
            WritePolicy::default(),
            shutdown,
        ));
        wait_until(Duration::from_secs(60), "every change settled", || async {
            let states = log_states(&h).await;
            states
                .iter()
                .all(|(_, state)| state == "SUCCESS" || state == "FAILED")
        })
        .await;
        stop.send(true).unwrap();
        writer.await.unwrap().unwrap();
        let states = log_states(&h).await;
        assert_eq!(
            states,
            [
                ("Fine 1".to_owned(), "SUCCESS".to_owned()),
                ("Poison".to_owned(), "FAILED".to_owned()),
                ("Fine 2".to_owned(), "SUCCESS".to_owned()),
                ("Fine 1".to_owned(), "SUCCESS".to_owned()),
            ],
            "{upsert_field:?}"
        );
        let message: String =
            h.pg.query_one(
                "select l.sf_message from salesforce._trigger_log l
                 join salesforce.gadget__c g on g.id = l.record_id where g.name = 'Poison'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            message.starts_with("UNKNOWN_EXCEPTION: An unexpected error occurred"),
            "{upsert_field:?}: Salesforce's message is kept: {message}"
        );
        assert_eq!(gadgets_in_salesforce(&h).await, 2, "{upsert_field:?}");
    }
}
