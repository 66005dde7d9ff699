//! The reader against the emulator and a real Postgres: every type, initial load,
//! incremental changes, ties across pages, interrupted loads, rejected values, no echo.

use std::time::Duration;

use pgforce_emulator::EmulatorConfig;
use pgforce_store::ddl::PgType;
use pgforce_sync::testing::{initial_load, poll_once};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, harness, harness_mapping};

async fn create(h: &Harness, fields: Value) -> String {
    let Value::Object(record) = fields else {
        unreachable!("test records are objects")
    };
    h.sf.create("Gadget__c", &record).await.unwrap()
}

fn full_gadget(code: &str, account: &str) -> Value {
    json!({
        "Name": "Widget \"Pro\"\ttab", "Code__c": code, "Price__c": 1234.5, "Stock__c": -7, "Ratio__c": 12.25,
        "Active__c": true, "Launched__c": "2024-02-29", "Checked_At__c": "2024-03-01T10:20:30.456Z",
        "Notes__c": "line 1\nline 2 \\ back\u{e9}", "Kind__c": "B", "Tags__c": "x;z", "Email__c": "a@b.example",
        "Site__c": "https://example.com", "Account__c": account
    })
}

#[tokio::test]
async fn initial_load_stores_every_type_exactly() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let account =
        h.sf.create(
            "Account",
            &serde_json::from_value(json!({ "Name": "Parent" })).unwrap(),
        )
        .await
        .unwrap();
    let id = create(&h, full_gadget("G-1", &account)).await;
    create(&h, json!({ "Name": "Empty", "Code__c": "G-2" })).await;
    let target_mapping = h.mapping.clone();
    let target = pgforce_sync::testing::Target {
        schema: &h.schema,
        mapping: &target_mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let outcome = initial_load(&h.sf, &mut h.pg, &target, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((outcome.applied, outcome.rejected.len()), (2, 0));
    let row = h
        .pg
        .query_one(
            "select name, code__c, price__c, stock__c, ratio__c, active__c, launched__c::text, checked_at__c::text,
                    notes__c, kind__c, tags__c, email__c, site__c, account__c, isdeleted, systemmodstamp is not null,
                    createddate is not null, _hc_lastop
             from salesforce.gadget__c where sfid = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Widget \"Pro\"\ttab");
    assert_eq!(row.get::<_, String>(1), "G-1");
    assert_eq!(row.get::<_, f64>(2), 1234.5);
    assert_eq!(row.get::<_, i32>(3), -7);
    assert_eq!(row.get::<_, f64>(4), 12.25);
    assert!(row.get::<_, bool>(5));
    assert_eq!(row.get::<_, String>(6), "2024-02-29");
    assert_eq!(
        row.get::<_, String>(7),
        "2024-03-01 10:20:30.456",
        "UTC wall time, milliseconds kept"
    );
    assert_eq!(row.get::<_, String>(8), "line 1\nline 2 \\ back\u{e9}");
    assert_eq!(
        (row.get::<_, String>(9), row.get::<_, String>(10)),
        ("B".to_owned(), "x;z".to_owned())
    );
    assert_eq!(row.get::<_, String>(13), account);
    assert!(!row.get::<_, bool>(14));
    assert!(row.get::<_, bool>(15) && row.get::<_, bool>(16));
    assert_eq!(
        row.get::<_, String>(17),
        "SYNCED",
        "rows pgforce writes are marked synced"
    );
    let empty: (Option<f64>, Option<bool>) = {
        let r =
            h.pg.query_one(
                "select price__c, active__c from salesforce.gadget__c where code__c = 'G-2'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        empty,
        (None, Some(false)),
        "nulls stay null; Salesforce checkboxes are never null"
    );
    assert_eq!(h.mapping_state().await, ("DATA_SYNCED".to_owned(), None));
    let logged: i64 =
        h.pg.query_one("select count(*) from salesforce._trigger_log", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(
        logged, 0,
        "nothing pgforce wrote was captured for the writer"
    );
}

#[tokio::test]
async fn polls_bring_inserts_updates_deletes_and_undeletes() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let kept = create(&h, json!({ "Name": "Kept", "Code__c": "K" })).await;
    let gone = create(&h, json!({ "Name": "Gone", "Code__c": "D" })).await;
    let mapping = h.mapping.clone();
    let target = pgforce_sync::testing::Target {
        schema: &h.schema,
        mapping: &mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    initial_load(&h.sf, &mut h.pg, &target, &mut |_| {})
        .await
        .unwrap();
    create(&h, json!({ "Name": "Added", "Code__c": "A" })).await;
    h.sf.update(
        "Gadget__c",
        &kept,
        &serde_json::from_value(json!({ "Name": "Renamed", "Stock__c": 3 })).unwrap(),
    )
    .await
    .unwrap();
    h.sf.delete("Gadget__c", &gone).await.unwrap();
    let outcome = poll_once(&h.sf, &mut h.pg, &target).await.unwrap();
    assert_eq!(outcome.deleted, 1);
    assert!(outcome.applied >= 2, "{outcome:?}");
    let names: Vec<String> =
        h.pg.query("select name from salesforce.gadget__c order by name", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(names, ["Added", "Renamed"]);
    assert_eq!(
        poll_once(&h.sf, &mut h.pg, &target).await.unwrap().applied,
        0,
        "a quiet org changes nothing"
    );
    h.org
        .control(Method::POST, "/undelete", Some(json!({ "ids": [gone] })))
        .await;
    poll_once(&h.sf, &mut h.pg, &target).await.unwrap();
    assert_eq!(h.count().await, 3, "the undeleted record is back");
    let logged: i64 =
        h.pg.query_one("select count(*) from salesforce._trigger_log", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(logged, 0, "no echo");
}

#[tokio::test]
async fn ties_on_one_stamp_across_page_boundaries_lose_nothing() {
    let mut h = harness(200, EmulatorConfig::default()).await;
    let mapping = h.mapping.clone();
    let target = pgforce_sync::testing::Target {
        schema: &h.schema,
        mapping: &mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    initial_load(&h.sf, &mut h.pg, &target, &mut |_| {})
        .await
        .unwrap();
    // One seed call writes 2,000 records per transaction: thousands share a stamp.
    h.org
        .control(Method::POST, "/seed", Some(json!({ "Gadget__c": 2500 })))
        .await;
    let outcome = poll_once(&h.sf, &mut h.pg, &target).await.unwrap();
    assert_eq!(outcome.applied, 2500);
    assert_eq!((h.count().await, h.distinct_sfids().await), (2500, 2500));
    h.org
        .control(Method::POST, "/seed", Some(json!({ "Gadget__c": 450 })))
        .await;
    poll_once(&h.sf, &mut h.pg, &target).await.unwrap();
    assert_eq!((h.count().await, h.distinct_sfids().await), (2950, 2950));
}

#[tokio::test]
async fn the_poll_after_a_load_applies_none_of_the_records_sharing_the_load_s_last_stamp() {
    let mut h = harness(200, EmulatorConfig::default()).await;
    // One seed transaction: 1,500 records share one stamp, the load's newest.
    h.org
        .control(Method::POST, "/seed", Some(json!({ "Gadget__c": 1500 })))
        .await;
    assert_eq!(h.load().await.applied, 1500);
    // The first poll reads that whole stamp again (the load's cursor has no Id), finds
    // every row holding that version, and writes none; a record changed since is applied.
    let sfid = create(&h, json!({ "Name": "After the load" })).await;
    let outcome = h.poll().await;
    assert_eq!(outcome.applied, 1, "{outcome:?}");
    assert_eq!(
        (h.count().await, h.distinct_sfids().await),
        (1501, 1501),
        "{sfid}"
    );
}

#[tokio::test]
async fn an_interrupted_load_leaves_nothing_and_a_rerun_converges() {
    let config = EmulatorConfig {
        faults: pgforce_emulator::FaultConfig {
            latency_ms: 40,
            ..Default::default()
        },
        ..EmulatorConfig::default()
    };
    let mut h = harness(200, config).await;
    h.org
        .control(Method::POST, "/seed", Some(json!({ "Gadget__c": 3000 })))
        .await;
    let mapping = h.mapping.clone();
    let target = pgforce_sync::testing::Target {
        schema: &h.schema,
        mapping: &mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let mut pages = 0;
    let interrupted = tokio::time::timeout(
        Duration::from_millis(300),
        initial_load(&h.sf, &mut h.pg, &target, &mut |_| pages += 1),
    )
    .await;
    assert!(interrupted.is_err(), "the load was cut off");
    let pg = h.db.client().await;
    let rows: i64 = pg
        .query_one("select count(*) from salesforce.gadget__c", &[])
        .await
        .unwrap()
        .get(0);
    let cursors: i64 = pg
        .query_one("select count(*) from pgforce.read_cursors", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((rows, cursors), (0, 0), "a cut-off load commits nothing");
    let mut pg = pg;
    initial_load(&h.sf, &mut pg, &target, &mut |_| {})
        .await
        .unwrap();
    poll_once(&h.sf, &mut pg, &target).await.unwrap();
    h.pg = pg;
    assert_eq!((h.count().await, h.distinct_sfids().await), (3000, 3000));
}

#[tokio::test]
async fn values_that_do_not_fit_are_reported_with_the_record_not_dropped_silently() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let long = create(
        &h,
        json!({ "Name": "A name longer than five", "Code__c": "L" }),
    )
    .await;
    create(&h, json!({ "Name": "Ok", "Code__c": "S" })).await;
    let mut mapping = h.mapping.clone();
    for field in &mut mapping.fields {
        if field.api_name == "Name" {
            field.pg_type = PgType::Varchar(5);
        }
    }
    let target = pgforce_sync::testing::Target {
        schema: &h.schema,
        mapping: &mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let outcome = initial_load(&h.sf, &mut h.pg, &target, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(outcome.applied, 1);
    assert_eq!(outcome.rejected[0].sfid, long);
    assert_eq!(outcome.rejected[0].field, "Name");
    let (_, error) = h.mapping_state().await;
    let error = error.unwrap();
    assert!(
        error.contains(&long) && error.contains("Name") && error.contains("do not fit varchar(5)"),
        "{error}"
    );
}

/// The record's row in `pgforce.rejected_records`: field, reason, times seen.
async fn kept(pg: &tokio_postgres::Client, sfid: &str) -> Option<(String, String, i32)> {
    pg.query_opt(
        "select field, reason, times_seen from pgforce.rejected_records where sfid = $1",
        &[&sfid],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
}

#[tokio::test]
async fn rejected_records_are_kept_seen_again_and_forgotten_once_stored() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let long = create(&h, json!({ "Name": "Too long", "Code__c": "L" })).await;
    h.load().await;
    // The mapping now checks values against a column narrower than Salesforce's field.
    let wide = h.mapping.clone();
    for field in &mut h.mapping.fields {
        if field.api_name == "Name" {
            field.pg_type = PgType::Varchar(5);
        }
    }
    h.sf.update(
        "Gadget__c",
        &long,
        &serde_json::from_value(json!({ "Name": "Longer still" })).unwrap(),
    )
    .await
    .unwrap();
    let outcome = h.poll().await;
    assert_eq!(outcome.rejected.len(), 1);
    let reason = "12 characters do not fit varchar(5)".to_owned();
    assert_eq!(
        kept(&h.pg, &long).await,
        Some(("Name".to_owned(), reason.clone(), 1))
    );

    // A clean poll leaves it; reading it again and rejecting it again counts it.
    create(&h, json!({ "Name": "Ok", "Code__c": "S" })).await;
    assert_eq!(h.poll().await.rejected.len(), 0);
    assert_eq!(
        kept(&h.pg, &long).await,
        Some(("Name".to_owned(), reason.clone(), 1))
    );
    let target = pgforce_sync::testing::Target {
        schema: &h.schema,
        mapping: &h.mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let stored = pgforce_sync::testing::refresh_records(
        &h.sf,
        &mut h.db.client().await,
        &target,
        std::slice::from_ref(&long),
    )
    .await
    .unwrap();
    assert_eq!(stored, 0);
    assert_eq!(
        kept(&h.pg, &long).await,
        Some(("Name".to_owned(), reason, 2))
    );

    // Stored once it fits: forgotten.
    h.mapping = wide;
    h.sf.update(
        "Gadget__c",
        &long,
        &serde_json::from_value(json!({ "Name": "Longer again" })).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(h.poll().await.rejected.len(), 0);
    assert_eq!(kept(&h.pg, &long).await, None);
    let name: String =
        h.pg.query_one(
            "select name from salesforce.gadget__c where sfid = $1",
            &[&long],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Longer again");
}

#[tokio::test]
async fn a_reload_keeps_rows_not_sent_yet_and_rows_with_unsent_changes() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    for n in 0..5 {
        h.create_in_salesforce(
            json!({ "Name": format!("Remote {n}"), "Code__c": format!("R-{n}") }),
        )
        .await;
    }
    h.load().await;
    // The app inserts a row and edits a loaded one; neither change is sent yet.
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c) values ('Local', 'L-1');
         update salesforce.gadget__c set name = 'Edited here' where code__c = 'R-0';",
    )
    .await
    .unwrap();
    // A reload now (an operator's `pgforce reload`, or a first load racing the app).
    let outcome = h.load().await;
    assert_eq!(outcome.applied, 5);
    let names: Vec<String> =
        h.pg.query(
            "select name from salesforce.gadget__c order by code__c",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        names,
        [
            "Local",
            "Edited here",
            "Remote 1",
            "Remote 2",
            "Remote 3",
            "Remote 4"
        ],
        "the local row and the local edit stay"
    );
    assert_eq!(h.distinct_sfids().await, 5);
    // Both changes still reach Salesforce, and nothing is deleted there.
    let written = h
        .write(&pgforce_sync::testing::WritePolicy::default())
        .await;
    assert_eq!((written.succeeded, written.failed), (2, 0), "{written:?}");
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        6
    );
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c WHERE Name = 'Edited here'")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_record_committed_late_with_an_older_stamp_is_read_by_the_overlap() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    h.load().await;
    // The next write takes its SystemModstamp now and becomes visible 1.5 s later, as a
    // record written early in a long Salesforce transaction does.
    h.org
        .control(
            Method::POST,
            "/faults/script",
            Some(json!({ "steps": [{ "on": "write", "fault": "commitDelay", "delayMs": 1500 }] })),
        )
        .await;
    let late = tokio::spawn({
        let sf = h.sf.clone();
        async move {
            let Value::Object(record) = json!({ "Name": "Late", "Code__c": "LATE" }) else {
                unreachable!("an object")
            };
            sf.create("Gadget__c", &record).await.unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    create(&h, json!({ "Name": "Prompt", "Code__c": "PROMPT" })).await;
    // This poll sees the prompt record only, and its cursor moves past the late one's stamp.
    assert_eq!(h.poll().await.applied, 1);
    late.await.unwrap();
    let outcome = h.poll().await;
    assert_eq!(outcome.applied, 1, "{outcome:?}");
    let names: Vec<String> =
        h.pg.query("select name from salesforce.gadget__c order by name", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(names, ["Late", "Prompt"]);
    assert_eq!(
        h.poll().await.applied,
        0,
        "records read again by the overlap are not applied twice"
    );
}

#[tokio::test]
async fn a_poll_whose_query_cursor_salesforce_released_starts_over_from_its_cursor() {
    let mut h = harness(200, EmulatorConfig::default()).await;
    h.load().await;
    h.org
        .control(
            Method::PUT,
            "/faults",
            Some(json!({ "maxOpenCursorsPerUser": 1 })),
        )
        .await;
    for batch in 0..3 {
        let records: Vec<pgforce_salesforce::rest::Record> = (0..200)
            .map(|n| {
                let Value::Object(record) =
                    json!({ "Name": format!("Many {batch}-{n}"), "Code__c": format!("M-{batch}-{n}") })
                else {
                    unreachable!("an object")
                };
                record
            })
            .collect();
        h.sf.create_records("Gadget__c", &records, true)
            .await
            .unwrap();
    }
    // The poll reads its first page, then waits for the table's sync lock, held here;
    // meanwhile another query of the same user opens a cursor, and Salesforce releases
    // the poll's.
    let locker = h.db.client().await;
    locker
        .execute(
            "select pg_advisory_lock(hashtextextended('pgforce:salesforce.gadget__c', 0))",
            &[],
        )
        .await
        .unwrap();
    let mut poller = h.db.client().await;
    let target = pgforce_sync::testing::Target {
        schema: &h.schema,
        mapping: &h.mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let evict = async {
        let waiting = "select count(*) from pg_locks where locktype = 'advisory' and not granted";
        while locker
            .query_one(waiting, &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut pages = Box::pin(h.sf.query_pages("SELECT Id FROM Gadget__c", false));
        use futures_util::TryStreamExt as _;
        let first = pages.try_next().await.unwrap().unwrap();
        assert!(!first.done, "this query keeps a cursor open");
        locker
            .execute(
                "select pg_advisory_unlock(hashtextextended('pgforce:salesforce.gadget__c', 0))",
                &[],
            )
            .await
            .unwrap();
    };
    let (outcome, ()) = tokio::join!(poll_once(&h.sf, &mut poller, &target), evict);
    let outcome = outcome.unwrap();
    assert_eq!(outcome.applied, 600, "{outcome:?}");
    assert_eq!(h.count().await, 600);
}

/// What a change event applied while a poll's page was on its way does to the row, given
/// as a function of the second session's own transaction (it holds the table's sync lock).
type EventApply = for<'a> fn(
    &'a pgforce_store::OwnTransaction<'a>,
    &'a pgforce_salesforce::Client,
    &'a pgforce_sync::testing::Mapping,
    &'a pgforce_store::Ident,
    &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// Holds the table's sync lock in a second session (as the subscriber's transaction does)
/// while a poll reads a page, waits until the poll blocks on the lock with its page read,
/// then edits the record in Salesforce with `sf_edit` and applies the event with `apply`
/// before releasing the lock, so the page the poll applies is older than the row.
async fn poll_around_an_event(
    h: &mut Harness,
    sfid: &str,
    sf_edit: impl std::future::Future<Output = ()>,
    apply: EventApply,
) {
    let mut events = h.db.client().await;
    let tx = pgforce_store::OwnWrite::on_table(&h.schema, &h.mapping.table)
        .begin(&mut events)
        .await
        .unwrap();
    let target = pgforce_sync::testing::Target {
        schema: &h.schema,
        mapping: &h.mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let watcher = h.db.client().await;
    let event = async {
        // The poll has its page and waits for the sync lock.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "select count(*) from pg_locks where locktype = 'advisory' and not granted
                     and database = (select oid from pg_database where datname = current_database())",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the poll never waited for the sync lock"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sf_edit.await;
        apply(&tx, &h.sf, &h.mapping, &h.schema, sfid).await;
        tx.commit("the event").await.unwrap();
    };
    let (outcome, ()) = tokio::join!(poll_once(&h.sf, &mut h.pg, &target), event);
    outcome.unwrap();
}

async fn name_in_postgres(h: &Harness) -> Vec<String> {
    h.pg.query("select name from salesforce.gadget__c", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_poll_page_read_before_an_event_never_overwrites_the_newer_row() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let sfid = create(&h, json!({ "Name": "Loaded", "Code__c": "E-1" })).await;
    h.load().await;
    let rename = |name: &'static str| {
        let (sf, sfid) = (h.sf.clone(), sfid.clone());
        async move {
            sf.update(
                "Gadget__c",
                &sfid,
                &serde_json::from_value(json!({ "Name": name })).unwrap(),
            )
            .await
            .unwrap();
        }
    };
    rename("Page").await;
    let newer = rename("Event");
    poll_around_an_event(&mut h, &sfid.clone(), newer, |tx, sf, _, _, sfid| {
        Box::pin(async move {
            let stamp = sf
                .get("Gadget__c", sfid, Some(&["SystemModstamp"]))
                .await
                .unwrap()["SystemModstamp"]
                .as_str()
                .unwrap()
                .to_owned();
            tx.execute(
                "update salesforce.gadget__c set name = 'Event',
                     systemmodstamp = $2::text::timestamptz at time zone 'UTC' where sfid = $1",
                &[&sfid, &stamp],
            )
            .await
            .unwrap();
        })
    })
    .await;
    assert_eq!(
        name_in_postgres(&h).await,
        ["Event"],
        "the older page leaves the newer row alone"
    );
}

#[tokio::test]
async fn a_poll_page_read_before_a_delete_event_never_brings_the_row_back() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let sfid = create(&h, json!({ "Name": "Loaded", "Code__c": "E-2" })).await;
    h.load().await;
    h.sf.update(
        "Gadget__c",
        &sfid,
        &serde_json::from_value(json!({ "Name": "Page" })).unwrap(),
    )
    .await
    .unwrap();
    let delete = {
        let (sf, sfid) = (h.sf.clone(), sfid.clone());
        async move { sf.delete("Gadget__c", &sfid).await.unwrap() }
    };
    poll_around_an_event(
        &mut h,
        &sfid.clone(),
        delete,
        |tx, _, mapping, schema, sfid| {
            Box::pin(async move {
                let statements = pgforce_store::table::apply::ApplyStatements::new(
                    &mapping.row_shape(schema).unwrap(),
                );
                let removed = pgforce_store::table::apply::delete_record(tx, &statements, sfid)
                    .await
                    .unwrap();
                assert_eq!(removed, 1);
            })
        },
    )
    .await;
    assert!(
        name_in_postgres(&h).await.is_empty(),
        "the record the event deleted stays deleted"
    );
}

#[tokio::test]
async fn records_sharing_a_non_unique_external_id_used_as_upsert_field_all_load() {
    // Batch_Ref__c is an External ID that Salesforce does not hold unique.
    let mut h = harness_mapping(
        2000,
        EmulatorConfig::default(),
        Some("Batch_Ref__c"),
        &["Batch_Ref__c"],
    )
    .await;
    for code in ["N-1", "N-2"] {
        create(
            &h,
            json!({ "Name": code, "Code__c": code, "Batch_Ref__c": "B" }),
        )
        .await;
    }
    h.load().await;
    assert_eq!((h.count().await, h.distinct_sfids().await), (2, 2));
    create(
        &h,
        json!({ "Name": "N-3", "Code__c": "N-3", "Batch_Ref__c": "B" }),
    )
    .await;
    h.poll().await;
    assert_eq!(
        (h.count().await, h.distinct_sfids().await),
        (3, 3),
        "a poll stores a third record with the same value"
    );
}
