//! SOQL queries as streams that follow `nextRecordsUrl`, holding one page at a time.

use std::collections::VecDeque;

use futures_util::{Stream, TryStreamExt as _, stream};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::client::{Call, Client, Idempotency};
use crate::error::Result;
use crate::rest::Record;

/// The request header that asks for a page size.
const QUERY_OPTIONS_HEADER: &str = "sforce-query-options";

/// One page of a query result.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    /// Rows in the whole result (for `COUNT()`, the count).
    pub total_size: u64,
    /// Whether this is the last page.
    pub done: bool,
    /// Where the next page is, when not done.
    #[serde(default)]
    pub next_records_url: Option<String>,
    /// This page's records.
    pub records: Vec<Record>,
}

enum Next {
    Start { soql: String, include_deleted: bool },
    More(String),
    Done,
}

impl Client {
    fn page_call(&self, next: &Next) -> Option<Call> {
        let mut call = match next {
            Next::Start {
                soql,
                include_deleted,
            } => {
                let endpoint = if *include_deleted {
                    "/queryAll"
                } else {
                    "/query"
                };
                let mut call = Call::new(
                    Method::GET,
                    self.data_path(endpoint),
                    Idempotency::Idempotent,
                );
                call.query.push(("q".to_owned(), soql.clone()));
                call
            }
            Next::More(url) => Call::new(Method::GET, url.clone(), Idempotency::Idempotent),
            Next::Done => return None,
        };
        if let Some(size) = self.config().query_batch_size
            && let Ok(value) =
                HeaderValue::from_str(&format!("batchSize={}", size.clamp(200, 2000)))
        {
            call.headers
                .push((HeaderName::from_static(QUERY_OPTIONS_HEADER), value));
        }
        Some(call)
    }

    /// Fetches one page: the first of `soql`, or the one a `nextRecordsUrl` points at.
    async fn fetch_page(&self, call: &Call) -> Result<QueryPage> {
        let page: QueryPage = self.execute(call).await?.json(&call.path)?;
        tracing::debug!(path = %call.path, records = page.records.len(), total = page.total_size, "query page");
        Ok(page)
    }

    /// The pages of a query, one at a time. `include_deleted` uses queryAll, which also
    /// returns deleted and archived records.
    pub fn query_pages(
        &self,
        soql: &str,
        include_deleted: bool,
    ) -> impl Stream<Item = Result<QueryPage>> + Send + 'static {
        let start = Next::Start {
            soql: soql.to_owned(),
            include_deleted,
        };
        let client = self.clone();
        stream::try_unfold((client, start), |(client, next)| async move {
            let Some(call) = client.page_call(&next) else {
                return Ok(None);
            };
            let page = client.fetch_page(&call).await?;
            let next = match (&page.next_records_url, page.done) {
                (Some(url), false) => Next::More(url.clone()),
                _ => Next::Done,
            };
            Ok(Some((page, (client, next))))
        })
    }

    /// The records of a query, page by page under the hood.
    pub fn query(&self, soql: &str) -> impl Stream<Item = Result<Record>> + Send + 'static {
        flatten(self.query_pages(soql, false))
    }

    /// The records of a queryAll (deleted records included).
    pub fn query_all(&self, soql: &str) -> impl Stream<Item = Result<Record>> + Send + 'static {
        flatten(self.query_pages(soql, true))
    }

    /// Runs a `SELECT COUNT() …` query and returns the count.
    pub async fn count(&self, soql: &str) -> Result<u64> {
        let call = self.page_call(&Next::Start {
            soql: soql.to_owned(),
            include_deleted: false,
        });
        match call {
            Some(call) => Ok(self.fetch_page(&call).await?.total_size),
            None => Ok(0),
        }
    }
}

fn flatten(
    pages: impl Stream<Item = Result<QueryPage>> + Send + 'static,
) -> impl Stream<Item = Result<Record>> + Send + 'static {
    pages
        .map_ok(|page| stream::iter(VecDeque::from(page.records).into_iter().map(Ok)))
        .try_flatten()
}
