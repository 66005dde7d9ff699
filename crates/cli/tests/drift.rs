//! No silent skips: a record `pgforce run` cannot store is kept as a rejected record,
//! shown by `pgforce status` and counted by `pgforce reconcile`, stays through later clean
//! polls, and is stored (and forgotten) once its cause is fixed.

use std::process::Stdio;

use pgforce_store::testing::TestDatabase;
use reqwest::Method;
use serde_json::json;

use crate::run::{config_file, count, pgforce, pgforce_ok, salesforce, stop, wait_for_count};

const REGION_MAPPING: &str = r#"
[[connection.mapping]]
object = "Account"
access = "read_only"
fields = ["Name", "Region__c"]
polling_seconds = 1

[engine]
schema_check_seconds = 1
"#;

#[tokio::test]
async fn a_record_that_cannot_be_stored_is_kept_shown_and_stored_once_its_column_is_widened() {
    let org = pgforce_emulator::testing::TestOrg::start().await;
    org.control(
        Method::POST,
        "/schema/Account/fields",
        Some(json!({ "name": "Region__c", "type": "string", "length": 10 })),
    )
    .await;
    let sf = salesforce(&org);
    let record = |fields: serde_json::Value| serde_json::from_value(fields).unwrap();
    let id = sf
        .create(
            "Account",
            &record(json!({ "Name": "Acme", "Region__c": "EMEA" })),
        )
        .await
        .unwrap();
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, REGION_MAPPING);
    let path = config.to_str().unwrap().to_owned();
    let daemon = pgforce(&["run", "--config", &path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 1).await;

    // An app's view depends on the column, so Postgres will not widen it.
    let pg = db.client().await;
    pg.batch_execute(
        "create view public.account_regions as select sfid, region__c from salesforce.account",
    )
    .await
    .unwrap();
    org.control(
        Method::PATCH,
        "/schema/Account/fields/Region__c",
        Some(json!({ "length": 40 })),
    )
    .await;
    let long = "Europe, Middle East and Africa";
    sf.update("Account", &id, &record(json!({ "Region__c": long })))
        .await
        .unwrap();
    let kept = format!(
        "select count(*) from pgforce.rejected_records r join pgforce.mappings m on m.id = r.mapping_id
         where m.object_name = 'Account' and r.sfid = '{id}' and r.field = 'Region__c'
           and r.reason = '30 characters do not fit varchar(10)'"
    );
    wait_for_count(&db, &kept, 1).await;
    let status = pgforce_ok(&["status", "--config", &path]).await;
    assert!(
        status.contains("1 rejected record(s) not stored")
            && status.contains(&format!(
                "{id} field Region__c: 30 characters do not fit varchar(10)"
            )),
        "{status}"
    );

    // Later polls are clean: the mapping goes on, the rejected record stays.
    sf.create(
        "Account",
        &record(json!({ "Name": "Later", "Region__c": "APAC" })),
    )
    .await
    .unwrap();
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'Later'",
        1,
    )
    .await;
    let state = "select count(*) from pgforce.mappings where object_name = 'Account'
                 and state = 'DATA_SYNCED' and last_error is null";
    wait_for_count(&db, state, 1).await;
    assert_eq!(count(&db, &kept).await, 1, "a clean poll keeps it");
    assert_eq!(
        count(
            &db,
            &format!(
                "select count(*) from salesforce.account where sfid = '{id}' and region__c = 'EMEA'"
            )
        )
        .await,
        1
    );
    let status = pgforce_ok(&["status", "--config", &path]).await;
    assert!(
        status.contains("1 rejected record(s) not stored"),
        "{status}"
    );
    let reconcile = pgforce(&["reconcile", "--config", &path, "Account"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&reconcile.stdout);
    let row = report
        .lines()
        .find(|line| line.starts_with("main") && line.contains("Account"))
        .unwrap_or_default();
    assert!(
        report.contains("REJECTED") && row.split_whitespace().last() == Some("1"),
        "{report}"
    );
    assert!(!reconcile.status.success(), "a rejected record is drift");

    // The cause goes: the column is widened at the next check and the record stored.
    pg.batch_execute("drop view public.account_regions")
        .await
        .unwrap();
    wait_for_count(
        &db,
        &format!(
            "select count(*) from salesforce.account where sfid = '{id}' and region__c = '{long}'"
        ),
        1,
    )
    .await;
    wait_for_count(&db, &kept, 0).await;
    assert_eq!(
        count(
            &db,
            "select character_maximum_length::bigint from information_schema.columns
             where table_schema = 'salesforce' and table_name = 'account' and column_name = 'region__c'"
        )
        .await,
        40
    );
    let status = pgforce_ok(&["status", "--config", &path]).await;
    assert!(!status.contains("rejected record"), "{status}");
    stop(daemon).await;
    let _ = std::fs::remove_file(config);
}
