//! The `/services/data` entry point: admission, then dispatch by path.
//!
//! Every data call passes the same gates in the order a client would meet them on a real
//! org: added latency, edge faults (dropped connection, 503, scripted request limit), the
//! session check (401), the daily allocation (403), the faults of its work (locks, a lost
//! answer; see [`super::injection`]), then the resource itself. The answer always carries
//! `Sforce-Limit-Info`, and is pretty-printed when the client sent `X-PrettyPrint: 1`.
//! Paths are matched here rather than by the router so that every unknown path gets
//! Salesforce's 404 body and names are case-insensitive as Salesforce's are.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::context::{ConnectionInfo, RequestContext, base_url, bearer_token};
use super::{bulk, collections, describe, injection, limits, query, sobjects};
use crate::config::LATEST_API_VERSION;
use crate::error::{ApiError, JSON_CONTENT_TYPE};
use crate::faults::FaultConfig;
use crate::faults::script::CallKind;
use crate::server::DropConnection;
use crate::state::Shared;

/// Salesforce's header reporting API usage on every response.
pub const LIMIT_INFO_HEADER: &str = "sforce-limit-info";
/// The oldest API version served.
const OLDEST_MAJOR_VERSION: u32 = 20;

/// A handler's answer.
pub type ApiResult = Result<Response, ApiError>;

/// A JSON response with Salesforce's content type.
pub fn json_response(status: StatusCode, body: &Json) -> Response {
    raw_json_response(status, body.to_string())
}

/// A response whose body is already JSON text.
pub fn raw_json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

/// `GET /services/data/`: the versions list. Needs no session, as on Salesforce.
pub async fn versions(headers: HeaderMap) -> Response {
    let latest: u32 = LATEST_API_VERSION
        .split('.')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(66);
    let seasons = ["Winter", "Spring", "Summer"];
    let list: Vec<Json> = (OLDEST_MAJOR_VERSION..=latest)
        .map(|major| {
            let step = major - OLDEST_MAJOR_VERSION;
            let year = 11 + step / 3;
            json!({
                "label": format!("{} '{year:02}", seasons[(step % 3) as usize]),
                "url": format!("/services/data/v{major}.0"),
                "version": format!("{major}.0"),
            })
        })
        .collect();
    pretty_if_asked(&headers, json_response(StatusCode::OK, &Json::Array(list))).await
}

/// Any other `/services/data/...` call.
pub async fn dispatch(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<ConnectionInfo>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Salesforce carries a call out whatever becomes of its client (a client that times
    // out does not stop a create): the call runs on its own task, which a closed
    // connection does not cancel.
    let call = tokio::spawn(handle(shared, connection, method, uri, headers, body));
    call.await.unwrap_or_else(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "the emulator failed while handling the call",
        )
        .into_response()
    })
}

/// One data API call, from its arrival to its answer.
async fn handle(
    shared: Arc<Shared>,
    connection: ConnectionInfo,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let faults = shared.faults();
    let latency = faults.draw_latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // The raw path, not a decoded one: an external id value may hold `%2F`.
    let path = uri
        .path()
        .strip_prefix("/services/data/")
        .unwrap_or_default();
    let call = injection::call_kind(&method, path, &body);
    let edge = injection::edge_response(injection::edge_fault(&shared, &faults, &call))
        .or_else(|| injection::unknown_exception(&faults, &call, &body));
    let response = match edge {
        Some(refused) => refused,
        None => {
            let request = Incoming {
                path,
                base_url: base_url(&shared, &headers, connection),
                query: uri.query(),
                method,
                headers: headers.clone(),
                body,
            };
            let routed = admit_and_route(&shared, request, &faults, call).await;
            let mut response = routed.response;
            let drawn_loss = !routed.lose_answer && call.write && faults.draw_lost_response();
            if drawn_loss {
                shared.stats.record_fault();
            }
            if routed.lose_answer || drawn_loss {
                // Done, but the client never hears so.
                response.extensions_mut().insert(DropConnection);
            }
            response
        }
    };
    let as_is = response.extensions().get::<DropConnection>().is_some()
        || response
            .extensions()
            .get::<injection::FromProxy>()
            .is_some();
    if as_is {
        return response;
    }
    let mut response = pretty_if_asked(&headers, response).await;
    if let Ok(value) = HeaderValue::from_str(&shared.usage.header_value()) {
        response.headers_mut().insert(LIMIT_INFO_HEADER, value);
    }
    response
}

/// A data API request as it arrived.
struct Incoming<'a> {
    /// The path after `/services/data/`, still percent-encoded.
    path: &'a str,
    base_url: String,
    query: Option<&'a str>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
}

/// An admitted call's answer, and whether the answer is to be lost.
struct Routed {
    response: Response,
    lose_answer: bool,
}

impl From<ApiError> for Routed {
    fn from(error: ApiError) -> Self {
        Self {
            response: error.into_response(),
            lose_answer: false,
        }
    }
}

/// Admits a call (version, session, allocation), chooses the faults of its work, then
/// routes it.
async fn admit_and_route(
    shared: &Arc<Shared>,
    request: Incoming<'_>,
    faults: &FaultConfig,
    call: CallKind,
) -> Routed {
    let Incoming {
        path: rest,
        base_url,
        query,
        method,
        headers,
        body,
    } = request;
    let mut segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    if segments.last().is_some_and(String::is_empty) {
        segments.pop();
    }
    let Some(version) = segments.first().and_then(|s| parse_version(s)) else {
        return ApiError::not_found().into();
    };
    let Some(session) = bearer_token(&headers).and_then(|token| shared.sessions().check(token))
    else {
        return ApiError::invalid_session().into();
    };
    if !shared.usage.try_take() {
        return injection::request_limit_exceeded().into();
    }
    let work = injection::work_faults(shared, faults, &call);
    if let Some(refused) = injection::edge_response(work.edge) {
        return Routed {
            response: refused,
            lose_answer: false,
        };
    }
    if let Some(delay) = work.commit_delay {
        // A long transaction: its stamp is taken (`work.call.stamp`), its records appear
        // after the wait. The org's lock is not held meanwhile, so other writes go on.
        tokio::time::sleep(delay).await;
    }
    let params: HashMap<String, String> = query
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let ctx = RequestContext {
        shared: Arc::clone(shared),
        method,
        version,
        base_url,
        user: session.user,
        headers,
        params,
        body,
        faults: work.call,
    };
    let path: Vec<&str> = segments[1..].iter().map(String::as_str).collect();
    // External objects are answered by callouts, so before the org's (synchronous) routes.
    let answer = match crate::connect::api::try_route(&ctx, &path).await {
        Some(answer) => answer,
        None => route(&ctx, &path),
    };
    Routed {
        response: answer.unwrap_or_else(IntoResponse::into_response),
        lose_answer: work.lose_answer,
    }
}

fn route(ctx: &RequestContext, path: &[&str]) -> ApiResult {
    let stats = &ctx.shared.stats;
    let m = &ctx.method;
    match path {
        [] if m == Method::GET => {
            stats.record_call("resources", None);
            Ok(resources(ctx))
        }
        ["sobjects"] if m == Method::GET => {
            stats.record_call("describeGlobal", None);
            describe::describe_global(ctx)
        }
        ["sobjects", object] if m == Method::POST && is_push_topic(object) => {
            stats.record_call("create", Some(object));
            crate::cometd::push_topic::create(ctx, object)
        }
        ["sobjects", object, id] if is_push_topic(object) && !is_object_resource(id) => {
            stats.record_call(&format!("sobject{}", verb(m)), Some(object));
            crate::cometd::push_topic::by_id(ctx, object, id)
        }
        ["tooling", rest @ ..] => {
            stats.record_call(&format!("tooling{}", verb(m)), None);
            crate::cometd::tooling::route(ctx, rest)
        }
        ["sobjects", object] => match *m {
            Method::GET => {
                stats.record_call("sobjectBasicInfo", Some(object));
                describe::basic_info(ctx, object)
            }
            Method::POST => {
                stats.record_call("create", Some(object));
                sobjects::create(ctx, object)
            }
            _ => Err(method_not_allowed(m)),
        },
        ["sobjects", object, "describe"] if m == Method::GET => {
            stats.record_call("describe", Some(object));
            describe::describe(ctx, object)
        }
        ["sobjects", object, "updated"] if m == Method::GET => {
            stats.record_call("getUpdated", Some(object));
            sobjects::get_updated(ctx, object)
        }
        ["sobjects", object, "deleted"] if m == Method::GET => {
            stats.record_call("getDeleted", Some(object));
            sobjects::get_deleted(ctx, object)
        }
        ["sobjects", object, id] => {
            stats.record_call(&format!("sobject{}", verb(m)), Some(object));
            sobjects::by_id(ctx, object, id)
        }
        ["sobjects", object, field, value] => {
            stats.record_call(&format!("externalId{}", verb(m)), Some(object));
            sobjects::by_external_id(ctx, object, field, value)
        }
        [endpoint @ ("query" | "queryAll")] if m == Method::GET => {
            stats.record_call(endpoint, None);
            query::start(ctx, *endpoint == "queryAll")
        }
        ["query" | "queryAll", locator] if m == Method::GET => {
            stats.record_call("queryMore", None);
            query::more(ctx, locator)
        }
        ["limits"] if m == Method::GET => {
            stats.record_call("limits", None);
            Ok(limits::limits(ctx))
        }
        ["composite", "sobjects"] => {
            stats.record_call(&format!("collections{}", verb(m)), None);
            match *m {
                Method::POST => collections::create(ctx),
                Method::PATCH => collections::update(ctx),
                Method::DELETE => collections::delete(ctx),
                _ => Err(method_not_allowed(m)),
            }
        }
        ["composite", "sobjects", object] => {
            stats.record_call("collectionsRetrieve", Some(object));
            match *m {
                Method::GET | Method::POST => collections::retrieve(ctx, object),
                _ => Err(method_not_allowed(m)),
            }
        }
        ["composite", "sobjects", object, field] if m == Method::PATCH => {
            stats.record_call("collectionsUpsert", Some(object));
            collections::upsert(ctx, object, field)
        }
        ["jobs", kind @ ("query" | "ingest"), rest @ ..] => {
            stats.record_call(
                &format!(
                    "bulk{}{}",
                    if *kind == "query" { "Query" } else { "Ingest" },
                    verb(m)
                ),
                None,
            );
            route_bulk(ctx, *kind == "query", rest)
        }
        _ => {
            stats.record_call("notFound", None);
            Err(ApiError::not_found())
        }
    }
}

/// `/jobs/query…` and `/jobs/ingest…`.
fn route_bulk(ctx: &RequestContext, query_job: bool, path: &[&str]) -> ApiResult {
    let m = &ctx.method;
    match (path, query_job) {
        ([], true) if m == Method::POST => bulk::create_query(ctx),
        ([], false) if m == Method::POST => bulk::create_ingest(ctx),
        ([], _) if m == Method::GET => bulk::list(ctx, query_job),
        ([id], _) => match *m {
            Method::GET => bulk::info(ctx, id, query_job),
            Method::PATCH => bulk::change_state(ctx, id, query_job),
            Method::DELETE => bulk::delete(ctx, id, query_job),
            _ => Err(method_not_allowed(m)),
        },
        ([id, "results"], true) if m == Method::GET => bulk::query_results(ctx, id),
        ([id, "batches"], false) if m == Method::PUT => bulk::upload(ctx, id),
        ([id, which], false) if m == Method::GET => {
            let which = match *which {
                "successfulResults" => bulk::IngestResults::Successful,
                "failedResults" => bulk::IngestResults::Failed,
                "unprocessedrecords" => bulk::IngestResults::Unprocessed,
                _ => return Err(ApiError::not_found()),
            };
            bulk::ingest_results(ctx, id, which)
        }
        _ => Err(ApiError::not_found()),
    }
}

/// Whether a path names the PushTopic object, whose writes the Streaming API checks.
fn is_push_topic(object: &str) -> bool {
    object.eq_ignore_ascii_case(crate::cometd::push_topic::OBJECT)
}

/// Whether the segment after `/sobjects/{Obj}/` names a resource of the object rather
/// than a record Id.
fn is_object_resource(segment: &str) -> bool {
    matches!(segment, "describe" | "updated" | "deleted")
}

fn verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "Get",
        Method::POST => "Post",
        Method::PATCH => "Patch",
        Method::DELETE => "Delete",
        Method::PUT => "Put",
        _ => "Other",
    }
}

/// 405 for a method a resource does not take.
pub fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("HTTP Method '{method}' not allowed. Allowed are GET,HEAD,POST,PATCH,DELETE"),
    )
}

fn parse_version(segment: &str) -> Option<String> {
    let number = segment.strip_prefix('v')?;
    let (major, minor) = number.split_once('.')?;
    let major: u32 = major.parse().ok()?;
    let latest: u32 = LATEST_API_VERSION.split('.').next()?.parse().ok()?;
    (minor == "0" && (OLDEST_MAJOR_VERSION..=latest).contains(&major)).then(|| format!("{major}.0"))
}

fn resources(ctx: &RequestContext) -> Response {
    let prefix = ctx.data_prefix();
    let mut body = serde_json::Map::new();
    for name in [
        "tooling",
        "metadata",
        "eclair",
        "folders",
        "prechatForms",
        "chatter",
        "tabs",
        "appMenu",
        "quickActions",
        "queryAll",
        "commerce",
        "wave",
        "iot",
        "analytics",
        "search",
        "identity",
        "composite",
        "parameterizedSearch",
        "fingerprint",
        "theme",
        "nouns",
        "event",
        "serviceTemplates",
        "recent",
        "connect",
        "licensing",
        "limits",
        "process",
        "async-queries",
        "query",
        "jobs",
        "match",
        "emailConnect",
        "compactLayouts",
        "knowledgeManagement",
        "sobjects",
        "actions",
        "support",
    ] {
        let url = if name == "identity" {
            let org = ctx.shared.org();
            format!("/id/{}/{}", org.org_id(), ctx.user.id18(org.schema()))
        } else {
            format!("{prefix}/{name}")
        };
        body.insert(name.to_owned(), Json::String(url));
    }
    json_response(StatusCode::OK, &Json::Object(body))
}

/// Re-renders a JSON body pretty-printed when the client sent `X-PrettyPrint: 1`.
async fn pretty_if_asked(headers: &HeaderMap, response: Response) -> Response {
    let wants_pretty = headers
        .get("x-prettyprint")
        .is_some_and(|v| v.as_bytes() == b"1");
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !wants_pretty || !is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let pretty = serde_json::from_slice::<Json>(&bytes)
        .ok()
        .and_then(|json| serde_json::to_vec_pretty(&json).ok())
        .unwrap_or_else(|| bytes.to_vec());
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(pretty))
}

/// Decodes `%XX` escapes in one path segment (external id values may carry any text).
pub fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_within_the_served_range() {
        assert_eq!(parse_version("v62.0").as_deref(), Some("62.0"));
        assert_eq!(parse_version("v19.0"), None);
        assert_eq!(parse_version("v99.0"), None);
        assert_eq!(parse_version("62.0"), None);
        assert_eq!(parse_version("v62.1"), None);
    }

    #[test]
    fn percent_escapes_decode_and_stray_percents_stay() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%E2%82%AC"), "€");
    }
}
