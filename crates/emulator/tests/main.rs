//! Integration tests for the emulator: every feature over real HTTP(S).

// Integration tests are test code: unwrapping is how they fail loudly.
#![allow(clippy::unwrap_used)]

mod odata_producer;
mod support;

mod api_limit;
mod auth;
mod authorize;
mod bulk;
mod bulk_failures;
mod collections;
mod cometd;
mod commit_delay;
mod connect;
mod control;
mod credentials;
mod cursors;
mod describe;
mod errors;
mod fault_script;
mod fixtures;
mod header_case;
mod pubsub;
mod query;
mod record_locks;
mod rest;
mod schema_changes;
