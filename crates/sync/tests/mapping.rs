//! Mapping configuration errors name the mapping and the field.

use pgforce_salesforce::rest::describe::ObjectDescribe;
use pgforce_store::Access;
use pgforce_sync::testing::{Mapping, MappingSpec};
use serde_json::json;

fn describe(name: &str, queryable: bool) -> ObjectDescribe {
    serde_json::from_value(json!({
        "name": name, "label": name, "queryable": queryable,
        "fields": [
            { "name": "Id", "label": "Id", "type": "id", "length": 18 },
            { "name": "SystemModstamp", "label": "S", "type": "datetime" },
            { "name": "IsDeleted", "label": "D", "type": "boolean" },
            { "name": "Name", "label": "Name", "type": "string", "length": 80 },
            { "name": "Code__c", "label": "Code", "type": "string", "length": 20, "externalId": true },
            { "name": "Plain__c", "label": "Plain", "type": "string", "length": 20 },
            { "name": "BillingAddress", "label": "Address", "type": "address" }
        ]
    }))
    .unwrap()
}

fn spec(object: &str, fields: &[&str], upsert: Option<&str>) -> MappingSpec {
    MappingSpec {
        object: object.to_owned(),
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        access: Access::ReadOnly,
        upsert_field: upsert.map(str::to_owned),
        polling_seconds: 600,
        max_daily_api_calls: 30_000,
        bulk_threshold: pgforce_sync::DEFAULT_BULK_THRESHOLD,
    }
}

#[test]
fn a_valid_mapping_reads_system_fields_and_lowercases_columns() {
    let mapping = Mapping::resolve(
        spec("Thing__c", &["Name", "code__c"], Some("Code__c")),
        &describe("Thing__c", true),
    )
    .unwrap();
    let columns: Vec<&str> = mapping.fields.iter().map(|f| f.column.as_str()).collect();
    assert_eq!(
        columns,
        ["sfid", "systemmodstamp", "isdeleted", "name", "code__c"]
    );
    assert_eq!(mapping.table.as_str(), "thing__c");
    assert_eq!(mapping.upsert_column.as_ref().unwrap().as_str(), "code__c");
    assert_eq!(
        mapping.select_list(),
        "Id, SystemModstamp, IsDeleted, Name, Code__c"
    );
}

#[test]
fn configuration_errors_name_the_mapping_and_field() {
    let cases = [
        (
            spec("Thing__c", &["Nope__c"], None),
            describe("Thing__c", true),
            "mapping Thing__c: field Nope__c does not exist on Thing__c",
        ),
        (
            spec("Thing__c", &["Name"], Some("Plain__c")),
            describe("Thing__c", true),
            "upsert field Plain__c is not an External ID field",
        ),
        (
            spec("Thing__c", &["Name"], Some("Code__c")),
            describe("Thing__c", true),
            "upsert field Code__c must also be one of the mapped fields",
        ),
        (
            spec("Thing__c", &["BillingAddress"], None),
            describe("Thing__c", true),
            "BillingAddress is a compound field",
        ),
        (
            spec("Thing__c", &["Name; DROP"], None),
            describe("Thing__c", true),
            "is not a valid Salesforce field name",
        ),
        (
            spec("Thing__c", &["Name"], None),
            describe("Thing__c", false),
            "Thing__c is not queryable",
        ),
        (
            spec("Log__e", &["Name"], None),
            describe("Log__e", true),
            "platform events (__e) cannot be synced",
        ),
        (
            spec("Archive__b", &["Name"], None),
            describe("Archive__b", true),
            "big objects (__b)",
        ),
    ];
    for (spec, describe, expected) in cases {
        let error = Mapping::resolve(spec, &describe).unwrap_err().to_string();
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    }
}
