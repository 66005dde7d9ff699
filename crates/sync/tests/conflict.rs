//! A record changed on both sides before a sync: the later change wins, by time, and the
//! decision is visible.

use std::time::Duration;

use pgforce_emulator::EmulatorConfig;
use pgforce_sync::testing::WritePolicy;
use serde_json::json;

use crate::support::{Harness, harness};

/// A harness with one record loaded; returns its sfid.
async fn one_record(h: &mut Harness) -> String {
    let sfid = h
        .create_in_salesforce(json!({ "Name": "Original", "Code__c": "C" }))
        .await;
    h.load().await;
    sfid
}

async fn edit_in_salesforce(h: &Harness, sfid: &str, name: &str) {
    h.sf.update(
        "Gadget__c",
        sfid,
        &serde_json::from_value(json!({ "Name": name })).unwrap(),
    )
    .await
    .unwrap();
}

async fn edit_in_postgres(h: &Harness, name: &str) {
    h.pg.execute("update salesforce.gadget__c set name = $1", &[&name])
        .await
        .unwrap();
}

async fn write(h: &mut Harness) -> u64 {
    h.write(&WritePolicy::default()).await.succeeded
}

async fn names(h: &Harness, sfid: &str) -> (String, String) {
    let local: String =
        h.pg.query_one("select name from salesforce.gadget__c", &[])
            .await
            .unwrap()
            .get(0);
    let remote = h.sf.get("Gadget__c", sfid, Some(&["Name"])).await.unwrap()["Name"]
        .as_str()
        .unwrap()
        .to_owned();
    (local, remote)
}

#[tokio::test]
async fn a_newer_local_change_wins_over_an_older_salesforce_change() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let sfid = one_record(&mut h).await;
    edit_in_salesforce(&h, &sfid, "Salesforce edit").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    edit_in_postgres(&h, "Postgres edit").await;

    let read = h.poll().await;
    assert_eq!(read.local_wins, 1, "{read:?}");
    assert_eq!(
        names(&h, &sfid).await.0,
        "Postgres edit",
        "the newer local value stays"
    );
    assert_eq!(write(&mut h).await, 1);
    h.poll().await;
    assert_eq!(
        names(&h, &sfid).await,
        ("Postgres edit".to_owned(), "Postgres edit".to_owned())
    );
}

#[tokio::test]
async fn a_newer_salesforce_change_wins_over_an_older_local_change() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let sfid = one_record(&mut h).await;
    edit_in_postgres(&h, "Postgres edit").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    edit_in_salesforce(&h, &sfid, "Salesforce edit").await;

    let read = h.poll().await;
    assert_eq!(read.superseded, 1, "{read:?}");
    let (state, message): (String, String) = {
        let row =
            h.pg.query_one(
                "select state::text, sf_message from salesforce._trigger_log where action = 'UPDATE'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(state, "IGNORED");
    assert!(message.contains("last writer wins"), "{message}");
    assert_eq!(write(&mut h).await, 0, "the older local change is not sent");
    assert_eq!(
        names(&h, &sfid).await,
        ("Salesforce edit".to_owned(), "Salesforce edit".to_owned())
    );
}

/// The record's `SystemModstamp` as Postgres holds it, and as Salesforce has it.
async fn stamps(h: &Harness, sfid: &str) -> (String, String) {
    let local: String =
        h.pg.query_one(
            "select to_char(systemmodstamp, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS') from salesforce.gadget__c",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let remote =
        h.sf.get("Gadget__c", sfid, Some(&["SystemModstamp"]))
            .await
            .unwrap()["SystemModstamp"]
            .as_str()
            .unwrap()
            .chars()
            .take(23)
            .collect();
    (local, remote)
}

#[tokio::test]
async fn a_record_read_while_its_write_is_in_flight_is_read_again_once_it_landed() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let sfid = one_record(&mut h).await;
    edit_in_postgres(&h, "Postgres edit").await;
    // The writer has claimed the change and its call has reached Salesforce, but the
    // outcome is not recorded yet: a poll now sees the write's own version of the record.
    h.pg.batch_execute(
        "update salesforce._trigger_log set state = 'PENDING' where action = 'UPDATE'",
    )
    .await
    .unwrap();
    edit_in_salesforce(&h, &sfid, "Postgres edit").await;
    let read = h.poll().await;
    assert_eq!(
        read.local_wins, 1,
        "an in-flight change keeps its local values: {read:?}"
    );
    // The outcome is recorded; nothing changes in Salesforce any more.
    h.pg.batch_execute(
        "update salesforce._trigger_log set state = 'SUCCESS' where action = 'UPDATE'",
    )
    .await
    .unwrap();
    h.poll().await;
    let (local, remote) = stamps(&h, &sfid).await;
    assert_eq!(
        local, remote,
        "the next poll reads the record again and takes Salesforce's stamp"
    );
}

#[tokio::test]
async fn a_salesforce_change_behind_a_long_pending_local_change_is_applied_once_it_is_recorded() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let sfid = one_record(&mut h).await;
    edit_in_postgres(&h, "Postgres edit").await;
    // A Bulk job claimed the change more than five minutes ago and wrote it; then someone
    // edited the record in Salesforce while the job's results were still to be recorded.
    h.pg.batch_execute(
        "update salesforce._trigger_log set state = 'PENDING', updated_at = now() - interval '301 seconds'
         where action = 'UPDATE'",
    )
    .await
    .unwrap();
    edit_in_salesforce(&h, &sfid, "Postgres edit").await;
    edit_in_salesforce(&h, &sfid, "Salesforce edit").await;
    let read = h.poll().await;
    assert_eq!(
        read.local_wins, 1,
        "the pending change keeps its row: {read:?}"
    );
    h.pg.batch_execute(
        "update salesforce._trigger_log set state = 'SUCCESS' where action = 'UPDATE'",
    )
    .await
    .unwrap();
    // Recorded later than the overlap window reaches back.
    h.poll_past_overlap().await;
    assert_eq!(
        names(&h, &sfid).await,
        ("Salesforce edit".to_owned(), "Salesforce edit".to_owned()),
        "the Salesforce edit the poll skipped is read again"
    );
}

#[tokio::test]
async fn a_winning_local_change_that_salesforce_refuses_leaves_salesforce_values_in_the_row() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let sfid = one_record(&mut h).await;
    edit_in_salesforce(&h, &sfid, "Salesforce edit").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Newer than the Salesforce edit, so it wins; Salesforce refuses the bad email.
    h.pg.execute(
        "update salesforce.gadget__c set name = 'Postgres edit', email__c = 'nope'",
        &[],
    )
    .await
    .unwrap();
    let read = h.poll().await;
    assert_eq!(read.local_wins, 1, "{read:?}");
    let outcome = h.write(&WritePolicy::default()).await;
    assert_eq!(outcome.failed, 1, "{outcome:?}");
    // Refused later than the overlap window reaches back.
    h.poll_past_overlap().await;
    assert_eq!(
        names(&h, &sfid).await,
        ("Salesforce edit".to_owned(), "Salesforce edit".to_owned()),
        "the row shows Salesforce's values once the local change failed"
    );
    let email: Option<String> =
        h.pg.query_one("select email__c from salesforce.gadget__c", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(email, None, "the refused email is not kept");
}

#[tokio::test]
async fn a_record_a_reload_left_out_for_a_local_change_that_then_fails_is_read_again() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let sfid = one_record(&mut h).await;
    edit_in_salesforce(&h, &sfid, "Salesforce edit").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    h.pg.execute(
        "update salesforce.gadget__c set name = 'Postgres edit', email__c = 'nope'",
        &[],
    )
    .await
    .unwrap();
    // A record changed later moves the reload's cursor past the first one.
    h.create_in_salesforce(json!({ "Name": "Later", "Code__c": "L" }))
        .await;
    h.load().await;
    let outcome = h.write(&WritePolicy::default()).await;
    assert_eq!(outcome.failed, 1, "{outcome:?}");
    h.poll_past_overlap().await;
    let name: String =
        h.pg.query_one(
            "select name from salesforce.gadget__c where sfid = $1",
            &[&sfid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        name, "Salesforce edit",
        "the record the reload left out is read once its local change failed"
    );
}
