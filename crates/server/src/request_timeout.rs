//! The whole-request time limit: from a request's headers to its answer, reading its body
//! included, so a client that trickles a body (or a request stuck on a slow dependency)
//! holds a connection for a bounded time. Header reading has its own limit in `listener`.

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse as _;

use crate::problem::Problem;

/// `router` with each request ended after `limit`: `503 request_timeout`.
pub(crate) fn add_to(router: Router, limit: Duration) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| async move {
            match tokio::time::timeout(limit, next.run(request)).await {
                Ok(response) => response,
                Err(_) => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "request_timeout",
                    format!(
                        "the request did not finish within {} s ([server] request_timeout_seconds)",
                        limit.as_secs()
                    ),
                )
                .into_response(),
            }
        },
    ))
}
