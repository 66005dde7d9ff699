//! Archive jobs end to end: `pgforce archive` run by hand, and jobs started through the
//! API with the narrow `archive` token and carried out by `pgforce run`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api::{call, token};
use crate::run::{config_file, count, pgforce, pgforce_ok, salesforce, seeded_org, wait_for_count};
use crate::server::{READ_WRITE_ACCOUNTS as ACCOUNTS, serving};

/// The sfids of the first `n` accounts in the mapped table, as a SOQL `IN` condition.
async fn first_accounts(
    db: &pgforce_store::testing::TestDatabase,
    n: i64,
) -> (Vec<String>, String) {
    let ids: Vec<String> = db
        .client()
        .await
        .query(
            "select sfid from salesforce.account order by sfid limit $1",
            &[&n],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let list: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
    let condition = format!("Id IN ({})", list.join(", "));
    (ids, condition)
}

#[tokio::test]
async fn the_archive_token_starts_and_reads_jobs_that_pgforce_run_carries_out_and_nothing_else() {
    let org = seeded_org(10).await;
    let db = pgforce_store::testing::TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNTS);
    let path = config.to_str().unwrap();
    let (mut daemon, base) = serving(path).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 10).await;
    let flow = token(path, "salesforce-flow", "archive", &[]).await;
    let connection = count(
        &db,
        "select id from pgforce.connections where name = 'main'",
    )
    .await;

    let (status, answer) = call(&base, Method::GET, "/api/v3/connections", Some(&flow), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");

    let (status, answer) = call(
        &base,
        Method::POST,
        &format!("/api/v3/connections/{connection}/archives"),
        Some(&flow),
        Some(&json!({ "object": "Account", "where": "Colour__c = 'red'" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer.to_string().contains("Colour__c"), "{answer}");

    let (archived, condition) = first_accounts(&db, 3).await;
    let (status, answer) = call(
        &base,
        Method::POST,
        &format!("/api/v3/connections/{connection}/archives"),
        Some(&flow),
        Some(&json!({ "object": "Account", "where": condition })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let status_url = answer["status_url"].as_str().unwrap().to_owned();
    assert_eq!(status_url, format!("/api/v3/archives/{}", answer["id"]));

    // The job runs in `pgforce run`; the mapped table follows through the reader.
    wait_for_count(&db, "select count(*) from salesforce.account", 7).await;
    let (status, job) = call(&base, Method::GET, &status_url, Some(&flow), None).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["state"], "finished", "{job}");
    assert_eq!(job["counts"]["deleted"], 3, "{job}");
    let rows: Vec<String> = db
        .client()
        .await
        .query(
            "select sfid from salesforce_archive.account order by sfid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, archived);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let deleted =
        r#"pgforce_archive_records_total{connection="main",object="Account",step="deleted"} 3"#;
    assert!(metrics.lines().any(|l| l == deleted), "{metrics}");

    let (status, answer) = call(
        &base,
        Method::POST,
        &format!("/api/v3/connections/{connection}/archives"),
        Some(&flow),
        Some(&json!({ "object": "Account", "where": "Name = 'nobody'", "publish": true })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        answer["entity_set"], "salesforce_archive$account",
        "{answer}"
    );
    let viewer = token(path, "viewer", "view", &[]).await;
    let (status, services) = call(
        &base,
        Method::GET,
        "/api/v3/odata/services",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{services}");
    let published = services["results"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["entity_set"] == "salesforce_archive$account" && r["exported"] == true);
    assert!(published, "{services}");
    daemon.kill().await.unwrap();
}

#[tokio::test]
async fn pgforce_archive_runs_the_job_itself_refuses_bad_conditions_and_unarchive_restores() {
    let org = seeded_org(6).await;
    let db = pgforce_store::testing::TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNTS);
    let path = config.to_str().unwrap();
    let (mut daemon, _) = serving(path).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 6).await;
    daemon.kill().await.unwrap();
    let (archived, condition) = first_accounts(&db, 2).await;

    let refused = pgforce(&[
        "archive",
        "--config",
        path,
        "--connection",
        "main",
        "Account",
        "--where",
        "Name = 'x' OR Id != null; DELETE",
    ])
    .output()
    .await
    .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("at character 25"), "{stderr}");

    let out = pgforce_ok(&[
        "archive",
        "--config",
        path,
        "--connection",
        "main",
        "Account",
        "--where",
        &condition,
        "--batch",
        "1",
        "--publish",
    ])
    .await;
    assert!(out.contains("finished"), "{out}");
    assert!(
        out.contains("published as OData entity set salesforce_archive$account"),
        "{out}"
    );
    assert!(out.contains("2 deleted in Salesforce"), "{out}");
    assert_eq!(
        count(&db, "select count(*) from salesforce_archive.account").await,
        archived.len() as i64
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.archive_records where state = 'deleted'"
        )
        .await,
        2
    );
    let sf = salesforce(&org);
    assert_eq!(sf.count("SELECT COUNT() FROM Account").await.unwrap(), 4);

    let job = count(&db, "select max(id) from pgforce.archive_jobs")
        .await
        .to_string();
    let out = pgforce_ok(&[
        "unarchive",
        "--config",
        path,
        "--connection",
        "main",
        "Account",
        "--job",
        &job,
    ])
    .await;
    assert!(out.contains("2 Account records re-created"), "{out}");
    assert_eq!(sf.count("SELECT COUNT() FROM Account").await.unwrap(), 6);
    assert_eq!(
        count(&db, "select count(*) from salesforce_archive.account").await,
        0
    );
    assert_eq!(
        count(&db, "select count(*) from pgforce.archive_records where state = 'restored' and new_sfid is not null").await,
        2
    );
}
