//! The client's types parse real Salesforce responses: the recordings kept beside the
//! emulator's shape tests (`crates/emulator/tests/fixtures`, with their sources and
//! licences), so client and emulator are checked against the same bodies.

use std::path::PathBuf;

use pgforce_salesforce::rest::collections::SaveResult;
use pgforce_salesforce::rest::describe::{FieldType, GlobalDescribe, ObjectDescribe};
use pgforce_salesforce::rest::limits::Limit;
use pgforce_salesforce::rest::query::QueryPage;
use pgforce_salesforce::rest::replication::{Deleted, Updated};
use pgforce_salesforce::{ApiErrorCode, parse_limit_info};

/// A recorded response, from the repository's copy or the folder `PGFORCE_FIXTURES` names.
fn fixture(path: &str) -> String {
    let root = std::env::var_os("PGFORCE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../emulator/tests/fixtures")
        });
    let file = root.join(path);
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("fixture {} cannot be read: {e}", file.display()))
}

fn parse<T: serde::de::DeserializeOwned>(path: &str) -> T {
    serde_json::from_str(&fixture(path)).unwrap_or_else(|e| panic!("{path} does not parse: {e}"))
}

#[test]
fn real_describes_parse_into_typed_metadata() {
    for path in [
        "rest/describe_account_v48.json",
        "rest/describe_account_v59_person_accounts.json",
    ] {
        let describe: ObjectDescribe = parse(path);
        assert_eq!(describe.object.name, "Account");
        let id = describe.field("Id").unwrap();
        assert_eq!(id.field_type, FieldType::Id);
        assert!(id.id_lookup && !id.createable);
        let owner = describe.field("OwnerId").unwrap();
        assert_eq!(owner.relationship_name.as_deref(), Some("Owner"));
        assert!(
            describe
                .fields
                .iter()
                .any(|f| !f.picklist_values.is_empty())
        );
    }
    let custom: ObjectDescribe = parse("rest/describe_custom_object_with_external_id_v42.json");
    let ext = custom
        .fields
        .iter()
        .find(|f| f.external_id)
        .expect("an external id field");
    assert_eq!(ext.field_type, FieldType::Double);
    let global: GlobalDescribe = parse("rest/describe_global_trimmed.json");
    assert!(global.sobjects.len() > 100);
    let _: GlobalDescribe = parse("rest/describe_global_restforce_v23.json");
}

#[test]
fn real_query_pages_parse() {
    let page: QueryPage = parse("rest/query_accounts.json");
    assert_eq!(
        (page.total_size, page.done, page.records.len()),
        (6, true, 6)
    );
    let first: QueryPage = parse("rest/query_paginated_first_page_edited.json");
    assert!(!first.done && first.next_records_url.is_some());
    let last: QueryPage = parse("rest/query_paginated_last_page_edited.json");
    assert!(last.done && last.next_records_url.is_none());
    let count: QueryPage = parse("rest/query_count.json");
    assert_eq!((count.total_size, count.records.len()), (57, 0));
    let nested: QueryPage = parse("rest/query_with_parent_and_child_relationships_edited.json");
    assert!(!nested.records.is_empty());
}

#[test]
fn real_collections_results_parse_with_created_flags() {
    let created: Vec<SaveResult> = parse("collections/create_success.json");
    assert!(created[0].success && created[0].created.is_none());
    let upserted: Vec<SaveResult> = parse("collections/upsert_by_email_updated.json");
    assert_eq!(
        upserted.iter().filter(|r| r.created == Some(true)).count(),
        1
    );
}

#[test]
fn replication_and_limits_answers_parse() {
    let updated: Updated = parse("rest/get_updated.json");
    assert_eq!(updated.ids.len(), 7);
    let deleted: Deleted = parse("rest/get_deleted.json");
    assert_eq!(
        deleted.deleted_records[0].deleted_date,
        "2013-05-07T22:07:19.000+0000"
    );
    let limits: std::collections::BTreeMap<String, Limit> = parse("rest/limits.json");
    assert_eq!(
        limits["DailyApiRequests"],
        Limit {
            max: 15000,
            remaining: 14998
        }
    );
    assert!(parse_limit_info("api-usage=25/15000").is_some());
}

#[test]
fn real_error_codes_are_recognised() {
    for (path, code) in [
        (
            "errors/invalid_session_id.json",
            ApiErrorCode::InvalidSessionId,
        ),
        ("errors/not_found_resource.json", ApiErrorCode::NotFound),
        (
            "errors/invalid_type_query_400.json",
            ApiErrorCode::InvalidType,
        ),
        (
            "errors/invalid_field_write.json",
            ApiErrorCode::InvalidField,
        ),
    ] {
        let body: serde_json::Value = parse(path);
        assert_eq!(
            ApiErrorCode::parse(body[0]["errorCode"].as_str().unwrap()),
            code,
            "{path}"
        );
    }
}
