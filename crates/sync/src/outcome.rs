//! What the workers report of one run: a reader's load or poll, a writer's pass.
//!
//! A leaf: the event log, metrics and the engine read these without depending on the
//! reader or the writer that produce them.

use std::collections::{BTreeMap, BTreeSet};

use crate::error_policy::Pause;

/// A record that could not be stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    /// The record's Id.
    pub sfid: String,
    /// The field at fault.
    pub field: String,
    /// Why its value does not fit.
    pub reason: String,
}

/// What one load or poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Records inserted or updated.
    pub applied: u64,
    /// Rows deleted because their record was deleted in Salesforce.
    pub deleted: u64,
    /// Records not stored: kept in `pgforce.rejected_records` and reported on the mapping.
    pub rejected: Vec<RejectedRecord>,
    /// Salesforce API calls made (one per query page, plus the load's newest-record query).
    pub api_calls: u64,
    /// Records changed on both sides whose newer local change was kept (not applied).
    pub local_wins: u64,
    /// Local changes superseded by newer Salesforce changes (set to IGNORED).
    pub superseded: u64,
}

impl ReadOutcome {
    /// What a person reads about the records that could not be stored, if any were.
    pub fn rejected_summary(&self) -> Option<String> {
        self.rejected.first().map(|r| {
            format!(
                "{} record(s) could not be stored; first: {} field {}: {}",
                self.rejected.len(),
                r.sfid,
                r.field,
                r.reason
            )
        })
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Changes written to Salesforce successfully.
    pub succeeded: u64,
    /// Changes Salesforce refused (state FAILED, message kept).
    pub failed: u64,
    /// Log rows folded into another change or cancelled out (state MERGED).
    pub merged: u64,
    /// Log rows newly held back behind a failed insert (state HELD).
    pub held: u64,
    /// Log rows given back to NEW after a transient failure, to be sent again.
    pub retried: u64,
    /// Log rows left PENDING because their create may have happened; [`resume_pending`]
    /// settles them.
    pub in_doubt: u64,
    /// Log rows among those in doubt whose create the client gave up waiting for:
    /// Salesforce may still be running it, so the writer checks it only once Salesforce
    /// cannot be (meanwhile the rows stay PENDING and later changes of their records wait).
    pub still_running: Vec<i64>,
    /// Salesforce calls made (collections calls, and every call of bulk jobs).
    pub api_calls: u64,
    /// Bulk API ingest jobs that carried changes.
    pub bulk_jobs: u64,
    /// Runs meant for a bulk job that fell back to collections.
    pub bulk_fallbacks: u64,
    /// Successful changes per table.
    pub by_table: BTreeMap<String, u64>,
    /// Records whose insert Salesforce refused in this pass.
    pub failed_inserts: BTreeSet<(String, i64)>,
    /// Upsert-field values of those records, per table: children naming them wait.
    pub failed_keys: BTreeSet<(String, String)>,
    /// The org-wide condition that stopped the pass, when one did: the connection waits
    /// it out (its changes went back to NEW).
    pub paused: Option<Pause>,
    /// A call Salesforce refused as a whole for a reason no record caused (the object and
    /// Salesforce's words): the pass gave its changes back (NEW) and the writer stops
    /// until the operator acts.
    pub refused_call: Option<(String, String)>,
}

impl WriteOutcome {
    /// Whether the pass found nothing to do.
    pub fn is_idle(&self) -> bool {
        self.succeeded + self.failed + self.merged + self.retried + self.in_doubt == 0
    }
}
