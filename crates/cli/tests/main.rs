//! End-to-end tests of the `pgforce` binary: the real executable, a real PostgreSQL.

// Integration tests are test code: unwrapping is how they fail loudly.
#![allow(clippy::unwrap_used)]

mod admin;
mod api;
mod archive;
mod bad_input;
mod dashboard;
mod demo;
mod drift;
mod events;
mod hardening;
mod keys;
mod listener;
mod logging;
mod mappings;
mod notifications;
mod oauth;
mod odata;
mod passwords;
mod pause;
mod pool;
mod postgres_faults;
mod reconcile;
mod retention;
mod run;
mod runtime_changes;
mod schemas;
mod secrets;
mod server;
mod takeover;
mod torture;
mod write;
