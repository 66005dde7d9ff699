//! Keys, single-entity reads and writes.

use tokio_postgres::GenericClient;

use super::{EntitySet, Map, QueryError};
use crate::error::{Error, Result};

/// The values of an entity's key properties, as parsed from a key predicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Key(pub(crate) Vec<(String, serde_json::Value)>);

impl Key {
    /// The key's (property, value) pairs, in key order.
    pub fn values(&self) -> &[(String, serde_json::Value)] {
        &self.0
    }
}

/// What an update did.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    /// The row as stored after the update.
    Updated(Map),
    /// No row has that key.
    NotFound,
    /// The row's ETag is not the one `If-Match` named.
    EtagMismatch,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The row is gone.
    Deleted,
    /// No row has that key.
    NotFound,
    /// The row's ETag is not the one `If-Match` named.
    EtagMismatch,
}

fn not_yet(what: &str) -> Error {
    Error::Query(QueryError::not_supported(
        what,
        format!("{what} is not supported yet"),
    ))
}

/// Parses a key predicate as it follows the entity set in a URL: `('abc')`, `(42)`,
/// `(id=1,code='x')`.
pub fn parse_key(set: &EntitySet, predicate: &str) -> std::result::Result<Key, QueryError> {
    let _ = (set, predicate);
    Err(QueryError::not_supported(
        "key",
        "keys are not supported yet".to_owned(),
    ))
}

/// The entity with that key, with the properties `$select` (in `options`, the request's
/// query pairs) names, and its ETag; `None` when no row has the key.
pub async fn read_one(
    client: &impl GenericClient,
    set: &EntitySet,
    key: &Key,
    options: &[(String, String)],
) -> Result<Option<(Map, Option<String>)>> {
    let _ = (client, set, key, options);
    Err(not_yet("read_one"))
}

/// Inserts an entity from its OData JSON body; returns the row as stored.
pub async fn insert(client: &impl GenericClient, set: &EntitySet, body: &Map) -> Result<Map> {
    let _ = (client, set, body);
    Err(not_yet("insert"))
}

/// Updates the properties the body names (PATCH semantics), honouring `If-Match`.
pub async fn update(
    client: &impl GenericClient,
    set: &EntitySet,
    key: &Key,
    body: &Map,
    if_match: Option<&str>,
) -> Result<UpdateOutcome> {
    let _ = (client, set, key, body, if_match);
    Err(not_yet("update"))
}

/// Deletes the entity with that key, honouring `If-Match`.
pub async fn delete(
    client: &impl GenericClient,
    set: &EntitySet,
    key: &Key,
    if_match: Option<&str>,
) -> Result<DeleteOutcome> {
    let _ = (client, set, key, if_match);
    Err(not_yet("delete"))
}

/// The ETag (`W/"…"`) of a row as [`insert`], [`update`] and [`read_one`] return it,
/// when the entity set has an ETag column and the row holds it.
pub fn etag_of(set: &EntitySet, row: &Map) -> Option<String> {
    let _ = (set, row);
    None
}
