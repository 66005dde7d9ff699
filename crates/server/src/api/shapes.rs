//! The JSON shapes of Heroku Connect's API v3, built from the engine's views: field names
//! and nesting as Heroku Connect answers, so clients written for it read them unchanged.
//! Ids are strings (Heroku Connect's are UUIDs; clients treat them as opaque).

use pgforce_sync::{
    AuditEntry, Check, CheckOutcome, ConnectionView, Diagnosis, FailedWrite, MappingState,
    MappingView, Notification,
};
use serde_json::{Value, json};

/// A connection; with its mappings when `deep`.
pub fn connection(view: &ConnectionView, deep: bool) -> Value {
    let id = view.id.to_string();
    let mut connection = json!({
        "id": id,
        "name": view.name,
        "internal_name": view.name,
        "resource_name": view.name,
        "app_name": view.name,
        "schema_name": view.schema,
        "db_key": "DATABASE_URL",
        "state": view.state.as_str(),
        "mappings_summary_state": summary_state(view),
        "paused": view.paused,
        "state_description": view.last_error.clone().unwrap_or_default(),
        "detail_url": format!("/api/v3/connections/{id}"),
        "sf_info": { "api_version": view.api_version },
        "features": { "poll_db_no_merge": view.ordered_writes },
    });
    if deep {
        connection["mappings"] = view.mappings.iter().map(mapping).collect();
    }
    connection
}

/// The worst of the mappings' states, as Heroku Connect sums them up: an error state if
/// any mapping has one, else `DATA_SYNCED` when all are, else the first busy one.
fn summary_state(view: &ConnectionView) -> &str {
    let states = || view.mappings.iter().map(|m| &m.state);
    states()
        .find(|s| s.is_error())
        .or_else(|| states().find(|s| **s != MappingState::DataSynced))
        .map_or("DATA_SYNCED", MappingState::as_str)
}

/// A mapping.
pub fn mapping(view: &MappingView) -> Value {
    let id = view.id.to_string();
    let config = Value::Object(view.config.clone());
    json!({
        "id": id,
        "object_name": view.object,
        "table_name": view.table,
        "state": view.state.as_str(),
        "state_description": view.last_error.clone().unwrap_or_default(),
        "paused": view.paused,
        "access": view.access.as_str(),
        "sf_polling_seconds": config.get("sf_polling_seconds").cloned().unwrap_or(Value::Null),
        "sf_notify_enabled": config.get("sf_notify_enabled").cloned().unwrap_or(Value::Bool(false)),
        "config": config,
        "counts": {
            "count": view.rows,
            "sf": view.salesforce_count,
            "pending": view.pending,
            "errors": view.errors,
        },
        "actively_writing": view.pending > 0,
        "detail_url": format!("/api/v3/mappings/{id}"),
        "errors_url": format!("/api/v3/mappings/{id}/errors"),
        "connection": { "id": view.connection.to_string() },
    })
}

/// A list in Heroku Connect's envelope.
pub fn list(results: Vec<Value>) -> Value {
    json!({ "count": results.len(), "results": results })
}

/// A failed write.
pub fn failed_write(failed: &FailedWrite) -> Value {
    json!({
        "id": failed.log_id,
        "table_name": failed.table,
        "record_id": failed.record_id,
        "message": failed.message,
        "created_at": failed.created_at,
    })
}

/// An audit trail entry; `before` and `after` are the JSON they were recorded as.
pub fn audit_entry(entry: &AuditEntry) -> Value {
    let json = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    };
    json!({
        "id": entry.id,
        "created_at": entry.at,
        "token": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "before": json(&entry.before),
        "after": json(&entry.after),
    })
}

/// A notification, as Heroku Connect lists them (plus `subject` and `acknowledged`).
pub fn notification(notification: &Notification) -> Value {
    json!({
        "id": notification.id,
        "created_at": notification.created_at,
        "event_type": notification.event_type,
        "subject": notification.subject,
        "message": notification.message,
        "acknowledged": notification.acknowledged,
    })
}

/// Checks in Heroku Connect's diagnose buckets: `errors`, `warnings`, `passes`, `skips`,
/// each `{"display_name", "message", "doc_url", "rule_id", "status"}`.
pub fn checks(checks: &[Check]) -> Value {
    let mut buckets = json!({ "errors": [], "warnings": [], "passes": [], "skips": [] });
    for check in checks {
        let (bucket, status) = match check.outcome {
            CheckOutcome::Error => ("errors", "FAILED"),
            CheckOutcome::Warning => ("warnings", "FAILED"),
            CheckOutcome::Passed => ("passes", "PASSED"),
            CheckOutcome::Skipped => ("skips", "SKIPPED"),
        };
        if let Some(list) = buckets[bucket].as_array_mut() {
            list.push(json!({
                "display_name": check.display_name,
                "message": check.message,
                "doc_url": "",
                "rule_id": check.rule_id,
                "status": status,
            }));
        }
    }
    buckets
}

/// A connection's diagnosis: its own checks, and `mappings` by object.
pub fn diagnosis(diagnosis: &Diagnosis) -> Value {
    let mut shown = checks(&diagnosis.connection);
    let mappings: serde_json::Map<String, Value> = diagnosis
        .mappings
        .iter()
        .map(|(object, list)| (object.clone(), checks(list)))
        .collect();
    shown["mappings"] = Value::Object(mappings);
    shown
}
