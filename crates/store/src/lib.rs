//! Everything pgforce keeps in PostgreSQL: every SQL statement pgforce runs lives here.
//!
//! It owns the `pgforce` catalog schema and its migrations, and the objects it creates in
//! each connection's schema exactly as Heroku Connect creates them: mapped tables, the
//! trigger log and its archive, the capture and status triggers, the NOTIFY trigger and
//! the re-queue helpers; and every read and write of them. It never talks to Salesforce.
//! Every identifier reaches SQL through [`Ident`]; every value is a bind parameter.
//! pgforce's own writes to synced tables open their transaction through [`OwnWrite`].
//!
//! Main types: [`Ident`], [`OwnWrite`], [`ddl::MappedTable`], the typed states
//! ([`MappingState`], [`ConnectionState`], [`LogState`], [`Access`]) and ids
//! ([`ConnectionId`], [`MappingId`]), [`Error`].
//!
//! Layout:
//! - `catalog`: migrations of the `pgforce` schema; one module per catalog table
//!   (`connections`, `mappings`, `cursors`, `events`, `leases`) and `status`.
//! - `trigger_log`: claiming, recording outcomes, resuming, archiving, conflicts, queue.
//! - `table`: mapped-table reads and writes (applying records, loads, rows).
//! - `archive_table`: the `<schema>_archive` tables archive jobs copy records into.
//! - `ddl`: connection schema and mapped tables (`sql/*.sql` hold the bodies).
//! - `own_write`: the one way to open a transaction for pgforce's own writes.
//! - `hstore`: the trigger log's hstore text payloads.
//! - `odata`: the OData 4.0 query engine (published tables and views as entity sets).
//! - `notify`: LISTEN wake-ups; `connect`: opening sessions (one by one, or lent by a
//!   bounded [`Pool`]) and showing connection strings without passwords; `database`: creating the database a URL names.
//! - `states`, `ids`, `ident`, `error`: the vocabulary.
//! - `testing` (feature `test-support`): a database per test.

#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod archive_table;
pub mod catalog;
mod connect;
mod database;
pub mod ddl;
mod error;
pub mod hstore;
pub mod ident;
mod ids;
pub mod notify;
pub mod odata;
mod own_write;
mod states;
pub mod table;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod trigger_log;

pub use connect::{
    POOL_APPLICATION_NAME, POOL_WAIT, Pool, PoolOptions, PooledSession, connect, redact_conninfo,
};
pub use database::connect_creating;
pub use error::{Error, Result};
pub use ident::Ident;
pub use ids::{ConnectionId, MappingId};
pub use own_write::{OwnTransaction, OwnWrite};
pub use states::{Access, ConnectionState, LastOp, LogAction, LogState, MappingState};
pub use tokio_postgres::{Client as Session, Transaction};
