//! One writer pass against the emulator and a real Postgres: app inserts, updates and
//! deletes reach Salesforce, refusals are recorded, write-backs land with the outcome,
//! and nothing echoes back through the reader.

use pgforce_emulator::EmulatorConfig;
use pgforce_sync::config::WriteAlgorithm;
use pgforce_sync::testing::{WriteOutcome, WritePolicy, write_once};
use serde_json::json;

use crate::support::{Harness, harness};

/// One writer pass over the harness's mapping.
async fn write_pass(h: &mut Harness, algorithm: WriteAlgorithm) -> WriteOutcome {
    h.write(&WritePolicy {
        algorithm,
        ..WritePolicy::default()
    })
    .await
}

async fn log_states(pg: &tokio_postgres::Client) -> Vec<(String, String, Option<String>)> {
    pg.query(
        "select action::text, state::text, sf_message from salesforce._trigger_log order by id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

#[tokio::test]
async fn app_changes_reach_salesforce_with_outcomes_written_back() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let kept = h
        .create_in_salesforce(json!({ "Name": "Kept", "Code__c": "K" }))
        .await;
    let gone = h
        .create_in_salesforce(json!({ "Name": "Gone", "Code__c": "G" }))
        .await;
    h.load().await;

    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c, price__c, active__c, launched__c, checked_at__c)
             values ('New one', 'N-1', 12.5, true, '2024-02-29', '2024-03-01 10:20:30.5');
         insert into salesforce.gadget__c (name, code__c, email__c) values ('Bad', 'B-1', 'not-an-email');
         update salesforce.gadget__c set name = 'Kept, renamed' where code__c = 'K';
         delete from salesforce.gadget__c where code__c = 'G';",
    )
    .await
    .unwrap();
    let outcome = write_pass(&mut h, WriteAlgorithm::Ordered).await;
    assert_eq!((outcome.succeeded, outcome.failed), (3, 1), "{outcome:?}");

    let states = log_states(&h.pg).await;
    assert_eq!(states[0].1, "SUCCESS");
    assert_eq!(states[1].1, "FAILED");
    assert!(
        states[1]
            .2
            .as_deref()
            .unwrap()
            .starts_with("INVALID_EMAIL_ADDRESS:"),
        "{states:?}"
    );
    assert_eq!(
        (states[2].1.as_str(), states[3].1.as_str()),
        ("SUCCESS", "SUCCESS")
    );

    let row =
        h.pg.query_one(
            "select sfid, _hc_lastop from salesforce.gadget__c where code__c = 'N-1'",
            &[],
        )
        .await
        .unwrap();
    let (sfid, lastop): (Option<String>, String) = (row.get(0), row.get(1));
    assert_eq!(lastop, "INSERTED");
    let created =
        h.sf.get("Gadget__c", sfid.as_deref().unwrap(), None)
            .await
            .unwrap();
    assert_eq!(created["Name"], "New one");
    assert_eq!(created["Price__c"], 12.5);
    assert_eq!(created["Active__c"], true);
    assert_eq!(created["Launched__c"], "2024-02-29");
    assert_eq!(created["Checked_At__c"], "2024-03-01T10:20:30.500+0000");
    let failed =
        h.pg.query_one(
            "select _hc_lastop, _hc_err from salesforce.gadget__c where code__c = 'B-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(failed.get::<_, String>(0), "FAILED");
    let err: serde_json::Value = serde_json::from_str(&failed.get::<_, String>(1)).unwrap();
    assert_eq!(
        (err["op"].as_str(), err["code"].as_str()),
        (Some("INSERT"), Some("INVALID_EMAIL_ADDRESS"))
    );
    assert_eq!(
        h.sf.get("Gadget__c", &kept, Some(&["Name"])).await.unwrap()["Name"],
        "Kept, renamed"
    );
    assert!(
        h.sf.get("Gadget__c", &gone, None).await.is_err(),
        "the deleted record is gone in Salesforce"
    );

    // The reader brings the written records back without capturing them again.
    h.poll().await;
    let new_entries: i64 =
        h.pg.query_one(
            "select count(*) from salesforce._trigger_log where state = 'NEW'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(new_entries, 0, "no echo");
    assert_eq!(
        write_pass(&mut h, WriteAlgorithm::Ordered).await.succeeded,
        0
    );
}

#[tokio::test]
async fn merged_writes_send_an_insert_and_its_updates_as_one_insert() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c) values ('First', 'M-1');
         update salesforce.gadget__c set name = 'Second' where code__c = 'M-1';
         update salesforce.gadget__c set stock__c = 4 where code__c = 'M-1';",
    )
    .await
    .unwrap();
    let outcome = write_pass(&mut h, WriteAlgorithm::Merged).await;
    assert_eq!(
        (outcome.succeeded, outcome.merged, outcome.failed),
        (1, 2, 0),
        "{outcome:?}"
    );
    let states: Vec<String> = log_states(&h.pg).await.into_iter().map(|s| s.1).collect();
    assert_eq!(states, ["SUCCESS", "MERGED", "MERGED"]);
    let sfid: String =
        h.pg.query_one("select sfid from salesforce.gadget__c", &[])
            .await
            .unwrap()
            .get(0);
    let record =
        h.sf.get("Gadget__c", &sfid, Some(&["Name", "Stock__c"]))
            .await
            .unwrap();
    assert_eq!(
        (record["Name"].as_str(), record["Stock__c"].as_i64()),
        (Some("Second"), Some(4)),
        "latest values"
    );
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        1,
        "one create"
    );
}

#[tokio::test]
async fn ordered_writes_group_records_each_created_then_edited_twice_into_three_calls() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    // Record after record, as an app does: create, then edit twice.
    let mut script = String::new();
    for n in 1..=150 {
        script.push_str(&format!(
            "insert into salesforce.gadget__c (name, code__c) values ('G {n}', 'O-{n}');
             update salesforce.gadget__c set stock__c = 1 where code__c = 'O-{n}';
             update salesforce.gadget__c set stock__c = 2 where code__c = 'O-{n}';"
        ));
    }
    h.pg.batch_execute(&script).await.unwrap();
    let outcome = write_pass(&mut h, WriteAlgorithm::Ordered).await;
    assert_eq!(
        (outcome.succeeded, outcome.merged, outcome.failed),
        (450, 0, 0),
        "every change sent on its own: {outcome:?}"
    );
    assert_eq!(
        outcome.api_calls, 3,
        "the creates, the first edits, the second edits"
    );
    let stocks: Vec<Option<i32>> =
        h.pg.query("select stock__c from salesforce.gadget__c", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert!(stocks.iter().all(|s| *s == Some(2)), "{stocks:?}");
    let in_salesforce =
        h.sf.count("SELECT COUNT() FROM Gadget__c WHERE Code__c LIKE 'O-%' AND Stock__c = 2")
            .await
            .unwrap();
    assert_eq!(in_salesforce, 150, "the last edit of each record won");
}

#[tokio::test]
async fn a_thousand_round_trips_leave_no_echo() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c, stock__c)
         select 'Echo ' || n, 'E-' || n, 0 from generate_series(1, 10) n",
    )
    .await
    .unwrap();
    write_pass(&mut h, WriteAlgorithm::Ordered).await;
    // 100 rounds of 10 records: Postgres → Salesforce → back through the reader.
    for round in 1..=100 {
        h.pg.execute("update salesforce.gadget__c set stock__c = $1", &[&round])
            .await
            .unwrap();
        let outcome = write_pass(&mut h, WriteAlgorithm::Ordered).await;
        assert_eq!(
            (outcome.succeeded, outcome.failed),
            (10, 0),
            "round {round}"
        );
        h.poll().await;
    }
    let counts =
        h.pg.query_one(
            "select count(*), count(*) filter (where state = 'SUCCESS') from salesforce._trigger_log",
            &[],
        )
        .await
        .unwrap();
    let (logged, succeeded): (i64, i64) = (counts.get(0), counts.get(1));
    assert_eq!(
        (logged, succeeded),
        (1010, 1010),
        "exactly the app's 10 inserts and 1,000 updates were captured; the reader's writes never were"
    );
    assert_eq!(
        write_pass(&mut h, WriteAlgorithm::Ordered).await,
        WriteOutcome::default()
    );
    let stock: Vec<i32> =
        h.pg.query("select stock__c from salesforce.gadget__c", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(stock, [100; 10]);
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c WHERE Stock__c = 100")
            .await
            .unwrap(),
        10
    );
}

#[tokio::test]
async fn processed_rows_move_to_the_archive_and_requeue_helpers_resend() {
    use pgforce_sync::testing::archive_processed;
    use std::time::Duration;
    let mut h = harness(2000, EmulatorConfig::default()).await;
    h.pg.batch_execute("insert into salesforce.gadget__c (name, code__c) values ('Kept', 'K');")
        .await
        .unwrap();
    write_pass(&mut h, WriteAlgorithm::Ordered).await;
    // Re-capture the row as Heroku Connect users do; it is sent again.
    h.pg.batch_execute(
        "select salesforce.hc_capture_update_from_row(hstore(g.*), 'gadget__c', array['name'])
         from salesforce.gadget__c g",
    )
    .await
    .unwrap();
    let outcome = write_pass(&mut h, WriteAlgorithm::Ordered).await;
    assert_eq!(outcome.succeeded, 1, "{outcome:?}");

    let kept = archive_processed(
        &mut h.pg,
        &h.schema,
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    )
    .await
    .unwrap();
    assert_eq!(kept.archived, 0, "younger than the delay");
    let moved = archive_processed(
        &mut h.pg,
        &h.schema,
        Duration::ZERO,
        Duration::from_secs(86_400),
    )
    .await
    .unwrap();
    assert_eq!(moved.archived, 2);
    let archived: i64 =
        h.pg.query_one(
            "select count(*) from salesforce._trigger_log_archive where state = 'SUCCESS'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(archived, 2);
    h.pg.batch_execute(
        "update salesforce._trigger_log_archive set created_at = now() - interval '40 days'",
    )
    .await
    .unwrap();
    let pruned = archive_processed(
        &mut h.pg,
        &h.schema,
        Duration::ZERO,
        Duration::from_secs(31 * 86_400),
    )
    .await
    .unwrap();
    assert_eq!(pruned.pruned, 2, "older than the retention");
}

#[tokio::test]
async fn each_refusal_lands_as_failed_with_its_reason_while_the_rest_go_through() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c) values ('Good', 'G');
         insert into salesforce.gadget__c (name, code__c, account__c) values ('No such parent', 'N', '001000000000000AAA');
         insert into salesforce.gadget__c (name, code__c, email__c) values ('Bad email', 'E', 'at@');
         insert into salesforce.gadget__c (name, code__c, price__c) values ('Too dear', 'P', 1e12);
         insert into salesforce.gadget__c (name, code__c) values ('Also good', 'A');",
    )
    .await
    .unwrap();
    let outcome = write_pass(&mut h, WriteAlgorithm::Merged).await;
    assert_eq!((outcome.succeeded, outcome.failed), (2, 3), "{outcome:?}");
    let rows =
        h.pg.query(
            "select g.code__c, l.state::text, coalesce(l.sf_message, ''), g._hc_lastop, coalesce(g._hc_err, '{}')
             from salesforce._trigger_log l join salesforce.gadget__c g on g.id = l.record_id order by l.id",
            &[],
        )
        .await
        .unwrap();
    let expected = [
        ("G", "SUCCESS", ""),
        ("N", "FAILED", "INVALID_CROSS_REFERENCE_KEY"),
        ("E", "FAILED", "INVALID_EMAIL_ADDRESS"),
        ("P", "FAILED", "NUMBER_OUTSIDE_VALID_RANGE"),
        ("A", "SUCCESS", ""),
    ];
    for (row, (name, state, code)) in rows.iter().zip(expected) {
        let (got_name, got_state, message, lastop, err): (String, String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        assert_eq!((got_name.as_str(), got_state.as_str()), (name, state));
        assert!(message.starts_with(code), "{name}: {message}");
        let err: serde_json::Value = serde_json::from_str(&err).unwrap();
        if state == "FAILED" {
            assert_eq!(lastop, "FAILED");
            assert_eq!(err["code"], code, "{name}: {err}");
            assert!(!err["message"].as_str().unwrap().is_empty(), "{err}");
        } else {
            assert_eq!(lastop, "INSERTED");
        }
    }
}

#[tokio::test]
async fn bad_values_are_refused_where_they_are_caught_and_nothing_else_is_lost() {
    use pgforce_store::Access;
    use pgforce_store::ddl::create_mapped_table;
    use pgforce_sync::DEFAULT_BULK_THRESHOLD;
    use pgforce_sync::testing::{Mapping, MappingSpec};
    let mut h = harness(2000, EmulatorConfig::default()).await;
    let spec = MappingSpec {
        object: "Strict__c".to_owned(),
        fields: [
            "Name",
            "Status__c",
            "Owner_Code__c",
            "Count__c",
            "Account__c",
        ]
        .map(str::to_owned)
        .to_vec(),
        access: Access::ReadWrite,
        upsert_field: None,
        polling_seconds: 1,
        max_daily_api_calls: 30_000,
        bulk_threshold: DEFAULT_BULK_THRESHOLD,
    };
    let strict = Mapping::resolve(spec, &h.sf.describe("Strict__c").await.unwrap()).unwrap();
    create_mapped_table(&mut h.pg, &strict.table_spec(&h.schema))
        .await
        .unwrap();

    // Caught by Postgres, at the app's own statement: too long for the field, wrong type.
    for (what, statement, expected) in [
        (
            "a string longer than the Salesforce field",
            "insert into salesforce.strict__c (name, owner_code__c) values ('eleven chars', 'O')",
            "value too long for type character varying(10)",
        ),
        (
            "text where the field is a number",
            "insert into salesforce.strict__c (name, owner_code__c, count__c) values ('n', 'O', 'many')",
            "invalid input syntax for type integer",
        ),
    ] {
        let error = h.pg.batch_execute(statement).await.unwrap_err();
        let message = error
            .as_db_error()
            .map(|e| e.message().to_owned())
            .unwrap_or_default();
        assert!(message.contains(expected), "{what}: {message}");
    }

    // Caught by Salesforce: each lands FAILED with its code; the valid row goes through.
    h.pg.batch_execute(
        "insert into salesforce.strict__c (name, owner_code__c, status__c) values ('picklist', 'O', 'Maybe');
         insert into salesforce.strict__c (name) values ('required');
         insert into salesforce.strict__c (name, owner_code__c, account__c) values ('reference', 'O', '001000000000000AAA');
         insert into salesforce.strict__c (name, owner_code__c, status__c, count__c) values ('valid', 'O', 'Open', 3);",
    )
    .await
    .unwrap();
    let outcome = write_once(
        &h.sf,
        &mut h.pg,
        &h.schema,
        &[strict],
        &WritePolicy::default(),
    )
    .await
    .unwrap();
    assert_eq!((outcome.succeeded, outcome.failed), (1, 3), "{outcome:?}");
    let rows: Vec<(String, String, String)> = h
        .pg
        .query(
            "select s.name, l.state::text, coalesce(l.sf_message, '') from salesforce._trigger_log l
             join salesforce.strict__c s on s.id = l.record_id order by l.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        (
            "picklist",
            "FAILED",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        ("required", "FAILED", "REQUIRED_FIELD_MISSING"),
        ("reference", "FAILED", "INVALID_CROSS_REFERENCE_KEY"),
        ("valid", "SUCCESS", ""),
    ];
    for ((name, state, message), (want_name, want_state, code)) in rows.iter().zip(expected) {
        assert_eq!((name.as_str(), state.as_str()), (want_name, want_state));
        assert!(message.starts_with(code), "{name}: {message}");
    }
}

#[tokio::test]
async fn merged_writes_delete_the_old_record_when_a_row_id_is_deleted_and_inserted_again() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (id, name, code__c) values (70, 'Old', 'OLD')",
    )
    .await
    .unwrap();
    write_pass(&mut h, WriteAlgorithm::Merged).await;
    let old: String =
        h.pg.query_one("select sfid from salesforce.gadget__c where id = 70", &[])
            .await
            .unwrap()
            .get(0);
    // One pass sees the row deleted and its id used again for another record.
    h.pg.batch_execute(
        "delete from salesforce.gadget__c where id = 70;
         insert into salesforce.gadget__c (id, name, code__c) values (70, 'New', 'NEW')",
    )
    .await
    .unwrap();
    let outcome = write_pass(&mut h, WriteAlgorithm::Merged).await;
    assert_eq!(outcome.succeeded, 2, "a delete and an insert: {outcome:?}");
    assert_eq!(
        h.sf.count(&format!("SELECT COUNT() FROM Gadget__c WHERE Id = '{old}'"))
            .await
            .unwrap(),
        0,
        "the old record is deleted, not orphaned"
    );
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        1
    );
    let new: String =
        h.pg.query_one("select sfid from salesforce.gadget__c where id = 70", &[])
            .await
            .unwrap()
            .get(0);
    assert_ne!(new, old, "the row holds the new record's Id");
}

#[tokio::test]
async fn updates_of_a_row_deleted_before_they_were_sent_reach_its_record_before_its_delete() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    // Inserted, edited twice and deleted before the writer's pass: every change was
    // captured before the insert had an Id.
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c) values ('Brief', 'BR-1');
         update salesforce.gadget__c set stock__c = 1 where code__c = 'BR-1';
         update salesforce.gadget__c set stock__c = 2 where code__c = 'BR-1';
         delete from salesforce.gadget__c where code__c = 'BR-1';",
    )
    .await
    .unwrap();
    let mut passes = 0;
    while !write_pass(&mut h, WriteAlgorithm::Ordered).await.is_idle() {
        passes += 1;
        assert!(passes < 5, "the writer never settled");
    }
    let states = log_states(&h.pg).await;
    assert!(
        states.iter().all(|(_, state, _)| state != "FAILED"),
        "nothing failed: {states:?}"
    );
    assert_eq!(
        states
            .iter()
            .filter(|(action, state, _)| action == "UPDATE" && state == "SUCCESS")
            .count(),
        2,
        "both updates were sent: {states:?}"
    );
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        0,
        "the record is deleted in the end"
    );
}

#[tokio::test]
async fn an_update_of_a_record_deleted_in_salesforce_fails_while_its_row_exists_and_is_ignored_once_both_are_gone()
 {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c) values ('Kept', 'KE-1'), ('Gone', 'GO-1')",
    )
    .await
    .unwrap();
    while !write_pass(&mut h, WriteAlgorithm::Ordered).await.is_idle() {}
    let sfids: Vec<String> =
        h.pg.query("select sfid from salesforce.gadget__c order by id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    let ids: Vec<&str> = sfids.iter().map(String::as_str).collect();
    h.sf.delete_records(&ids, false).await.unwrap();
    // Both rows are edited before the deletion reaches Postgres; then the reader removes
    // one of them (pgforce's own write: not captured).
    h.pg.batch_execute(
        "update salesforce.gadget__c set stock__c = 7 where code__c = 'KE-1';
         update salesforce.gadget__c set stock__c = 7 where code__c = 'GO-1';
         set xmlbinary = 'hex';
         delete from salesforce.gadget__c where code__c = 'GO-1';
         set xmlbinary = 'base64';",
    )
    .await
    .unwrap();
    while !write_pass(&mut h, WriteAlgorithm::Ordered).await.is_idle() {}
    let updates: Vec<(String, String)> = log_states(&h.pg)
        .await
        .into_iter()
        .filter(|(action, _, _)| action == "UPDATE")
        .map(|(_, state, message)| (state, message.unwrap_or_default()))
        .collect();
    assert_eq!(updates.len(), 2, "{updates:?}");
    let (kept, gone) = (&updates[0], &updates[1]);
    assert_eq!(
        kept.0, "FAILED",
        "the row still differs from Salesforce: {kept:?}"
    );
    assert!(kept.1.starts_with("ENTITY_IS_DELETED"), "{kept:?}");
    assert_eq!(
        gone.0, "IGNORED",
        "both sides agree the record is gone: {gone:?}"
    );
    assert!(
        gone.1.contains("deleted in Salesforce") && gone.1.contains("ENTITY_IS_DELETED"),
        "the reason names the cause: {gone:?}"
    );
}
