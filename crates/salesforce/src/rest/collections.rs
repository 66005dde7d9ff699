//! sObject Collections: up to 200 records created, updated, upserted or deleted per call,
//! 2,000 retrieved, with one result per record in request order.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{Call, Client, Idempotency};
use crate::error::{ApiErrorCode, Error, RecordError, Result};
use crate::rest::{Record, segment};

/// The most records one write call takes.
pub const MAX_WRITE_RECORDS: usize = 200;
/// The most Ids one retrieve call takes.
pub const MAX_RETRIEVE_IDS: usize = 2000;

/// One record's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "WireResult")]
pub struct SaveResult {
    /// The record's Id.
    pub id: Option<String>,
    /// Whether the record was written.
    pub success: bool,
    /// For upserts: whether the record was created.
    pub created: Option<bool>,
    /// Why it was not.
    pub errors: Vec<RecordError>,
}

#[derive(Deserialize)]
struct WireResult {
    #[serde(default)]
    id: Option<String>,
    success: bool,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    errors: Vec<WireRecordError>,
}

#[derive(Deserialize)]
struct WireRecordError {
    #[serde(rename = "statusCode")]
    status_code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

impl From<WireResult> for SaveResult {
    fn from(wire: WireResult) -> Self {
        Self {
            id: wire.id,
            success: wire.success,
            created: wire.created,
            errors: wire
                .errors
                .into_iter()
                .map(|e| RecordError {
                    code: ApiErrorCode::parse(&e.status_code),
                    message: e.message,
                    fields: e.fields,
                })
                .collect(),
        }
    }
}

fn check_count(count: usize, max: usize, what: &str) -> Result<()> {
    if count > max {
        return Err(Error::InvalidArgument(format!(
            "{count} {what} in one collections call; Salesforce takes at most {max}"
        )));
    }
    Ok(())
}

/// Adds `attributes.type` to each record, as collections calls require.
fn typed(object: &str, records: &[Record]) -> Vec<Value> {
    records
        .iter()
        .map(|record| {
            let mut record = record.clone();
            record.insert("attributes".to_owned(), json!({ "type": object }));
            Value::Object(record)
        })
        .collect()
}

impl Client {
    /// Sends a collections write, then resends the records that failed only with transient
    /// errors (UNABLE_TO_LOCK_ROW), with backoff, until they settle or the retry policy
    /// runs out. A record that failed that way was not written, so resending it is safe
    /// even for creates. Under `allOrNone` a resend happens only when no record failed for
    /// good, and then the whole batch goes again.
    async fn write_batch(
        &self,
        count: usize,
        all_or_none: bool,
        build: impl Fn(&[usize]) -> Call,
    ) -> Result<Vec<SaveResult>> {
        let policy = self.config().retry;
        let started = std::time::Instant::now();
        let mut results: Vec<Option<SaveResult>> = vec![None; count];
        let mut pending: Vec<usize> = (0..count).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let call = build(&pending);
            let answer: Vec<SaveResult> = self.execute(&call).await?.json(&call.path)?;
            if answer.len() != pending.len() {
                return Err(Error::UnexpectedResponse {
                    path: call.path,
                    status: 200,
                    detail: format!("{} results for {} records", answer.len(), pending.len()),
                });
            }
            let transient = |r: &SaveResult| {
                !r.success
                    && !r.errors.is_empty()
                    && r.errors.iter().all(|e| {
                        e.code.is_transient()
                            || e.code == ApiErrorCode::AllOrNoneOperationRolledBack
                    })
            };
            let some_transient = answer
                .iter()
                .any(|r| !r.success && r.errors.iter().any(|e| e.code.is_transient()));
            let some_permanent = answer.iter().any(|r| !r.success && !transient(r));
            let retry = some_transient
                && !(all_or_none && some_permanent)
                && policy.allows(attempt, started.elapsed());
            let mut next = Vec::new();
            for (index, result) in pending.iter().zip(answer) {
                if retry && transient(&result) {
                    next.push(*index);
                } else {
                    results[*index] = Some(result);
                }
            }
            if !next.is_empty() {
                let wait = policy.backoff(attempt);
                tracing::warn!(
                    records = next.len(),
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "resending records that hit transient errors"
                );
                tokio::time::sleep(wait).await;
            }
            pending = next;
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every record got a final result"))
            .collect())
    }

    /// Creates records of one object. Records refused with transient errors are resent;
    /// an ambiguous failure of the whole call is not (see [`Error::may_have_been_applied`]):
    /// use [`Client::upsert_records`] to make creates safe to resend.
    pub async fn create_records(
        &self,
        object: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>> {
        let path = self.data_path("/composite/sobjects");
        self.write_records(
            Method::POST,
            &path,
            object,
            records,
            all_or_none,
            Idempotency::NotIdempotent,
        )
        .await
    }

    /// Updates records of one object; each record carries its `Id`.
    pub async fn update_records(
        &self,
        object: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>> {
        let path = self.data_path("/composite/sobjects");
        self.write_records(
            Method::PATCH,
            &path,
            object,
            records,
            all_or_none,
            Idempotency::Idempotent,
        )
        .await
    }

    /// Upserts records of one object by an external id field each record carries.
    pub async fn upsert_records(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>> {
        let path = self.data_path(&format!(
            "/composite/sobjects/{}/{}",
            segment(object),
            segment(external_id_field)
        ));
        self.write_records(
            Method::PATCH,
            &path,
            object,
            records,
            all_or_none,
            Idempotency::Idempotent,
        )
        .await
    }

    async fn write_records(
        &self,
        method: Method,
        path: &str,
        object: &str,
        records: &[Record],
        all_or_none: bool,
        idempotency: Idempotency,
    ) -> Result<Vec<SaveResult>> {
        check_count(records.len(), MAX_WRITE_RECORDS, "records")?;
        self.write_batch(records.len(), all_or_none, |subset| {
            let chosen: Vec<Record> = subset.iter().map(|i| records[*i].clone()).collect();
            let mut call = Call::new(method.clone(), path.to_owned(), idempotency);
            call.json =
                Some(json!({ "allOrNone": all_or_none, "records": typed(object, &chosen) }));
            call
        })
        .await
    }

    /// Deletes records by Id.
    pub async fn delete_records(&self, ids: &[&str], all_or_none: bool) -> Result<Vec<SaveResult>> {
        check_count(ids.len(), MAX_WRITE_RECORDS, "ids")?;
        let path = self.data_path("/composite/sobjects");
        self.write_batch(ids.len(), all_or_none, |subset| {
            let chosen: Vec<&str> = subset.iter().map(|i| ids[*i]).collect();
            let mut call = Call::new(Method::DELETE, path.clone(), Idempotency::Idempotent);
            call.query.push(("ids".to_owned(), chosen.join(",")));
            call.query
                .push(("allOrNone".to_owned(), all_or_none.to_string()));
            call
        })
        .await
    }

    /// Retrieves records of one object by Id; `None` where an Id names no readable record.
    pub async fn retrieve_records(
        &self,
        object: &str,
        ids: &[&str],
        fields: &[&str],
    ) -> Result<Vec<Option<Record>>> {
        check_count(ids.len(), MAX_RETRIEVE_IDS, "ids")?;
        if fields.is_empty() {
            return Err(Error::InvalidArgument(
                "retrieve needs at least one field".to_owned(),
            ));
        }
        let path = self.data_path(&format!("/composite/sobjects/{}", segment(object)));
        // POST with a body takes 2,000 Ids where a GET URL would run out of length.
        let mut call = Call::new(Method::POST, path.clone(), Idempotency::Idempotent);
        call.json = Some(json!({ "ids": ids, "fields": fields }));
        self.execute(&call).await?.json(&path)
    }
}
