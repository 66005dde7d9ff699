//! Everything pgforce keeps in PostgreSQL.
//!
//! It owns the `pgforce` catalog schema and its migrations, and the objects it creates in
//! each connection's schema exactly as Heroku Connect creates them: mapped tables, the
//! trigger log and its archive, the capture and status triggers, the NOTIFY trigger and
//! the re-queue helpers. It never talks to Salesforce. Every identifier reaches SQL
//! through [`Ident`]; every value is a bind parameter.
//!
//! Main types: [`Ident`], [`ddl::MappedTable`], [`Error`].
//!
//! Layout:
//! - `catalog`: migrations of the `pgforce` schema; `cursor`: connections, mappings and
//!   read cursors in it.
//! - `ddl`: connection schema and mapped tables (`sql/*.sql` hold the bodies).
//! - `hstore`: the trigger log's hstore text payloads.
//! - `notify`: LISTEN wake-ups for the writer; `lease`: who works on what; `sync_lock`:
//!   a table's reader and writer never interleave their `sfid` changes.
//! - `ident`, `error`: identifiers and errors.
//! - `testing` (feature `test-support`): a database per test.

#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod catalog;
mod connect;
pub mod cursor;
pub mod ddl;
mod error;
pub mod hstore;
pub mod ident;
pub mod lease;
pub mod notify;
pub mod sync_lock;
#[cfg(feature = "test-support")]
pub mod testing;

pub use connect::connect;
pub use error::{Error, Result};
pub use ident::Ident;
