//! Bulk API 2.0 over HTTP: `/jobs/query…` and `/jobs/ingest…`.
//!
//! Job creation answers at once; the work happens in a background task that moves the job
//! through Salesforce's states, so clients poll as they must against a real org. Results
//! are CSV pages (`Sforce-Locator`, `Sforce-NumberOfRecords`, `maxRecords`).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::context::RequestContext;
use super::rest::{ApiResult, json_response};
use crate::bulk::csv::{self, Format};
use crate::bulk::ingest;
use crate::bulk::jobs::{Job, JobKind, JobState};
use crate::datetime;
use crate::error::ApiError;
use crate::org::RecordRef;
use crate::query;
use crate::state::Shared;

/// How long each background step of a job takes at least (jobs are never done at once).
const STEP: Duration = Duration::from_millis(5);
/// Records per results page when the client sets no `maxRecords`.
const DEFAULT_MAX_RECORDS: usize = 50_000;
/// The largest upload Salesforce takes (150 MB base64 ≈ 100 MB raw).
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;
/// The query-string value of `Sforce-Locator` on the last page.
const NO_MORE: &str = "null";

fn invalid_job(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("INVALIDJOB", message)
}

fn string_field<'a>(body: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Json::as_str)
}

/// The delimiter and line ending a create body asks for (defaults COMMA and LF).
fn format_of(body: &Map<String, Json>) -> Result<(Format, String, String), ApiError> {
    let delimiter_name = string_field(body, "columnDelimiter").unwrap_or("COMMA");
    let line_name = string_field(body, "lineEnding").unwrap_or("LF");
    let delimiter = csv::delimiter(delimiter_name)
        .ok_or_else(|| invalid_job(format!("Invalid column delimiter: {delimiter_name}")))?;
    let line_ending = csv::line_ending(line_name)
        .ok_or_else(|| invalid_job(format!("Invalid line ending: {line_name}")))?;
    Ok((
        Format {
            delimiter,
            line_ending,
        },
        delimiter_name.to_owned(),
        line_name.to_owned(),
    ))
}

fn new_job(
    ctx: &RequestContext,
    id: String,
    kind: JobKind,
    object: String,
    state: JobState,
    format: (Format, String, String),
) -> Job {
    let now = datetime::now_millis();
    let schema = Arc::clone(ctx.shared.org().schema());
    Job {
        id,
        kind,
        object,
        state,
        user: ctx.user,
        origin: crate::events::change_origin("bulkapi", &ctx.version, &ctx.headers),
        created_by: ctx.user.id18(&schema),
        created_date: now,
        system_modstamp: now,
        api_version: ctx.version.clone(),
        format: format.0,
        column_delimiter: format.1,
        line_ending: format.2,
        records_processed: 0,
        records_failed: 0,
        error_message: None,
        processing_ms: 0,
    }
}

/// `POST /jobs/query`.
pub fn create_query(ctx: &RequestContext) -> ApiResult {
    let body = ctx.json_object()?;
    let operation = string_field(&body, "operation").unwrap_or("query");
    if !matches!(operation, "query" | "queryAll") {
        return Err(invalid_job(format!("Invalid operation: {operation}")));
    }
    let text = string_field(&body, "query")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| invalid_job("A query is required"))?
        .to_owned();
    let format = format_of(&body)?;
    let (object_index, object) = {
        let org = ctx.shared.org();
        let bound = query::bind(org.schema(), &text)
            .map_err(|e| ApiError::bad_request(e.code, e.message))?;
        if bound.count_only {
            return Err(ApiError::bad_request(
                "API_ERROR",
                "Aggregate Relationships and COUNT() are not supported with Bulk API 2.0 queries",
            ));
        }
        if bound.offset.is_some() {
            return Err(ApiError::bad_request(
                "API_ERROR",
                "OFFSET is not supported with Bulk API 2.0 queries",
            ));
        }
        let name = org.schema().object(bound.object).name.clone();
        (bound.object, name)
    };
    let id = ctx.shared.jobs().next_id();
    let kind = JobKind::Query {
        operation: operation.to_owned(),
        query: text,
        object_index,
        result: None,
    };
    let job = new_job(
        ctx,
        id.clone(),
        kind,
        object,
        JobState::UploadComplete,
        format,
    );
    let info = job.info();
    ctx.shared.jobs().insert(job);
    let shared = Arc::clone(&ctx.shared);
    tokio::spawn(async move { run_query(&shared, &id).await });
    Ok(json_response(StatusCode::OK, &info))
}

/// Moves a query job through InProgress to JobComplete, running its query in between.
async fn run_query(shared: &Shared, id: &str) {
    tokio::time::sleep(STEP).await;
    let Some((text, include_deleted)) = ({
        let mut jobs = shared.jobs();
        jobs.get_mut(id)
            .filter(|j| j.state == JobState::UploadComplete)
            .and_then(|job| {
                job.set_state(JobState::InProgress);
                match &job.kind {
                    JobKind::Query {
                        operation, query, ..
                    } => Some((query.clone(), operation == "queryAll")),
                    JobKind::Ingest { .. } => None,
                }
            })
    }) else {
        return;
    };
    tokio::time::sleep(STEP).await;
    let started = std::time::Instant::now();
    let result = {
        let org = shared.org();
        query::bind(org.schema(), &text).map(|bound| {
            let rows: Arc<[u64]> = query::execute(&org, &bound, include_deleted).into();
            (rows, Arc::new(bound.projection))
        })
    };
    let mut jobs = shared.jobs();
    let Some(job) = jobs.get_mut(id).filter(|j| j.state == JobState::InProgress) else {
        return;
    };
    job.processing_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok((rows, projection)) => {
            job.records_processed = rows.len() as u64;
            if let JobKind::Query { result, .. } = &mut job.kind {
                *result = Some((rows, projection));
            }
            job.set_state(JobState::JobComplete);
        }
        Err(error) => {
            job.error_message = Some(error.message);
            job.set_state(JobState::Failed);
        }
    }
}

/// `POST /jobs/ingest`.
pub fn create_ingest(ctx: &RequestContext) -> ApiResult {
    let body = ctx.json_object()?;
    let operation = string_field(&body, "operation").unwrap_or_default();
    if !matches!(
        operation,
        "insert" | "update" | "upsert" | "delete" | "hardDelete"
    ) {
        return Err(invalid_job(format!("Invalid operation: {operation}")));
    }
    if let Some(content_type) = string_field(&body, "contentType")
        && content_type != "CSV"
    {
        return Err(invalid_job(format!("Invalid content type: {content_type}")));
    }
    let name = string_field(&body, "object").unwrap_or_default();
    let (object, external_id_field) = {
        let org = ctx.shared.org();
        let schema = org.schema();
        let index = schema.object_index(name).ok_or_else(|| {
            ApiError::bad_request(
                "INVALIDENTITY",
                format!("Entity '{name}' is not supported by the Bulk API."),
            )
        })?;
        let def = schema.object(index);
        let external = match string_field(&body, "externalIdFieldName") {
            None if operation == "upsert" => {
                return Err(invalid_job("External ID was blank for upsert"));
            }
            None => None,
            Some(field) => {
                let found = def.field(field).filter(|f| f.external_id || f.name == "Id").ok_or_else(|| {
                    invalid_job(format!("Field name provided, {field} does not match an External ID field, Salesforce Id, or indexed field for {}", def.name))
                })?;
                Some(found.name.clone())
            }
        };
        (def.name.clone(), external)
    };
    let format = format_of(&body)?;
    let id = ctx.shared.jobs().next_id();
    let kind = JobKind::Ingest {
        operation: operation.to_owned(),
        external_id_field,
        uploads: Vec::new(),
        header: Vec::new(),
        rows: Vec::new(),
        results: Vec::new(),
    };
    let job = new_job(ctx, id, kind, object, JobState::Open, format);
    let info = job.info();
    ctx.shared.jobs().insert(job);
    Ok(json_response(StatusCode::OK, &info))
}

/// `PUT /jobs/ingest/{id}/batches`.
pub fn upload(ctx: &RequestContext, id: &str) -> ApiResult {
    if ctx.body.len() > MAX_UPLOAD_BYTES {
        return Err(invalid_job(format!(
            "The upload is {} bytes; the most one job takes is {MAX_UPLOAD_BYTES}",
            ctx.body.len()
        )));
    }
    let mut jobs = ctx.shared.jobs();
    let job = jobs
        .get_mut(id)
        .filter(|j| !j.is_query())
        .ok_or_else(ApiError::not_found)?;
    if job.state != JobState::Open {
        return Err(invalid_job(format!(
            "Job {id} is not open for uploads (state {})",
            job.state.as_str()
        )));
    }
    if let JobKind::Ingest { uploads, .. } = &mut job.kind {
        uploads.push(ctx.body.clone());
    }
    Ok(StatusCode::CREATED.into_response())
}

/// `PATCH /jobs/{kind}/{id}`: close (ingest) or abort.
pub fn change_state(ctx: &RequestContext, id: &str, query_job: bool) -> ApiResult {
    let body = ctx.json_object()?;
    let wanted = string_field(&body, "state").unwrap_or_default();
    let mut jobs = ctx.shared.jobs();
    let job = jobs
        .get_mut(id)
        .filter(|j| j.is_query() == query_job)
        .ok_or_else(ApiError::not_found)?;
    match wanted {
        "Aborted" => {
            if job.state.is_final() {
                return Err(invalid_job(format!(
                    "Job {id} is already {}",
                    job.state.as_str()
                )));
            }
            job.set_state(JobState::Aborted);
        }
        "UploadComplete" if !query_job => {
            if job.state != JobState::Open {
                return Err(invalid_job(format!(
                    "Job {id} is not open (state {})",
                    job.state.as_str()
                )));
            }
            let uploads = match &job.kind {
                JobKind::Ingest { uploads, .. } => uploads.len(),
                JobKind::Query { .. } => 0,
            };
            if uploads > 1 {
                job.error_message = Some(format!(
                    "Found multipe contents for job: <{id}>, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure you only do 'PUT' once on a given Job."
                ));
                job.set_state(JobState::Failed);
                return Err(invalid_job(job.error_message.clone().unwrap_or_default()));
            }
            if uploads == 0 {
                return Err(invalid_job(format!("No data was uploaded for job {id}")));
            }
            job.set_state(JobState::UploadComplete);
            let shared = Arc::clone(&ctx.shared);
            let id = id.to_owned();
            let job_faults = ingest::JobFaults {
                locked_rows: ctx.faults.locked.clone(),
                partial_failure: ctx.faults.bulk_partial_failure,
            };
            let queued = Duration::from_millis(ctx.shared.faults().bulk_job_delay_ms);
            tokio::spawn(async move {
                tokio::time::sleep(STEP + queued).await;
                ingest::process(&shared, &id, job_faults).await;
            });
        }
        other => return Err(invalid_job(format!("Invalid state change: {other}"))),
    }
    Ok(json_response(StatusCode::OK, &job.info()))
}

/// `GET /jobs/{kind}/{id}`.
pub fn info(ctx: &RequestContext, id: &str, query_job: bool) -> ApiResult {
    let jobs = ctx.shared.jobs();
    let job = jobs
        .get(id)
        .filter(|j| j.is_query() == query_job)
        .ok_or_else(ApiError::not_found)?;
    Ok(json_response(StatusCode::OK, &job.info()))
}

/// `GET /jobs/{kind}`.
pub fn list(ctx: &RequestContext, query_job: bool) -> ApiResult {
    let jobs = ctx.shared.jobs();
    let records: Vec<Json> = jobs.list(query_job).iter().map(|j| j.info()).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "done": true, "records": records, "nextRecordsUrl": null }),
    ))
}

/// `DELETE /jobs/{kind}/{id}`.
pub fn delete(ctx: &RequestContext, id: &str, query_job: bool) -> ApiResult {
    let mut jobs = ctx.shared.jobs();
    if jobs.get(id).is_none_or(|j| j.is_query() != query_job) {
        return Err(ApiError::not_found());
    }
    jobs.remove(id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn csv_response(body: String, records: usize, locator: Option<&str>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    if let Ok(value) = HeaderValue::from_str(&records.to_string()) {
        headers.insert("sforce-numberofrecords", value);
    }
    if let Some(locator) = locator
        && let Ok(value) = HeaderValue::from_str(locator)
    {
        headers.insert("sforce-locator", value);
    }
    response
}

/// `GET /jobs/query/{id}/results?locator=&maxRecords=`.
pub fn query_results(ctx: &RequestContext, id: &str) -> ApiResult {
    let (object, rows, projection, format) = {
        let jobs = ctx.shared.jobs();
        let job = jobs
            .get(id)
            .filter(|j| j.is_query())
            .ok_or_else(ApiError::not_found)?;
        if job.api_version != ctx.version {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "INVALIDJOB",
                format!(
                    "Job {id} was created with API version {}; read its results with that version",
                    job.api_version
                ),
            ));
        }
        match (&job.kind, job.state) {
            (
                JobKind::Query {
                    result: Some((rows, projection)),
                    object_index,
                    ..
                },
                JobState::JobComplete,
            ) => (
                *object_index,
                Arc::clone(rows),
                Arc::clone(projection),
                job.format,
            ),
            _ => {
                return Err(invalid_job(format!(
                    "Job {id} is not complete (state {})",
                    job.state.as_str()
                )));
            }
        }
    };
    let offset: usize = match ctx.param("locator").filter(|l| !l.is_empty()) {
        None => 0,
        Some(locator) => usize::from_str_radix(locator, 36)
            .ok()
            .filter(|o| *o <= rows.len())
            .ok_or_else(|| {
                ApiError::bad_request("INVALID_LOCATOR", format!("Invalid locator: {locator}"))
            })?,
    };
    let max = match ctx.param("maxRecords") {
        None => DEFAULT_MAX_RECORDS,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_MAX_RECORDS",
                    format!("maxRecords must be a positive number, got {text}"),
                )
            })?,
    };
    let end = (offset + max).min(rows.len());
    let org = ctx.shared.org();
    let mut out = String::with_capacity(200 * (end - offset) + 256);
    let names = csv::header(&projection);
    csv::push_row(&mut out, format, names.iter().map(|n| Some(n.as_str())));
    let mut values = Vec::with_capacity(names.len());
    for seq in &rows[offset..end] {
        values.clear();
        let record = org.get(RecordRef { object, seq: *seq });
        csv::row_values(&org, record, &projection, &mut values);
        csv::push_row(&mut out, format, values.iter().map(Option::as_deref));
    }
    drop(org);
    ctx.shared.stats.record_records(0, (end - offset) as u64);
    let next = if end < rows.len() {
        to_base36(end)
    } else {
        NO_MORE.to_owned()
    };
    Ok(csv_response(out, end - offset, Some(&next)))
}

fn to_base36(mut n: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[n % 36]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Which rows an ingest result endpoint lists.
#[derive(Debug, Clone, Copy)]
pub enum IngestResults {
    Successful,
    Failed,
    Unprocessed,
}

/// `GET /jobs/ingest/{id}/successfulResults|failedResults|unprocessedrecords`.
pub fn ingest_results(ctx: &RequestContext, id: &str, which: IngestResults) -> ApiResult {
    let jobs = ctx.shared.jobs();
    let job = jobs
        .get(id)
        .filter(|j| !j.is_query())
        .ok_or_else(ApiError::not_found)?;
    let JobKind::Ingest {
        header,
        rows,
        results,
        uploads,
        ..
    } = &job.kind
    else {
        return Err(ApiError::not_found());
    };
    let format = job.format;
    let mut out = String::new();
    let mut count = 0;
    match which {
        IngestResults::Successful | IngestResults::Failed => {
            let second = if matches!(which, IngestResults::Successful) {
                "sf__Created"
            } else {
                "sf__Error"
            };
            let names = ["sf__Id", second]
                .into_iter()
                .chain(header.iter().map(String::as_str));
            csv::push_row(&mut out, format, names.map(Some));
            for result in results {
                let second = match (&result.outcome, which) {
                    (Ok(created), IngestResults::Successful) => created.to_string(),
                    (Err(error), IngestResults::Failed) => error.clone(),
                    _ => continue,
                };
                let original = rows.get(result.row).map(Vec::as_slice).unwrap_or_default();
                let fields = [Some(result.id.as_str()), Some(second.as_str())]
                    .into_iter()
                    .chain(original.iter().map(|v| Some(v.as_str())));
                csv::push_row(&mut out, format, fields);
                count += 1;
            }
        }
        IngestResults::Unprocessed => {
            // Rows never processed: all of them before processing, the rest after an abort.
            let (names, pending): (Vec<String>, Vec<Vec<String>>) = if header.is_empty() {
                match uploads.first().map(|u| csv::read(u, format.delimiter)) {
                    Some(Ok((names, all))) => (names, all),
                    _ => (Vec::new(), Vec::new()),
                }
            } else {
                (
                    header.clone(),
                    rows.iter().skip(results.len()).cloned().collect(),
                )
            };
            if !names.is_empty() {
                csv::push_row(&mut out, format, names.iter().map(|n| Some(n.as_str())));
            }
            for row in &pending {
                csv::push_row(&mut out, format, row.iter().map(|v| Some(v.as_str())));
                count += 1;
            }
        }
    }
    Ok(csv_response(out, count, None))
}
