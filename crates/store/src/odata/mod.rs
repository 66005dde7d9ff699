//! OData 4.0 query engine: from a published table or view and the raw query options of a
//! request to bound SQL, run on the caller's session.
//!
//! Salesforce Connect reads and writes external objects live through an OData service;
//! everything that service asks of Postgres is built here so that, like every other
//! statement pgforce runs, it lives in `store`, quotes every identifier and binds every
//! value. The HTTP layer (the server crate) owns URLs, JSON envelopes, `$metadata` and
//! authentication; this module owns the meaning of the query options.
//!
//! Key concepts:
//! - An [`EntitySet`] is what [`describe`] reads from `pg_catalog` about one relation:
//!   its properties with their [`EdmType`], its key, its ETag column. Columns of types
//!   OData cannot carry are left out and listed in [`EntitySet::omitted`].
//! - [`parse_read`] turns the query options into a [`ReadQuery`] or a [`QueryError`]
//!   (the request's fault: HTTP 400); [`read`] runs it and returns one [`Page`].
//! - Paging is server-driven and keyset based: the order is the `$orderby` properties
//!   then the key, and `$skiptoken` carries the last row's values, so every page costs
//!   what the first one costs.
//! - Input errors of reads and writes that are found after parsing (a write body with an
//!   unknown property, a view written to) come back as [`crate::Error::Query`], so the
//!   HTTP layer answers 400 for them and 500 only for database failures.
//!
//! Layout: `entity` (introspection, Edm types), `filter` (the `$filter` lexer and
//! parser), `options` (all query options), `compile` (expressions to SQL and binds),
//! `functions` (the `$filter` functions),
//! `page` (keyset paging and the skip token), `json` (values between Postgres and OData
//! JSON), `write` (keys, single reads, insert/update/delete), `session` (the request
//! transaction).

mod compile;
mod entity;
mod filter;
mod functions;
mod json;
mod options;
mod page;
mod session;
mod write;

use std::fmt;

pub use entity::{EdmType, EntitySet, PgTypeName, Property, RelationKind, describe};
pub use options::{Limits, ReadQuery, parse_read};
pub use page::{Page, explain, read};
pub use session::request_transaction;
pub use write::{
    DeleteOutcome, Key, UpdateOutcome, delete, etag_of, insert, parse_key, read_one, update,
};

/// A JSON object: one entity's properties by name.
pub type Map = serde_json::Map<String, serde_json::Value>;

/// Why a request's input cannot be answered: the caller's fault (HTTP 400, or 501 for
/// [`QueryError::NOT_SUPPORTED`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// A stable code such as `InvalidFilter`, `UnknownProperty`, `InvalidSkipToken`.
    pub code: &'static str,
    /// What was wrong, naming the option and the position or the property.
    pub message: String,
    /// The option or property at fault, when there is one.
    pub target: Option<String>,
}

impl QueryError {
    /// The code of a valid request that uses something this service does not do.
    pub const NOT_SUPPORTED: &'static str = "NotSupported";

    pub(crate) fn new(
        code: &'static str,
        target: impl Into<Option<String>>,
        message: String,
    ) -> Self {
        Self {
            code,
            message,
            target: target.into(),
        }
    }

    pub(crate) fn not_supported(target: &str, message: String) -> Self {
        Self::new(Self::NOT_SUPPORTED, Some(target.to_owned()), message)
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}

/// Any name as a double-quoted SQL identifier (quotes doubled).
///
/// Published relations are not pgforce's own: their names need not be the lower-case
/// names [`crate::Ident`] accepts, so they are quoted here instead, which keeps any
/// name, even one with quotes in it, an identifier.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
