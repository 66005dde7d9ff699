//! Change Data Capture events as the Streaming API sends them.
//!
//! One message per changed record: `data.schema` (an id of the object's event schema),
//! `data.payload` (the `ChangeEventHeader` and the body fields), `data.event.replayId`.
//! The body carries, for a create or undelete, every non-empty field; for an update, the
//! fields it changed (null when cleared) and `LastModifiedDate`; for a delete, nothing.
//! `Id`, `IsDeleted` and `SystemModstamp` are never body fields: the record id travels in
//! the header's `recordIds`. Compound fields nest their components and formula fields are
//! left out (see [`crate::events::body`]); a nested compound holds only the components the
//! event carries. Datetimes are written with a `Z` offset as in Salesforce's published
//! CometD samples; other values as the REST API writes them.

use base64::Engine as _;
use serde_json::{Map, Value as Json, json};

use crate::datetime;
use crate::events::body::{self, Slot};
use crate::events::{ChangeEvent, ChangeType};
use crate::org::{ObjectDef, Org, Schema, Value};

/// A field value as the Streaming API writes it.
pub fn value_json(schema: &Schema, value: &Value) -> Json {
    match value {
        Value::DateTime(ms) => Json::String(datetime::format_datetime_z(*ms)),
        other => other.to_json(schema),
    }
}

/// A stable id for an object's event schema: it changes only when the object's fields do,
/// as Salesforce's schema ids do.
pub fn schema_id(object: &ObjectDef) -> String {
    let mut text = object.name.clone();
    for field in object.fields.iter().filter(|f| f.is_visible()) {
        text.push('|');
        text.push_str(&field.name);
        text.push(':');
        text.push_str(field.field_type.describe_name());
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

/// How the header names some changed fields (`BillingAddress.City` for a component),
/// leaving out the ones events never name.
fn names(object: &ObjectDef, slots: &[Slot], indexes: &[usize]) -> Vec<Json> {
    indexes
        .iter()
        .filter(|&&i| i != object.system.id)
        .filter_map(|&i| body::changed_name(object, slots, i))
        .map(Json::String)
        .collect()
}

/// The `data` of a Change Data Capture message; `gap` turns it into a gap event (header
/// only, `GAP_<TYPE>`).
pub fn event_data(org: &Org, event: &ChangeEvent, gap: bool) -> Json {
    let schema = org.schema();
    let object = schema.object(event.record.object);
    let change_type = if gap {
        format!("GAP_{}", event.change_type.cdc_name())
    } else {
        event.change_type.cdc_name().to_owned()
    };
    let slots = body::slots(object);
    let updating = event.change_type == ChangeType::Update && !gap;
    let (changed, nulled) = if updating {
        (
            names(object, &slots, &event.changed),
            names(object, &slots, &event.nulled),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let header = json!({
        "entityName": object.name,
        "recordIds": [event.record.id18(schema)],
        "changeType": change_type,
        "changeOrigin": &*event.origin,
        "transactionKey": &*event.transaction_key,
        "sequenceNumber": event.sequence_number,
        "commitTimestamp": event.commit_timestamp,
        "commitNumber": event.commit_number,
        "commitUser": event.commit_user.id18(schema),
        "changedFields": changed,
        "nulledFields": nulled,
        "diffFields": [],
    });
    let mut payload = Map::new();
    payload.insert("ChangeEventHeader".to_owned(), header);
    if !gap {
        let carried = body_fields(object, event);
        for slot in &slots {
            if let Some((name, value)) = slot_json(schema, object, slot, &carried, event) {
                payload.insert(name, value);
            }
        }
    }
    json!({
        "schema": schema_id(object),
        "payload": payload,
        "event": { "replayId": event.replay_id },
    })
}

/// One top-level body field, when the event carries it: a plain field as its value, a
/// compound as an object of the components the event carries.
fn slot_json(
    schema: &Schema,
    object: &ObjectDef,
    slot: &Slot,
    carried: &[usize],
    event: &ChangeEvent,
) -> Option<(String, Json)> {
    let value_of = |index: usize| {
        let value = event.values.get(index)?;
        carried.contains(&index).then(|| value_json(schema, value))
    };
    match slot {
        Slot::Field(index) => {
            let field = object.fields.get(*index)?;
            Some((field.name.clone(), value_of(*index)?))
        }
        Slot::Compound {
            name,
            kind,
            components,
        } => {
            let nested: Map<String, Json> = kind
                .components()
                .iter()
                .zip(components)
                .filter_map(|((component, _), index)| {
                    Some(((*component).to_owned(), value_of((*index)?)?))
                })
                .collect();
            (!nested.is_empty()).then(|| (name.clone(), Json::Object(nested)))
        }
    }
}

/// The fields an event's body carries, by index.
fn body_fields(object: &ObjectDef, event: &ChangeEvent) -> Vec<usize> {
    let mut fields: Vec<usize> = match event.change_type {
        ChangeType::Delete => return Vec::new(),
        ChangeType::Create | ChangeType::Undelete | ChangeType::Update => event.changed.clone(),
    };
    if event.change_type == ChangeType::Update
        && !fields.contains(&object.system.last_modified_date)
    {
        fields.push(object.system.last_modified_date);
    }
    fields.retain(|&i| {
        i != object.system.id && i != object.system.is_deleted && i != object.system.system_modstamp
    });
    fields
}
