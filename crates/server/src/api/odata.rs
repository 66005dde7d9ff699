//! The management API of OData services, in Heroku Connect's shapes
//! (`/api/v3/odata/services/{id}`): read them, enable or revoke (`PATCH {"enabled"}`),
//! change settings, reset credentials, publish and unpublish relations.
//!
//! Roles: reading is `view`; settings and publishing are `deploy`; credentials, enabling
//! and revoking are `manage` (a PATCH naming `enabled` needs `manage`, checked here since
//! the route itself is `deploy`). Every change goes to the audit trail; a password only
//! appears in the answer of the call that made it.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use pgforce_sync::{Engine, ODataCredentials, ODataService, ODataSettings, Role};
use serde_json::{Map, Value, json};

use super::extract::{Body, Segments};
use super::handlers::audited;
use crate::Scheme;
use crate::auth::Caller;
use crate::problem::Problem;

type Answer = Result<Response, Problem>;

/// A service id from a path.
fn service_id(id: &str) -> Result<i64, Problem> {
    id.parse::<i64>().map_err(|_| {
        Problem::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("no OData service with id {id}"),
        )
    })
}

/// The URL Salesforce Connect is given for a service.
pub fn access_url(headers: &HeaderMap, scheme: Scheme, slug: &str) -> String {
    format!(
        "{}/odata/v4/{slug}/",
        crate::oauth::public_base(headers, scheme)
    )
}

/// A service in Heroku Connect's shape; `credentials` carries the password only when
/// one was just made.
pub fn shape(service: &ODataService, access_url: &str, made: Option<&ODataCredentials>) -> Value {
    let id = service.id.to_string();
    let resources: Vec<Value> = service
        .resources
        .iter()
        .map(|r| {
            json!({
                "id": r.id.to_string(),
                "services": [id],
                "exported": r.exported,
                "schema_name": r.schema_name,
                "table_name": r.table_name,
                "entity_set": r.entity_set(),
                "is_valid": r.is_valid(),
                "problem": r.problem,
                "type": r.kind,
            })
        })
        .collect();
    let credentials = match made {
        Some(made) => json!({ "user": made.user, "password": made.password }),
        None => json!({ "user": service.user }),
    };
    json!({
        "id": id,
        "slug": service.slug,
        "connection": { "id": service.connection.to_string() },
        "enabled": service.enabled,
        "writable": service.writable,
        "search_enabled": service.search_enabled,
        "access_url": access_url,
        "resources": resources,
        "api_hourly_rate_limit": service.hourly_request_limit,
        "current_hourly_api_usage": service.current_hourly_api_usage,
        "credentials": credentials,
        "statement_timeout": service.statement_timeout_ms,
        "detail_url": format!("/api/v3/odata/services/{id}"),
    })
}

/// What the audit trail records of a service: its settings and what it publishes.
fn settings(service: &ODataService) -> Value {
    json!({
        "enabled": service.enabled,
        "writable": service.writable,
        "search_enabled": service.search_enabled,
        "api_hourly_rate_limit": service.hourly_request_limit,
        "statement_timeout": service.statement_timeout_ms,
        "published": service.resources.iter().filter(|r| r.exported).map(|r| format!("{}.{}", r.schema_name, r.table_name)).collect::<Vec<_>>(),
    })
}

pub(super) async fn list_services(
    State(engine): State<Engine>,
    axum::Extension(scheme): axum::Extension<Scheme>,
    headers: HeaderMap,
) -> Answer {
    let services = engine.admin().odata_services().await?;
    let results: Vec<Value> = services
        .iter()
        .map(|s| shape(s, &access_url(&headers, scheme, &s.slug), None))
        .collect();
    Ok(Json(json!({ "count": results.len(), "results": results })).into_response())
}

pub(super) async fn read_service(
    State(engine): State<Engine>,
    axum::Extension(scheme): axum::Extension<Scheme>,
    headers: HeaderMap,
    Segments(id): Segments<String>,
) -> Answer {
    let service = engine.admin().odata_service(service_id(&id)?).await?;
    let url = access_url(&headers, scheme, &service.slug);
    Ok(Json(shape(&service, &url, None)).into_response())
}

fn flag(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, Problem> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(other) => Err(Problem::bad_request(format!(
            "{name}: expected true or false, got {other}"
        ))),
    }
}

fn number(body: &Map<String, Value>, name: &str) -> Result<Option<i32>, Problem> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                Problem::bad_request(format!("{name}: expected an integer, got {value}"))
            }),
    }
}

const SETTINGS: [&str; 6] = [
    "enabled",
    "writable",
    "search_enabled",
    "api_hourly_rate_limit",
    "statement_timeout",
    "credential_overlap_seconds",
];

/// `PATCH`: `enabled` (manage: true makes credentials on a disabled service and answers
/// them; false revokes) and the settings (deploy).
pub(super) async fn update_service(
    caller: Caller,
    State(engine): State<Engine>,
    axum::Extension(scheme): axum::Extension<Scheme>,
    headers: HeaderMap,
    Segments(id): Segments<String>,
    Body(body): Body,
) -> Answer {
    let id = service_id(&id)?;
    let body: Map<String, Value> = serde_json::from_str(&body)
        .map_err(|e| Problem::bad_request(format!("the body is not a JSON object: {e}")))?;
    if let Some(unknown) = body.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
        return Err(Problem::bad_request(format!(
            "{unknown} is not a setting of an OData service (known: {})",
            SETTINGS.join(", ")
        )));
    }
    let enabled = flag(&body, "enabled")?;
    let change = ODataSettings {
        writable: flag(&body, "writable")?,
        search_enabled: flag(&body, "search_enabled")?,
        hourly_request_limit: number(&body, "api_hourly_rate_limit")?,
        statement_timeout_ms: number(&body, "statement_timeout")?,
        credential_overlap_seconds: number(&body, "credential_overlap_seconds")?,
    };
    if enabled.is_some() {
        caller
            .require_recorded(
                &engine,
                Role::Manage,
                "PATCH /api/v3/odata/services/{id} enabled",
            )
            .await?;
    }
    let admin = engine.admin();
    let before = admin.odata_service(id).await?;
    let target = format!("odata service {id}");
    if change != ODataSettings::default() {
        admin.odata_settings(id, change).await?;
    }
    let mut made = None;
    match enabled {
        Some(true) => made = admin.odata_enable(id).await?,
        Some(false) => admin.odata_revoke(id).await?,
        None => {}
    }
    let after = admin.odata_service(id).await?;
    let action = match enabled {
        Some(true) if made.is_some() => "odata.enable",
        Some(false) if before.enabled => "odata.revoke",
        _ => "odata.update",
    };
    audited(
        &engine,
        &caller,
        action,
        &target,
        Some(settings(&before)),
        Some(settings(&after)),
    )
    .await;
    let url = access_url(&headers, scheme, &after.slug);
    Ok(Json(shape(&after, &url, made.as_ref())).into_response())
}

/// `POST …/credentials/actions/reset`: a new credential, answered once; the previous one
/// keeps working for 10 minutes.
pub(super) async fn reset_credentials(
    caller: Caller,
    State(engine): State<Engine>,
    axum::Extension(scheme): axum::Extension<Scheme>,
    headers: HeaderMap,
    Segments(id): Segments<String>,
) -> Answer {
    let id = service_id(&id)?;
    let admin = engine.admin();
    let made = admin.odata_reset(id).await?;
    audited(
        &engine,
        &caller,
        "odata.credentials.reset",
        &format!("odata service {id}"),
        None,
        Some(json!({ "user": made.user })),
    )
    .await;
    let service = admin.odata_service(id).await?;
    let url = access_url(&headers, scheme, &service.slug);
    Ok(Json(shape(&service, &url, Some(&made))).into_response())
}

/// `schema.table` of a path segment.
fn relation(resource: &str) -> Result<(&str, &str), Problem> {
    resource
        .split_once('.')
        .filter(|(schema, table)| !schema.is_empty() && !table.is_empty())
        .ok_or_else(|| {
            Problem::bad_request(format!(
                "{resource:?}: name the relation as schema.table (for example salesforce.account)"
            ))
        })
}

/// `PUT …/resources/{schema.table}`: publishes it.
pub(super) async fn publish(
    caller: Caller,
    State(engine): State<Engine>,
    Segments((id, resource)): Segments<(String, String)>,
) -> Answer {
    let id = service_id(&id)?;
    let (schema, table) = relation(&resource)?;
    let target = format!("odata service {id}");
    let published = match engine.admin().odata_publish(id, schema, table).await {
        Ok(published) => published,
        Err(error) => {
            let detail = json!({ "publish": resource, "reason": error.chain() });
            super::handlers::refusal_audited(
                &engine,
                &caller,
                "odata.publish.refused",
                &target,
                detail,
            )
            .await;
            return Err(error.into());
        }
    };
    audited(
        &engine,
        &caller,
        "odata.publish",
        &target,
        None,
        Some(json!({ "published": resource })),
    )
    .await;
    Ok(Json(json!({
        "id": published.id.to_string(),
        "services": [id.to_string()],
        "exported": published.exported,
        "schema_name": published.schema_name,
        "table_name": published.table_name,
        "entity_set": published.entity_set(),
        "is_valid": published.is_valid(),
        "problem": published.problem,
        "type": published.kind,
    }))
    .into_response())
}

/// `DELETE …/resources/{schema.table}`: stops publishing it.
pub(super) async fn unpublish(
    caller: Caller,
    State(engine): State<Engine>,
    Segments((id, resource)): Segments<(String, String)>,
) -> Answer {
    let id = service_id(&id)?;
    let (schema, table) = relation(&resource)?;
    engine.admin().odata_unpublish(id, schema, table).await?;
    audited(
        &engine,
        &caller,
        "odata.unpublish",
        &format!("odata service {id}"),
        Some(json!({ "published": resource })),
        None,
    )
    .await;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}
