//! Query cursors Salesforce releases midway (`INVALID_QUERY_LOCATOR` on a `nextRecordsUrl`
//! page), made to happen at one exact page by the emulator's `releaseCursor` script step:
//! the writer's look for creates in doubt reads its query again and still finds the create,
//! and a read that loses its cursor more often than it may start over fails with an error
//! naming `INVALID_QUERY_LOCATOR` instead of reading forever, keeping what it applied.
//! (The poll that recovers from one released cursor is proven in `reader.rs`, with the
//! cursor released by another query of the same user.)

use std::time::Duration;

use futures_util::TryStreamExt as _;
use pgforce_emulator::EmulatorConfig;
use pgforce_salesforce::rest::Record;
use pgforce_store::trigger_log::resume::LeftAlone;
use pgforce_sync::testing::{
    ResumeOutcome, Target, WritePolicy, poll_with_overlap, resume_pending,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, harness_with};

/// Records per query page here: the emulator's smallest.
const PAGE: u32 = 200;

/// How many times the look for creates in doubt reads its query in all before it gives
/// up: once, then `3 × CURSOR_RESTARTS` (3) times more.
const LOOK_ATTEMPTS: usize = 10;

/// How many times a poll reads in all before it gives up: once, then `CURSOR_RESTARTS`
/// (3) times more.
const POLL_ATTEMPTS: usize = 4;

/// Queues `steps` in the emulator's fault script (each spent by the next call it fits).
async fn script(h: &Harness, steps: Value) {
    h.org
        .control(
            Method::POST,
            "/faults/script",
            Some(json!({ "steps": steps })),
        )
        .await;
}

/// Scripted steps not spent yet.
async fn steps_left(h: &Harness) -> usize {
    let body = h.org.control(Method::GET, "/faults/script", None).await;
    body["steps"].as_array().unwrap().len()
}

/// `count` steps that each release the cursor of the next query continuation.
fn released_cursors(count: usize) -> Value {
    Value::Array(vec![
        json!({ "on": "query", "fault": "releaseCursor" });
        count
    ])
}

/// A create whose answer was lost, so it is in doubt, on a mapping without an upsert field,
/// followed by `others` records created in Salesforce by the org's users. The create fills
/// no text field, so nothing narrows the look for it: the look reads every record created
/// since, over several pages.
async fn create_in_doubt_among(others: u64) -> Harness {
    let mut h = harness_with(PAGE, EmulatorConfig::default(), None).await;
    h.pg.batch_execute("insert into salesforce.gadget__c (price__c, stock__c) values (3.5, 7)")
        .await
        .unwrap();
    script(
        &h,
        json!([{ "on": "collections", "fault": "lostResponse" }]),
    )
    .await;
    let outcome = h.write(&WritePolicy::default()).await;
    assert_eq!(outcome.in_doubt, 1, "{outcome:?}");
    h.org
        .control(Method::POST, "/seed", Some(json!({ "Gadget__c": others })))
        .await;
    h
}

/// The look for creates in doubt, as a starting writer runs it, bounded in time.
async fn try_resume(h: &mut Harness) -> pgforce_sync::Result<ResumeOutcome> {
    tokio::time::timeout(
        Duration::from_secs(30),
        resume_pending(
            &h.sf,
            &mut h.pg,
            &h.schema,
            std::slice::from_ref(&h.mapping),
            LeftAlone::default(),
            None,
        ),
    )
    .await
    .expect("the look ends, found or failed")
}

/// Gadget__c records in Salesforce with the in-doubt create's values.
async fn made_in_salesforce(h: &Harness) -> Vec<String> {
    h.sf.query("SELECT Id FROM Gadget__c WHERE Price__c = 3.5 AND Stock__c = 7 AND Name = null")
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect()
}

/// The app row's sfid and its log row's state.
async fn row_and_log(h: &Harness) -> (Option<String>, String) {
    let row =
        h.pg.query_one(
            "select g.sfid, l.state::text from salesforce.gadget__c g
             join salesforce._trigger_log l on l.record_id = g.id",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_create_in_doubt_is_found_though_salesforce_releases_the_look_s_cursor() {
    let mut h = create_in_doubt_among(500).await;
    script(&h, released_cursors(1)).await;
    let resumed = try_resume(&mut h).await.unwrap();
    assert_eq!(
        steps_left(&h).await,
        0,
        "the look paged and lost its cursor"
    );
    assert_eq!(resumed.found, 1, "{resumed:?}");
    let made = made_in_salesforce(&h).await;
    assert_eq!(made.len(), 1, "made once: {made:?}");
    assert_eq!(
        row_and_log(&h).await,
        (Some(made[0].clone()), "SUCCESS".to_owned())
    );
    let outcome = h.write(&WritePolicy::default()).await;
    assert_eq!(outcome.succeeded, 0, "nothing is sent again: {outcome:?}");
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        501,
        "no duplicate"
    );
}

#[tokio::test]
async fn a_look_whose_cursor_is_released_every_time_fails_naming_invalid_query_locator() {
    let mut h = create_in_doubt_among(500).await;
    script(&h, released_cursors(LOOK_ATTEMPTS)).await;
    let error = try_resume(&mut h)
        .await
        .expect_err("every attempt lost its cursor");
    assert!(
        error.chain().contains("INVALID_QUERY_LOCATOR"),
        "{}",
        error.chain()
    );
    assert_eq!(
        steps_left(&h).await,
        0,
        "each of the {LOOK_ATTEMPTS} attempts read a page and lost its cursor"
    );
    assert_eq!(
        row_and_log(&h).await,
        (None, "PENDING".to_owned()),
        "the create stays in doubt, neither adopted nor sent again"
    );
    // Once Salesforce keeps the cursor, the next look finds the create.
    let resumed = try_resume(&mut h).await.unwrap();
    assert_eq!(resumed.found, 1, "{resumed:?}");
    assert_eq!(made_in_salesforce(&h).await.len(), 1);
}

#[tokio::test]
async fn a_poll_whose_cursor_is_released_every_time_fails_naming_invalid_query_locator_and_keeps_its_pages()
 {
    let mut h = harness_with(PAGE, EmulatorConfig::default(), Some("Code__c")).await;
    h.load().await;
    // Enough changes that every attempt, starting where the last one got to, still pages.
    for batch in 0..5 {
        let records: Vec<Record> = (0..PAGE)
            .map(|n| {
                let Value::Object(record) =
                    json!({ "Name": format!("Paged {batch}-{n}"), "Code__c": format!("P-{batch}-{n}") })
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
    script(&h, released_cursors(POLL_ATTEMPTS)).await;
    let target = Target {
        schema: &h.schema,
        mapping: &h.mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let polled = tokio::time::timeout(
        Duration::from_secs(30),
        poll_with_overlap(&h.sf, &mut h.pg, &target, Duration::ZERO),
    )
    .await
    .expect("the poll ends, done or failed");
    let error = polled.expect_err("every attempt lost its cursor");
    assert!(
        error.chain().contains("INVALID_QUERY_LOCATOR"),
        "{}",
        error.chain()
    );
    assert_eq!(steps_left(&h).await, 0, "{POLL_ATTEMPTS} attempts");
    assert_eq!(
        h.count().await,
        i64::from(PAGE) * POLL_ATTEMPTS as i64,
        "each attempt kept the page it applied"
    );
    // The next poll goes on from there.
    let outcome = h.poll_past_overlap().await;
    assert_eq!(outcome.applied, u64::from(PAGE), "{outcome:?}");
    assert_eq!(h.count().await, 1000);
    assert_eq!(h.distinct_sfids().await, 1000);
}
