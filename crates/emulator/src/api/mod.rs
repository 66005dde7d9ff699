//! The Salesforce-facing HTTP API: OAuth, SOAP login and `/services/data`.
//!
//! Layout: [`rest`] admits and dispatches data calls; one module per resource family
//! ([`sobjects`], [`collections`], [`query`], [`describe`], [`limits`]); [`oauth`] and
//! [`soap`] issue sessions; [`context`] is what an admitted request carries; [`injection`]
//! chooses the injected faults a call suffers.

pub mod authorize;
pub mod bulk;
pub mod collections;
pub mod context;
pub mod describe;
pub mod injection;
pub mod limits;
pub mod oauth;
pub mod query;
pub mod rest;
pub mod soap;
pub mod sobjects;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};

use crate::state::Shared;

/// Routes of the Salesforce API.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/services/oauth2/token", post(oauth::token))
        .route(
            "/services/oauth2/authorize",
            get(authorize::page).post(authorize::answer),
        )
        .route("/services/oauth2/revoke", post(oauth::revoke))
        .route("/services/oauth2/userinfo", get(oauth::userinfo))
        .route("/id/{org}/{user}", get(oauth::identity))
        .route("/services/Soap/u/{version}", post(soap::login))
        .route("/services/data", get(rest::versions))
        .route("/services/data/", get(rest::versions))
        .route(
            "/services/data/{*rest}",
            // Bulk uploads may be as large as Salesforce takes; the handler checks the limit.
            any(rest::dispatch).layer(DefaultBodyLimit::max(bulk::MAX_UPLOAD_BYTES + 1)),
        )
}
