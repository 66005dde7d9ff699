//! One change event as the Avro datum Pub/Sub delivers, encoded by apache-avro with the
//! object's event schema.
//!
//! Every body field is present; a field the event does not carry is null. CREATE and
//! UNDELETE carry every non-null field, UPDATE only the fields it changed (unchanged ones
//! are null; `changedFields` and `nulledFields` say which changed), DELETE and gap events
//! none. A compound field is its nested record when the event carries at least one of its
//! components (the others null inside it), else null. `changedFields` and `nulledFields`
//! are bitmaps over the schema's top-level fields, plus one `<position>-0x<HEX>` bitmap per
//! compound over its components (the compound's own top-level bit is not set), and are set
//! for UPDATE only, as in Salesforce; `diffFields` is always empty.

use std::collections::BTreeMap;

use apache_avro::types::Value as Avro;

use super::bitmap;
use super::schema::{CHANGE_TYPES, EventSchema};
use crate::events::body::Slot;
use crate::events::{ChangeEvent, ChangeType};
use crate::org::{FieldType, ObjectDef, Schema, Value};

/// Encodes one event; `gap` sends it as a gap event (header only, `GAP_<TYPE>`). Fails
/// only when the datum does not fit the schema, which is a bug of the emulator.
pub fn encode(
    schema: &Schema,
    event_schema: &EventSchema,
    event: &ChangeEvent,
    gap: bool,
) -> Result<Vec<u8>, apache_avro::Error> {
    let object = schema.object(event.record.object);
    let mut fields = vec![(
        "ChangeEventHeader".to_owned(),
        header(schema, event_schema, event, gap),
    )];
    let carried = |field: usize| {
        !gap && match event.change_type {
            ChangeType::Create | ChangeType::Undelete => true,
            ChangeType::Update => event.changed.contains(&field),
            ChangeType::Delete => false,
        }
    };
    let value_of = |field: usize| {
        if carried(field) {
            event.values.get(field).unwrap_or(&Value::Null)
        } else {
            &Value::Null
        }
    };
    for slot in &event_schema.slots {
        let (name, value) = match slot {
            Slot::Field(field) => (
                object.fields[*field].name.clone(),
                nullable(field_value(schema, object, *field, value_of(*field))),
            ),
            Slot::Compound {
                name,
                kind,
                components,
            } => {
                let values: Vec<&Value> = components
                    .iter()
                    .map(|c| c.map_or(&Value::Null, value_of))
                    .collect();
                let record = (!values.iter().all(|v| v.is_null())).then(|| {
                    Avro::Record(
                        kind.components()
                            .iter()
                            .zip(values)
                            .map(|((component, number), value)| {
                                let value = component_value(schema, *number, value);
                                ((*component).to_owned(), nullable(value))
                            })
                            .collect(),
                    )
                });
                (name.clone(), nullable(record))
            }
        };
        fields.push((name, value));
    }
    apache_avro::to_avro_datum(&event_schema.avro, Avro::Record(fields))
}

/// The `ChangeEventHeader` record.
fn header(schema: &Schema, event_schema: &EventSchema, event: &ChangeEvent, gap: bool) -> Avro {
    let type_name = if gap {
        format!("GAP_{}", event.change_type.cdc_name())
    } else {
        event.change_type.cdc_name().to_owned()
    };
    let symbol = CHANGE_TYPES
        .iter()
        .position(|s| *s == type_name)
        .unwrap_or(0);
    let update = event.change_type == ChangeType::Update && !gap;
    let (nulled, changed) = if update {
        (
            field_bitmaps(event_schema, &event.nulled),
            field_bitmaps(event_schema, &event.changed),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let text = |s: &str| Avro::String(s.to_owned());
    Avro::Record(vec![
        (
            "entityName".to_owned(),
            text(&schema.object(event.record.object).name),
        ),
        (
            "recordIds".to_owned(),
            strings(vec![event.record.id18(schema)]),
        ),
        (
            "changeType".to_owned(),
            Avro::Enum(
                u32::try_from(symbol).unwrap_or_default(),
                CHANGE_TYPES[symbol].to_owned(),
            ),
        ),
        ("changeOrigin".to_owned(), text(&event.origin)),
        ("transactionKey".to_owned(), text(&event.transaction_key)),
        (
            "sequenceNumber".to_owned(),
            Avro::Int(i32::try_from(event.sequence_number).unwrap_or(i32::MAX)),
        ),
        (
            "commitTimestamp".to_owned(),
            Avro::Long(event.commit_timestamp),
        ),
        (
            "commitNumber".to_owned(),
            Avro::Long(i64::try_from(event.commit_number).unwrap_or(i64::MAX)),
        ),
        (
            "commitUser".to_owned(),
            text(&event.commit_user.id18(schema)),
        ),
        ("nulledFields".to_owned(), strings(nulled)),
        ("diffFields".to_owned(), strings(Vec::new())),
        ("changedFields".to_owned(), strings(changed)),
    ])
}

fn strings(values: Vec<String>) -> Avro {
    Avro::Array(values.into_iter().map(Avro::String).collect())
}

/// A `["null", T]` union's value.
fn nullable(value: Option<Avro>) -> Avro {
    match value {
        Some(value) => Avro::Union(1, Box::new(value)),
        None => Avro::Union(0, Box::new(Avro::Null)),
    }
}

/// The bitmaps naming some fields: top-level positions in `0x<HEX>`, components of each
/// compound in `<position>-0x<HEX>`.
fn field_bitmaps(event_schema: &EventSchema, fields: &[usize]) -> Vec<String> {
    let mut top = Vec::new();
    let mut nested: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (position, inner) in fields.iter().filter_map(|&f| event_schema.position(f)) {
        match inner {
            Some(inner) => nested.entry(position).or_default().push(inner),
            None => top.push(position),
        }
    }
    let mut bitmaps = bitmap::encode(&top);
    for (position, inner) in nested {
        bitmaps.extend(
            bitmap::encode(&inner)
                .into_iter()
                .map(|b| format!("{position}-{b}")),
        );
    }
    bitmaps
}

/// One component of a compound: a `double` or a `string`, or none.
fn component_value(schema: &Schema, number: bool, value: &Value) -> Option<Avro> {
    match (number, value) {
        (_, Value::Null) => None,
        (true, Value::Double(d)) => Some(Avro::Double(*d)),
        (true, Value::Int(i)) => Some(Avro::Double(*i as f64)),
        (true, _) => None,
        (false, value) => value.to_text(schema).map(Avro::String),
    }
}

/// One field's value as its Avro type (see `schema::avro_type`), or none.
fn field_value(schema: &Schema, object: &ObjectDef, field: usize, value: &Value) -> Option<Avro> {
    let field_type = object.fields[field].field_type;
    match (field_type, value) {
        (_, Value::Null) => None,
        (FieldType::Boolean, Value::Bool(b)) => Some(Avro::Boolean(*b)),
        (FieldType::Int, Value::Int(i)) => i32::try_from(*i).ok().map(Avro::Int),
        (FieldType::Int, Value::Double(d)) => Some(Avro::Int(*d as i32)),
        (FieldType::Double | FieldType::Currency | FieldType::Percent, Value::Double(d)) => {
            Some(Avro::Double(*d))
        }
        (FieldType::Double | FieldType::Currency | FieldType::Percent, Value::Int(i)) => {
            Some(Avro::Double(*i as f64))
        }
        (FieldType::Date, Value::Date(days)) => Some(Avro::Date(*days)),
        (FieldType::Datetime, Value::DateTime(ms)) => Some(Avro::TimestampMillis(*ms)),
        (
            FieldType::Boolean
            | FieldType::Int
            | FieldType::Double
            | FieldType::Currency
            | FieldType::Percent
            | FieldType::Date
            | FieldType::Datetime,
            _,
        ) => None,
        (_, value) => value.to_text(schema).map(Avro::String),
    }
}
