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
    pub id: Option<String>,
    pub success: bool,
    /// For upserts: whether the record was created.
    pub created: Option<bool>,
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
    async fn save(
        &self,
        method: Method,
        path: String,
        body: Value,
        expected: usize,
        idempotency: Idempotency,
    ) -> Result<Vec<SaveResult>> {
        let mut call = Call::new(method, path.clone(), idempotency);
        call.json = Some(body);
        let results: Vec<SaveResult> = self.execute(&call).await?.json(&path)?;
        if results.len() != expected {
            return Err(Error::UnexpectedResponse {
                path,
                status: 200,
                detail: format!("{} results for {expected} records", results.len()),
            });
        }
        Ok(results)
    }

    /// Creates records of one object. Not retried after an ambiguous failure (see
    /// [`Error::may_have_been_applied`]); use [`Client::upsert_records`] to make creates
    /// safe to resend.
    pub async fn create_records(
        &self,
        object: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>> {
        check_count(records.len(), MAX_WRITE_RECORDS, "records")?;
        let body = json!({ "allOrNone": all_or_none, "records": typed(object, records) });
        self.save(
            Method::POST,
            self.data_path("/composite/sobjects"),
            body,
            records.len(),
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
        check_count(records.len(), MAX_WRITE_RECORDS, "records")?;
        let body = json!({ "allOrNone": all_or_none, "records": typed(object, records) });
        self.save(
            Method::PATCH,
            self.data_path("/composite/sobjects"),
            body,
            records.len(),
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
        check_count(records.len(), MAX_WRITE_RECORDS, "records")?;
        let body = json!({ "allOrNone": all_or_none, "records": typed(object, records) });
        let path = self.data_path(&format!(
            "/composite/sobjects/{}/{}",
            segment(object),
            segment(external_id_field)
        ));
        self.save(
            Method::PATCH,
            path,
            body,
            records.len(),
            Idempotency::Idempotent,
        )
        .await
    }

    /// Deletes records by Id.
    pub async fn delete_records(&self, ids: &[&str], all_or_none: bool) -> Result<Vec<SaveResult>> {
        check_count(ids.len(), MAX_WRITE_RECORDS, "ids")?;
        let mut call = Call::new(
            Method::DELETE,
            self.data_path("/composite/sobjects"),
            Idempotency::Idempotent,
        );
        call.query.push(("ids".to_owned(), ids.join(",")));
        call.query
            .push(("allOrNone".to_owned(), all_or_none.to_string()));
        self.execute(&call).await?.json(&call.path)
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
