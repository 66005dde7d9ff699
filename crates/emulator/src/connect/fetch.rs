//! The pages of a query on an external object: the first batch, each queryMore batch (a new
//! callout each, as on Salesforce), `COUNT()`, and the read of one record by External ID.
//!
//! One REST batch is one OData page: with client-driven paging the next batch asks
//! `$skip` past the rows already returned; with server-driven paging it follows the
//! producer's `@odata.nextLink` and refuses pages over 2,000 rows. A query's pages together
//! may not pass 16 MB.

use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{Map, Value as Json};

use super::callout::{self, Answer, CalloutRecord, MAX_RESULT_BYTES};
use super::objects::ExternalObject;
use super::source::{DataSource, KeyRead, Pagination};
use super::translate::{Page, Plan, path_segment, query_string};
use crate::error::ApiError;
use crate::state::Shared;

/// The most rows a server-driven page may hold.
pub const MAX_SERVER_PAGE_ROWS: usize = 2000;
/// The media type asked for entity data.
const JSON_MEDIA: &str = "application/json;odata.metadata=minimal";

/// Where the next page of a query comes from.
#[derive(Debug, Clone)]
pub enum Next {
    /// Client-driven: `$skip` past the rows returned.
    Skip,
    /// Server-driven: the producer's next link.
    Link(String),
}

/// An open query on an external object.
#[derive(Debug, Clone)]
pub struct ExternalCursor {
    pub object: Arc<ExternalObject>,
    pub source: Arc<DataSource>,
    pub plan: Arc<Plan>,
    pub next: Next,
    /// Rows returned so far.
    pub fetched: u64,
    /// Response bytes read so far.
    pub bytes: u64,
    /// `@odata.count` of the first page, when asked for.
    pub count: Option<u64>,
    pub api_version: String,
}

/// One REST batch.
#[derive(Debug)]
pub struct Batch {
    pub records: Vec<Json>,
    pub total_size: u64,
    /// The cursor to continue with, when more rows remain.
    pub more: Option<ExternalCursor>,
}

/// One OData page as read.
struct ODataPage {
    entities: Vec<Map<String, Json>>,
    count: Option<u64>,
    next_link: Option<String>,
    bytes: usize,
}

/// Runs a query's first page.
pub async fn first(
    shared: &Shared,
    object: Arc<ExternalObject>,
    source: Arc<DataSource>,
    plan: Arc<Plan>,
    api_version: &str,
) -> Result<Batch, ApiError> {
    let cursor = ExternalCursor {
        object,
        source,
        plan,
        next: Next::Skip,
        fetched: 0,
        bytes: 0,
        count: None,
        api_version: api_version.to_owned(),
    };
    next_batch(shared, cursor).await
}

/// Runs the page a cursor points at.
pub async fn next_batch(shared: &Shared, mut cursor: ExternalCursor) -> Result<Batch, ApiError> {
    let source = Arc::clone(&cursor.source);
    let (url, page) = match &cursor.next {
        Next::Link(link) => (link.clone(), None),
        Next::Skip => {
            let page = cursor.plan.page_after(&source, cursor.fetched);
            (cursor.plan.url(&cursor.object, &source, page), Some(page))
        }
    };
    let odata = fetch_page(shared, &source, &url).await?;
    cursor.bytes += odata.bytes as u64;
    if cursor.bytes > MAX_RESULT_BYTES {
        return Err(ApiError::bad_request(
            "EXTERNAL_OBJECT_EXCEPTION",
            format!(
                "External data source {}: The OData query result was too large, so the external data didn't load. (a query's result is limited to 16 MB)",
                source.name
            ),
        ));
    }
    if source.pagination == Pagination::Server && odata.entities.len() > MAX_SERVER_PAGE_ROWS {
        return Err(ApiError::bad_request(
            "EXTERNAL_OBJECT_EXCEPTION",
            format!(
                "External data source {}: a server-driven page held {} rows; Salesforce takes at most {MAX_SERVER_PAGE_ROWS}",
                source.name,
                odata.entities.len()
            ),
        ));
    }
    if cursor.fetched == 0 {
        cursor.count = odata.count;
    }
    let remaining = cursor
        .plan
        .limit
        .map_or(u64::MAX, |l| l.saturating_sub(cursor.fetched));
    let take = usize::try_from(remaining)
        .unwrap_or(usize::MAX)
        .min(odata.entities.len());
    let ids = mapped_ids(shared, &cursor.object, &odata.entities[..take]);
    let records: Vec<Json> = odata.entities[..take]
        .iter()
        .zip(ids)
        .map(|(e, id)| {
            record(
                &cursor.object,
                &source,
                &cursor.plan,
                e,
                id.as_deref(),
                &cursor.api_version,
            )
        })
        .collect();
    let received = odata.entities.len() as u64;
    cursor.fetched += take as u64;
    let limit_left = cursor.plan.limit.is_none_or(|l| cursor.fetched < l);
    let count_left = cursor
        .count
        .is_none_or(|c| cursor.plan.offset + cursor.fetched < c);
    let next = match source.pagination {
        Pagination::Server => odata.next_link.map(|link| Next::Link(resolve(&url, &link))),
        Pagination::Client => {
            let full = page
                .and_then(|p: Page| p.top)
                .is_some_and(|top| received >= top);
            (received > 0 && (full || odata.next_link.is_some())).then_some(Next::Skip)
        }
    };
    let total_size = match cursor.count {
        Some(count) => {
            let after_offset = count.saturating_sub(cursor.plan.offset);
            cursor
                .plan
                .limit
                .map_or(after_offset, |l| after_offset.min(l))
        }
        None => cursor.fetched,
    };
    let more = match next {
        Some(next) if limit_left && count_left => {
            cursor.next = next;
            Some(cursor)
        }
        _ => None,
    };
    Ok(Batch {
        records,
        total_size,
        more,
    })
}

/// `SELECT COUNT()`: the `@odata.count` of a `$top=0` request, within the LIMIT.
pub async fn count(
    shared: &Shared,
    object: &ExternalObject,
    source: &DataSource,
    plan: &Plan,
) -> Result<u64, ApiError> {
    if !source.inline_count_enabled {
        return Err(ApiError::bad_request(
            "EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION",
            format!(
                "COUNT() on external object {} needs Request Row Counts, which is off for external data source {}",
                object.name, source.name
            ),
        ));
    }
    let url = plan.count_url(object, source);
    let page = fetch_page(shared, source, &url).await?;
    let count = page.count.ok_or_else(|| {
        ApiError::bad_request(
            "EXTERNAL_OBJECT_EXCEPTION",
            format!(
                "External data source {}: the answer to $count=true carried no @odata.count",
                source.name
            ),
        )
    })?;
    let count = count.saturating_sub(plan.offset);
    Ok(plan.limit.map_or(count, |l| count.min(l)))
}

/// One record by External ID, with the fields of `plan`; `None` when there is none.
pub async fn by_external_id(
    shared: &Shared,
    object: &ExternalObject,
    source: &DataSource,
    plan: &Plan,
    external_id: &str,
    api_version: &str,
) -> Result<Option<Json>, ApiError> {
    let invalid = |message: String| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message);
    let entity = match source.key_read {
        KeyRead::Filter => {
            let filter = object.key_filter(external_id).map_err(invalid)?;
            let options = vec![
                ("$select", plan.select.join(",")),
                ("$filter", filter),
                ("$top", "1".to_owned()),
            ];
            let url = format!(
                "{}{}?{}",
                source.service_root(),
                path_segment(&object.entity_set),
                query_string(&options)
            );
            fetch_page(shared, source, &url)
                .await?
                .entities
                .into_iter()
                .next()
        }
        KeyRead::KeyPredicate => {
            let predicate = object.key_predicate(external_id).map_err(invalid)?;
            let url = format!(
                "{}{}({})?{}",
                source.service_root(),
                path_segment(&object.entity_set),
                path_segment(&predicate),
                query_string(&[("$select", plan.select.join(","))])
            );
            match fetch(shared, source, &url, JSON_MEDIA, Shape::Entity).await {
                Ok(page) => page.entities.into_iter().next(),
                Err(Failure::NotFound) => None,
                Err(Failure::Error(e)) => return Err(e),
            }
        }
    };
    Ok(entity.map(|e| {
        let id = mapped_ids(shared, object, std::slice::from_ref(&e))
            .pop()
            .flatten();
        record(object, source, plan, &e, id.as_deref(), api_version)
    }))
}

/// The Salesforce Ids of entities under ID mapping (minted on first sight), one per entity.
fn mapped_ids(
    shared: &Shared,
    object: &ExternalObject,
    entities: &[Map<String, Json>],
) -> Vec<Option<String>> {
    if !object.id_mapping {
        return vec![None; entities.len()];
    }
    let mut store = shared.connect();
    entities
        .iter()
        .map(|e| object.external_id(e).map(|x| store.id_for(object, &x)))
        .collect()
}

/// A query record: `attributes` (its URL by Id under ID mapping, else by External ID), then
/// the fields asked for.
fn record(
    object: &ExternalObject,
    source: &DataSource,
    plan: &Plan,
    entity: &Map<String, Json>,
    id: Option<&str>,
    api_version: &str,
) -> Json {
    let external_id = object.external_id(entity).unwrap_or_default();
    let entity_url = object
        .key_predicate(&external_id)
        .map(|p| {
            format!(
                "{}{}({})",
                source.service_root(),
                path_segment(&object.entity_set),
                path_segment(&p)
            )
        })
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert(
        "attributes".to_owned(),
        serde_json::json!({
            "type": object.name,
            "url": format!(
                "/services/data/v{api_version}/sobjects/{}/{}",
                object.name,
                id.map_or_else(|| path_segment(&external_id), str::to_owned)
            ),
        }),
    );
    out.extend(object.record_fields(entity, &plan.fields, &entity_url, id));
    Json::Object(out)
}

/// A next link relative to the request it came in.
fn resolve(base: &str, link: &str) -> String {
    reqwest::Url::parse(base)
        .and_then(|b| b.join(link))
        .map_or_else(|_| link.to_owned(), |u| u.to_string())
}

/// What a response body holds.
#[derive(Clone, Copy)]
enum Shape {
    /// `{"value": [...], "@odata.count"?, "@odata.nextLink"?}`.
    Collection,
    /// One entity.
    Entity,
}

enum Failure {
    NotFound,
    Error(ApiError),
}

async fn fetch_page(
    shared: &Shared,
    source: &DataSource,
    url: &str,
) -> Result<ODataPage, ApiError> {
    match fetch(shared, source, url, JSON_MEDIA, Shape::Collection).await {
        Ok(page) => Ok(page),
        Err(Failure::NotFound) => Err(ApiError::bad_request(
            "EXTERNAL_OBJECT_EXCEPTION",
            format!(
                "External data source {}: Error received from the external system: 404: the entity set was not found",
                source.name
            ),
        )),
        Err(Failure::Error(e)) => Err(e),
    }
}

/// One logged callout whose answer is read as OData JSON.
async fn fetch(
    shared: &Shared,
    source: &DataSource,
    url: &str,
    accept: &'static str,
    shape: Shape,
) -> Result<ODataPage, Failure> {
    let url = &callout::as_sent(url);
    let started = Instant::now();
    let result = callout::get(source, url, accept).await;
    let mut record = CalloutRecord {
        method: "GET".to_owned(),
        url: url.to_owned(),
        status: None,
        rows: None,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error: None,
    };
    let outcome = match result {
        Err(error) => Err(Failure::Error(callout::error_for(&source.name, &error))),
        Ok(answer) => {
            record.status = Some(answer.status.as_u16());
            read_page(&source.name, &answer, shape)
        }
    };
    match &outcome {
        Ok(page) => record.rows = Some(page.entities.len()),
        Err(Failure::Error(error)) => record.error = Some(error.message.clone()),
        Err(Failure::NotFound) => record.error = Some("not found".to_owned()),
    }
    shared.connect().log(&source.name, record);
    outcome
}

fn read_page(source: &str, answer: &Answer, shape: Shape) -> Result<ODataPage, Failure> {
    if answer.status == StatusCode::NOT_FOUND && matches!(shape, Shape::Entity) {
        return Err(Failure::NotFound);
    }
    if !answer.status.is_success() {
        return Err(Failure::Error(callout::error_for_status(source, answer)));
    }
    let bad = |what: String| {
        Failure::Error(ApiError::bad_request(
            "EXTERNAL_OBJECT_EXCEPTION",
            format!(
                "External data source {source}: the external system's answer is not OData JSON: {what}"
            ),
        ))
    };
    let body: Json = serde_json::from_slice(&answer.body).map_err(|e| bad(e.to_string()))?;
    let Json::Object(mut body) = body else {
        return Err(bad("not a JSON object".to_owned()));
    };
    let entities = match shape {
        Shape::Entity => vec![body],
        Shape::Collection => {
            let count = body.get("@odata.count").and_then(|c| {
                c.as_u64()
                    .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
            });
            let next_link = body
                .get("@odata.nextLink")
                .and_then(Json::as_str)
                .map(str::to_owned);
            let Some(Json::Array(values)) = body.remove("value") else {
                return Err(bad("no \"value\" array".to_owned()));
            };
            let entities = values
                .into_iter()
                .map(|v| match v {
                    Json::Object(map) => Ok(map),
                    _ => Err(bad("an element of \"value\" is not an object".to_owned())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(ODataPage {
                entities,
                count,
                next_link,
                bytes: answer.body.len(),
            });
        }
    };
    Ok(ODataPage {
        entities,
        count: None,
        next_link: None,
        bytes: answer.body.len(),
    })
}

/// `$metadata` for Validate and Sync: the logged callout's body as text.
pub async fn metadata(shared: &Shared, source: &DataSource) -> Result<String, String> {
    let url = callout::as_sent(&format!("{}$metadata", source.service_root()));
    let started = Instant::now();
    let result = callout::get(source, &url, "application/xml").await;
    let mut record = CalloutRecord {
        method: "GET".to_owned(),
        url,
        status: None,
        rows: None,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error: None,
    };
    let outcome = match result {
        Err(error) => Err(callout::error_for(&source.name, &error).message),
        Ok(answer) => {
            record.status = Some(answer.status.as_u16());
            if answer.status.is_success() {
                String::from_utf8(answer.body).map_err(|_| {
                    format!(
                        "External data source {}: $metadata is not UTF-8 text",
                        source.name
                    )
                })
            } else {
                Err(callout::error_for_status(&source.name, &answer).message)
            }
        }
    };
    if let Err(message) = &outcome {
        record.error = Some(message.clone());
    }
    shared.connect().log(&source.name, record);
    outcome
}
