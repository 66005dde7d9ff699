//! Records changed on both sides before a sync: the statements behind the engine's
//! last-writer-wins rule (see `pgforce_sync`'s `conflict` module for the rule itself).

use std::collections::HashSet;

use tokio_postgres::GenericClient;

use super::log_table;
use crate::Ident;
use crate::error::{Context as _, Result};
use crate::states::{LogAction, LogState};

/// What [`settle`] decided for a page.
#[derive(Debug, Default)]
pub struct Settled {
    /// Records whose local changes win: not applied by this page. Each must be read again
    /// once its local change is settled: the page may hold the change's own version (a
    /// write in flight), and a change that ends FAILED or IGNORED leaves Salesforce's
    /// version to apply.
    pub local_wins: HashSet<String>,
    /// Local changes superseded by newer Salesforce changes (log rows set to IGNORED).
    pub superseded: u64,
}

/// Settles a page of Salesforce records, given as `(sfid, SystemModstamp)`, against the
/// unsent local changes (NEW, PENDING or HELD) of the same records of `table`: a local
/// change newer than the record's stamp, or being written (PENDING, however long ago it
/// was claimed: a Bulk job or a long pass outlives any fixed window), wins; older ones
/// are set IGNORED with the reason. Call inside the transaction that applies the page.
pub async fn settle(
    tx: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    page: &[(String, String)],
) -> Result<Settled> {
    if page.is_empty() {
        return Ok(Settled::default());
    }
    let (sfids, stamps): (Vec<&str>, Vec<&str>) =
        page.iter().map(|(s, t)| (s.as_str(), t.as_str())).unzip();
    let log = log_table(schema);
    let unsent = LogState::texts(&[LogState::New, LogState::Pending, LogState::Held]);
    let winners = tx
        .query(
            &format!(
                "select u.sfid
                 from unnest($1::text[], $2::text[]) u(sfid, stamp)
                 join {log} l on l.sfid = u.sfid and l.table_name = $3
                     and l.state = any($4) and l.action <> $5
                 group by u.sfid, u.stamp
                 having bool_or(l.state = $6) or max(l.created_at) > u.stamp::timestamptz"
            ),
            &[
                &sfids,
                &stamps,
                &table.as_str(),
                &unsent,
                &LogAction::Insert.as_str(),
                &LogState::Pending.as_str(),
            ],
        )
        .await
        .context(|| format!("finding local changes in {log} newer than Salesforce's"))?;
    let local_wins: HashSet<String> = winners.iter().map(|row| row.get(0)).collect();
    let superseded = tx
        .execute(
            &format!(
                "update {log} l set state = $6, processed_at = now(), updated_at = now(),
                     sf_message = 'pgforce: superseded by a newer change in Salesforce at '
                         || u.stamp || ' (last writer wins)'
                 from unnest($1::text[], $2::text[]) u(sfid, stamp)
                 where l.sfid = u.sfid and l.table_name = $3 and l.state = any($7)
                   and l.action <> $5 and not (u.sfid = any($4))"
            ),
            &[
                &sfids,
                &stamps,
                &table.as_str(),
                &local_wins.iter().collect::<Vec<_>>(),
                &LogAction::Insert.as_str(),
                &LogState::Ignored.as_str(),
                &LogState::texts(&[LogState::New, LogState::Held]),
            ],
        )
        .await
        .context(|| format!("setting superseded local changes in {log} IGNORED"))?;
    Ok(Settled {
        local_wins,
        superseded,
    })
}
