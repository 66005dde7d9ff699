//! Salesforce-shaped errors.
//!
//! Salesforce answers a failed REST call with a JSON array of
//! `{"message", "errorCode", "fields"?}` and a failed record inside a collections call with
//! `{"statusCode", "message", "fields"}`. One [`ApiError`] carries what both need (the HTTP
//! status only matters for the first), so validation code is written once and the handler
//! decides how to present it.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

/// Salesforce's `Content-Type` for JSON bodies.
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// A Salesforce API error: status, `errorCode`, message and the fields it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    pub fields: Vec<String>,
}

impl ApiError {
    /// An error with an HTTP status, Salesforce error code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// A 400 error, the status of most validation failures.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The same error naming the fields it concerns.
    #[must_use]
    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
        self
    }

    /// 404 NOT_FOUND for a path that names nothing.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    /// 401 INVALID_SESSION_ID.
    pub fn invalid_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    /// 400 JSON_PARSER_ERROR for a body that is not the JSON the call takes.
    pub fn json_parser(detail: impl std::fmt::Display) -> Self {
        Self::bad_request(
            "JSON_PARSER_ERROR",
            format!("The request body is not valid: {detail}"),
        )
    }

    /// The element of a top-level error array.
    pub fn to_top_level_json(&self) -> Json {
        let mut body = json!({ "message": self.message, "errorCode": self.code });
        if !self.fields.is_empty() {
            body["fields"] = json!(self.fields);
        }
        body
    }

    /// The element of a collections result's `errors` array.
    pub fn to_record_json(&self) -> Json {
        json!({ "statusCode": self.code, "message": self.message, "fields": self.fields })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json::Array(vec![self.to_top_level_json()]).to_string();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        response
    }
}
