//! Archive jobs against the emulator and a real Postgres: copy, verify, delete, and a
//! stop at every recorded point followed by a resume that converges.

use futures_util::TryStreamExt as _;
use pgforce_emulator::EmulatorConfig;
use pgforce_store::catalog::archive::{JobState, Step};
use pgforce_store::catalog::connections;
use pgforce_sync::testing::{
    ArchiveHooks, ArchiveOutcome, ArchivePoint, ArchiveTarget, UnarchiveTarget, Unarchived,
    create_archive_job, run_archive_job, unarchive,
};
use serde_json::json;

use crate::support::{Harness, harness, harness_mapping};

/// Records per transaction and per delete call: small, so every step takes several.
const BATCH: usize = 3;
/// Gadgets seeded; those with `Stock__c < 7` are archived.
const SEEDED: i64 = 12;
const WHERE: &str = "Stock__c < 7 AND (Name LIKE 'Gadget%' OR Name = null)";
/// The same records, as a plain query.
const MATCHING: &str = "SELECT Id FROM Gadget__c WHERE Stock__c < 7";
const ARCHIVED: i64 = 7;

async fn seeded() -> Harness {
    let mut h = harness(200, EmulatorConfig::default()).await;
    for i in 0..SEEDED {
        h.create_in_salesforce(json!({
            "Name": format!("Gadget {i}"),
            "Code__c": format!("G-{i}"),
            "Stock__c": i,
            "Price__c": 10.5 + i as f64,
            "Active__c": i % 2 == 0,
            "Launched__c": "2019-06-01",
        }))
        .await;
    }
    h.load().await;
    h
}

async fn connection(h: &Harness) -> pgforce_store::ConnectionId {
    connections::find(&h.pg, "main").await.unwrap().unwrap().id
}

async fn run(h: &mut Harness, job: i64, stop_at: Option<ArchivePoint>) -> ArchiveOutcome {
    let target = ArchiveTarget {
        salesforce: &h.sf,
        schema: &h.schema,
        mapping: &h.mapping,
        fence: None,
        batch: BATCH,
    };
    let mut progress = |_| {};
    let mut stop = |point| Some(point) == stop_at;
    let mut hooks = ArchiveHooks {
        progress: &mut progress,
        stop: &mut stop,
    };
    run_archive_job(&target, &mut h.pg, job, &mut hooks)
        .await
        .unwrap()
}

async fn sfids_in_salesforce(h: &Harness, soql: &str) -> Vec<String> {
    let records: Vec<_> = h.sf.query(soql).try_collect().await.unwrap();
    let mut ids: Vec<String> = records
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn archived_sfids(h: &Harness) -> Vec<String> {
    h.pg.query(
        "select sfid from salesforce_archive.gadget__c order by sfid",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The archive's rows equal the mapped table's rows of the same records (as loaded from
/// Salesforce before the archive ran), column by column.
async fn assert_archive_equals_table(h: &Harness, sfids: &[String]) {
    let columns: Vec<String> = h
        .mapping
        .fields
        .iter()
        .map(|f| f.column.to_string())
        .collect();
    let list = columns.join(", ");
    let differing: i64 =
        h.pg.query_one(
            &format!(
                "select count(*) from (
                     (select {list} from salesforce.gadget__c where sfid = any($1)
                      except select {list} from salesforce_archive.gadget__c)
                     union all
                     (select {list} from salesforce_archive.gadget__c
                      except select {list} from salesforce.gadget__c where sfid = any($1))) d"
            ),
            &[&sfids],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(differing, 0, "archived rows differ from the records");
}

#[tokio::test]
async fn archive_copies_verifies_and_deletes_the_matching_records() {
    let mut h = seeded().await;
    let matching = sfids_in_salesforce(&h, MATCHING).await;
    assert_eq!(matching.len() as i64, ARCHIVED);
    let job = create_archive_job(&h.sf, &h.pg, connection(&h).await, &h.mapping, WHERE, false)
        .await
        .unwrap();

    let outcome = run(&mut h, job.id, None).await;

    assert_eq!(outcome.stopped_at, None);
    assert_eq!(
        outcome.job.state,
        JobState::Finished,
        "{:?}",
        outcome.job.error
    );
    assert_eq!(outcome.job.step, Step::Done);
    assert_eq!(
        (
            outcome.job.selected,
            outcome.job.verified,
            outcome.job.deleted
        ),
        (ARCHIVED, ARCHIVED, ARCHIVED)
    );
    assert_eq!(archived_sfids(&h).await, matching);
    assert_archive_equals_table(&h, &matching).await;
    assert!(sfids_in_salesforce(&h, MATCHING).await.is_empty());
    assert_eq!(
        sfids_in_salesforce(&h, "SELECT Id FROM Gadget__c")
            .await
            .len() as i64,
        SEEDED - ARCHIVED
    );
    // The mapped table catches up through the reader.
    h.poll().await;
    assert_eq!(h.count().await, SEEDED - ARCHIVED);
}

#[tokio::test]
async fn archive_stopped_at_any_point_converges_when_resumed() {
    let points = [
        ArchivePoint::Copied { page: 1 },
        ArchivePoint::Copied { page: 2 },
        ArchivePoint::StepDone(Step::Select),
        ArchivePoint::StepDone(Step::Verify),
        ArchivePoint::DeleteSent { batch: 1 },
        ArchivePoint::DeleteRecorded { batch: 1 },
        ArchivePoint::DeleteSent { batch: 2 },
        ArchivePoint::DeleteRecorded { batch: 2 },
        ArchivePoint::DeleteSent { batch: 3 },
        ArchivePoint::StepDone(Step::Delete),
    ];
    for point in points {
        let mut h = seeded().await;
        let matching = sfids_in_salesforce(&h, MATCHING).await;
        let job = create_archive_job(&h.sf, &h.pg, connection(&h).await, &h.mapping, WHERE, false)
            .await
            .unwrap();

        let stopped = run(&mut h, job.id, Some(point)).await;
        assert_eq!(stopped.stopped_at, Some(point));
        assert!(
            !stopped.job.state.is_final(),
            "{point:?}: {:?}",
            stopped.job
        );
        let resumed = run(&mut h, job.id, None).await;

        assert_eq!(
            resumed.job.state,
            JobState::Finished,
            "{point:?}: {:?}",
            resumed.job.error
        );
        assert_eq!(resumed.job.deleted, ARCHIVED, "{point:?}");
        assert_eq!(archived_sfids(&h).await, matching, "{point:?}");
        assert_archive_equals_table(&h, &matching).await;
        let states: Vec<(String, i64)> = h
            .pg
            .query(
                "select state, count(*) from pgforce.archive_records where job_id = $1 group by state",
                &[&job.id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(states, vec![("deleted".to_owned(), ARCHIVED)], "{point:?}");
        assert!(
            sfids_in_salesforce(&h, MATCHING).await.is_empty(),
            "{point:?}"
        );
        assert_eq!(
            sfids_in_salesforce(&h, "SELECT Id FROM Gadget__c")
                .await
                .len() as i64,
            SEEDED - ARCHIVED,
            "{point:?}"
        );
    }
}

#[tokio::test]
async fn a_record_changed_in_salesforce_after_its_copy_fails_the_verify_and_nothing_is_deleted() {
    let mut h = seeded().await;
    let job = create_archive_job(&h.sf, &h.pg, connection(&h).await, &h.mapping, WHERE, false)
        .await
        .unwrap();
    let stopped = run(&mut h, job.id, Some(ArchivePoint::StepDone(Step::Select))).await;
    assert_eq!(stopped.job.step, Step::Verify);
    let changed = archived_sfids(&h).await[0].clone();
    h.sf.update(
        "Gadget__c",
        &changed,
        &serde_json::from_value(json!({ "Price__c": 999 })).unwrap(),
    )
    .await
    .unwrap();

    let outcome = run(&mut h, job.id, None).await;

    assert_eq!(outcome.job.state, JobState::Failed);
    let error = outcome.job.error.unwrap();
    assert!(error.contains(&changed), "{error}");
    assert!(error.contains("nothing was deleted"), "{error}");
    assert_eq!(outcome.job.deleted, 0);
    assert_eq!(
        sfids_in_salesforce(&h, "SELECT Id FROM Gadget__c")
            .await
            .len() as i64,
        SEEDED
    );
}

#[tokio::test]
async fn archive_with_hard_delete_deletes_through_bulk_and_resumes() {
    let mut h = seeded().await;
    let job = create_archive_job(&h.sf, &h.pg, connection(&h).await, &h.mapping, WHERE, true)
        .await
        .unwrap();

    let outcome = run(&mut h, job.id, Some(ArchivePoint::DeleteSent { batch: 1 })).await;
    assert_eq!(
        outcome.stopped_at,
        Some(ArchivePoint::DeleteSent { batch: 1 })
    );
    let outcome = run(&mut h, job.id, None).await;

    assert_eq!(
        outcome.job.state,
        JobState::Finished,
        "{:?}",
        outcome.job.error
    );
    assert_eq!(outcome.job.deleted, ARCHIVED);
    assert_eq!(archived_sfids(&h).await.len() as i64, ARCHIVED);
    // The emulator runs `hardDelete` jobs as deletes (records stay in its recycle bin), so
    // what is checked here is that the Bulk path deleted every record exactly once.
    assert!(sfids_in_salesforce(&h, MATCHING).await.is_empty());
    assert_eq!(
        sfids_in_salesforce(&h, "SELECT Id FROM Gadget__c")
            .await
            .len() as i64,
        SEEDED - ARCHIVED
    );
}

#[tokio::test]
async fn conditions_naming_unknown_fields_or_smuggling_soql_are_refused() {
    let h = seeded().await;
    let connection = connection(&h).await;
    for (condition, named) in [
        ("Stock__c < 5 AND Colour__c = 'red'", "Colour__c"),
        ("Name = 'x' OR Name != null LIMIT 1", "character 28"),
        ("Name = 'x\\' OR Name != null", "never ends"),
        ("Id IN (SELECT Id FROM Account)", "character 8"),
    ] {
        let error = create_archive_job(&h.sf, &h.pg, connection, &h.mapping, condition, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(named), "{condition}: {error}");
    }
    let jobs: i64 =
        h.pg.query_one("select count(*) from pgforce.archive_jobs", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(jobs, 0);
}

/// Makers and their Gadgets archived (children first, as Salesforce clears lookups to a
/// deleted parent), then restored parents first: the new Gadgets point at the new Makers,
/// keep their external ids, and a restore stopped after its create call is found, not
/// doubled.
#[tokio::test]
async fn unarchive_recreates_parents_then_children_pointing_at_the_new_parents() {
    let mut h = harness_mapping(
        200,
        EmulatorConfig::default(),
        Some("Code__c"),
        &["Maker__c"],
    )
    .await;
    let makers = maker_mapping(&h).await;
    let mut maker_ids = Vec::new();
    for m in 0..2 {
        let id =
            h.sf.create(
                "Maker__c",
                &serde_json::from_value(
                    json!({ "Name": format!("Maker {m}"), "Code__c": format!("M-{m}") }),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        maker_ids.push(id);
    }
    for i in 0..4 {
        h.create_in_salesforce(json!({
            "Name": format!("Gadget {i}"), "Code__c": format!("G-{i}"), "Stock__c": i,
            "Maker__c": maker_ids[i % 2],
        }))
        .await;
    }
    let connection = connection(&h).await;
    let gadgets = create_archive_job(
        &h.sf,
        &h.pg,
        connection,
        &h.mapping,
        "Maker__c != null",
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        run(&mut h, gadgets.id, None).await.job.state,
        JobState::Finished
    );
    let job = create_archive_job(
        &h.sf,
        &h.pg,
        connection,
        &makers,
        "Code__c LIKE 'M-%'",
        false,
    )
    .await
    .unwrap();
    let outcome = run_with(&mut h, &makers, job.id, None).await;
    assert_eq!(
        outcome.job.state,
        JobState::Finished,
        "{:?}",
        outcome.job.error
    );
    assert!(
        sfids_in_salesforce(&h, "SELECT Id FROM Maker__c")
            .await
            .is_empty()
    );
    assert!(
        sfids_in_salesforce(&h, "SELECT Id FROM Gadget__c")
            .await
            .is_empty()
    );

    // Parents first; the first batch's answer is lost (stopped after the call).
    let restored = restore(&mut h, &makers, connection, Some(1)).await;
    assert_eq!(restored.restored, 0);
    let restored = restore(&mut h, &makers, connection, None).await;
    assert_eq!((restored.restored, restored.found), (2, 2), "{restored:?}");
    let gadget_mapping = h.mapping.clone();
    let restored = restore(&mut h, &gadget_mapping, connection, None).await;
    assert_eq!(restored.restored, 4, "{restored:?}");

    let new_makers: Vec<_> =
        h.sf.query("SELECT Id, Code__c FROM Maker__c")
            .try_collect()
            .await
            .unwrap();
    assert_eq!(new_makers.len(), 2, "no Maker was created twice");
    let gadgets_now: Vec<_> =
        h.sf.query("SELECT Id, Code__c, Maker__c FROM Gadget__c ORDER BY Code__c")
            .try_collect()
            .await
            .unwrap();
    assert_eq!(gadgets_now.len(), 4);
    for (i, gadget) in gadgets_now.iter().enumerate() {
        assert_eq!(gadget["Code__c"], format!("G-{i}"));
        let maker = new_makers
            .iter()
            .find(|m| m["Id"] == gadget["Maker__c"])
            .unwrap_or_else(|| panic!("gadget {i} points at a new maker: {gadget:?}"));
        assert_eq!(maker["Code__c"], format!("M-{}", i % 2));
        assert!(!maker_ids.iter().any(|old| *old == maker["Id"]));
    }
    let left = h
        .pg
        .query_one(
            "select (select count(*) from salesforce_archive.gadget__c) + (select count(*) from salesforce_archive.maker__c)",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(left, 0, "restored rows leave the archive");
}

async fn maker_mapping(h: &Harness) -> pgforce_sync::testing::Mapping {
    let describe = h.sf.describe("Maker__c").await.unwrap();
    pgforce_sync::testing::Mapping::resolve(
        pgforce_sync::testing::MappingSpec {
            object: "Maker__c".to_owned(),
            fields: vec![
                "Name".to_owned(),
                "Code__c".to_owned(),
                "Email__c".to_owned(),
            ],
            access: pgforce_store::Access::ReadOnly,
            upsert_field: None,
            polling_seconds: 1,
            max_daily_api_calls: 30_000,
            bulk_threshold: pgforce_sync::DEFAULT_BULK_THRESHOLD,
        },
        &describe,
    )
    .unwrap()
}

async fn run_with(
    h: &mut Harness,
    mapping: &pgforce_sync::testing::Mapping,
    job: i64,
    stop_at: Option<ArchivePoint>,
) -> ArchiveOutcome {
    let target = ArchiveTarget {
        salesforce: &h.sf,
        schema: &h.schema,
        mapping,
        fence: None,
        batch: BATCH,
    };
    let mut progress = |_| {};
    let mut stop = |point| Some(point) == stop_at;
    let mut hooks = ArchiveHooks {
        progress: &mut progress,
        stop: &mut stop,
    };
    run_archive_job(&target, &mut h.pg, job, &mut hooks)
        .await
        .unwrap()
}

async fn restore(
    h: &mut Harness,
    mapping: &pgforce_sync::testing::Mapping,
    connection: pgforce_store::ConnectionId,
    stop_after: Option<usize>,
) -> Unarchived {
    let target = UnarchiveTarget {
        salesforce: &h.sf,
        connection,
        schema: &h.schema,
        mapping,
        job: None,
        batch: BATCH,
        fence: None,
    };
    let mut stop = |batch| Some(batch) == stop_after;
    unarchive(&target, &mut h.pg, &mut stop).await.unwrap()
}
