//! Reading mapped fields out of a change event's body as Salesforce shapes it.
//!
//! Salesforce nests compound fields in change events: a Contact's `Name` arrives as
//! `{"FirstName": …, "LastName": …}`, `BillingAddress` as `{"Street": …, "City": …}`, and
//! an update lists `Name.LastName` or `BillingAddress.City` among its changed fields. It
//! leaves formula fields and values derived from other records out altogether. Mappings
//! are flat (one column per component), so values are looked up by each field's
//! [`EventSource`]; a mapping with a field events cannot carry is never stored from an
//! event (a formula may change with any update), only read.

use pgforce_salesforce::rest::Record;
use serde_json::Value;

use crate::mapping::{EventSource, MappedField, Mapping};

/// Fields an event never carries and the apply step sets itself.
const SET_BY_APPLY: [&str; 3] = ["Id", "SystemModstamp", "IsDeleted"];

/// The fields an event's values are looked up for.
fn carried(mapping: &Mapping) -> impl Iterator<Item = &MappedField> {
    mapping
        .fields
        .iter()
        .filter(|f| !SET_BY_APPLY.contains(&f.api_name.as_str()))
}

/// Whether events carry every mapped field (else the records must be read).
pub(super) fn carries_every_field(mapping: &Mapping) -> bool {
    carried(mapping).all(|f| f.in_events != EventSource::Absent)
}

/// The value the event body holds for `field` (null when it holds none).
fn value_of<'e>(body: &'e Record, field: &MappedField) -> &'e Value {
    let found = match &field.in_events {
        EventSource::Flat => body.get(&field.api_name),
        EventSource::Component {
            compound,
            component,
        } => body
            .get(compound)
            .and_then(Value::as_object)
            .and_then(|parts| parts.get(component)),
        EventSource::Absent => None,
    };
    found.unwrap_or(&Value::Null)
}

/// A CREATE or UNDELETE event's values under the mapping's flat field names; `None`
/// when the mapping has a field events do not carry.
pub(super) fn created_values(mapping: &Mapping, body: &Record) -> Option<Record> {
    if !carries_every_field(mapping) {
        return None;
    }
    Some(
        carried(mapping)
            .map(|field| (field.api_name.clone(), value_of(body, field).clone()))
            .collect(),
    )
}

/// Whether an UPDATE's changed fields name `field`: by its own name, as a component
/// (`BillingAddress.City`), or by the whole compound field (a client may collapse a
/// compound whose components all changed into its name).
fn changed(changed_fields: &[String], field: &MappedField) -> bool {
    changed_fields.iter().any(|name| match &field.in_events {
        EventSource::Flat => *name == field.api_name,
        EventSource::Component {
            compound,
            component,
        } => {
            *name == *compound
                || name
                    .split_once('.')
                    .is_some_and(|(c, part)| c == compound && part == component)
        }
        EventSource::Absent => false,
    })
}

/// The mapped fields an UPDATE event changed, with their new values; `None` when the
/// mapping has a field events do not carry.
pub(super) fn changed_values<'m>(
    mapping: &'m Mapping,
    changed_fields: &[String],
    body: &Record,
) -> Option<Vec<(&'m MappedField, Value)>> {
    if !carries_every_field(mapping) {
        return None;
    }
    Some(
        carried(mapping)
            .filter(|field| changed(changed_fields, field))
            .map(|field| (field, value_of(body, field).clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use pgforce_salesforce::rest::describe::FieldDescribe;
    use pgforce_store::ddl::PgType;
    use pgforce_store::{Access, Ident};
    use serde_json::json;

    use super::*;
    use crate::mapping::MappingSpec;

    /// A field as describe shows it (only what `EventSource::of` reads).
    fn described(name: &str, compound: Option<&str>, formula: Option<&str>) -> MappedField {
        let describe: FieldDescribe = serde_json::from_value(json!({
            "name": name, "label": name, "type": "string",
            "compoundFieldName": compound, "calculatedFormula": formula,
            "calculated": formula.is_some(),
        }))
        .unwrap();
        MappedField {
            api_name: name.to_owned(),
            column: Ident::from_salesforce(name).unwrap(),
            pg_type: PgType::Text,
            createable: true,
            updateable: true,
            filterable: true,
            in_events: EventSource::of(&describe),
        }
    }

    fn mapping(fields: Vec<MappedField>) -> Mapping {
        Mapping {
            spec: MappingSpec {
                object: "Account".to_owned(),
                fields: fields.iter().map(|f| f.api_name.clone()).collect(),
                access: Access::ReadOnly,
                upsert_field: None,
                polling_seconds: 600,
                max_daily_api_calls: u64::MAX,
                bulk_threshold: u64::MAX,
            },
            object: "Account".to_owned(),
            table: Ident::new("account").unwrap(),
            fields,
            upsert_column: None,
            upsert_unique: false,
            references: Vec::new(),
        }
    }

    #[test]
    fn components_are_named_as_salesforce_names_them_in_events() {
        let cases = [
            (
                "BillingCity",
                Some("BillingAddress"),
                "BillingAddress",
                "City",
            ),
            (
                "MailingPostalCode",
                Some("MailingAddress"),
                "MailingAddress",
                "PostalCode",
            ),
            (
                "PersonMailingStreet",
                Some("PersonMailingAddress"),
                "PersonMailingAddress",
                "Street",
            ),
            ("City", Some("Address"), "Address", "City"),
            ("LastName", Some("Name"), "Name", "LastName"),
            ("Site__Latitude__s", Some("Site__c"), "Site__c", "Latitude"),
        ];
        for (name, compound, parent, part) in cases {
            assert_eq!(
                described(name, compound, None).in_events,
                EventSource::Component {
                    compound: parent.to_owned(),
                    component: part.to_owned()
                },
                "{name}"
            );
        }
        assert_eq!(
            described("Industry", None, None).in_events,
            EventSource::Flat
        );
        assert_eq!(
            described("Score__c", None, Some("Rating__c * 2")).in_events,
            EventSource::Absent
        );
        assert_eq!(
            described("PhotoUrl", None, None).in_events,
            EventSource::Absent
        );
    }

    #[test]
    fn a_create_is_flattened_from_nested_compound_fields() {
        let mapping = mapping(vec![
            described("Id", None, None),
            described("LastName", Some("Name"), None),
            described("FirstName", Some("Name"), None),
            described("MailingCity", Some("MailingAddress"), None),
            described("Email", None, None),
        ]);
        // The shape of a CometD CREATE (null components left out).
        let body: Record = serde_json::from_value(json!({
            "Name": { "FirstName": "Ada", "LastName": "Lovelace" },
            "MailingAddress": { "City": "London" },
            "Email": "ada@example.com",
            "CreatedDate": "2026-01-02T03:04:05.000Z"
        }))
        .unwrap();
        let values = created_values(&mapping, &body).unwrap();
        assert_eq!(
            Value::Object(values),
            json!({ "LastName": "Lovelace", "FirstName": "Ada", "MailingCity": "London",
                    "Email": "ada@example.com" })
        );
    }

    #[test]
    fn an_update_changes_the_components_its_changed_fields_name() {
        let mapping = mapping(vec![
            described("BillingCity", Some("BillingAddress"), None),
            described("BillingStreet", Some("BillingAddress"), None),
            described("BillingPostalCode", Some("BillingAddress"), None),
            described("Industry", None, None),
        ]);
        // The shape of a Pub/Sub UPDATE: unchanged components are null.
        let body: Record = serde_json::from_value(json!({
            "BillingAddress": { "Street": null, "City": null, "PostalCode": "94105" },
            "Industry": null,
            "LastModifiedDate": 1_767_000_000_000_i64
        }))
        .unwrap();
        let changed_fields = [
            "LastModifiedDate".to_owned(),
            "BillingAddress.PostalCode".to_owned(),
        ];
        let changed = changed_values(&mapping, &changed_fields, &body).unwrap();
        let names: Vec<(&str, &Value)> = changed
            .iter()
            .map(|(f, v)| (f.api_name.as_str(), v))
            .collect();
        assert_eq!(names, [("BillingPostalCode", &json!("94105"))]);
        // A compound collapsed to its name changed every component.
        let all = changed_values(&mapping, &["BillingAddress".to_owned()], &body).unwrap();
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn a_mapping_with_a_formula_field_is_never_stored_from_an_event() {
        let mapping = mapping(vec![
            described("Name", None, None),
            described("Score__c", None, Some("Rating__c * 2")),
        ]);
        let body: Record = serde_json::from_value(json!({ "Name": "Acme" })).unwrap();
        assert!(created_values(&mapping, &body).is_none());
        assert!(changed_values(&mapping, &["Name".to_owned()], &body).is_none());
    }
}
