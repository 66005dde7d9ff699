//! Large runs of writes through Bulk API 2.0 ingest jobs (ordered writes only, as in
//! Heroku Connect).
//!
//! A run is a stretch of consecutive planned batches of one table and one action, with no
//! record twice (a job processes its rows in parallel, so two changes of one record must
//! not share one), of at least the connection's `bulk_write_threshold` changes. It goes as
//! one job (upsert by the upsert field for inserts when there is one); see `bulk_job` for
//! the job's life. This module chooses runs and builds their upload.

use std::collections::{HashSet, VecDeque};

use pgforce_salesforce::{ApiErrorCode, RecordError};
use pgforce_store::ddl::PgType;

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
pub(super) fn upload(mapping: &Mapping, batch: &Batch) -> (Vec<String>, Vec<Vec<Option<String>>>) {
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
pub(super) fn record_error(text: &str) -> RecordError {
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

/// The key a result row is matched by: the uploaded values (`#N/A` for null) joined.
pub(super) fn row_key<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> String {
    let parts: Vec<String> = values.into_iter().map(|v| v.as_ref().to_owned()).collect();
    parts.join("\u{1f}")
}

/// The key of an upload row (`None` is `#N/A`).
pub(super) fn upload_key(row: &[Option<String>]) -> String {
    row_key(row.iter().map(|v| v.as_deref().unwrap_or("#N/A")))
}
