//! Bulk API 2.0 through the client against the emulator: query results streamed page by
//! page, ingest results mapped back to the rows sent, failed jobs as typed errors.

use futures_util::TryStreamExt as _;
use pgforce_salesforce::Error;
use pgforce_salesforce::bulk::JobKind;
use pgforce_salesforce::bulk::csv::push_row;
use pgforce_salesforce::bulk::ingest::IngestOperation;

use crate::support::{client, org};

#[tokio::test]
async fn query_results_stream_page_by_page_and_match_rest() {
    let org = org().await;
    org.control(
        reqwest::Method::POST,
        "/seed",
        Some(serde_json::json!({ "Account": 2500 })),
    )
    .await;
    let sf = client(&org);
    let job = sf
        .create_query_job("SELECT Id, Name, AnnualRevenue FROM Account", false)
        .await
        .unwrap();
    let mut states = Vec::new();
    let done = sf
        .wait_for_job(JobKind::Query, &job.id, &mut |info| {
            states.push(info.state.clone());
        })
        .await
        .unwrap();
    assert_eq!(done.number_records_processed, 2500);
    assert!(
        states.len() > 1,
        "the job was seen before it completed: {states:?}"
    );

    let pages: Vec<_> = sf
        .query_job_results(&job.id, 1000)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        pages.iter().map(|p| p.rows.len()).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    assert_eq!(pages[0].header, ["Id", "Name", "AnnualRevenue"]);
    let mut bulk_ids: Vec<String> = pages
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r[0].clone()))
        .collect();
    let mut rest_ids: Vec<String> = sf
        .query("SELECT Id FROM Account")
        .map_ok(|r| r["Id"].as_str().unwrap().to_owned())
        .try_collect()
        .await
        .unwrap();
    bulk_ids.sort();
    rest_ids.sort();
    assert_eq!(bulk_ids, rest_ids);
}

#[tokio::test]
async fn ingest_results_map_back_to_each_row_sent() {
    let org = org().await;
    let sf = client(&org);
    let job = sf
        .create_ingest_job("Account", IngestOperation::Upsert, Some("External_Id__c"))
        .await
        .unwrap();
    let mut csv = String::new();
    push_row(
        &mut csv,
        &[Some("External_Id__c"), Some("Name"), Some("Website")],
    );
    push_row(&mut csv, &[Some("E-1"), Some("First, \"quoted\""), None]);
    push_row(&mut csv, &[Some("E-2"), Some(""), Some("x")]);
    push_row(&mut csv, &[Some("E-3"), Some("Third"), Some("y")]);
    sf.upload_and_close(&job, csv.into()).await.unwrap();
    let done = sf
        .wait_for_job(JobKind::Ingest, &job.id, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        (done.number_records_processed, done.number_records_failed),
        (3, 1)
    );
    let mut results = sf.ingest_results(&job.id).await.unwrap();
    results.sort_by(|a, b| a.row[0].cmp(&b.row[0]));
    assert_eq!(results[0].outcome, Ok(true));
    assert_eq!(results[0].row[1], "First, \"quoted\"");
    assert!(results[0].id.as_deref().unwrap().starts_with("001"));
    let error = results[1].outcome.clone().unwrap_err();
    assert!(
        error.starts_with("REQUIRED_FIELD_MISSING:"),
        "a new account needs a name: {error}"
    );
    assert_eq!(results[1].id, None);
    assert_eq!(results[2].outcome, Ok(true));
}

#[tokio::test]
async fn a_failed_job_is_an_error_with_salesforce_message() {
    let org = org().await;
    let sf = client(&org);
    let job = sf
        .create_ingest_job("Account", IngestOperation::Insert, None)
        .await
        .unwrap();
    sf.upload_and_close(&job, "Name,Nope__c\nA,1\n".into())
        .await
        .unwrap();
    let error = sf
        .wait_for_job(JobKind::Ingest, &job.id, &mut |_| {})
        .await
        .unwrap_err();
    match &error {
        Error::JobFailed { state, message, .. } => {
            assert_eq!(state, "Failed");
            assert!(message.contains("Nope__c"), "{message}");
        }
        other => panic!("expected JobFailed, got {other:?}"),
    }
    let query = sf
        .create_query_job("SELECT Id FROM Account", false)
        .await
        .unwrap();
    sf.abort_job(JobKind::Query, &query.id).await.unwrap();
    assert!(matches!(
        sf.wait_for_job(JobKind::Query, &query.id, &mut |_| {})
            .await,
        Err(Error::JobFailed { .. })
    ));
    sf.delete_job(JobKind::Query, &query.id).await.unwrap();
    assert_eq!(
        sf.job(JobKind::Query, &query.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}
