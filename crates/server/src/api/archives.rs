//! Archive jobs through the API: started by operators or by Salesforce itself (an Apex
//! callout or a Flow HTTP action with an `archive` token), answered at once with the job's
//! id; the job runs in `pgforce run` and its status is read here.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pgforce_sync::{ArchiveJob, ArchiveRequest, ConnectionId, Engine};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Body, Segments};
use crate::auth::Caller;
use crate::problem::Problem;

type Answer = Result<Response, Problem>;

/// What `POST /connections/{id}/archives` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewArchive {
    object: String,
    #[serde(rename = "where")]
    where_clause: String,
    #[serde(default)]
    hard_delete: bool,
    #[serde(default)]
    publish: bool,
}

/// Where a job's status is read.
fn status_url(id: i64) -> String {
    format!("/api/v3/archives/{id}")
}

/// A job as the API shows it.
pub fn job(job: &ArchiveJob) -> Value {
    json!({
        "id": job.id,
        "connection_id": job.connection_id.get(),
        "object": job.object,
        "where": job.where_clause,
        "hard_delete": job.hard_delete,
        "state": job.state.as_str(),
        "step": job.step.as_str(),
        "counts": {
            "selected": job.selected,
            "verified": job.verified,
            "deleted": job.deleted,
            "failed": job.failed,
        },
        "error": job.error,
        "status_url": status_url(job.id),
    })
}

fn not_found(what: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", format!("no {what}"))
}

/// Checks and records a job; `202` with its id and where to read its status.
pub(super) async fn create_archive(
    caller: Caller,
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
    Body(body): Body,
) -> Answer {
    let connection = id
        .parse::<i64>()
        .map(ConnectionId::from)
        .map_err(|_| not_found(&format!("connection with id {id}")))?;
    let asked: NewArchive = serde_json::from_str(&body).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            format!("archive: {e}"),
        )
    })?;
    let request = ArchiveRequest {
        connection: engine.connection_name(connection).await?,
        object: asked.object,
        where_clause: asked.where_clause,
        hard_delete: asked.hard_delete,
    };
    let created = engine.create_archive(&request).await?;
    let published = if asked.publish {
        Some(engine.publish_archive(created.id).await?.0)
    } else {
        None
    };
    let detail = job(&created);
    if let Err(error) = engine
        .admin()
        .audit(
            caller.name(),
            "archive.create",
            &format!("archive job {}", created.id),
            None,
            Some(&detail),
        )
        .await
    {
        tracing::error!(error = %error.chain(), "could not record an archive job in the audit trail");
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": created.id,
            "status_url": status_url(created.id),
            "entity_set": published,
        })),
    )
        .into_response())
}

/// A job's state, step and counts.
pub(super) async fn read_archive(
    State(engine): State<Engine>,
    Segments(id): Segments<String>,
) -> Answer {
    let id = id
        .parse::<i64>()
        .map_err(|_| not_found(&format!("archive job {id}")))?;
    let found = engine.archive_job(id).await?;
    Ok(Json(job(&found)).into_response())
}
