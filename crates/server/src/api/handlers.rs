//! The API's handlers: each turns a request into engine calls and Heroku Connect's
//! shapes (`super::shapes`). Who may call which is the route table's business
//! (`super::table`): a handler runs only for a caller whose role the table allows, and
//! records what it changed in the audit trail.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pgforce_sync::{
    ConnectionId, ConnectionView, ConsentRequest, Depth, Engine, FailedDecision, MappingId,
    NotificationFilter, ReloadMode, Viewer,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Body, Params, Segments};
use super::shapes;
use crate::auth::Caller;
use crate::problem::Problem;

type Answer = Result<Response, Problem>;

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    app: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    deep: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DeepQuery {
    #[serde(default, deserialize_with = "flag")]
    deep: Option<bool>,
}

/// A boolean query parameter as clients write it: `true`/`false` in any case (Python's
/// requests sends `True`/`False`), or `1`/`0`.
fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(Some(true)),
        "false" | "0" => Ok(Some(false)),
        _ => Err(serde::de::Error::custom(format!(
            "{text:?} is not a boolean (true, false, 1, 0)"
        ))),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LimitQuery {
    limit: Option<i64>,
}

/// Records a change in the audit trail. The change is made already: a trail that cannot
/// be written is logged as an error, not turned into a failed request.
pub(super) async fn audited(
    engine: &Engine,
    caller: &Caller,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) {
    if let Err(error) = engine
        .admin()
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

pub(super) async fn list_connections(
    caller: Caller,
    State(engine): State<Engine>,
    Params(query): Params<ListQuery>,
) -> Answer {
    let deep = query.deep.unwrap_or(false);
    let results = engine
        .admin()
        .connection_views(depth(deep), caller.viewer())
        .await?
        .iter()
        .filter(|c| query.app.as_ref().is_none_or(|app| *app == c.name))
        .map(|c| shapes::connection(c, deep))
        .collect();
    let mut results = results;
    let services = engine.admin().odata_service_ids().await?;
    for connection in &mut results {
        with_odata(connection, &services);
    }
    ok(shapes::list(results))
}

/// Creates a connection from its settings and credentials (Heroku Connect's names where
/// it has them: `schema_name`); the org must accept the credentials first. A name that
/// exists is a conflict (409); keys and certificates come as content, never as paths.
pub(super) async fn create_connection(
    caller: Caller,
    State(engine): State<Engine>,
    axum::Extension(scheme): axum::Extension<crate::Scheme>,
    headers: axum::http::HeaderMap,
    Body(body): Body,
) -> Answer {
    let mut settings: serde_json::Map<String, Value> = serde_json::from_str(&body)
        .map_err(|e| Problem::bad_request(format!("the body is not a JSON object: {e}")))?;
    // Where the person lands after a consent: not a setting of the connection.
    let next = crate::oauth::checked_next(settings.remove("next").as_ref())?;
    if let Some(schema) = settings.remove("schema_name") {
        if let Some(problem) = schema
            .as_str()
            .and_then(pgforce_sync::config::schema_problem)
        {
            return Err(Problem::bad_request(format!("schema_name: {problem}")));
        }
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
    if config.auth == pgforce_sync::config::AuthKind::RefreshToken && config.refresh_token.is_none()
    {
        // A person must consent first: the answer says where to send them (pgforce's own
        // start URL, which binds the consent to their browser).
        let request = ConsentRequest {
            redirect_uri: crate::oauth::callback_url(&headers, scheme),
            next_url: next,
            requested_by: caller.name().to_owned(),
        };
        let ticket = engine
            .admin()
            .authorize_new_connection(config, request)
            .await?;
        let redirect = crate::oauth::start_url(&headers, scheme, &ticket);
        audited(
            &engine,
            &caller,
            "connection.authorize",
            &format!("connection {name}"),
            None,
            None,
        )
        .await;
        return accepted(json!({ "redirect": redirect }));
    }
    let target = format!("connection {name}");
    let id = match engine.create_connection(config).await {
        Ok(id) => id,
        Err(error) => {
            // The engine's audit redacts the secrets among what was asked.
            let asked: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let detail = json!({ "asked": asked, "reason": error.chain() });
            refusal_audited(
                &engine,
                &caller,
                "connection.create.refused",
                &target,
                detail,
            )
            .await;
            return Err(error.into());
        }
    };
    let view = engine
        .admin()
        .connection_view(id, Depth::Connection, caller.viewer())
        .await?;
    let created = shapes::connection(&view, false);
    let mut recorded = created.clone();
    recorded["settings"] = engine.admin().connection_settings(id).await?;
    audited(
        &engine,
        &caller,
        "connection.create",
        &target,
        None,
        Some(recorded),
    )
    .await;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Changes a connection created through the API (credentials, login URL, flow, API
/// version); the org must accept the result first.
pub(super) async fn update_connection(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
    Body(body): Body,
) -> Answer {
    let before = connection(&engine, &id).await?;
    let patch: serde_json::Map<String, Value> = serde_json::from_str(&body)
        .map_err(|e| Problem::bad_request(format!("the body is not a JSON object: {e}")))?;
    let target = format!("connection {}", before.name);
    let settings_before = engine.admin().connection_settings(before.id).await?;
    if let Err(error) = engine.update_connection(before.id, &patch).await {
        // The engine's audit redacts the secrets among what was asked.
        let detail = json!({ "asked": Value::Object(patch), "reason": error.chain() });
        refusal_audited(
            &engine,
            &caller,
            "connection.update.refused",
            &target,
            detail,
        )
        .await;
        return Err(error.into());
    }
    let after = connection(&engine, &id).await?;
    let mut settings_after = engine.admin().connection_settings(after.id).await?;
    // Secrets are not among the settings: their names say which of them changed.
    settings_after["changed"] = json!(patch.keys().collect::<Vec<_>>());
    audited(
        &engine,
        &caller,
        "connection.update",
        &target,
        Some(settings_before),
        Some(settings_after),
    )
    .await;
    ok(shapes::connection(&after, false))
}

/// Records a refused change in the audit trail (aggregated a minute at a time); as with
/// [`audited`], a trail that cannot be written is logged, not answered.
pub(super) async fn refusal_audited(
    engine: &Engine,
    caller: &Caller,
    action: &str,
    target: &str,
    detail: Value,
) {
    if let Err(error) = engine
        .admin()
        .audit_refusal(caller.name(), action, target, &detail)
        .await
    {
        tracing::error!(action, target, error = %error.chain(), "could not record a refused change in the audit trail");
    }
}

pub(super) async fn read_connection(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
    Params(query): Params<DeepQuery>,
) -> Answer {
    let deep = query.deep.unwrap_or(false);
    let view = engine
        .admin()
        .connection_view(connection_id(&id)?, depth(deep), caller.viewer())
        .await?;
    let mut connection = shapes::connection(&view, deep);
    with_odata(&mut connection, &engine.admin().odata_service_ids().await?);
    ok(connection)
}

/// Adds Heroku Connect's `odata: {id, slug}` to a connection's shape.
fn with_odata(connection: &mut Value, services: &[(ConnectionId, i64, String)]) {
    let id = connection["id"].as_str().unwrap_or_default().to_owned();
    if let Some((_, service, slug)) = services.iter().find(|(c, _, _)| c.to_string() == id) {
        connection["odata"] = json!({ "id": service.to_string(), "slug": slug });
    }
}

pub(super) async fn list_mappings(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    let view = engine
        .admin()
        .connection_view(connection_id(&id)?, Depth::WithMappings, caller.viewer())
        .await?;
    ok(shapes::list(
        view.mappings.iter().map(shapes::mapping).collect(),
    ))
}

/// Creates (or changes) one mapping from `{"object_name", "config"}`, as an import of a
/// one-mapping document: checked against the org before anything is registered.
pub(super) async fn create_mapping(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
    Body(body): Body,
) -> Answer {
    let view = engine
        .admin()
        .connection_view(connection_id(&id)?, Depth::WithMappings, caller.viewer())
        .await?;
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
        .admin()
        .connection_view(view.id, Depth::WithMappings, caller.viewer())
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

pub(super) async fn connection_errors(
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    let failed = engine
        .admin()
        .failed_writes(connection_id(&id)?, None)
        .await?;
    ok(shapes::list(
        failed.iter().map(shapes::failed_write).collect(),
    ))
}

pub(super) async fn export(State(engine): State<Engine>, Segments(id): Segments<String>) -> Answer {
    let view = connection(&engine, &id).await?;
    ok(engine.export(&view.name).await?)
}

pub(super) async fn import(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
    Body(body): Body,
) -> Answer {
    let view = connection(&engine, &id).await?;
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

/// The connection a path names, without its mappings (one catalog read, no Salesforce
/// call, whoever asks).
pub(super) async fn connection(engine: &Engine, id: &str) -> Result<ConnectionView, Problem> {
    Ok(engine
        .admin()
        .connection_view(connection_id(id)?, Depth::Connection, Viewer::Operator)
        .await?)
}

/// The depth `?deep=` asks for.
fn depth(deep: bool) -> Depth {
    if deep {
        Depth::WithMappings
    } else {
        Depth::Connection
    }
}

pub(super) async fn pause(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    set_paused(caller, engine, id, true).await
}

pub(super) async fn resume(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    set_paused(caller, engine, id, false).await
}

/// Pauses or resumes a connection, recording the change.
pub(super) async fn set_paused(caller: Caller, engine: Engine, id: String, pause: bool) -> Answer {
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

pub(super) async fn restart(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
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

pub(super) async fn schema(
    caller: Caller,
    State(engine): State<Engine>,
    Segments((id, object)): Segments<(String, String)>,
) -> Answer {
    ok(engine
        .admin()
        .describe_object(connection_id(&id)?, &object, caller.viewer())
        .await?)
}

pub(super) async fn retry_failed(
    caller: Caller,
    State(engine): State<Engine>,
    Segments((id, log_id)): Segments<(String, String)>,
) -> Answer {
    decide_failed(caller, engine, id, log_id, FailedDecision::Retry).await
}

pub(super) async fn ignore_failed(
    caller: Caller,
    State(engine): State<Engine>,
    Segments((id, log_id)): Segments<(String, String)>,
) -> Answer {
    decide_failed(caller, engine, id, log_id, FailedDecision::Ignore).await
}

/// Sends a failed write again or ignores it, recording the decision.
pub(super) async fn decide_failed(
    caller: Caller,
    engine: Engine,
    id: String,
    log_id: String,
    decision: FailedDecision,
) -> Answer {
    let view = connection(&engine, &id).await?;
    let log_id: i64 = log_id.parse().map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no failed write {log_id}"),
        )
    })?;
    engine
        .admin()
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
pub(super) async fn mapping_and_connection(
    engine: &Engine,
    caller: &Caller,
    id: &str,
) -> Result<(pgforce_sync::MappingView, String), Problem> {
    let mapping = engine
        .admin()
        .mapping_view(mapping_id(id)?, caller.viewer())
        .await?;
    let connection = engine
        .admin()
        .connection_view(mapping.connection, Depth::Connection, caller.viewer())
        .await?;
    Ok((mapping, connection.name))
}

pub(super) async fn read_mapping(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    let mapping = engine
        .admin()
        .mapping_view(mapping_id(&id)?, caller.viewer())
        .await?;
    ok(shapes::mapping(&mapping))
}

pub(super) async fn delete_mapping(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    let (mapping, connection) = mapping_and_connection(&engine, &caller, &id).await?;
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

pub(super) async fn mapping_errors(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    let mapping = engine
        .admin()
        .mapping_view(mapping_id(&id)?, caller.viewer())
        .await?;
    let failed = engine
        .admin()
        .failed_writes(mapping.connection, Some(mapping.id))
        .await?;
    ok(shapes::list(
        failed.iter().map(shapes::failed_write).collect(),
    ))
}

pub(super) async fn reload(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    let (mapping, connection) = mapping_and_connection(&engine, &caller, &id).await?;
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
pub(super) async fn authorize_app(
    State(engine): State<Engine>,
    Segments(app): Segments<String>,
) -> Answer {
    let connections: Vec<Value> = engine
        .admin()
        .connection_views(Depth::Connection, Viewer::Operator)
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

pub(super) async fn audit_trail(
    State(engine): State<Engine>,
    Params(query): Params<LimitQuery>,
) -> Answer {
    let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
    let entries = engine.admin().audit_trail(limit).await?;
    ok(shapes::list(
        entries.iter().map(shapes::audit_entry).collect(),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct NotificationQuery {
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

pub(super) async fn list_notifications(
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
    Params(query): Params<NotificationQuery>,
) -> Answer {
    let limit = query.page_size.unwrap_or(1000).clamp(1, 10_000);
    let found = engine
        .admin()
        .notifications(connection_id(&id)?, &query.filter()?, limit)
        .await?;
    ok(shapes::list(
        found.iter().map(shapes::notification).collect(),
    ))
}

pub(super) async fn acknowledge_notifications(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
    Params(query): Params<NotificationQuery>,
) -> Answer {
    let view = connection(&engine, &id).await?;
    let filter = query.filter()?;
    let acknowledged = engine
        .admin()
        .acknowledge_notifications(view.id, &filter)
        .await?;
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

/// Diagnoses the connection and keeps the result; `202 {"result_url"}` as Heroku Connect
/// answers (the result is ready at once).
pub(super) async fn start_validation(
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    let view = connection(&engine, &id).await?;
    let diagnosis = engine.admin().diagnose(view.id).await?;
    let kept = engine
        .admin()
        .keep_diagnosis(view.id, &shapes::diagnosis(&diagnosis))
        .await?;
    let url = format!("/api/v3/connections/{}/validations/{kept}", view.id);
    accepted(json!({ "result_url": url }))
}

pub(super) async fn validation_result(
    State(engine): State<Engine>,
    Segments((id, result)): Segments<(String, String)>,
) -> Answer {
    let view = connection(&engine, &id).await?;
    let result: i64 = result.parse().map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no validation {result}"),
        )
    })?;
    ok(engine.admin().kept_diagnosis(view.id, result).await?)
}

/// One mapping's checks, at once.
pub(super) async fn validate_mapping(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    let mapping = engine
        .admin()
        .mapping_view(mapping_id(&id)?, caller.viewer())
        .await?;
    let diagnosis = engine.admin().diagnose(mapping.connection).await?;
    let checks = diagnosis
        .mappings
        .iter()
        .find(|(object, _)| *object == mapping.object)
        .map(|(_, checks)| shapes::checks(checks))
        .unwrap_or_else(|| shapes::checks(&[]));
    ok(checks)
}

/// Heroku Connect's `authorize_url`: where to send a person to consent (pgforce's one-time
/// start URL, for the browser that consents), renewing the credentials of an API-created
/// connection. Body (optional): `{"next": "<path on pgforce>"}` and the login URL.
pub(super) async fn authorize_url(
    caller: Caller,
    State(engine): State<Engine>,
    axum::Extension(scheme): axum::Extension<crate::Scheme>,
    headers: axum::http::HeaderMap,
    Segments(id): Segments<String>,
    Body(body): Body,
) -> Answer {
    let view = connection(&engine, &id).await?;
    let fields: serde_json::Map<String, Value> = if body.trim().is_empty() {
        serde_json::Map::new()
    } else {
        serde_json::from_str(&body)
            .map_err(|e| Problem::bad_request(format!("the body is not a JSON object: {e}")))?
    };
    let login_url = consent_login_url(&fields)?;
    let request = ConsentRequest {
        redirect_uri: crate::oauth::callback_url(&headers, scheme),
        next_url: crate::oauth::checked_next(fields.get("next"))?,
        requested_by: caller.name().to_owned(),
    };
    let ticket = engine
        .admin()
        .authorize_connection(view.id, request, login_url)
        .await?;
    let redirect = crate::oauth::start_url(&headers, scheme, &ticket);
    let target = format!("connection {}", view.name);
    audited(
        &engine,
        &caller,
        "connection.authorize",
        &target,
        None,
        None,
    )
    .await;
    ok(json!({ "redirect": redirect }))
}

/// The login URL Heroku Connect's `authorize_url` body asks for: `environment`
/// `production` (login.salesforce.com), `sandbox` (test.salesforce.com) or `custom` with a
/// My Domain `domain`; or an explicit `login_url`; none keeps the connection's own.
fn consent_login_url(fields: &serde_json::Map<String, Value>) -> Result<Option<String>, Problem> {
    let invalid =
        |message: String| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", message);
    if let Some(key) = fields
        .keys()
        .find(|k| !["next", "environment", "domain", "login_url"].contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "{key} is not a setting of authorize_url (next, environment, domain, login_url)"
        )));
    }
    let text = |name: &str| fields.get(name).and_then(Value::as_str);
    match (text("environment"), text("domain"), text("login_url")) {
        (None, None, None) => Ok(None),
        (None, None, Some(url)) if url.starts_with("https://") || url.starts_with("http://") => Ok(Some(url.to_owned())),
        (Some("production"), None, None) => Ok(Some("https://login.salesforce.com".to_owned())),
        (Some("sandbox"), None, None) => Ok(Some("https://test.salesforce.com".to_owned())),
        (Some("custom"), Some(domain), None)
            if !domain.is_empty() && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
        {
            Ok(Some(format!("https://{domain}")))
        }
        _ => Err(invalid(
            "environment must be production or sandbox, or custom with a domain (a host name), or give login_url".to_owned(),
        )),
    }
}
