//! When a record changed on both sides before a sync: last writer wins, by time.
//!
//! The reader calls [`settle`] for each page it is about to apply. For every record of the
//! page that still has unsent local changes (trigger-log rows NEW, PENDING or HELD for its
//! `sfid`):
//! - the local change is newer than the record's `SystemModstamp`, or is being written
//!   (PENDING, however long ago it was claimed): the page skips the record, so the local
//!   values stay; the writer sends them. The poll keeps its cursor before such a record,
//!   so polls read it again until the local change is settled: a record read while its
//!   change was in flight may already be that change's own version, which no later write
//!   will stamp again, and a change that ends FAILED or IGNORED writes nothing, so the
//!   skipped Salesforce version must still be applied. The cost is re-reading the records
//!   after that point while the change waits (seconds with a running writer);
//! - the Salesforce change is newer: the page applies it, and the older local changes are
//!   set to IGNORED with the reason in `sf_message`, so they never overwrite it.
//!
//! The rule is per record, as Heroku Connect's; times are the database's capture time and
//! Salesforce's `SystemModstamp`, so it relies on both clocks being right (NTP). Every
//! decision is counted in the poll's outcome and logged. The statements live in
//! `pgforce_store::trigger_log::conflict`.

use pgforce_store::Transaction;
use pgforce_store::trigger_log::conflict::{self, Settled};

use crate::error::Result;
use crate::reader::Target;

/// Settles conflicts between a page of Salesforce records, given as `(sfid,
/// SystemModstamp)`, and the unsent local changes of the same records, inside the page's
/// transaction.
pub(crate) async fn settle(
    tx: &Transaction<'_>,
    target: &Target<'_>,
    page: &[(String, String)],
) -> Result<Settled> {
    let table = &target.mapping.table;
    let settled = conflict::settle(tx, target.schema, table, page)
        .await
        .map_err(|e| crate::Error::store(&target.mapping.object, e))?;
    if !settled.local_wins.is_empty() || settled.superseded > 0 {
        tracing::info!(table = %table, local_wins = settled.local_wins.len(), superseded = settled.superseded, "records changed on both sides: last writer wins");
    }
    Ok(settled)
}
