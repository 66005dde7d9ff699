//! `pgforce import` / `pgforce export`: Heroku Connect's mapping document round-trips
//! exactly, imported mappings are synced, and bad documents are refused by path.

use std::process::Stdio;

use pgforce_emulator::testing::TestOrg;
use pgforce_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::run::{ACCOUNT_MAPPING, config_file, pgforce, pgforce_ok, stop, wait_for_count};

fn export_document() -> Value {
    json!({
        "connection": {
            "app_name": "acme-prod", "organization_id": "00DE0000000L6REMA0",
            "exported_at": "2023-02-15T17:13:42.743308+00:00",
            "features": { "disable_bulk_writes": false, "poll_db_no_merge": true },
            "api_version": "57.0", "name": "acme-prod:DATABASE_URL:salesforce", "logplex_log_enabled": false
        },
        "mappings": [{
            "object_name": "Contact",
            "config": {
                "access": "read_only", "sf_notify_enabled": false, "sf_polling_seconds": 1,
                "sf_max_daily_api_calls": 30000,
                "fields": { "Id": {}, "IsDeleted": {}, "SystemModstamp": {}, "LastName": {}, "Email": {} },
                "indexes": { "Id": { "unique": true }, "SystemModstamp": { "unique": false } },
                "applied_at": "2023-02-14T01:40:34.070538Z"
            }
        }],
        "version": 1
    })
}

#[tokio::test]
async fn import_then_export_round_trips_and_run_syncs_imported_mappings() {
    let org = TestOrg::start().await;
    org.control(
        reqwest::Method::POST,
        "/seed",
        Some(json!({ "Account": 20, "Contact": 30 })),
    )
    .await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let config_path = config.to_str().unwrap();
    let document = std::env::temp_dir().join(format!("{}-export.json", db.name));
    std::fs::write(&document, export_document().to_string()).unwrap();

    let imported = pgforce_ok(&[
        "import",
        "--config",
        config_path,
        document.to_str().unwrap(),
    ])
    .await;
    assert!(imported.contains("imported 1 mapping(s) into connection main"));

    let exported = pgforce_ok(&["export", "--config", config_path]).await;
    let exported: Value = serde_json::from_str(&exported).unwrap();
    let original = export_document();
    assert_eq!(
        exported["connection"], original["connection"],
        "the connection block comes back as imported"
    );
    assert_eq!(exported["version"], 1);
    let mappings = exported["mappings"].as_array().unwrap();
    let contact = mappings
        .iter()
        .find(|m| m["object_name"] == "Contact")
        .unwrap();
    assert_eq!(
        contact, &original["mappings"][0],
        "the imported mapping comes back exactly"
    );
    let account = mappings
        .iter()
        .find(|m| m["object_name"] == "Account")
        .unwrap();
    assert_eq!(account["config"]["access"], "read_only");
    assert_eq!(
        account["config"]["fields"],
        json!({ "Id": {}, "IsDeleted": {}, "SystemModstamp": {}, "Name": {}, "Industry": {}, "AnnualRevenue": {} })
    );

    let daemon = pgforce(&["run", "--config", config_path])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.contact", 30).await;
    wait_for_count(&db, "select count(*) from salesforce.account", 20).await;
    stop(daemon).await;
    let _ = std::fs::remove_file(document);
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn bad_documents_are_refused_naming_the_place() {
    let org = TestOrg::start().await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let mut unknown_field = export_document();
    unknown_field["mappings"][0]["config"]["fields"]["Shoe_Size__c"] = json!({});
    let mut bad_access = export_document();
    bad_access["mappings"][0]["config"]["access"] = json!("write");
    let cases = [
        (
            unknown_field.to_string(),
            "mapping Contact: field Shoe_Size__c does not exist on Contact",
        ),
        (
            bad_access.to_string(),
            "mappings[0] (Contact): config.access",
        ),
        ("{\"version\": 1}".to_owned(), "mappings: missing"),
    ];
    for (text, expected) in cases {
        let document = std::env::temp_dir().join(format!("{}-bad.json", db.name));
        std::fs::write(&document, text).unwrap();
        let output = pgforce(&[
            "import",
            "--config",
            config.to_str().unwrap(),
            document.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(expected),
            "{stderr:?} should contain {expected:?}"
        );
        let _ = std::fs::remove_file(document);
    }
    let _ = std::fs::remove_file(config);
}
