//! What process supervisors and Prometheus ask: `/healthz` (the process serves), `/readyz`
//! (its engine can work: the catalog answers and is migrated) and `/metrics` (Prometheus's
//! text format, from [`pgforce_sync::Engine::metrics`]).
//!
//! They live on the public listener, or on a private one of their own (`--metrics-listen`)
//! away from the OAuth callback and the API. With a scrape token (`[server]
//! metrics_token`), `/metrics` answers only its holder. Why the engine is not ready is a
//! database error that can name hosts and databases: it goes to the log, and to the
//! token's holder; anyone else reads "not ready".

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pgforce_sync::Engine;
use secrecy::{ExposeSecret as _, SecretString};

use crate::problem::Problem;

/// The content type of Prometheus's text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The state of `/readyz` and `/metrics`.
#[derive(Clone)]
pub(crate) struct Probes {
    engine: Engine,
    scrape_token: Option<Arc<SecretString>>,
}

impl Probes {
    pub(crate) fn new(engine: Engine, scrape_token: Option<SecretString>) -> Self {
        Self {
            engine,
            scrape_token: scrape_token.map(Arc::new),
        }
    }

    /// `/readyz` and `/metrics`, for any router's state.
    pub(crate) fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        Router::new()
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self)
    }

    /// Whether the request carries the scrape token (never, when none is set).
    fn holds_token(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.scrape_token else {
            return false;
        };
        headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .is_some_and(|presented| {
                same_secret(presented.as_bytes(), expected.expose_secret().as_bytes())
            })
    }
}

/// Compares without an early exit, so timing tells nothing about how much matched.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0_u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// The process is up and serving.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// The engine can work: 200, else 503 (why: in the log, and to the scrape token's holder).
async fn readyz(State(probes): State<Probes>, headers: HeaderMap) -> Response {
    match probes.engine.ready().await {
        Ok(()) => "ready\n".into_response(),
        Err(error) => {
            let reason = error.chain();
            tracing::warn!(error = %reason, "not ready");
            let message = if probes.holds_token(&headers) {
                reason
            } else {
                "not ready".to_owned()
            };
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message).into_response()
        }
    }
}

/// Every metric; 503 when the catalog cannot be read (why: as for `/readyz`).
async fn metrics(State(probes): State<Probes>, headers: HeaderMap) -> Response {
    if probes.scrape_token.is_some() && !probes.holds_token(&headers) {
        let refused = Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "metrics need the scrape token: Authorization: Bearer <[server] metrics_token>",
        );
        return ([(WWW_AUTHENTICATE, "Bearer")], refused).into_response();
    }
    match probes.engine.admin().metrics().await {
        Ok(text) => ([(CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response(),
        Err(error) => {
            let reason = error.chain();
            tracing::warn!(error = %reason, "metrics unavailable");
            let message = if probes.holds_token(&headers) {
                reason
            } else {
                "metrics unavailable".to_owned()
            };
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "metrics_unavailable",
                message,
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_byte_for_byte() {
        assert!(same_secret(b"scrape-secret", b"scrape-secret"));
        assert!(!same_secret(b"scrape-secreT", b"scrape-secret"));
        assert!(!same_secret(b"scrape", b"scrape-secret"));
        assert!(!same_secret(b"", b"scrape-secret"));
    }
}
