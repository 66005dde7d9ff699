//! getUpdated and getDeleted: the Ids changed or deleted in a time window.

use reqwest::Method;
use serde::Deserialize;

use crate::client::{Call, Client, Idempotency};
use crate::error::Result;
use crate::rest::segment;

/// getUpdated's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Updated {
    /// Ids changed in the window.
    pub ids: Vec<String>,
    /// Up to when the answer is complete; start the next window there.
    pub latest_date_covered: String,
}

/// One deleted record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecord {
    /// The record's Id.
    pub id: String,
    /// When it was deleted.
    pub deleted_date: String,
}

/// getDeleted's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// Records deleted in the window.
    pub deleted_records: Vec<DeletedRecord>,
    /// How far back deletes are kept.
    pub earliest_date_available: String,
    /// Up to when the answer is complete; start the next window there.
    pub latest_date_covered: String,
}

impl Client {
    fn window_call(&self, object: &str, kind: &str, start: &str, end: &str) -> Call {
        let path = self.data_path(&format!("/sobjects/{}/{kind}/", segment(object)));
        let mut call = Call::new(Method::GET, path, Idempotency::Idempotent);
        call.query.push(("start".to_owned(), start.to_owned()));
        call.query.push(("end".to_owned(), end.to_owned()));
        call
    }

    /// Ids of records changed between `start` and `end` (ISO-8601 UTC datetimes).
    pub async fn get_updated(&self, object: &str, start: &str, end: &str) -> Result<Updated> {
        let call = self.window_call(object, "updated", start, end);
        self.execute(&call).await?.json(&call.path)
    }

    /// Records deleted between `start` and `end` (ISO-8601 UTC datetimes).
    pub async fn get_deleted(&self, object: &str, start: &str, end: &str) -> Result<Deleted> {
        let call = self.window_call(object, "deleted", start, end);
        self.execute(&call).await?.json(&call.path)
    }
}
