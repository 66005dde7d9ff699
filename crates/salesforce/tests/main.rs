//! Integration tests for the Salesforce client, against the emulator over HTTPS.

mod support;

mod auth;
mod collections;
mod malformed;
mod parsing;
mod query;
mod resilience;
mod rest;
