//! The Avro schema of an object's change events, as `GetSchema` returns it.
//!
//! A record named like Salesforce's (`AccountChangeEvent`, namespace
//! `com.sforce.eventbus`) whose first field is the `ChangeEventHeader` record, followed by
//! the body fields of [`crate::events::body::slots`] (every field the API user can see, less
//! `IsDeleted`, `SystemModstamp` and formula fields, with compound fields nested), each a
//! union `["null", T]` defaulting to null. A compound is a nested record, `Address` or
//! `PersonName`, of nullable components; its first use defines the record and later uses
//! name it (`["null", "Address"]`), as Avro requires and Salesforce's schemas do. Dates
//! are `int` days since 1970-01-01 (`logicalType` `date`); datetimes are `long`
//! milliseconds since the epoch (`logicalType` `timestamp-millis`).
//!
//! The schema is written as Avro JSON, the text `GetSchema` sends, and parsed by
//! apache-avro, which checks it and encodes the events with it (`payload`). The schema id
//! is derived from the JSON text, so it is stable while the object's fields stay the same
//! and changes when they change.

use base64::Engine as _;
use serde_json::{Value as Json, json};

use super::topic::event_name;
use crate::events::body::{self, Slot};
use crate::org::{CompoundKind, FieldType, ObjectDef};

/// The header's `changeType` symbols, in schema order.
pub const CHANGE_TYPES: [&str; 10] = [
    "CREATE",
    "DELETE",
    "UNDELETE",
    "UPDATE",
    "GAP_CREATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_UPDATE",
    "GAP_OVERFLOW",
    "SNAPSHOT",
];

/// One object's event schema.
#[derive(Debug, Clone)]
pub struct EventSchema {
    /// The body fields: `slots[i]` is top-level position `i + 1` (position 0 is the
    /// header).
    pub slots: Vec<Slot>,
    /// The Avro schema as JSON text.
    pub json: String,
    /// The schema id: derived from `json`.
    pub id: String,
    /// `json` as parsed by apache-avro.
    pub avro: apache_avro::Schema,
}

impl EventSchema {
    /// The schema of an object's change events as the object is now; fails only when
    /// apache-avro refuses it (a name Avro does not allow, for instance).
    pub fn of(object: &ObjectDef) -> Result<Self, apache_avro::Error> {
        let slots = body::slots(object);
        let mut avro_fields = vec![json!({"name": "ChangeEventHeader", "type": header()})];
        let mut defined: Vec<CompoundKind> = Vec::new();
        for slot in &slots {
            avro_fields.push(match slot {
                Slot::Field(index) => {
                    let field = &object.fields[*index];
                    json!({
                        "name": field.name,
                        "type": ["null", avro_type(field.field_type)],
                        "doc": format!("Data:{}", field.field_type.describe_name()),
                        "default": null,
                    })
                }
                Slot::Compound { name, kind, .. } => {
                    let record = if defined.contains(kind) {
                        json!(kind.record_name())
                    } else {
                        defined.push(*kind);
                        compound_record(*kind)
                    };
                    json!({
                        "name": name,
                        "type": ["null", record],
                        "doc": format!("Data:{}", kind.record_name()),
                        "default": null,
                    })
                }
            });
        }
        let schema = json!({
            "type": "record",
            "name": event_name(object),
            "namespace": "com.sforce.eventbus",
            "fields": avro_fields,
        });
        let avro = apache_avro::Schema::parse(&schema)?;
        let json = schema.to_string();
        let digest = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Ok(Self {
            slots,
            json,
            id,
            avro,
        })
    }

    /// Where an object field travels: its top-level position (0 is the header) and, for a
    /// compound's component, its position inside the compound.
    pub fn position(&self, field: usize) -> Option<(usize, Option<usize>)> {
        self.slots
            .iter()
            .enumerate()
            .find_map(|(at, slot)| match slot {
                Slot::Field(f) if *f == field => Some((at + 1, None)),
                Slot::Compound { components, .. } => components
                    .iter()
                    .position(|c| *c == Some(field))
                    .map(|inner| (at + 1, Some(inner))),
                Slot::Field(_) => None,
            })
    }
}

/// The nested record of a compound kind: its components, each nullable.
fn compound_record(kind: CompoundKind) -> Json {
    let fields: Vec<Json> = kind
        .components()
        .iter()
        .map(|(name, number)| {
            let primitive = if *number { "double" } else { "string" };
            json!({"name": name, "type": ["null", primitive], "default": null})
        })
        .collect();
    json!({
        "type": "record",
        "name": kind.record_name(),
        "namespace": "com.sforce.eventbus",
        "fields": fields,
    })
}

/// The Avro type of a field's values.
fn avro_type(field_type: FieldType) -> Json {
    match field_type {
        FieldType::Boolean => json!("boolean"),
        FieldType::Int => json!("int"),
        FieldType::Double | FieldType::Currency | FieldType::Percent => json!("double"),
        FieldType::Date => json!({"type": "int", "logicalType": "date"}),
        FieldType::Datetime => json!({"type": "long", "logicalType": "timestamp-millis"}),
        _ => json!("string"),
    }
}

/// The `ChangeEventHeader` record.
fn header() -> Json {
    let strings = json!({"type": "array", "items": "string"});
    json!({
        "type": "record",
        "name": "ChangeEventHeader",
        "namespace": "com.sforce.eventbus",
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": strings},
            {"name": "changeType", "type": {"type": "enum", "name": "ChangeType",
                "namespace": "com.sforce.eventbus", "symbols": CHANGE_TYPES}},
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": strings},
            {"name": "diffFields", "type": strings},
            {"name": "changedFields", "type": strings},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::Schema;

    #[test]
    fn schema_lists_the_header_then_nullable_fields_with_a_stable_id() {
        let schema = Schema::standard().unwrap();
        let account = schema.object(schema.object_index("Account").unwrap());
        let first = EventSchema::of(account).unwrap();
        let again = EventSchema::of(account).unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(first.id.len(), 22);
        let json: Json = serde_json::from_str(&first.json).unwrap();
        assert_eq!(json["name"], "AccountChangeEvent");
        let fields = json["fields"].as_array().unwrap();
        assert_eq!(fields[0]["name"], "ChangeEventHeader");
        assert_eq!(fields.len(), first.slots.len() + 1);
        let names: Vec<&str> = fields.iter().filter_map(|f| f["name"].as_str()).collect();
        assert!(names.contains(&"Name"));
        assert!(!names.contains(&"IsDeleted") && !names.contains(&"SystemModstamp"));
        let name = fields.iter().find(|f| f["name"] == "Name").unwrap();
        assert_eq!(name["type"], json!(["null", "string"]));
        assert_eq!(name["default"], Json::Null);
        let name_index = account.field_index("Name").unwrap();
        let (position, _) = first.position(name_index).unwrap();
        assert_eq!(fields[position]["name"], "Name");
    }
}
