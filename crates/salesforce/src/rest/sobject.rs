//! Single-record calls: create, get, update, delete, and upsert by external id.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Call, Client, Idempotency};
use crate::error::{Error, Result};
use crate::rest::{Record, segment};

/// The outcome of a single-record upsert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertResult {
    /// The record's Id (absent when an API version before 46.0 answered 204).
    pub id: Option<String>,
    /// Whether the record was created (rather than updated).
    pub created: bool,
}

#[derive(Deserialize)]
struct CreateResponse {
    id: String,
}

impl Client {
    /// Creates one record and returns its Id. Not retried after an ambiguous failure.
    pub async fn create(&self, object: &str, fields: &Record) -> Result<String> {
        let path = self.data_path(&format!("/sobjects/{}", segment(object)));
        let mut call = Call::new(Method::POST, path.clone(), Idempotency::NotIdempotent);
        call.json = Some(Value::Object(fields.clone()));
        let created: CreateResponse = self.execute(&call).await?.json(&path)?;
        Ok(created.id)
    }

    /// Reads one record, all fields or the ones named.
    pub async fn get(&self, object: &str, id: &str, fields: Option<&[&str]>) -> Result<Record> {
        let path = self.data_path(&format!("/sobjects/{}/{}", segment(object), segment(id)));
        let mut call = Call::new(Method::GET, path.clone(), Idempotency::Idempotent);
        if let Some(fields) = fields {
            call.query.push(("fields".to_owned(), fields.join(",")));
        }
        self.execute(&call).await?.json(&path)
    }

    /// Updates some fields of one record.
    pub async fn update(&self, object: &str, id: &str, fields: &Record) -> Result<()> {
        let path = self.data_path(&format!("/sobjects/{}/{}", segment(object), segment(id)));
        let mut call = Call::new(Method::PATCH, path, Idempotency::Idempotent);
        call.json = Some(Value::Object(fields.clone()));
        self.execute(&call).await.map(|_| ())
    }

    /// Deletes one record.
    pub async fn delete(&self, object: &str, id: &str) -> Result<()> {
        let path = self.data_path(&format!("/sobjects/{}/{}", segment(object), segment(id)));
        self.execute(&Call::new(Method::DELETE, path, Idempotency::Idempotent))
            .await
            .map(|_| ())
    }

    /// Upserts one record by an external id value: creates it when no record holds the
    /// value, updates it when one does. Several matches are [`Error::MultipleMatches`].
    pub async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        value: &str,
        fields: &Record,
    ) -> Result<UpsertResult> {
        let path = self.data_path(&format!(
            "/sobjects/{}/{}/{}",
            segment(object),
            segment(external_id_field),
            segment(value)
        ));
        let mut call = Call::new(Method::PATCH, path.clone(), Idempotency::Idempotent);
        call.json = Some(Value::Object(fields.clone()));
        let answer = self.execute(&call).await?;
        match answer.status {
            StatusCode::MULTIPLE_CHOICES => Err(Error::MultipleMatches {
                path: path.clone(),
                urls: answer.json(&path)?,
            }),
            StatusCode::NO_CONTENT => Ok(UpsertResult {
                id: None,
                created: false,
            }),
            status => {
                let body: Value = answer.json(&path)?;
                Ok(UpsertResult {
                    id: body["id"].as_str().map(str::to_owned),
                    created: body["created"]
                        .as_bool()
                        .unwrap_or(status == StatusCode::CREATED),
                })
            }
        }
    }
}
