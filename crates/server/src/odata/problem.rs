//! OData error answers: `{"error": {"code", "message", "target"?}}` (OData JSON Format
//! 4.0, "Error Response") with `OData-Version: 4.0`, and the status that says whose fault
//! it is. Database details go to the log, never to the caller.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pgforce_store::odata::QueryError;

/// The realm of the `WWW-Authenticate` challenge.
pub const REALM: &str = "Basic realm=\"pgforce OData\"";

/// An OData error answer.
#[derive(Debug)]
pub struct ODataProblem {
    status: StatusCode,
    code: String,
    message: String,
    target: Option<String>,
    retry_after: Option<u64>,
}

impl ODataProblem {
    /// An answer with `status`, a stable `code` and a message for people.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            target: None,
            retry_after: None,
        }
    }

    /// 401 with the Basic challenge.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// 404: no such resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after: u64, message: impl Into<String>) -> Self {
        let mut problem = Self::new(StatusCode::TOO_MANY_REQUESTS, "RateLimited", message);
        problem.retry_after = Some(retry_after);
        problem
    }

    /// The answer to a request whose input is wrong: 501 for what the service does not
    /// do (OData Part 1 §9.3.1), else 400.
    pub fn query(error: QueryError) -> Self {
        let status = if error.code == QueryError::NOT_SUPPORTED {
            StatusCode::NOT_IMPLEMENTED
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            code: error.code.to_owned(),
            message: error.message,
            target: error.target,
            retry_after: None,
        }
    }

    /// The answer to a failed store call: the request's input (400), a statement that
    /// ran past the service's timeout or a pool with no free session (503), values
    /// Postgres refused (400), else 500 with the details only in the log.
    pub fn store(error: &pgforce_store::Error, timeout_ms: u128) -> Self {
        if let Some(query) = error.query_error() {
            return Self::query(query.clone());
        }
        if error.is_pool_exhausted() {
            let mut problem = Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "every database session is busy; try again shortly",
            );
            problem.retry_after = Some(1);
            return problem;
        }
        match error.sqlstate() {
            Some("57014") => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "StatementTimeout",
                format!(
                    "the query ran longer than this service's statement timeout ({timeout_ms} ms)"
                ),
            ),
            Some(code) if code.starts_with("22") || code.starts_with("23") => {
                let detail = match error {
                    pgforce_store::Error::Postgres { source, .. } => source
                        .as_db_error()
                        .map_or_else(|| error.to_string(), |db| db.message().to_owned()),
                    other => other.to_string(),
                };
                Self::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidValue",
                    format!("Postgres refused a value: {detail}"),
                )
            }
            _ => {
                tracing::error!(error = %chain(error), "OData request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "the request failed inside pgforce; the server's log says why",
                )
            }
        }
    }
}

impl From<pgforce_sync::Error> for ODataProblem {
    fn from(error: pgforce_sync::Error) -> Self {
        let message = error.chain();
        tracing::error!(error = %message, "OData request failed");
        if error.kind() == pgforce_sync::ErrorKind::Unavailable {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "the database is not available; try again shortly",
            );
        }
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the request failed inside pgforce; the server's log says why",
        )
    }
}

impl IntoResponse for ODataProblem {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({ "code": self.code, "message": self.message });
        if let Some(target) = self.target {
            error["target"] = serde_json::Value::String(target);
        }
        let mut response =
            (self.status, Json(serde_json::json!({ "error": error }))).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// An error and every cause, joined with `: `, for the log.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
