//! What every data API request carries once it is admitted: the caller, the API version,
//! the URL the client knows the org by, and the request's parts.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, header};

use crate::error::ApiError;
use crate::faults::LockedRecords;
use crate::org::{Org, RecordRef, Txn};
use crate::state::Shared;

/// How the client reached us: the scheme of the listener the connection came in on.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    pub scheme: &'static str,
}

/// An admitted data API request.
#[derive(Debug)]
pub struct RequestContext {
    pub shared: Arc<Shared>,
    pub method: Method,
    /// The API version without the `v`, e.g. `62.0`.
    pub version: String,
    /// The URL the client reached the org by (scheme, host, port), for absolute links.
    pub base_url: String,
    pub user: RecordRef,
    pub headers: HeaderMap,
    pub params: HashMap<String, String>,
    pub body: Bytes,
    /// Faults chosen for this call before its work starts.
    pub faults: CallFaults,
}

/// Faults chosen for one call once it is admitted, which its handler carries out.
#[derive(Debug, Clone, Default)]
pub struct CallFaults {
    /// Records refused with UNABLE_TO_LOCK_ROW (by position in the call; a single-record
    /// call is position 0; rows of the upload for an ingest job close).
    pub locked: LockedRecords,
    /// For an ingest job close: the job processes part of its rows, then fails.
    pub bulk_partial_failure: bool,
    /// For a late commit: the `SystemModstamp` the call took when it started.
    pub stamp: Option<i64>,
    /// For a query continuation: its cursor is released before it is read (a scripted
    /// `releaseCursor` step).
    pub release_cursor: bool,
}

impl RequestContext {
    /// Starts the call's write transaction, with the stamp the call took when it started if
    /// its commit was delayed.
    pub fn begin<'o>(&self, org: &'o mut Org) -> Txn<'o> {
        let origin = crate::events::change_origin("rest", &self.version, &self.headers);
        org.begin_at(self.user, self.faults.stamp)
            .with_origin(origin)
    }

    /// The major API version as a number (`62`).
    pub fn major_version(&self) -> u32 {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// The body as a JSON object, or JSON_PARSER_ERROR.
    pub fn json_object(&self) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        match serde_json::from_slice(&self.body) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(ApiError::json_parser("expected a JSON object")),
            Err(error) => Err(ApiError::json_parser(error)),
        }
    }

    /// A query-string parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The `/services/data/vXX.X` prefix of URLs in responses.
    pub fn data_prefix(&self) -> String {
        format!("/services/data/v{}", self.version)
    }
}

/// The URL clients should use for this org: the configured public URL, or the scheme, host
/// and port this request came in on.
pub fn base_url(shared: &Shared, headers: &HeaderMap, connection: ConnectionInfo) -> String {
    if let Some(url) = &shared.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("{}://{host}", connection.scheme)
}

/// The bearer token of a request (`Bearer` or the older `OAuth` scheme).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("OAuth "))
        .map(str::trim)
}
