//! The REST API on external objects: query and queryMore, describe, and reads by External
//! ID, answered by callouts; create, update and delete when the source is writable.
//!
//! [`try_route`] runs before the org's own routing and answers only calls that concern an
//! external object (or an external object's query cursor); everything else falls through.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value as Json, json};

use super::fetch::{self, Batch};
use super::objects::ExternalObject;
use super::translate::{self, Plan};
use super::write;
use crate::api::context::RequestContext;
use crate::api::describe::{ObjectHead, describe_body, field_json, head_entry};
use crate::api::rest::{ApiResult, json_response, method_not_allowed};
use crate::error::ApiError;
use crate::org::ObjectFlags;
use crate::soql;

/// Answers a data API call when it concerns an external object; `None` otherwise.
pub async fn try_route(ctx: &RequestContext, path: &[&str]) -> Option<ApiResult> {
    if ctx.shared.connect().has_no_objects() {
        return None;
    }
    let m = &ctx.method;
    match path {
        ["query" | "queryAll"] if m == Method::GET => {
            let text = ctx.param("q")?;
            let query = soql::parse(text).ok()?;
            let object = ctx.shared.connect().object(&query.from.text)?;
            ctx.shared.stats.record_call("query", None);
            Some(run_query(ctx, object, &query).await)
        }
        ["query" | "queryAll", locator] if m == Method::GET => {
            let (locator, offset) = locator.rsplit_once('-')?;
            if !ctx.shared.connect().has_cursor(locator) {
                return None;
            }
            ctx.shared.stats.record_call("queryMore", None);
            Some(query_more(ctx, locator, offset).await)
        }
        ["sobjects", name, rest @ ..] => {
            let object = ctx.shared.connect().object(name)?;
            ctx.shared
                .stats
                .record_call(&format!("externalObject{}", verb(m)), Some(name));
            Some(sobject(ctx, &object, rest).await)
        }
        _ => None,
    }
}

/// The describeGlobal entries of the external objects.
pub fn global_entries(ctx: &RequestContext) -> Vec<Json> {
    let prefix = ctx.data_prefix();
    ctx.shared
        .connect()
        .objects()
        .iter()
        .map(|o| head_entry(&head(o), &prefix))
        .collect()
}

/// An external object's describe head: queryable, custom, writable only when its source is.
fn head(object: &ExternalObject) -> ObjectHead<'_> {
    ObjectHead {
        name: &object.name,
        label: &object.label,
        label_plural: &object.label,
        key_prefix: &object.key_prefix,
        custom: true,
        flags: ObjectFlags {
            createable: object.writable,
            updateable: object.writable,
            deletable: object.writable,
            undeletable: false,
            queryable: true,
            retrieveable: true,
            replicateable: false,
            searchable: object.searchable,
            triggerable: false,
            mergeable: false,
            layoutable: true,
            feed_enabled: false,
            mru_enabled: false,
        },
    }
}

/// `/sobjects/{X__x}/…`.
async fn sobject(ctx: &RequestContext, object: &ExternalObject, rest: &[&str]) -> ApiResult {
    let m = &ctx.method;
    match rest {
        [] if m == Method::GET => Ok(json_response(
            StatusCode::OK,
            &json!({
                "objectDescribe": head_entry(&head(object), &ctx.data_prefix()),
                "recentItems": [],
            }),
        )),
        ["describe"] if m == Method::GET => {
            let fields = object.fields.iter().map(|f| field_json(&f.def)).collect();
            Ok(json_response(
                StatusCode::OK,
                &describe_body(ctx, &head(object), fields, Vec::new()),
            ))
        }
        [external_id] | ["ExternalId", external_id] if m == Method::GET => {
            read_one(ctx, object, external_id).await
        }
        [] if m == Method::POST => create(ctx, object).await,
        [external_id] | ["ExternalId", external_id] if m == Method::PATCH => {
            update(ctx, object, external_id).await
        }
        [external_id] | ["ExternalId", external_id] if m == Method::DELETE => {
            delete(ctx, object, external_id).await
        }
        [] | [_] | [_, _] => Err(method_not_allowed(m)),
        _ => Err(ApiError::not_found()),
    }
}

/// `POST /sobjects/{X__x}`: an OData `POST`; the answer's `id` is the new External ID.
async fn create(ctx: &RequestContext, object: &ExternalObject) -> ApiResult {
    let (object, source) = snapshot(ctx, &object.name)?;
    write::check_writable(&object, &source)?;
    let body = write::entity_body(&object, &ctx.json_object()?, true)?;
    let mut id = write::create(&ctx.shared, &object, &source, body).await?;
    if object.id_mapping {
        id = ctx.shared.connect().id_for(&object, &id);
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "id": id, "success": true, "errors": [] }),
    ))
}

/// `PATCH /sobjects/{X__x}/{ExternalId}`: an OData `PATCH` of the fields given.
async fn update(ctx: &RequestContext, object: &ExternalObject, external_id: &str) -> ApiResult {
    let (object, source) = snapshot(ctx, &object.name)?;
    write::check_writable(&object, &source)?;
    let body = write::entity_body(&object, &ctx.json_object()?, false)?;
    let external_id = &path_external_id(ctx, &object, external_id);
    write::update(&ctx.shared, &object, &source, external_id, body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /sobjects/{X__x}/{ExternalId}`: an OData `DELETE`.
async fn delete(ctx: &RequestContext, object: &ExternalObject, external_id: &str) -> ApiResult {
    let (object, source) = snapshot(ctx, &object.name)?;
    write::check_writable(&object, &source)?;
    let external_id = &path_external_id(ctx, &object, external_id);
    write::delete(&ctx.shared, &object, &source, external_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /sobjects/{X__x}/{ExternalId}` (with an optional `fields` list).
async fn read_one(ctx: &RequestContext, object: &ExternalObject, external_id: &str) -> ApiResult {
    let (object_arc, source) = snapshot(ctx, &object.name)?;
    let field_names: Vec<String> = match ctx.param("fields") {
        Some(list) => list.split(',').map(|f| f.trim().to_owned()).collect(),
        None => object.fields.iter().map(|f| f.def.name.clone()).collect(),
    };
    let text = format!("SELECT {} FROM {}", field_names.join(", "), object.name);
    let query = soql::parse(&text)
        .map_err(|e| ApiError::bad_request("MALFORMED_QUERY", e.salesforce_message(&text)))?;
    let plan = translate::plan(&object_arc, &query, &|id| {
        ctx.shared.connect().external_id_of(&object_arc, id)
    })?;
    let external_id = &path_external_id(ctx, &object_arc, external_id);
    match fetch::by_external_id(
        &ctx.shared,
        &object_arc,
        &source,
        &plan,
        external_id,
        &ctx.version,
    )
    .await?
    {
        Some(record) => Ok(json_response(StatusCode::OK, &record)),
        None => Err(ApiError::not_found()),
    }
}

/// The External ID a record path names: under ID mapping the path may hold the record's
/// Salesforce Id instead.
fn path_external_id(ctx: &RequestContext, object: &ExternalObject, segment: &str) -> String {
    object
        .id_mapping
        .then(|| ctx.shared.connect().external_id_of(object, segment))
        .flatten()
        .unwrap_or_else(|| segment.to_owned())
}

/// The object and its source's settings, copied out of the store.
fn snapshot(
    ctx: &RequestContext,
    name: &str,
) -> Result<(Arc<ExternalObject>, Arc<super::source::DataSource>), ApiError> {
    let store = ctx.shared.connect();
    let object = store.object(name).ok_or_else(ApiError::not_found)?;
    let source = store.source(&object.source).ok_or_else(|| {
        ApiError::bad_request(
            "EXTERNAL_OBJECT_EXCEPTION",
            format!(
                "external object {}: its external data source {} no longer exists",
                object.name, object.source
            ),
        )
    })?;
    Ok((object, source))
}

/// A query on an external object: `COUNT()` or the first batch.
async fn run_query(
    ctx: &RequestContext,
    object: Arc<ExternalObject>,
    query: &soql::Query,
) -> ApiResult {
    let (object, source) = snapshot(ctx, &object.name)?;
    let plan: Plan = translate::plan(&object, query, &|id| {
        ctx.shared.connect().external_id_of(&object, id)
    })?;
    if plan.count_only {
        let total = fetch::count(&ctx.shared, &object, &source, &plan).await?;
        return Ok(json_response(
            StatusCode::OK,
            &json!({ "totalSize": total, "done": true, "records": [] }),
        ));
    }
    let batch = fetch::first(&ctx.shared, object, source, Arc::new(plan), &ctx.version).await?;
    Ok(answer(ctx, batch))
}

/// A `nextRecordsUrl` of an external object's query: the next page's callout.
async fn query_more(ctx: &RequestContext, locator: &str, offset: &str) -> ApiResult {
    let invalid = || ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    let cursor = ctx
        .shared
        .connect()
        .take_cursor(locator)
        .ok_or_else(invalid)?;
    if offset.parse::<u64>().ok() != Some(cursor.fetched) {
        ctx.shared.connect().keep_cursor(locator.to_owned(), cursor);
        return Err(invalid());
    }
    let batch = fetch::next_batch(&ctx.shared, cursor).await?;
    Ok(answer(ctx, batch))
}

/// A batch as the REST query resource answers it, keeping its cursor when more remains.
fn answer(ctx: &RequestContext, batch: Batch) -> axum::response::Response {
    let mut body = Map::new();
    body.insert("totalSize".to_owned(), json!(batch.total_size));
    body.insert("done".to_owned(), json!(batch.more.is_none()));
    if let Some(cursor) = batch.more {
        let fetched = cursor.fetched;
        let locator = ctx.shared.connect().open_cursor(cursor);
        body.insert(
            "nextRecordsUrl".to_owned(),
            json!(format!("{}/query/{locator}-{fetched}", ctx.data_prefix())),
        );
    }
    body.insert("records".to_owned(), Json::Array(batch.records));
    json_response(StatusCode::OK, &Json::Object(body))
}

fn verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "Get",
        Method::POST => "Post",
        Method::PATCH => "Patch",
        Method::DELETE => "Delete",
        _ => "Other",
    }
}
