//! End-to-end tests of the `pgforce` binary: the real executable, a real PostgreSQL.

// Integration tests are test code: unwrapping is how they fail loudly.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod demo;
mod drift;
mod mappings;
mod pause;
mod reconcile;
mod run;
mod runtime_changes;
mod takeover;
mod torture;
mod write;
