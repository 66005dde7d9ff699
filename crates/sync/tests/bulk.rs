//! Reading through Bulk API 2.0: a large initial load streams CSV into COPY with every
//! value intact, and a poll that finds many changes switches to a query job (deletes
//! included).

use pgforce_emulator::EmulatorConfig;
use pgforce_salesforce::bulk::JobKind;
use pgforce_salesforce::bulk::csv::push_row;
use pgforce_salesforce::bulk::ingest::IngestOperation;
use pgforce_store::MappingId;
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

/// Log rows per state, e.g. `[("PENDING", 2500)]`.
async fn log_states(h: &Harness) -> Vec<(String, i64)> {
    h.pg.query(
        "select state::text, count(*) from salesforce._trigger_log group by 1 order by 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

async fn records_written(h: &Harness) -> u64 {
    let stats = h.org.control(Method::GET, "/stats", None).await;
    stats["api"]["recordsWritten"].as_u64().unwrap_or_default()
}

fn target(h: &Harness) -> pgforce_sync::testing::Target<'_> {
    pgforce_sync::testing::Target {
        schema: &h.schema,
        mapping: &h.mapping,
        mapping_id: h.mapping_id,
        fence: None,
    }
}

async fn kept_jobs(h: &Harness) -> i64 {
    h.pg.query_one("select count(*) from pgforce.writer_jobs", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn an_ingest_job_that_fails_partway_keeps_what_it_processed() {
    // Plain creates (no upsert field): sending a processed row again would duplicate it.
    let mut h = crate::support::harness_with(2000, EmulatorConfig::default(), None).await;
    h.org
        .control(
            Method::POST,
            "/faults/script",
            Some(serde_json::json!({ "steps": [
                { "on": "bulkIngest", "fault": "bulkJobPartialFailure" }
            ]})),
        )
        .await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c, stock__c)
         select 'Half ' || n, 'H-' || n, n from generate_series(1, 2500) n",
    )
    .await
    .unwrap();
    let outcome = h
        .write(&pgforce_sync::testing::WritePolicy::default())
        .await;
    // Half the job was processed; the other half went through collections.
    assert_eq!(
        (
            outcome.succeeded,
            outcome.failed,
            outcome.bulk_jobs,
            outcome.bulk_fallbacks
        ),
        (2500, 0, 1, 1),
        "{outcome:?}"
    );
    assert_eq!(log_states(&h).await, [("SUCCESS".to_owned(), 2500)]);
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        2500,
        "no row the job processed was created again"
    );
    assert_eq!(records_written(&h).await, 2500, "each row sent once");
    assert_eq!(h.distinct_sfids().await, 2500);
    assert_eq!(kept_jobs(&h).await, 0, "the job is forgotten once recorded");
}

#[tokio::test]
async fn a_job_left_running_by_a_stopped_writer_is_read_by_the_next_one() {
    use pgforce_sync::testing::{WritePolicy, run_writer};
    use std::time::Duration;
    let mut h = crate::support::harness_with(2000, EmulatorConfig::default(), None).await;
    h.load().await;
    // The job waits in Salesforce's queue long enough for the writer to be stopped.
    h.org
        .control(
            Method::PUT,
            "/faults",
            Some(serde_json::json!({ "bulkJobDelayMs": 1500 })),
        )
        .await;
    let writer = |stop| {
        tokio::spawn(run_writer(
            h.db.url.clone(),
            "main".to_owned(),
            h.sf.clone(),
            h.schema.clone(),
            vec![(h.mapping.clone(), h.mapping_id)],
            WritePolicy::default(),
            stop,
        ))
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let first = writer(shutdown);
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c, stock__c)
         select 'Queued ' || n, 'Q-' || n, n from generate_series(1, 2500) n",
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while kept_jobs(&h).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no job was started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    let stopping = tokio::time::Instant::now();
    first.await.unwrap().unwrap();
    assert!(
        stopping.elapsed() < Duration::from_millis(1200),
        "the writer waited for the job instead of stopping: {:?}",
        stopping.elapsed()
    );
    assert_eq!(
        kept_jobs(&h).await,
        1,
        "the job is kept for the next writer"
    );
    assert_eq!(log_states(&h).await, [("PENDING".to_owned(), 2500)]);
    // The job runs meanwhile, and a poll reads its records before any writer recorded
    // them: rows of their own, which the recording folds into the rows that made them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap() < 2500 {
        assert!(tokio::time::Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut poller = h.db.client().await;
    pgforce_sync::testing::poll_once(&h.sf, &mut poller, &target(&h))
        .await
        .unwrap();
    assert_eq!(h.count().await, 5000, "read back before the write-back");

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let second = writer(shutdown);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while log_states(&h).await != [("SUCCESS".to_owned(), 2500)] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recorded: {:?}",
            log_states(&h).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        2500
    );
    assert_eq!(records_written(&h).await, 2500, "each row sent once");
    assert_eq!(
        ingest_jobs(&h).await,
        1,
        "the next writer read the job, it sent none"
    );
    assert_eq!(h.distinct_sfids().await, 2500);
    assert_eq!(kept_jobs(&h).await, 0);
    assert_eq!(h.count().await, 2500, "one row per record");
    let drift = pgforce_sync::testing::compare(&h.sf, &h.pg, &target(&h))
        .await
        .unwrap();
    assert!(
        drift.differing.is_empty(),
        "{} rows lost the stamp their read-back carried",
        drift.differing.len()
    );
}

#[tokio::test]
async fn a_lost_answer_to_closing_a_job_does_not_send_its_rows_again() {
    let mut h = crate::support::harness_with(2000, EmulatorConfig::default(), None).await;
    // The close is carried out but its answer is lost; the client's retry is refused
    // because the job is no longer open.
    h.org
        .control(
            Method::POST,
            "/faults/script",
            Some(serde_json::json!({ "steps": [
                { "on": "bulkClose", "fault": "lostResponse" }
            ]})),
        )
        .await;
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name, code__c)
         select 'Closed ' || n, 'C-' || n from generate_series(1, 2500) n",
    )
    .await
    .unwrap();
    let outcome = h
        .write(&pgforce_sync::testing::WritePolicy::default())
        .await;
    assert_eq!(
        (outcome.succeeded, outcome.bulk_jobs, outcome.bulk_fallbacks),
        (2500, 1, 0),
        "the job's own results are recorded: {outcome:?}"
    );
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        2500
    );
    assert_eq!(records_written(&h).await, 2500, "each row sent once");
}

/// The Maker__c mapping beside the harness's Gadget__c: a second read-write table of the
/// connection, registered in the catalog.
async fn maker_mapping(h: &mut Harness) -> (pgforce_sync::testing::Mapping, MappingId) {
    use pgforce_store::Access;
    use pgforce_sync::testing::{Mapping, MappingSpec};
    let spec = MappingSpec {
        object: "Maker__c".to_owned(),
        fields: vec!["Name".to_owned(), "Code__c".to_owned()],
        access: Access::ReadWrite,
        upsert_field: Some("Code__c".to_owned()),
        polling_seconds: 1,
        max_daily_api_calls: 30_000,
        bulk_threshold: pgforce_sync::DEFAULT_BULK_THRESHOLD,
    };
    let maker = Mapping::resolve(spec, &h.sf.describe("Maker__c").await.unwrap()).unwrap();
    pgforce_store::ddl::create_mapped_table(&mut h.pg, &maker.table_spec(&h.schema))
        .await
        .unwrap();
    let id = crate::support::register(&h.pg, &maker).await;
    (maker, id)
}

/// Log rows of `table` in `state`.
async fn rows_of(h: &Harness, table: &str, state: &str) -> i64 {
    h.pg.query_one(
        "select count(*) from salesforce._trigger_log where table_name = $1 and state = $2",
        &[&table, &state],
    )
    .await
    .unwrap()
    .get(0)
}

/// Waits until `check` holds, failing loudly after 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_job_left_running_when_its_mapping_is_paused_is_read_when_it_resumes_never_sent_again() {
    use pgforce_sync::testing::{TestWriter, WritePolicy, run_writer_with};
    // Plain creates: a create sent twice is a second record.
    let mut h = crate::support::harness_with(2000, EmulatorConfig::default(), None).await;
    let maker = maker_mapping(&mut h).await;
    let gadget = (h.mapping.clone(), h.mapping_id);
    let writer = |h: &Harness, mappings: Vec<_>, waiting: Vec<String>| {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let writer = TestWriter {
            database_url: h.db.url.clone(),
            connection: "main".to_owned(),
            salesforce: h.sf.clone(),
            schema: h.schema.clone(),
            mappings,
            waiting,
            policy: WritePolicy::default(),
        };
        (stop, tokio::spawn(run_writer_with(writer, shutdown)))
    };
    // The job waits in Salesforce's queue while the mapping is paused.
    h.org
        .control(
            Method::PUT,
            "/faults",
            Some(serde_json::json!({ "bulkJobDelayMs": 3000 })),
        )
        .await;
    let (stop, running) = writer(&h, vec![maker.clone(), gadget.clone()], Vec::new());
    h.pg.batch_execute(
        "insert into salesforce.gadget__c (name) select 'Paused ' || n from generate_series(1, 2500) n",
    )
    .await
    .unwrap();
    eventually("a job started", || async { kept_jobs(&h).await == 1 }).await;

    // `pgforce mapping pause Gadget__c`: the writer restarts with the table waiting.
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    let (stop, running) = writer(&h, vec![maker.clone()], vec!["gadget__c".to_owned()]);
    h.pg.batch_execute("insert into salesforce.maker__c (name, code__c) values ('Acme', 'M-1')")
        .await
        .unwrap();
    eventually("the other mapping's change sent", || async {
        rows_of(&h, "maker__c", "SUCCESS").await == 1
    })
    .await;
    // The job runs to its end meanwhile.
    eventually("the job ran", || async {
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap() == 2500
    })
    .await;
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    let while_paused = (
        kept_jobs(&h).await,
        rows_of(&h, "gadget__c", "PENDING").await,
    );

    // `pgforce mapping resume Gadget__c`.
    let (stop, running) = writer(&h, vec![maker, gadget], Vec::new());
    eventually("the paused table's changes settled", || async {
        rows_of(&h, "gadget__c", "SUCCESS").await == 2500
    })
    .await;
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(
        h.sf.count("SELECT COUNT() FROM Gadget__c").await.unwrap(),
        2500,
        "N records, not 2N"
    );
    assert_eq!(
        while_paused,
        (1, 2500),
        "while paused the job is kept and its rows stay PENDING"
    );
    assert_eq!(ingest_jobs(&h).await, 1, "the resumed writer read the job");
    assert_eq!(h.distinct_sfids().await, 2500);
    assert_eq!(kept_jobs(&h).await, 0);
}
