//! Single-record calls: create, retrieve, update, delete, upsert by external id, and the
//! replication resources getUpdated / getDeleted.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value as Json, json};

use super::context::RequestContext;
use super::describe::{external_id_field, object_from_path};
use super::rest::{ApiResult, json_response, method_not_allowed, raw_json_response};
use crate::datetime;
use crate::error::ApiError;
use crate::org::{LookupError, ObjectIndex, Org, ParsedId, RecordRef, UpsertOutcome};
use crate::query::bind::{Projection, ProjectionItem};
use crate::query::render;
use axum::http::Method;

/// The most Ids getUpdated and getDeleted return.
const REPLICATION_ID_LIMIT: usize = 600_000;

/// UNABLE_TO_LOCK_ROW for a write the fault injector picked, naming the locked record when
/// the call names one (an insert has no Id yet, so its message names none).
pub fn lock_row_error(id: &str) -> ApiError {
    let message = if id.is_empty() {
        "unable to obtain exclusive access to this record".to_owned()
    } else {
        format!("unable to obtain exclusive access to this record or 1 records: {id}")
    };
    ApiError::bad_request("UNABLE_TO_LOCK_ROW", message)
}

/// `POST /sobjects/{Obj}`.
pub fn create(ctx: &RequestContext, name: &str) -> ApiResult {
    let body = ctx.json_object()?;
    if ctx.faults.locked.contains(0) {
        return Err(lock_row_error(""));
    }
    let mut org = ctx.shared.org_mut();
    let object = object_from_path(org.schema(), name)?;
    let created = ctx.begin(&mut org).create(object, &body)?;
    let id = created.id18(org.schema());
    drop(org);
    ctx.shared.stats.record_records(1, 0);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "id": id, "success": true, "errors": [] }),
    ))
}

/// `GET|PATCH|DELETE /sobjects/{Obj}/{id}`.
pub fn by_id(ctx: &RequestContext, name: &str, id: &str) -> ApiResult {
    let object = object_from_path(ctx.shared.org().schema(), name)?;
    // A segment that is not an Id is read as an external id field with no value.
    if ParsedId::parse(id).is_err() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {id}"),
        ));
    }
    let target = match ctx.shared.org().resolve_id(id) {
        Ok(r) if r.object == object => r,
        Ok(_) | Err(LookupError::NotFound | LookupError::Malformed) => {
            return Err(ApiError::not_found());
        }
    };
    match ctx.method {
        Method::GET => retrieve(ctx, target),
        Method::PATCH => update(ctx, target),
        Method::DELETE => delete(ctx, target),
        ref other => Err(method_not_allowed(other)),
    }
}

fn retrieve(ctx: &RequestContext, target: RecordRef) -> ApiResult {
    let org = ctx.shared.org();
    let record = org.get(target).ok_or_else(ApiError::not_found)?;
    if record.is_deleted() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ENTITY_IS_DELETED",
            "entity is deleted",
        ));
    }
    let projection = field_projection(&org, target.object, ctx.param("fields"))?;
    let mut out = String::with_capacity(1024);
    render::write_record(
        &mut out,
        &org,
        target.object,
        target.seq,
        record,
        &projection,
        &ctx.version,
    );
    drop(org);
    ctx.shared.stats.record_records(0, 1);
    Ok(raw_json_response(StatusCode::OK, out))
}

/// All fields, or the comma-separated `fields` a client asked for.
pub fn field_projection(
    org: &Org,
    object: ObjectIndex,
    fields: Option<&str>,
) -> Result<Projection, ApiError> {
    let def = org.schema().object(object);
    let items = match fields.filter(|f| !f.trim().is_empty()) {
        None => def
            .visible_fields()
            .map(|(i, f)| ProjectionItem::Field {
                name: f.name.clone(),
                field: i,
            })
            .collect(),
        Some(list) => list
            .split(',')
            .map(|name| {
                let name = name.trim();
                def.field_index(name)
                    .map(|i| ProjectionItem::Field {
                        name: def.fields[i].name.clone(),
                        field: i,
                    })
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "INVALID_FIELD",
                            format!("No such column '{name}' on sobject of type {}", def.name),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Projection { items })
}

fn update(ctx: &RequestContext, target: RecordRef) -> ApiResult {
    let body = ctx.json_object()?;
    let mut org = ctx.shared.org_mut();
    if ctx.faults.locked.contains(0) {
        return Err(lock_row_error(&target.id18(org.schema())));
    }
    ctx.begin(&mut org).update(target, &body)?;
    drop(org);
    ctx.shared.stats.record_records(1, 0);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn delete(ctx: &RequestContext, target: RecordRef) -> ApiResult {
    let mut org = ctx.shared.org_mut();
    if ctx.faults.locked.contains(0) {
        return Err(lock_row_error(&target.id18(org.schema())));
    }
    ctx.begin(&mut org).delete(target)?;
    drop(org);
    ctx.shared.stats.record_records(1, 0);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET|PATCH|DELETE /sobjects/{Obj}/{ExtField}/{value}`.
pub fn by_external_id(
    ctx: &RequestContext,
    name: &str,
    field_name: &str,
    value: &str,
) -> ApiResult {
    let (object, key_field) = external_id_field(ctx, name, field_name)?;
    if ctx.method == Method::PATCH || ctx.method == Method::POST {
        return upsert(ctx, object, key_field, value);
    }
    let target = {
        let org = ctx.shared.org();
        let def = org.schema().object(object);
        if key_field == def.system.id {
            match org.resolve_id(value) {
                Ok(r) if r.object == object => r,
                _ => return Err(ApiError::not_found()),
            }
        } else {
            match org.table(object).lookup_key(key_field, value) {
                [seq] => RecordRef { object, seq: *seq },
                [] => return Err(ApiError::not_found()),
                several => {
                    let urls: Vec<Json> = several
                        .iter()
                        .map(|seq| json!(record_url(&org, ctx, RecordRef { object, seq: *seq })))
                        .collect();
                    return Ok(json_response(
                        StatusCode::MULTIPLE_CHOICES,
                        &Json::Array(urls),
                    ));
                }
            }
        }
    };
    match ctx.method {
        Method::GET => retrieve(ctx, target),
        Method::DELETE => delete(ctx, target),
        ref other => Err(method_not_allowed(other)),
    }
}

fn record_url(org: &Org, ctx: &RequestContext, record: RecordRef) -> String {
    let object = &org.schema().object(record.object).name;
    format!(
        "{}/sobjects/{object}/{}",
        ctx.data_prefix(),
        record.id18(org.schema())
    )
}

fn upsert(ctx: &RequestContext, object: ObjectIndex, key_field: usize, value: &str) -> ApiResult {
    let body = ctx.json_object()?;
    let mut org = ctx.shared.org_mut();
    if ctx.faults.locked.contains(0) {
        return Err(lock_row_error(""));
    }
    let outcome = ctx
        .begin(&mut org)
        .upsert(object, key_field, value, &body)?;
    let modern = ctx.major_version() >= 46;
    let response = match outcome {
        UpsertOutcome::Created(r) => {
            let mut body = json!({ "id": r.id18(org.schema()), "success": true, "errors": [] });
            if modern {
                body["created"] = json!(true);
            }
            json_response(StatusCode::CREATED, &body)
        }
        UpsertOutcome::Updated(r) if modern => json_response(
            StatusCode::OK,
            &json!({ "id": r.id18(org.schema()), "success": true, "errors": [], "created": false }),
        ),
        UpsertOutcome::Updated(_) => StatusCode::NO_CONTENT.into_response(),
        UpsertOutcome::Multiple(records) => {
            let urls: Vec<Json> = records
                .iter()
                .map(|r| json!(record_url(&org, ctx, *r)))
                .collect();
            json_response(StatusCode::MULTIPLE_CHOICES, &Json::Array(urls))
        }
    };
    drop(org);
    ctx.shared.stats.record_records(1, 0);
    Ok(response)
}

/// Parses and checks the `start`/`end` window of getUpdated/getDeleted: both required,
/// truncated to the minute, start before end, not before `oldest_days` ago.
fn replication_window(ctx: &RequestContext, oldest_days: i64) -> Result<(i64, i64), ApiError> {
    let parse = |name: &str| {
        let raw = ctx.param(name).ok_or_else(|| {
            ApiError::bad_request("MISSING_ARGUMENT", format!("{name} parameter is required"))
        })?;
        datetime::parse_datetime(raw).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_REPLICATION_DATE",
                format!("{name} is not a valid date: {raw}"),
            )
        })
    };
    let minute = 60_000;
    let start = parse("start")?.div_euclid(minute) * minute;
    let end = parse("end")?.div_euclid(minute) * minute;
    let now = datetime::now_millis();
    if start >= end {
        return Err(ApiError::bad_request(
            "INVALID_REPLICATION_DATE",
            "start date must be before end date",
        ));
    }
    if start < now - oldest_days * 86_400_000 {
        return Err(ApiError::bad_request(
            "INVALID_REPLICATION_DATE",
            format!("start date cannot be more than {oldest_days} days ago"),
        ));
    }
    // A window reaching into the future covers changes up to now.
    Ok((start, end.min(now + 1)))
}

/// `GET /sobjects/{Obj}/updated/?start=&end=`.
pub fn get_updated(ctx: &RequestContext, name: &str) -> ApiResult {
    let (start, end) = replication_window(ctx, 30)?;
    let org = ctx.shared.org();
    let object = object_from_path(org.schema(), name)?;
    let table = org.table(object);
    let ids: Vec<Json> = table
        .by_modstamp(start, end - 1)
        .filter(|(_, seq)| table.get(*seq).is_some_and(|r| !r.is_deleted()))
        .map(|(_, seq)| json!(RecordRef { object, seq }.id18(org.schema())))
        .collect();
    if ids.len() > REPLICATION_ID_LIMIT {
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            "too many ids: narrow the window",
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "ids": ids, "latestDateCovered": datetime::format_datetime(end) }),
    ))
}

/// `GET /sobjects/{Obj}/deleted/?start=&end=`.
pub fn get_deleted(ctx: &RequestContext, name: &str) -> ApiResult {
    let (start, end) = replication_window(ctx, 15)?;
    let org = ctx.shared.org();
    let object = object_from_path(org.schema(), name)?;
    let table = org.table(object);
    let mut deleted: Vec<(i64, u64)> = table
        .iter()
        .filter_map(|(seq, r)| {
            r.deleted_at
                .filter(|at| (start..end).contains(at))
                .map(|at| (at, seq))
        })
        .collect();
    deleted.sort_unstable();
    if deleted.len() > REPLICATION_ID_LIMIT {
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            "too many ids: narrow the window",
        ));
    }
    let records: Vec<Json> = deleted
        .iter()
        .map(|(at, seq)| {
            json!({
                "id": RecordRef { object, seq: *seq }.id18(org.schema()),
                "deletedDate": datetime::format_datetime(*at),
            })
        })
        .collect();
    let earliest = datetime::now_millis() - 15 * 86_400_000;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "deletedRecords": records,
            "earliestDateAvailable": datetime::format_datetime(earliest.div_euclid(60_000) * 60_000),
            "latestDateCovered": datetime::format_datetime(end),
        }),
    ))
}
