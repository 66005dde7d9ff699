//! Keeping `_trigger_log` short: processed rows move to `_trigger_log_archive` after a
//! delay, and the archive forgets rows after its retention (Heroku Connect: 31 days).
//!
//! A FAILED insert stays in the live log while rows held back behind it wait there, so
//! re-queueing it (state back to NEW) keeps working as users expect.

use std::time::Duration;

use pgforce_store::Ident;
use tokio_postgres::Client as Postgres;

use super::pg_error;
use crate::error::Result;

/// What [`archive_processed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveOutcome {
    /// Rows moved from the live log to the archive.
    pub archived: u64,
    /// Rows removed from the archive for being older than the retention.
    pub pruned: u64,
}

/// Moves rows processed more than `after` ago into the archive (one transaction) and
/// prunes archive rows created more than `retention` ago.
pub async fn archive_processed(
    pg: &mut Postgres,
    schema: &Ident,
    after: Duration,
    retention: Duration,
) -> Result<ArchiveOutcome> {
    let log = format!("{schema}._trigger_log");
    let archive = format!("{schema}._trigger_log_archive");
    let tx = pg
        .transaction()
        .await
        .map_err(pg_error("starting to archive"))?;
    let archived = tx
        .execute(
            &format!(
                "with moved as (
                     delete from {log} l
                     where l.state in ('SUCCESS', 'MERGED', 'FAILED', 'IGNORE', 'IGNORED', 'READONLY', 'REQUEUED')
                       and coalesce(l.processed_at, l.updated_at) < now() - make_interval(secs => $1)
                       and not (l.state = 'FAILED' and exists
                                (select 1 from {log} h where h.state = 'HELD' and h.id > l.id))
                     returning l.*)
                 insert into {archive} select * from moved on conflict (id) do nothing"
            ),
            &[&after.as_secs_f64()],
        )
        .await
        .map_err(pg_error("moving processed rows to the archive"))?;
    let pruned = tx
        .execute(
            &format!("delete from {archive} where created_at < now() - make_interval(secs => $1)"),
            &[&retention.as_secs_f64()],
        )
        .await
        .map_err(pg_error("pruning the archive"))?;
    tx.commit()
        .await
        .map_err(pg_error("committing the archive"))?;
    Ok(ArchiveOutcome { archived, pruned })
}
