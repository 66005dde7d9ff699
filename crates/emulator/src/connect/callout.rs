//! One OData callout: the HTTP request to the producer, its limits (connection timeout,
//! 8 MB response), the Salesforce-shaped error when it fails, and its line in the source's
//! callout log (what Salesforce's EventLogFile "External OData Callout" records).
//!
//! No lock is held while a callout waits: callers copy the source's settings first.

use std::sync::OnceLock;

use axum::http::StatusCode;
use reqwest::header::{ACCEPT, HeaderValue};
use serde::Serialize;
use serde_json::Value as Json;

use super::source::DataSource;
use crate::error::ApiError;

/// The largest OData response Salesforce reads.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// The largest OData query result (all pages of one query).
pub const MAX_RESULT_BYTES: u64 = 16 * 1024 * 1024;
/// Entries kept in each source's callout log.
pub const LOG_CAPACITY: usize = 10_000;

/// One logged callout.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CalloutRecord {
    pub method: String,
    /// The full URL as sent.
    pub url: String,
    /// The HTTP status, or null when no answer came.
    pub status: Option<u16>,
    /// Entities in the answer (null when it carried none).
    pub rows: Option<usize>,
    pub duration_ms: u64,
    /// Why the callout failed, when it did.
    pub error: Option<String>,
}

/// A callout's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// Why a callout brought nothing usable.
#[derive(Debug)]
pub enum CalloutError {
    /// No answer: refused, unreachable, TLS, or the timeout.
    Connection { detail: String, timed_out: bool },
    /// The answer is larger than Salesforce reads.
    TooLarge,
}

/// The settings every callout client has.
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().user_agent("pgforce-emulator (Salesforce Connect)")
}

/// The HTTP client callouts share (connection pooling, rustls, the Web PKI roots), or the
/// source's own when it trusts another root certificate.
fn client(source: &DataSource) -> Result<&reqwest::Client, String> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = &source.client {
        return Ok(client);
    }
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = builder()
        .build()
        .map_err(|e| format!("the HTTP client could not be built: {e}"))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// A URL in the form the HTTP client puts on the wire (WHATWG normalisation: `'` in a query
/// becomes `%27`), so the callout log shows exactly what was sent.
pub fn as_sent(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.to_string())
}

/// `GET url` with the source's credentials and timeout; `accept` is the media type asked.
pub async fn get(
    source: &DataSource,
    url: &str,
    accept: &'static str,
) -> Result<Answer, CalloutError> {
    send(source, reqwest::Method::GET, url, accept, None).await
}

/// A write (`POST`, `PATCH`, `DELETE`) with an optional JSON body.
pub async fn send(
    source: &DataSource,
    method: reqwest::Method,
    url: &str,
    accept: &'static str,
    json_body: Option<&Json>,
) -> Result<Answer, CalloutError> {
    let client = client(source).map_err(|detail| CalloutError::Connection {
        detail,
        timed_out: false,
    })?;
    let mut request = client
        .request(method, url)
        .timeout(source.timeout())
        .header(ACCEPT, HeaderValue::from_static(accept))
        .header("OData-Version", "4.0")
        .header("OData-MaxVersion", "4.0");
    if let (Some(user), Some(password)) = (&source.username, &source.password) {
        request = request.basic_auth(user, Some(password));
    }
    if let Some(body) = json_body {
        request = request.json(body);
    }
    let connection = |e: reqwest::Error| CalloutError::Connection {
        timed_out: e.is_timeout(),
        detail: e.to_string(),
    };
    let mut response = request.send().await.map_err(connection)?;
    let status = StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(CalloutError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(connection)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(CalloutError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, body })
}

/// The Salesforce error for a failed callout, naming the data source.
pub fn error_for(source: &str, error: &CalloutError) -> ApiError {
    match error {
        CalloutError::Connection { detail, timed_out } => ApiError::bad_request(
            "EXTERNAL_OBJECT_CONNECTION_EXCEPTION",
            if *timed_out {
                format!(
                    "External data source {source}: the external system did not answer within the connection timeout: {detail}"
                )
            } else {
                format!(
                    "External data source {source}: the external system could not be reached: {detail}"
                )
            },
        ),
        CalloutError::TooLarge => ApiError::bad_request(
            "EXTERNAL_OBJECT_EXCEPTION",
            format!(
                "External data source {source}: The OData query result was too large, so the external data didn't load. (an OData response is limited to 8 MB)"
            ),
        ),
    }
}

/// The Salesforce error for a producer's 4xx/5xx answer: the OData error's message when the
/// body has one.
pub fn error_for_status(source: &str, answer: &Answer) -> ApiError {
    let detail = serde_json::from_slice::<Json>(&answer.body)
        .ok()
        .and_then(|body| {
            let error = body.get("error")?;
            let message = error.get("message")?.as_str()?.to_owned();
            Some(match error.get("code").and_then(Json::as_str) {
                Some(code) if !code.is_empty() => format!("{code}: {message}"),
                _ => message,
            })
        })
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&answer.body);
            text.chars().take(200).collect()
        });
    let status = answer.status.as_u16();
    if answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::FORBIDDEN {
        return ApiError::bad_request(
            "EXTERNAL_OBJECT_AUTHENTICATION_EXCEPTION",
            format!(
                "External data source {source}: the external system refused the credentials (HTTP {status}): {detail}"
            ),
        );
    }
    ApiError::bad_request(
        "EXTERNAL_OBJECT_EXCEPTION",
        format!(
            "External data source {source}: Error received from the external system: {status}: {detail}"
        ),
    )
}
