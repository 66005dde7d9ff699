//! Reconcile: every kind of drift between a mapping's records and rows is found, repair
//! fixes it, and a second comparison is clean.

use pgforce_emulator::EmulatorConfig;
use pgforce_sync::testing::Target;
use pgforce_sync::testing::WritePolicy;
use pgforce_sync::testing::{compare, record, repair};
use serde_json::json;

use crate::support::harness;

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
