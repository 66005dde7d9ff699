//! A connection's `_trigger_log`: the changes apps made to read-write tables, on their way
//! to Salesforce, and what became of them.
//!
//! Data flow of one change: the capture trigger logs it `NEW` → [`claim`] marks it
//! `PENDING` (or holds it back behind a refused insert) → its outcome is recorded with
//! the row's write-back in one transaction ([`outcomes`]) → after a while it moves to
//! `_trigger_log_archive` ([`archive`]). A writer that stopped mid-pass leaves rows
//! `PENDING`; [`resume`] settles them, and [`jobs`] keeps the Bulk API jobs a writer
//! started so the next one reads their results instead of sending their rows again, as
//! [`in_flight`] keeps the plain creates a writer was sending, so the next one checks them
//! only once Salesforce can no longer be running them. [`conflict`] decides, for records changed on both
//! sides, whose change wins; [`queue`] counts and lists what waits, for status and
//! reconcile.

pub mod archive;
pub mod claim;
pub mod conflict;
pub mod in_flight;
pub mod jobs;
pub mod outcomes;
pub mod queue;
pub mod resume;

use crate::Ident;

/// The qualified name of a connection's trigger log.
pub(crate) fn log_table(schema: &Ident) -> String {
    format!("{schema}._trigger_log")
}

/// Trigger-log ids as stored (`integer`); larger ids cannot exist in the table.
fn stored_ids(ids: &[i64]) -> Vec<i32> {
    ids.iter()
        .filter_map(|id| i32::try_from(*id).ok())
        .collect()
}
