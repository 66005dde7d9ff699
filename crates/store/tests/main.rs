//! Integration tests for the store, on a real PostgreSQL (a fresh database per test).

// Integration tests are test code: unwrapping is how they fail loudly.
#![allow(clippy::unwrap_used)]

mod support;

mod audit;
mod catalog;
mod connections;
mod counts;
mod events;
mod layout;
mod odata;
mod odata_services;
mod pool;
mod subscriptions;
mod tls;
mod triggers;
mod write_back;
