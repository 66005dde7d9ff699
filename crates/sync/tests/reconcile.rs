//! Reconcile: every kind of drift between a mapping's records and rows is found, repair
//! fixes it, and a second comparison is clean; repair run beside a daemon leaves alone
//! what changed after the snapshot: rows stored or written back since, rows with unsent
//! local changes, rows queued meanwhile.

use futures_util::TryStreamExt as _;
use pgforce_emulator::EmulatorConfig;
use pgforce_sync::Drift;
use pgforce_sync::testing::Target;
use pgforce_sync::testing::WritePolicy;
use pgforce_sync::testing::{compare, record, repair};
use serde_json::json;

use crate::support::{Harness, harness};

#[tokio::test]
async fn every_kind_of_drift_is_found_and_repaired() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    for n in 0..30 {
        h.create_in_salesforce(json!({ "Name": format!("R {n}"), "Code__c": format!("R-{n}") }))
            .await;
    }
    h.load().await;
    h.poll().await;
    // An insert Salesforce refuses: FAILED in the log, then fixed behind pgforce's back.
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c, email__c) values ('Bad', 'X-1', 'nope')",
    )
    .await
    .unwrap();
    h.write(&WritePolicy::default()).await;
    let (mapping, schema) = (h.mapping.clone(), h.schema.clone());
    let target = Target {
        schema: &schema,
        mapping: &mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let clean = compare(&h.sf, &h.pg, &target).await.unwrap();
    assert_eq!(
        (clean.unsent_changes, clean.missing_in_postgres.len()),
        (1, 0),
        "{clean:?}"
    );

    let edited: String =
        h.pg.query_one(
            "select sfid from salesforce.gadget__c where code__c = 'R-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    h.sf.update(
        "Gadget__c",
        &edited,
        &serde_json::from_value(json!({ "Name": "Edited" })).unwrap(),
    )
    .await
    .unwrap();
    h.pg.batch_execute(
        "set xmlbinary = 'hex';
         delete from salesforce.gadget__c where code__c = 'R-2';
         insert into salesforce.gadget__c (sfid, name, code__c) values ('a00000000000999AAA', 'Ghost', 'G-0');
         insert into salesforce.gadget__c (name, code__c) values ('Never sent', 'N-1');
         update salesforce.gadget__c set email__c = 'ok@example.com' where code__c = 'X-1';
         set xmlbinary = 'base64';",
    )
    .await
    .unwrap();

    let drift = compare(&h.sf, &h.pg, &target).await.unwrap();
    assert_eq!(drift.salesforce_records, 30);
    assert_eq!(drift.missing_in_postgres.len(), 1, "{drift:?}");
    assert_eq!(drift.gone_from_salesforce, ["a00000000000999AAA"]);
    assert_eq!(drift.differing, std::slice::from_ref(&edited));
    assert_eq!(
        drift.never_sent.len(),
        1,
        "N-1 only: the failed insert is an unsent change"
    );
    assert_eq!(drift.unsent_changes, 1);
    assert!(!drift.is_clean());
    record(&h.pg, h.mapping_id, &drift).await.unwrap();
    let stored: serde_json::Value =
        h.pg.query_one(
            "select drift::text from pgforce.mappings where id = $1",
            &[&h.mapping_id.get()],
        )
        .await
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .unwrap();
    assert_eq!(stored["gone_from_salesforce"], 1);

    let done = repair(&h.sf, &mut h.pg, &target, &drift).await.unwrap();
    assert_eq!(
        (done.refreshed, done.deleted, done.requeued),
        (2, 1, 2),
        "{done:?}"
    );
    let written = h.write(&WritePolicy::default()).await;
    assert_eq!((written.succeeded, written.failed), (2, 0), "{written:?}");
    h.poll().await;
    let after = compare(&h.sf, &h.pg, &target).await.unwrap();
    assert!(after.is_clean(), "{after:?}");
    assert_eq!(after.salesforce_records, 32);
    let name: String =
        h.pg.query_one(
            "select name from salesforce.gadget__c where sfid = $1",
            &[&edited],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Edited");
}

/// The sfid of the row with this `code__c`, if it has one.
async fn sfid_of(h: &Harness, code: &str) -> Option<String> {
    h.pg.query_opt(
        "select sfid from salesforce.gadget__c where code__c = $1",
        &[&code],
    )
    .await
    .unwrap()
    .and_then(|row| row.get(0))
}

/// Whether a row holds this sfid.
async fn has_row(h: &Harness, sfid: &str) -> bool {
    h.pg.query_one(
        "select count(*) from salesforce.gadget__c where sfid = $1",
        &[&sfid],
    )
    .await
    .map(|row| row.get::<_, i64>(0) == 1)
    .unwrap()
}

/// `compare` reads Salesforce first and Postgres second: a row that appears in between,
/// for a record the Salesforce side did not see, is reported gone from Salesforce. This is
/// the drift it reports when its Postgres side is read just after these rows appeared.
fn read_late(mut drift: Drift, sfids: &[&str]) -> Drift {
    drift
        .gone_from_salesforce
        .extend(sfids.iter().map(|s| (*s).to_owned()));
    drift
}

#[tokio::test]
async fn rows_stored_after_the_snapshot_are_not_deleted_as_gone() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    for n in 0..3 {
        h.create_in_salesforce(json!({ "Name": format!("R {n}"), "Code__c": format!("R-{n}") }))
            .await;
    }
    h.load().await;
    // An app's insert on its way to Salesforce.
    h.pg.batch_execute("insert into salesforce.gadget__c (name, code__c) values ('App', 'W-1')")
        .await
        .unwrap();
    let (mapping, schema) = (h.mapping.clone(), h.schema.clone());
    let target = Target {
        schema: &schema,
        mapping: &mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let drift = compare(&h.sf, &h.pg, &target).await.unwrap();
    assert!(drift.gone_from_salesforce.is_empty(), "{drift:?}");
    assert_eq!(drift.unsent_changes, 1, "{drift:?}");

    // After the snapshot began: a record created in Salesforce and stored by the reader,
    // and the app's row sent by the writer, which wrote its sfid back.
    let late = h
        .create_in_salesforce(json!({ "Name": "Late", "Code__c": "L-1" }))
        .await;
    h.poll().await;
    assert!(
        has_row(&h, &late).await,
        "the reader stored the late record"
    );
    let written = h.write(&WritePolicy::default()).await;
    assert_eq!((written.succeeded, written.failed), (1, 0), "{written:?}");
    let sent = sfid_of(&h, "W-1")
        .await
        .expect("the writer wrote the sfid back");
    let drift = read_late(drift, &[&late, &sent]);

    let done = repair(&h.sf, &mut h.pg, &target, &drift).await.unwrap();
    assert_eq!(done.deleted, 0, "{done:?}");
    assert_eq!(
        (
            done.left_alone.still_in_salesforce,
            done.left_alone.changed_since_snapshot
        ),
        (1, 1),
        "the reader's row is found in Salesforce, the written-back one changed since: {done:?}"
    );
    assert!(has_row(&h, &late).await, "the reader's row was deleted");
    assert!(has_row(&h, &sent).await, "the written-back row was deleted");
    h.poll().await;
    let after = compare(&h.sf, &h.pg, &target).await.unwrap();
    assert!(after.is_clean(), "{after:?}");
    assert_eq!(after.postgres_rows, 5);
}

#[tokio::test]
async fn rows_whose_record_is_deleted_or_unknown_are_deleted_but_not_an_undeleted_one() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(
            h.create_in_salesforce(
                json!({ "Name": format!("R {n}"), "Code__c": format!("R-{n}") }),
            )
            .await,
        );
    }
    h.load().await;
    let (deleted, undeleted) = (&ids[0], &ids[1]);
    for id in [deleted, undeleted] {
        h.sf.delete("Gadget__c", id).await.unwrap();
    }
    // A row whose sfid Salesforce never had, written behind the capture trigger's back.
    let unknown = "a00000000000999AAA";
    h.pg.batch_execute(
        "set xmlbinary = 'hex';
         insert into salesforce.gadget__c (sfid, name, code__c) values ('a00000000000999AAA', 'Ghost', 'G-0');
         set xmlbinary = 'base64';",
    )
    .await
    .unwrap();
    let (mapping, schema) = (h.mapping.clone(), h.schema.clone());
    let target = Target {
        schema: &schema,
        mapping: &mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let drift = compare(&h.sf, &h.pg, &target).await.unwrap();
    let mut gone = drift.gone_from_salesforce.clone();
    gone.sort();
    let mut expected = vec![deleted.clone(), undeleted.clone(), unknown.to_owned()];
    expected.sort();
    assert_eq!(gone, expected);
    // Brought back from the recycle bin after the snapshot.
    h.org
        .control(
            reqwest::Method::POST,
            "/undelete",
            Some(json!({ "ids": [undeleted] })),
        )
        .await;

    let done = repair(&h.sf, &mut h.pg, &target, &drift).await.unwrap();
    assert_eq!(done.deleted, 2, "{done:?}");
    assert_eq!(done.left_alone.still_in_salesforce, 1, "{done:?}");
    assert!(
        !has_row(&h, deleted).await,
        "the deleted record's row stayed"
    );
    assert!(
        !has_row(&h, unknown).await,
        "the unknown record's row stayed"
    );
    assert!(
        has_row(&h, undeleted).await,
        "the undeleted record's row went"
    );
    h.poll().await;
    let after = compare(&h.sf, &h.pg, &target).await.unwrap();
    assert!(after.is_clean(), "{after:?}");
    assert_eq!(after.postgres_rows, 3);
}

#[tokio::test]
async fn repair_leaves_rows_with_unsent_local_changes_as_they_are() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    for n in 0..3 {
        h.create_in_salesforce(json!({ "Name": format!("R {n}"), "Code__c": format!("R-{n}") }))
            .await;
    }
    h.load().await;
    let edited = sfid_of(&h, "R-0").await.unwrap();
    let removed = sfid_of(&h, "R-1").await.unwrap();
    // Changed in Salesforce, and in Postgres by an app: neither change sent yet.
    h.sf.update(
        "Gadget__c",
        &edited,
        &serde_json::from_value(json!({ "Name": "Remote edit" })).unwrap(),
    )
    .await
    .unwrap();
    // A record new in Salesforce whose upsert key an app's unsent insert also holds.
    let keyed = h
        .create_in_salesforce(json!({ "Name": "Remote", "Code__c": "K-1" }))
        .await;
    h.pg.batch_execute(
        "update salesforce.gadget__c set name = 'Local edit' where code__c = 'R-0';
         delete from salesforce.gadget__c where code__c = 'R-1';
         insert into salesforce.gadget__c (name, code__c) values ('Local', 'K-1');",
    )
    .await
    .unwrap();
    let (mapping, schema) = (h.mapping.clone(), h.schema.clone());
    let target = Target {
        schema: &schema,
        mapping: &mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let drift = compare(&h.sf, &h.pg, &target).await.unwrap();
    assert_eq!(drift.differing, std::slice::from_ref(&edited));
    let mut missing = vec![removed.clone(), keyed.clone()];
    missing.sort();
    assert_eq!(drift.missing_in_postgres, missing);
    assert_eq!(drift.unsent_changes, 3);

    let done = repair(&h.sf, &mut h.pg, &target, &drift).await.unwrap();
    assert_eq!(done.refreshed, 0, "{done:?}");
    assert_eq!(done.left_alone.unsent_changes, 3, "{done:?}");
    let name: String =
        h.pg.query_one(
            "select name from salesforce.gadget__c where code__c = 'R-0'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Local edit", "the unsent update was overwritten");
    assert!(
        !has_row(&h, &removed).await,
        "the row deleted locally came back"
    );
    let (name, sfid): (String, Option<String>) =
        h.pg.query_one(
            "select name, sfid from salesforce.gadget__c where code__c = 'K-1'",
            &[],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!(
        (name.as_str(), sfid),
        ("Local", None),
        "the unsent insert was matched to the record and overwritten"
    );

    // The local changes reach Salesforce and come back: both sides agree on them.
    let written = h.write(&WritePolicy::default()).await;
    assert_eq!((written.succeeded, written.failed), (3, 0), "{written:?}");
    h.poll().await;
    let after = compare(&h.sf, &h.pg, &target).await.unwrap();
    assert!(after.is_clean(), "{after:?}");
    for (code, expected) in [("R-0", "Local edit"), ("K-1", "Local")] {
        let name: String =
            h.pg.query_one(
                "select name from salesforce.gadget__c where code__c = $1",
                &[&code],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(name, expected, "{code}");
    }
}

#[tokio::test]
async fn a_never_sent_row_queued_meanwhile_is_not_queued_twice() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    // Inserted behind the capture trigger's back: never sent.
    h.pg.batch_execute(
        "set xmlbinary = 'hex';
         insert into salesforce.gadget__c (name, code__c) values ('Never sent', 'N-1');
         set xmlbinary = 'base64';",
    )
    .await
    .unwrap();
    let id: i32 =
        h.pg.query_one(
            "select id from salesforce.gadget__c where code__c = 'N-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (mapping, schema) = (h.mapping.clone(), h.schema.clone());
    let target = Target {
        schema: &schema,
        mapping: &mapping,
        mapping_id: h.mapping_id,
        fence: None,
    };
    let drift = compare(&h.sf, &h.pg, &target).await.unwrap();
    assert_eq!(drift.never_sent, [id]);
    // Queued after the snapshot, as Heroku Connect documents for rows to send again.
    h.pg.execute(
        "select salesforce.hc_capture_insert_from_row(hstore(t.*), 'gadget__c')
         from salesforce.gadget__c t where id = $1",
        &[&id],
    )
    .await
    .unwrap();

    let done = repair(&h.sf, &mut h.pg, &target, &drift).await.unwrap();
    assert_eq!(done.requeued, 0, "{done:?}");
    assert_eq!(done.left_alone.unsent_changes, 1, "{done:?}");
    let inserts: i64 =
        h.pg.query_one(
            "select count(*) from salesforce._trigger_log where record_id = $1 and action = 'INSERT'",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(inserts, 1, "the row was queued twice");
    let written = h.write(&WritePolicy::default()).await;
    assert_eq!((written.succeeded, written.failed), (1, 0), "{written:?}");
    let records: Vec<_> =
        h.sf.query("SELECT Id FROM Gadget__c WHERE Code__c = 'N-1'")
            .try_collect()
            .await
            .unwrap();
    assert_eq!(records.len(), 1);
}
