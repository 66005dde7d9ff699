//! Reading through Bulk API 2.0: a large initial load streams CSV into COPY with every
//! value intact, and a poll that finds many changes switches to a query job (deletes
//! included).

use pgforce_emulator::EmulatorConfig;
use pgforce_salesforce::bulk::JobKind;
use pgforce_salesforce::bulk::csv::push_row;
use pgforce_salesforce::bulk::ingest::IngestOperation;
use reqwest::Method;

use crate::support::{Harness, harness};

/// Creates `count` Gadget__c through one ingest job; every 7th has awkward notes, every
/// 5th neither notes nor stock.
async fn create_gadgets(h: &Harness, first: usize, count: usize) {
    let mut csv = String::new();
    push_row(
        &mut csv,
        &[
            Some("Name"),
            Some("Code__c"),
            Some("Notes__c"),
            Some("Stock__c"),
        ],
    );
    for n in first..first + count {
        let notes = if n % 5 == 0 {
            None
        } else if n % 7 == 0 {
            Some(format!(
                "line one, \"quoted\"\nline two\ttab — ünïcødé 株式 {n}"
            ))
        } else {
            Some(format!("plain {n}"))
        };
        // Every 5th also has no stock: null in an integer column.
        let stock = (n % 5 != 0).then(|| n.to_string());
        let (name, code) = (format!("Gadget {n}"), format!("G-{n}"));
        push_row(
            &mut csv,
            &[
                Some(name.as_str()),
                Some(code.as_str()),
                notes.as_deref(),
                stock.as_deref(),
            ],
        );
    }
    let job =
        h.sf.create_ingest_job("Gadget__c", IngestOperation::Insert, None)
            .await
            .unwrap();
    h.sf.upload_and_close(&job, csv.into()).await.unwrap();
    let done =
        h.sf.wait_for_job(JobKind::Ingest, &job.id, &mut |_| {})
            .await
            .unwrap();
    assert_eq!(done.number_records_failed, 0);
}

async fn bulk_query_jobs(h: &Harness) -> u64 {
    let stats = h.org.control(Method::GET, "/stats", None).await;
    stats["api"]["callsByEndpoint"]["bulkQueryPost"]
        .as_u64()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_large_initial_load_streams_bulk_csv_with_values_intact() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    create_gadgets(&h, 0, 50_000).await;
    let outcome = h.load().await;
    assert_eq!(outcome.applied, 50_000);
    assert!(
        outcome.rejected.is_empty(),
        "{:?}",
        outcome.rejected.first()
    );
    assert_eq!(
        bulk_query_jobs(&h).await,
        1,
        "one query job, not 25 REST pages"
    );
    assert!(outcome.api_calls < 15, "{} calls", outcome.api_calls);
    assert_eq!(h.count().await, 50_000);
    assert_eq!(h.distinct_sfids().await, 50_000);
    let rows =
        h.pg.query(
            "select code__c, notes__c, stock__c from salesforce.gadget__c
             where code__c in ('G-7', 'G-10', 'G-11', 'G-49994') order by id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, Option<String>, Option<i32>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "G-7".to_owned(),
                Some("line one, \"quoted\"\nline two\ttab — ünïcødé 株式 7".to_owned()),
                Some(7)
            ),
            ("G-10".to_owned(), None, None),
            ("G-11".to_owned(), Some("plain 11".to_owned()), Some(11)),
            (
                "G-49994".to_owned(),
                Some("line one, \"quoted\"\nline two\ttab — ünïcødé 株式 49994".to_owned()),
                Some(49_994)
            ),
        ]
    );
    assert_eq!(h.mapping_state().await, ("DATA_SYNCED".to_owned(), None));
}

#[tokio::test]
async fn a_poll_finding_many_changes_reads_them_through_bulk() {
    // Pages of 200: the first page of the poll says more pages would follow.
    let mut h = harness(200, EmulatorConfig::default()).await;
    h.mapping.spec.bulk_threshold = 100;
    create_gadgets(&h, 0, 50).await;
    h.load().await;
    // The first poll re-reads the load's newest stamp (all 50: one ingest transaction).
    h.poll().await;
    assert_eq!(bulk_query_jobs(&h).await, 0, "50 records: REST");
    create_gadgets(&h, 50, 250).await;
    let gone: Vec<String> =
        h.pg.query(
            "select sfid from salesforce.gadget__c order by id limit 5",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let ids: Vec<&str> = gone.iter().map(String::as_str).collect();
    h.sf.delete_records(&ids, true).await.unwrap();

    let outcome = h.poll().await;
    assert_eq!(bulk_query_jobs(&h).await, 1, "255 changes: a query job");
    assert_eq!((outcome.applied, outcome.deleted), (250, 5), "{outcome:?}");
    assert_eq!(h.count().await, 295);
    let next = h.poll().await;
    assert_eq!(
        next.applied, 0,
        "the cursor moved past everything the job read"
    );
}

async fn ingest_jobs(h: &Harness) -> u64 {
    let stats = h.org.control(Method::GET, "/stats", None).await;
    stats["api"]["callsByEndpoint"]["bulkIngestPost"]
        .as_u64()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_large_run_of_inserts_goes_as_one_ingest_job_with_each_result_recorded() {
    let mut h = crate::support::harness_with(2000, EmulatorConfig::default(), None).await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c, stock__c, active__c, checked_at__c, email__c)
         select 'Bulk ' || n, 'B-' || n, n, n % 2 = 0, '2024-03-01 10:20:30.5',
                case when n % 1000 = 0 then 'not an email' else 'g' || n || '@example.com' end
         from generate_series(1, 2500) n",
    )
    .await
    .unwrap();
    let outcome = h
        .write(&pgforce_sync::testing::WritePolicy::default())
        .await;
    assert_eq!(
        (outcome.succeeded, outcome.failed, outcome.bulk_jobs),
        (2498, 2, 1),
        "{outcome:?}"
    );
    assert!(
        outcome.api_calls < 20,
        "{} calls for 2,500 records",
        outcome.api_calls
    );
    assert_eq!(ingest_jobs(&h).await, 1);
    assert_eq!(
        h.distinct_sfids().await,
        2498,
        "every success has its own Id written back"
    );
    let failed: Vec<(String, String)> = h
        .pg
        .query(
            "select g.code__c, l.sf_message from salesforce._trigger_log l
             join salesforce.gadget__c g on g.id = l.record_id where l.state = 'FAILED' order by g.stock__c",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].0, "B-1000");
    assert!(
        failed[0].1.starts_with("INVALID_EMAIL_ADDRESS:"),
        "{}",
        failed[0].1
    );
    let sfid: String =
        h.pg.query_one(
            "select sfid from salesforce.gadget__c where code__c = 'B-42'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let record =
        h.sf.get(
            "Gadget__c",
            &sfid,
            Some(&["Stock__c", "Active__c", "Checked_At__c"]),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            record["Stock__c"].as_i64(),
            record["Active__c"].as_bool(),
            record["Checked_At__c"].as_str()
        ),
        (Some(42), Some(true), Some("2024-03-01T10:20:30.500+0000"))
    );

    // Updates of one column go as an update job and leave the other fields alone.
    h.pg.batch_execute(
        "update salesforce.gadget__c set stock__c = stock__c + 1000000 where sfid is not null",
    )
    .await
    .unwrap();
    let outcome = h
        .write(&pgforce_sync::testing::WritePolicy::default())
        .await;
    assert_eq!(
        (outcome.succeeded, outcome.bulk_jobs),
        (2498, 1),
        "{outcome:?}"
    );
    let record =
        h.sf.get("Gadget__c", &sfid, Some(&["Stock__c", "Name"]))
            .await
            .unwrap();
    assert_eq!(
        (record["Stock__c"].as_i64(), record["Name"].as_str()),
        (Some(1_000_042), Some("Bulk 42"))
    );
}

#[tokio::test]
async fn a_failed_ingest_job_falls_back_to_collections() {
    let mut h = harness(2000, EmulatorConfig::default()).await;
    h.org
        .control(
            Method::PUT,
            "/faults",
            Some(serde_json::json!({ "bulkJobFailureRate": 1.0 })),
        )
        .await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c) select 'F ' || n, 'F-' || n from generate_series(1, 2100) n",
    )
    .await
    .unwrap();
    let outcome = h
        .write(&pgforce_sync::testing::WritePolicy::default())
        .await;
    assert_eq!(
        (outcome.bulk_fallbacks, outcome.bulk_jobs),
        (1, 0),
        "{outcome:?}"
    );
    assert_eq!(
        (outcome.succeeded, outcome.failed),
        (2100, 0),
        "{outcome:?}"
    );
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        2100
    );
}
