//! Keeping `_trigger_log` short: processed rows move to `_trigger_log_archive` after a
//! delay, and the archive forgets rows after its retention (Heroku Connect: 31 days).
//!
//! A FAILED insert stays in the live log while rows held back behind it wait there, so
//! re-queueing it (state back to NEW) keeps working as users expect.

use std::time::Duration;

use tokio_postgres::Client;

use super::log_table;
use crate::Ident;
use crate::error::{Context as _, Result};
use crate::states::LogState;

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
    client: &mut Client,
    schema: &Ident,
    after: Duration,
    retention: Duration,
) -> Result<ArchiveOutcome> {
    let log = log_table(schema);
    let archive = format!("{schema}._trigger_log_archive");
    let tx = client
        .transaction()
        .await
        .context(|| format!("starting to archive {log}"))?;
    let archived = tx
        .execute(
            &format!(
                "with moved as (
                     delete from {log} l
                     where l.state = any($2)
                       and coalesce(l.processed_at, l.updated_at) < now() - make_interval(secs => $1)
                       and not (l.state = $3 and exists
                                (select 1 from {log} h where h.state = $4 and h.id > l.id))
                     returning l.*)
                 insert into {archive} select * from moved on conflict (id) do nothing"
            ),
            &[
                &after.as_secs_f64(),
                &LogState::texts(&LogState::PROCESSED),
                &LogState::Failed.as_str(),
                &LogState::Held.as_str(),
            ],
        )
        .await
        .context(|| format!("moving processed rows of {log} to the archive"))?;
    let pruned = tx
        .execute(
            &format!("delete from {archive} where created_at < now() - make_interval(secs => $1)"),
            &[&retention.as_secs_f64()],
        )
        .await
        .context(|| format!("pruning {archive}"))?;
    tx.commit()
        .await
        .context(|| format!("committing the archive of {log}"))?;
    Ok(ArchiveOutcome { archived, pruned })
}
