//! Integration tests for the engine: the emulator over HTTPS and a real PostgreSQL.

// Integration tests are test code: unwrapping is how they fail loudly.
#![allow(clippy::unwrap_used)]

mod support;

mod archive;
mod bulk;
mod conflict;
mod cursor_release;
mod drift;
mod mapping;
mod reader;
mod reconcile;
mod writer;
mod writer_races;
mod writer_recovery;
