//! The management API: Heroku Connect's API v3 paths, methods, status codes and JSON
//! shapes (`shapes`), each route behind the role it needs (`crate::auth`).
//!
//! | route | role |
//! |---|---|
//! | `GET /api/v3/connections[?app=&deep=true]`, `GET …/connections/{id}`, `…/{id}/mappings`, `…/{id}/errors`, `…/{id}/actions/export`, `GET /api/v3/mappings/{id}`, `…/{id}/errors`, `POST /api/v3/users/me/apps/{app}/auth` | view |
//! | `GET …/connections/{id}/schemas/{Object}`, `GET …/connections/{id}/notifications` | view |
//! | `POST …/connections/{id}/notifications/acknowledge` | operate |
//! | `POST …/connections/{id}/actions/pause`, `…/resume`, `…/restart`, `POST …/connections/{id}/errors/{log id}/actions/retry`, `…/ignore`, `POST …/mappings/{id}/actions/reload` | operate |
//! | `POST …/connections/{id}/actions/import`, `POST …/connections/{id}/mappings`, `DELETE /api/v3/mappings/{id}` | deploy |
//! | `POST /api/v3/connections`, `GET /api/v3/audit[?limit=]` | manage |
//!
//! Every change made here is appended to the audit trail with the token's name and the
//! configuration before and after.

mod shapes;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pgforce_sync::{
    ConnectionId, ConnectionView, Engine, FailedDecision, MappingId, NotificationFilter,
    ReloadMode, Role,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::problem::Problem;

type Answer = Result<Response, Problem>;

/// Every API route.
pub fn routes() -> Router<Engine> {
    let v3 = Router::new()
        .route(
            "/connections",
            get(list_connections).post(create_connection),
        )
        .route("/connections/{id}", get(read_connection))
        .route(
            "/connections/{id}/mappings",
            get(list_mappings).post(create_mapping),
        )
        .route("/connections/{id}/errors", get(connection_errors))
        .route("/connections/{id}/actions/export", get(export))
        .route("/connections/{id}/actions/import", post(import))
        .route("/connections/{id}/actions/pause", post(pause))
        .route("/connections/{id}/actions/resume", post(resume))
        .route("/connections/{id}/actions/restart", post(restart))
        .route("/connections/{id}/schemas/{object}", get(schema))
        .route(
            "/connections/{id}/errors/{log_id}/actions/retry",
            post(retry_failed),
        )
        .route(
            "/connections/{id}/errors/{log_id}/actions/ignore",
            post(ignore_failed),
        )
        .route("/mappings/{id}", get(read_mapping).delete(delete_mapping))
        .route("/mappings/{id}/errors", get(mapping_errors))
        .route("/mappings/{id}/actions/reload", post(reload))
        .route("/users/me/apps/{app}/auth", post(authorize_app))
        .route("/audit", get(audit_trail))
        .route("/connections/{id}/notifications", get(list_notifications))
        .route(
            "/connections/{id}/notifications/acknowledge",
            post(acknowledge_notifications),
        );
    Router::new().nest("/api/v3", v3)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    app: Option<String>,
    deep: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct DeepQuery {
    deep: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<i64>,
}

/// Records a change in the audit trail. The change is made already: a trail that cannot
/// be written is logged as an error, not turned into a failed request.
async fn audited(
    engine: &Engine,
    caller: &Caller,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) {
    if let Err(error) = engine
        .audit(
            caller.name(),
            action,
            target,
            before.as_ref(),
            after.as_ref(),
        )
        .await
    {
        tracing::error!(action, target, error = %error.chain(), "could not record a change in the audit trail");
    }
}

fn ok(value: Value) -> Answer {
    Ok(Json(value).into_response())
}

fn accepted(value: Value) -> Answer {
    Ok((StatusCode::ACCEPTED, Json(value)).into_response())
}

/// A connection id from a path.
fn connection_id(id: &str) -> Result<ConnectionId, Problem> {
    id.parse::<i64>().map(ConnectionId::from).map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no connection with id {id}"),
        )
    })
}

/// A mapping id from a path.
fn mapping_id(id: &str) -> Result<MappingId, Problem> {
    id.parse::<i64>().map(MappingId::from).map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no mapping with id {id}"),
        )
    })
}

async fn list_connections(
    caller: Caller,
    State(engine): State<Engine>,
    Query(query): Query<ListQuery>,
) -> Answer {
    caller.require(Role::View)?;
    let deep = query.deep.unwrap_or(false);
    let results = engine
        .connection_views(deep)
        .await?
        .iter()
        .filter(|c| query.app.as_ref().is_none_or(|app| *app == c.name))
        .map(|c| shapes::connection(c, deep))
        .collect();
    ok(shapes::list(results))
}

/// Creates a connection from its settings and credentials (Heroku Connect's names where
/// it has them: `schema_name`); the org must accept the credentials first.
async fn create_connection(caller: Caller, State(engine): State<Engine>, body: String) -> Answer {
    caller.require(Role::Manage)?;
    let mut settings: serde_json::Map<String, Value> = serde_json::from_str(&body)
        .map_err(|e| Problem::bad_request(format!("the body is not a JSON object: {e}")))?;
    if let Some(schema) = settings.remove("schema_name") {
        settings.insert("schema".to_owned(), schema);
    }
    let config: pgforce_sync::config::ConnectionConfig =
        serde_json::from_value(Value::Object(settings)).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_params",
                format!("connection settings: {e}"),
            )
        })?;
    let name = config.name.clone();
    let id = engine.create_connection(config).await?;
    let view = engine.connection_view(id).await?;
    let created = shapes::connection(&view, false);
    audited(
        &engine,
        &caller,
        "connection.create",
        &format!("connection {name}"),
        None,
        Some(created.clone()),
    )
    .await;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn read_connection(
    caller: Caller,
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Query(query): Query<DeepQuery>,
) -> Answer {
    caller.require(Role::View)?;
    let view = engine.connection_view(connection_id(&id)?).await?;
    ok(shapes::connection(&view, query.deep.unwrap_or(false)))
}

async fn list_mappings(
    caller: Caller,
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Role::View)?;
    let view = engine.connection_view(connection_id(&id)?).await?;
    ok(shapes::list(
        view.mappings.iter().map(shapes::mapping).collect(),
    ))
}

/// Creates (or changes) one mapping from `{"object_name", "config"}`, as an import of a
/// one-mapping document: checked against the org before anything is registered.
async fn create_mapping(
    caller: Caller,
    State(engine): State<Engine>,
    Path(id): Path<String>,
    body: String,
) -> Answer {
    caller.require(Role::Deploy)?;
    let view = engine.connection_view(connection_id(&id)?).await?;
    let mapping: Value = serde_json::from_str(&body)
        .map_err(|e| Problem::bad_request(format!("the body is not JSON: {e}")))?;
    let object = mapping["object_name"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_params",
                "object_name: missing or not a string",
            )
        })?;
    let before = view
        .mappings
        .iter()
        .find(|m| m.object.eq_ignore_ascii_case(&object))
        .map(shapes::mapping);
    let document = json!({ "version": 1, "mappings": [mapping] });
    engine.import(&view.name, &document.to_string()).await?;
    let created = engine
        .connection_view(view.id)
        .await?
        .mappings
        .into_iter()
        .find(|m| m.object.eq_ignore_ascii_case(&object))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("mapping {object} vanished"),
            )
        })?;
    let after = shapes::mapping(&created);
    let target = format!("mapping {}/{}", view.name, created.object);
    audited(
        &engine,
        &caller,
        "mapping.create",
        &target,
        before,
        Some(after.clone()),
    )
    .await;
    Ok((StatusCode::CREATED, Json(after)).into_response())
}

async fn connection_errors(
    caller: Caller,
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Role::View)?;
    let failed = engine.failed_writes(connection_id(&id)?, None).await?;
    ok(shapes::list(
        failed.iter().map(shapes::failed_write).collect(),
    ))
}

async fn export(caller: Caller, State(engine): State<Engine>, Path(id): Path<String>) -> Answer {
    caller.require(Role::View)?;
    let view = engine.connection_view(connection_id(&id)?).await?;
    ok(engine.export(&view.name).await?)
}

async fn import(
    caller: Caller,
    State(engine): State<Engine>,
    Path(id): Path<String>,
    body: String,
) -> Answer {
    caller.require(Role::Deploy)?;
    let view = engine.connection_view(connection_id(&id)?).await?;
    if serde_json::from_str::<Value>(&body).is_err() {
        return Err(Problem::bad_request(
            "the body is not a JSON mapping export document",
        ));
    }
    let before = engine.export(&view.name).await?;
    let mappings = engine.import(&view.name, &body).await?;
    let after = engine.export(&view.name).await?;
    let target = format!("connection {}", view.name);
    audited(
        &engine,
        &caller,
        "connection.import",
        &target,
        Some(before),
        Some(after),
    )
    .await;
    accepted(json!({ "mappings": mappings }))
}

/// The connection a path names.
async fn connection(engine: &Engine, id: &str) -> Result<ConnectionView, Problem> {
    Ok(engine.connection_view(connection_id(id)?).await?)
}

async fn pause(caller: Caller, State(engine): State<Engine>, Path(id): Path<String>) -> Answer {
    set_paused(caller, engine, id, true).await
}

async fn resume(caller: Caller, State(engine): State<Engine>, Path(id): Path<String>) -> Answer {
    set_paused(caller, engine, id, false).await
}

/// Pauses or resumes a connection, recording the change.
async fn set_paused(caller: Caller, engine: Engine, id: String, pause: bool) -> Answer {
    caller.require(Role::Operate)?;
    let before = connection(&engine, &id).await?;
    let action = if pause {
        engine.pause_connection(&before.name).await?;
        "connection.pause"
    } else {
        engine.resume_connection(&before.name).await?;
        "connection.resume"
    };
    let after = connection(&engine, &id).await?;
    let target = format!("connection {}", before.name);
    let (before, after) = (
        shapes::connection(&before, false),
        shapes::connection(&after, false),
    );
    audited(&engine, &caller, action, &target, Some(before), Some(after)).await;
    accepted(json!({}))
}

async fn restart(caller: Caller, State(engine): State<Engine>, Path(id): Path<String>) -> Answer {
    caller.require(Role::Operate)?;
    let before = connection(&engine, &id).await?;
    engine.restart_connection(before.id).await?;
    let after = connection(&engine, &id).await?;
    let target = format!("connection {}", before.name);
    let (before, after) = (
        shapes::connection(&before, true),
        shapes::connection(&after, true),
    );
    audited(
        &engine,
        &caller,
        "connection.restart",
        &target,
        Some(before),
        Some(after),
    )
    .await;
    accepted(json!({}))
}

async fn schema(
    caller: Caller,
    State(engine): State<Engine>,
    Path((id, object)): Path<(String, String)>,
) -> Answer {
    caller.require(Role::View)?;
    ok(engine.describe_object(connection_id(&id)?, &object).await?)
}

async fn retry_failed(
    caller: Caller,
    State(engine): State<Engine>,
    Path((id, log_id)): Path<(String, String)>,
) -> Answer {
    decide_failed(caller, engine, id, log_id, FailedDecision::Retry).await
}

async fn ignore_failed(
    caller: Caller,
    State(engine): State<Engine>,
    Path((id, log_id)): Path<(String, String)>,
) -> Answer {
    decide_failed(caller, engine, id, log_id, FailedDecision::Ignore).await
}

/// Sends a failed write again or ignores it, recording the decision.
async fn decide_failed(
    caller: Caller,
    engine: Engine,
    id: String,
    log_id: String,
    decision: FailedDecision,
) -> Answer {
    caller.require(Role::Operate)?;
    let view = connection(&engine, &id).await?;
    let log_id: i64 = log_id.parse().map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no failed write {log_id}"),
        )
    })?;
    engine
        .decide_failed_write(view.id, log_id, decision, caller.name())
        .await?;
    let action = match decision {
        FailedDecision::Retry => "write.retry",
        FailedDecision::Ignore => "write.ignore",
    };
    let target = format!("connection {} trigger-log row {log_id}", view.name);
    audited(&engine, &caller, action, &target, None, None).await;
    accepted(json!({}))
}

/// The mapping a path names, with its connection's name.
async fn mapping_and_connection(
    engine: &Engine,
    id: &str,
) -> Result<(pgforce_sync::MappingView, String), Problem> {
    let mapping = engine.mapping_view(mapping_id(id)?).await?;
    let connection = engine.connection_view(mapping.connection).await?;
    Ok((mapping, connection.name))
}

async fn read_mapping(
    caller: Caller,
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Role::View)?;
    let mapping = engine.mapping_view(mapping_id(&id)?).await?;
    ok(shapes::mapping(&mapping))
}

async fn delete_mapping(
    caller: Caller,
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Role::Deploy)?;
    let (mapping, connection) = mapping_and_connection(&engine, &id).await?;
    engine.remove_mapping(&connection, &mapping.object).await?;
    let target = format!("mapping {connection}/{}", mapping.object);
    audited(
        &engine,
        &caller,
        "mapping.delete",
        &target,
        Some(shapes::mapping(&mapping)),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn mapping_errors(
    caller: Caller,
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Answer {
    caller.require(Role::View)?;
    let mapping = engine.mapping_view(mapping_id(&id)?).await?;
    let failed = engine
        .failed_writes(mapping.connection, Some(mapping.id))
        .await?;
    ok(shapes::list(
        failed.iter().map(shapes::failed_write).collect(),
    ))
}

async fn reload(caller: Caller, State(engine): State<Engine>, Path(id): Path<String>) -> Answer {
    caller.require(Role::Operate)?;
    let (mapping, connection) = mapping_and_connection(&engine, &id).await?;
    engine
        .reload(&connection, &mapping.object, ReloadMode::Request)
        .await?;
    let target = format!("mapping {connection}/{}", mapping.object);
    audited(
        &engine,
        &caller,
        "mapping.reload",
        &target,
        Some(shapes::mapping(&mapping)),
        None,
    )
    .await;
    accepted(json!({}))
}

/// Heroku Connect adds the caller to an add-on's access list here; pgforce's tokens
/// already say who may do what, so this only answers as Heroku Connect does.
async fn authorize_app(
    caller: Caller,
    State(engine): State<Engine>,
    Path(app): Path<String>,
) -> Answer {
    caller.require(Role::View)?;
    let connections: Vec<Value> = engine
        .connection_views(false)
        .await?
        .iter()
        .filter(|c| c.name == app)
        .map(|c| {
            json!({
                "id": c.id.to_string(),
                "resource_name": c.name,
                "app_name": c.name,
                "detail_url": format!("/api/v3/connections/{}", c.id),
                "region_url": "",
            })
        })
        .collect();
    ok(json!({ "user": { "id": "pgforce", "email": "" }, "connections": connections }))
}

async fn audit_trail(
    caller: Caller,
    State(engine): State<Engine>,
    Query(query): Query<LimitQuery>,
) -> Answer {
    caller.require(Role::Manage)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
    let entries = engine.audit_trail(limit).await?;
    ok(shapes::list(
        entries.iter().map(shapes::audit_entry).collect(),
    ))
}

#[derive(Debug, Deserialize)]
struct NotificationQuery {
    after: Option<String>,
    before: Option<String>,
    event_type: Option<String>,
    page_size: Option<i64>,
}

impl NotificationQuery {
    /// The filter it means; a time that is not ISO 8601 is a bad request.
    fn filter(&self) -> Result<NotificationFilter, Problem> {
        for (name, value) in [("after", &self.after), ("before", &self.before)] {
            if let Some(value) = value
                && !looks_like_a_time(value)
            {
                return Err(Problem::bad_request(format!(
                    "{name}: {value:?} is not an ISO 8601 time (2026-11-30T12:00:00Z)"
                )));
            }
        }
        Ok(NotificationFilter {
            after: self.after.clone(),
            before: self.before.clone(),
            event_type: self.event_type.clone(),
        })
    }
}

/// `YYYY-MM-DD`, optionally with a time and zone: what Postgres reads as a timestamp here.
fn looks_like_a_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 10
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "-:.+TZ ".contains(c))
}

async fn list_notifications(
    caller: Caller,
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Query(query): Query<NotificationQuery>,
) -> Answer {
    caller.require(Role::View)?;
    let limit = query.page_size.unwrap_or(1000).clamp(1, 10_000);
    let found = engine
        .notifications(connection_id(&id)?, &query.filter()?, limit)
        .await?;
    ok(shapes::list(
        found.iter().map(shapes::notification).collect(),
    ))
}

async fn acknowledge_notifications(
    caller: Caller,
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Query(query): Query<NotificationQuery>,
) -> Answer {
    caller.require(Role::Operate)?;
    let view = connection(&engine, &id).await?;
    let filter = query.filter()?;
    let acknowledged = engine.acknowledge_notifications(view.id, &filter).await?;
    let target = format!("connection {}", view.name);
    let after = json!({ "acknowledged": acknowledged, "event_type": filter.event_type });
    audited(
        &engine,
        &caller,
        "notifications.acknowledge",
        &target,
        None,
        Some(after),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
