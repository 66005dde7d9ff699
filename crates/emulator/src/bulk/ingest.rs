//! Processing an ingest job: each uploaded row becomes a create, update, upsert or delete
//! through the org's normal write path (same validation and errors as REST), in internal
//! batches of 10,000 rows, each batch one transaction with a savepoint per row, so a bad
//! row fails alone. Injected faults make a job fail as a whole, fail partway (keeping the
//! results of the rows it processed), or refuse chosen rows with UNABLE_TO_LOCK_ROW.

use serde_json::{Map, Value as Json};

use super::csv;
use super::jobs::{JobKind, JobState, RowResult};
use crate::api::collections::resolve;
use crate::api::sobjects::lock_row_error;
use crate::datetime;
use crate::error::ApiError;
use crate::faults::LockedRecords;
use crate::org::{FieldType, ObjectIndex, RecordRef, Schema, UpsertOutcome};
use crate::state::Shared;

/// Rows per internal batch (Salesforce splits uploads the same way).
const INTERNAL_BATCH: usize = 10_000;

/// Faults chosen for one ingest job when it was closed (scripted steps of the close call).
#[derive(Debug, Clone, Default)]
pub struct JobFaults {
    /// Rows refused with UNABLE_TO_LOCK_ROW, by position in the upload.
    pub locked_rows: LockedRecords,
    /// The job processes part of its rows, then fails.
    pub partial_failure: bool,
}

/// What the job asks for, copied out of the store.
struct Work {
    operation: String,
    object: ObjectIndex,
    key_field: Option<usize>,
    user: RecordRef,
    origin: std::sync::Arc<str>,
    delimiter: u8,
    upload: Vec<u8>,
    locked_rows: LockedRecords,
}

/// Processes the job's upload; the job ends `JobComplete` or `Failed`.
///
/// A job failing as a whole (`bulkJobFailureRate`) processes nothing. A job failing partway
/// (`bulkJobPartialFailureRate` or a scripted step) processes its first rows — the share
/// `bulkPartialProcessedShare` — for real, then fails: its processed rows keep their
/// results and the rest are unprocessed, as Salesforce keeps the results of the batches a
/// failed job did process.
pub async fn process(shared: &Shared, job_id: &str, job_faults: JobFaults) {
    let started = std::time::Instant::now();
    let Some(work) = take_work(shared, job_id, job_faults.locked_rows) else {
        return;
    };
    let faults = shared.faults();
    if faults.draw_bulk_job_failure() {
        shared.stats.record_fault();
        fail(
            shared,
            job_id,
            "InternalServerError : the job failed in Salesforce (injected fault)".to_owned(),
        );
        return;
    }
    let parsed = csv::read(&work.upload, work.delimiter).and_then(|(header, rows)| {
        check_header(shared.org().schema(), work.object, &work.operation, &header)?;
        Ok((header, rows))
    });
    let (header, rows) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => {
            fail(shared, job_id, message);
            return;
        }
    };
    let partial = job_faults.partial_failure || {
        let drawn = faults.draw_bulk_partial_failure();
        if drawn {
            shared.stats.record_fault();
        }
        drawn
    };
    let processed = if partial {
        faults.partially_processed_rows(rows.len())
    } else {
        rows.len()
    };
    let results = write_rows(shared, job_id, &work, &header, &rows[..processed]).await;
    let failure = partial.then(|| {
        format!(
            "InternalServerError : the job failed after processing {} of {} records (injected fault)",
            results.len(),
            rows.len()
        )
    });
    let written = results.iter().filter(|r| r.outcome.is_ok()).count() as u64;
    shared.stats.record_records(written, 0);
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    finish(shared, job_id, move |job| {
        job.records_processed = results.len() as u64;
        job.records_failed = results.len() as u64 - written;
        job.processing_ms = elapsed;
        if let JobKind::Ingest {
            header: kept_header,
            rows: kept_rows,
            results: kept_results,
            ..
        } = &mut job.kind
        {
            *kept_header = header;
            *kept_rows = rows;
            *kept_results = results;
        }
        if job.state == JobState::Aborted {
            return;
        }
        match failure {
            Some(message) => {
                job.error_message = Some(message);
                job.set_state(JobState::Failed);
            }
            None => job.set_state(JobState::JobComplete),
        }
    });
}

/// Writes rows in internal batches, each one transaction with a savepoint per row, and
/// returns one result per row written (fewer when the job is aborted meanwhile).
async fn write_rows(
    shared: &Shared,
    job_id: &str,
    work: &Work,
    header: &[String],
    rows: &[Vec<String>],
) -> Vec<RowResult> {
    let mut results = Vec::with_capacity(rows.len());
    for (batch_number, batch) in rows.chunks(INTERNAL_BATCH).enumerate() {
        if aborted(shared, job_id) {
            break;
        }
        {
            let mut org = shared.org_mut();
            let mut txn = org
                .begin(work.user)
                .with_origin(std::sync::Arc::clone(&work.origin));
            for (offset, row) in batch.iter().enumerate() {
                let index = batch_number * INTERNAL_BATCH + offset;
                results.push(write_row(&mut txn, work, header, row, index));
            }
        }
        let written = results.iter().filter(|r| r.outcome.is_ok()).count() as u64;
        finish(shared, job_id, |job| {
            job.records_processed = results.len() as u64;
            job.records_failed = results.len() as u64 - written;
        });
        // Let queries and other calls in between batches, as the real org does.
        tokio::task::yield_now().await;
    }
    results
}

/// Writes one row inside the batch's transaction; a failed row is rolled back alone.
fn write_row(
    txn: &mut crate::org::Txn<'_>,
    work: &Work,
    header: &[String],
    row: &[String],
    index: usize,
) -> RowResult {
    let id = row_id(header, row).unwrap_or_default();
    let outcome = if work.locked_rows.contains(index) {
        Err(lock_row_error(&id))
    } else {
        let savepoint = txn.savepoint();
        let outcome = apply(txn, work, header, row);
        if outcome.is_err() {
            txn.rollback_to(savepoint);
        }
        outcome
    };
    match outcome {
        Ok((id, created)) => RowResult {
            row: index,
            id,
            outcome: Ok(created),
        },
        Err(error) => RowResult {
            row: index,
            id,
            outcome: Err(format!(
                "{}:{}:{} --",
                error.code,
                error.message,
                error.fields.join(",")
            )),
        },
    }
}

/// Ends the job `Failed` with a message, having processed nothing.
fn fail(shared: &Shared, job_id: &str, message: String) {
    finish(shared, job_id, |job| {
        job.error_message = Some(message);
        job.set_state(JobState::Failed);
    });
}

/// Copies what processing needs out of the store and marks the job InProgress.
fn take_work(shared: &Shared, job_id: &str, locked_rows: LockedRecords) -> Option<Work> {
    let mut jobs = shared.jobs();
    let job = jobs.get_mut(job_id)?;
    let JobKind::Ingest {
        operation,
        external_id_field,
        uploads,
        ..
    } = &job.kind
    else {
        return None;
    };
    let org = shared.org();
    let schema = org.schema();
    let object = schema.object_index(&job.object)?;
    let key_field = external_id_field
        .as_deref()
        .and_then(|name| schema.object(object).field_index(name));
    let work = Work {
        operation: operation.clone(),
        object,
        key_field,
        user: job.user,
        origin: std::sync::Arc::clone(&job.origin),
        delimiter: job.format.delimiter,
        upload: uploads.first().map(|b| b.to_vec()).unwrap_or_default(),
        locked_rows,
    };
    job.set_state(JobState::InProgress);
    Some(work)
}

fn finish(shared: &Shared, job_id: &str, change: impl FnOnce(&mut super::Job)) {
    if let Some(job) = shared.jobs().get_mut(job_id) {
        change(job);
        job.system_modstamp = datetime::now_millis();
    }
}

fn aborted(shared: &Shared, job_id: &str) -> bool {
    shared
        .jobs()
        .get(job_id)
        .is_none_or(|job| job.state == JobState::Aborted)
}

/// Every column must name a field of the object, or `Relationship.Field`.
fn check_header(
    schema: &Schema,
    object: ObjectIndex,
    operation: &str,
    header: &[String],
) -> Result<(), String> {
    let def = schema.object(object);
    for column in header {
        let known = match column.split_once('.') {
            Some((relationship, _)) => def.relationship_field(relationship).is_some(),
            None => def.field_index(column).is_some(),
        };
        if !known {
            return Err(format!("InvalidBatch : Field name not found : {column}"));
        }
    }
    let needs_id = matches!(operation, "update" | "delete" | "hardDelete");
    if needs_id && !header.iter().any(|c| c.eq_ignore_ascii_case("Id")) {
        return Err("InvalidBatch : Field name not found : Id".to_owned());
    }
    Ok(())
}

fn row_id(header: &[String], row: &[String]) -> Option<String> {
    header
        .iter()
        .position(|c| c.eq_ignore_ascii_case("Id"))
        .and_then(|i| row.get(i).cloned())
}

/// A CSV value as the JSON the write path takes for the field's type.
fn typed(field_type: Option<FieldType>, text: &str) -> Json {
    if text == "#N/A" {
        return Json::Null;
    }
    match field_type {
        Some(FieldType::Boolean) => match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Json::Bool(true),
            "false" | "0" => Json::Bool(false),
            _ => Json::String(text.to_owned()),
        },
        Some(FieldType::Int) => text
            .parse::<i64>()
            .map_or_else(|_| Json::String(text.to_owned()), Json::from),
        Some(FieldType::Double | FieldType::Currency | FieldType::Percent) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Json::String(text.to_owned()), Json::Number),
        _ => Json::String(text.to_owned()),
    }
}

/// The row as a write body: empty fields left out (unchanged), `Rel.Field` as a parent
/// reference by that field.
fn body(
    schema: &Schema,
    object: ObjectIndex,
    header: &[String],
    row: &[String],
) -> Map<String, Json> {
    let def = schema.object(object);
    let mut body = Map::new();
    for (column, text) in header.iter().zip(row) {
        if text.is_empty() || column.eq_ignore_ascii_case("Id") {
            continue;
        }
        match column.split_once('.') {
            Some((relationship, field)) => {
                body.insert(
                    relationship.to_owned(),
                    Json::Object(Map::from_iter([(
                        field.to_owned(),
                        Json::String(text.clone()),
                    )])),
                );
            }
            None => {
                let field_type = def.field(column).map(|f| f.field_type);
                body.insert(column.clone(), typed(field_type, text));
            }
        }
    }
    body
}

/// Applies one row; returns the record's Id and whether it was created.
fn apply(
    txn: &mut crate::org::Txn<'_>,
    work: &Work,
    header: &[String],
    row: &[String],
) -> Result<(String, bool), ApiError> {
    let schema = std::sync::Arc::clone(txn.org().schema());
    let body = body(&schema, work.object, header, row);
    let id = row_id(header, row).unwrap_or_default();
    match work.operation.as_str() {
        "insert" => {
            let created = txn.create(work.object, &body)?;
            Ok((created.id18(&schema), true))
        }
        "update" => {
            let target = resolve(txn, work.object, &id)?;
            txn.update(target, &body)?;
            Ok((target.id18(&schema), false))
        }
        "upsert" => {
            let key_field = work.key_field.ok_or_else(|| {
                ApiError::bad_request("INVALIDJOB", "the external id field is not on the object")
            })?;
            let key_name = &schema.object(work.object).fields[key_field].name;
            let key = header
                .iter()
                .position(|c| c.eq_ignore_ascii_case(key_name))
                .and_then(|i| row.get(i))
                .cloned()
                .unwrap_or_default();
            match txn.upsert(work.object, key_field, &key, &body)? {
                UpsertOutcome::Created(r) => Ok((r.id18(&schema), true)),
                UpsertOutcome::Updated(r) => Ok((r.id18(&schema), false)),
                UpsertOutcome::Multiple(_) => Err(ApiError::bad_request(
                    "DUPLICATE_EXTERNAL_ID",
                    format!("{key_name}: more than one record found for external id field"),
                )
                .with_fields(vec![key_name.clone()])),
            }
        }
        _ => {
            let target = resolve(txn, work.object, &id)?;
            txn.delete(target)?;
            Ok((target.id18(&schema), false))
        }
    }
}
