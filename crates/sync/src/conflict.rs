//! When a record changed on both sides before a sync: last writer wins, by time.
//!
//! The reader calls [`settle`] for each page it is about to apply. For every record of the
//! page that still has unsent local changes (trigger-log rows NEW, PENDING or HELD for its
//! `sfid`):
//! - the local change is newer than the record's `SystemModstamp`, or is being written
//!   right now (PENDING): the page skips the record, so the local values stay; the writer
//!   sends them, and the next poll brings the record back as Salesforce then has it;
//! - the Salesforce change is newer: the page applies it, and the older local changes are
//!   set to IGNORED with the reason in `sf_message`, so they never overwrite it.
//!
//! The rule is per record, as Heroku Connect's; times are the database's capture time and
//! Salesforce's `SystemModstamp`, so it relies on both clocks being right (NTP). Every
//! decision is counted in the poll's outcome and logged.

use std::collections::HashSet;

use pgforce_store::Ident;
use tokio_postgres::Transaction;

/// What [`settle`] decided for a page.
#[derive(Debug, Default)]
pub struct Settled {
    /// Records whose local changes win: not applied by this page.
    pub local_wins: HashSet<String>,
    /// Local changes superseded by newer Salesforce changes (log rows set to IGNORED).
    pub superseded: u64,
}

/// Settles conflicts between a page of Salesforce records, given as `(sfid,
/// SystemModstamp)`, and the unsent local changes of the same records.
pub async fn settle(
    tx: &Transaction<'_>,
    schema: &Ident,
    table: &Ident,
    page: &[(String, String)],
) -> Result<Settled, tokio_postgres::Error> {
    if page.is_empty() {
        return Ok(Settled::default());
    }
    let (sfids, stamps): (Vec<&str>, Vec<&str>) =
        page.iter().map(|(s, t)| (s.as_str(), t.as_str())).unzip();
    let log = format!("{schema}._trigger_log");
    let local_wins = tx
        .query(
            &format!(
                "select u.sfid from unnest($1::text[], $2::text[]) u(sfid, stamp)
                 join {log} l on l.sfid = u.sfid and l.table_name = $3
                     and l.state in ('NEW', 'PENDING', 'HELD') and l.action <> 'INSERT'
                 group by u.sfid, u.stamp
                 having bool_or(l.state = 'PENDING') or max(l.created_at) > u.stamp::timestamptz"
            ),
            &[&sfids, &stamps, &table.as_str()],
        )
        .await?
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<HashSet<String>>();
    let superseded = tx
        .execute(
            &format!(
                "update {log} l set state = 'IGNORED', processed_at = now(), updated_at = now(),
                     sf_message = 'pgforce: superseded by a newer change in Salesforce at '
                         || u.stamp || ' (last writer wins)'
                 from unnest($1::text[], $2::text[]) u(sfid, stamp)
                 where l.sfid = u.sfid and l.table_name = $3 and l.state in ('NEW', 'HELD')
                   and l.action <> 'INSERT' and not (u.sfid = any($4))"
            ),
            &[
                &sfids,
                &stamps,
                &table.as_str(),
                &local_wins.iter().collect::<Vec<_>>(),
            ],
        )
        .await?;
    if !local_wins.is_empty() || superseded > 0 {
        tracing::info!(table = %table, local_wins = local_wins.len(), superseded, "records changed on both sides: last writer wins");
    }
    Ok(Settled {
        local_wins,
        superseded,
    })
}
