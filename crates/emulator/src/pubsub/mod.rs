//! The Salesforce Pub/Sub API (gRPC, package `eventbus.v1`) for Change Data Capture.
//!
//! Key concepts:
//! - gRPC over HTTP/2 with TLS (ALPN `h2`) on its own port, with the same certificate as the
//!   HTTPS listener, because Pub/Sub clients always use TLS.
//! - Every call is authenticated by its metadata (`accesstoken`, `instanceurl`,
//!   `tenantid`) against the org's sessions; anything else is UNAUTHENTICATED.
//! - Topics are the Change Data Capture channels; events come from the org's change log
//!   (`events::ChangeLog`), only for objects selected for CDC.
//! - A subscription sends events only while the subscriber's credit (`num_requested`)
//!   lasts; idle streams get a keepalive carrying the latest replay id.
//!
//! Data flow: `server` accepts TLS connections and serves the tonic service generated from
//! the Pub/Sub proto (`pgforce-pubsub-proto`) on them; `service` implements it and answers
//! the unary calls; `subscribe` runs one subscription as a stream of responses, reading
//! the change log and encoding events with `schema`, `payload` (apache-avro) and `bitmap`.

mod bitmap;
mod payload;
mod schema;
mod server;
mod service;
mod subscribe;
mod topic;

pub use server::serve;
