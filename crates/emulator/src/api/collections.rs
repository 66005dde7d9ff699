//! sObject Collections: create, update, upsert, delete and retrieve up to 200 records
//! (2,000 for retrieve) in one call.
//!
//! One call is one transaction: all records share one `SystemModstamp`. With `allOrNone`
//! any failure rolls every record back; failing records report their own error and the
//! others ALL_OR_NONE_OPERATION_ROLLED_BACK, as Salesforce does.
//!
//! Errors come at two levels, as on Salesforce. A body that does not bind to sObjects (not
//! JSON, no records array, too many records, a field the user cannot see in any record:
//! unknown, or hidden by field-level security) fails the whole call with HTTP 400 and one
//! error, and nothing is written. Everything found while saving a record (validation,
//! read-only fields, references, locks) fails that record alone in a 200 answer.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Map, Value as Json, json};

use super::context::RequestContext;
use super::describe::{external_id_field, object_from_path};
use super::rest::{ApiResult, json_response, raw_json_response};
use super::sobjects::{field_projection, lock_row_error};
use crate::error::ApiError;
use crate::faults::FaultConfig;
use crate::org::{LookupError, ObjectIndex, RecordRef, Schema, Txn, UpsertOutcome};
use crate::query::render;

/// The most records a write call takes.
const MAX_WRITE_RECORDS: usize = 200;
/// The most Ids a retrieve call takes.
const MAX_RETRIEVE_IDS: usize = 2000;

/// One record's outcome.
enum Outcome {
    Ok { id: String, created: Option<bool> },
    Failed(ApiError),
}

struct Batch {
    all_or_none: bool,
    records: Vec<Map<String, Json>>,
}

fn parse_batch(ctx: &RequestContext) -> Result<Batch, ApiError> {
    let body = ctx.json_object()?;
    let all_or_none = body
        .get("allOrNone")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let records = match body.get("records") {
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| match item {
                Json::Object(map) => Ok(map.clone()),
                _ => Err(ApiError::json_parser(
                    "each element of records must be a JSON object",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(ApiError::json_parser("records must be an array")),
    };
    check_count(records.len(), MAX_WRITE_RECORDS)?;
    Ok(Batch {
        all_or_none,
        records,
    })
}

/// Salesforce's code for an oversized collections call is not documented (the project's
/// API reference lists it as unconfirmed); EXCEEDED_ID_LIMIT is the code its retrieve and
/// replication limits use, so the emulator answers with it.
fn check_count(count: usize, max: usize) -> Result<(), ApiError> {
    if count > max {
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            format!("record limit reached. cannot submit more than {max} records into this call"),
        ));
    }
    Ok(())
}

/// Fails the call when a record names a field its object does not show the user: the
/// body binds to sObjects before any record is saved, so one such field refuses the whole
/// call (HTTP 400, INVALID_FIELD), not just its record. `object_of` gives a record's object;
/// a record whose type is unknown is left to fail on its own.
fn check_fields_visible(
    schema: &Schema,
    records: &[Map<String, Json>],
    object_of: impl Fn(&Map<String, Json>) -> Option<ObjectIndex>,
) -> Result<(), ApiError> {
    for record in records {
        let Some(object) = object_of(record) else {
            continue;
        };
        let def = schema.object(object);
        let unknown = record.iter().find(|(name, value)| {
            let parent_by_key = value.is_object() && def.relationship_field(name).is_some();
            name.as_str() != "attributes" && def.field_index(name).is_none() && !parent_by_key
        });
        if let Some((name, _)) = unknown {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!("No such column '{name}' on sobject of type {}", def.name),
            ));
        }
    }
    Ok(())
}

/// The object a record's `attributes.type` names, if the org has it.
fn typed_object(schema: &Schema, record: &Map<String, Json>) -> Option<ObjectIndex> {
    schema.object_index(record_type(record)?)
}

fn record_type(record: &Map<String, Json>) -> Option<&str> {
    record.get("attributes")?.get("type")?.as_str()
}

fn record_id(record: &Map<String, Json>) -> Option<&str> {
    record
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("id"))
        .and_then(|(_, v)| v.as_str())
}

/// Whether the record at `position` of the call is refused with UNABLE_TO_LOCK_ROW: chosen
/// for the call when it was admitted, or drawn now at `recordLockRate` (each drawn lock counts
/// as one injected fault).
fn record_locked(ctx: &RequestContext, faults: &FaultConfig, position: usize) -> bool {
    if ctx.faults.locked.contains(position) {
        return true;
    }
    let drawn = faults.draw_record_lock();
    if drawn {
        ctx.shared.stats.record_fault();
    }
    drawn
}

/// Runs `apply` for each record in one transaction, honouring allOrNone, and renders the
/// results. A record refused by a lock fault is not applied and fails with UNABLE_TO_LOCK_ROW
/// naming the record `lock_target` finds (none for an insert), as Salesforce reports a row
/// another transaction holds; the other records go on.
fn run_batch<T>(
    ctx: &RequestContext,
    items: &[T],
    all_or_none: bool,
    lock_target: impl Fn(&Txn<'_>, &T) -> Option<String>,
    mut apply: impl FnMut(&mut Txn<'_>, &T) -> Outcome,
) -> ApiResult {
    let faults = ctx.shared.faults();
    let mut org = ctx.shared.org_mut();
    let mut txn = ctx.begin(&mut org);
    let mut outcomes: Vec<Outcome> = items
        .iter()
        .enumerate()
        .map(|(position, item)| {
            if record_locked(ctx, &faults, position) {
                let id = lock_target(&txn, item).unwrap_or_default();
                return Outcome::Failed(lock_row_error(&id));
            }
            let savepoint = txn.savepoint();
            let outcome = apply(&mut txn, item);
            if matches!(outcome, Outcome::Failed(_)) {
                txn.rollback_to(savepoint);
            }
            outcome
        })
        .collect();
    let any_failed = outcomes.iter().any(|o| matches!(o, Outcome::Failed(_)));
    if all_or_none && any_failed {
        txn.rollback_to(0);
        for outcome in &mut outcomes {
            if matches!(outcome, Outcome::Ok { .. }) {
                *outcome = Outcome::Failed(ApiError::bad_request(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                ));
            }
        }
    }
    drop(txn);
    drop(org);
    let written = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Ok { .. }))
        .count();
    ctx.shared.stats.record_records(written as u64, 0);
    let results: Vec<Json> = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Outcome::Ok { id, created } => {
                let mut result = json!({ "id": id, "success": true, "errors": [] });
                if let Some(created) = created {
                    result["created"] = json!(created);
                }
                result
            }
            Outcome::Failed(error) => {
                json!({ "success": false, "errors": [error.to_record_json()] })
            }
        })
        .collect();
    Ok(json_response(StatusCode::OK, &Json::Array(results)))
}

fn object_of(txn: &Txn<'_>, record: &Map<String, Json>) -> Result<ObjectIndex, ApiError> {
    let name = record_type(record).ok_or_else(|| {
        ApiError::bad_request("INVALID_TYPE", "Must send a concrete entity type.")
    })?;
    txn.org().schema().object_index(name).ok_or_else(|| {
        ApiError::bad_request(
            "INVALID_TYPE",
            format!("sObject type '{name}' is not supported."),
        )
    })
}

fn fail_or(result: Result<Outcome, ApiError>) -> Outcome {
    result.unwrap_or_else(Outcome::Failed)
}

/// `POST /composite/sobjects`.
pub fn create(ctx: &RequestContext) -> ApiResult {
    let batch = parse_batch(ctx)?;
    let schema = Arc::clone(ctx.shared.org().schema());
    check_fields_visible(&schema, &batch.records, |r| typed_object(&schema, r))?;
    let no_id_yet = |_: &Txn<'_>, _: &Map<String, Json>| None;
    let apply = |txn: &mut Txn<'_>, record: &Map<String, Json>| fail_or(create_one(txn, record));
    run_batch(ctx, &batch.records, batch.all_or_none, no_id_yet, apply)
}

fn create_one(txn: &mut Txn<'_>, record: &Map<String, Json>) -> Result<Outcome, ApiError> {
    let object = object_of(txn, record)?;
    if record_id(record).is_some() {
        return Err(ApiError::bad_request(
            "INVALID_FIELD",
            "cannot specify Id in an insert call",
        ));
    }
    let created = txn.create(object, record)?;
    Ok(Outcome::Ok {
        id: created.id18(txn.org().schema()),
        created: None,
    })
}

/// `PATCH /composite/sobjects`.
pub fn update(ctx: &RequestContext) -> ApiResult {
    let batch = parse_batch(ctx)?;
    let schema = Arc::clone(ctx.shared.org().schema());
    check_fields_visible(&schema, &batch.records, |r| typed_object(&schema, r))?;
    let named = |txn: &Txn<'_>, record: &Map<String, Json>| id18_of(txn, record_id(record)?);
    let apply = |txn: &mut Txn<'_>, record: &Map<String, Json>| fail_or(update_one(txn, record));
    run_batch(ctx, &batch.records, batch.all_or_none, named, apply)
}

fn update_one(txn: &mut Txn<'_>, record: &Map<String, Json>) -> Result<Outcome, ApiError> {
    let object = object_of(txn, record)?;
    let id = record_id(record).ok_or_else(|| {
        ApiError::bad_request("MISSING_ARGUMENT", "Id not specified in an update call")
    })?;
    let target = resolve(txn, object, id)?;
    txn.update(target, record)?;
    Ok(Outcome::Ok {
        id: target.id18(txn.org().schema()),
        created: None,
    })
}

/// The 18-character Id of the stored record an Id names, if any.
fn id18_of(txn: &Txn<'_>, id: &str) -> Option<String> {
    let record = txn.org().resolve_id(id).ok()?;
    Some(record.id18(txn.org().schema()))
}

/// The record an Id names, if it is one of `object`'s (REST's errors otherwise).
pub(crate) fn resolve(txn: &Txn<'_>, object: ObjectIndex, id: &str) -> Result<RecordRef, ApiError> {
    match txn.org().resolve_id(id) {
        Ok(r) if r.object == object => Ok(r),
        Err(LookupError::Malformed) => Err(ApiError::bad_request(
            "MALFORMED_ID",
            format!("malformed id {id}"),
        )),
        Ok(_) | Err(LookupError::NotFound) => Err(ApiError::bad_request(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
        )),
    }
}

/// `PATCH /composite/sobjects/{Obj}/{ExtField}`.
pub fn upsert(ctx: &RequestContext, name: &str, field_name: &str) -> ApiResult {
    let batch = parse_batch(ctx)?;
    let (object, key_field) = external_id_field(ctx, name, field_name)?;
    let schema = Arc::clone(ctx.shared.org().schema());
    check_fields_visible(&schema, &batch.records, |_| Some(object))?;
    let matched = |txn: &Txn<'_>, record: &Map<String, Json>| {
        let key = upsert_key(txn, object, key_field, record);
        match txn.org().table(object).lookup_key(key_field, key.trim()) {
            [seq] => Some(RecordRef { object, seq: *seq }.id18(txn.org().schema())),
            _ => None,
        }
    };
    let apply = |txn: &mut Txn<'_>, record: &Map<String, Json>| {
        fail_or(upsert_one(txn, name, object, key_field, record))
    };
    run_batch(ctx, &batch.records, batch.all_or_none, matched, apply)
}

/// Upserts one record of an upsert call by its external id.
fn upsert_one(
    txn: &mut Txn<'_>,
    name: &str,
    object: ObjectIndex,
    key_field: usize,
    record: &Map<String, Json>,
) -> Result<Outcome, ApiError> {
    if let Some(declared) = record_type(record)
        && txn.org().schema().object_index(declared) != Some(object)
    {
        return Err(ApiError::bad_request(
            "INVALID_TYPE",
            format!("records of type {declared} cannot be upserted as {name}"),
        ));
    }
    let key = upsert_key(txn, object, key_field, record);
    let outcome = txn.upsert(object, key_field, &key, record)?;
    let schema = txn.org().schema();
    match outcome {
        UpsertOutcome::Created(r) => Ok(Outcome::Ok {
            id: r.id18(schema),
            created: Some(true),
        }),
        UpsertOutcome::Updated(r) => Ok(Outcome::Ok {
            id: r.id18(schema),
            created: Some(false),
        }),
        UpsertOutcome::Multiple(records) => {
            let key_name = schema.object(object).fields[key_field].name.clone();
            let ids: Vec<String> = records.iter().map(|r| r.id18(schema)).collect();
            Err(ApiError::bad_request(
                "DUPLICATE_EXTERNAL_ID",
                format!(
                    "{key_name}: more than one record found for external id field: [{}]",
                    ids.join(", ")
                ),
            )
            .with_fields(vec![key_name]))
        }
    }
}

/// The external id value a record of an upsert call carries (empty when it has none).
fn upsert_key(
    txn: &Txn<'_>,
    object: ObjectIndex,
    key_field: usize,
    record: &Map<String, Json>,
) -> String {
    let key_name = &txn.org().schema().object(object).fields[key_field].name;
    record
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key_name))
        .map(|(_, v)| match v {
            Json::String(s) => s.clone(),
            Json::Null => String::new(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// `DELETE /composite/sobjects?ids=…&allOrNone=…`.
pub fn delete(ctx: &RequestContext) -> ApiResult {
    let ids: Vec<String> = ctx
        .param("ids")
        .map(|ids| {
            ids.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(ApiError::bad_request(
            "MISSING_ARGUMENT",
            "ids parameter is required",
        ));
    }
    check_count(ids.len(), MAX_WRITE_RECORDS)?;
    let all_or_none = ctx
        .param("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let named = |txn: &Txn<'_>, id: &String| id18_of(txn, id);
    run_batch(ctx, &ids, all_or_none, named, |txn, id| {
        fail_or((|| {
            let target = match txn.org().resolve_id(id) {
                Ok(r) => r,
                Err(LookupError::Malformed) => {
                    return Err(ApiError::bad_request(
                        "MALFORMED_ID",
                        format!("malformed id {id}"),
                    ));
                }
                Err(LookupError::NotFound) => {
                    return Err(ApiError::bad_request(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                    ));
                }
            };
            txn.delete(target)?;
            Ok(Outcome::Ok {
                id: target.id18(txn.org().schema()),
                created: None,
            })
        })())
    })
}

/// `GET /composite/sobjects/{Obj}?ids=&fields=` and `POST` with `{"ids", "fields"}`.
pub fn retrieve(ctx: &RequestContext, name: &str) -> ApiResult {
    let (ids, fields): (Vec<String>, String) = if ctx.method == axum::http::Method::POST {
        let body = ctx.json_object()?;
        let list = |key: &str| -> Vec<String> {
            body.get(key)
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        (list("ids"), list("fields").join(","))
    } else {
        let split = |v: Option<&str>| -> Vec<String> {
            v.map(|s| {
                s.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
        };
        (
            split(ctx.param("ids")),
            split(ctx.param("fields")).join(","),
        )
    };
    if fields.is_empty() {
        return Err(ApiError::bad_request(
            "MISSING_ARGUMENT",
            "fields parameter is required",
        ));
    }
    check_count(ids.len(), MAX_RETRIEVE_IDS)?;
    let org = ctx.shared.org();
    let object = object_from_path(org.schema(), name)?;
    let projection = field_projection(&org, object, Some(&fields))?;
    let mut out = String::from("[");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let found = org
            .resolve_id(id)
            .ok()
            .filter(|r| r.object == object)
            .and_then(|r| {
                org.get(r)
                    .filter(|rec| !rec.is_deleted())
                    .map(|rec| (r, rec))
            });
        match found {
            Some((r, record)) => {
                render::write_record(
                    &mut out,
                    &org,
                    object,
                    r.seq,
                    record,
                    &projection,
                    &ctx.version,
                );
            }
            None => out.push_str("null"),
        }
    }
    out.push(']');
    drop(org);
    ctx.shared.stats.record_records(0, ids.len() as u64);
    Ok(raw_json_response(StatusCode::OK, out))
}
