//! One change event as the Avro datum Pub/Sub delivers.
//!
//! Every body field is present; a field the event does not carry is null. CREATE and
//! UNDELETE carry every non-null field, UPDATE only the fields it changed (unchanged ones
//! are null; `changedFields` and `nulledFields` say which changed), DELETE and gap events
//! none. `changedFields` and `nulledFields` are bitmaps over the schema's top-level fields
//! and are set for UPDATE only, as in Salesforce; `diffFields` is always empty.

use super::avro::Writer;
use super::bitmap;
use super::schema::{CHANGE_TYPES, EventSchema};
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
    let positions = |fields: &[usize]| -> Vec<usize> {
        fields
            .iter()
            .filter_map(|&f| event_schema.position(f))
            .collect()
    };
    if update {
        writer.strings(&bitmap::encode(&positions(&event.nulled)));
        writer.strings(&[]);
        writer.strings(&bitmap::encode(&positions(&event.changed)));
    } else {
        writer.strings(&[]);
        writer.strings(&[]);
        writer.strings(&[]);
    }
    // The body.
    for &field in &event_schema.fields {
        let carried = !gap
            && match event.change_type {
                ChangeType::Create | ChangeType::Undelete => true,
                ChangeType::Update => event.changed.contains(&field),
                ChangeType::Delete => false,
            };
        let value = if carried {
            event.values.get(field).unwrap_or(&Value::Null)
        } else {
            &Value::Null
        };
        write_value(&mut writer, schema, object, field, value);
    }
    writer.finish()
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
