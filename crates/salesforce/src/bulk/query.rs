//! Bulk API 2.0 query jobs.

use futures_util::Stream;
use reqwest::Method;
use serde_json::json;

use super::csv::{CsvPage, parse};
use super::job::{JobInfo, JobKind};
use crate::client::{Call, Client, Idempotency};
use crate::error::Result;

/// The value of `Sforce-Locator` on the last page.
const LAST_PAGE: &str = "null";

impl Client {
    /// Creates a query job (`include_deleted`: queryAll).
    pub async fn create_query_job(&self, soql: &str, include_deleted: bool) -> Result<JobInfo> {
        let path = self.job_path(JobKind::Query, "");
        // Creating twice after a lost answer only costs an unused job.
        let mut call = Call::new(Method::POST, path.clone(), Idempotency::Idempotent);
        call.json = Some(json!({
            "operation": if include_deleted { "queryAll" } else { "query" },
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }));
        self.execute(&call).await?.json(&path)
    }

    /// One page of a completed query job's results and the locator of the next page
    /// (`None` after the last).
    pub async fn query_job_page(
        &self,
        id: &str,
        locator: Option<&str>,
        max_records: u64,
    ) -> Result<(CsvPage, Option<String>)> {
        let path = self.job_path(
            JobKind::Query,
            &format!("/{}/results", crate::rest::segment(id)),
        );
        let mut call = Call::new(Method::GET, path.clone(), Idempotency::Idempotent);
        call.accept = "text/csv";
        call.query
            .push(("maxRecords".to_owned(), max_records.to_string()));
        if let Some(locator) = locator {
            call.query.push(("locator".to_owned(), locator.to_owned()));
        }
        let answer = self.execute(&call).await?;
        let next = answer
            .headers
            .get("sforce-locator")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && *v != LAST_PAGE)
            .map(str::to_owned);
        Ok((parse(&answer.body, &path)?, next))
    }

    /// A completed query job's results as a stream of pages of up to `max_records` rows,
    /// fetched one at a time as the stream is read.
    pub fn query_job_results(
        &self,
        id: &str,
        max_records: u64,
    ) -> impl Stream<Item = Result<CsvPage>> + Send + 'static {
        let client = self.clone();
        let id = id.to_owned();
        futures_util::stream::try_unfold(Some(None::<String>), move |state| {
            let (client, id) = (client.clone(), id.clone());
            async move {
                let Some(locator) = state else {
                    return Ok(None);
                };
                let (page, next) = client
                    .query_job_page(&id, locator.as_deref(), max_records)
                    .await?;
                Ok(Some((page, next.map(Some))))
            }
        })
    }
}
