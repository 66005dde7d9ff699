//! sObject Collections: up to 200 records created, updated, upserted or deleted per call,
//! 2,000 retrieved, with one result per record in request order.
//!
//! One write may take several calls. Salesforce refuses single rows of a call for passing
//! reasons (UNABLE_TO_LOCK_ROW) while it writes the others, and those rows are resent with
//! backoff. When a later call then fails as a whole (503, a dropped connection, a lost
//! answer, REQUEST_LIMIT_EXCEEDED), the rows the earlier calls wrote stay written; a caller
//! told only "the call failed" would create them again or mark them failed although they
//! exist. So a failed write returns a [`WriteError`]: the failed call's [`Error`] together
//! with every outcome learned before it, one per record in request order, and `None` for
//! the records that were in the failed call.

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

/// A collections write that failed, with the outcomes it learned before failing.
///
/// [`WriteError::results`] has one entry per record, in request order:
/// - `Some(result)`: the record's final outcome, from an answer Salesforce gave before the
///   failure (written with its Id, or refused for a reason of its own). The failure of a
///   later call does not change it.
/// - `None`: the record was in the call that failed, so its fate is unknown. Whether it may
///   have been written follows from that call's error, [`WriteError::error`]: when
///   [`Error::may_have_been_applied`] is false it was not, and sending it again is safe;
///   when true it may have been. An unknown *create* whose call may have been applied is in
///   doubt: check whether the record exists (by an external id, or upsert instead of
///   create) before sending it again, never just retry it. Updates, upserts and deletes may
///   be sent again either way.
///
/// A failure of the first call, or a batch refused before any call (more than
/// [`MAX_WRITE_RECORDS`]), leaves every record `None`. Under `allOrNone` a record is resent
/// only when the whole batch was rolled back for passing reasons, and then the whole batch
/// goes again: earlier calls wrote nothing, every record is `None`, and the failed call
/// wrote all of them or none.
///
/// Callers that handle the batch as one unit can turn it into the failed call's [`Error`]
/// with `?` or [`WriteError::into_error`]; the known outcomes are then dropped.
#[derive(Debug, thiserror::Error)]
#[error(
    "collections write failed; the outcome of {} of {} records is unknown",
    unknown_count(.results),
    .results.len()
)]
pub struct WriteError {
    /// The call that failed.
    #[source]
    error: Error,
    /// One entry per record in request order; `None` where the fate is unknown.
    results: Vec<Option<SaveResult>>,
}

fn unknown_count(results: &[Option<SaveResult>]) -> usize {
    results.iter().filter(|r| r.is_none()).count()
}

impl WriteError {
    /// A failure before anything was learned: every one of `count` records is unknown.
    fn before_any_answer(error: Error, count: usize) -> Self {
        Self {
            error,
            results: vec![None; count],
        }
    }

    /// The failed call's error: whether it may have been applied, whether it is worth
    /// retrying, Salesforce's code.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Each record's outcome in request order; `None` where the record was in the failed
    /// call (see the type's documentation for what that means).
    pub fn results(&self) -> &[Option<SaveResult>] {
        &self.results
    }

    /// The failed call's error and the outcomes, taken apart.
    pub fn into_parts(self) -> (Error, Vec<Option<SaveResult>>) {
        (self.error, self.results)
    }

    /// The failed call's error alone, dropping the known outcomes.
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl From<WriteError> for Error {
    fn from(failure: WriteError) -> Self {
        failure.error
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
    ///
    /// Each record's outcome is kept as soon as an answer settles it, so a call that fails
    /// as a whole loses only the fate of the records it carried (see [`WriteError`]).
    async fn write_batch(
        &self,
        count: usize,
        all_or_none: bool,
        build: impl Fn(&[usize]) -> Call,
    ) -> Result<Vec<SaveResult>, WriteError> {
        let policy = self.config().retry;
        let started = std::time::Instant::now();
        let mut results: Vec<Option<SaveResult>> = vec![None; count];
        let mut pending: Vec<usize> = (0..count).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let answer = match self.send_write(&build(&pending), pending.len()).await {
                Ok(answer) => answer,
                Err(error) => return Err(WriteError { error, results }),
            };
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

    /// Sends one collections write call and reads one result per record sent.
    async fn send_write(&self, call: &Call, sent: usize) -> Result<Vec<SaveResult>> {
        let answer: Vec<SaveResult> = self.execute(call).await?.json(&call.path)?;
        if answer.len() != sent {
            return Err(Error::UnexpectedResponse {
                path: call.path.clone(),
                status: 200,
                detail: format!("{} results for {} records", answer.len(), sent),
            });
        }
        Ok(answer)
    }

    /// Creates records of one object. Records refused with transient errors are resent;
    /// an ambiguous failure of the whole call is not (see [`Error::may_have_been_applied`]):
    /// use [`Client::upsert_records`] to make creates safe to resend.
    ///
    /// On failure the [`WriteError`] keeps the records already created, with their Ids; a
    /// record it reports unknown is in doubt when the failed call may have been applied.
    pub async fn create_records(
        &self,
        object: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>, WriteError> {
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

    /// Updates records of one object; each record carries its `Id`. On failure the
    /// [`WriteError`] keeps the outcomes already known.
    pub async fn update_records(
        &self,
        object: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>, WriteError> {
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

    /// Upserts records of one object by an external id field each record carries. On
    /// failure the [`WriteError`] keeps the outcomes already known.
    pub async fn upsert_records(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>, WriteError> {
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
    ) -> Result<Vec<SaveResult>, WriteError> {
        check_count(records.len(), MAX_WRITE_RECORDS, "records")
            .map_err(|error| WriteError::before_any_answer(error, records.len()))?;
        self.write_batch(records.len(), all_or_none, |subset| {
            let chosen: Vec<Record> = subset.iter().map(|i| records[*i].clone()).collect();
            let mut call = Call::new(method.clone(), path.to_owned(), idempotency);
            call.json =
                Some(json!({ "allOrNone": all_or_none, "records": typed(object, &chosen) }));
            call
        })
        .await
    }

    /// Deletes records by Id. On failure the [`WriteError`] keeps the outcomes already
    /// known.
    pub async fn delete_records(
        &self,
        ids: &[&str],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>, WriteError> {
        check_count(ids.len(), MAX_WRITE_RECORDS, "ids")
            .map_err(|error| WriteError::before_any_answer(error, ids.len()))?;
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
