//! Who is calling: the bearer token of `Authorization`, checked against the catalog's
//! tokens, and the role each route asks for.
//!
//! Missing, unknown, expired and revoked tokens are all `401` with the same answer (a
//! caller learns nothing about which tokens exist), and are not recorded: anyone can send
//! them. A live token whose role is below the route's is `403` naming both roles, and is
//! recorded in the audit trail ([`Caller::require_recorded`], `access.denied`, aggregated
//! per token and route a minute at a time).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use pgforce_sync::{Engine, Role, TokenRow, Viewer};

use crate::problem::Problem;

/// The audit trail's action for a live token refused for want of a role.
const ACCESS_DENIED: &str = "access.denied";

/// The token a request came with.
#[derive(Debug, Clone)]
pub struct Caller {
    token: TokenRow,
}

impl Caller {
    /// The caller a dashboard session was opened for.
    pub fn from_token(token: TokenRow) -> Self {
        Self { token }
    }

    /// Its token.
    pub fn token(&self) -> &TokenRow {
        &self.token
    }

    /// The token's name, as the audit trail records it.
    pub fn name(&self) -> &str {
        &self.token.name
    }

    /// Who views are shown to: the Salesforce calls they cause are charged to the token.
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer::Token(&self.token.name)
    }

    /// Goes on only if the caller's role includes `role`.
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        if self.token.role.grants(role) {
            return Ok(());
        }
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token {} has role {}; this needs {role}",
                self.token.name, self.token.role
            ),
        ))
    }
}

impl Caller {
    /// Goes on only if the caller's role includes `role`; a refusal is recorded in the
    /// audit trail as `access.denied` of `target` (a route as the table names it, never
    /// a path with ids, so one token adds at most a row a minute per route).
    pub async fn require_recorded(
        &self,
        engine: &Engine,
        role: Role,
        target: &str,
    ) -> Result<(), Problem> {
        let refused = self.require(role);
        if refused.is_err() {
            let detail = serde_json::json!({
                "role": self.token.role.to_string(),
                "needs": role.to_string(),
            });
            if let Err(error) = engine
                .admin()
                .audit_refusal(self.name(), ACCESS_DENIED, target, &detail)
                .await
            {
                tracing::error!(target, error = %error.chain(), "could not record a refused request in the audit trail");
            }
        }
        refused
    }

    /// The caller a request's `Authorization: Bearer` token names, if it is live.
    pub async fn authenticate(engine: &Engine, headers: &HeaderMap) -> Result<Self, Problem> {
        let unauthorized = || {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API token is required: Authorization: Bearer <token> (pgforce token create)",
            )
        };
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(unauthorized)?;
        match engine.admin().authenticate(presented).await? {
            Some(token) => Ok(Self { token }),
            None => Err(unauthorized()),
        }
    }
}

/// Handlers take the caller the route's guard let through (see `api::table`).
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API token is required",
            )
        })
    }
}
