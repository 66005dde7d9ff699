//! Error answers: JSON `{"id": "<code>", "message": "…"}` with a status that says whose
//! fault it is, for every failure the server can meet.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pgforce_sync::{Error, ErrorKind};

/// An error answer.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    id: &'static str,
    message: String,
}

impl Problem {
    /// An answer with `status`, stable `id` and a message for people.
    pub fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            id,
            message: message.into(),
        }
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let message = error.chain();
        let (status, id) = match error.kind() {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_params"),
            ErrorKind::BadConnection => (StatusCode::BAD_REQUEST, "bad_connection"),
            ErrorKind::BadValue => (StatusCode::BAD_REQUEST, "bad_request"),
            ErrorKind::Salesforce => (StatusCode::BAD_GATEWAY, "salesforce_error"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ErrorKind::Exhausted => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        };
        if status.is_server_error() {
            tracing::warn!(error = %message, "management API request failed");
        }
        Self::new(status, id, message)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "id": self.id, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}
