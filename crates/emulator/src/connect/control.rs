//! The control API for Salesforce Connect, under `/__emulator/external-data-sources`: what an
//! admin does in Setup (create, list and delete External Data Sources; Validate and Sync),
//! and the callout log tests assert request shapes with.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use super::fetch;
use super::metadata;
use super::objects::{self, ExternalObject};
use super::source::DataSource;
use crate::state::Shared;

type AppState = State<Arc<Shared>>;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": code, "message": message.into() })),
    )
        .into_response()
}

fn unknown_source(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no external data source named {name}"),
    )
}

/// Routes (nested under the control prefix).
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/external-data-sources",
            get(list_sources).post(create_source),
        )
        .route("/external-data-sources/{name}", delete(delete_source))
        .route("/external-data-sources/{name}/sync", post(sync))
        .route(
            "/external-data-sources/{name}/callouts",
            get(callouts).delete(clear_callouts),
        )
}

fn source_json(source: &DataSource, objects: &[Arc<ExternalObject>]) -> JsonValue {
    let mut body = serde_json::to_value(source).unwrap_or(JsonValue::Null);
    body["authentication"] = json!(if source.username.is_some() {
        "Password"
    } else {
        "Anonymous"
    });
    body["externalObjects"] = json!(
        objects
            .iter()
            .filter(|o| o.source == source.name)
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
    );
    body
}

/// `POST /external-data-sources`: creates a source, or replaces one of the same name (its
/// synced objects stay until the next sync).
async fn create_source(State(shared): AppState, Json(mut source): Json<DataSource>) -> Response {
    if let Err(message) = source.validate().and_then(|()| source.prepare()) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("external data source: {message}"),
        );
    }
    let mut store = shared.connect();
    let body = source_json(&source, &store.objects());
    store.put_source(source);
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `GET /external-data-sources`: every source (passwords left out).
async fn list_sources(State(shared): AppState) -> Response {
    let store = shared.connect();
    let objects = store.objects();
    let sources: Vec<JsonValue> = store
        .sources()
        .iter()
        .map(|s| source_json(s, &objects))
        .collect();
    Json(json!({ "externalDataSources": sources })).into_response()
}

/// `DELETE /external-data-sources/{name}`: the source and its external objects go.
async fn delete_source(State(shared): AppState, Path(name): Path<String>) -> Response {
    if shared.connect().remove_source(&name) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        unknown_source(&name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncRequest {
    /// Entity set names; every set when absent.
    #[serde(default)]
    tables: Option<Vec<String>>,
}

/// `POST /external-data-sources/{name}/sync` with `{"tables": [...]}`: Validate and Sync.
/// Reads `$metadata`, then creates (or overwrites) one external object per table.
async fn sync(
    State(shared): AppState,
    Path(name): Path<String>,
    Json(request): Json<SyncRequest>,
) -> Response {
    let Some(source) = shared.connect().source(&name) else {
        return unknown_source(&name);
    };
    let text = match fetch::metadata(&shared, &source).await {
        Ok(text) => text,
        Err(message) => {
            return error(StatusCode::BAD_GATEWAY, "validate_failed", message);
        }
    };
    let sets = match metadata::parse(&text) {
        Ok(sets) => sets,
        Err(message) => {
            return error(
                StatusCode::BAD_GATEWAY,
                "validate_failed",
                format!("External data source {}: $metadata: {message}", source.name),
            );
        }
    };
    let chosen: Vec<&metadata::EntitySet> = match &request.tables {
        None => sets.iter().collect(),
        Some(tables) => {
            let mut chosen = Vec::with_capacity(tables.len());
            for table in tables {
                let Some(set) = sets.iter().find(|s| &s.name == table) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "sync_failed",
                        format!(
                            "External data source {}: table {table:?} is not an entity set of the service",
                            source.name
                        ),
                    );
                };
                chosen.push(set);
            }
            chosen
        }
    };
    let mut synced = Vec::with_capacity(chosen.len());
    let mut report = Vec::with_capacity(chosen.len());
    for set in chosen {
        match objects::from_entity_set(set, &source) {
            Ok(object) => {
                report.push(json!({
                    "name": object.object.name,
                    "externalName": object.object.entity_set,
                    "fields": object.object.fields.iter().map(|f| f.def.name.as_str()).collect::<Vec<_>>(),
                    "skippedProperties": object.skipped,
                }));
                synced.push(object.object);
            }
            Err(message) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "sync_failed",
                    format!("External data source {}: {message}", source.name),
                );
            }
        }
    }
    if let Err(message) = shared.connect().install(synced) {
        return error(StatusCode::CONFLICT, "sync_failed", message);
    }
    Json(json!({ "externalObjects": report })).into_response()
}

/// `GET /external-data-sources/{name}/callouts`: the callouts made, oldest first.
async fn callouts(State(shared): AppState, Path(name): Path<String>) -> Response {
    match shared.connect().callouts(&name) {
        Some(callouts) => Json(json!({ "callouts": callouts })).into_response(),
        None => unknown_source(&name),
    }
}

/// `DELETE /external-data-sources/{name}/callouts`: forgets the log.
async fn clear_callouts(State(shared): AppState, Path(name): Path<String>) -> Response {
    if shared.connect().clear_callouts(&name) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        unknown_source(&name)
    }
}
