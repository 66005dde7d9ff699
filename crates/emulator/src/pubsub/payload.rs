//! One change event as the Avro datum Pub/Sub delivers.
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

use super::avro::Writer;
use super::bitmap;
use super::schema::{CHANGE_TYPES, EventSchema};
use crate::events::body::Slot;
use crate::events::{ChangeEvent, ChangeType};
use crate::org::{FieldType, ObjectDef, Schema, Value};

/// Encodes one event; `gap` sends it as a gap event (header only, `GAP_<TYPE>`).
pub fn encode(
    schema: &Schema,
    event_schema: &EventSchema,
    event: &ChangeEvent,
    gap: bool,
) -> Vec<u8> {
    let object = schema.object(event.record.object);
    let mut writer = Writer::default();
    // The header.
    writer.string(&object.name);
    writer.strings(&[event.record.id18(schema)]);
    let type_name = if gap {
        format!("GAP_{}", event.change_type.cdc_name())
    } else {
        event.change_type.cdc_name().to_owned()
    };
    let symbol = CHANGE_TYPES
        .iter()
        .position(|s| *s == type_name)
        .unwrap_or(0);
    writer.long(symbol as i64);
    writer.string(&event.origin);
    writer.string(&event.transaction_key);
    writer.long(i64::from(event.sequence_number));
    writer.long(event.commit_timestamp);
    writer.long(i64::try_from(event.commit_number).unwrap_or(i64::MAX));
    writer.string(&event.commit_user.id18(schema));
    let update = event.change_type == ChangeType::Update && !gap;
    if update {
        writer.strings(&field_bitmaps(event_schema, &event.nulled));
        writer.strings(&[]);
        writer.strings(&field_bitmaps(event_schema, &event.changed));
    } else {
        writer.strings(&[]);
        writer.strings(&[]);
        writer.strings(&[]);
    }
    // The body.
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
        match slot {
            Slot::Field(field) => {
                write_value(&mut writer, schema, object, *field, value_of(*field));
            }
            Slot::Compound {
                kind, components, ..
            } => {
                let values: Vec<&Value> = components
                    .iter()
                    .map(|c| c.map_or(&Value::Null, value_of))
                    .collect();
                if values.iter().all(|v| v.is_null()) {
                    writer.branch(0);
                    continue;
                }
                writer.branch(1);
                for ((_, number), value) in kind.components().iter().zip(values) {
                    write_component(&mut writer, schema, *number, value);
                }
            }
        }
    }
    writer.finish()
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

/// Writes one component of a compound: a `["null", "string"]` or `["null", "double"]`.
fn write_component(writer: &mut Writer, schema: &Schema, number: bool, value: &Value) {
    match (number, value) {
        (_, Value::Null) => writer.branch(0),
        (true, Value::Double(d)) => {
            writer.branch(1);
            writer.double(*d);
        }
        (true, Value::Int(i)) => {
            writer.branch(1);
            writer.double(*i as f64);
        }
        (true, _) => writer.branch(0),
        (false, value) => match value.to_text(schema) {
            Some(text) => {
                writer.branch(1);
                writer.string(&text);
            }
            None => writer.branch(0),
        },
    }
}

/// Writes a `["null", T]` union for one field.
fn write_value(
    writer: &mut Writer,
    schema: &Schema,
    object: &ObjectDef,
    field: usize,
    value: &Value,
) {
    let field_type = object.fields[field].field_type;
    match (field_type, value) {
        (_, Value::Null) => writer.branch(0),
        (FieldType::Boolean, Value::Bool(b)) => {
            writer.branch(1);
            writer.boolean(*b);
        }
        (FieldType::Int, Value::Int(i)) => {
            writer.branch(1);
            writer.long(*i);
        }
        (FieldType::Int, Value::Double(d)) => {
            writer.branch(1);
            writer.long(*d as i64);
        }
        (FieldType::Double | FieldType::Currency | FieldType::Percent, Value::Double(d)) => {
            writer.branch(1);
            writer.double(*d);
        }
        (FieldType::Double | FieldType::Currency | FieldType::Percent, Value::Int(i)) => {
            writer.branch(1);
            writer.double(*i as f64);
        }
        (FieldType::Date, Value::Date(days)) => {
            writer.branch(1);
            writer.long(i64::from(*days));
        }
        (FieldType::Datetime, Value::DateTime(ms)) => {
            writer.branch(1);
            writer.long(*ms);
        }
        (
            FieldType::Boolean
            | FieldType::Int
            | FieldType::Double
            | FieldType::Currency
            | FieldType::Percent
            | FieldType::Date
            | FieldType::Datetime,
            _,
        ) => writer.branch(0),
        (_, value) => match value.to_text(schema) {
            Some(text) => {
                writer.branch(1);
                writer.string(&text);
            }
            None => writer.branch(0),
        },
    }
}
