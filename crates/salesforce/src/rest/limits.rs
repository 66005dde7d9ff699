//! The org's limits (`GET /limits`).

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Call, Client, Idempotency};
use crate::error::Result;

/// One limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Limit {
    /// The allocation.
    #[serde(rename = "Max")]
    pub max: i64,
    /// What is left of it.
    #[serde(rename = "Remaining")]
    pub remaining: i64,
}

impl Client {
    /// The org's limits by name (`DailyApiRequests`, `DailyBulkV2QueryJobs`, …). Entries
    /// without `Max`/`Remaining` are skipped.
    pub async fn limits(&self) -> Result<BTreeMap<String, Limit>> {
        let path = self.data_path("/limits/");
        let body: BTreeMap<String, Value> = self
            .execute(&Call::new(
                Method::GET,
                path.clone(),
                Idempotency::Idempotent,
            ))
            .await?
            .json(&path)?;
        Ok(body
            .into_iter()
            .filter_map(|(name, v)| serde_json::from_value(v).ok().map(|l| (name, l)))
            .collect())
    }
}
