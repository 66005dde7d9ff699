//! Integration tests for the Salesforce client, against the emulator over HTTPS.

// Integration tests are test code: unwrapping is how they fail loudly.
#![allow(clippy::unwrap_used)]

mod support;

mod auth;
mod bulk;
mod collections;
mod cometd;
mod malformed;
mod parsing;
mod partial_writes;
mod pubsub;
mod query;
mod resilience;
mod rest;
