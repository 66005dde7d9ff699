//! Reading one page: keyset paging and the `$skiptoken` that carries it.

use tokio_postgres::GenericClient;

use super::{EntitySet, Map, QueryError, ReadQuery};
use crate::error::{Error, Result};

/// One page of a read.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The rows, each with the selected properties as OData JSON values.
    pub rows: Vec<Map>,
    /// The number of rows matching `$filter`/`$search` when `$count=true` was asked.
    pub count: Option<i64>,
    /// The `$skiptoken` of the next page, when more rows exist.
    pub next_skiptoken: Option<String>,
    /// Each row's ETag (`W/"…"`), when the entity set has an ETag column.
    pub etags: Vec<Option<String>>,
}

/// Runs a read and returns its page.
pub async fn read(client: &impl GenericClient, set: &EntitySet, query: &ReadQuery) -> Result<Page> {
    let _ = (client, set, query);
    Err(Error::Query(QueryError::not_supported(
        "read",
        "reads are not supported yet".to_owned(),
    )))
}

/// `EXPLAIN (FORMAT JSON)` of the statement [`read`] runs for the page's rows.
pub async fn explain(
    client: &impl GenericClient,
    set: &EntitySet,
    query: &ReadQuery,
) -> Result<serde_json::Value> {
    let _ = (client, set, query);
    Err(Error::Query(QueryError::not_supported(
        "explain",
        "explain is not supported yet".to_owned(),
    )))
}
