//! Collections writes that fail partway: a resend of row-locked records fails as a whole,
//! and the records the earlier call wrote must still be reported, with their Ids, so the
//! engine neither creates them twice nor marks them failed.

use futures_util::TryStreamExt as _;
use pgforce_emulator::testing::TestOrg;
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::rest::collections::{SaveResult, WriteError};
use pgforce_salesforce::{ApiErrorCode, Client, Error};
use serde_json::{Value, json};

use crate::support::{self, account, script, script_left};

/// Attempts per call (and per resend round) of the clients in this module.
const MAX_ATTEMPTS: u32 = 3;

fn client(org: &TestOrg) -> Client {
    let mut config = support::config(org, support::password_credentials());
    config.retry.max_attempts = MAX_ATTEMPTS;
    Client::new(config).unwrap()
}

/// Script steps that lock `records` of the next collections write, then fail its resend
/// with `fault` on every attempt the client makes.
fn lock_then_fail(records: &[usize], fault: &str) -> Value {
    let mut steps =
        vec![json!({ "on": "collections", "fault": "lockRecords", "records": records })];
    steps.extend((0..MAX_ATTEMPTS).map(|_| json!({ "on": "collections", "fault": fault })));
    Value::Array(steps)
}

fn accounts(prefix: &str, count: usize) -> Vec<Record> {
    (0..count)
        .map(|n| account(&format!("{prefix}{n}")))
        .collect()
}

/// External id → Id of every live Account.
async fn accounts_in_org(client: &Client) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = client
        .query("SELECT Id, External_Id__c FROM Account")
        .map_ok(|r| {
            (
                r["External_Id__c"].as_str().unwrap().to_owned(),
                r["Id"].as_str().unwrap().to_owned(),
            )
        })
        .try_collect()
        .await
        .unwrap();
    rows.sort();
    rows
}

/// The positions of the records reported unknown.
fn unknown(failure: &WriteError) -> Vec<usize> {
    failure
        .results()
        .iter()
        .enumerate()
        .filter_map(|(n, r)| r.is_none().then_some(n))
        .collect()
}

/// The Id of a record reported written.
fn written_id(result: &Option<SaveResult>) -> String {
    let result = result.as_ref().expect("the outcome is known");
    assert!(result.success, "{result:?}");
    result.id.clone().expect("a written record has an Id")
}

#[tokio::test]
async fn a_create_whose_resend_gets_503_reports_the_records_written_first() {
    let org = support::org().await;
    let client = client(&org);
    script(&org, lock_then_fail(&[1, 4], "serverUnavailable")).await;

    let failure = client
        .create_records("Account", &accounts("C", 6), false)
        .await
        .unwrap_err();

    assert!(script_left(&org).await.is_empty(), "every step was spent");
    assert_eq!(
        failure.error().code(),
        Some(&ApiErrorCode::ServerUnavailable)
    );
    assert!(
        !failure.error().may_have_been_applied(),
        "a 503 proves the resend was not applied"
    );
    assert_eq!(
        unknown(&failure),
        [1, 4],
        "the locked records' fate is unknown"
    );
    let mut reported: Vec<(String, String)> = [0, 2, 3, 5]
        .into_iter()
        .map(|n| (format!("C{n}"), written_id(&failure.results()[n])))
        .collect();
    reported.sort();
    assert_eq!(
        accounts_in_org(&client).await,
        reported,
        "the org holds exactly the records reported written, each once"
    );
}

#[tokio::test]
async fn a_create_whose_resend_answer_is_lost_reports_the_resent_records_in_doubt() {
    let org = support::org().await;
    let client = client(&org);
    script(
        &org,
        json!([
            { "on": "collections", "fault": "lockRecords", "records": [1, 4] },
            { "on": "collections", "fault": "lostResponse" }
        ]),
    )
    .await;

    let failure = client
        .create_records("Account", &accounts("L", 6), false)
        .await
        .unwrap_err();

    assert!(script_left(&org).await.is_empty(), "every step was spent");
    assert!(
        matches!(
            failure.error(),
            Error::Transport {
                maybe_applied: true,
                ..
            }
        ),
        "{:?}",
        failure.error()
    );
    assert!(
        failure.error().may_have_been_applied(),
        "the unknown creates are in doubt, not safe to resend"
    );
    assert_eq!(unknown(&failure), [1, 4]);
    let in_org = accounts_in_org(&client).await;
    for n in [0, 2, 3, 5] {
        let id = written_id(&failure.results()[n]);
        assert!(
            in_org.contains(&(format!("L{n}"), id)),
            "L{n} was reported written"
        );
    }
    let keys: Vec<&str> = in_org.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        keys,
        ["L0", "L1", "L2", "L3", "L4", "L5"],
        "the lost resend did create the unknown records, and nothing was created twice"
    );
}

#[tokio::test]
async fn an_update_whose_resend_fails_reports_the_records_updated_first() {
    let org = support::org().await;
    let client = client(&org);
    let created = client
        .create_records("Account", &accounts("U", 5), false)
        .await
        .unwrap();
    let ids: Vec<String> = created.into_iter().map(|r| r.id.unwrap()).collect();
    script(
        &org,
        json!([
            { "on": "collections", "fault": "lockRecords", "records": [2] },
            { "on": "collections", "fault": "requestLimitExceeded" }
        ]),
    )
    .await;
    let updates: Vec<Record> = ids
        .iter()
        .map(|id| support::record(json!({ "Id": id, "Rating": "Hot" })))
        .collect();

    let failure = client
        .update_records("Account", &updates, false)
        .await
        .unwrap_err();

    assert!(script_left(&org).await.is_empty(), "every step was spent");
    assert_eq!(
        failure.error().code(),
        Some(&ApiErrorCode::RequestLimitExceeded)
    );
    assert_eq!(unknown(&failure), [2]);
    for n in [0, 1, 3, 4] {
        assert_eq!(written_id(&failure.results()[n]), ids[n], "record {n}");
    }
    for (n, id) in ids.iter().enumerate() {
        let rating = client.get("Account", id, Some(&["Rating"])).await.unwrap()["Rating"].clone();
        let expected = if n == 2 { Value::Null } else { json!("Hot") };
        assert_eq!(rating, expected, "record {n}");
    }
}

#[tokio::test]
async fn a_failure_of_the_first_call_reports_every_record_unknown() {
    let org = support::org().await;
    let client = client(&org);
    script(
        &org,
        json!([{ "on": "collections", "fault": "dropConnection" }]),
    )
    .await;

    let failure = client
        .create_records("Account", &accounts("F", 3), false)
        .await
        .unwrap_err();

    assert!(script_left(&org).await.is_empty(), "every step was spent");
    assert_eq!(failure.results(), [None, None, None]);
    assert!(
        failure.error().may_have_been_applied(),
        "a dropped connection cannot prove the create was not applied"
    );
    assert!(
        matches!(Error::from(failure), Error::Transport { .. }),
        "the failed call's error converts back"
    );
    assert!(accounts_in_org(&client).await.is_empty());
}

#[tokio::test]
async fn under_all_or_none_a_failed_resend_leaves_every_record_unknown_and_none_written() {
    let org = support::org().await;
    let client = client(&org);
    script(&org, lock_then_fail(&[1], "serverUnavailable")).await;

    let failure = client
        .create_records("Account", &accounts("A", 4), true)
        .await
        .unwrap_err();

    assert!(script_left(&org).await.is_empty(), "every step was spent");
    assert_eq!(failure.results(), [None, None, None, None]);
    assert!(!failure.error().may_have_been_applied());
    assert!(
        accounts_in_org(&client).await.is_empty(),
        "the rolled-back first call and the refused resend wrote nothing"
    );
}
