//! Salesforce → Postgres: the initial load and incremental polls of one mapping.
//!
//! Data flow:
//! - **Initial load**: note the newest `SystemModstamp` in the org, then stream the
//!   object page by page and COPY each page into the table, all in one transaction that
//!   also sets the cursor to that noted stamp. A crash rolls the whole load back; changes
//!   made while it ran have later stamps and arrive with the first poll. Memory holds one
//!   page.
//! - **Poll**: queryAll the records with `(SystemModstamp, Id)` after the cursor, ordered
//!   by both, so ties on one stamp across a page boundary are neither skipped nor
//!   repeated; each page is applied (matched by `sfid`, then by the upsert field when the
//!   row has no `sfid` yet; deleted records removed) in one transaction that advances the
//!   cursor to its last record. Records with unsent local changes follow the
//!   last-writer-wins rule of [`crate::conflict`].
//! - **Rejected records**: a record whose value does not fit its column is not stored, and
//!   not dropped either: it is kept in `pgforce.rejected_records` in the transaction of
//!   the page that skipped it (before the cursor moves past it), and forgotten when a
//!   later read stores it. After a schema change widened a column, the reader reads the
//!   rejected records again by Id.
//!
//! Layout: `worker` (the reader as a long-running worker: lease, interval, wake-ups,
//! error policy), `load` (initial load and reload), `poll` (incremental polls), `apply`
//! (storing records, shared by polls and reconcile's refresh), `bulk` (reading through
//! Bulk API 2.0), `schema` (following the object's schema as it changes).
//!
//! All writes are pgforce's own (`pgforce_store::OwnWrite`), so the capture triggers skip
//! them and nothing echoes back to Salesforce.

use pgforce_salesforce::rest::Record;
use pgforce_store::catalog::leases::Fence;
use pgforce_store::catalog::mappings;
use pgforce_store::catalog::rejected::{self, Rejection};
use pgforce_store::{Ident, MappingId, MappingState, Session as Postgres, Transaction};
use serde_json::Value;

use crate::convert::to_pg_text;
use crate::error::{Error, Result};
use crate::mapping::Mapping;

pub use crate::outcome::{ReadOutcome, RejectedRecord};

/// The target of one mapping: where its rows and cursor live.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The connection's schema.
    pub schema: &'a Ident,
    /// The mapping.
    pub mapping: &'a Mapping,
    /// Its catalog id.
    pub mapping_id: MappingId,
    /// The reader's lease: what it applies commits only while the lease holds (`None`:
    /// work no lease guards, such as reconcile's repair).
    pub fence: Option<&'a Fence>,
}

impl Target<'_> {
    fn object(&self) -> &str {
        &self.mapping.object
    }

    fn sf_error(&self, source: pgforce_salesforce::Error) -> Error {
        Error::salesforce(self.object(), source)
    }

    fn store_error(&self, source: pgforce_store::Error) -> Error {
        Error::store(self.object(), source)
    }

    /// Sets the mapping's state (clearing its last error and activity).
    async fn set_state(&self, pg: &Postgres, state: MappingState) -> Result<()> {
        mappings::set_state(pg, self.mapping_id, &state, None)
            .await
            .map_err(|e| self.store_error(e))
    }

    /// Records the outcome on the mapping: DATA_SYNCED, with the first rejected record
    /// as the mapping's last error when some were rejected.
    async fn finish(&self, pg: &Postgres, outcome: &ReadOutcome) -> Result<()> {
        let error = outcome.rejected_summary();
        mappings::set_state(
            pg,
            self.mapping_id,
            &MappingState::DataSynced,
            error.as_deref(),
        )
        .await
        .map_err(|e| self.store_error(e))
    }
}

/// Keeps the records a read could not store and forgets those it stored or deleted, in the
/// read's transaction (before its cursor moves): `stored` are the rows it applied (`sfid`
/// first), `records` what it read.
async fn settle_rejected(
    client: &Transaction<'_>,
    target: &Target<'_>,
    records: &[Record],
    stored: &[Vec<Option<String>>],
    rejected: &[RejectedRecord],
) -> Result<()> {
    let mut done: Vec<&str> = stored
        .iter()
        .filter_map(|row| row.first()?.as_deref())
        .collect();
    done.extend(
        records
            .iter()
            .filter(|r| r.get("IsDeleted") == Some(&Value::Bool(true)))
            .filter_map(|r| text_of(r, "Id")),
    );
    rejected::forget(client, target.mapping_id, &done)
        .await
        .map_err(|e| target.store_error(e))?;
    rejected::record(client, target.mapping_id, &rejections(rejected))
        .await
        .map_err(|e| target.store_error(e))
}

/// Rejected records as the catalog keeps them.
fn rejections(rejected: &[RejectedRecord]) -> Vec<Rejection<'_>> {
    rejected
        .iter()
        .map(|r| Rejection {
            sfid: &r.sfid,
            field: &r.field,
            reason: &r.reason,
        })
        .collect()
}

/// The SOQL datetime literal for a `SystemModstamp` Salesforce sent (`…+0000` → `…Z`).
fn soql_datetime(stamp: &str) -> String {
    stamp
        .strip_suffix("+0000")
        .map_or_else(|| stamp.to_owned(), |s| format!("{s}Z"))
}

fn text_of<'r>(record: &'r Record, field: &str) -> Option<&'r str> {
    record.get(field).and_then(Value::as_str)
}

/// The Postgres text of every mapped field of a record, in mapping order, or why not.
pub(crate) fn row_values(
    mapping: &Mapping,
    record: &Record,
) -> std::result::Result<Vec<Option<String>>, RejectedRecord> {
    let sfid = text_of(record, "Id").unwrap_or_default();
    mapping
        .fields
        .iter()
        .map(|field| {
            let value = record.get(&field.api_name).unwrap_or(&Value::Null);
            to_pg_text(value, &field.api_name, field.pg_type).map_err(|rejected| RejectedRecord {
                sfid: sfid.to_owned(),
                field: rejected.field,
                reason: rejected.reason,
            })
        })
        .collect()
}

mod apply;
pub(crate) mod bulk;
mod load;
mod poll;
pub(crate) mod schema;
mod worker;

pub use apply::refresh_records;
pub use load::initial_load;
#[cfg(feature = "test-support")]
pub use poll::poll_once;
pub use poll::poll_with_overlap;
pub use worker::LoadProgress;
pub(crate) use worker::{ReaderWake, ReaderWorker};
