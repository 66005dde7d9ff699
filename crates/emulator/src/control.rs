//! The control API under `/__emulator`: what tests, benchmarks and demos use to shape the
//! org (reset, seed, undelete, change the schema), inject faults, expire sessions, revoke
//! and restore credentials, set limits, run a workload and read statistics. It is not part of Salesforce's API and needs no session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use crate::api::describe::field_json;
use crate::faults::FaultConfig;
use crate::faults::script::ScriptStep;
use crate::org::{FieldChange, FieldSpec, SchemaChangeError};
use crate::seed;
use crate::state::Shared;
use crate::workload::WorkloadSpec;

/// The path prefix of the control API.
pub const CONTROL_PREFIX: &str = "/__emulator";

type AppState = State<Arc<Shared>>;

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "bad_request", "message": message.into() })),
    )
        .into_response()
}

/// Routes of the control API (to be nested under [`CONTROL_PREFIX`]).
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/reset", post(reset))
        .route("/seed", post(seed_records))
        .route("/undelete", post(undelete))
        .route("/faults", get(get_faults).put(put_faults))
        .route(
            "/faults/script",
            get(get_script).post(append_script).delete(clear_script),
        )
        .route("/sessions/expire", post(expire_sessions))
        .route("/events/expire", post(expire_events))
        .route("/events/cut", post(cut_streams))
        .route("/events/cdc", get(cdc_entities).put(put_cdc_entities))
        .route("/events/cdc/allocation", put(put_cdc_allocation))
        .route("/credentials", get(credentials))
        .route("/credentials/revoke", post(revoke_credentials))
        .route("/credentials/restore", post(restore_credentials))
        .route("/sessions", put(put_sessions))
        .route(
            "/refresh-tokens",
            get(refresh_tokens).post(mint_refresh_token),
        )
        .route("/limits", put(put_limits))
        .route(
            "/workload",
            get(workload_status)
                .post(start_workload)
                .delete(stop_workload),
        )
        .route("/stats", get(stats))
        .route("/schema/{object}/fields", post(add_field))
        .route(
            "/schema/{object}/fields/{field}",
            patch(alter_field).delete(remove_field),
        )
        .route(
            "/schema/{object}/fields/{field}/access",
            put(set_field_access),
        )
        .merge(crate::connect::control::router())
}

/// `POST /reset`: removes every record but the users, closes cursors, zeroes counters.
async fn reset(State(shared): AppState) -> Response {
    shared.workload.stop().await;
    {
        let mut org = shared.org_mut();
        org.reset();
        crate::cometd::push_topic::resync_watches(&mut org);
    }
    shared.cursors().clear();
    shared.jobs().clear();
    shared.stats.reset();
    let (_, limit) = shared.usage.snapshot();
    shared.usage.set(0, Some(limit));
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /seed` with `{"Account": 1000, "Contact": 3000}`: creates realistic records, in
/// the order given (parents first, so children can reference them).
async fn seed_records(
    State(shared): AppState,
    Json(plan): Json<serde_json::Map<String, JsonValue>>,
) -> Response {
    let plan: Result<seed::SeedPlan, String> = plan
        .into_iter()
        .map(|(name, count)| {
            count
                .as_u64()
                .and_then(|c| usize::try_from(c).ok())
                .map(|c| (name.clone(), c))
                .ok_or_else(|| format!("count for {name} must be a whole number"))
        })
        .collect();
    let plan = match plan {
        Ok(plan) => plan,
        Err(message) => return bad_request(message),
    };
    let worker = Arc::clone(&shared);
    match tokio::task::spawn_blocking(move || seed::seed(&worker, &plan)).await {
        Ok(Ok(created)) => {
            let created: BTreeMap<String, usize> = created.into_iter().collect();
            Json(json!({ "created": created })).into_response()
        }
        Ok(Err(message)) => bad_request(message),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "seeding task failed").into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UndeleteRequest {
    ids: Vec<String>,
}

/// `POST /undelete` with `{"ids": [...]}`: restores records from the recycle bin, as a user
/// would in Salesforce's UI.
async fn undelete(State(shared): AppState, Json(request): Json<UndeleteRequest>) -> Response {
    let mut org = shared.org_mut();
    let user = org.admin();
    let mut results = Vec::with_capacity(request.ids.len());
    let targets: Vec<_> = request
        .ids
        .iter()
        .map(|id| (id.clone(), org.resolve_id(id)))
        .collect();
    let mut txn = org.begin(user);
    for (id, target) in targets {
        let outcome = match target {
            Ok(target) => txn
                .undelete(target)
                .map_err(|e| format!("{}: {}", e.code, e.message)),
            Err(_) => Err("NOT_FOUND: no such record".to_owned()),
        };
        results.push(match outcome {
            Ok(()) => json!({ "id": id, "success": true }),
            Err(message) => json!({ "id": id, "success": false, "error": message }),
        });
    }
    Json(JsonValue::Array(results)).into_response()
}

async fn get_faults(State(shared): AppState) -> Response {
    Json(shared.faults()).into_response()
}

/// `PUT /faults` with a [`FaultConfig`]: replaces the faults in force.
async fn put_faults(State(shared): AppState, Json(faults): Json<FaultConfig>) -> Response {
    if let Err(message) = faults.validate() {
        return bad_request(message);
    }
    shared.set_faults(faults.clone());
    Json(faults).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptRequest {
    steps: Vec<ScriptStep>,
}

fn script_body(shared: &Shared) -> Response {
    Json(json!({ "steps": shared.fault_script().steps() })).into_response()
}

/// `GET /faults/script`: the scripted faults still to happen, in order.
async fn get_script(State(shared): AppState) -> Response {
    script_body(&shared)
}

/// `POST /faults/script` with `{"steps": [...]}`: appends one-shot faults; answers what is
/// left to happen.
async fn append_script(State(shared): AppState, Json(request): Json<ScriptRequest>) -> Response {
    if let Err(message) = shared.fault_script().append(request.steps) {
        return bad_request(message);
    }
    script_body(&shared)
}

/// `DELETE /faults/script`: forgets every scripted fault.
async fn clear_script(State(shared): AppState) -> Response {
    shared.fault_script().clear();
    script_body(&shared)
}

/// `POST /sessions/expire`: every access token stops working now.
async fn expire_sessions(State(shared): AppState) -> Response {
    let expired = shared.sessions().expire_all();
    Json(json!({ "expired": expired })).into_response()
}

/// `POST /events/expire`: forgets every stored change event, so the replay ids handed
/// out so far are refused as expired.
async fn expire_events(State(shared): AppState) -> Response {
    let mut org = shared.org_mut();
    let through = org.changes().latest_replay();
    org.changes_mut().expire_all();
    Json(json!({ "expiredThrough": through })).into_response()
}

/// `POST /events/cut`: ends every open event stream (CometD connects, Pub/Sub
/// subscriptions) at once, as a network cut would.
async fn cut_streams(State(shared): AppState) -> Response {
    shared.cut_streams();
    Json(json!({ "cut": true })).into_response()
}

/// `GET /events/cdc`: the objects selected for Change Data Capture.
async fn cdc_entities(State(shared): AppState) -> Response {
    let org = shared.org();
    let names: Vec<&str> = org
        .changes()
        .cdc_entities()
        .map(|o| org.schema().object(o).name.as_str())
        .collect();
    let allocation = org.changes().cdc_allocation();
    Json(json!({ "entities": names, "allocation": allocation })).into_response()
}

#[derive(Deserialize)]
struct CdcAllocation {
    /// How many entities may be selected; `null`: no limit (the add-on licence).
    entities: Option<usize>,
}

/// `PUT /events/cdc/allocation {"entities": 5}` (or `null`): how many entities the org may
/// select for Change Data Capture through the Tooling API; selections already made stay.
async fn put_cdc_allocation(
    State(shared): AppState,
    Json(allocation): Json<CdcAllocation>,
) -> Response {
    shared
        .org_mut()
        .changes_mut()
        .set_cdc_allocation(allocation.entities);
    Json(json!({ "allocation": allocation.entities })).into_response()
}

#[derive(Deserialize)]
struct CdcSelection {
    entities: Vec<String>,
}

/// `PUT /events/cdc {"entities": ["Account", ...]}`: selects exactly these objects for
/// Change Data Capture (Salesforce's channel members of `ChangeEvents`).
async fn put_cdc_entities(
    State(shared): AppState,
    Json(selection): Json<CdcSelection>,
) -> Response {
    let mut org = shared.org_mut();
    let schema = Arc::clone(org.schema());
    let mut objects = Vec::new();
    for name in &selection.entities {
        match schema.object_index(name) {
            Some(object) => objects.push(object),
            None => return bad_request(format!("no object named {name}")),
        }
    }
    let current: Vec<_> = org.changes().cdc_entities().collect();
    for object in current {
        org.changes_mut().disable_cdc(object);
    }
    for object in objects {
        org.changes_mut().enable_cdc(object);
    }
    Json(json!({ "entities": selection.entities })).into_response()
}

/// `GET /credentials`: whether the user's credentials are revoked.
async fn credentials(State(shared): AppState) -> Response {
    let revoked = shared.sessions().credentials_revoked();
    Json(json!({ "revoked": revoked })).into_response()
}

/// `POST /credentials/revoke`: ends every session and refuses every login until restored.
async fn revoke_credentials(State(shared): AppState) -> Response {
    let ended = shared.sessions().revoke_credentials();
    Json(json!({ "revoked": true, "sessionsEnded": ended })).into_response()
}

/// `POST /credentials/restore`: logins work again (ended sessions stay ended).
async fn restore_credentials(State(shared): AppState) -> Response {
    shared.sessions().restore_credentials();
    Json(json!({ "revoked": false })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SessionSettings {
    lifetime_seconds: u64,
}

/// `PUT /sessions` with `{"lifetimeSeconds": N}`: how long new tokens live.
async fn put_sessions(State(shared): AppState, Json(settings): Json<SessionSettings>) -> Response {
    shared
        .sessions()
        .set_lifetime(Duration::from_secs(settings.lifetime_seconds));
    Json(json!({ "lifetimeSeconds": settings.lifetime_seconds })).into_response()
}

/// `GET /refresh-tokens`: how many refresh tokens are valid (a client that revokes what it
/// does not keep leaves none behind).
async fn refresh_tokens(State(shared): AppState) -> Response {
    let count = shared.sessions().refresh_token_count();
    Json(json!({ "valid": count })).into_response()
}

/// `POST /refresh-tokens`: a new refresh token for the administrator.
async fn mint_refresh_token(State(shared): AppState) -> Response {
    let token = shared.sessions().mint_refresh_token();
    Json(json!({ "refresh_token": token })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LimitSettings {
    daily_api_requests: Option<u64>,
    used: Option<u64>,
}

/// `PUT /limits` with `{"dailyApiRequests": N, "used": M}`.
async fn put_limits(State(shared): AppState, Json(settings): Json<LimitSettings>) -> Response {
    let (used, _) = shared.usage.snapshot();
    shared
        .usage
        .set(settings.used.unwrap_or(used), settings.daily_api_requests);
    let (used, limit) = shared.usage.snapshot();
    Json(json!({ "used": used, "dailyApiRequests": limit })).into_response()
}

async fn workload_status(State(shared): AppState) -> Response {
    Json(shared.workload.status().await).into_response()
}

/// `POST /workload` with a [`WorkloadSpec`] (all fields optional).
async fn start_workload(State(shared): AppState, Json(spec): Json<WorkloadSpec>) -> Response {
    match shared.workload.start(Arc::clone(&shared), spec).await {
        Ok(()) => Json(shared.workload.status().await).into_response(),
        Err(message) => bad_request(message),
    }
}

async fn stop_workload(State(shared): AppState) -> Response {
    shared.workload.stop().await;
    Json(shared.workload.status().await).into_response()
}

/// `GET /stats`: API calls by endpoint and object, usage, record counts.
async fn stats(State(shared): AppState) -> Response {
    let records: BTreeMap<String, JsonValue> = {
        let org = shared.org();
        org.schema()
            .objects()
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                let table = org.table(crate::org::ObjectIndex::try_from(i).ok()?);
                Some((
                    o.name.clone(),
                    json!({ "live": table.live_count(), "deleted": table.deleted_count() }),
                ))
            })
            .collect()
    };
    let (used, limit) = shared.usage.snapshot();
    Json(json!({
        "api": shared.stats.snapshot(),
        "bulkJobs": shared.jobs().created,
        "usage": { "used": used, "dailyApiRequests": limit },
        "records": records,
        "workload": shared.workload.status().await,
    }))
    .into_response()
}

/// A refused schema change: 404 for an object or field that does not exist, else 400.
fn schema_change_error(error: &SchemaChangeError) -> Response {
    match error {
        SchemaChangeError::UnknownObject(_) | SchemaChangeError::UnknownField { .. } => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "not_found", "message": error.to_string() })),
        )
            .into_response(),
        SchemaChangeError::Invalid(_) => bad_request(error.to_string()),
    }
}

/// `POST /schema/{object}/fields` with a field as schema files declare it: adds a custom
/// field; answers 201 with the field as describe shows it.
async fn add_field(
    State(shared): AppState,
    Path(object): Path<String>,
    Json(spec): Json<FieldSpec>,
) -> Response {
    match shared.org_mut().add_field(&object, &spec) {
        Ok(field) => (StatusCode::CREATED, Json(field_json(&field))).into_response(),
        Err(error) => schema_change_error(&error),
    }
}

/// `PATCH /schema/{object}/fields/{field}` with a [`FieldChange`]: alters a custom field and
/// converts its values; answers the field as describe shows it.
async fn alter_field(
    State(shared): AppState,
    Path((object, field)): Path<(String, String)>,
    Json(change): Json<FieldChange>,
) -> Response {
    match shared.org_mut().alter_field(&object, &field, &change) {
        Ok(field) => Json(field_json(&field)).into_response(),
        Err(error) => schema_change_error(&error),
    }
}

/// `DELETE /schema/{object}/fields/{field}`: deletes a custom field and its values.
async fn remove_field(
    State(shared): AppState,
    Path((object, field)): Path<(String, String)>,
) -> Response {
    match shared.org_mut().remove_field(&object, &field) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => schema_change_error(&error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldAccess {
    readable: bool,
}

/// `PUT /schema/{object}/fields/{field}/access` with `{"readable": false}`: takes the API
/// user's read access to a field away (or gives it back).
async fn set_field_access(
    State(shared): AppState,
    Path((object, field)): Path<(String, String)>,
    Json(access): Json<FieldAccess>,
) -> Response {
    match shared
        .org_mut()
        .set_field_readable(&object, &field, access.readable)
    {
        Ok(()) => Json(json!({ "readable": access.readable })).into_response(),
        Err(error) => schema_change_error(&error),
    }
}
