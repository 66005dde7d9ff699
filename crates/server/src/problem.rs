//! Error answers: JSON `{"id": "<code>", "message": "…"}` with a status that says whose
//! fault it is, for every failure the server can meet.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pgforce_sync::Error;

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
        let (status, id) = match &error {
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            Error::Config { .. } | Error::MissingFields { .. } | Error::Document { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_params")
            }
            Error::Connection { .. } => (StatusCode::BAD_REQUEST, "bad_connection"),
            // Salesforce does not know what was asked for (an object, a record).
            Error::Salesforce { source, .. } if source.status() == Some(404) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            Error::Salesforce { .. } => (StatusCode::BAD_GATEWAY, "salesforce_error"),
            Error::LeaseLost { .. } => (StatusCode::CONFLICT, "conflict"),
            Error::Store { source, .. } => store_status(source),
        };
        if status.is_server_error() {
            tracing::warn!(error = %message, "management API request failed");
        }
        Self::new(status, id, message)
    }
}

/// A database error's status: the request's fault when Postgres refused its values
/// (SQLSTATE classes 22 and 23) or pgforce refused a name or a claim; else unavailable.
fn store_status(source: &pgforce_store::Error) -> (StatusCode, &'static str) {
    match source {
        pgforce_store::Error::InvalidIdentifier { .. }
        | pgforce_store::Error::SchemaTaken { .. }
        | pgforce_store::Error::Catalog { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_params")
        }
        other => match other.sqlstate() {
            Some(code) if code.starts_with("22") => (StatusCode::BAD_REQUEST, "bad_request"),
            Some(code) if code.starts_with("23") => (StatusCode::CONFLICT, "conflict"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        },
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "id": self.id, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}
