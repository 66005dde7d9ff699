//! Taking trigger-log rows to work on, and giving them back.
//!
//! Before claiming, held-back rows whose failed insert is gone (re-queued, ignored, or the
//! record got an `sfid`) return to NEW, and NEW rows that depend on a still-failed insert
//! are held back (state `HELD`, the reason in `sf_message`): by default that record's
//! rows and the inserts of children naming it by external id, every later row under
//! [`HoldRule::BlockQueue`]. Then NEW rows are taken in id order and marked PENDING in the
//! same statement. A row another transaction holds locked is skipped, and so are the later
//! rows of its record, and the later rows of a record with a row still PENDING: a record's
//! changes are sent in log order, always.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient};

use super::{log_table, stored_ids};
use crate::Ident;
use crate::catalog::leases::Fence;
use crate::error::{Context as _, Result};
use crate::own_write::OwnWrite;
use crate::states::{LogAction, LogState};

/// How the message of a child held behind its parent begins.
const PARENT_HOLD: &str =
    "pgforce: held back until the failed insert of its parent in trigger log row ";
/// How the message of a row held behind its own record's insert begins.
const RECORD_HOLD: &str = "pgforce: held back until the failed insert in trigger log row ";
/// How both messages end.
const HOLD_END: &str = " is fixed and re-queued";

/// A child table's column that names a parent row by the parent's upsert field: the
/// child's insert depends on the parent's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentLink {
    /// The child table.
    pub child_table: String,
    /// The child's relationship external-id column.
    pub child_column: String,
    /// The parent table.
    pub parent_table: String,
    /// The parent's upsert column (holding the value the child names).
    pub parent_column: String,
}

/// What a refused insert holds back under ordered writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRule {
    /// The later changes of its record and the inserts of children naming it.
    HoldDependents,
    /// Every later change.
    BlockQueue,
}

/// Releases and holds back rows as the failed inserts dictate; returns how many rows were
/// newly held back.
async fn hold_back(
    client: &impl GenericClient,
    schema: &Ident,
    links: &[ParentLink],
    rule: HoldRule,
) -> Result<u64> {
    let log = log_table(schema);
    let (failed, insert, held, new) = (
        LogState::Failed.as_str(),
        LogAction::Insert.as_str(),
        LogState::Held.as_str(),
        LogState::New.as_str(),
    );
    let blocks = match rule {
        HoldRule::HoldDependents => {
            "f.table_name = r.table_name and f.record_id = r.record_id and f.id < r.id"
        }
        HoldRule::BlockQueue => "f.id < r.id",
    };
    // $1 FAILED, $2 INSERT, $3 HELD, $4 NEW, $5 the message's beginning.
    let failed_insert =
        format!("select f.id from {log} f where f.state = $1 and f.action = $2 and {blocks}");
    client
        .execute(
            &format!(
                "update {log} r set state = $4, sf_message = null, updated_at = now()
                 where r.state = $3 and r.sf_message not like $5 || '%'
                   and not exists ({failed_insert})"
            ),
            &[&failed, &insert, &held, &new, &PARENT_HOLD],
        )
        .await
        .context(|| format!("releasing held-back rows of {log}"))?;
    let mut newly_held = client
        .execute(
            &format!(
                "update {log} r set state = $3, updated_at = now(),
                     sf_message = $5 || ({failed_insert} order by f.id limit 1) || $6
                 where r.state = $4 and exists ({failed_insert})"
            ),
            &[&failed, &insert, &held, &new, &RECORD_HOLD, &HOLD_END],
        )
        .await
        .context(|| format!("holding back rows of {log}"))?;
    for link in links {
        // A child insert naming a parent whose own insert failed waits for it.
        // $5 child table, $6 parent table, $7 parent column, $8 child column.
        let failed_parent = format!(
            "select f.id from {log} f where f.state = $1 and f.action = $2
                 and f.table_name = $6 and f.id < r.id
                 and (f.\"values\"::hstore -> $7) = (r.\"values\"::hstore -> $8)"
        );
        let params: [&(dyn ToSql + Sync); 9] = [
            &failed,
            &insert,
            &held,
            &new,
            &link.child_table,
            &link.parent_table,
            &link.parent_column,
            &link.child_column,
            &PARENT_HOLD,
        ];
        client
            .execute(
                &format!(
                    "update {log} r set state = $4, sf_message = null, updated_at = now()
                     where r.state = $3 and r.table_name = $5 and r.sf_message like $9 || '%'
                       and not exists ({failed_parent})"
                ),
                &params,
            )
            .await
            .context(|| format!("releasing children of fixed inserts in {log}"))?;
        if rule == HoldRule::HoldDependents {
            newly_held += client
                .execute(
                    &format!(
                        "update {log} r set state = $3, updated_at = now(),
                             sf_message = $9 || ({failed_parent} order by f.id limit 1) || $10
                         where r.state = $4 and r.action = $2 and r.table_name = $5
                           and exists ({failed_parent})"
                    ),
                    &[
                        params[0], params[1], params[2], params[3], params[4], params[5],
                        params[6], params[7], params[8], &HOLD_END,
                    ],
                )
                .await
                .context(|| format!("holding back children of failed inserts in {log}"))?;
        }
    }
    Ok(newly_held)
}

/// A claimed trigger-log row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedRow {
    /// The log row's id.
    pub log_id: i32,
    /// What was captured.
    pub action: LogAction,
    /// The mapped table.
    pub table: String,
    /// The mapped row's `id`.
    pub record_id: Option<i32>,
    /// The row's Salesforce Id, when the capture knew it.
    pub sfid: Option<String>,
    /// The captured values (hstore text).
    pub values: Option<String>,
    /// Whether it was processed before and set back to NEW (a re-queue).
    pub requeued: bool,
}

fn claimed_row(row: &tokio_postgres::Row) -> ClaimedRow {
    let action: String = row.get(1);
    ClaimedRow {
        log_id: row.get(0),
        // The column is varchar(7) filled by the capture triggers; anything else is a
        // delete-like change Salesforce cannot be asked to make.
        action: LogAction::parse(&action).unwrap_or(LogAction::Delete),
        table: row.get(2),
        record_id: row.get(3),
        sfid: row.get(4),
        values: row.get(5),
        requeued: row.get(6),
    }
}

/// What a claim takes and holds back.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules<'a> {
    /// Parent links among the connection's tables.
    pub links: &'a [ParentLink],
    /// What a refused insert holds back (`None`: nothing, merged writes).
    pub hold: Option<HoldRule>,
    /// Tables whose rows stay NEW (paused mappings).
    pub waiting: &'a [&'a str],
    /// The most rows to claim.
    pub limit: i64,
}

/// Holds back what refused inserts dictate, then claims up to `rules.limit` NEW rows,
/// oldest first, marking them PENDING — one transaction, committed only while the lease
/// behind `fence` holds. Returns the rows in id order and how many were newly held back.
pub async fn claim(
    client: &mut Client,
    schema: &Ident,
    rules: ClaimRules<'_>,
    fence: Option<&Fence>,
) -> Result<(Vec<ClaimedRow>, u64)> {
    let log = log_table(schema);
    let tx = OwnWrite::untabled().fenced(fence).begin(client).await?;
    let held = match rules.hold {
        Some(rule) => hold_back(&*tx, schema, rules.links, rule).await?,
        None => 0,
    };
    // Rows another transaction holds (the reader settling a conflict, say) are skipped
    // rather than waited for; so is every later row of their record, which must not be
    // sent before them. Later rows of a record with a PENDING row (a create in doubt,
    // waiting to be checked) wait for it too.
    let rows = tx
        .query(
            &format!(
                "with taken as (
                     select id, table_name, record_id from {log}
                     where state = $2 and not (table_name = any($4))
                     order by id limit $3 for update skip locked),
                 skipped as (
                     select l.table_name, l.record_id, min(l.id) as first_id from {log} l
                     where (l.state = $2 and not (l.table_name = any($4))
                            and l.id < (select max(id) from taken)
                            and not exists (select 1 from taken t where t.id = l.id))
                        or l.state = $1
                     group by l.table_name, l.record_id)
                 update {log} set state = $1, updated_at = now()
                 where id in (select t.id from taken t where not exists (
                     select 1 from skipped s where s.table_name = t.table_name
                         and s.record_id = t.record_id and s.first_id < t.id))
                 returning id, action::text, table_name::text, record_id, sfid::text, \"values\",
                           processed_at is not null"
            ),
            &[
                &LogState::Pending.as_str(),
                &LogState::New.as_str(),
                &rules.limit,
                &rules.waiting,
            ],
        )
        .await
        .context(|| format!("claiming new rows of {log}"))?;
    tx.commit(&format!("a claim of rows of {log}")).await?;
    let mut claimed: Vec<ClaimedRow> = rows.iter().map(claimed_row).collect();
    claimed.sort_by_key(|row| row.log_id);
    Ok((claimed, held))
}

/// The PENDING rows among `log_ids` (a job's rows a stopped writer left), in id order.
pub async fn pending_rows(
    client: &impl GenericClient,
    schema: &Ident,
    log_ids: &[i32],
) -> Result<Vec<ClaimedRow>> {
    let log = log_table(schema);
    let rows = client
        .query(
            &format!(
                "select id, action::text, table_name::text, record_id, sfid::text, \"values\",
                        processed_at is not null
                 from {log} where id = any($1) and state = $2 order by id"
            ),
            &[&log_ids, &LogState::Pending.as_str()],
        )
        .await
        .context(|| format!("reading pending rows of {log}"))?;
    Ok(rows.iter().map(claimed_row).collect())
}

/// Puts claimed rows back to NEW (to be sent again, in order, by a later pass), only
/// while the lease behind `fence` holds.
pub async fn unclaim(
    client: &mut Client,
    schema: &Ident,
    log_ids: &[i64],
    fence: Option<&Fence>,
) -> Result<()> {
    if log_ids.is_empty() {
        return Ok(());
    }
    let log = log_table(schema);
    let tx = OwnWrite::untabled().fenced(fence).begin(client).await?;
    tx.execute(
        &format!(
            "update {log} set state = $2, updated_at = now() where id = any($1) and state = $3"
        ),
        &[
            &stored_ids(log_ids),
            &LogState::New.as_str(),
            &LogState::Pending.as_str(),
        ],
    )
    .await
    .context(|| format!("returning rows of {log} to NEW"))?;
    tx.commit(&format!("rows of {log} returned to NEW")).await
}

/// The Ids inserts of these rows of `table` got, as their trigger-log rows recorded them
/// (row id → sfid): for changes of a row deleted locally before they were sent, whose
/// record still exists in Salesforce until the row's delete, queued after them, is sent.
pub async fn logged_sfids(
    client: &impl GenericClient,
    schema: &Ident,
    table: &str,
    record_ids: &[i32],
) -> Result<std::collections::HashMap<i64, String>> {
    let log = log_table(schema);
    let rows = client
        .query(
            &format!(
                "select distinct on (record_id) record_id, sfid::text from {log}
                 where table_name = $1 and record_id = any($2) and action = $3 and state = $4
                   and sfid is not null
                 order by record_id, id desc"
            ),
            &[
                &table,
                &record_ids,
                &LogAction::Insert.as_str(),
                &LogState::Success.as_str(),
            ],
        )
        .await
        .context(|| format!("reading the Ids inserts recorded in {log}"))?;
    Ok(rows
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), r.get(1)))
        .collect())
}
