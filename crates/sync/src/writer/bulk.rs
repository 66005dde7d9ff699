//! Large runs of writes through Bulk API 2.0 ingest jobs (ordered writes only, as in
//! Heroku Connect).
//!
//! A run is a stretch of consecutive planned batches of one table and one action, with no
//! record twice (a job processes its rows in parallel, so two changes of one record must
//! not share one), of at least the connection's `bulk_write_threshold` changes. It goes as
//! one job (upsert by the upsert field for inserts when there is one); every result row is
//! matched back to the change it came from by its content, and recorded exactly as
//! collections results are. If the job cannot be run or fails as a whole, the run falls
//! back to collections and the reason is logged.

use std::collections::{HashMap, HashSet, VecDeque};

use pgforce_salesforce::bulk::JobKind;
use pgforce_salesforce::bulk::csv::push_row;
use pgforce_salesforce::bulk::ingest::IngestOperation;
use pgforce_salesforce::{ApiErrorCode, Client as Salesforce, RecordError};
use pgforce_store::ddl::PgType;

use super::send::Sent;
use crate::error_policy::{self, Decision};
use crate::mapping::Mapping;
use crate::plan::{Action, Batch, Change};

/// The longest stretch of pending batches that may go as one job, taken off the queue
/// when it holds at least `threshold` changes.
pub(super) fn take_run(pending: &mut VecDeque<Batch>, threshold: u64) -> Option<Vec<Batch>> {
    let first = pending.front()?;
    let (table, action) = (first.table.clone(), first.action);
    let mut records = HashSet::new();
    let mut count = 0;
    let mut length = 0;
    for batch in pending.iter() {
        if batch.table != table
            || batch.action != action
            || batch.changes.iter().any(|c| records.contains(&c.record_id))
        {
            break;
        }
        records.extend(batch.changes.iter().map(|c| c.record_id));
        count += batch.changes.len() as u64;
        length += 1;
    }
    (count >= threshold).then(|| pending.drain(..length).collect())
}

/// A Postgres text value as Bulk API CSV text (`None`: set to null).
fn csv_text(value: Option<&str>, pg_type: PgType) -> Option<String> {
    let text = value.filter(|t| !t.is_empty())?;
    Some(match pg_type {
        PgType::Boolean => (text == "t" || text == "true").to_string(),
        PgType::Timestamp => format!("{}Z", text.replacen(' ', "T", 1)),
        _ => text.to_owned(),
    })
}

/// The upload for a batch: header and one row per change (`None` is `#N/A`, `Some("")`
/// leaves the field unchanged).
fn upload(mapping: &Mapping, batch: &Batch) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let action = batch.action;
    let mut header: Vec<String> = Vec::new();
    let mut columns: Vec<(String, PgType)> = Vec::new();
    if action != Action::Insert {
        header.push("Id".to_owned());
    }
    if action != Action::Delete {
        for field in &mapping.fields {
            let writable = if action == Action::Insert {
                field.createable
            } else {
                field.updateable
            };
            let present = batch
                .changes
                .iter()
                .any(|c| c.values.contains_key(field.column.as_str()));
            if writable && present {
                header.push(field.api_name.clone());
                columns.push((field.column.as_str().to_owned(), field.pg_type));
            }
        }
        for reference in &mapping.references {
            if batch
                .changes
                .iter()
                .any(|c| c.values.contains_key(reference.column.as_str()))
            {
                header.push(format!(
                    "{}.{}",
                    reference.relationship, reference.external_field
                ));
                columns.push((reference.column.as_str().to_owned(), PgType::Text));
            }
        }
    }
    let rows = batch
        .changes
        .iter()
        .map(|change| {
            let mut row = Vec::with_capacity(header.len());
            if action != Action::Insert {
                row.push(change.sfid.clone());
            }
            for (column, pg_type) in &columns {
                row.push(match change.values.get(column) {
                    None => Some(String::new()),
                    Some(value) => csv_text(value.as_deref(), *pg_type),
                });
            }
            row
        })
        .collect();
    (header, rows)
}

/// `CODE:message:fields --` as a record error.
fn record_error(text: &str) -> RecordError {
    let text = text.trim_end_matches(" --").trim_end_matches("--");
    let mut parts = text.splitn(3, ':');
    let code = parts.next().unwrap_or_default();
    let message = parts.next().unwrap_or_default();
    let fields = parts
        .next()
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    RecordError {
        code: ApiErrorCode::parse(code),
        message: message.to_owned(),
        fields,
    }
}

/// Sends a run as one ingest job. `Ok`: one [`Sent`] per change and the calls made;
/// `Err`: why the job could not do the work (the caller falls back to collections).
pub(super) async fn send(
    sf: &Salesforce,
    mapping: &Mapping,
    batch: &Batch,
) -> Result<(Vec<Sent>, u64), pgforce_salesforce::Error> {
    let (operation, external_id) = match (batch.action, mapping.spec.upsert_field.as_deref()) {
        (Action::Insert, Some(field)) => (IngestOperation::Upsert, Some(field)),
        (Action::Insert, None) => (IngestOperation::Insert, None),
        (Action::Update, _) => (IngestOperation::Update, None),
        (Action::Delete, _) => (IngestOperation::Delete, None),
    };
    let (header, rows) = upload(mapping, batch);
    let mut csv = String::with_capacity(rows.len() * 128);
    push_row(&mut csv, &header.iter().map(Some).collect::<Vec<_>>());
    for row in &rows {
        push_row(&mut csv, row);
    }
    let job = sf
        .create_ingest_job(&mapping.object, operation, external_id)
        .await?;
    let mut calls = 1;
    sf.upload_and_close(&job, csv.into()).await?;
    calls += 2;
    let mut polls = 0;
    let done = sf
        .wait_for_job(JobKind::Ingest, &job.id, &mut |_| polls += 1)
        .await?;
    calls += polls;
    let results = sf.ingest_results(&done.id).await?;
    calls += 2;
    // Match every result to the change whose row it echoes.
    let mut by_row: HashMap<Vec<String>, VecDeque<usize>> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        let key = row
            .iter()
            .map(|v| v.clone().unwrap_or_else(|| "#N/A".to_owned()))
            .collect();
        by_row.entry(key).or_default().push_back(index);
    }
    let mut sent: Vec<Option<Sent>> = vec![None; rows.len()];
    for result in results {
        let Some(index) = by_row.get_mut(&result.row).and_then(VecDeque::pop_front) else {
            continue;
        };
        sent[index] = Some(match result.outcome {
            Ok(_) => Sent::Written(result.id),
            Err(error) => {
                let error = record_error(&error);
                match error_policy::decide_record(&error) {
                    Decision::Retry => Sent::Retry(format!("{}: {}", error.code, error.message)),
                    _ => Sent::Refused(error),
                }
            }
        });
    }
    let missing = sent.iter().filter(|s| s.is_none()).count();
    if missing > 0 {
        tracing::warn!(job = %done.id, missing, "bulk job returned no result for some rows; they will be sent again");
    }
    Ok((
        sent.into_iter()
            .map(|s| {
                s.unwrap_or_else(|| {
                    Sent::Retry("the bulk job gave no result for this row".to_owned())
                })
            })
            .collect(),
        calls,
    ))
}

/// The run's batches joined into one.
pub(super) fn join(run: &[Batch]) -> Option<Batch> {
    let first = run.first()?;
    let changes: Vec<Change> = run.iter().flat_map(|b| b.changes.iter().cloned()).collect();
    let merged_log_ids = run
        .iter()
        .flat_map(|b| b.merged_log_ids.iter().cloned())
        .collect();
    Some(Batch {
        table: first.table.clone(),
        action: first.action,
        changes,
        merged_log_ids,
    })
}
