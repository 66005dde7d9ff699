//! The Streaming API: Bayeux (CometD) over HTTP long-polling, carrying Change Data Capture
//! events (`/data/...ChangeEvent`) and PushTopic events (`/topic/<Name>`).
//!
//! Key concepts:
//! - The org's change log (`events`) is the only source of events; this module only reads
//!   it. Each subscription keeps the replay id it has read up to, so replay from `-1`,
//!   `-2` or an id is a start position and delivery is a read after it.
//! - A client is a handshake: a clientId tied to a `BAYEUX_BROWSER` cookie, forgotten
//!   when it does not reconnect in time (configurable, Salesforce's 40 seconds).
//! - A connect is held until an event arrives or the configured timeout passes (110
//!   seconds as in Salesforce); a stream cut (control API) drops its connection.
//!
//! Data flow: `transport` (HTTP, auth, Bayeux messages) → `clients` (who, what channel,
//! which position) → `delivery` (read the log, apply faults, wait) → `cdc` or
//! `push_topic` (the event JSON). `channels` resolves names; `tooling` selects CDC
//! objects through the Tooling API; `push_topic` also checks PushTopic records.

mod cdc;
mod channels;
mod clients;
mod delivery;
pub mod push_topic;
pub mod tooling;
mod transport;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, post};

pub use clients::Clients;

use crate::state::Shared;

/// Routes of the Streaming API.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/cometd", any(transport::missing_version))
        .route("/cometd/", any(transport::missing_version))
        .route(
            "/cometd/{version}",
            post(transport::endpoint).get(transport::websocket_refused),
        )
        .route("/cometd/{version}/{meta}", post(transport::meta_endpoint))
        // Bodies over the Streaming API's limit get its own 413, not the router's.
        .layer(DefaultBodyLimit::max(4 * transport::MAX_BODY_BYTES))
}
