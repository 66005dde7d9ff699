//! The writer when things go wrong: refused inserts that hold back (or block) what depends
//! on them and resume once fixed, transient faults that are retried and never FAILED, a
//! crash that leaves creates in doubt, and two writers racing for one connection.

use std::time::Duration;

use pgforce_emulator::EmulatorConfig;
use pgforce_sync::config::{OnInsertFailure, WriteAlgorithm};
use pgforce_sync::testing::{WriteOutcome, WritePolicy, write_once};
use reqwest::Method;
use serde_json::json;

use crate::support::{Harness, harness, harness_with};

async fn pass(h: &mut Harness, policy: &WritePolicy) -> WriteOutcome {
    h.write(policy).await
}

/// `(record name, state)` of every log row, in id order.
async fn states(h: &Harness) -> Vec<(String, String)> {
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

async fn salesforce_names(h: &Harness) -> Vec<String> {
    use futures_util::TryStreamExt as _;
    let mut names: Vec<String> =
        h.sf.query("SELECT Name FROM Gadget__c")
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r["Name"].as_str().unwrap().to_owned())
            .collect();
    names.sort();
    names
}

/// Waits until no trigger-log row is in a state `open` names (a `where` condition), for at
/// most `limit`.
async fn wait_until_written(h: &Harness, open: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left: i64 =
            h.pg.query_one(
                &format!("select count(*) from salesforce._trigger_log where {open}"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} rows still unsent after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn merged() -> WritePolicy {
    WritePolicy {
        algorithm: WriteAlgorithm::Merged,
        ..WritePolicy::default()
    }
}

fn ordered(on_insert_failure: OnInsertFailure) -> WritePolicy {
    WritePolicy {
        algorithm: WriteAlgorithm::Ordered,
        on_insert_failure,
        ..WritePolicy::default()
    }
}

#[tokio::test]
async fn a_refused_insert_holds_back_its_record_only_until_fixed_and_requeued() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let policy = ordered(OnInsertFailure::HoldDependents);
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c, email__c) values ('Bad', 'B', 'nope');
         insert into salesforce.gadget__c (name, code__c) values ('Good', 'G');
         update salesforce.gadget__c set stock__c = 3 where code__c = 'B';
         update salesforce.gadget__c set stock__c = 5 where code__c = 'G';",
    )
    .await
    .unwrap();
    let outcome = pass(&mut h, &policy).await;
    assert_eq!(
        (outcome.succeeded, outcome.failed, outcome.held),
        (2, 1, 1),
        "{outcome:?}"
    );
    let held: String =
        h.pg.query_one(
            "select sf_message from salesforce._trigger_log where state = 'HELD'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(held.contains("held back"), "{held}");
    assert_eq!(salesforce_names(&h).await, ["Good"]);
    // Archiving keeps the failed insert in the live log while changes wait behind it.
    let archived = pgforce_sync::testing::archive_processed(
        &mut h.pg,
        &h.schema,
        Duration::ZERO,
        Duration::from_secs(86_400),
    )
    .await
    .unwrap();
    assert_eq!(archived.archived, 2, "the two successes only");

    // A new change to the failed record is held too; nothing is sent for it.
    h.pg.batch_execute(
        "update salesforce.gadget__c set email__c = 'ok@example.com' where code__c = 'B'",
    )
    .await
    .unwrap();
    let outcome = pass(&mut h, &policy).await;
    assert_eq!((outcome.succeeded, outcome.held), (0, 1), "{outcome:?}");

    // Re-queue the failed insert (Heroku Connect's procedure): it goes with the row as it
    // is now, and the held changes follow.
    h.pg.batch_execute("update salesforce._trigger_log set state = 'NEW' where state = 'FAILED'")
        .await
        .unwrap();
    let outcome = pass(&mut h, &policy).await;
    assert_eq!((outcome.succeeded, outcome.failed), (3, 0), "{outcome:?}");
    assert!(
        states(&h).await.iter().all(|(_, s)| s == "SUCCESS"),
        "{:?}",
        states(&h).await
    );
    assert_eq!(salesforce_names(&h).await, ["Bad", "Good"]);
    let sfid: String =
        h.pg.query_one(
            "select sfid from salesforce.gadget__c where code__c = 'B'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let record =
        h.sf.get("Gadget__c", &sfid, Some(&["Email__c", "Stock__c"]))
            .await
            .unwrap();
    assert_eq!(
        (record["Email__c"].as_str(), record["Stock__c"].as_i64()),
        (Some("ok@example.com"), Some(3))
    );
}

#[tokio::test]
async fn block_queue_stops_everything_after_a_refused_insert() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let policy = ordered(OnInsertFailure::BlockQueue);
    h.pg.batch_execute("insert into salesforce.gadget__c (name, code__c) values ('Other', 'O')")
        .await
        .unwrap();
    assert_eq!(pass(&mut h, &policy).await.succeeded, 1);
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c, email__c) values ('Bad', 'B', 'nope');
         update salesforce.gadget__c set name = 'Other, renamed' where code__c = 'O';",
    )
    .await
    .unwrap();
    let outcome = pass(&mut h, &policy).await;
    assert_eq!(
        (outcome.succeeded, outcome.failed, outcome.held),
        (0, 1, 1),
        "{outcome:?}"
    );
    // A later change of another record, in a later pass, waits too.
    h.pg.batch_execute("insert into salesforce.gadget__c (name, code__c) values ('Later', 'L')")
        .await
        .unwrap();
    let outcome = pass(&mut h, &policy).await;
    assert_eq!((outcome.succeeded, outcome.held), (0, 1), "{outcome:?}");
    assert_eq!(salesforce_names(&h).await, ["Other"]);
    // Ignoring the failed row (Heroku Connect's other way out) lets the queue go on.
    h.pg.batch_execute(
        "update salesforce._trigger_log set state = 'IGNORED' where state = 'FAILED'",
    )
    .await
    .unwrap();
    let outcome = pass(&mut h, &policy).await;
    assert_eq!(outcome.succeeded, 2, "{outcome:?}");
    assert_eq!(salesforce_names(&h).await, ["Later", "Other, renamed"]);
}

#[tokio::test]
async fn transient_faults_are_retried_never_failed() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let policy = WritePolicy::default();
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c) values ('One', '1'), ('Two', '2');",
    )
    .await
    .unwrap();
    for faults in [
        json!({ "unableToLockRowRate": 1.0 }),
        json!({ "serverUnavailableRate": 1.0 }),
    ] {
        h.org
            .control(Method::PUT, "/faults", Some(faults.clone()))
            .await;
        let outcome = pass(&mut h, &policy).await;
        assert_eq!(
            (outcome.succeeded, outcome.failed, outcome.retried),
            (0, 0, 2),
            "{faults}: {outcome:?}"
        );
        assert!(
            states(&h).await.iter().all(|(_, s)| s == "NEW"),
            "{faults}: {:?}",
            states(&h).await
        );
    }
    h.org.control(Method::PUT, "/faults", Some(json!({}))).await;
    let outcome = pass(&mut h, &policy).await;
    assert_eq!((outcome.succeeded, outcome.failed), (2, 0), "{outcome:?}");
    assert_eq!(salesforce_names(&h).await, ["One", "Two"]);
}

#[tokio::test]
async fn a_create_done_before_a_crash_is_found_not_sent_again() {
    // No upsert field: a resent create would duplicate the record.
    let mut h = harness_with(2000, EmulatorConfig::default(), None).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c, price__c) values ('Made', 'M', 9.5);
         insert into salesforce.gadget__c (name, code__c, price__c) values ('Not made', 'N', 1);
         update salesforce._trigger_log set state = 'PENDING';",
    )
    .await
    .unwrap();
    // The crashed writer saved both creates in flight before sending them; the first
    // reached Salesforce and its answer was lost.
    sent_in_flight(&h, "crashed").await;
    let made = h
        .create_in_salesforce(json!({ "Name": "Made", "Code__c": "M", "Price__c": 9.5 }))
        .await;
    let resumed = h.resume().await;
    assert_eq!((resumed.found, resumed.requeued), (1, 1), "{resumed:?}");
    let outcome = pass(&mut h, &WritePolicy::default()).await;
    assert_eq!(outcome.succeeded, 1, "{outcome:?}");
    assert_eq!(
        salesforce_names(&h).await,
        ["Made", "Not made"],
        "no duplicate"
    );
    let sfid: String =
        h.pg.query_one(
            "select sfid from salesforce.gadget__c where code__c = 'M'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sfid, made);
}

/// Saves every PENDING row of the log as a wave `holder` sent (settled already), as a
/// writer does before its call leaves.
async fn sent_in_flight(h: &Harness, holder: &str) {
    let ids: Vec<i32> =
        h.pg.query(
            "select id from salesforce._trigger_log where state = 'PENDING' order by id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    pgforce_store::trigger_log::in_flight::save(&h.pg, &h.schema, holder, &ids, Duration::ZERO)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_create_claimed_but_never_sent_goes_back_unchecked_and_adopts_no_user_s_record() {
    let mut h = harness_with(2000, EmulatorConfig::default(), None).await;
    // The writer claimed the create and died before its wave left (nothing saved in
    // flight); meanwhile a user created a record with the very same values by hand.
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, price__c) values ('Twin', 2);
         update salesforce._trigger_log set state = 'PENDING';",
    )
    .await
    .unwrap();
    let users = h
        .create_in_salesforce(json!({ "Name": "Twin", "Price__c": 2 }))
        .await;
    let resumed = h.resume().await;
    assert_eq!(
        (resumed.found, resumed.requeued),
        (0, 1),
        "never sent, so not looked for: {resumed:?}"
    );
    let outcome = pass(&mut h, &WritePolicy::default()).await;
    assert_eq!(outcome.succeeded, 1, "{outcome:?}");
    assert_eq!(
        salesforce_names(&h).await,
        ["Twin", "Twin"],
        "the user's record and the app's"
    );
    let sfid: String =
        h.pg.query_one("select sfid from salesforce.gadget__c", &[])
            .await
            .unwrap()
            .get(0);
    assert_ne!(sfid, users, "the row owns the record it created");
}

#[tokio::test]
async fn two_writers_on_one_catalog_write_each_change_once() {
    let h = harness(2000, EmulatorConfig::default()).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(tokio::spawn(pgforce_sync::testing::run_writer(
            h.db.url.clone(),
            "main".to_owned(),
            h.sf.clone(),
            h.schema.clone(),
            vec![(h.mapping.clone(), h.mapping_id)],
            WritePolicy::default(),
            shutdown.clone(),
        )));
    }
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c)
         select 'Row ' || n, 'R-' || n from generate_series(1, 450) n;
         update salesforce.gadget__c set stock__c = id;",
    )
    .await
    .unwrap();
    wait_until_written(
        &h,
        "state not in ('SUCCESS', 'MERGED')",
        Duration::from_secs(30),
    )
    .await;
    stop.send(true).unwrap();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        450,
        "each row created once"
    );
    let stats = h.org.control(Method::GET, "/stats", None).await;
    let written = stats["api"]["recordsWritten"].as_u64().unwrap_or_default();
    assert_eq!(written, 900, "each change sent once: {stats}");
}

#[tokio::test]
async fn a_writer_whose_every_pass_leaves_a_create_in_doubt_goes_on_without_backing_off() {
    // Plain creates: a lost answer leaves them in doubt, checked before anything else goes.
    let h = harness_with(2000, EmulatorConfig::default(), None).await;
    // One call of every four loses its answer after the creates are made: every pass
    // writes most of its changes and leaves some in doubt.
    let mut steps = Vec::new();
    for _ in 0..12 {
        steps.push(json!({ "on": "collections", "fault": "lostResponse" }));
        for _ in 0..3 {
            steps.push(json!({ "on": "collections", "fault": "commitDelay", "delayMs": 0 }));
        }
    }
    script(&h, json!(steps)).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name) select 'Row ' || n from generate_series(1, 8000) n",
    )
    .await
    .unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(pgforce_sync::testing::run_writer(
        h.db.url.clone(),
        "main".to_owned(),
        h.sf.clone(),
        h.schema.clone(),
        vec![(h.mapping.clone(), h.mapping_id)],
        // Through collections only (a run this long would go as a bulk job).
        WritePolicy {
            bulk_threshold: u64::MAX,
            ..WritePolicy::default()
        },
        shutdown,
    ));
    // Backing off after each such pass (0.2 s doubling to 30 s) adds nearly two minutes.
    wait_until_written(&h, "state <> 'SUCCESS'", Duration::from_secs(90)).await;
    stop.send(true).unwrap();
    writer.await.unwrap().unwrap();
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        8000,
        "every create once"
    );
}

/// Maker__c (parent, upsert by Code__c) and Gadget__c naming its maker by `Maker__r.Code__c`.
async fn maker_and_gadget(h: &mut Harness) -> [pgforce_sync::testing::Mapping; 2] {
    use pgforce_store::Access;
    use pgforce_store::ddl::create_mapped_table;
    use pgforce_sync::testing::{Mapping, MappingSpec};
    let mut resolved = Vec::new();
    for (object, fields) in [
        ("Maker__c", &["Name", "Code__c", "Email__c"][..]),
        (
            "Gadget__c",
            &["Name", "Code__c", "Maker__c", "maker__r.Code__c"][..],
        ),
    ] {
        let spec = MappingSpec {
            object: object.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            access: Access::ReadWrite,
            upsert_field: Some("Code__c".to_owned()),
            polling_seconds: 1,
            max_daily_api_calls: 30_000,
            bulk_threshold: pgforce_sync::DEFAULT_BULK_THRESHOLD,
        };
        let mapping = Mapping::resolve(spec, &h.sf.describe(object).await.unwrap()).unwrap();
        create_mapped_table(&mut h.pg, &mapping.table_spec(&h.schema))
            .await
            .unwrap();
        resolved.push(mapping);
    }
    assert_eq!(
        resolved[1].references[0].column.as_str(),
        "maker__r__code__c"
    );
    [resolved.remove(0), resolved.remove(0)]
}

/// One writer pass over several mappings.
async fn write_all(
    h: &mut Harness,
    mappings: &[pgforce_sync::testing::Mapping],
    policy: &WritePolicy,
) -> WriteOutcome {
    write_once(&h.sf, &mut h.pg, &h.schema, mappings, policy)
        .await
        .unwrap()
}

/// Checks that gadget `gadget` points at maker `maker` in Salesforce.
async fn assert_gadget_made_by(h: &Harness, gadget: &str, maker: &str) {
    let maker_id = sfid_of(h, "maker__c", maker).await.unwrap();
    let gadget_id = sfid_of(h, "gadget__c", gadget).await.unwrap();
    let record =
        h.sf.get("Gadget__c", &gadget_id, Some(&["Maker__c"]))
            .await
            .unwrap();
    assert_eq!(record["Maker__c"].as_str(), Some(maker_id.as_str()));
}

async fn sfid_of(h: &Harness, table: &str, code: &str) -> Option<String> {
    h.pg.query_one(
        &format!("select sfid from salesforce.{table} where code__c = $1"),
        &[&code],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn parent_and_child_inserted_together_sync_in_one_pass_by_external_id() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let mappings = maker_and_gadget(&mut h).await;
    h.pg.batch_execute(
        "begin;
         insert into salesforce.gadget__c (name, code__c, maker__r__code__c) values ('Widget', 'W', 'ACME');
         insert into salesforce.maker__c (name, code__c) values ('Acme', 'ACME');
         commit;",
    )
    .await
    .unwrap();
    // Merged writes put parents first even though the child was captured first.
    let policy = merged();
    let outcome = write_all(&mut h, &mappings, &policy).await;
    assert_eq!((outcome.succeeded, outcome.failed), (2, 0), "{outcome:?}");
    assert_gadget_made_by(&h, "W", "ACME").await;
}

#[tokio::test]
async fn children_of_a_refused_parent_wait_for_it_and_follow_once_it_is_fixed() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let mappings = maker_and_gadget(&mut h).await;
    let policy = ordered(OnInsertFailure::HoldDependents);
    h.pg.batch_execute(
        "begin;
         insert into salesforce.maker__c (name, code__c, email__c) values ('Acme', 'ACME', 'not an email');
         insert into salesforce.gadget__c (name, code__c, maker__r__code__c) values ('Widget', 'W', 'ACME');
         insert into salesforce.gadget__c (name, code__c) values ('Free', 'F');
         commit;",
    )
    .await
    .unwrap();
    let outcome = write_all(&mut h, &mappings, &policy).await;
    assert_eq!(
        (outcome.succeeded, outcome.failed, outcome.held),
        (1, 1, 1),
        "{outcome:?}"
    );
    assert!(
        sfid_of(&h, "gadget__c", "F").await.is_some(),
        "unrelated rows flow"
    );
    // Still waiting on the next pass, and the reason names the parent's log row.
    let outcome = write_all(&mut h, &mappings, &policy).await;
    assert_eq!(outcome.succeeded, 0, "{outcome:?}");
    let message: String =
        h.pg.query_one(
            "select sf_message from salesforce._trigger_log where state = 'HELD'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        message.contains("its parent in trigger log row 1"),
        "{message}"
    );

    h.pg.batch_execute(
        "update salesforce.maker__c set email__c = 'hello@acme.example';
         update salesforce._trigger_log set state = 'NEW' where state = 'FAILED';",
    )
    .await
    .unwrap();
    let outcome = write_all(&mut h, &mappings, &policy).await;
    assert_eq!((outcome.succeeded, outcome.failed), (3, 0), "{outcome:?}");
    assert_gadget_made_by(&h, "W", "ACME").await;
}

#[tokio::test]
async fn merged_writes_retry_a_refused_insert_on_a_later_update() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let policy = merged();
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c, email__c) values ('Bad', 'B', 'nope')",
    )
    .await
    .unwrap();
    assert_eq!(pass(&mut h, &policy).await.failed, 1);
    h.pg.batch_execute("update salesforce.gadget__c set email__c = 'ok@example.com'")
        .await
        .unwrap();
    let outcome = pass(&mut h, &policy).await;
    assert_eq!((outcome.succeeded, outcome.failed), (1, 0), "{outcome:?}");
    assert_eq!(salesforce_names(&h).await, ["Bad"]);
    let lastop: String =
        h.pg.query_one("select _hc_lastop from salesforce.gadget__c", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(lastop, "INSERTED");
}

#[tokio::test]
async fn creates_whose_answer_was_lost_are_never_made_twice() {
    for upsert_field in [Some("Code__c"), None] {
        let mut h = harness_with(2000, EmulatorConfig::default(), upsert_field).await;
        h.pg.batch_execute(
            "insert into salesforce.gadget__c (name, code__c) values ('One', '1'), ('Two', '2');",
        )
        .await
        .unwrap();
        h.org
            .control(
                Method::PUT,
                "/faults",
                Some(json!({ "lostResponseRate": 1.0 })),
            )
            .await;
        let outcome = pass(&mut h, &WritePolicy::default()).await;
        assert_eq!(
            outcome.succeeded + outcome.failed,
            0,
            "{upsert_field:?}: {outcome:?}"
        );
        match upsert_field {
            // Upserts are idempotent: sent again as they are.
            Some(_) => assert_eq!(outcome.retried, 2, "{outcome:?}"),
            // Plain creates may have happened: held PENDING until Salesforce is checked.
            None => assert_eq!(outcome.in_doubt, 2, "{outcome:?}"),
        }
        h.org.control(Method::PUT, "/faults", Some(json!({}))).await;
        let resumed = h.resume().await;
        pass(&mut h, &WritePolicy::default()).await;
        assert_eq!(
            salesforce_names(&h).await,
            ["One", "Two"],
            "{upsert_field:?}: {resumed:?}"
        );
        let with_sfid: i64 =
            h.pg.query_one("select count(distinct sfid) from salesforce.gadget__c", &[])
                .await
                .unwrap()
                .get(0);
        assert_eq!(with_sfid, 2, "{upsert_field:?}");
    }
}

/// Queues `steps` in the emulator's fault script (each spent by the next call it fits).
async fn script(h: &Harness, steps: serde_json::Value) {
    h.org
        .control(
            Method::POST,
            "/faults/script",
            Some(json!({ "steps": steps })),
        )
        .await;
}

#[tokio::test]
async fn records_locked_inside_a_call_whose_resend_fails_are_neither_lost_nor_failed_nor_doubled() {
    // Plain creates (no upsert field): a create sent twice would be a second record.
    let mut h = harness_with(2000, EmulatorConfig::default(), None).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name) select 'Locked ' || n from generate_series(1, 5) n",
    )
    .await
    .unwrap();
    // Salesforce refuses two records of the call with row locks and writes the three
    // others; the client's resend of those two is then refused for the whole org.
    script(
        &h,
        json!([
            { "on": "collections", "fault": "lockRecords", "records": [1, 3] },
            { "on": "collections", "fault": "requestLimitExceeded" },
        ]),
    )
    .await;
    let first = pass(&mut h, &WritePolicy::default()).await;
    assert_eq!(
        first.succeeded, 3,
        "the records the first call wrote: {first:?}"
    );
    assert_eq!(
        first.failed, 0,
        "no record fails for an org-wide refusal: {first:?}"
    );
    let second = pass(&mut h, &WritePolicy::default()).await;
    assert_eq!(
        second.succeeded, 2,
        "the locked records are sent again: {second:?}"
    );
    assert_eq!(
        salesforce_names(&h).await,
        ["Locked 1", "Locked 2", "Locked 3", "Locked 4", "Locked 5"],
        "every record once"
    );
    assert!(
        states(&h).await.iter().all(|(_, state)| state == "SUCCESS"),
        "{:?}",
        states(&h).await
    );
}

#[tokio::test]
async fn records_locked_inside_a_call_whose_resend_answer_is_lost_are_found_not_made_twice() {
    let mut h = harness_with(2000, EmulatorConfig::default(), None).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name) select 'Doubt ' || n from generate_series(1, 5) n",
    )
    .await
    .unwrap();
    script(
        &h,
        json!([
            { "on": "collections", "fault": "lockRecords", "records": [0, 4] },
            { "on": "collections", "fault": "lostResponse" },
        ]),
    )
    .await;
    let first = pass(&mut h, &WritePolicy::default()).await;
    assert_eq!(first.succeeded, 3, "{first:?}");
    assert_eq!(
        first.in_doubt, 2,
        "the resent creates' fate is unknown: {first:?}"
    );
    let resumed = h.resume().await;
    assert_eq!(
        resumed.found, 2,
        "both were created by the lost resend: {resumed:?}"
    );
    assert_eq!(
        salesforce_names(&h).await,
        ["Doubt 1", "Doubt 2", "Doubt 3", "Doubt 4", "Doubt 5"]
    );
    assert!(states(&h).await.iter().all(|(_, state)| state == "SUCCESS"));
}

#[tokio::test]
async fn creates_in_doubt_are_looked_for_by_their_values_not_among_every_record_created_since() {
    let mut h = harness_with(2000, EmulatorConfig::default(), None).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, price__c) values ('Sought', 3), ('Also sought', 4)",
    )
    .await
    .unwrap();
    script(
        &h,
        json!([{ "on": "collections", "fault": "lostResponse" }]),
    )
    .await;
    assert_eq!(pass(&mut h, &WritePolicy::default()).await.in_doubt, 2);
    // The org's users create thousands of records meanwhile.
    h.org
        .control(Method::POST, "/seed", Some(json!({ "Gadget__c": 4000 })))
        .await;
    let before = h.sf.calls_made();
    let resumed = h.resume().await;
    assert_eq!(resumed.found, 2, "{resumed:?}");
    assert_eq!(
        h.sf.calls_made() - before,
        1,
        "one query of one page, not every record created since"
    );
}

#[tokio::test]
async fn a_delete_whose_answer_was_lost_is_done_not_failed() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    h.pg.batch_execute("insert into salesforce.gadget__c (name, code__c) values ('Gone', 'GN-1')")
        .await
        .unwrap();
    assert_eq!(pass(&mut h, &WritePolicy::default()).await.succeeded, 1);
    // The delete is carried out but its answer is lost: the client's resend finds the
    // record deleted already.
    h.org
        .control(
            Method::POST,
            "/faults/script",
            Some(json!({ "steps": [{ "on": "collections", "fault": "lostResponse" }] })),
        )
        .await;
    h.pg.batch_execute("delete from salesforce.gadget__c where code__c = 'GN-1'")
        .await
        .unwrap();
    let outcome = pass(&mut h, &WritePolicy::default()).await;
    assert_eq!((outcome.succeeded, outcome.failed), (1, 0), "{outcome:?}");
    assert_eq!(
        states(&h).await.last().map(|(_, state)| state.clone()),
        Some("SUCCESS".to_owned())
    );
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        0
    );
}

#[tokio::test]
async fn values_salesforce_set_on_a_create_read_back_before_its_write_back_reach_the_row() {
    // No upsert field: the poll cannot match the new record to the app's row by key.
    let mut h = harness_with(2000, EmulatorConfig::default(), None).await;
    h.load().await;
    h.pg.batch_execute("insert into salesforce.gadget__c (name, stock__c) values ('Made', 4)")
        .await
        .unwrap();
    // The create reaches Salesforce but its answer is lost: the row has no sfid yet.
    script(
        &h,
        json!([{ "on": "collections", "fault": "lostResponse" }]),
    )
    .await;
    let outcome = pass(&mut h, &WritePolicy::default()).await;
    assert_eq!(outcome.in_doubt, 1, "{outcome:?}");
    // The reader reads the new record back before the writer learns its Id.
    h.poll().await;
    assert_eq!(h.count().await, 2, "the read-back row beside the app's row");
    let resumed = h.resume().await;
    assert_eq!(resumed.found, 1, "{resumed:?}");
    h.poll().await;
    let row =
        h.pg.query_one(
            "select count(*) over (), sfid, createddate is not null, name, stock__c
             from salesforce.gadget__c",
            &[],
        )
        .await
        .unwrap();
    let made: String = row.get(1);
    let created = h.sf.get("Gadget__c", &made, Some(&["CreatedDate"])).await;
    assert!(created.is_ok(), "the row holds the record's Id");
    assert_eq!(row.get::<_, i64>(0), 1, "one row for the record");
    assert!(row.get::<_, bool>(2), "CreatedDate reached the row");
    assert_eq!(
        (row.get::<_, String>(3), row.get::<_, Option<i32>>(4)),
        ("Made".to_owned(), Some(4))
    );
}

#[tokio::test]
async fn a_read_back_create_keeps_the_app_changes_made_since() {
    let mut h = harness_with(2000, EmulatorConfig::default(), None).await;
    h.load().await;
    // A column of the app's own, which the reader never fills.
    h.pg.batch_execute(
        "alter table salesforce.gadget__c add column app_note text;
         insert into salesforce.gadget__c (name, stock__c, app_note) values ('Made', 4, 'mine')",
    )
    .await
    .unwrap();
    script(
        &h,
        json!([{ "on": "collections", "fault": "lostResponse" }]),
    )
    .await;
    assert_eq!(pass(&mut h, &WritePolicy::default()).await.in_doubt, 1);
    h.poll().await;
    // The app changes its row before the writer learns the record's Id.
    h.pg.batch_execute("update salesforce.gadget__c set stock__c = 7 where sfid is null")
        .await
        .unwrap();
    h.resume().await;
    let row =
        h.pg.query_one(
            "select createddate is not null, stock__c, app_note from salesforce.gadget__c
             where sfid is not null",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "CreatedDate reached the row");
    assert_eq!(
        row.get::<_, Option<i32>>(1),
        Some(7),
        "the app's newer value stays"
    );
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("mine"),
        "a column the reader does not fill keeps the app's value"
    );
}

/// The Id of the Gadget named `name` in Salesforce.
async fn salesforce_id(h: &Harness, name: &str) -> String {
    use futures_util::TryStreamExt as _;
    let records: Vec<_> =
        h.sf.query(&format!("SELECT Id FROM Gadget__c WHERE Name = '{name}'"))
            .try_collect()
            .await
            .unwrap();
    assert_eq!(records.len(), 1, "one {name}: {records:?}");
    records[0]["Id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_create_in_doubt_that_a_user_edits_before_the_look_is_found_not_made_twice() {
    // Creates in doubt are looked for only once Salesforce can no longer be running
    // their call; meanwhile users edit the org, and a record the call made may already
    // carry other values than the ones sent.
    let mut h = harness_with(2000, EmulatorConfig::default(), None).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, price__c)
         values ('Doubt A', 1), ('Doubt B', 2), ('Doubt C', 3), ('Doubt D', 4)",
    )
    .await
    .unwrap();
    script(
        &h,
        json!([{ "on": "collections", "fault": "lostResponse" }]),
    )
    .await;
    assert_eq!(pass(&mut h, &WritePolicy::default()).await.in_doubt, 4);
    // Two users edit two of the records the call made: one renames it, the other
    // changes every field pgforce sent.
    let renamed = salesforce_id(&h, "Doubt B").await;
    h.sf.update(
        "Gadget__c",
        &renamed,
        &serde_json::from_value(json!({ "Name": "Renamed by a user" })).unwrap(),
    )
    .await
    .unwrap();
    let rewritten = salesforce_id(&h, "Doubt D").await;
    h.sf.update(
        "Gadget__c",
        &rewritten,
        &serde_json::from_value(json!({ "Name": "Rewritten", "Price__c": 40 })).unwrap(),
    )
    .await
    .unwrap();
    let resumed = h.resume().await;
    assert_eq!((resumed.found, resumed.requeued), (4, 0), "{resumed:?}");
    pass(&mut h, &WritePolicy::default()).await;
    assert_eq!(
        salesforce_names(&h).await,
        ["Doubt A", "Doubt C", "Renamed by a user", "Rewritten"],
        "no record made twice"
    );
    let owner = |name: &'static str| {
        let pg = &h.pg;
        async move {
            pg.query_one(
                "select sfid from salesforce.gadget__c where name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
        }
    };
    assert_eq!(
        owner("Doubt B").await,
        renamed,
        "the row owns its edited record"
    );
    assert_eq!(owner("Doubt D").await, rewritten);
}

#[tokio::test]
async fn a_create_in_doubt_refused_alone_is_sent_again_while_an_edited_one_is_found() {
    // A crashed writer's call ran: Salesforce refused one record on its own (not made)
    // and made the two others, one of which a user edited since. The refused one is sent
    // again; the edited one is found by the call it came from, not made twice.
    let mut h = harness_with(2000, EmulatorConfig::default(), None).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, price__c) values ('Kept', 1);
         insert into salesforce.gadget__c (name, price__c) values ('Refused', 2);
         insert into salesforce.gadget__c (name, price__c) values ('Edited', 3);
         update salesforce._trigger_log set state = 'PENDING';",
    )
    .await
    .unwrap();
    sent_in_flight(&h, "crashed").await;
    h.create_in_salesforce(json!({ "Name": "Kept", "Price__c": 1 }))
        .await;
    let edited = h
        .create_in_salesforce(json!({ "Name": "Edited by a user", "Price__c": 3 }))
        .await;
    let resumed = h.resume().await;
    assert_eq!((resumed.found, resumed.requeued), (2, 1), "{resumed:?}");
    pass(&mut h, &WritePolicy::default()).await;
    assert_eq!(
        salesforce_names(&h).await,
        ["Edited by a user", "Kept", "Refused"],
        "no record lost or made twice"
    );
    let sfid: String =
        h.pg.query_one(
            "select sfid from salesforce.gadget__c where name = 'Edited'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sfid, edited);
}

#[tokio::test]
async fn creates_in_doubt_are_looked_for_by_every_value_they_fill_not_by_one_shared_by_thousands() {
    // Two creates whose names are their own but whose e-mail addresses thousands of
    // records created since share (as addresses repeat across an app's bursts): a look
    // by that field alone reads page after page.
    let mut h = harness_with(2000, EmulatorConfig::default(), None).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, email__c)
         values ('Sought 1', 'b1@example.com'), ('Sought 2', 'b2@example.com')",
    )
    .await
    .unwrap();
    script(
        &h,
        json!([{ "on": "collections", "fault": "lostResponse" }]),
    )
    .await;
    assert_eq!(pass(&mut h, &WritePolicy::default()).await.in_doubt, 2);
    for burst in 0..12 {
        let records: Vec<pgforce_salesforce::rest::Record> = (0..200)
            .map(|i| {
                serde_json::from_value(json!({
                    "Name": format!("Other {burst}-{i}"),
                    "Email__c": if i % 2 == 0 { "b1@example.com" } else { "b2@example.com" },
                }))
                .unwrap()
            })
            .collect();
        h.sf.create_records("Gadget__c", &records, true)
            .await
            .unwrap();
    }
    let before = h.sf.calls_made();
    let resumed = h.resume().await;
    assert_eq!(resumed.found, 2, "{resumed:?}");
    assert_eq!(
        h.sf.calls_made() - before,
        1,
        "one query of one page, narrowed by the names and the addresses together"
    );
}

#[tokio::test]
async fn a_row_the_reader_stored_for_a_record_the_app_deletes_goes_with_the_delete() {
    // The app deletes a row; before the delete reaches Salesforce, the reader applies a
    // page it read earlier and, finding no row for the record, stores one. The app would
    // see that row come back, edit it, and have the edits refused as ENTITY_IS_DELETED.
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let sfid = h
        .create_in_salesforce(json!({ "Name": "Deleted by the app", "Code__c": "Z" }))
        .await;
    h.load().await;
    h.pg.batch_execute("delete from salesforce.gadget__c where code__c = 'Z'")
        .await
        .unwrap();
    // The reader's stale page, stored as pgforce stores what it reads (not captured).
    h.pg.batch_execute(&format!(
        "begin; set local xmlbinary = 'hex';
         insert into salesforce.gadget__c (sfid, name, code__c) values ('{sfid}', 'Deleted by the app', 'Z');
         commit;"
    ))
    .await
    .unwrap();
    let outcome = pass(&mut h, &WritePolicy::default()).await;
    assert_eq!(outcome.succeeded, 1, "{outcome:?}");
    let left: i64 =
        h.pg.query_one(
            "select count(*) from salesforce.gadget__c where sfid = $1",
            &[&sfid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "no row of the deleted record comes back");
    let remembered: i64 =
        h.pg.query_one(
            "select count(*) from pgforce.deleted_records
             where schema_name = 'salesforce' and table_name = 'gadget__c' and sfid = $1",
            &[&sfid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        remembered, 1,
        "a page read before the delete does not store it again"
    );
}
