//! pgforce's sync engine.
//!
//! It owns the mapping model (what to sync, checked against the org), the conversion of
//! Salesforce values into Postgres columns, and the workers that move changes: the reader
//! (Salesforce → Postgres: initial load and incremental polls) and the writer (Postgres →
//! Salesforce: the trigger log). It talks to
//! Salesforce only through `pgforce-salesforce` and to Postgres through `pgforce-store`
//! and the driver, and follows the worker contract in ARCHITECTURE.md: cursors advance in
//! the transaction that applied the rows, and pgforce's own writes never echo back.
//!
//! Main types: [`mapping::MappingSpec`], [`mapping::Mapping`], [`reader::Target`],
//! [`reader::ReadOutcome`], [`Error`].
//!
//! Layout:
//! - `mapping`: configured mappings resolved against describe; `hc_json`: Heroku Connect's
//!   mapping export document.
//! - `convert`: Salesforce types and values into Postgres (pure).
//! - `reader`: initial load and polling (`bulk_read`: through Bulk API 2.0 above the
//!   mapping's threshold); `conflict`: last writer wins when both sides
//!   changed a record.
//! - `reconcile`: comparing both sides of a mapping and repairing drift.
//! - `plan`: ordered and merged write plans from captured changes (pure).
//! - `writer`: one pass over the trigger log (claim, send, record outcomes), resuming
//!   after a crash, archiving; `write_worker`: the writer as a daemon (lease, LISTEN).
//! - `config`: connections and mappings as configured; `supervisor`: one worker per
//!   mapping, fail-fast setup, shutdown.

#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod bulk_read;
pub mod config;
pub mod conflict;
pub mod convert;
mod error;
pub mod hc_json;
pub mod mapping;
pub mod plan;
pub mod reader;
pub mod reconcile;
pub mod supervisor;
pub mod write_worker;
pub mod writer;

pub use error::{Error, Result};
