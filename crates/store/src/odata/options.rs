//! The query options of a read, checked against the entity set before any SQL is built.

use super::{EntitySet, QueryError};

/// What the service allows on reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The server-driven page size: no page holds more rows (Salesforce Connect accepts
    /// at most 2,000).
    pub max_page_size: u32,
    /// Whether `$search` is answered (else it is refused as not supported).
    pub search_enabled: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_page_size: 2000,
            search_enabled: false,
        }
    }
}

/// A parsed read: the query options of one request, checked against its entity set.
#[derive(Debug, Clone)]
pub struct ReadQuery {
    pub(crate) max_page_size: u32,
}

/// Parses the decoded query-string pairs of a read. Unknown system options (`$expand`,
/// `$apply`, a `$format` other than JSON…) are refused as not supported, naming the
/// option; custom options (without `$`) are ignored.
pub fn parse_read(
    set: &EntitySet,
    pairs: &[(String, String)],
    limits: &Limits,
) -> Result<ReadQuery, QueryError> {
    let _ = (set, pairs);
    let _ = ReadQuery {
        max_page_size: limits.max_page_size,
    };
    Err(QueryError::not_supported(
        "$filter",
        "reads are not supported yet".to_owned(),
    ))
}
