//! Does Postgres hold what Salesforce holds? Comparing a mapping's records with its rows,
//! and repairing what differs, safely beside a running daemon.
//!
//! Key concepts:
//! - **Snapshot.** [`compare`] notes the database's time, then reads every record's `Id`
//!   and `SystemModstamp` from Salesforce (through a Bulk API query job above the
//!   mapping's bulk threshold, which can take minutes), then the rows' `sfid`s and stamps,
//!   and compares them in memory. A row whose stamp differs from its record's holds other
//!   values than Salesforce (older or newer), so it counts as differing. Local changes that
//!   never reached Salesforce are read from the trigger log and the rows without `sfid`.
//!   The result, a [`Drift`], is what was true at the snapshot, and the daemon goes on
//!   working meanwhile: a record created after the Salesforce side was read and stored by
//!   the reader, or a row whose `sfid` the writer wrote back in between, looks "gone from
//!   Salesforce"; a row deleted by an app looks "missing in Postgres".
//! - **Repair** ([`repair`]) therefore never acts on the drift alone. It works in batches
//!   of [`BATCH`] rows, each one transaction of pgforce's own holding the table's sync lock
//!   (the lock the table's reader and writer take to store records and write `sfid`s back)
//!   and locking the batch's rows (`for update`, so an app's edit of one waits), and it
//!   decides every row again inside the batch, from what is true then:
//!   - rows that looked gone are checked by Id with `queryAll` (deleted records show
//!     `IsDeleted = true`) and deleted only when Salesforce reports the record deleted or
//!     does not know the Id at all; a record it still has is counted "still in Salesforce"
//!     and its row stays;
//!   - missing and differing records are read again and stored in the same transaction as
//!     the read, so the reader cannot store a newer version between the two (it waits for
//!     the lock), and a version the reader read earlier and stores later leaves its cursor
//!     before the newer change, which its next poll brings;
//!   - rows that never reached Salesforce are queued again only if they still have no
//!     `sfid`.
//! - **Left alone.** In every step, a row or record with local changes not sent yet
//!   (trigger-log entries NEW, PENDING or HELD, by `sfid` or row id) is left alone: its
//!   change goes to Salesforce first and the reader brings the result back, as the
//!   conflict rule of the reader does. So is one whose trigger log shows a change
//!   captured, or an outcome recorded (an `sfid` written back, a delete done), at or after
//!   the snapshot's start: the drift about it is out of date. Each reason is counted in
//!   [`Repair::left_alone`]; what stays different shows in the next comparison.
//!
//! Why the trigger log and not the rows themselves tell what changed after the snapshot:
//! the reader's own updates are ordered by the sync lock and re-checked against Salesforce
//! (a row the reader stored after the snapshot has a live record), and the other signals
//! are unreliable for this: a row's `systemmodstamp` is Salesforce's clock and can be
//! newer than the org's own records for good reasons (an org refreshed from an older
//! copy), and a row's `xmin` is a 32-bit transaction id that cannot be placed against a
//! snapshot taken minutes earlier once it has been frozen or wrapped around.
//!
//! Layout: `compare` (the snapshot and the drift), `repair` (the batches), `verdict`
//! (what to do with one row or record; pure).

mod compare;
mod repair;
mod verdict;

use std::time::SystemTime;

use pgforce_store::MappingId;
use pgforce_store::Session as Postgres;
use pgforce_store::catalog::mappings;
use serde::Serialize;

use crate::error::{Error, Result};

pub use compare::compare;
pub use repair::repair;

/// Rows or records one repair batch handles: few enough for one `WHERE Id IN (…)` well
/// under Salesforce's query length limit, and for the table's sync lock to be held briefly.
pub const BATCH: usize = 200;

/// How one mapping's two sides differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The database's time when the comparison began, before Salesforce was read (none:
    /// a drift put together by hand; repair then skips only rows with unsent changes).
    pub snapshot_started_at: Option<SystemTime>,
    /// Live records in Salesforce.
    pub salesforce_records: u64,
    /// Rows in Postgres.
    pub postgres_rows: u64,
    /// Records with no row (sfids).
    pub missing_in_postgres: Vec<String>,
    /// Rows whose record no longer exists in Salesforce (sfids).
    pub gone_from_salesforce: Vec<String>,
    /// Rows whose `SystemModstamp` is not their record's (sfids).
    pub differing: Vec<String>,
    /// Rows inserted in Postgres that have no `sfid` (row ids).
    pub never_sent: Vec<i32>,
    /// Captured changes not written yet: NEW, PENDING, HELD or FAILED trigger-log rows.
    pub unsent_changes: u64,
    /// Records kept as rejected: read, but their values do not fit their columns.
    pub rejected: u64,
}

impl Drift {
    /// Whether both sides agree.
    pub fn is_clean(&self) -> bool {
        self.missing_in_postgres.is_empty()
            && self.gone_from_salesforce.is_empty()
            && self.differing.is_empty()
            && self.never_sent.is_empty()
            && self.unsent_changes == 0
            && self.rejected == 0
    }

    /// The counts, for the catalog and `pgforce status`.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "salesforce_records": self.salesforce_records,
            "postgres_rows": self.postgres_rows,
            "missing_in_postgres": self.missing_in_postgres.len(),
            "gone_from_salesforce": self.gone_from_salesforce.len(),
            "differing": self.differing.len(),
            "never_sent": self.never_sent.len(),
            "unsent_changes": self.unsent_changes,
            "rejected": self.rejected,
        })
    }
}

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// Records read again and stored.
    pub refreshed: u64,
    /// Rows deleted because their record is deleted in Salesforce or unknown to it.
    pub deleted: u64,
    /// Rows and failed changes queued again for the writer.
    pub requeued: u64,
    /// Rows and records the drift named that repair did not touch, by reason.
    pub left_alone: LeftAlone,
}

/// Rows and records a repair left alone, by reason (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LeftAlone {
    /// Rows that looked gone whose record Salesforce still has: created, or written back,
    /// after the snapshot.
    pub still_in_salesforce: u64,
    /// Rows and records with local changes not sent yet (NEW, PENDING or HELD).
    pub unsent_changes: u64,
    /// Rows and records changed since the snapshot began: a change captured or an outcome
    /// recorded in the trigger log since then, or a row no longer as the snapshot saw it
    /// (deleted, or given an `sfid`).
    pub changed_since_snapshot: u64,
    /// Records to read again that Salesforce no longer returns (deleted since the
    /// snapshot; the reader removes their rows).
    pub no_longer_in_salesforce: u64,
    /// Records read again whose values do not fit their columns.
    pub rejected: u64,
}

impl LeftAlone {
    /// How many in all.
    pub fn total(&self) -> u64 {
        self.still_in_salesforce
            + self.unsent_changes
            + self.changed_since_snapshot
            + self.no_longer_in_salesforce
            + self.rejected
    }
}

/// Records the drift counts on the mapping (shown by `pgforce status`).
pub async fn record(pg: &Postgres, mapping_id: MappingId, drift: &Drift) -> Result<()> {
    mappings::record_drift(pg, mapping_id, &drift.summary().to_string())
        .await
        .map_err(Error::catalog)
}
