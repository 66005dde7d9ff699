//! Query streams: paging, page sizes, COUNT(), queryAll and query errors.

use std::collections::HashSet;

use futures_util::{StreamExt as _, TryStreamExt as _};
use pgforce_salesforce::{ApiErrorCode, Client};
use serde_json::json;

use crate::support::{self, seed};

#[tokio::test]
async fn query_streams_every_record_across_pages_of_the_asked_size() {
    let org = support::org().await;
    seed(&org, json!({ "Account": 2300 })).await;
    let mut config = support::config(&org, support::password_credentials());
    config.query_batch_size = Some(500);
    let client = Client::new(config).unwrap();
    let pages: Vec<_> = client
        .query_pages("SELECT Id, Name FROM Account", false)
        .try_collect()
        .await
        .unwrap();
    let sizes: Vec<usize> = pages.iter().map(|p| p.records.len()).collect();
    assert_eq!(
        sizes,
        [500, 500, 500, 500, 300],
        "one page at a time, of the asked size"
    );
    assert!(pages.iter().all(|p| p.total_size == 2300));
    let ids: HashSet<String> = client
        .query("SELECT Id FROM Account")
        .map_ok(|r| r["Id"].as_str().unwrap().to_owned())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids.len(), 2300);
    assert_eq!(
        client.count("SELECT COUNT() FROM Account").await.unwrap(),
        2300
    );
}

#[tokio::test]
async fn query_all_sees_deleted_records() {
    let org = support::org().await;
    let client = support::client(&org);
    let id = client
        .create("Account", &support::account("gone"))
        .await
        .unwrap();
    client.delete("Account", &id).await.unwrap();
    let live: Vec<_> = client
        .query("SELECT Id FROM Account")
        .try_collect()
        .await
        .unwrap();
    assert!(live.is_empty());
    let all: Vec<_> = client
        .query_all("SELECT Id, IsDeleted FROM Account")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["IsDeleted"], true);
}

#[tokio::test]
async fn a_bad_query_is_an_error_item_with_salesforces_code() {
    let org = support::org().await;
    let client = support::client(&org);
    let mut stream = Box::pin(client.query("SELECT Id FRM Account"));
    let error = stream.next().await.unwrap().unwrap_err();
    assert_eq!(error.code(), Some(&ApiErrorCode::MalformedQuery));
    assert!(
        stream.next().await.is_none(),
        "the stream ends after the error"
    );
    let error = client.count("SELECT Nope FROM Account").await.unwrap_err();
    assert_eq!(error.code(), Some(&ApiErrorCode::InvalidField));
}
