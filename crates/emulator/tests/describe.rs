//! Describe as a generic sync client walks it: the global describe first, then the describe
//! of every object it lists. A listed object that does not describe stops such a client at
//! discovery, and flags that differ between the two answers make it choose wrongly.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::Org;

/// The object-level flags both the global describe and the object describe carry.
const SHARED_FLAGS: &[&str] = &[
    "activateable",
    "createable",
    "custom",
    "customSetting",
    "deletable",
    "deprecatedAndHidden",
    "feedEnabled",
    "keyPrefix",
    "label",
    "labelPlural",
    "layoutable",
    "mergeable",
    "mruEnabled",
    "name",
    "queryable",
    "replicateable",
    "retrieveable",
    "searchable",
    "triggerable",
    "undeletable",
    "updateable",
];

/// The global describe's entry for one object.
fn listed<'a>(global: &'a Value, name: &str) -> &'a Value {
    global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("the global describe does not list {name}"))
}

#[tokio::test]
async fn every_object_the_global_describe_lists_describes_with_the_same_flags() {
    let org = Org::start().await;
    let global = org.get("/sobjects").await;
    let entries = global["sobjects"].as_array().unwrap();
    assert!(entries.len() >= 8, "the global describe lists {entries:?}");
    for entry in entries {
        let name = entry["name"].as_str().unwrap();
        let url = entry["urls"]["describe"].as_str().unwrap();
        let (status, _, describe) = org
            .call_url(Method::GET, &format!("{}{url}", org.base), None)
            .await;
        assert_eq!(status, StatusCode::OK, "describe of {name}: {describe}");
        for flag in SHARED_FLAGS {
            assert_eq!(
                describe[*flag], entry[*flag],
                "{flag} of {name}: describe says {}, the global describe {}",
                describe[*flag], entry[*flag]
            );
        }
        assert!(
            describe["fields"].as_array().is_some_and(|f| !f.is_empty()),
            "describe of {name} lists no fields"
        );
    }
}

#[tokio::test]
async fn push_topic_describes_as_salesforce_documents_it() {
    let org = Org::start().await;
    let global = org.get("/sobjects").await;
    let entry = listed(&global, "PushTopic");
    let describe = org.get("/sobjects/PushTopic/describe").await;
    // Object reference, PushTopic: create, delete, describeSObjects, query, retrieve,
    // update, upsert; no getUpdated/getDeleted, undelete or search.
    for body in [entry, &describe] {
        for (flag, expected) in [
            ("queryable", true),
            ("retrieveable", true),
            ("createable", true),
            ("updateable", true),
            ("deletable", true),
            ("replicateable", false),
            ("undeletable", false),
            ("searchable", false),
            ("triggerable", false),
            ("mergeable", false),
            ("feedEnabled", false),
        ] {
            assert_eq!(body[flag], expected, "PushTopic {flag}");
        }
    }
    let fields: Vec<&str> = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for expected in [
        "Id",
        "Name",
        "Query",
        "ApiVersion",
        "NotifyForFields",
        "NotifyForOperationCreate",
        "NotifyForOperationUpdate",
        "NotifyForOperationDelete",
        "NotifyForOperationUndelete",
        "IsActive",
        "Description",
        "IsDeleted",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
    ] {
        assert!(
            fields.contains(&expected),
            "PushTopic describe lacks {expected}: {fields:?}"
        );
    }
    assert!(!fields.contains(&"OwnerId"), "PushTopic has no owner");
}

#[tokio::test]
async fn user_describes_as_neither_deletable_nor_undeletable() {
    let org = Org::start().await;
    let describe = org.get("/sobjects/User/describe").await;
    assert_eq!(describe["deletable"], false);
    assert_eq!(describe["undeletable"], false);
    assert_eq!(describe["replicateable"], true);
    assert_eq!(describe["queryable"], true);
}

#[tokio::test]
async fn describe_names_the_compound_field_of_each_component() {
    let org = Org::start().await;
    let describe = org.get("/sobjects/Contact/describe").await;
    let compound_of = |name: &str| {
        describe["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["compoundFieldName"]
            .clone()
    };
    assert_eq!(compound_of("FirstName"), "Name");
    assert_eq!(compound_of("MailingCity"), "MailingAddress");
    assert_eq!(compound_of("Email"), Value::Null);
}
