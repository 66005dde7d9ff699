//! Archive jobs: moving an object's old records out of Salesforce into Postgres, safely.
//!
//! Companies archive records to keep their org fast and under its storage limit, and
//! still read them (published back to Salesforce as external objects). A record must
//! never be lost on the way, nor stay in both places unnoticed, whatever stops the job.
//!
//! Key concepts:
//! - **The condition** ([`where_clause`]): a safe subset of SOQL, parsed and checked
//!   against the object's describe; only pgforce's rewriting of it reaches a query.
//! - **The archive table**: `<connection schema>_archive.<table>`, the mapped table's
//!   data columns with `sfid` as primary key (see `pgforce_store::archive_table`).
//! - **Steps** ([`steps`]): select (query, copy, note each record `copied`), verify (read
//!   every copied record again from Salesforce and compare it with its archived row;
//!   any difference fails the job with nothing deleted), delete (sObject Collections, 200
//!   per call, or Bulk `hardDelete`; "already deleted" counts as done; a record refused
//!   for its own reason stays `copied` and is listed). The job's step is recorded in the
//!   catalog in the transaction that finishes the step before.
//! - **Lease**: a job runs under `archive:<job>`, fenced like every worker; the CLI and
//!   `pgforce run` take the same lease, so one job never runs twice at once.
//!
//! Data flow: operator → job row (pending) → a worker (CLI or `pgforce run`) takes the
//! lease → select → verify → delete → finished. The mapped table is never touched: the
//! reader's next poll sees the deletes (`IsDeleted`) and removes the rows, as for any
//! delete made in Salesforce.

pub(crate) mod steps;
pub(crate) mod unarchive;
pub(crate) mod where_clause;
mod worker;

pub(crate) use steps::archive_table;
pub use steps::{Hooks, JobTarget, Progress, run_job};
pub use where_clause::WhereError;
pub(crate) use worker::ArchiveWorker;

use pgforce_salesforce::Client;
use pgforce_store::ConnectionId;
use pgforce_store::catalog::archive::{self, Job};

use crate::error::{Error, Result};
use crate::mapping::Mapping;

/// Checks `where_clause` against the object's describe and records a pending job of
/// `mapping`'s object on `connection`. A condition that does not parse or names what the
/// object lacks is refused with its position, and nothing is recorded.
pub(crate) async fn create_job(
    salesforce: &Client,
    pg: &pgforce_store::Session,
    connection: ConnectionId,
    schema: &pgforce_store::Ident,
    mapping: &Mapping,
    where_clause: &str,
    hard_delete: bool,
) -> Result<Job> {
    let describe = salesforce
        .describe(&mapping.object)
        .await
        .map_err(|e| Error::salesforce(&mapping.object, e))?;
    where_clause::parse(where_clause, &describe)
        .map_err(|e| Error::config(&mapping.object, e.to_string()))?;
    // The table exists from the start, so it can be published before the first copy.
    pgforce_store::archive_table::ensure_archive_table(pg, &archive_table(schema, mapping)?)
        .await
        .map_err(|e| Error::store(&mapping.object, e))?;
    archive::create_job(pg, connection, &mapping.object, where_clause, hard_delete)
        .await
        .map_err(Error::catalog)
}
